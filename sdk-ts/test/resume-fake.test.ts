/**
 * Reconnecting against a scripted fake server (a `ws` WebSocketServer in
 * this process) that keeps sessions: what the client sends when it resumes
 * (`resumeSessionId`, `acknowledgeOutput`, a `process/read` from the newest
 * seq it has, a `process/ack`), what it does with calls pending at the drop,
 * and how it ends (close code 4000, `unknownSession`, giving up, reconnect
 * off). The real server's side is in `resume.test.ts`.
 */

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import {
  ConnectionClosedError,
  ConnectionLostError,
  type ConnectionState,
  ExecClient,
  type ProcessReadResponse,
} from "exec-server-client";
import { type WebSocket, WebSocketServer } from "ws";

import { reaches } from "./harness.js";

/** A JSON-RPC message as the fake sees it. */
interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
}

/** One connection to the fake: what it received, and how to answer. */
interface FakeConnection {
  /** The socket. */
  readonly socket: WebSocket;
  /** Every message received, in order. */
  readonly received: Message[];
  /** Sends a JSON-RPC message; `then` runs once it is written. */
  send(message: object, then?: () => void): void;
}

/** Answers requests after `initialize`; sees every message first. */
type Script = (message: Message, connection: FakeConnection) => void;

/** The session id the fake hands out. */
const SESSION = "0123456789abcdef0123456789abcdef";

/** A fake server with sessions: `initialize` with {@link SESSION} resumes, any other id is unknown. */
class Fake {
  /** Every connection, in order. */
  readonly connections: FakeConnection[] = [];
  /** Answers requests after `initialize`. */
  script: Script = () => {};
  /** Whether a resume of {@link SESSION} succeeds; `false` answers it with `unknownSession`. */
  sessionKnown = true;
  /** Whether new connections are cut at once. */
  refuse = false;
  /** Wakes whoever waits for a message. */
  #waiters: (() => void)[] = [];

  private constructor(
    readonly server: WebSocketServer,
    readonly url: string,
  ) {}

