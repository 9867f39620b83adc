/**
 * {@link Connection}: JSON-RPC 2.0 with an exec-server over a WebSocket that
 * can be replaced. It numbers requests, matches responses to the calls
 * waiting for them, routes each process notification by `processId` to the
 * {@link Route} following that process, holds the server back (by pausing
 * the socket) while a route asks it to, and fails everything waiting when
 * the connection closes for good.
 *
 * # Dropped sockets
 * With a drop handler set (reconnecting is on), a socket that ends without
 * the client asking, other than with close code 4000 (another connection
 * resumed the session: closed for good), is a drop: the connection is
 * *detached*. Calls waiting for an answer fail with
 * {@link ConnectionLostError}, except those safe to send again (see
 * {@link CallOptions.retry}), which wait, as new calls do. The reconnector
 * gives the connection a new socket ({@link Connection.beginResume}) that
 * carries only its own calls (the handshake, each route's replay) until
 * {@link Connection.finishResume} sends every waiting call, in order.
 *
 * @module
 */

import { UnroutedAcknowledgements } from "./acknowledge.js";
import { ConnectionClosedError, ConnectionLostError, ExecError, MessageTooLargeError, ProtocolError } from "./errors.js";
import type { ClientNotificationMap, RequestMethod, RequestParams, RequestResult, ServerNotificationMap, ServerNotificationMethod } from "./generated/methods.js";
import { type ProcessNotificationMethod, parseIncoming } from "./incoming.js";
import { type CallOptions, type PendingCall, PendingCalls, retryByDefault } from "./pending.js";
import { WEBSOCKET_CLOSED, type WebSocketLike } from "./transport.js";

/** The WebSocket close code of a connection whose session another connection resumed. */
export const SESSION_RESUMED_CLOSE_CODE = 4000;

/**
 * One handler per process notification, named by its method: a notification
 * added to the schema does not compile until every route handles it (or
 * `ProcessNotificationMethod` leaves it out, as it does `http/request/bodyDelta`).
 */
export type NotificationHandlers = {
  [M in ProcessNotificationMethod]: (params: ServerNotificationMap[M]) => void;
};

/** Where one process's notifications go. */
export interface Route extends NotificationHandlers {
  /** The connection closed for good: nothing more will arrive. */
  connectionClosed(): void;
  /** The socket dropped; the connection is reconnecting. */
  connectionDropped(): void;
  /** The resume is done (replayed, waiting calls sent): the socket carries every call again. */
  connectionResumed(): void;
  /** The session was resumed on a new socket: read back what the drop lost with internal calls, and acknowledge. */
  resumed(): Promise<void>;
}

/** Why the connection closed, to make a fresh error for every call that asks. */
interface ClosedReason {
  /** The message of the {@link ConnectionClosedError}s. */
  readonly message: string;
  /** What made it close (a protocol violation, the error that ended reconnecting), if anything did. */
  readonly cause: Error | undefined;
}

/**
 * Where the connection is: `attached` to a socket that carries every call;
 * `detached` after a drop, without a socket; `resuming` on a new socket that
 * carries only internal calls; `closed` for good.
 */
type Phase = "attached" | "detached" | "resuming" | "closed";

/** A JSON-RPC connection to an exec-server. */
export class Connection {
  /** The socket; its listeners are this connection's reader. `undefined` while detached. */
  #socket: WebSocketLike | undefined;
  /** Resolves when the current socket has closed. */
  #socketClosed: Promise<void>;
  /** Whether the WebSocket class can pause (checked on the first socket: every socket is of its class). */
  readonly #canPause: boolean;
  /** See {@link Phase}. */
  #phase: Phase = "attached";
  /** Calls waiting for their response. */
  readonly #pending = new PendingCalls();
  /** Routes of the processes followed, by `processId`. */
  readonly #routes = new Map<string, Route>();
  /** Routes asking to hold the server back; the socket is paused while there is any. */
  readonly #holders = new Set<Route>();
  /** Set once the connection is closed; nothing is sent or registered after. */
  #closed: ClosedReason | undefined;
  /** The server's `limits.maxMessageBytes`, once `initialize` said it. */
  #maxMessageBytes = Number.POSITIVE_INFINITY;
  /** Called on a drop; unset, a drop closes the connection for good. */
  #onDrop: (() => void) | undefined;
  /** Called once when the connection closes for good. */
  readonly #onClosed: ((error: ConnectionClosedError) => void)[] = [];
  /** With `acknowledgeOutput`: the acknowledgements of the processes no route follows. */
  #unrouted: UnroutedAcknowledgements | undefined;

