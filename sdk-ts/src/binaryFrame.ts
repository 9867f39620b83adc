/**
 * {@link decodeBinaryFrame}: a binary output frame (the schema's
 * `x-binaryFrames`, sent once `initialize` granted `binaryOutput`) read
 * into the `process/output` params it stands for, with the chunk as raw
 * bytes instead of base64. It goes by the generated layout constants alone
 * (`generated/binaryFrames.ts`): kind code, offsets, header length, stream
 * codes.
 *
 * @module
 */

import {
  PROCESS_OUTPUT_FRAME_HEADER_LENGTH,
  PROCESS_OUTPUT_FRAME_KIND,
  PROCESS_OUTPUT_FRAME_KIND_OFFSET,
  PROCESS_OUTPUT_FRAME_PROCESS_ID_LENGTH_OFFSET,
  PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET,
  PROCESS_OUTPUT_FRAME_SEQ_OFFSET,
  PROCESS_OUTPUT_FRAME_STREAM_OFFSET,
  PROCESS_OUTPUT_FRAME_STREAM_VALUES,
} from "./generated/binaryFrames.js";
import type { OutputStream } from "./generated/OutputStream.js";

/** The params of a `process/output` notification that came as a binary frame. */
export interface OutputFrame {
  /** The process that wrote the bytes. */
  readonly processId: string;
  /** Position in the process's sequence. */
  readonly seq: number;
  /** The stream the bytes came from. */
  readonly stream: OutputStream;
  /** The bytes, raw (a view into the frame). */
  readonly chunk: Uint8Array;
}

/** A decoded frame, or what is wrong with it (a protocol error of the server). */
export type DecodedFrame = { readonly ok: true; readonly output: OutputFrame } | { readonly ok: false; readonly problem: string };

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes one binary frame; never throws. */
export function decodeBinaryFrame(frame: Uint8Array): DecodedFrame {
  const fail = (problem: string): DecodedFrame => ({ ok: false, problem });
  if (frame.length === 0) {
    return fail("an empty binary frame");
  }
  const kind = frame[PROCESS_OUTPUT_FRAME_KIND_OFFSET];
  if (kind !== PROCESS_OUTPUT_FRAME_KIND) {
    return fail(`a binary frame of unknown kind ${kind}`);
  }
  if (frame.length < PROCESS_OUTPUT_FRAME_HEADER_LENGTH) {
    return fail(`a binary frame of ${frame.length} bytes, shorter than its ${PROCESS_OUTPUT_FRAME_HEADER_LENGTH}-byte header`);
  }
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const code = view.getUint8(PROCESS_OUTPUT_FRAME_STREAM_OFFSET);
  const stream = PROCESS_OUTPUT_FRAME_STREAM_VALUES[code];
  if (stream === undefined) {
    return fail(`a binary frame with unknown stream code ${code}`);
  }
  const seq = view.getBigUint64(PROCESS_OUTPUT_FRAME_SEQ_OFFSET);
  if (seq > BigInt(Number.MAX_SAFE_INTEGER)) {
    return fail(`a binary frame with seq ${seq}, past what this client counts exactly (2^53)`);
  }
  const length = view.getUint16(PROCESS_OUTPUT_FRAME_PROCESS_ID_LENGTH_OFFSET);
  const chunkStart = PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET + length;
  if (chunkStart > frame.length) {
    return fail(`a binary frame whose processId length (${length} bytes) runs past its end`);
  }
  let processId: string;
  try {
    processId = utf8.decode(frame.subarray(PROCESS_OUTPUT_FRAME_PROCESS_ID_OFFSET, chunkStart));
  } catch {
    return fail("a binary frame whose processId is not UTF-8");
  }
  if (processId === "") {
    return fail("a binary frame with an empty processId");
  }
  return { ok: true, output: { processId, seq: Number(seq), stream, chunk: frame.subarray(chunkStart) } };
}
