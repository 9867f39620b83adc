/**
 * {@link Reconnector}: after a drop, opens a new WebSocket to the same URL
 * (same token), resumes the session (`initialize` with `resumeSessionId` and
 * `acknowledgeOutput`, then `initialized`), replays every live process (each
 * route reads back what the drop lost, then acknowledges), and lets the
 * calls that waited go out. Attempts follow {@link Backoff}; when they run
 * out, or the server no longer has the session (`unknownSession`), the
 * connection closes for good. Connection states are announced on the way.
 *
 * @module
 */

import { Backoff, type ReconnectPolicy } from "./backoff.js";
import type { Connection } from "./connection.js";
import { ExecError, ProtocolError } from "./errors.js";
import { handshake } from "./handshake.js";
import type { StateEvents } from "./state.js";
import type { WebSocketLike } from "./transport.js";

/**
 * How the client reconnects after a dropped connection (`ConnectOptions.reconnect`).
 * Every field is optional; times are in milliseconds.
 */
export interface ReconnectOptions {
  /** Wait before the second attempt after a drop (the first goes at once). Default 100. */
  initialDelayMs?: number | undefined;
  /** Longest wait between attempts; the wait doubles up to it. Default 2000. */
  maxDelayMs?: number | undefined;
  /**
   * Longest time to keep trying after a drop. Default: no limit of its
   * own; the client always gives up once the session's TTL
   * (`limits.sessionTtlMs`) has passed since the drop, since the server has
   * ended the session by then.
   */
  maxElapsedMs?: number | undefined;
}

/** The policy of {@link ReconnectOptions}, defaults applied. */
export function reconnectPolicy(options: ReconnectOptions): ReconnectPolicy {
  return {
    initialDelayMs: options.initialDelayMs ?? 100,
    maxDelayMs: options.maxDelayMs ?? 2_000,
    maxElapsedMs: options.maxElapsedMs ?? Number.POSITIVE_INFINITY,
  };
}

/** Where and as whom to reconnect. */
export interface ResumeTarget {
  /** The URL, for errors. */
  readonly url: string;
  /** Opens a new WebSocket to the URL, with the token; rejects when `signal` aborts first. */
  readonly open: (signal: AbortSignal) => Promise<WebSocketLike>;
  /** How long one attempt (opening and the handshake) may take, in milliseconds. */
  readonly connectTimeoutMs: number;
  /** `initialize`'s `clientName`. */
  readonly clientName: string;
  /** `initialize`'s `clientVersion`. */
  readonly clientVersion: string | undefined;
  /** Whether `initialize` asks for binary output frames. */
  readonly binaryOutput: boolean;
  /** The session to resume. */
  readonly sessionId: string;
  /** How long the server keeps the session after a drop, in milliseconds (`limits.sessionTtlMs`). */
  readonly sessionTtlMs: number;
}

/** Resolves after `ms` milliseconds with `true`, or with `false` as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal.aborted) {
      resolve(false);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Reconnects a connection each time it drops. */
export class Reconnector {
  /** The connection to reconnect. */
  readonly #connection: Connection;
  /** Where to. */
  readonly #target: ResumeTarget;
  /** When to try. */
  readonly #policy: ReconnectPolicy;
  /** Where the states go. */
  readonly #state: StateEvents;
  /** An attempt loop runs: a drop during its own resume is its own failure, not a new drop. */
  #running = false;
  /** Aborts when the connection closes for good: no more attempts. */
  readonly #stopped = new AbortController();

  /** Reconnects `connection` to `target` by `policy` from now on, announcing states on `state`. */
  constructor(connection: Connection, target: ResumeTarget, policy: ReconnectPolicy, state: StateEvents) {
    this.#connection = connection;
    this.#target = target;
    this.#policy = policy;
    this.#state = state;
    connection.onClosed(() => this.#stopped.abort());
    connection.setDropHandler(() => {
      if (!this.#running) {
        this.#running = true;
        void this.#run();
      }
    });
  }

  /** Attempts until one resumes the session, the attempts run out, or the connection closes. */
  async #run(): Promise<void> {
    const backoff = new Backoff(this.#policy, Date.now(), this.#target.sessionTtlMs);
    let lastError: Error | undefined;
    for (let attempt = 1; ; attempt += 1) {
      // The first attempt goes at once: most drops are a cut connection,
      // and the server is still there.
      const delay = attempt === 1 ? 0 : backoff.next(Date.now());
      if (delay === undefined) {
        this.#running = false;
        const why = lastError === undefined ? "" : `: ${lastError.message}`;
        this.#connection.fail(`the connection to the exec-server dropped and reconnecting gave up after ${attempt - 1} attempts${why}`, lastError);
        return;
      }
      this.#state.set({ status: "reconnecting", attempt, lastError });
      if (!(await sleep(delay, this.#stopped.signal))) {
        return;
      }
      try {
        if (await this.#attempt(backoff.giveUpAt)) {
          // Synchronously after the resume: a drop from now on is a new one.
          this.#running = false;
          this.#state.set({ status: "connected" });
          return;
        }
      } catch (error) {
        if (this.#connection.isClosed) {
          return;
        }
        if (error instanceof ExecError || error instanceof ProtocolError) {
          // The server refused to resume: `unknownSession` means the
          // session ended (its TTL ran out); nothing else will succeed.
          this.#running = false;
          this.#connection.fail(`the connection to the exec-server dropped and the session could not be resumed: ${error.message}`, error);
          return;
        }
        lastError = error instanceof Error ? error : new Error(String(error));
      }
    }
  }

  /**
   * One attempt: open, resume, replay, send what waited. Resolves `true`
   * when the connection is attached again, `false` when its new socket
   * dropped at the very end; rejects with why it failed.
   */
  async #attempt(giveUpAt: number): Promise<boolean> {
    const timeoutMs = Math.max(1, Math.min(this.#target.connectTimeoutMs, giveUpAt - Date.now()));
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error(`no reconnection within ${timeoutMs} ms`)), timeoutMs);
    const onStop = (): void => deadline.abort(new Error("the client closed"));
    this.#stopped.signal.addEventListener("abort", onStop, { once: true });
    try {
      const socket = await this.#target.open(deadline.signal);
      if (!this.#connection.beginResume(socket)) {
        throw this.#connection.closedError();
      }
      try {
        const target = this.#target;
        const resumed = await handshake(
          this.#connection,
          {
            clientName: target.clientName,
            clientVersion: target.clientVersion,
            acknowledgeOutput: true,
            binaryOutput: target.binaryOutput,
            resumeSessionId: target.sessionId,
          },
          target.url,
          deadline.signal,
          true,
        );
        if (resumed.sessionId !== target.sessionId) {
          throw new ProtocolError(`the server resumed session ${resumed.sessionId} instead of ${target.sessionId}`);
        }
        clearTimeout(timer);
        // The replay is not timed: each read ends with the socket, and
        // what there is to read is bounded by the server's retention.
        await Promise.all(this.#connection.routes().map((route) => route.resumed()));
        return this.#connection.finishResume();
      } catch (error) {
        this.#connection.abandonResume(socket);
        throw error;
      }
    } finally {
      clearTimeout(timer);
      this.#stopped.signal.removeEventListener("abort", onStop);
    }
  }
}