  /** A connection over `socket`, which must be open. */
  constructor(socket: WebSocketLike) {
    this.#canPause = typeof socket.pause === "function" && typeof socket.resume === "function";
    this.#socket = socket;
    this.#socketClosed = this.#listen(socket);
  }

  /** Whether the socket can pause, so that {@link hold} holds the server back. */
  get canHold(): boolean {
    return this.#canPause;
  }

  /** Whether the connection is closed for good. */
  get isClosed(): boolean {
    return this.#closed !== undefined;
  }

  /** Whether a socket carries every call now (not detached, resuming or closed). */
  get isAttached(): boolean {
    return this.#phase === "attached";
  }

  /** Sets the largest message the server accepts, in bytes. */
  setMaxMessageBytes(bytes: number): void {
    this.#maxMessageBytes = bytes;
  }

  /**
   * Turns drops into a detached connection that `handler` reconnects
   * (see the module doc); without it, a drop closes the connection.
   */
  setDropHandler(handler: () => void): void {
    this.#onDrop = handler;
  }

  /** Calls `listener` once, with the error calls now get, when the connection closes for good. */
  onClosed(listener: (error: ConnectionClosedError) => void): void {
    this.#onClosed.push(listener);
  }

  /**
   * With `acknowledgeOutput`: acknowledges the output of processes no route
   * follows (started with a raw `process/start`) every `bytes` bytes, so
   * the server may evict it beyond its retention as it would without
   * acknowledgements instead of stopping those processes.
   */
  acknowledgeUnrouted(bytes: number): void {
    this.#unrouted = new UnroutedAcknowledgements(bytes);
  }

  /**
   * Sends request `method` and resolves with its result. Rejects with an
   * {@link ExecError} when the server answers with an error, a
   * {@link ConnectionLostError} when the socket drops before the answer
   * (unless the call is sent again, see {@link CallOptions.retry}), a
   * {@link ConnectionClosedError} when the connection closes first, a
   * {@link MessageTooLargeError} when the request is over the server's limit.
   * While the connection is detached or resuming, the call waits to be sent.
   */
  call<M extends RequestMethod>(method: M, params: RequestParams<M>, options: CallOptions = {}): Promise<RequestResult<M>> {
    if (this.#closed !== undefined) {
      return Promise.reject(this.closedError());
    }
    const internal = options.internal ?? false;
    if (internal && this.#phase !== "resuming") {
      // The resume this call belongs to has failed already.
      return Promise.reject(new ConnectionLostError(method));
    }
    const id = this.#pending.newId();
    const text = JSON.stringify({ jsonrpc: "2.0", id, method, params });
    const tooLarge = this.#checkSize(text);
    if (tooLarge !== undefined) {
      return Promise.reject(tooLarge);
    }
    return new Promise<RequestResult<M>>((resolve, reject) => {
      const call: PendingCall = {
        method,
        text,
        retry: !internal && (options.retry ?? retryByDefault(method, params)),
        sent: false,
        resolve: resolve as (result: unknown) => void,
        reject,
      };
      this.#pending.add(id, call);
      if (this.#phase === "attached" || internal) {
        call.sent = true;
        this.#send(text);
      }
    });
  }

