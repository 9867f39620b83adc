/**
 * {@link parseIncoming}: what one frame from the server is, in one parse: a
 * response (a result or an error, by request id), a process notification,
 * something to ignore, or a protocol violation that closes the connection.
 * The connection decides what to do with it.
 *
 * @module
 */

import { type OutputFrame, decodeBinaryFrame } from "./binaryFrame.js";
import { isRecord } from "./errors.js";
import type { ServerNotificationMap, ServerNotificationMethod } from "./generated/methods.js";
import { SERVER_NOTIFICATION_METHODS } from "./generated/methods.js";
import { frameText } from "./transport.js";

/**
 * The notifications about a process (every server notification but
 * `http/request/bodyDelta`, which names an HTTP request: this client has no
 * streamed `http/request` yet and ignores those).
 */
export type ProcessNotificationMethod = Exclude<ServerNotificationMethod, "http/request/bodyDelta">;

/**
 * The params of a `process/output` notification as either form carries
 * them: JSON text (the chunk in base64) or a binary frame (raw bytes).
 */
export type ProcessOutputParams = ServerNotificationMap["process/output"] | OutputFrame;

/** A process notification: every one names a process and a seq. */
export type IncomingNotification = {
  [M in ProcessNotificationMethod]: {
    readonly kind: "notification";
    readonly method: M;
    readonly processId: string;
    readonly seq: number;
    readonly params: M extends "process/output" ? ProcessOutputParams : ServerNotificationMap[M];
  };
}[ProcessNotificationMethod];

/** One frame from the server, parsed. */
export type Incoming =
  | IncomingNotification
  | { readonly kind: "result"; readonly id: number; readonly result: unknown }
  | { readonly kind: "error"; readonly id: number; readonly code: number; readonly message: string; readonly data: unknown }
  | { readonly kind: "ignored" }
  | { readonly kind: "violation"; readonly message: string };

/** The first characters of a message, for error texts. */
function excerpt(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** The first byte of a JSON object: a binary message starting so is JSON text, not a frame. */
const OPEN_BRACE = 0x7b;

/**
 * Parses one frame's data: a string, or the bytes of a binary frame (an
 * `ArrayBuffer` or a view): a binary output frame, decoded into the same
 * `process/output` notification a text frame gives, or JSON text when it
 * starts with `{`.
 */
export function parseIncoming(data: unknown): Incoming {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : ArrayBuffer.isView(data) ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength) : undefined;
  if (bytes !== undefined && bytes.length > 0 && bytes[0] !== OPEN_BRACE) {
    const decoded = decodeBinaryFrame(bytes);
    if (!decoded.ok) {
      return { kind: "violation", message: `the server sent a binary frame this client cannot read: ${decoded.problem}` };
    }
    const { output } = decoded;
    return { kind: "notification", method: "process/output", processId: output.processId, seq: output.seq, params: output };
  }
  const text = frameText(data);
  if (text === undefined) {
    return { kind: "violation", message: "the server sent a frame that is neither text nor binary" };
  }
  let message: unknown;
  try {
    message = JSON.parse(text);
  } catch {
    return { kind: "violation", message: `the server sent a message that is not JSON: ${excerpt(text)}` };
  }
  if (!isRecord(message)) {
    return { kind: "violation", message: `the server sent a message that is not a JSON-RPC object: ${excerpt(text)}` };
  }
  const id = message["id"];
  const method = message["method"];
  if (typeof method === "string") {
    // v1 defines no server-to-client requests (a message with an id), so
    // nothing waits on an answer to one: it is ignored, like a
    // notification this client does not know.
    return id === undefined ? notification(method, message["params"]) : { kind: "ignored" };
  }
  if (id === undefined || id === null) {
    // An error about no request: the server could not tell which message
    // it was about (this client sends only valid JSON).
    return isRecord(message["error"])
      ? { kind: "ignored" }
      : { kind: "violation", message: `a message with neither "method" nor "id": ${excerpt(text)}` };
  }
  if (typeof id !== "number" || !Number.isSafeInteger(id)) {
    return { kind: "violation", message: `a response with id ${JSON.stringify(id)}, which this client never uses` };
  }
  const error = message["error"];
  if (isRecord(error)) {
    return {
      kind: "error",
      id,
      code: typeof error["code"] === "number" ? error["code"] : 0,
      message: typeof error["message"] === "string" ? error["message"] : "(no message)",
      data: error["data"],
    };
  }
  return { kind: "result", id, result: message["result"] ?? null };
}

/** A process notification, or `ignored` for a method or params this client does not know. */
function notification(method: string, params: unknown): Incoming {
  // The three notifications name a process and a seq. Params that do not
  // parse are not fatal: the process sees the gap and reads it back.
  if (!isProcessNotification(method) || !isRecord(params) || typeof params["processId"] !== "string" || typeof params["seq"] !== "number") {
    return { kind: "ignored" };
  }
  return { kind: "notification", method, processId: params["processId"], seq: params["seq"], params } as IncomingNotification;
}

/** Whether `method` is a notification the server sends about a process. */
function isProcessNotification(method: string): method is ProcessNotificationMethod {
  return method !== "http/request/bodyDelta" && (SERVER_NOTIFICATION_METHODS as readonly string[]).includes(method);
}
