/**
 * Reconnecting against the real server, through a TCP proxy that cuts the
 * connection abruptly (a reset, no close frame): 100 MB of output received
 * byte-exact across the cuts, a call pending at a cut failing with
 * `ConnectionLostError`, a `process/start` cut before its answer started
 * once, a session taken over by another connection (close code 4000)
 * closing the client for good, and reconnecting turned off.
 */

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { watch } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { ConnectionClosedError, ConnectionLostError, type ConnectionState, ExecClient } from "exec-server-client";
import { WebSocket } from "ws";

import { type CuttingProxy, startCuttingProxy } from "./cutting-proxy.js";
import { type TestServer, collect, reaches, readUntil, startServer } from "./harness.js";

/** Output of the big test: 100,000,000 bytes of numbered lines, each different. */
const BIG_OUTPUT_COMMAND = "seq -w 0 99999999 | head -c 100000000";

/** How often the big test's proxy cuts: every 4 MiB from the server. */
const CUT_EVERY_BYTES = 4 * 1024 * 1024;

let server: TestServer;
let directory: string;

before(async () => {
  server = await startServer();
  directory = await mkdtemp(join(tmpdir(), "exec-server-client-resume-"));
});

after(async () => {
  await server?.stop();
  if (directory !== undefined) {
    await rm(directory, { recursive: true, force: true });
  }
});

/** The SHA-256 (hex) and length of what `command` prints when run here with `sh -c`. */
async function localDigest(command: string): Promise<{ sha256: string; bytes: number }> {
  const child = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "inherit"] });
  const hash = createHash("sha256");
  let bytes = 0;
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytes += chunk.byteLength;
  }
  return { sha256: hash.digest("hex"), bytes };
}

/** Records every state `client` goes through. */
function recordStates(client: ExecClient): ConnectionState[] {
  const states: ConnectionState[] = [];
  client.onConnectionStateChange((state) => states.push(state));
  return states;
}

