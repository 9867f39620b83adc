/**
 * {@link Connection}: JSON-RPC 2.0 over one WebSocket. It numbers requests,
 * matches responses to the calls waiting for them, routes each process
 * notification by `processId` to the {@link Route} following that process,
 * holds the server back (by pausing the socket) while a route asks it to,
 * and fails everything waiting when the connection closes.
 *
 * @module
 */

import { ConnectionClosedError, ExecError, MessageTooLargeError, ProtocolError, isRecord } from "./errors.js";
import type { ClientNotificationMap, RequestMethod, RequestParams, RequestResult, ServerNotificationMap, ServerNotificationMethod } from "./generated/methods.js";
import { SERVER_NOTIFICATION_METHODS } from "./generated/methods.js";
import { WEBSOCKET_CLOSED, type WebSocketLike, frameText } from "./transport.js";

/**
 * One handler per server notification, named by its method: a notification
 * added to the schema does not compile until every route handles it.
 */
export type NotificationHandlers = {
  [M in ServerNotificationMethod]: (params: ServerNotificationMap[M]) => void;
};

/** Where one process's notifications go. */
export interface Route extends NotificationHandlers {
  /** The connection closed: nothing more will arrive. */
  connectionClosed(): void;
}

/** A call waiting for its response. */
interface PendingCall {
  /** The request's method, for errors. */
  readonly method: string;
  /** Settles the call with the response's `result`. */
  readonly resolve: (result: unknown) => void;
  /** Settles the call with an error. */
  readonly reject: (error: Error) => void;
}

/** Why the connection closed, to make a fresh error for every call that asks. */
interface ClosedReason {
  /** The message of the {@link ConnectionClosedError}s. */
  readonly message: string;
  /** The protocol violation that closed it, if one did. */
  readonly cause: ProtocolError | undefined;
}

/** The first characters of a message, for error texts. */
function excerpt(text: string): string {
  return text.length > 200 ? `${text.slice(0, 200)}...` : text;
}

/** A JSON-RPC connection to an exec-server over an open WebSocket. */
export class Connection {
  /** The socket; its listeners are this connection's reader. */
  readonly #socket: WebSocketLike;
  /** The id the next request gets. */
  #nextId = 1;
  /** Calls waiting for their response, by request id. */
  readonly #pending = new Map<number, PendingCall>();
  /** Routes of the processes followed, by `processId`. */
  readonly #routes = new Map<string, Route>();
  /** Routes asking to hold the server back; the socket is paused while there is any. */
  readonly #holders = new Set<Route>();
  /** Set once the connection is closed; nothing is sent or registered after. */
  #closed: ClosedReason | undefined;
  /** The server's `limits.maxMessageBytes`, once `initialize` said it. */
  #maxMessageBytes = Number.POSITIVE_INFINITY;
  /** Resolves when the socket has closed. */
  readonly #socketClosed: Promise<void>;

