/**
 * The errors of this package. Every one extends {@link ExecClientError}, so
 * `catch (error) { if (error instanceof ExecClientError) ... }` tells this
 * package's failures from any other.
 *
 * @module
 */

import type { ErrorKind } from "./generated/ErrorKind.js";
import type { WriteStatus } from "./generated/WriteStatus.js";

/**
 * Every `data.kind` the protocol defines, to tell a known kind from a newer
 * server's. A record rather than a list, so a kind added to the schema does
 * not compile until it is listed here.
 */
const ERROR_KINDS: Record<ErrorKind, true> = {
  notInitialized: true,
  alreadyInitialized: true,
  unknownSession: true,
  unknownProcess: true,
  processExists: true,
  notPty: true,
  stdinClosed: true,
  spawnFailed: true,
  sandboxUnavailable: true,
  notFound: true,
  permissionDenied: true,
  alreadyExists: true,
  notADirectory: true,
  isADirectory: true,
  directoryNotEmpty: true,
  invalidParams: true,
  invalidPath: true,
  limitExceeded: true,
  io: true,
  httpFailed: true,
  httpTimeout: true,
};

/** The base class of every error this package throws or rejects with. */
export class ExecClientError extends Error {
  override name = "ExecClientError";
}

/**
 * The server answered a request with a JSON-RPC error object.
 *
 * Branch on {@link ExecError.kind} (the protocol's machine-readable
 * `data.kind`, e.g. `notFound`), not on the message.
 */
export class ExecError extends ExecClientError {
  override name = "ExecError";
  /** The JSON-RPC error code: -32600 invalid request, -32601 method not found, -32602 invalid params, -32603 internal error, -32004 not found (`notFound`, Codex's code). */
  readonly code: number;
  /** `data.kind` when it is one of the protocol's kinds; `undefined` for an error without one (e.g. -32601) or a kind this package does not know. */
  readonly kind: ErrorKind | undefined;
  /** The whole `data` member as the server sent it (`kind`, and `path` or `processId`), or `undefined`. */
  readonly data: unknown;
  /** The request method that failed. */
  readonly method: string;

  /** An error for `method` from the wire's `code`, `message` and `data`. */
  constructor(method: string, code: number, message: string, data: unknown) {
    const rawKind = isRecord(data) && typeof data["kind"] === "string" ? data["kind"] : undefined;
    super(`${method} failed: ${message} (code ${code}${rawKind === undefined ? "" : `, ${rawKind}`})`);
    this.method = method;
    this.code = code;
    this.kind = rawKind !== undefined && Object.hasOwn(ERROR_KINDS, rawKind) ? (rawKind as ErrorKind) : undefined;
    this.data = data;
  }
}

/**
 * The connection is closed for good: {@link ExecClient.close} was called,
 * the server went away and the client does not reconnect (reconnecting is
 * off, the server keeps no session, or reconnecting gave up), the session was
 * resumed by another connection (WebSocket close code 4000), or the server
 * broke the protocol. Every call still waiting then rejects with this, and
 * so does every call after it. When the server broke the protocol, `cause`
 * is the {@link ProtocolError}.
 */
export class ConnectionClosedError extends ExecClientError {
  override name = "ConnectionClosedError";
}

/**
 * The connection dropped while this request was waiting for its answer, and
 * the client is reconnecting: the request may or may not have run on the
 * server. Retry it if that is safe (a read, a signal the process can take
 * twice), or check first. `process/start` and `process/write` with a
 * `writeId` never fail this way: the client sends them again after the
 * reconnect, and the server applies them once. Calls made after the drop are
 * not affected: they wait for the reconnect.
 */
export class ConnectionLostError extends ExecClientError {
  override name = "ConnectionLostError";
  /** The request method that was waiting. */
  readonly method: string;

  /** The error for a pending `method` whose connection dropped. */
  constructor(method: string, options?: ErrorOptions) {
    super(`the connection to the exec-server dropped while ${method} was waiting for its answer; it may or may not have run`, options);
    this.method = method;
  }
}

/**
 * Opening the connection failed: the WebSocket could not connect, the
 * upgrade was refused (HTTP 401 for a missing or wrong token, 403 for a
 * refused `Origin`), or it took longer than `connectTimeoutMs`.
 */
export class ConnectError extends ExecClientError {
  override name = "ConnectError";
  /** The URL that was dialled. */
  readonly url: string;
  /** The HTTP status of a refused upgrade (401, 403), when the WebSocket class reports it. */
  readonly status: number | undefined;

  /** An error about `url`, with the HTTP `status` when known. */
  constructor(url: string, message: string, status?: number, options?: ErrorOptions) {
    super(`cannot connect to ${url}: ${message}`, options);
    this.url = url;
    this.status = status;
  }
}

/**
 * The server broke the protocol: a message that is not JSON-RPC, a response
 * to a request never sent, another protocol version, a process closed
 * without an exit. A violation that could hide a response closes the
 * connection.
 */
export class ProtocolError extends ExecClientError {
  override name = "ProtocolError";
}

/** `process/write` answered with a status other than `accepted`. */
export class WriteRejectedError extends ExecClientError {
  override name = "WriteRejectedError";
  /** The process written to. */
  readonly processId: string;
  /** What the server answered: `stdinClosed` (closed, never open, or the process exited), `unknownProcess`, or `starting` when the retries ran out. */
  readonly status: WriteStatus;

  /** The rejection of a write to `processId`. */
  constructor(processId: string, status: WriteStatus) {
    super(`process ${processId} did not accept the write: ${status}`);
    this.processId = processId;
    this.status = status;
  }
}

/**
 * A message is larger than the server's `limits.maxMessageBytes`, so it was
 * not sent: the server would refuse it without saying which request it was.
 */
export class MessageTooLargeError extends ExecClientError {
  override name = "MessageTooLargeError";
  /** The size of the message, in bytes. */
  readonly bytes: number;
  /** The server's limit, in bytes. */
  readonly limit: number;

  /** The error for a message of `bytes` over `limit`. */
  constructor(bytes: number, limit: number) {
    super(`a message of ${bytes} bytes is over the server's limit of ${limit} bytes`);
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** An `ExecPool` has no endpoint by this name (it was never added, or was removed). */
export class UnknownEndpointError extends ExecClientError {
  override name = "UnknownEndpointError";
  /** The name that was asked for. */
  readonly endpoint: string;

  /** The error for a use of endpoint `endpoint`. */
  constructor(endpoint: string) {
    super(`the pool has no endpoint named \`${endpoint}\``);
    this.endpoint = endpoint;
  }
}

/** Whether `value` is a plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