  /**
   * Sends a notification. While detached or resuming only an internal one
   * goes out (the handshake's `initialized`, the replay's acknowledgements);
   * others are dropped (only acknowledgements are, and the replay sends them
   * again). Throws the closed error once the connection is closed, and a
   * {@link ConnectionLostError} for an internal one whose resume failed.
   */
  notify<M extends keyof ClientNotificationMap>(method: M, params: ClientNotificationMap[M], internal = false): void {
    if (this.#closed !== undefined) {
      throw this.closedError();
    }
    if (this.#phase === "attached" || (internal && this.#phase === "resuming")) {
      this.#send(JSON.stringify({ jsonrpc: "2.0", method, params }));
    } else if (internal) {
      throw new ConnectionLostError(method);
    }
  }

  /** Acknowledges `processId`'s events up to `seq`, when the socket carries calls; never throws. */
  acknowledge(processId: string, seq: number): void {
    if (this.#closed === undefined && this.#phase === "attached") {
      this.#send(JSON.stringify({ jsonrpc: "2.0", method: "process/ack", params: { processId, seq } }));
    }
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
   * Only on an attached socket: a resume must read its answers.
   */
  hold(route: Route): void {
    if (this.#phase !== "attached" || this.#holders.has(route)) {
      return;
    }
    this.#holders.add(route);
    if (this.#holders.size === 1) {
      this.#socket?.pause?.();
    }
  }

  /** Ends {@link hold} for `route`; the socket reads again when no route holds. */
  release(route: Route): void {
    if (this.#holders.delete(route) && this.#holders.size === 0) {
      this.#socket?.resume?.();
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
   * Takes `socket` (open) as the detached connection's new socket: only
   * internal calls go out on it until {@link finishResume}. Returns `false`
   * (and closes the socket) when the connection is not detached.
   */
  beginResume(socket: WebSocketLike): boolean {
    if (this.#phase !== "detached") {
      socket.close(1000, "client closed");
      return false;
    }
    this.#phase = "resuming";
    this.#socket = socket;
    this.#socketClosed = this.#listen(socket);
    return true;
  }

  /** The routes followed now, for the replay of a resume. */
  routes(): Route[] {
    return [...this.#routes.values()];
  }

  /**
   * The resume is done: sends every waiting call, in the order they were
   * made, and carries every call again. Returns `false` when the resume's
   * socket dropped meanwhile.
   */
  finishResume(): boolean {
    if (this.#phase !== "resuming") {
      return false;
    }
    this.#phase = "attached";
    for (const call of this.#pending.takeUnsent()) {
      this.#send(call.text);
    }
    if (this.#phase !== "attached") {
      return false;
    }
    for (const route of [...this.#routes.values()]) {
      route.connectionResumed();
    }
    return true;
  }

  /** The resume on `socket` failed: detaches it (when it is still the socket) and closes it. */
  abandonResume(socket: WebSocketLike): void {
    if (this.#socket === socket && this.#phase === "resuming") {
      this.#detach();
    }
    if (socket.readyState !== WEBSOCKET_CLOSED) {
      socket.close(1000, "resume failed");
    }
  }

  /** Closes the connection for good because `message` (e.g. reconnecting gave up), caused by `cause`. */
  fail(message: string, cause?: Error): void {
    this.#shutdown({ message, cause });
    const socket = this.#socket;
    if (socket !== undefined && socket.readyState !== WEBSOCKET_CLOSED) {
      socket.close(1000, "client closed");
    }
  }

  /**
   * Closes the connection: every waiting call rejects with a
   * {@link ConnectionClosedError}, and the promise resolves once the socket
   * (if there is one) has closed.
   */
  close(): Promise<void> {
    this.#shutdown({ message: "the connection to the exec-server was closed by the client", cause: undefined });
    const socket = this.#socket;
    if (socket === undefined) {
      return Promise.resolve();
    }
    if (socket.readyState !== WEBSOCKET_CLOSED) {
      socket.close(1000, "client closed");
    }
    return this.#socketClosed;
  }

  /** Listens to `socket`; resolves when it has closed. Events of a socket that is no longer the current one are ignored. */
  #listen(socket: WebSocketLike): Promise<void> {
    socket.addEventListener("message", (event) => {
      if (socket === this.#socket) {
        this.#onFrame(event.data);
      }
    });
    // Errors are followed by a close event, which does the work.
    socket.addEventListener("error", () => {});
    return new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        if (socket === this.#socket) {
          this.#onSocketClosed(event.code, event.reason);
        }
        resolve();
      });
    });
  }

