/**
 * The process API (`client.spawn` and `RemoteProcess`) against the real
 * server: pipes and PTYs, stdin, resize, signals, terminate, timeout, the
 * spawn defaults, and the errors of each control.
 */

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ExecClient, ExecError, WriteRejectedError, type WebSocketConstructor } from "exec-server-client";
import { WebSocket as NodeWebSocket } from "ws";

import { PATH, type TestServer, collect, connect, execError, readUntil, startServer } from "./harness.js";

/** A variable only the server's environment has, to tell it from the child's own. */
const SERVER_MARKER = "EXEC_TS_TEST_SERVER_MARKER";

let server: TestServer;
let client: ExecClient;

before(async () => {
  server = await startServer({ env: { [SERVER_MARKER]: "from-the-server" } });
  client = await connect(server, "process-test");
});

after(async () => {
  await client?.close();
  await server?.stop();
});

test("a pipe process: stdout, stderr, exit code, ordered seqs", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sh", "-c", "echo out; echo err >&2; exit 3"] });
  assert.ok(proc.pid > 0);
  const collected = await collect(proc);
  assert.deepEqual(collected, {
    stdout: "out\n",
    stderr: "err\n",
    status: { exitCode: 3, signal: null, reason: "exited" },
  });
  assert.equal(proc.droppedBytes, 0);
  assert.deepEqual(proc.exitStatus, { exitCode: 3, signal: null, reason: "exited" });
});

test("defaults: cwd is /, the environment is the server's, a fresh processId", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sh", "-c", `pwd; echo "marker=$${SERVER_MARKER}"`] });
  assert.equal((await collect(proc)).stdout, "/\nmarker=from-the-server\n");
  const other = await client.spawn({ argv: ["true"] });
  assert.notEqual(other.processId, proc.processId);
  assert.ok(other.processId.length > 0);
  await other.wait();
});

test("a given env replaces the server's, unless inheritEnv; cwd and processId are honoured", { timeout: 30_000 }, async () => {
  const script = `pwd; echo "marker=$${SERVER_MARKER} own=$OWN"`;
  const own = await client.spawn({ argv: ["sh", "-c", script], env: { OWN: "1" }, cwd: "/tmp", processId: "own-env" });
  assert.equal(own.processId, "own-env");
  assert.equal((await collect(own)).stdout, "/tmp\nmarker= own=1\n");
  const merged = await client.spawn({ argv: ["sh", "-c", script], env: { OWN: "2" }, inheritEnv: true });
  assert.equal((await collect(merged)).stdout, "/\nmarker=from-the-server own=2\n");
});

test("stdin: write strings and bytes, closeStdin, then writes are rejected", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["cat"], pipeStdin: true });
  await proc.write("hello ");
  await proc.write(new Uint8Array([0x77, 0x6f, 0x72, 0x6c, 0x64, 0x0a]));
  await proc.write("");
  await proc.closeStdin();
  const collected = await collect(proc);
  assert.equal(collected.stdout, "hello world\n");
  assert.deepEqual(collected.status, { exitCode: 0, signal: null, reason: "exited" });
  await assert.rejects(proc.write("late"), (error: unknown) => {
    assert.ok(error instanceof WriteRejectedError);
    assert.deepEqual({ processId: error.processId, status: error.status }, { processId: proc.processId, status: "stdinClosed" });
    return true;
  });
});

test("a write larger than one piece arrives whole", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["wc", "-c"], pipeStdin: true });
  await proc.write(new Uint8Array(3 * 1024 * 1024 + 5));
  await proc.closeStdin();
  assert.equal((await collect(proc)).stdout.trim(), String(3 * 1024 * 1024 + 5));
});

test("controls a pipe process cannot use", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sleep", "30"] });
  await assert.rejects(proc.resize(30, 100), execError(-32602, "notPty"));
  await assert.rejects(proc.closeStdin(), execError(-32602, "stdinClosed"));
  await assert.rejects(proc.write("x"), (error: unknown) => error instanceof WriteRejectedError && error.status === "stdinClosed");
  assert.equal(await proc.terminate(), true);
  assert.equal((await proc.wait()).reason, "killed");
});

test("a PTY process: size, resize, typing, exit", { timeout: 30_000 }, async () => {
  const shell = await client.spawn({ argv: ["sh"], tty: true, size: { rows: 24, cols: 80 }, env: { PATH, PS1: "$ " } });
  const output = shell.output[Symbol.asyncIterator]();
  await shell.write("stty size\n");
  let seen = await readUntil(output, "24 80");
  await shell.resize(40, 100);
  await shell.write("stty size\n");
  seen = await readUntil(output, "40 100", seen);
  await shell.write("echo hi; exit 7\n");
  await readUntil(output, "hi\r\n", seen);
  while ((await output.next()).done !== true) {
    // The rest of the terminal's output, up to the close.
  }
  assert.deepEqual(await shell.wait(), { exitCode: 7, signal: null, reason: "exited" });
});

