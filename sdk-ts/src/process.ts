/**
 * {@link RemoteProcess}: a process started with {@link ExecClient.spawn}:
 * its output as an async iterable, complete and in order, and its controls
 * (write, close stdin, resize, signal, terminate, wait).
 *
 * @module
 */

import { encodeBase64, toBytes } from "./base64.js";
import type { Connection } from "./connection.js";
import { ConnectionLostError, WriteRejectedError } from "./errors.js";
import type { Signal } from "./generated/Signal.js";
import type { ExitStatus, ProcessOutput } from "./output.js";
import type { ProcessRoute } from "./route.js";

/** Largest piece one `process/write` carries, in bytes; longer writes are split, so a write never runs into the server's message limit. */
const WRITE_PIECE_BYTES = 1024 * 1024;

/** How often a write is retried while the server answers `starting` (the process is not ready for input yet). */
const WRITE_RETRIES = 100;

/** Milliseconds between those retries. */
const WRITE_RETRY_DELAY_MS = 20;

/** What a {@link RemoteProcess} is made of; built by {@link ExecClient.spawn}. */
export interface RemoteProcessParts {
  /** The connection the process runs on. */
  readonly connection: Connection;
  /** The route following the process's notifications. */
  readonly route: ProcessRoute;
  /** The process's `processId`. */
  readonly processId: string;
  /** The OS pid from the `process/start` response. */
  readonly pid: number;
}

/**
 * A process running on the server.
 *
 * Read its output by iterating {@link RemoteProcess.output} (once); every
 * chunk arrives exactly once and in order, and the iteration ends after the
 * server's `process/closed`. A consumer that falls behind is caught up from
 * the server's retained output. With reconnecting on (the default), the
 * server keeps the output this client has not acknowledged, so a consumer
 * that iterates loses nothing, across reconnects too: the process waits for
 * it instead. Bytes are lost only when the server no longer retains them
 * (beyond `retainedOutputBytesPerProcess`, 1 MiB by default): output nobody
 * iterated while more than `outputBufferBytes` waited, or any output a
 * consumer fell behind on without acknowledgements. They are counted in
 * {@link RemoteProcess.droppedBytes}. Leaving the loop early (`break`)
 * discards the rest of the output.
 *
 * Dropping the object does not stop the process; the server kills it when
 * its session ends (when the connection closes, after the session's TTL
 * `limits.sessionTtlMs`), or call {@link RemoteProcess.terminate}.
 */
export class RemoteProcess {
  /** The process's protocol handle, unique within the connection. */
  readonly processId: string;
  /** The OS pid on the server's machine, for display and debugging. */
  readonly pid: number;
  /**
   * The output, in order, as `{ stream, data, seq }` chunks; the iteration
   * ends after the process's last output (`process/closed`). It can be
   * iterated once. A dropped connection does not end it: what the drop lost
   * is read back after the reconnect. It rejects with a
   * `ConnectionClosedError` when the connection closes for good first
   * (after what had arrived), and with the error of `process/read` when
   * catching up fails.
   */
  readonly output: AsyncIterable<ProcessOutput>;
  /** The connection the process runs on. */
  readonly #connection: Connection;
  /** Its buffer, back-pressure and exit. */
  readonly #route: ProcessRoute;
  /** Numbers the `writeId`s of this process's writes. */
  #writes = 0;

  /** @internal Made by {@link ExecClient.spawn}, not directly. */
  constructor(parts: RemoteProcessParts) {
    this.processId = parts.processId;
    this.pid = parts.pid;
    this.#connection = parts.connection;
    this.#route = parts.route;
    let iterated = false;
    this.output = {
      [Symbol.asyncIterator]: (): AsyncIterator<ProcessOutput> => {
        if (iterated) {
          throw new TypeError(`the output of process ${this.processId} can be iterated once`);
        }
        iterated = true;
        this.#route.startIterating();
        return this.#iterateOutput();
      },
    };
  }

  /**
   * Output bytes lost so far because the server no longer retained them
   * when this consumer caught up; 0 unless it stalled for long. It grows as
   * the iteration passes a gap: when it grew between two chunks, that many
   * bytes were lost between them.
   */
  get droppedBytes(): number {
    return this.#route.lostBytes;
  }

  /** How the process ended, once the exit arrived (like `wait()`, without waiting). */
  get exitStatus(): ExitStatus | undefined {
    return this.#route.exit;
  }

