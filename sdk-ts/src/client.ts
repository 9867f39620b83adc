/**
 * {@link ExecClient}: connecting over WebSocket with the `initialize` /
 * `initialized` handshake, reconnecting after drops, typed requests from the
 * generated method map, starting processes, connection states, closing.
 *
 * @module
 */

import { acknowledgeEveryBytes } from "./acknowledge.js";
import { Connection } from "./connection.js";
import { ConnectError, ConnectionClosedError, ProtocolError } from "./errors.js";
import type { InitializeResponse } from "./generated/InitializeResponse.js";
import type { RequestMethod, RequestParams, RequestResult } from "./generated/methods.js";
import type { ProcessStartParams } from "./generated/ProcessStartParams.js";
import type { TerminalSize } from "./generated/TerminalSize.js";
import { handshake } from "./handshake.js";
import { RemoteProcess } from "./process.js";
import { type ReconnectOptions, Reconnector, reconnectPolicy } from "./reconnect.js";
import { ProcessRoute, type RouteLimits } from "./route.js";
import { type ConnectionState, type ConnectionStateListener, StateEvents } from "./state.js";
import { type WebSocketConstructor, type WebSocketLike, openWebSocket } from "./transport.js";

/** How {@link ExecClient.connect} connects and buffers output. Every field is optional. */
export interface ConnectOptions {
  /** Sent as `initialize`'s `clientName`, for the server's logs. Default `"exec-server-client"`. */
  clientName?: string | undefined;
  /** Sent as `initialize`'s `clientVersion`. Default: none. */
  clientVersion?: string | undefined;
  /**
   * The connection token, sent as `Authorization: Bearer TOKEN` with the
   * upgrade. Needs a WebSocket class that takes headers as its third
   * constructor argument, as `ws` does; browsers cannot send it.
   */
  token?: string | undefined;
  /**
   * For `wss://` in Node: the PEM text of the CA certificates the server's
   * certificate must chain to (e.g. `readFileSync("ca.pem", "utf8")`),
   * trusted instead of Node's bundled roots, for this client and its
   * reconnects. Without it Node's roots apply, plus those of the
   * `NODE_EXTRA_CA_CERTS` file, which Node reads once at start-up (the
   * way to trust a private CA in a program that cannot pass this option).
   * Needs a WebSocket class that takes options as its third constructor
   * argument, as `ws` does; browsers trust their own store.
   */
  ca?: string | undefined;
  /** How long opening the WebSocket and the handshake may take, in milliseconds. Default 10000. */
  connectTimeoutMs?: number | undefined;
  /**
   * The WebSocket class: any WHATWG-compatible one (a browser's
   * `WebSocket`, undici's). Default: the `ws` package's, loaded on first use.
   */
  WebSocket?: WebSocketConstructor | undefined;
  /**
   * Output bytes buffered per process before the server is held back (or,
   * with nobody iterating the output, before output is left on the server
   * and read back later). Default 4 MiB.
   */
  outputBufferBytes?: number | undefined;
  /**
   * How long the server is held back for a consumer that takes no output,
   * in milliseconds, while the rest of the connection waits too. After it,
   * the consumer's further output is read back with `process/read` when it
   * catches up, and what the server no longer retains is reported as lost.
   * Holding back needs a WebSocket class with `pause()`, as `ws` has;
   * with another, output past `outputBufferBytes` is always left on the
   * server and read back. Default 2000.
   */
  outputStallTimeoutMs?: number | undefined;
  /**
   * Reconnecting after a dropped connection (a reset, an end without a close
   * frame, a failed read or write, any close the client did not ask for
   * other than code 4000). On by default (`true`, or the
   * {@link ReconnectOptions} to tune it); `false` turns it off, and a drop
   * then closes the client as a close does.
   *
   * On, the client asks the server for `acknowledgeOutput` and acknowledges
   * output as it receives it. After a drop it reconnects to the same URL
   * with the same token, resumes the session, reads back each process's
   * output from the last byte it received, and sends again the
   * `process/start` and `process/write` calls the drop left unanswered;
   * other calls left unanswered reject with a `ConnectionLostError`, and
   * calls made meanwhile wait. It gives up when the session's TTL
   * (`limits.sessionTtlMs`, 0 over a server that keeps no sessions: then it
   * never reconnects) has passed since the drop, or `maxElapsedMs`, and
   * closes (`ConnectionClosedError`). See
   * {@link ExecClient.onConnectionStateChange}.
   */
  reconnect?: boolean | ReconnectOptions | undefined;
  /**
   * Ask the server for binary output frames (`initialize`'s
   * `binaryOutput`): each `process/output` then comes as one binary
   * WebSocket message with the raw bytes, skipping base64 and JSON on both
   * ends. A process's output reads the same either way; a server that does
   * not know binary frames answers with text. Default `true`; `false`
   * keeps every message JSON text.
   */
  binaryOutput?: boolean | undefined;
}

