/**
 * The reconnect's pure policies: {@link Backoff} (100 ms doubling to 2 s,
 * giving up at the session's TTL or the configured limit) and
 * {@link AcknowledgePolicy} (a `process/ack` every quarter of the server's
 * retention).
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import { AcknowledgePolicy, UnroutedAcknowledgements, acknowledgeEveryBytes } from "../src/acknowledge.js";
import { Backoff } from "../src/backoff.js";
import { reconnectPolicy } from "../src/reconnect.js";

/** The waits of `backoff` when each attempt takes no time, from `start`. */
function waits(backoff: Backoff, start: number): number[] {
  const all: number[] = [];
  let now = start;
  for (let wait = backoff.next(now); wait !== undefined; wait = backoff.next(now)) {
    all.push(wait);
    now += wait;
  }
  return all;
}

test("the backoff doubles from 100 ms to 2 s and stops at the session's TTL", () => {
  const policy = reconnectPolicy({});
  assert.deepEqual(policy, { initialDelayMs: 100, maxDelayMs: 2_000, maxElapsedMs: Number.POSITIVE_INFINITY });
  const backoff = new Backoff(policy, 1_000, 10_000);
  assert.equal(backoff.giveUpAt, 11_000);
  // 100+200+400+800+1600 = 3100, then 2 s waits, the last cut to the TTL.
  assert.deepEqual(waits(backoff, 1_000), [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000, 900]);
});

test("maxElapsedMs gives up before the TTL; attempts that take time count", () => {
  const backoff = new Backoff(reconnectPolicy({ maxElapsedMs: 1_000, initialDelayMs: 50, maxDelayMs: 300 }), 0, 30_000);
  assert.equal(backoff.giveUpAt, 1_000);
  assert.equal(backoff.next(0), 50);
  assert.equal(backoff.next(600), 100, "an attempt took 550 ms");
  assert.equal(backoff.next(800), 200);
  assert.equal(backoff.next(990), 10, "cut to the give-up time");
  assert.equal(backoff.next(1_000), undefined);
});

test("acknowledgements come every quarter of the retention, never backwards", () => {
  assert.equal(acknowledgeEveryBytes(1024 * 1024), 256 * 1024);
  assert.equal(acknowledgeEveryBytes(2), 1);
  const policy = new AcknowledgePolicy(100);
  assert.equal(policy.received(60), false);
  assert.equal(policy.received(40), true);
  assert.equal(policy.take(7), 7);
  assert.equal(policy.acknowledged, 7);
  assert.equal(policy.received(99), false, "the count starts again after an acknowledgement");
  assert.equal(policy.received(1), true);
  assert.equal(policy.take(7), undefined, "nothing new to acknowledge");
  assert.equal(policy.received(1), true, "still due: the next move is acknowledged at once");
  assert.equal(policy.take(9), 9);
  assert.equal(policy.take(9, true), 9, "after a replay, acknowledged again");
  assert.equal(policy.take(0, true), undefined, "nothing received: nothing to acknowledge");
});

test("processes no route follows are acknowledged as their output arrives", () => {
  const unrouted = new UnroutedAcknowledgements(6);
  // 8 base64 characters are 6 bytes.
  assert.equal(unrouted.received("p", 1, "YWJj"), undefined);
  assert.equal(unrouted.received("p", 2, "YWJj"), 2);
  assert.equal(unrouted.received("q", 1, "YWJjZGVm"), 1);
  assert.equal(unrouted.received("p", 3, "YWJj"), undefined);
  assert.equal(unrouted.received("p", 4, undefined), undefined, "the exit forgets the process");
  assert.equal(unrouted.received("p", 5, "YWJj"), undefined, "counted from zero again");
});
