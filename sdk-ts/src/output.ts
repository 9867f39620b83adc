/**
 * What a remote process reports: {@link ProcessOutput} chunks and its
 * {@link ExitStatus}.
 *
 * @module
 */

import type { ExitReason } from "./generated/ExitReason.js";
import type { OutputStream } from "./generated/OutputStream.js";
import type { Signal } from "./generated/Signal.js";

/** One chunk of a process's output, in the order the process wrote it. */
export interface ProcessOutput {
  /** `stdout` or `stderr` for a pipe process, `pty` for a PTY process. */
  readonly stream: OutputStream;
  /** The bytes, exactly as the process wrote them (not necessarily whole lines or whole UTF-8 characters). */
  readonly data: Uint8Array;
  /**
   * Position in the process's sequence (shared with the exit and the close,
   * starting at 1). Consecutive chunks skip the exit's number, and skip
   * more only where the server reported output lost
   * ({@link RemoteProcess.droppedBytes}).
   */
  readonly seq: number;
}

/** How a process ended. A death by a signal is told by `signal` and `reason`, never by `exitCode`. */
export interface ExitStatus {
  /**
   * The exit code as the server reports it, always a number: the exit
   * status, or 128 + N when signal N ended the process (as a shell reports
   * it), or -1 when the server could not learn the status.
   */
  readonly exitCode: number;
  /** The signal that ended the process, or `null` (also for a signal without a protocol name). */
  readonly signal: Signal | null;
  /** Why it ended: by itself (`exited`), a signal (`signaled`), its `timeoutMs` (`timedOut`), or `terminate()` or a closed connection (`killed`). */
  readonly reason: ExitReason;
}