  /**
   * Writes to the process's stdin (the terminal for a PTY process): a
   * string as UTF-8, bytes as they are. Pieces of up to 1 MiB each carry a
   * `writeId`, so a retry (while the server answers `starting`, or after a
   * reconnect when a drop left the write unanswered) is applied once. Needs
   * `pipeStdin` or `tty`.
   *
   * Rejects with a {@link WriteRejectedError} (`stdinClosed`: stdin closed
   * or never open, or the process exited; `unknownProcess`), or a
   * `ConnectionClosedError`.
   */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = toBytes(data);
    for (let start = 0; start < bytes.byteLength; start += WRITE_PIECE_BYTES) {
      await this.#writePiece(bytes.subarray(start, start + WRITE_PIECE_BYTES));
    }
  }

  /**
   * Closes stdin: a pipe process reads EOF; a PTY process gets the
   * terminal's EOF character (usually ^D). Rejects with an `ExecError` of
   * kind `stdinClosed` for a pipe process started without `pipeStdin`.
   *
   * Like {@link RemoteProcess.resize}, {@link RemoteProcess.signal} and
   * {@link RemoteProcess.terminate}, it rejects with a `ConnectionLostError`
   * when the connection drops before the answer (it may or may not have
   * happened), and with a `ConnectionClosedError` when the connection is
   * closed for good.
   */
  async closeStdin(): Promise<void> {
    await this.#connection.call("process/closeStdin", { processId: this.processId });
  }

  /**
   * Resizes the process's terminal to `rows` by `cols` character cells
   * (each 1 to 65535); the child receives SIGWINCH. Rejects with an
   * `ExecError` of kind `notPty` for a pipe process.
   */
  async resize(rows: number, cols: number): Promise<void> {
    await this.#connection.call("process/resize", { processId: this.processId, rows, cols });
  }

  /** Sends `signal` (`interrupt`, `terminate`, `kill`, `hangup`, ...) to the process's whole process group. */
  async signal(signal: Signal): Promise<void> {
    await this.#connection.call("process/signal", { processId: this.processId, signal });
  }

  /**
   * Kills the process's whole tree. Resolves `true` when it was running and
   * is now being killed (its exit then reports `reason: "killed"`), `false`
   * when it had already exited.
   */
  async terminate(): Promise<boolean> {
    const response = await this.#connection.call("process/terminate", { processId: this.processId });
    return response.running;
  }

  /**
   * Resolves with how the process ended, as soon as its exit arrives;
   * output need not be read first, and stays readable through
   * {@link RemoteProcess.output}. Stdin is not closed for you: a process
   * that reads it until EOF needs {@link RemoteProcess.closeStdin}. It
   * waits through reconnects. Rejects with a `ConnectionClosedError` when
   * the connection closes for good first.
   *
   * When the exit happened while the connection was down and its
   * notification was lost with the connection, the exit is read back with
   * `process/read`, which does not tell why the process ended: `reason` is
   * then `signaled` when the read names a `signal`, else `exited`.
   */
  wait(): Promise<ExitStatus> {
    return this.#route.waitForExit();
  }

  /** One `process/write`, retried while the process is starting. */
  async #writePiece(piece: Uint8Array): Promise<void> {
    this.#writes += 1;
    const params = { processId: this.processId, chunk: encodeBase64(piece), writeId: `${this.processId}:${this.#writes}` };
    for (let attempt = 0; ; attempt += 1) {
      const { status } = await this.#connection.call("process/write", params);
      if (status === "accepted") {
        return;
      }
      if (status !== "starting" || attempt >= WRITE_RETRIES) {
        throw new WriteRejectedError(this.processId, status);
      }
      await new Promise((resolve) => setTimeout(resolve, WRITE_RETRY_DELAY_MS));
    }
  }

  /** The output iterator: hands out events in order, reading back what was dropped. */
  async *#iterateOutput(): AsyncGenerator<ProcessOutput, void, undefined> {
    const route = this.#route;
    const sequencer = route.sequencer;
    try {
      for (;;) {
        const ready = sequencer.nextReady();
        if (ready !== undefined) {
          route.took();
          if (ready.type === "output") {
            yield ready.output;
          } else if (ready.type === "lost") {
            // Counted where the gap is: the next chunk comes after it.
            route.lostBytes += ready.bytes;
          }
          // The exit goes to `wait()` as soon as it arrives.
          continue;
        }
        if (sequencer.finished) {
          return;
        }
        if (route.isConnectionClosed) {
          throw this.#connection.closedError();
        }
        // While the connection is down or resuming, the reconnect's replay
        // reads back what is missing; a read of the consumer's own would
        // only wait, and repeat what the replay brings.
        const dropped = route.dropped;
        const afterSeq = this.#connection.isAttached ? sequencer.wantsRead(dropped !== route.caughtUp) : undefined;
        if (afterSeq !== undefined) {
          // Read the counter before the read: a drop during the read stays
          // unacknowledged and triggers another read. No `maxBytes`: the
          // server returns all it retains after the cursor (at most its
          // retention), so one read closes a gap.
          let response;
          try {
            response = await this.#connection.call("process/read", { processId: this.processId, afterSeq });
          } catch (error) {
            if (error instanceof ConnectionLostError) {
              // The reconnect's replay takes over; the consumer looks
              // again once it is done.
              continue;
            }
            throw error;
          }
          route.applyRead(afterSeq, response);
          route.caughtUp = dropped;
          continue;
        }
        await route.nextWake();
      }
    } finally {
      route.stopIterating();
    }
  }
}