test("a PTY process reads the terminal's EOF after closeStdin", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["cat"], tty: true, env: { PATH } });
  await proc.write("typed\n");
  await proc.closeStdin();
  const collected = await collect(proc);
  assert.match(collected.stdout, /typed\r\n/);
  assert.equal(collected.stderr, "");
  assert.deepEqual(collected.status, { exitCode: 0, signal: null, reason: "exited" });
});

test("signals: an untrapped interrupt ends it; a trapped one runs the trap", { timeout: 30_000 }, async () => {
  const sleeper = await client.spawn({ argv: ["sleep", "30"] });
  await sleeper.signal("interrupt");
  // 128 + SIGINT (2): the signal and the reason, not the code, say it was one.
  assert.deepEqual(await sleeper.wait(), { exitCode: 130, signal: "interrupt", reason: "signaled" });

  const trapper = await client.spawn({
    argv: ["sh", "-c", "trap 'echo got-user1; exit 4' USR1; echo ready; sleep 30 & wait"],
  });
  const output = trapper.output[Symbol.asyncIterator]();
  const seen = await readUntil(output, "ready\n");
  await trapper.signal("user1");
  await readUntil(output, "got-user1\n", seen);
  assert.deepEqual(await trapper.wait(), { exitCode: 4, signal: null, reason: "exited" });
});

test("terminate kills the tree; a second terminate finds nothing running", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sh", "-c", "sleep 30 & sleep 30 & wait"] });
  assert.equal(await proc.terminate(), true);
  const status = await proc.wait();
  assert.deepEqual(status, { exitCode: 137, signal: "kill", reason: "killed" });
  assert.equal(await proc.terminate(), false);
  // The output still ends, after the close.
  for await (const chunk of proc.output) {
    assert.fail(`unexpected output ${String(chunk.data)}`);
  }
});

test("timeoutMs: the server kills the process and says so", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sleep", "30"], timeoutMs: 200 });
  const status = await proc.wait();
  assert.deepEqual(status, { exitCode: 137, signal: "kill", reason: "timedOut" });
});

test("spawn errors carry their kind", { timeout: 30_000 }, async () => {
  await assert.rejects(client.spawn({ argv: ["/no/such/program"] }), execError(-32602, "spawnFailed"));
  await assert.rejects(client.spawn({ argv: ["true"], cwd: "relative/dir" }), execError(-32602, "invalidPath"));
  await assert.rejects(client.spawn({ argv: ["true"], cwd: "/no/such/directory" }), execError(-32602, "spawnFailed"));
  const first = await client.spawn({ argv: ["sleep", "30"], processId: "taken" });
  await assert.rejects(client.spawn({ argv: ["true"], processId: "taken" }), (error: unknown) => {
    assert.ok(error instanceof ExecError);
    assert.equal(error.kind, "processExists");
    assert.deepEqual(error.data, { kind: "processExists", processId: "taken" });
    return true;
  });
  // The refused spawn did not take over the first process's output.
  assert.equal(await first.terminate(), true);
  assert.equal((await first.wait()).reason, "killed");
});

test("wait() needs no reading of the output, which stays readable", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sh", "-c", "echo before; exit 5"] });
  assert.deepEqual(await proc.wait(), { exitCode: 5, signal: null, reason: "exited" });
  assert.equal((await collect(proc)).stdout, "before\n");
});

test("output can be iterated once; leaving early discards the rest", { timeout: 30_000 }, async () => {
  const proc = await client.spawn({ argv: ["sh", "-c", "echo one; echo two; echo three"] });
  for await (const chunk of proc.output) {
    assert.ok(chunk.data.byteLength > 0);
    break;
  }
  assert.throws(() => proc.output[Symbol.asyncIterator](), TypeError);
  assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
});

test("any WHATWG-compatible WebSocket class works (here one without pause)", { timeout: 30_000 }, async () => {
  /** `ws` behind the WHATWG surface only, as a browser's WebSocket would be. */
  class WhatwgWebSocket {
    readonly #socket: NodeWebSocket;
    constructor(url: string, protocols?: string | string[]) {
      this.#socket = new NodeWebSocket(url, protocols);
    }
    get readyState(): number {
      return this.#socket.readyState;
    }
    get binaryType(): string {
      return this.#socket.binaryType;
    }
    set binaryType(type: string) {
      this.#socket.binaryType = type as "arraybuffer";
    }
    send(data: string): void {
      this.#socket.send(data);
    }
    close(code?: number, reason?: string): void {
      this.#socket.close(code, reason);
    }
    addEventListener(type: "open" | "message" | "error" | "close", listener: (event: never) => void): void {
      this.#socket.addEventListener(type, listener as () => void);
    }
  }
  const whatwg: WebSocketConstructor = WhatwgWebSocket;
  const other = await ExecClient.connect(server.url, { clientName: "whatwg", WebSocket: whatwg });
  try {
    const proc = await other.spawn({ argv: ["echo", "over whatwg"] });
    assert.equal((await collect(proc)).stdout, "over whatwg\n");
  } finally {
    await other.close();
  }
});
