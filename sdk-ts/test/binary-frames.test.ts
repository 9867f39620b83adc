/**
 * Binary output frames: the decoder on hand-built frames (every field,
 * every malformed case), a frame parsed into the same notification its JSON
 * text gives, and, against the real server, the output a process gives
 * read the same with and without `binaryOutput`.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { decodeBinaryFrame } from "../src/binaryFrame.js";
import { decodeBase64 } from "../src/base64.js";
import { parseIncoming } from "../src/incoming.js";
import { type TestServer, collect, connect, startServer } from "./harness.js";

/** A `process/output` frame: kind, stream code, seq, id length, id, bytes. */
function frame(stream: number, seq: bigint, processId: string, chunk: number[]): Uint8Array {
  const id = new TextEncoder().encode(processId);
  const bytes = new Uint8Array(12 + id.length + chunk.length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, 1);
  view.setUint8(1, stream);
  view.setBigUint64(2, seq);
  view.setUint16(10, id.length);
  bytes.set(id, 12);
  bytes.set(chunk, 12 + id.length);
  return bytes;
}

test("a frame decodes to its process/output params, the chunk raw", () => {
  for (const [code, stream] of [[0, "stdout"], [1, "stderr"], [2, "pty"]] as const) {
    const decoded = decodeBinaryFrame(frame(code, 7n, "p ✓", [0, 255, 10]));
    assert.ok(decoded.ok);
    assert.deepEqual(
      { ...decoded.output, chunk: [...decoded.output.chunk] },
      { processId: "p ✓", seq: 7, stream, chunk: [0, 255, 10] },
    );
  }
  const empty = decodeBinaryFrame(frame(0, 1n, "p", []));
  assert.ok(empty.ok && empty.output.chunk.length === 0);
});

test("every malformed frame is named, never thrown", () => {
  const good = frame(0, 1n, "ab", [1, 2]);
  const edited = (index: number, byte: number): Uint8Array => {
    const copy = good.slice();
    copy[index] = byte;
    return copy;
  };
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(), "empty"],
    [edited(0, 9), "unknown kind 9"],
    [good.subarray(0, 11), "shorter than its 12-byte header"],
    [edited(1, 3), "unknown stream code 3"],
    [edited(11, 200), "runs past its end"],
    [edited(12, 0xff), "not UTF-8"],
    [frame(0, 1n, "", []), "empty processId"],
    [frame(0, 2n ** 60n, "p", []), "2^53"],
  ];
  for (const [bytes, wanted] of cases) {
    const decoded = decodeBinaryFrame(bytes);
    assert.ok(!decoded.ok, wanted);
    assert.match(decoded.problem, new RegExp(wanted.replace(/[\^]/g, "\\^")));
  }
  const violation = parseIncoming(edited(0, 9).buffer);
  assert.equal(violation.kind, "violation");
});

test("a frame and its JSON text are the same notification; JSON in a binary frame is still JSON", () => {
  const binary = parseIncoming(frame(1, 3n, "p", [104, 105]).buffer);
  const text = parseIncoming(
    JSON.stringify({ jsonrpc: "2.0", method: "process/output", params: { processId: "p", seq: 3, stream: "stderr", chunk: "aGk=" } }),
  );
  assert.ok(binary.kind === "notification" && text.kind === "notification");
  assert.equal(binary.method, text.method);
  assert.equal(binary.processId, text.processId);
  assert.equal(binary.seq, text.seq);
  const bytes = (params: { chunk: string | Uint8Array }): number[] =>
    [...(typeof params.chunk === "string" ? decodeBase64(params.chunk) : params.chunk)];
  assert.deepEqual(bytes(binary.params as { chunk: Uint8Array }), bytes(text.params as { chunk: string }));
  const json = new TextEncoder().encode(JSON.stringify({ jsonrpc: "2.0", id: 1, result: {} }));
  assert.deepEqual(parseIncoming(json.buffer), { kind: "result", id: 1, result: {} });
});

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

test("output reads the same with and without binary frames", { timeout: 60_000 }, async () => {
  const script = "seq 1 40000; printf '\\000\\377' >&2; seq 1 30000 >&2; exit 3";
  const results = [];
  for (const binaryOutput of [true, false]) {
    const client = await connect(server, "binary-output-test", { binaryOutput });
    try {
      assert.equal(client.initializeResponse.binaryOutput, binaryOutput);
      const piped = await collect(await client.spawn({ argv: ["sh", "-c", script] }));
      const terminal = await collect(await client.spawn({ argv: ["sh", "-c", "printf 'on a terminal'"], tty: true }));
      results.push({ piped, terminal: terminal.stdout });
    } finally {
      await client.close();
    }
  }
  assert.deepEqual(results[0], results[1]);
  assert.equal(results[0]?.piped.stdout.length, 228_894);
  assert.equal(results[0]?.piped.status.exitCode, 3);
  assert.equal(results[0]?.terminal, "on a terminal");
});