  /** A connection over `socket`, which must be open. */
  constructor(socket: WebSocketLike) {
    this.#socket = socket;
    socket.addEventListener("message", (event) => this.#onFrame(event.data));
    // Errors are followed by a close event, which does the work.
    socket.addEventListener("error", () => {});
    this.#socketClosed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        const reason = event.reason === "" ? "" : `: ${event.reason}`;
        this.#shutdown({ message: `the connection to the exec-server closed (code ${event.code}${reason})`, cause: undefined });
        resolve();
      });
    });
  }

  /** Whether the socket can pause, so that {@link hold} holds the server back. */
  get canHold(): boolean {
    return typeof this.#socket.pause === "function" && typeof this.#socket.resume === "function";
  }

  /** Whether the connection is closed. */
  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  /** Sets the largest message the server accepts, in bytes. */
  setMaxMessageBytes(bytes: number): void {
    this.#maxMessageBytes = bytes;
  }

  /**
   * Sends request `method` and resolves with its result. Rejects with an
   * {@link ExecError} when the server answers with an error, a
   * {@link ConnectionClosedError} when the connection closes first, a
   * {@link MessageTooLargeError} when the request is over the server's limit.
   */
  call<M extends RequestMethod>(method: M, params: RequestParams<M>): Promise<RequestResult<M>> {
    if (this.#closed !== undefined) {
      return Promise.reject(this.closedError());
    }
    const id = this.#nextId;
    this.#nextId += 1;
    const text = JSON.stringify({ jsonrpc: "2.0", id, method, params });
    const tooLarge = this.#checkSize(text);
    if (tooLarge !== undefined) {
      return Promise.reject(tooLarge);
    }
    return new Promise<RequestResult<M>>((resolve, reject) => {
      this.#pending.set(id, { method, resolve: resolve as (result: unknown) => void, reject });
      this.#send(text);
    });
  }

  /** Sends a notification (the client sends only `initialized`). */
  notify<M extends keyof ClientNotificationMap>(method: M, params: ClientNotificationMap[M]): void {
    if (this.#closed !== undefined) {
      throw this.closedError();
    }
    this.#send(JSON.stringify({ jsonrpc: "2.0", method, params }));
  }

  /**
   * Starts routing `processId`'s notifications to `route`. Returns `false`
   * (and changes nothing) when another route already follows that id;
   * throws the closed error once the connection is closed.
   */
  registerRoute(processId: string, route: Route): boolean {
    if (this.#closed !== undefined) {
      throw this.closedError();
    }
    if (this.#routes.has(processId)) {
      return false;
    }
    this.#routes.set(processId, route);
    return true;
  }

  /** Stops routing `processId`, if `route` is still its route. */
  removeRoute(processId: string, route: Route): void {
    if (this.#routes.get(processId) === route) {
      this.#routes.delete(processId);
    }
    this.release(route);
  }

  /**
   * Holds the server back for `route`: the socket stops reading (when the
   * WebSocket class can pause), so the server's sends block and it stops
   * reading the process's output. Every other response waits meanwhile.
   */
  hold(route: Route): void {
    if (this.#closed !== undefined || this.#holders.has(route)) {
      return;
    }
    this.#holders.add(route);
    if (this.#holders.size === 1) {
      this.#socket.pause?.();
    }
  }

  /** Ends {@link hold} for `route`; the socket reads again when no route holds. */
  release(route: Route): void {
    if (this.#holders.delete(route) && this.#holders.size === 0) {
      this.#socket.resume?.();
    }
  }

  /** A fresh error for a call on the closed connection. */
  closedError(): ConnectionClosedError {
    const reason = this.#closed ?? { message: "the connection to the exec-server is closed", cause: undefined };
    return reason.cause === undefined
      ? new ConnectionClosedError(reason.message)
      : new ConnectionClosedError(reason.message, { cause: reason.cause });
  }

  /**
   * Closes the connection: every waiting call rejects with a
   * {@link ConnectionClosedError}, and the promise resolves once the socket
   * has closed. The server then kills the connection's processes.
   */
  close(): Promise<void> {
    this.#shutdown({ message: "the connection to the exec-server was closed by the client", cause: undefined });
    if (this.#socket.readyState !== WEBSOCKET_CLOSED) {
      this.#socket.close(1000, "client closed");
    }
    return this.#socketClosed;
  }

  /** Sends one text frame; a socket that refuses closes the connection. */
  #send(text: string): void {
    try {
      this.#socket.send(text);
    } catch (error) {
      this.#shutdown({ message: `sending to the exec-server failed: ${String(error)}`, cause: undefined });
    }
  }

  /** A {@link MessageTooLargeError} when `text` is over the server's limit. */
  #checkSize(text: string): MessageTooLargeError | undefined {
    // A UTF-8 byte is at most 3 per UTF-16 unit: measure only near the limit.
    if (text.length * 3 <= this.#maxMessageBytes) {
      return undefined;
    }
    const bytes = new TextEncoder().encode(text).byteLength;
    return bytes > this.#maxMessageBytes ? new MessageTooLargeError(bytes, this.#maxMessageBytes) : undefined;
  }

  /** Fails every waiting call, tells every route, and resumes the socket. The first reason sticks. */
  #shutdown(reason: ClosedReason): void {
    if (this.#closed !== undefined) {
      return;
    }
    this.#closed = reason;
    const pending = [...this.#pending.values()];
    const routes = [...this.#routes.values()];
    this.#pending.clear();
    this.#routes.clear();
    this.#holders.clear();
    // A paused socket would never read the server's close frame.
    this.#socket.resume?.();
    for (const call of pending) {
      call.reject(this.closedError());
    }
    for (const route of routes) {
      route.connectionClosed();
    }
  }

  /** Closes the connection because the server broke the protocol in a way that could hide a response. */
  #violation(message: string): void {
    this.#shutdown({
      message: `the connection to the exec-server was closed: ${message}`,
      cause: new ProtocolError(message),
    });
    if (this.#socket.readyState !== WEBSOCKET_CLOSED) {
      this.#socket.close(1000, "protocol violation");
    }
  }

  /** Handles one incoming frame. */
  #onFrame(data: unknown): void {
    if (this.#closed !== undefined) {
      return;
    }
    const text = frameText(data);
    if (text === undefined) {
      this.#violation("the server sent a frame that is neither text nor binary");
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      this.#violation(`the server sent a message that is not JSON: ${excerpt(text)}`);
      return;
    }
    if (!isRecord(message)) {
      this.#violation(`the server sent a message that is not a JSON-RPC object: ${excerpt(text)}`);
      return;
    }
    const id = message["id"];
    if (typeof message["method"] === "string") {
      // v1 defines no server-to-client requests (a message with an id), so
      // nothing waits on an answer to one: it is ignored, like a
      // notification this client does not know.
      if (id === undefined) {
        this.#onNotification(message["method"], message["params"]);
      }
      return;
    }
    if (id === undefined || id === null) {
      if (isRecord(message["error"])) {
        // An error about no request: the server could not tell which
        // message it was about (this client sends only valid JSON).
        return;
      }
      this.#violation(`a message with neither "method" nor "id": ${excerpt(text)}`);
      return;
    }
    if (typeof id !== "number" || !Number.isSafeInteger(id)) {
      this.#violation(`a response with id ${JSON.stringify(id)}, which this client never uses`);
      return;
    }
    const call = this.#pending.get(id);
    if (call === undefined) {
      if (id >= this.#nextId) {
        this.#violation(`a response to id ${id}, which no request of this client had`);
      }
      return;
    }
    this.#pending.delete(id);
    const error = message["error"];
    if (isRecord(error)) {
      const code = typeof error["code"] === "number" ? error["code"] : 0;
      const text = typeof error["message"] === "string" ? error["message"] : "(no message)";
      call.reject(new ExecError(call.method, code, text, error["data"]));
    } else {
      call.resolve(message["result"] ?? null);
    }
  }

  /** Routes a notification to its process's route. */
  #onNotification(method: string, params: unknown): void {
    if (!isServerNotification(method)) {
      return;
    }
    // The three notifications name a process and a seq. Params that do not
    // parse are not fatal: the process sees the gap and reads it back.
    if (!isRecord(params) || typeof params["processId"] !== "string" || typeof params["seq"] !== "number") {
      return;
    }
    const route = this.#routes.get(params["processId"]);
    if (route === undefined) {
      return;
    }
    const handler = route[method] as (params: unknown) => void;
    handler.call(route, params);
  }
}

/** Whether `method` is a notification the server sends. */
function isServerNotification(method: string): method is ServerNotificationMethod {
  return (SERVER_NOTIFICATION_METHODS as readonly string[]).includes(method);
}
