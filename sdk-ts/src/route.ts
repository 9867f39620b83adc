/**
 * {@link ProcessRoute}: the connection's side of one process. It takes the
 * process's notifications, buffers its output for the consumer, decides when
 * to hold the server back and when to stop waiting for a slow consumer, and
 * keeps the exit for `wait()`.
 *
 * # Back-pressure and lag
 * Output waits in the route's {@link Sequencer} until `output` takes it.
 * When more than `outputBufferBytes` wait and a consumer is iterating,
 * the route holds the server back: the connection pauses its socket (with a
 * WebSocket class that can pause, such as `ws`), the server's sends block,
 * and it stops reading the process's output, so nothing is lost. Holding
 * also delays every other response on the connection, so it lasts at most
 * `outputStallTimeoutMs` without the consumer taking anything. After that,
 * when nobody iterates, or when the socket cannot pause, the route stops
 * buffering: further output is dropped here, counted, and read back with
 * `process/read` when the consumer catches up. Bytes are lost only when the
 * server no longer retains them, and then reported (`droppedBytes`). The
 * exit and the close are never dropped.
 *
 * # Acknowledgements and reconnects
 * With `acknowledgeOutput` (whenever reconnecting is on) the route
 * acknowledges, with `process/ack`, the newest seq up to which it has every
 * event (see {@link AcknowledgePolicy} for how often). Output dropped here
 * while a consumer iterates is not acknowledged, so the server keeps it and,
 * when it has no more room, stops reading the process until the consumer
 * reads it back: nothing is lost. Output dropped while nobody iterates is
 * acknowledged, so the server evicts it beyond its retention as it would
 * without acknowledgements and such a process runs to its end (`wait()`
 * needs no consumer); output abandoned by a consumer that left the loop is
 * acknowledged too. After a reconnect, {@link ProcessRoute.resumed} reads
 * back from the server every event after that seq, which the dropped
 * connection may have lost in flight (the exit and the close included),
 * then acknowledges.
 *
 * @module
 */

import { AcknowledgePolicy } from "./acknowledge.js";
import { decodeBase64 } from "./base64.js";
import type { ProcessOutputParams } from "./incoming.js";
import type { Connection, Route } from "./connection.js";
import { ExecError, ProtocolError } from "./errors.js";
import type { ProcessClosedNotification } from "./generated/ProcessClosedNotification.js";
import type { ProcessExitedNotification } from "./generated/ProcessExitedNotification.js";
import type { ProcessReadResponse } from "./generated/ProcessReadResponse.js";
import type { ExitStatus } from "./output.js";
import { Sequencer } from "./sequence.js";

/** How a route buffers and waits; see the module doc. */
export interface RouteLimits {
  /** Output bytes buffered per process before the server is held back (or, with no consumer iterating, before output is dropped and read back later). */
  readonly outputBufferBytes: number;
  /** How long the server is held back for a consumer that takes nothing, in milliseconds. */
  readonly outputStallTimeoutMs: number;
  /** With `acknowledgeOutput`: output bytes received between two `process/ack`s; `undefined` without. */
  readonly acknowledgeEveryBytes: number | undefined;
}

/** A caller of `wait()`. */
interface ExitWaiter {
  /** Settles with the exit. */
  readonly resolve: (status: ExitStatus) => void;
  /** Settles with the error that means no exit will come. */
  readonly reject: (error: Error) => void;
}

