/**
 * {@link Sequencer}: puts one process's events back in sequence order, spots
 * gaps, and merges what `process/read` returns, so that a consumer gets
 * every chunk exactly once, in order, and hears of a loss only when the
 * server says the bytes are gone. A port of the Rust SDK's `sequence.rs`.
 *
 * Events reach it two ways: the connection's notifications (in order, but
 * with holes where the connection dropped output for a lagging consumer or
 * the network dropped the connection, and with repeats after a reconnect),
 * and `process/read` responses (output chunks only: a read reports the exit
 * and the close as flags, without their `seq` or the exit's `reason`). A read
 * accounts for every seq below its `nextSeq` (Codex's meaning: the seq after
 * the last one the read covers): each is a chunk it returned, output the
 * server evicted (its `droppedBytes`), or the exit or the close.
 * The sequencer is pure bookkeeping and also the buffer of events waiting
 * for the consumer; the process does the I/O.
 *
 * @module
 */

import { decodeBase64 } from "./base64.js";
import type { OutputStream } from "./generated/OutputStream.js";
import type { ProcessReadResponse } from "./generated/ProcessReadResponse.js";
import type { ExitStatus, ProcessOutput } from "./output.js";

/** One event of a process, as the connection routes it. */
export type SequenceEvent =
  | { readonly type: "output"; readonly seq: number; readonly stream: OutputStream; readonly data: Uint8Array }
  | { readonly type: "exited"; readonly seq: number; readonly status: ExitStatus }
  | { readonly type: "closed"; readonly seq: number };

/** What {@link Sequencer.nextReady} hands out, in order. */
export type ReadyEvent =
  | { readonly type: "output"; readonly output: ProcessOutput }
  | { readonly type: "lost"; readonly bytes: number }
  | { readonly type: "exited"; readonly status: ExitStatus };

/** The ordering state of one process's event stream. */
export class Sequencer {
  /** The seq of the next event to hand out; everything before it was handed out or is known to be lost. */
  #expected = 1;
  /** Events received ahead of or at `#expected`, sorted by seq, from index `#head` on (a queue without O(n) shifts). */
  #pending: SequenceEvent[] = [];
  /** Index of the first live entry of `#pending`. */
  #head = 0;
  /** Output bytes in `#pending`: what the consumer has yet to take. */
  #bufferedBytes = 0;
  /** Seqs below this that are not pending are output the server evicted: skipped (and reported as lost) instead of awaited. */
  #skipUntil = 0;
  /** Lost bytes not yet handed out as a `lost` event. */
  #unreportedLostBytes = 0;
  /**
   * The cursor of the last read: a gap that a read at the same cursor did
   * not close is an exit or close still on its way, not lost output, so it
   * is awaited rather than read again.
   */
  #readAt: number | undefined;
  /** The close was handed out: the stream has ended. */
  #finished = false;

  /** Output bytes received and not handed out yet. */
  get bufferedBytes(): number {
    return this.#bufferedBytes;
  }

  /** Whether the close was handed out. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * The newest seq up to which every event is accounted for here: handed
   * out, buffered, or known to be lost. It is the cursor to read after, and
   * what the client may acknowledge with `process/ack` (the consumer need
   * not have taken it yet: it is buffered here).
   */
  get contiguous(): number {
    const base = Math.max(this.#expected, this.#skipUntil) - 1;
    const pending = this.#pending;
    // The first buffered event after `base`.
    let low = this.#head;
    let high = pending.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((pending[middle]?.seq ?? Infinity) <= base) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }
    const first = pending[low];
    if (first === undefined || first.seq !== base + 1) {
      return base;
    }
    // Seqs are sorted and unique, so `seq - index` never decreases, and the
    // run without holes is where it stays at the first event's value.
    const offset = first.seq - low;
    let last = low;
    high = pending.length - 1;
    while (last < high) {
      const middle = (last + high + 1) >>> 1;
      if ((pending[middle]?.seq ?? Infinity) - middle === offset) {
        last = middle;
      } else {
        high = middle - 1;
      }
    }
    return pending[last]?.seq ?? base;
  }

  /** Takes in an event from the connection. */
  accept(event: SequenceEvent): void {
    // An output chunk before the cursor was already handed out (a read
    // returned it first) or counted as lost; the exit and the close are
    // only ever sent once, so they are kept whatever their seq.
    if (event.type === "output" && event.seq < this.#expected) {
      return;
    }
    this.#insert(event);
  }

