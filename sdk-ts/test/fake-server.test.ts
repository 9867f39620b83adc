/**
 * What the real server does not do on demand, against a scripted fake
 * server (a `ws` WebSocketServer in this process): a `seq` gap in the
 * notifications filled from `process/read`, an eviction reported as lost
 * bytes at its place, and protocol violations.
 */

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";

import { ConnectError, ConnectionClosedError, ExecClient, ProtocolError } from "exec-server-client";
import { type WebSocket, WebSocketServer } from "ws";

/** A JSON-RPC message as the fake server sees it. */
interface Message {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
}

/** How the fake answers one request: a result, or nothing (it sends its own messages). */
type Script = (message: Message, send: (message: object) => void) => void;

let fake: WebSocketServer;
let url: string;
/** What the fake does with the requests after `initialize`. */
let script: Script = () => {};

const INITIALIZE_RESULT = {
  protocolVersion: "exec-server.v1",
  sessionId: "fake",
  serverInfo: { name: "fake", version: "0" },
  platform: { os: "linux", arch: "x86_64" },
  limits: { maxMessageBytes: 1_000_000, maxProcessesPerConnection: 8, retainedOutputBytesPerProcess: 1_000, sessionTtlMs: 0 },
};

before(async () => {
  fake = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => fake.once("listening", resolve));
  url = `ws://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  fake.on("connection", (socket: WebSocket) => {
    const send = (message: object): void => socket.send(JSON.stringify({ jsonrpc: "2.0", ...message }));
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as Message;
      if (message.method === "initialize") {
        send({ id: message.id, result: INITIALIZE_RESULT });
      } else if (message.id !== undefined) {
        script(message, send);
      }
    });
  });
});

after(async () => {
  for (const client of fake?.clients ?? []) {
    client.terminate();
  }
  await new Promise((resolve) => fake?.close(resolve));
});

/** Base64 of a string. */
function base64(text: string): string {
  return Buffer.from(text).toString("base64");
}

/** A `process/output` notification. */
function output(processId: string, seq: number, text: string): object {
  return { method: "process/output", params: { processId, seq, stream: "stdout", chunk: base64(text) } };
}

/** The exit and close notifications of a process exiting with 0. */
function exitAndClose(processId: string, exitSeq: number): object[] {
  return [
    { method: "process/exited", params: { processId, seq: exitSeq, exitCode: 0, signal: null, reason: "exited" } },
    { method: "process/closed", params: { processId, seq: exitSeq + 1 } },
  ];
}

/** A `process/read` result of an exited and closed process; `nextSeq` is the close's seq + 1. */
function readResult(chunks: [number, string][], nextSeq: number, droppedBytes: number): object {
  return {
    chunks: chunks.map(([seq, text]) => ({ seq, stream: "stdout", chunk: base64(text) })),
    nextSeq,
    exited: true,
    exitCode: 0,
    signal: null,
    closed: true,
    droppedBytes,
  };
}

/** All the output of `proc` as text, with `droppedBytes` read after each chunk. */
async function readAll(proc: Awaited<ReturnType<ExecClient["spawn"]>>): Promise<[string, number][]> {
  const seen: [string, number][] = [];
  for await (const chunk of proc.output) {
    seen.push([Buffer.from(chunk.data).toString(), proc.droppedBytes]);
  }
  return seen;
}

test("a seq gap in the notifications is filled from process/read", { timeout: 10_000 }, async () => {
  const reads: unknown[] = [];
  script = (message, send) => {
    if (message.method === "process/start") {
      const processId = String(message.params?.["processId"]);
      send({ id: message.id, result: { processId, pid: 42 } });
      // seq 2 never comes as a notification.
      for (const notification of [output(processId, 1, "a"), output(processId, 3, "c"), ...exitAndClose(processId, 4)]) {
        send(notification);
      }
    } else if (message.method === "process/read") {
      reads.push(message.params);
      send({ id: message.id, result: readResult([[2, "b"], [3, "c"]], 6, 0) });
    }
  };
  const client = await ExecClient.connect(url);
  try {
    const proc = await client.spawn({ argv: ["anything"], processId: "gap" });
    assert.deepEqual(await readAll(proc), [["a", 0], ["b", 0], ["c", 0]]);
    assert.deepEqual(reads, [{ processId: "gap", afterSeq: 1 }]);
    assert.deepEqual(await proc.wait(), { exitCode: 0, signal: null, reason: "exited" });
  } finally {
    await client.close();
  }
});

test("evicted output is reported as lost bytes at its place", { timeout: 10_000 }, async () => {
  script = (message, send) => {
    if (message.method === "process/start") {
      const processId = String(message.params?.["processId"]);
      send({ id: message.id, result: { processId, pid: 42 } });
      // seqs 2 and 3 (5 bytes) are gone from the server too.
      for (const notification of [output(processId, 1, "a"), output(processId, 4, "dd"), ...exitAndClose(processId, 5)]) {
        send(notification);
      }
    } else if (message.method === "process/read") {
      send({ id: message.id, result: readResult([[4, "dd"]], 7, 5) });
    }
  };
  const client = await ExecClient.connect(url);
  try {
    const proc = await client.spawn({ argv: ["anything"] });
    assert.deepEqual(await readAll(proc), [["a", 0], ["dd", 5]]);
    assert.equal(proc.droppedBytes, 5);
  } finally {
    await client.close();
  }
});

test("a process closed without an exit fails wait() with a ProtocolError", { timeout: 10_000 }, async () => {
  script = (message, send) => {
    if (message.method === "process/start") {
      const processId = String(message.params?.["processId"]);
      send({ id: message.id, result: { processId, pid: 42 } });
      send({ method: "process/closed", params: { processId, seq: 1 } });
    }
  };
  const client = await ExecClient.connect(url);
  try {
    const proc = await client.spawn({ argv: ["anything"] });
    await assert.rejects(proc.wait(), ProtocolError);
    assert.deepEqual(await readAll(proc), []);
  } finally {
    await client.close();
  }
});

test("a message that is not JSON closes the connection with a ProtocolError cause", { timeout: 10_000 }, async () => {
  // Not JSON: this could have been the list's response.
  script = (message) => {
    if (message.method === "process/list") {
      for (const socket of fake.clients) {
        socket.send("this is not json");
      }
    }
  };
  const client = await ExecClient.connect(url);
  await assert.rejects(client.request("process/list", {}), (error: unknown) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.ok(error.cause instanceof ProtocolError);
    assert.match(error.message, /not JSON/);
    return true;
  });
  assert.equal(client.isClosed, true);
  await client.close();
});

test("a response to a request never sent is a protocol violation", { timeout: 10_000 }, async () => {
  script = (message, send) => {
    send({ id: 999, result: {} });
    send({ id: message.id, result: { processes: [] } });
  };
  const client = await ExecClient.connect(url);
  await assert.rejects(client.request("process/list", {}), (error: unknown) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.match(String(error.cause), /id 999/);
    return true;
  });
  await client.close();
});

test("a server that closes during the handshake is a ConnectError", { timeout: 10_000 }, async () => {
  const other = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => other.once("listening", resolve));
  other.on("connection", (socket: WebSocket) => socket.on("message", () => socket.close(1011, "no")));
  try {
    await assert.rejects(ExecClient.connect(`ws://127.0.0.1:${(other.address() as AddressInfo).port}`), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.ok(error.cause instanceof ConnectionClosedError);
      assert.match(error.message, /code 1011.*during the handshake/);
      return true;
    });
  } finally {
    await new Promise((resolve) => other.close(resolve));
  }
});

test("another protocol version is refused at connect", { timeout: 10_000 }, async () => {
  const other = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => other.once("listening", resolve));
  other.on("connection", (socket: WebSocket) => {
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as Message;
      socket.send(JSON.stringify({ jsonrpc: "2.0", id: message.id, result: { ...INITIALIZE_RESULT, protocolVersion: "exec-server.v9" } }));
    });
  });
  try {
    await assert.rejects(
      ExecClient.connect(`ws://127.0.0.1:${(other.address() as AddressInfo).port}`),
      (error: unknown) => error instanceof ProtocolError && /exec-server\.v9/.test(error.message),
    );
  } finally {
    await new Promise((resolve) => other.close(resolve));
  }
});