/** The connection's side of one process: its buffer, back-pressure and exit. */
export class ProcessRoute implements Route {
  /** Orders the events and buffers those the consumer has not taken. */
  readonly sequencer = new Sequencer();
  /**
   * Output notifications dropped here, counted. The consumer is caught up
   * when {@link caughtUp} equals it: counters rather than a flag, so that a
   * drop during a read is never forgotten.
   */
  dropped = 0;
  /** The value of {@link dropped} the consumer's last read covered. */
  caughtUp = 0;
  /** Output bytes the server evicted, counted as the consumer passes the gap they left. */
  lostBytes = 0;
  /** The process this route follows. */
  readonly #processId: string;
  /** The connection, to hold and release the server. */
  readonly #connection: Connection;
  /** See {@link RouteLimits}. */
  readonly #limits: RouteLimits;
  /** A consumer is iterating `output`: worth holding the server back for. */
  #iterating = false;
  /** The consumer stopped iterating before the end: output is discarded. */
  #abandoned = false;
  /** The timer that ends holding the server back; set while holding. */
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  /** The last hold ran out: stop buffering until the consumer takes something. */
  #gaveUp = false;
  /** Wakes the consumer waiting for an event. */
  #wake: (() => void) | undefined;
  /** How the process ended, once the exit arrived. */
  #exit: ExitStatus | undefined;
  /** Why no exit will come (the connection closed, or the process closed without one). */
  #failure: (() => Error) | undefined;
  /** Callers of `wait()` not settled yet. */
  #exitWaiters: ExitWaiter[] = [];
  /** The connection closed before the process did. */
  #connectionClosed = false;
  /** When to acknowledge, with `acknowledgeOutput`. */
  readonly #acknowledgements: AcknowledgePolicy | undefined;
  /** The newest seq of any event of the process seen (abandoned output is acknowledged up to it). */
  #newestSeen = 0;
  /** The newest seq dropped while nobody iterated, with every seq before it accounted for: acknowledged as if received. */
  #discardedThrough = 0;

  /** A route for `processId` on `connection`. */
  constructor(processId: string, connection: Connection, limits: RouteLimits) {
    this.#processId = processId;
    this.#connection = connection;
    this.#limits = limits;
    this.#acknowledgements =
      limits.acknowledgeEveryBytes === undefined ? undefined : new AcknowledgePolicy(limits.acknowledgeEveryBytes);
  }

  /** Whether output was dropped since the consumer's last read. */
  get lagging(): boolean {
    return this.dropped !== this.caughtUp;
  }

  /** The exit, once it arrived. */
  get exit(): ExitStatus | undefined {
    return this.#exit;
  }

  /** Whether the connection closed before the process did: what is buffered is all there is. */
  get isConnectionClosed(): boolean {
    return this.#connectionClosed;
  }

  /** `process/output`: buffers the chunk, or drops it (see the module doc). */
  "process/output"(params: ProcessOutputParams): void {
    this.#newestSeen = Math.max(this.#newestSeen, params.seq);
    // The decoded size, without decoding output that is dropped (a binary
    // frame's chunk is raw bytes already).
    const chunk = params.chunk;
    const bytes = typeof chunk === "string" ? Math.floor((chunk.length * 3) / 4) : chunk.length;
    if (this.#abandoned) {
      this.#received(bytes);
      return;
    }
    const full = this.sequencer.bufferedBytes >= this.#limits.outputBufferBytes;
    // Buffering past the limit is worth it only while the server is held
    // back for a consumer that iterates; without a socket that can pause,
    // the server's retention is the buffer, and memory here stays bounded.
    const keepBuffering = this.#iterating && !this.#gaveUp && this.#connection.canHold;
    if (this.lagging || (full && !keepBuffering)) {
      this.dropped += 1;
      if (!this.#iterating && params.seq <= this.#acknowledgeable() + 1) {
        this.#discardedThrough = Math.max(this.#discardedThrough, params.seq);
      }
      this.#received(bytes);
      this.#wakeConsumer();
      return;
    }
    this.sequencer.accept({ type: "output", seq: params.seq, stream: params.stream, data: typeof chunk === "string" ? decodeBase64(chunk) : chunk });
    this.#received(bytes);
    if (keepBuffering && this.sequencer.bufferedBytes >= this.#limits.outputBufferBytes) {
      this.#hold();
    }
    this.#wakeConsumer();
  }

  /** `process/exited`: settles `wait()` and takes the exit's place in the sequence. */
  "process/exited"(params: ProcessExitedNotification): void {
    this.#newestSeen = Math.max(this.#newestSeen, params.seq);
    const status: ExitStatus = { exitCode: params.exitCode, signal: params.signal, reason: params.reason };
    this.#setExit(status);
    if (!this.#abandoned) {
      this.sequencer.accept({ type: "exited", seq: params.seq, status });
    }
    this.#wakeConsumer();
  }