  /** The current socket closed: a close for good, or a drop (see the module doc). */
  #onSocketClosed(code: number, reason: string): void {
    if (this.#closed !== undefined) {
      return;
    }
    const detail = `code ${code}${reason === "" ? "" : `: ${reason}`}`;
    if (code === SESSION_RESUMED_CLOSE_CODE) {
      this.#shutdown({ message: `the session was resumed by another connection, which closed this one (${detail})`, cause: undefined });
    } else if (this.#onDrop === undefined) {
      this.#shutdown({ message: `the connection to the exec-server closed (${detail})`, cause: undefined });
    } else {
      this.#detach();
    }
  }

  /** The socket dropped: fails the calls that cannot be sent again, keeps the rest, and starts the reconnector. */
  #detach(): void {
    const wasResuming = this.#phase === "resuming";
    this.#phase = "detached";
    this.#socket = undefined;
    this.#holders.clear();
    for (const call of this.#pending.dropped()) {
      call.reject(new ConnectionLostError(call.method));
    }
    for (const route of [...this.#routes.values()]) {
      route.connectionDropped();
    }
    // A resume that drops is the reconnector's own failure: it is already
    // running and tries again.
    if (!wasResuming) {
      this.#onDrop?.();
    }
  }

  /** Sends one text frame; a socket that refuses is a dropped one. */
  #send(text: string): void {
    const socket = this.#socket;
    if (socket === undefined) {
      return;
    }
    try {
      socket.send(text);
    } catch (error) {
      socket.close();
      if (this.#onDrop === undefined) {
        this.#shutdown({ message: `sending to the exec-server failed: ${String(error)}`, cause: undefined });
      } else {
        this.#detach();
      }
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
    this.#phase = "closed";
    const pending = this.#pending.drain();
    const routes = [...this.#routes.values()];
    this.#routes.clear();
    this.#holders.clear();
    // A paused socket would never read the server's close frame.
    this.#socket?.resume?.();
    for (const call of pending) {
      call.reject(this.closedError());
    }
    for (const route of routes) {
      route.connectionClosed();
    }
    for (const listener of this.#onClosed.splice(0)) {
      listener(this.closedError());
    }
  }

  /** Closes the connection because the server broke the protocol in a way that could hide a response. */
  #violation(message: string): void {
    this.fail(`the connection to the exec-server was closed: ${message}`, new ProtocolError(message));
  }

  /** Handles one incoming frame. */
  #onFrame(data: unknown): void {
    if (this.#closed !== undefined) {
      return;
    }
    const incoming = parseIncoming(data);
    switch (incoming.kind) {
      case "violation":
        this.#violation(incoming.message);
        return;
      case "ignored":
        return;
      case "notification": {
        const route = this.#routes.get(incoming.processId);
        if (route === undefined) {
          const chunk = incoming.method === "process/output" ? incoming.params.chunk : undefined;
          const seq = this.#unrouted?.received(incoming.processId, incoming.seq, chunk);
          if (seq !== undefined) {
            this.acknowledge(incoming.processId, seq);
          }
          return;
        }
        const handler = route[incoming.method] as (params: unknown) => void;
        handler.call(route, incoming.params);
        return;
      }
      case "result":
      case "error": {
        const call = this.#pending.take(incoming.id);
        if (call === undefined) {
          if (!this.#pending.issued(incoming.id)) {
            this.#violation(`a response to id ${incoming.id}, which no request of this client had`);
          }
          return;
        }
        if (incoming.kind === "error") {
          call.reject(new ExecError(call.method, incoming.code, incoming.message, incoming.data));
        } else {
          call.resolve(incoming.result);
        }
        return;
      }
    }
  }
}