  /**
   * The next event in order, if it is here. `undefined` means: wait, read,
   * or (when {@link finished}) the stream has ended.
   */
  nextReady(): ReadyEvent | undefined {
    for (;;) {
      if (this.#finished) {
        return undefined;
      }
      const first = this.#pending[this.#head];
      if (first !== undefined && first.seq <= this.#expected) {
        this.#popFirst();
        const inOrder = first.seq === this.#expected;
        if (inOrder) {
          this.#expected += 1;
        }
        switch (first.type) {
          case "output":
            if (inOrder) {
              return { type: "output", output: { stream: first.stream, data: first.data, seq: first.seq } };
            }
            // A duplicate of output already handed out.
            continue;
          case "exited":
            return { type: "exited", status: first.status };
          case "closed":
            this.#finished = true;
            return undefined;
        }
      }
      if (this.#expected < this.#skipUntil) {
        // The missing seqs up to the next event held (or up to the end of
        // the evicted range) are gone: say so once.
        this.#expected = first === undefined ? this.#skipUntil : Math.min(first.seq, this.#skipUntil);
        if (this.#unreportedLostBytes > 0) {
          const bytes = this.#unreportedLostBytes;
          this.#unreportedLostBytes = 0;
          return { type: "lost", bytes };
        }
        continue;
      }
      return undefined;
    }
  }

  /**
   * The `afterSeq` cursor to read from when a read is needed: the connection
   * dropped output for this process (`lagging`), or a gap is in sight that a
   * read at this cursor has not been tried on. Call only when
   * {@link nextReady} returned `undefined`.
   */
  wantsRead(lagging: boolean): number | undefined {
    if (this.#finished) {
      return undefined;
    }
    const cursor = this.contiguous;
    const last = this.#pending[this.#pending.length - 1];
    const gap = this.#pending.length > this.#head && last !== undefined && last.seq > cursor + 1;
    return lagging || (gap && this.#readAt !== cursor) ? cursor : undefined;
  }

  /**
   * Merges a `process/read` response for the cursor `afterSeq` (at or after
   * {@link contiguous} at the time of the read); returns its output bytes
   * that were new here.
   */
  applyRead(afterSeq: number, response: ProcessReadResponse): number {
    this.#readAt = afterSeq;
    const covered = response.nextSeq - 1;
    if (response.droppedBytes > 0) {
      // Everything between the cursor and the first chunk the server still
      // has was evicted. Chunks of that range already held here (they came
      // as notifications) are not lost.
      const resume = response.chunks[0]?.seq ?? covered + 1;
      let held = 0;
      for (let index = this.#head; index < this.#pending.length; index += 1) {
        const event = this.#pending[index];
        if (event === undefined || event.seq >= resume) {
          break;
        }
        if (event.type === "output" && event.seq > afterSeq && event.seq >= this.#expected) {
          held += event.data.byteLength;
        }
      }
      const lost = Math.max(0, response.droppedBytes - held);
      this.#unreportedLostBytes += lost;
    }
    let added = 0;
    for (const chunk of response.chunks) {
      if (chunk.seq >= this.#expected) {
        const data = decodeBase64(chunk.chunk);
        added += data.byteLength;
        this.#insert({ type: "output", seq: chunk.seq, stream: chunk.stream, data });
      }
    }
    // Every seq below `nextSeq` that is not here now is evicted output or
    // the exit or the close: none is output still to come. The exit and the
    // close are kept whenever they come (see `accept`).
    this.#skipUntil = Math.max(this.#skipUntil, covered + 1);
    if (response.closed && !this.#finished && !this.#holdsClose()) {
      // The read reached the close (its seq is `nextSeq - 1`): the stream
      // ends there even when its notification was lost with a connection.
      this.#insert({ type: "closed", seq: covered });
    }
    return added;
  }

  /** Whether the close is buffered. */
  #holdsClose(): boolean {
    const last = this.#pending[this.#pending.length - 1];
    return this.#pending.length > this.#head && last?.type === "closed";
  }

  /** Inserts `event` in seq order, replacing an event of the same seq. */
  #insert(event: SequenceEvent): void {
    const pending = this.#pending;
    const last = pending[pending.length - 1];
    if (pending.length === this.#head || (last !== undefined && last.seq < event.seq)) {
      // The common case: events arrive in order.
      pending.push(event);
      this.#countIn(event);
      return;
    }
    let low = this.#head;
    let high = pending.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((pending[middle]?.seq ?? Infinity) < event.seq) {
        low = middle + 1;
      } else {
        high = middle;
      }
    }
    const existing = pending[low];
    if (existing !== undefined && existing.seq === event.seq) {
      this.#countOut(existing);
      pending[low] = event;
    } else {
      pending.splice(low, 0, event);
    }
    this.#countIn(event);
  }

  /** Removes the first pending event. */
  #popFirst(): void {
    const first = this.#pending[this.#head];
    if (first === undefined) {
      return;
    }
    this.#countOut(first);
    this.#head += 1;
    if (this.#head === this.#pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Adds an event's bytes to {@link bufferedBytes}. */
  #countIn(event: SequenceEvent): void {
    if (event.type === "output") {
      this.#bufferedBytes += event.data.byteLength;
    }
  }

  /** Removes an event's bytes from {@link bufferedBytes}. */
  #countOut(event: SequenceEvent): void {
    if (event.type === "output") {
      this.#bufferedBytes -= event.data.byteLength;
    }
  }
}