/**
 * How {@link ExecClient.spawn} starts a process. Defaults, where the wire
 * needs a value the server cannot choose:
 * - `cwd` is `/`: the client's own working directory means nothing on the
 *   server's machine;
 * - the environment is the server's, as `child_process.spawn` gives a
 *   child its parent's: the server is the child's parent on that machine.
 *   A given `env` replaces it whole (again as in `child_process`), unless
 *   `inheritEnv` is true, which applies `env` over the server's. It is never
 *   this client's `process.env`, which belongs to another machine and may
 *   hold secrets;
 * - pipes (streams `stdout` and `stderr`), stdin from `/dev/null`, unless
 *   `tty` or `pipeStdin`;
 * - a fresh unique `processId`.
 */
export interface SpawnOptions {
  /** Program and arguments; `argv[0]` is looked up in the child's `PATH` when it has no `/`. */
  argv: string[];
  /** Working directory: an absolute path on the server. Default `/`. */
  cwd?: string | undefined;
  /** The child's whole environment, or variables set over the server's with `inheritEnv`. Default: the server's environment. */
  env?: Record<string, string> | undefined;
  /** Start from the server's environment and apply `env` over it. Default: true without `env`, false with it. */
  inheritEnv?: boolean | undefined;
  /** Run on a new pseudo-terminal (one stream, `pty`; writable stdin). Default false. */
  tty?: boolean | undefined;
  /** Initial terminal size with `tty`. Default 24 rows by 80 columns. */
  size?: TerminalSize | undefined;
  /** Keep a pipe process's stdin open for {@link RemoteProcess.write}. Default false. */
  pipeStdin?: boolean | undefined;
  /** Kill the process tree after this many milliseconds; its exit then reports `reason: "timedOut"`. Default: none. */
  timeoutMs?: number | undefined;
  /** The process's handle, unique within the connection. Default: a fresh unique id. */
  processId?: string | undefined;
}

/** Defaults of {@link ConnectOptions}. */
const DEFAULT_CLIENT_NAME = "exec-server-client";
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_OUTPUT_BUFFER_BYTES = 4 * 1024 * 1024;
const DEFAULT_OUTPUT_STALL_TIMEOUT_MS = 2_000;

/** Numbers the fallback process ids where `crypto.randomUUID` is missing. */
let processCounter = 0;

/** A fresh `processId`. */
function newProcessId(): string {
  const crypto = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (crypto?.randomUUID !== undefined) {
    return crypto.randomUUID();
  }
  processCounter += 1;
  return `process-${Date.now().toString(36)}-${processCounter}-${Math.random().toString(36).slice(2)}`;
}

/** The `ws` package's WebSocket class, loaded when first needed so a browser bundle does without it. */
async function defaultWebSocket(): Promise<WebSocketConstructor> {
  const ws = await import("ws");
  return ws.WebSocket;
}

