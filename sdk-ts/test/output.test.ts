/**
 * Lossless output against the real server: consumers that fall behind
 * 10 MB of output still receive every byte in order, and a loss is
 * reported exactly when the server no longer retains the bytes.
 *
 * The output is 1,000,000 numbered lines of 10 bytes (`000000000\n`,
 * `000000001\n`, ...), so order and completeness are checked byte by byte.
 */

import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, test } from "node:test";

import type { ExecClient, RemoteProcess } from "exec-server-client";

import { type TestServer, connect, startServer, waitClosedOnServer } from "./harness.js";

/** Lines the producer writes. */
const LINES = 1_000_000;
/** Bytes of one line: 9 digits and a newline. */
const LINE_BYTES = 10;
/** All the output: 10,000,000 bytes. */
const TOTAL_BYTES = LINES * LINE_BYTES;
/** Prints the numbered lines as fast as it can. */
const PRODUCER = ["awk", `BEGIN { for (i = 0; i < ${LINES}; i++) printf "%09d\\n", i }`];

/** Retention of the second server: more than all the output, so nothing is evicted. */
const LARGE_RETENTION_BYTES = 16 * 1024 * 1024;

/** A server with the default retention (1 MiB per process), one that keeps 16 MiB. */
let defaultServer: TestServer;
let largeServer: TestServer;

before(async () => {
  defaultServer = await startServer();
  largeServer = await startServer({ args: ["--retained-output-bytes", String(LARGE_RETENTION_BYTES)] });
});

after(async () => {
  await defaultServer?.stop();
  await largeServer?.stop();
});

/**
 * Checks the numbered lines as they stream by: every byte in order, with a
 * jump allowed only where the process reported a loss. Byte arithmetic,
 * not strings, so 10 MB checks quickly.
 */
class LineChecker {
  /** The position in the whole stream of the next byte expected. */
  position = 0;
  /** Bytes received. */
  received = 0;
  /** Chunks received. */
  chunks = 0;
  /** The seq of the last chunk. */
  lastSeq = 0;

  /** Checks one chunk; `lostBefore` bytes were reported lost just before it. */
  take(seq: number, data: Uint8Array, lostBefore: number): void {
    assert.ok(seq > this.lastSeq, `seq ${seq} after ${this.lastSeq}`);
    this.lastSeq = seq;
    this.position += lostBefore;
    for (let index = 0; index < data.length; index += 1) {
      const at = this.position + index;
      const column = at % LINE_BYTES;
      const expected = column === LINE_BYTES - 1 ? 0x0a : 0x30 + (Math.floor(Math.floor(at / LINE_BYTES) / 10 ** (8 - column)) % 10);
      if (data[index] !== expected) {
        assert.fail(`byte ${at} (line ${Math.floor(at / LINE_BYTES)}) is ${data[index]}, expected ${expected}`);
      }
    }
    this.position += data.length;
    this.received += data.length;
    this.chunks += 1;
  }
}

/**
 * Reads all of `proc`'s output into a checker, calling `slowDown` after
 * each chunk (a consumer's own processing time).
 */
async function consume(proc: RemoteProcess, slowDown?: (chunks: number) => Promise<void>): Promise<LineChecker> {
  const checker = new LineChecker();
  let lostSoFar = 0;
  for await (const chunk of proc.output) {
    checker.take(chunk.seq, chunk.data, proc.droppedBytes - lostSoFar);
    lostSoFar = proc.droppedBytes;
    await slowDown?.(checker.chunks);
  }
  assert.equal(checker.position + proc.droppedBytes - lostSoFar, TOTAL_BYTES);
  return checker;
}

test("a slow consumer receives every byte of 10 MB, the server held back", { timeout: 60_000 }, async () => {
  const client = await connect(defaultServer, "slow-consumer", { outputBufferBytes: 256 * 1024 });
  try {
    const proc = await client.spawn({ argv: PRODUCER });
    // The consumer takes its time over its first chunks: simulated slow
    // processing, not a wait for anything. The client pauses the socket
    // instead of dropping, so the server stops reading the producer.
    const checker = await consume(proc, async (chunks) => {
      if (chunks <= 40) {
        await delay(20);
      }
    });
    assert.equal(checker.received, TOTAL_BYTES);
    assert.equal(proc.droppedBytes, 0);
    assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
  } finally {
    await client.close();
  }
});

test("a consumer that starts after all 10 MB were sent is caught up from the server", { timeout: 60_000 }, async () => {
  const client = await connect(largeServer, "late-consumer");
  try {
    const proc = await client.spawn({ argv: PRODUCER });
    // Nobody iterates yet: the client buffers a little, leaves the rest on
    // the server, and the process runs to its end.
    await waitClosedOnServer(client, proc.processId);
    assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
    const checker = await consume(proc);
    assert.equal(checker.received, TOTAL_BYTES);
    assert.equal(proc.droppedBytes, 0);
  } finally {
    await client.close();
  }
});

test("a consumer that stalls while iterating is given up on, then caught up", { timeout: 60_000 }, async () => {
  const client: ExecClient = await connect(largeServer, "stalled-consumer", {
    outputBufferBytes: 256 * 1024,
    outputStallTimeoutMs: 200,
  });
  try {
    const proc = await client.spawn({ argv: PRODUCER });
    const checker = await consume(proc, async (chunks) => {
      if (chunks === 1) {
        // Stalls inside the loop until the server closed the process. Its
        // long poll is itself held back until the client stops waiting
        // for this consumer (after 200 ms).
        await waitClosedOnServer(client, proc.processId);
      }
    });
    assert.equal(checker.received, TOTAL_BYTES);
    assert.equal(proc.droppedBytes, 0);
  } finally {
    await client.close();
  }
});

test("beyond the server's retention the loss is reported exactly", { timeout: 60_000 }, async () => {
  const client = await connect(defaultServer, "evicted-output");
  try {
    const retained = client.initializeResponse.limits.retainedOutputBytesPerProcess;
    const proc = await client.spawn({ argv: PRODUCER });
    await waitClosedOnServer(client, proc.processId);
    // `consume` checks that what arrived is in place, around the gap.
    const checker = await consume(proc);
    assert.ok(proc.droppedBytes > 0, `the server retains only ${retained} bytes`);
    assert.equal(checker.received + proc.droppedBytes, TOTAL_BYTES);
  } finally {
    await client.close();
  }
});
