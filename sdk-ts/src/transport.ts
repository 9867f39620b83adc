/**
 * The WebSocket transport: the shape of WebSocket class this package needs
 * ({@link WebSocketLike}), opening one with a token, and turning incoming
 * frames into JSON texts. The `ws` package is the default in Node; any
 * WHATWG-compatible class (a browser's `WebSocket`, undici's) works too.
 *
 * @module
 */

import { ConnectError } from "./errors.js";

/** `readyState` of an open WebSocket (the WHATWG constant `OPEN`). */
export const WEBSOCKET_OPEN = 1;

/** `readyState` of a closed WebSocket (the WHATWG constant `CLOSED`). */
export const WEBSOCKET_CLOSED = 3;

/**
 * What this package uses of a WebSocket: the WHATWG interface
 * (`addEventListener`, `send`, `close`, `readyState`, `binaryType`), and
 * `pause()`/`resume()` when the class has them (the `ws` package does), to
 * hold the server back while a consumer is slow.
 */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** How binary frames are delivered; this package sets `"arraybuffer"`. */
  binaryType: string;
  /** Sends one text frame. */
  send(data: string): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** The connection is open. */
  addEventListener(type: "open", listener: (event: unknown) => void): void;
  /** A frame arrived: `data` is a string for a text frame, an `ArrayBuffer` for a binary one. */
  addEventListener(type: "message", listener: (event: { readonly data: unknown }) => void): void;
  /** Something failed (`ws` puts the reason in `message`; browsers say nothing). */
  addEventListener(type: "error", listener: (event: unknown) => void): void;
  /** The connection is closed. */
  addEventListener(type: "close", listener: (event: { readonly code: number; readonly reason: string }) => void): void;
  /** Stops reading from the network (the `ws` package); absent in browsers. */
  pause?(): void;
  /** Reads from the network again after {@link pause}. */
  resume?(): void;
}

/**
 * Options this package passes as a WebSocket constructor's third argument:
 * the `ws` package's client options. A WHATWG class ignores them, so a
 * browser cannot send a token (browsers cannot set request headers).
 */
export interface WebSocketClientOptions {
  /** Extra headers of the upgrade request: `Authorization: Bearer TOKEN` when a token is set. */
  headers?: Record<string, string>;
  /**
   * For `wss://`: the PEM text of the CA certificates the server's
   * certificate must chain to (`ws` hands it to Node's `tls.connect`,
   * where it replaces the bundled roots).
   */
  ca?: string;
}

/**
 * A WebSocket class: `ws`'s `WebSocket`, a browser's, or any class with the
 * WHATWG constructor `(url, protocols)` (a third `options` argument is
 * passed, and used by `ws`).
 */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
  options?: WebSocketClientOptions,
) => WebSocketLike;

/**
 * Creates a WebSocket to `url` and resolves once it is open, sending
 * `token` and trusting only the CA certificates of `ca` (PEM) for `wss://`
 * when given. Rejects with a {@link ConnectError} when it fails to open
 * (with the HTTP `status` of a refused upgrade, when the class reports it
 * in its error message as `ws` does; with Node's reason for a certificate
 * it does not trust) or when `signal` aborts first.
 */
export async function openWebSocket(
  WebSocketClass: WebSocketConstructor,
  url: string,
  token: string | undefined,
  signal: AbortSignal,
  ca?: string,
): Promise<WebSocketLike> {
  const options: WebSocketClientOptions = {
    ...(token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } }),
    ...(ca === undefined ? {} : { ca }),
  };
  let socket: WebSocketLike;
  try {
    socket = new WebSocketClass(url, undefined, options);
  } catch (error) {
    throw new ConnectError(url, describe(error), undefined, { cause: error });
  }
  socket.binaryType = "arraybuffer";
  await new Promise<void>((resolve, reject) => {
    let failure: unknown;
    const onAbort = (): void => {
      socket.close();
      reject(new ConnectError(url, describe(signal.reason), undefined, { cause: signal.reason }));
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    socket.addEventListener("open", () => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
    socket.addEventListener("error", (event) => {
      failure = event;
    });
    socket.addEventListener("close", (event) => {
      signal.removeEventListener("abort", onAbort);
      const message = failure === undefined ? `closed before opening (code ${event.code})` : describe(failure);
      reject(new ConnectError(url, message, httpStatus(message), { cause: failure }));
    });
  });
  return socket;
}

/**
 * The JSON text of an incoming frame: a text frame as is, a binary frame
 * holding JSON (one that starts with `{`; see `incoming.ts` for binary
 * output frames) decoded as UTF-8. `undefined` for a frame of another type.
 */
export function frameText(data: unknown): string | undefined {
  if (typeof data === "string") {
    return data;
  }
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    return new TextDecoder().decode(data);
  }
  return undefined;
}

/** A readable description of an error, an error event or an abort reason. */
function describe(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" && error.message !== "") {
    return error.message;
  }
  return "the WebSocket failed";
}

/** The HTTP status of a refused upgrade in `ws`'s message (`Unexpected server response: 401`). */
function httpStatus(message: string): number | undefined {
  const match = /server response: (\d{3})/.exec(message);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