/**
 * A connection to an exec-server, initialized and ready for `process/*`
 * and `fs/*` calls.
 *
 * ```ts
 * const client = await ExecClient.connect("ws://127.0.0.1:7000");
 * const proc = await client.spawn({ argv: ["ls", "-l"] });
 * for await (const chunk of proc.output) process.stdout.write(chunk.data);
 * console.log(await proc.wait());
 * await client.close();
 * ```
 *
 * Only processes started with {@link ExecClient.spawn} have their
 * notifications routed to a {@link RemoteProcess}; a process started with a
 * raw `request("process/start", ...)` is read with `process/read`.
 */
export class ExecClient {
  /** The server's answer to `initialize`: protocol version, session id, server name and version, platform, limits. */
  readonly initializeResponse: InitializeResponse;
  /** The JSON-RPC connection. */
  readonly #connection: Connection;
  /** How processes buffer output. */
  readonly #limits: RouteLimits;
  /** The connection's state and its listeners. */
  readonly #state = new StateEvents();

  /** @internal Use {@link ExecClient.connect}. */
  private constructor(connection: Connection, initializeResponse: InitializeResponse, limits: RouteLimits) {
    this.#connection = connection;
    this.initializeResponse = initializeResponse;
    this.#limits = limits;
    connection.onClosed((error) => this.#state.set({ status: "closed", error }));
  }

  /**
   * Connects to `url` (`ws://HOST:PORT` or `wss://`), sends `initialize`,
   * checks the protocol version, sends `initialized`, and resolves to a
   * ready client.
   *
   * Rejects with a `ConnectError` when the WebSocket cannot be opened (an
   * HTTP 401 for a missing or wrong token, 403 for a refused `Origin`),
   * closes before the handshake is done, or when all this takes longer
   * than `connectTimeoutMs`; an `ExecError` when
   * the server refuses `initialize`; a `ProtocolError` when it speaks
   * another protocol version. Connecting is not retried: only a
   * connection that was up reconnects.
   */
  static async connect(url: string, options: ConnectOptions = {}): Promise<ExecClient> {
    const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new Error(`no connection and handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const reconnect = options.reconnect ?? true;
    const clientName = options.clientName ?? DEFAULT_CLIENT_NAME;
    try {
      const WebSocketClass = options.WebSocket ?? (await defaultWebSocket());
      const open = (signal: AbortSignal): Promise<WebSocketLike> => openWebSocket(WebSocketClass, url, options.token, signal, options.ca);
      const connection = new Connection(await open(deadline.signal));
      let response: InitializeResponse;
      try {
        response = await handshake(
          connection,
          {
            clientName,
            clientVersion: options.clientVersion,
            acknowledgeOutput: reconnect !== false,
            binaryOutput: options.binaryOutput !== false,
          },
          url,
          deadline.signal,
          false,
        );
      } catch (error) {
        await connection.close();
        if (error instanceof ConnectionClosedError) {
          // Closed before the handshake completed: connecting failed.
          throw new ConnectError(url, `${error.message} during the handshake`, undefined, { cause: error });
        }
        throw error;
      }
      const acknowledgeEvery =
        reconnect === false ? undefined : acknowledgeEveryBytes(response.limits.retainedOutputBytesPerProcess);
      if (acknowledgeEvery !== undefined) {
        connection.acknowledgeUnrouted(acknowledgeEvery);
      }
      const client = new ExecClient(connection, response, {
        outputBufferBytes: options.outputBufferBytes ?? DEFAULT_OUTPUT_BUFFER_BYTES,
        outputStallTimeoutMs: options.outputStallTimeoutMs ?? DEFAULT_OUTPUT_STALL_TIMEOUT_MS,
        acknowledgeEveryBytes: acknowledgeEvery,
      });
      // A server that keeps no session after a drop (TTL 0, as an older
      // server reports none) has nothing to resume.
      const sessionTtlMs = response.limits.sessionTtlMs ?? 0;
      if (reconnect !== false && sessionTtlMs > 0) {
        const target = {
          url,
          open,
          connectTimeoutMs: timeoutMs,
          clientName,
          clientVersion: options.clientVersion,
          binaryOutput: options.binaryOutput !== false,
          sessionId: response.sessionId,
          sessionTtlMs,
        };
        new Reconnector(connection, target, reconnectPolicy(reconnect === true ? {} : reconnect), client.#state);
      }
      return client;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Whether the connection is closed for good (by {@link ExecClient.close},
   * the server, another connection resuming the session, reconnecting
   * giving up, or a protocol violation). A client that is reconnecting is
   * not closed.
   */
  get isClosed(): boolean {
    return this.#connection.isClosed;
  }

  /** The connection's state now: `connected`, `reconnecting` or `closed` (see {@link ConnectionState}). */
  get connectionState(): ConnectionState {
    return this.#state.current;
  }

  /**
   * Calls `listener` with each new {@link ConnectionState}: `reconnecting`
   * at each attempt after a drop, `connected` once the session is resumed
   * (its output replayed, the waiting calls sent), `closed` once, at the
   * end. Returns the function that removes the listener.
   */
  onConnectionStateChange(listener: ConnectionStateListener): () => void {
    return this.#state.subscribe(listener);
  }

  /**
   * Sends request `method` with `params` and resolves with its result, all
   * typed by the protocol's generated method map: a wrong method name,
   * wrong params or a wrong use of the result does not compile.
   *
   * Rejects with an `ExecError` (the JSON-RPC `code`, the protocol's
   * `kind`, `data`) when the server answers with an error, and a
   * `ConnectionClosedError` when the connection closes for good before the
   * answer. When it drops and reconnects: `process/start`, and
   * `process/write` with a `writeId`, are sent again and applied once; any
   * other call the drop left unanswered rejects with a
   * `ConnectionLostError` (it may or may not have run). With reconnecting
   * on, the output of a process started here (not with `spawn`) is
   * acknowledged as it arrives, so the server evicts it beyond its
   * retention as it would without `acknowledgeOutput`.
   */
  request<M extends RequestMethod>(method: M, params: RequestParams<M>): Promise<RequestResult<M>> {
    return this.#connection.call(method, params);
  }

  /**
   * Starts a process (see {@link SpawnOptions} for the defaults) and
   * resolves once the server confirmed it, with its output routed to the
   * returned {@link RemoteProcess}.
   *
   * Rejects with an `ExecError`: kind `spawnFailed` (no such program, a
   * `cwd` that does not exist), `invalidPath` (a relative `cwd`),
   * `processExists`, `limitExceeded`; or a `ConnectionClosedError`. A start
   * that a drop left unanswered is sent again after the reconnect, and the
   * server starts the process once.
   */
  async spawn(options: SpawnOptions): Promise<RemoteProcess> {
    const processId = options.processId ?? newProcessId();
    const params: ProcessStartParams = {
      processId,
      argv: options.argv,
      cwd: options.cwd ?? "/",
      env: options.env ?? {},
      tty: options.tty ?? false,
      inheritEnv: options.inheritEnv ?? options.env === undefined,
      ...(options.size === undefined ? {} : { size: options.size }),
      ...(options.pipeStdin === undefined ? {} : { pipeStdin: options.pipeStdin }),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    };
    const route = new ProcessRoute(processId, this.#connection, this.#limits);
    // Registered before the request: the process's first notifications may
    // be read in the same turn as the response.
    const routed = this.#connection.registerRoute(processId, route);
    try {
      const response = await this.#connection.call("process/start", params);
      if (!routed) {
        // Another live process of this client has the id, so the server
        // should have answered `processExists`.
        throw new ProtocolError(`the server started a second process with the processId ${processId}`);
      }
      return new RemoteProcess({ connection: this.#connection, route, processId, pid: response.pid });
    } catch (error) {
      if (routed) {
        this.#connection.removeRoute(processId, route);
      }
      throw error;
    }
  }

  /**
   * Closes the connection and resolves once the socket is closed. Every
   * call still waiting rejects with a `ConnectionClosedError`, and so does
   * every later one. The server ends the session when its TTL
   * (`limits.sessionTtlMs`) has passed, and kills its processes then
   * (at once when the TTL is 0).
   */
  close(): Promise<void> {
    return this.#connection.close();
  }
}