test("100 MB of output arrive byte-exact through a connection cut every 4 MiB", { timeout: 120_000 }, async () => {
  const proxy = await startCuttingProxy(server.url, { cutEveryBytes: CUT_EVERY_BYTES });
  const client = await ExecClient.connect(proxy.url, { clientName: "resume-100mb" });
  const states = recordStates(client);
  try {
    const expected = localDigest(BIG_OUTPUT_COMMAND);
    const proc = await client.spawn({ argv: ["sh", "-c", BIG_OUTPUT_COMMAND] });
    const hash = createHash("sha256");
    let bytes = 0;
    let lastSeq = 0;
    for await (const chunk of proc.output) {
      assert.ok(chunk.seq > lastSeq, `seq ${chunk.seq} after ${lastSeq}`);
      lastSeq = chunk.seq;
      hash.update(chunk.data);
      bytes += chunk.data.byteLength;
    }
    assert.deepEqual({ sha256: hash.digest("hex"), bytes }, await expected);
    assert.equal(proc.droppedBytes, 0);
    assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
    assert.ok(proxy.cuts > 0, "the proxy cut the connection");
    // A cut may come right after the last bytes the process needed: wait
    // for the reconnect it started.
    if (client.connectionState.status !== "connected") {
      await reaches(client, "connected");
    }
    const reconnects = states.filter((state) => state.status === "connected").length;
    assert.equal(reconnects, proxy.cuts, `${proxy.cuts} cuts, states ${states.map((state) => state.status).join(" ")}`);
    assert.equal(client.connectionState.status, "connected");
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("a call pending at a cut fails with ConnectionLostError; the client reconnects and goes on", { timeout: 30_000 }, async () => {
  const proxy = await startCuttingProxy(server.url);
  const client = await ExecClient.connect(proxy.url, { clientName: "resume-lost-call" });
  try {
    const proc = await client.spawn({ argv: ["sleep", "30"] });
    // A long poll the server holds: pending when the cut comes.
    const read = client.request("process/read", { processId: proc.processId, afterSeq: 0, waitMs: 20_000 });
    await client.request("process/list", {});
    const connected = reaches(client, "connected");
    proxy.cutNow();
    await assert.rejects(read, (error: unknown) => {
      assert.ok(error instanceof ConnectionLostError, String(error));
      assert.equal(error.method, "process/read");
      return true;
    });
    await connected;
    const { processes } = await client.request("process/list", {});
    assert.deepEqual(
      processes.filter((process) => process.processId === proc.processId).map((process) => process.running),
      [true],
      "the process survived the cut",
    );
    assert.equal(await proc.terminate(), true);
    assert.deepEqual(await proc.wait(), { exitCode: 137, signal: "kill", reason: "killed" });
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("a process/start whose answer a cut lost is sent again and starts the process once", { timeout: 30_000 }, async () => {
  const proxy = await startCuttingProxy(server.url);
  const client = await ExecClient.connect(proxy.url, { clientName: "resume-start" });
  try {
    const runs = join(directory, "runs");
    // The start's answer is the first message with a `pid` the server sends.
    const cut = proxy.cutAtMarker('"pid"');
    const proc = await client.spawn({ argv: ["sh", "-c", `echo ran >> ${runs}; echo hello`] });
    await cut;
    assert.equal(proxy.cuts, 1);
    const collected = await collect(proc);
    assert.deepEqual(collected, { stdout: "hello\n", stderr: "", status: { exitCode: 0, signal: null, reason: "exited" } });
    assert.equal(await readFile(runs, "utf8"), "ran\n");
    const { processes } = await client.request("process/list", {});
    assert.deepEqual(
      processes.filter((process) => process.processId === proc.processId).map((process) => process.pid),
      [proc.pid],
    );
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("a write pending at a cut is sent again and applied once", { timeout: 30_000 }, async () => {
  const proxy = await startCuttingProxy(server.url);
  const client = await ExecClient.connect(proxy.url, { clientName: "resume-write" });
  try {
    const proc = await client.spawn({ argv: ["cat"], pipeStdin: true });
    // Cut as soon as the write is sent: whether it reached the server or
    // not, its answer did not come back.
    const written = proc.write("once\n");
    proxy.cutNow();
    await written;
    await proc.closeStdin();
    assert.equal((await collect(proc)).stdout, "once\n");
    assert.equal(proxy.cuts, 1);
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("a process that ended while the connection was down: its output and exit arrive after the resume", { timeout: 30_000 }, async () => {
  const proxy = await startCuttingProxy(server.url);
  const client = await ExecClient.connect(proxy.url, { clientName: "resume-exit-while-down" });
  try {
    const done = join(directory, "done");
    const finished = new Promise<void>((resolve) => {
      const watcher = watch(directory, (_, name) => {
        if (name === "done") {
          watcher.close();
          resolve();
        }
      });
    });
    // After the write, the process goes on by itself: a moment (its own
    // sleep, not the test's) to be sure the network is down by then.
    const script = `echo start; read line; sleep 0.2; echo "got $line"; echo end; : > ${done}`;
    const proc = await client.spawn({ argv: ["sh", "-c", script], pipeStdin: true });
    const output = proc.output[Symbol.asyncIterator]();
    let text = await readUntil(output, "start\n");
    await proc.write("before the cut\n");
    proxy.holdNew();
    proxy.cutNow();
    // Up again only once the process wrote its last line, about when it
    // exits: its end is read back, or notified, after the resume.
    await finished;
    proxy.release();
    for (let next = await output.next(); next.done !== true; next = await output.next()) {
      text += Buffer.from(next.value.data).toString();
    }
    assert.equal(text, "start\ngot before the cut\nend\n");
    assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
    assert.equal(proc.droppedBytes, 0);
  } finally {
    await client.close();
    await proxy.close();
  }
});

test("the session's TTL passing while the network is down closes the client; a TTL of 0 never reconnects", { timeout: 30_000 }, async () => {
  const [shortServer, noSessionServer] = await Promise.all([
    startServer({ args: ["--session-ttl", "1"] }),
    startServer({ args: ["--session-ttl", "0"] }),
  ]);
  const shortProxy = await startCuttingProxy(shortServer.url);
  const noSessionProxy = await startCuttingProxy(noSessionServer.url);
  try {
    const client = await ExecClient.connect(shortProxy.url, { clientName: "resume-ttl" });
    assert.equal(client.initializeResponse.limits.sessionTtlMs, 1_000);
    const states = recordStates(client);
    const proc = await client.spawn({ argv: ["sleep", "30"] });
    const closed = reaches(client, "closed");
    shortProxy.holdNew();
    shortProxy.cutNow();
    const state = await closed;
    assert.ok(state.status === "closed");
    assert.match(state.error.message, /reconnecting gave up after \d+ attempts/);
    assert.equal(states[0]?.status, "reconnecting");
    await assert.rejects(proc.wait(), ConnectionClosedError);
    await client.close();

    const plain = await ExecClient.connect(noSessionProxy.url, { clientName: "resume-ttl-0" });
    assert.equal(plain.initializeResponse.limits.sessionTtlMs, 0);
    const plainStates = recordStates(plain);
    await plain.request("process/list", {});
    const plainClosed = reaches(plain, "closed");
    noSessionProxy.cutNow();
    await plainClosed;
    assert.deepEqual(
      plainStates.map((state) => state.status),
      ["closed"],
    );
    await plain.close();
  } finally {
    shortProxy.release();
    await Promise.all([shortProxy.close(), noSessionProxy.close()]);
    await Promise.all([shortServer.stop(), noSessionServer.stop()]);
  }
});

test("another connection resuming the session closes the client for good (code 4000)", { timeout: 30_000 }, async () => {
  const client = await ExecClient.connect(server.url, { clientName: "resume-taken-over" });
  const states = recordStates(client);
  let raw: WebSocket | undefined;
  try {
    const proc = await client.spawn({ argv: ["sleep", "30"] });
    const closed = reaches(client, "closed");
    // A second client, without the SDK, takes the session over.
    const taker = new WebSocket(server.url);
    raw = taker;
    await new Promise((resolve, reject) => {
      taker.once("open", resolve);
      taker.once("error", reject);
    });
    const answer = new Promise<Record<string, unknown>>((resolve) => taker.once("message", (data) => resolve(JSON.parse(String(data)))));
    taker.send(
      JSON.stringify({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { clientName: "taker", resumeSessionId: client.initializeResponse.sessionId },
      }),
    );
    const response = await answer;
    assert.equal((response["result"] as { sessionId: string }).sessionId, client.initializeResponse.sessionId);
    const state = await closed;
    assert.ok(state.status === "closed");
    assert.match(state.error.message, /resumed by another connection.*\(code 4000/);
    assert.deepEqual(
      states.map((state) => state.status),
      ["closed"],
      "no reconnect",
    );
    await assert.rejects(proc.wait(), ConnectionClosedError);
    await assert.rejects(client.request("process/list", {}), ConnectionClosedError);
  } finally {
    raw?.close();
    await client.close();
  }
});

test("with reconnect: false a cut closes the client, as without resumable sessions", { timeout: 30_000 }, async () => {
  const proxy = await startCuttingProxy(server.url);
  const client = await ExecClient.connect(proxy.url, { clientName: "resume-off", reconnect: false });
  const states = recordStates(client);
  try {
    const proc = await client.spawn({ argv: ["sleep", "30"] });
    const read = client.request("process/read", { processId: proc.processId, afterSeq: 0, waitMs: 20_000 });
    const waited = proc.wait();
    await client.request("process/list", {});
    const rejected = [read, waited].map((pending) =>
      assert.rejects(pending, (error: unknown) => {
        assert.ok(error instanceof ConnectionClosedError && !(error instanceof ConnectionLostError), String(error));
        return true;
      }),
    );
    proxy.cutNow();
    await Promise.all(rejected);
    assert.equal(client.isClosed, true);
    assert.deepEqual(
      states.map((state) => state.status),
      ["closed"],
    );
    assert.equal(proxy.cuts, 1);
  } finally {
    await client.close();
    await proxy.close();
  }
});
