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
 * @module
 */

import { decodeBase64 } from "./base64.js";
import type { Connection, Route } from "./connection.js";
import { ProtocolError } from "./errors.js";
import type { ProcessClosedNotification } from "./generated/ProcessClosedNotification.js";
import type { ProcessExitedNotification } from "./generated/ProcessExitedNotification.js";
import type { ProcessOutputNotification } from "./generated/ProcessOutputNotification.js";
import type { ExitStatus } from "./output.js";
import { Sequencer } from "./sequence.js";

/** How a route buffers and waits; see the module doc. */
export interface RouteLimits {
  /** Output bytes buffered per process before the server is held back (or, with no consumer iterating, before output is dropped and read back later). */
  readonly outputBufferBytes: number;
  /** How long the server is held back for a consumer that takes nothing, in milliseconds. */
  readonly outputStallTimeoutMs: number;
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

  /** A route for `processId` on `connection`. */
  constructor(processId: string, connection: Connection, limits: RouteLimits) {
    this.#processId = processId;
    this.#connection = connection;
    this.#limits = limits;
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
  "process/output"(params: ProcessOutputNotification): void {
    if (this.#abandoned) {
      return;
    }
    const full = this.sequencer.bufferedBytes >= this.#limits.outputBufferBytes;
    // Buffering past the limit is worth it only while the server is held
    // back for a consumer that iterates; without a socket that can pause,
    // the server's retention is the buffer, and memory here stays bounded.
    const keepBuffering = this.#iterating && !this.#gaveUp && this.#connection.canHold;
    if (this.lagging || (full && !keepBuffering)) {
      this.dropped += 1;
      this.#wakeConsumer();
      return;
    }
    this.sequencer.accept({ type: "output", seq: params.seq, stream: params.stream, data: decodeBase64(params.chunk) });
    if (keepBuffering && this.sequencer.bufferedBytes >= this.#limits.outputBufferBytes) {
      this.#hold();
    }
    this.#wakeConsumer();
  }

  /** `process/exited`: settles `wait()` and takes the exit's place in the sequence. */
  "process/exited"(params: ProcessExitedNotification): void {
    const status: ExitStatus = { exitCode: params.exitCode, signal: params.signal, reason: params.reason };
    this.#exit = status;
    for (const waiter of this.#exitWaiters.splice(0)) {
      waiter.resolve(status);
    }
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