  /** A fake on a free port. */
  static async start(): Promise<Fake> {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await new Promise<void>((resolve) => server.once("listening", resolve));
    const fake = new Fake(server, `ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on("connection", (socket: WebSocket) => fake.#accept(socket));
    return fake;
  }

  /** Resolves with the first message on connection `index` (waiting for the connection too) that `matches`. */
  async message(index: number, matches: (message: Message) => boolean): Promise<Message> {
    for (;;) {
      const found = this.connections[index]?.received.find(matches);
      if (found !== undefined) {
        return found;
      }
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Stops listening and cuts every connection. */
  async stop(): Promise<void> {
    for (const client of this.server.clients) {
      client.terminate();
    }
    await new Promise((resolve) => this.server.close(resolve));
  }

  #accept(socket: WebSocket): void {
    if (this.refuse) {
      socket.terminate();
      return;
    }
    const connection: FakeConnection = {
      socket,
      received: [],
      send: (message, then) => socket.send(JSON.stringify({ jsonrpc: "2.0", ...message }), then),
    };
    this.connections.push(connection);
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as Message;
      connection.received.push(message);
      if (message.method === "initialize") {
        const resume = message.params?.["resumeSessionId"];
        if (resume !== undefined && (resume !== SESSION || !this.sessionKnown)) {
          connection.send({ id: message.id, error: { code: -32602, message: "unknown session", data: { kind: "unknownSession" } } });
        } else {
          connection.send({ id: message.id, result: initializeResult() });
        }
      } else {
        this.script(message, connection);
      }
      for (const wake of this.#waiters.splice(0)) {
        wake();
      }
    });
  }
}

/** The fake's `initialize` result: sessions kept 30 s, 1000 bytes retained per process. */
function initializeResult(): object {
  return {
    protocolVersion: "exec-server.v1",
    sessionId: SESSION,
    serverInfo: { name: "fake", version: "0" },
    platform: { os: "linux", arch: "x86_64" },
    limits: { maxMessageBytes: 1_000_000, maxProcessesPerConnection: 8, retainedOutputBytesPerProcess: 1_000, sessionTtlMs: 30_000 },
  };
}

/** A `process/output` notification of `text`. */
function output(processId: string, seq: number, text: string): object {
  return { method: "process/output", params: { processId, seq, stream: "stdout", chunk: Buffer.from(text).toString("base64") } };
}

/** A `process/read` result. */
function readResult(chunks: [number, string][], nextSeq: number, done: boolean): ProcessReadResponse {
  return {
    chunks: chunks.map(([seq, text]) => ({ seq, stream: "stdout", chunk: Buffer.from(text).toString("base64") })),
    nextSeq,
    exited: done,
    exitCode: done ? 0 : null,
    signal: null,
    closed: done,
    droppedBytes: 0,
  };
}

/** Records every state of `client`. */
function recordStates(client: ExecClient): ConnectionState["status"][] {
  const states: ConnectionState["status"][] = [];
  client.onConnectionStateChange((state) => states.push(state.status));
  return states;
}

test("a drop mid-output: resume, read back from the newest seq held, every byte once, the exit from the read", { timeout: 10_000 }, async () => {
  const fake = await Fake.start();
  fake.script = (message, connection) => {
    if (message.method === "process/start") {
      const processId = String(message.params?.["processId"]);
      connection.send({ id: message.id, result: { processId, pid: 42 } });
      connection.send(output(processId, 1, "a"));
      connection.send(output(processId, 2, "b"));
      // No close frame: a dropped TCP connection, once the three went out.
      connection.send(output(processId, 3, "c"), () => connection.socket.terminate());
    } else if (message.method === "process/read") {
      // Seq 4, the exit (5) and the close (6) were lost with the old
      // connection; `nextSeq` is the seq after the close.
      connection.send({ id: message.id, result: readResult([[4, "d"]], 7, true) });
    }
  };
  const client = await ExecClient.connect(fake.url);
  const states = recordStates(client);
  try {
    const initialize = await fake.message(0, (message) => message.method === "initialize");
    assert.equal(initialize.params?.["acknowledgeOutput"], true);
    const proc = await client.spawn({ argv: ["anything"], processId: "p" });
    let text = "";
    for await (const chunk of proc.output) {
      text += Buffer.from(chunk.data).toString();
    }
    assert.equal(text, "abcd");
    assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
    const resume = await fake.message(1, (message) => message.method === "initialize");
    assert.deepEqual(resume.params, { clientName: "exec-server-client", acknowledgeOutput: true, binaryOutput: true, resumeSessionId: SESSION });
    const replay = await fake.message(1, (message) => message.method === "process/read");
    assert.deepEqual(replay.params, { processId: "p", afterSeq: 3 });
    const ack = await fake.message(1, (message) => message.method === "process/ack");
    assert.deepEqual(ack.params, { processId: "p", seq: 6 });
    assert.deepEqual(states, ["reconnecting", "connected"]);
    assert.equal(client.connectionState.status, "connected");
  } finally {
    await client.close();
    await fake.stop();
  }
});

test("pending at a drop: start and write are sent again, other calls fail with ConnectionLostError", { timeout: 10_000 }, async () => {
  const fake = await Fake.start();
  let cut = false;
  fake.script = (message, connection) => {
    if (message.method === "process/list" && !cut) {
      // The list, the write and the start wait on the first connection: cut it.
      return;
    }
    if (message.method === "process/write" && !cut) {
      return;
    }
    if (message.method === "process/start" && message.params?.["processId"] === "late" && !cut) {
      cut = true;
      connection.socket.terminate();
      return;
    }
    if (message.method === "process/start") {
      const processId = String(message.params?.["processId"]);
      connection.send({ id: message.id, result: { processId, pid: 7 } });
    } else if (message.method === "process/write") {
      connection.send({ id: message.id, result: { status: "accepted" } });
    } else if (message.method === "process/read") {
      connection.send({ id: message.id, result: readResult([], 1, false) });
    } else if (message.method === "process/list") {
      connection.send({ id: message.id, result: { processes: [] } });
    }
  };
  const client = await ExecClient.connect(fake.url);
  try {
    const proc = await client.spawn({ argv: ["cat"], processId: "p", pipeStdin: true });
    const list = client.request("process/list", {});
    const write = proc.write("hello");
    const late = client.spawn({ argv: ["true"], processId: "late" });
    await assert.rejects(list, (error: unknown) => {
      assert.ok(error instanceof ConnectionLostError, String(error));
      assert.equal(error.method, "process/list");
      return true;
    });
    await write;
    assert.equal((await late).pid, 7);
    // A call made after the drop waits for the reconnect.
    assert.deepEqual(await client.request("process/list", {}), { processes: [] });
    const writes = fake.connections.map((connection) => connection.received.filter((message) => message.method === "process/write"));
    assert.equal(writes[0]?.length, 1);
    assert.deepEqual(writes[1]?.map((message) => message.params), writes[0]?.map((message) => message.params));
    assert.equal(typeof writes[0]?.[0]?.params?.["writeId"], "string");
    const starts = fake.connections[1]?.received.filter((message) => message.method === "process/start");
    assert.deepEqual(starts?.map((message) => message.params?.["processId"]), ["late"]);
    // The replay comes before the calls that waited: the read of "p" (and
    // of "late", not started yet) before the start sent again.
    const order = fake.connections[1]?.received.map((message) => message.method) ?? [];
    assert.ok(order.indexOf("process/read") < order.indexOf("process/start"), order.join(", "));
  } finally {
    await client.close();
    await fake.stop();
  }
});

test("close code 4000: the session was taken over; closed, no reconnect", { timeout: 10_000 }, async () => {
  const fake = await Fake.start();
  fake.script = (message, connection) => {
    if (message.method === "process/list") {
      connection.socket.close(4000, "session resumed by another connection");
    }
  };
  const client = await ExecClient.connect(fake.url);
  const states = recordStates(client);
  try {
    await assert.rejects(client.request("process/list", {}), (error: unknown) => {
      assert.ok(error instanceof ConnectionClosedError && !(error instanceof ConnectionLostError), String(error));
      assert.match(error.message, /resumed by another connection.*4000/);
      return true;
    });
    assert.deepEqual(states, ["closed"]);
    assert.equal(client.isClosed, true);
    assert.equal(fake.connections.length, 1);
  } finally {
    await client.close();
    await fake.stop();
  }
});

test("unknownSession on resume closes the client; its process's wait() fails", { timeout: 10_000 }, async () => {
  const fake = await Fake.start();
  fake.script = (message, connection) => {
    if (message.method === "process/start") {
      connection.send({ id: message.id, result: { processId: String(message.params?.["processId"]), pid: 1 } });
    } else if (message.method === "process/list") {
      // The session ends with this connection: its TTL ran out, as it were.
      fake.sessionKnown = false;
      connection.socket.terminate();
    }
  };
  const client = await ExecClient.connect(fake.url);
  const states = recordStates(client);
  try {
    const proc = await client.spawn({ argv: ["sleep", "9"] });
    const closed = reaches(client, "closed");
    await assert.rejects(client.request("process/list", {}), ConnectionLostError);
    const state = await closed;
    assert.ok(state.status === "closed");
    assert.match(state.error.message, /could not be resumed.*unknownSession/);
    await assert.rejects(proc.wait(), ConnectionClosedError);
    await assert.rejects(client.request("process/list", {}), ConnectionClosedError);
    assert.deepEqual(states, ["reconnecting", "closed"]);
  } finally {
    await client.close();
    await fake.stop();
  }
});

test("reconnecting gives up after maxElapsedMs; calls made meanwhile fail with ConnectionClosedError", { timeout: 10_000 }, async () => {
  const fake = await Fake.start();
  fake.script = (message, connection) => {
    if (message.method === "process/list") {
      // Refuse every new connection from now on, then drop this one.
      fake.refuse = true;
      connection.socket.terminate();
    }
  };
  const client = await ExecClient.connect(fake.url, { reconnect: { maxElapsedMs: 500, initialDelayMs: 50 } });
  try {
    const attempts: number[] = [];
    client.onConnectionStateChange((state) => {
      if (state.status === "reconnecting") {
        attempts.push(state.attempt);
      }
    });
    const closed = reaches(client, "closed");
    await assert.rejects(client.request("process/list", {}), ConnectionLostError);
    const waiting = client.request("fs/getMetadata", { path: "/" });
    const state = await closed;
    assert.ok(state.status === "closed");
    assert.match(state.error.message, /reconnecting gave up after \d+ attempts/);
    await assert.rejects(waiting, ConnectionClosedError);
    assert.ok(attempts.length >= 2, `attempts ${attempts.join(", ")}`);
    assert.deepEqual(attempts, attempts.map((_, index) => index + 1));
  } finally {
    await client.close();
    await fake.stop();
  }
});

test("reconnect: false: a drop closes the client as before, without acknowledgeOutput", { timeout: 10_000 }, async () => {
  const fake = await Fake.start();
  fake.script = (message, connection) => {
    if (message.method === "process/list") {
      connection.socket.terminate();
    }
  };
  const client = await ExecClient.connect(fake.url, { reconnect: false });
  const states = recordStates(client);
  try {
    const initialize = await fake.message(0, (message) => message.method === "initialize");
    assert.equal(initialize.params?.["acknowledgeOutput"], undefined);
    await assert.rejects(client.request("process/list", {}), (error: unknown) => {
      assert.ok(error instanceof ConnectionClosedError, String(error));
      assert.match(error.message, /closed \(code 1006/);
      return true;
    });
    assert.deepEqual(states, ["closed"]);
    assert.equal(fake.connections.length, 1);
  } finally {
    await client.close();
    await fake.stop();
  }
});