  /** `process/closed`: the last event; nothing more will arrive, so the route is removed. */
  "process/closed"(params: ProcessClosedNotification): void {
    this.#connection.removeRoute(this.#processId, this);
    this.#stopHolding();
    if (!this.#abandoned) {
      this.sequencer.accept({ type: "closed", seq: params.seq });
    }
    if (this.#exit === undefined) {
      const processId = this.#processId;
      this.#fail(() => new ProtocolError(`process ${processId} was closed without a process/exited notification`));
    }
    this.#wakeConsumer();
  }

  /** The socket dropped: the server can no longer be held back through it. */
  connectionDropped(): void {
    this.#stopHolding();
  }

  /** The resume is done: the consumer looks for gaps again. */
  connectionResumed(): void {
    this.#wakeConsumer();
  }

  /**
   * The session was resumed: reads back every event after the newest seq
   * this route has all of, until caught up (or until the buffer is full:
   * the consumer reads the rest), then acknowledges. The exit and the close
   * a read reports are taken as if notified: their notifications may have
   * been lost with the dropped connection.
   */
  async resumed(): Promise<void> {
    for (;;) {
      const mode = this.#replayMode();
      const afterSeq = mode === "merge" ? this.sequencer.contiguous : this.#acknowledgeable();
      let response: ProcessReadResponse;
      try {
        response = await this.#connection.call("process/read", { processId: this.#processId, afterSeq }, { internal: true });
      } catch (error) {
        if (error instanceof ExecError) {
          // `unknownProcess`: its `process/start` has not run yet; it is
          // sent again after the resume, and the process starts then. Any
          // other refusal leaves the catching up to the consumer's reads.
          return;
        }
        throw error;
      }
      const progressed = this.#applyReplay(mode, afterSeq, response);
      if (!progressed || response.closed || this.#connection.isClosed) {
        break;
      }
    }
    const seq = this.#acknowledgements?.take(this.#acknowledgeable(), true);
    if (seq !== undefined) {
      this.#connection.notify("process/ack", { processId: this.#processId, seq }, true);
    }
  }

  /** Merges a read the consumer made; acknowledges what it completed. */
  applyRead(afterSeq: number, response: ProcessReadResponse): void {
    this.#received(this.sequencer.applyRead(afterSeq, response));
  }

  /** The connection closed: `wait()` fails, the consumer gets what is buffered, then the error. */
  connectionClosed(): void {
    this.#connectionClosed = true;
    this.#stopHolding();
    if (this.#exit === undefined) {
      this.#fail(() => this.#connection.closedError());
    }
    this.#wakeConsumer();
  }

