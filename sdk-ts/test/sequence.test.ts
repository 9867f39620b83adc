/**
 * The {@link Sequencer}, alone: the contiguous cursor a reconnect reads
 * after and acknowledges, and the merge of reads that account for every seq
 * below their `nextSeq` (an exit whose notification was lost is skipped, a
 * close is taken from the read).
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import type { ProcessReadResponse } from "exec-server-client";

import { type ReadyEvent, Sequencer } from "../src/sequence.js";

/** An output event of one ASCII character. */
function output(seq: number, text: string): { type: "output"; seq: number; stream: "stdout"; data: Uint8Array } {
  return { type: "output", seq, stream: "stdout", data: new TextEncoder().encode(text) };
}

/** A read response with `chunks` as `[seq, text]`; `nextSeq` is the seq after the last one it covers. */
function read(chunks: [number, string][], nextSeq: number, flags: Partial<ProcessReadResponse> = {}): ProcessReadResponse {
  return {
    chunks: chunks.map(([seq, text]) => ({ seq, stream: "stdout", chunk: Buffer.from(text).toString("base64") })),
    nextSeq,
    droppedBytes: 0,
    exited: false,
    exitCode: null,
    signal: null,
    closed: false,
    ...flags,
  };
}

/** Everything ready now, output as text, `lost:N`, `exit`. */
function drain(sequencer: Sequencer): string[] {
  const seen: string[] = [];
  for (let ready: ReadyEvent | undefined; (ready = sequencer.nextReady()) !== undefined; ) {
    if (ready.type === "output") {
      seen.push(new TextDecoder().decode(ready.output.data));
    } else if (ready.type === "lost") {
      seen.push(`lost:${ready.bytes}`);
    } else {
      seen.push("exit");
    }
  }
  return seen;
}

test("contiguous counts buffered events, stops at the first hole, and skips lost ranges", () => {
  const sequencer = new Sequencer();
  assert.equal(sequencer.contiguous, 0);
  sequencer.accept(output(1, "a"));
  sequencer.accept(output(2, "b"));
  sequencer.accept(output(4, "d"));
  assert.equal(sequencer.contiguous, 2, "buffered, not yet taken");
  assert.deepEqual(drain(sequencer), ["a", "b"]);
  assert.equal(sequencer.contiguous, 2);
  sequencer.accept(output(3, "c"));
  assert.equal(sequencer.contiguous, 4);
  for (let seq = 5; seq <= 2000; seq += 1) {
    sequencer.accept(output(seq, "x"));
  }
  sequencer.accept(output(2002, "z"));
  assert.equal(sequencer.contiguous, 2000);
  // A read after 2000 that says 2001 was evicted: skipped, counted.
  sequencer.applyRead(2000, read([[2002, "z"]], 2003, { droppedBytes: 7 }));
  assert.equal(sequencer.contiguous, 2002);
  const taken = drain(sequencer);
  assert.deepEqual(taken.slice(-3), ["x", "lost:7", "z"]);
});

test("a read after the contiguous cursor does not count held chunks before it as kept", () => {
  const sequencer = new Sequencer();
  sequencer.accept(output(1, "aaaa"));
  sequencer.accept(output(2, "bbbb"));
  // The server evicted seqs 1 to 3 (acknowledged); the read after 2 reports
  // only seq 3's 5 bytes as dropped past its cursor.
  sequencer.applyRead(2, read([[4, "d"]], 5, { droppedBytes: 5 }));
  assert.deepEqual(drain(sequencer), ["aaaa", "bbbb", "lost:5", "d"]);
});

test("an exit whose notification was lost is skipped; a close the read reports ends the stream", () => {
  const sequencer = new Sequencer();
  sequencer.accept(output(1, "a"));
  assert.deepEqual(drain(sequencer), ["a"]);
  // Seq 2 output, 3 the exit, 4 more output, 5 the close: the connection
  // lost all four notifications.
  const added = sequencer.applyRead(1, read([[2, "b"], [4, "d"]], 6, { exited: true, exitCode: 0, closed: true }));
  assert.equal(added, 2);
  assert.deepEqual(drain(sequencer), ["b", "d"]);
  assert.equal(sequencer.finished, true);
});

test("the exit and the close notified again after a read are taken once", () => {
  const sequencer = new Sequencer();
  sequencer.applyRead(0, read([[1, "a"]], 4, { exited: true, exitCode: 0, closed: true }));
  sequencer.accept({ type: "exited", seq: 2, status: { exitCode: 0, signal: null, reason: "exited" } });
  sequencer.accept({ type: "closed", seq: 3 });
  assert.deepEqual(drain(sequencer), ["a", "exit"]);
  assert.equal(sequencer.finished, true);
  assert.equal(sequencer.wantsRead(false), undefined);
});

test("a gap is read once at a cursor; repeats after a reconnect are dropped", () => {
  const sequencer = new Sequencer();
  sequencer.accept(output(1, "a"));
  sequencer.accept(output(3, "c"));
  assert.deepEqual(drain(sequencer), ["a"]);
  assert.equal(sequencer.wantsRead(false), 1);
  // The read at 1 returned nothing new (2 is an exit on its way).
  sequencer.applyRead(1, read([], 2));
  assert.equal(sequencer.wantsRead(false), undefined, "the same cursor is not read again");
  assert.equal(sequencer.wantsRead(true), 1, "a lagging route reads anyway");
  sequencer.accept({ type: "exited", seq: 2, status: { exitCode: 0, signal: null, reason: "exited" } });
  sequencer.accept(output(1, "a"));
  sequencer.accept(output(3, "c"));
  assert.deepEqual(drain(sequencer), ["exit", "c"]);
});