  /** Resolves with the exit, or rejects when none will come. */
  waitForExit(): Promise<ExitStatus> {
    if (this.#exit !== undefined) {
      return Promise.resolve(this.#exit);
    }
    if (this.#failure !== undefined) {
      return Promise.reject(this.#failure());
    }
    return new Promise((resolve, reject) => this.#exitWaiters.push({ resolve, reject }));
  }

  /** A consumer started iterating `output`. */
  startIterating(): void {
    this.#iterating = true;
  }

  /** The consumer stopped: at the end, or early (then the rest of the output is discarded). */
  stopIterating(): void {
    this.#iterating = false;
    if (!this.sequencer.finished) {
      this.#abandoned = true;
    }
    this.#stopHolding();
  }

  /** The consumer took an event: hold on, or stop holding once the buffer has room. */
  took(): void {
    if (this.sequencer.bufferedBytes < this.#limits.outputBufferBytes) {
      this.#gaveUp = false;
      this.#stopHolding();
    } else if (this.#stallTimer !== undefined) {
      // Progress: the stall timeout counts from the consumer's last take.
      this.#startStallTimer();
    }
  }

  /** Resolves at the next event, drop or close. */
  nextWake(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  /**
   * What a replay read is for: `merge` into the sequencer, read after its
   * {@link Sequencer.contiguous}; `discard` what nobody iterates while the
   * buffer is full, as notifications would be dropped (see the module doc),
   * and `abandon` what the consumer left, both read after what the route
   * acknowledges.
   */
  #replayMode(): "merge" | "discard" | "abandon" {
    if (this.#abandoned) {
      return "abandon";
    }
    return !this.#iterating && this.sequencer.bufferedBytes >= this.#limits.outputBufferBytes ? "discard" : "merge";
  }

  /**
   * Applies a replay read made at `afterSeq` for `mode`; returns whether it
   * moved the route on (`false`: caught up, or the buffer is full and the
   * consumer reads the rest).
   */
  #applyReplay(mode: "merge" | "discard" | "abandon", afterSeq: number, response: ProcessReadResponse): boolean {
    // `nextSeq` is the seq after the last one the read covers (Codex's meaning).
    const covered = response.nextSeq - 1;
    let progressed = covered > afterSeq && response.chunks.length > 0;
    if (mode === "abandon" || this.#abandoned) {
      this.#newestSeen = Math.max(this.#newestSeen, covered);
    } else if (mode === "discard") {
      // The consumer, when it comes, reads from the sequencer's cursor.
      this.dropped += 1;
      this.#discardedThrough = Math.max(this.#discardedThrough, covered);
    } else {
      this.sequencer.applyRead(afterSeq, response);
      if (this.sequencer.bufferedBytes >= this.#limits.outputBufferBytes) {
        // The consumer reads the rest when it has room.
        this.dropped += 1;
        progressed = false;
      }
    }
    if (response.exited && this.#exit === undefined) {
      // A read does not say why the process ended: a signal's name means a
      // signal, and anything else its own exit (the code, 128 + N after a
      // signal without a name, cannot tell the two apart). An exited
      // process's code is always a number; -1 (the server's "status
      // unknown") stands in should a server send null anyway.
      this.#setExit({
        exitCode: response.exitCode ?? -1,
        signal: response.signal,
        reason: response.signal === null ? "exited" : "signaled",
      });
    }
    if (response.closed) {
      this["process/closed"]({ processId: this.#processId, seq: covered });
    }
    const bytes = response.chunks.reduce((sum, chunk) => sum + Math.floor((chunk.chunk.length * 3) / 4), 0);
    this.#received(bytes);
    this.#wakeConsumer();
    return progressed;
  }

  /** The newest seq up to which the route has every event, or has let it go: what it acknowledges and reads after. */
  #acknowledgeable(): number {
    if (this.#abandoned) {
      return this.#newestSeen;
    }
    return Math.max(this.sequencer.contiguous, this.#discardedThrough);
  }

  /** Counts `bytes` of output received, and acknowledges when it is time. */
  #received(bytes: number): void {
    const acknowledgements = this.#acknowledgements;
    if (acknowledgements === undefined || !acknowledgements.received(bytes)) {
      return;
    }
    const seq = acknowledgements.take(this.#acknowledgeable());
    if (seq !== undefined) {
      this.#connection.acknowledge(this.#processId, seq);
    }
  }

  /** Keeps the exit and settles `wait()`. */
  #setExit(status: ExitStatus): void {
    this.#exit = status;
    for (const waiter of this.#exitWaiters.splice(0)) {
      waiter.resolve(status);
    }
  }

  /** Wakes the consumer, if it waits. */
  #wakeConsumer(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** Starts holding the server back, with the stall timer. */
  #hold(): void {
    if (this.#stallTimer !== undefined) {
      return;
    }
    this.#startStallTimer();
    this.#connection.hold(this);
  }

  /** (Re)starts the timer that ends holding. */
  #startStallTimer(): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(() => {
      this.#gaveUp = true;
      this.#stopHolding();
    }, this.#limits.outputStallTimeoutMs);
    // Holding the server back is no reason for a program to stay alive.
    (this.#stallTimer as { unref?: () => void }).unref?.();
  }

  /** Stops holding the server back. */
  #stopHolding(): void {
    if (this.#stallTimer !== undefined) {
      clearTimeout(this.#stallTimer);
      this.#stallTimer = undefined;
    }
    this.#connection.release(this);
  }

  /** No exit will come: rejects `wait()` now and later. */
  #fail(error: () => Error): void {
    this.#failure = error;
    for (const waiter of this.#exitWaiters.splice(0)) {
      waiter.reject(error());
    }
  }
}
