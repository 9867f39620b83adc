/**
 * Errors against the real server: `ExecError` with its code, kind and data
 * for each class of failure, connect failures (refused upgrade, no server,
 * a timeout), and a connection closed under pending calls, by the client
 * and by the server going away (with reconnecting off).
 */

import assert from "node:assert/strict";
import { type Server, createServer } from "node:net";
import { after, before, test } from "node:test";

import {
  ConnectError,
  ConnectionClosedError,
  ExecClient,
  ExecClientError,
  ExecError,
  MessageTooLargeError,
  type RequestMethod,
} from "exec-server-client";

import { type TestServer, connect, execError, startServer } from "./harness.js";

/** The token of the server that requires one. */
const TOKEN = "s3cret-token-for-tests";

let server: TestServer;
let tokenServer: TestServer;
let limitedServer: TestServer;
let client: ExecClient;

before(async () => {
  [server, tokenServer, limitedServer] = await Promise.all([
    startServer(),
    startServer({ env: { EXEC_SERVER_TOKEN: TOKEN } }),
    startServer({ args: ["--max-processes", "1"] }),
  ]);
  client = await connect(server, "errors-test");
});

after(async () => {
  await client?.close();
  await Promise.all([server?.stop(), tokenServer?.stop(), limitedServer?.stop()]);
});

test("an ExecError carries the code, the kind and the data", { timeout: 30_000 }, async () => {
  const error = await client.request("fs/readFile", { path: "/no/such/file" }).then(
    () => assert.fail("read a missing file"),
    (error: unknown) => error,
  );
  assert.ok(error instanceof ExecError);
  assert.ok(error instanceof ExecClientError);
  assert.equal(error.name, "ExecError");
  assert.equal(error.method, "fs/readFile");
  assert.equal(error.code, -32004);
  assert.equal(error.kind, "notFound");
  assert.deepEqual(error.data, { kind: "notFound", path: "/no/such/file" });
  assert.match(error.message, /fs\/readFile failed: .*\(code -32004, notFound\)/);
});

test("kinds of filesystem errors", { timeout: 30_000 }, async () => {
  await assert.rejects(client.request("fs/readDirectory", { path: "relative/path" }), execError(-32602, "invalidPath"));
  await assert.rejects(client.request("fs/readDirectory", { path: "/etc/hostname" }), execError(-32602, "notADirectory"));
  await assert.rejects(client.request("fs/readFile", { path: "/" }), execError(-32602, "isADirectory"));
  await assert.rejects(client.request("fs/createDirectory", { path: "/" }), execError(-32602, "alreadyExists"));
});

test("kinds of process errors", { timeout: 30_000 }, async () => {
  await assert.rejects(client.request("process/signal", { processId: "nobody", signal: "kill" }), execError(-32602, "unknownProcess"));
  await assert.rejects(client.request("process/read", { processId: "nobody" }), execError(-32602, "unknownProcess"));
  const limited = await connect(limitedServer, "limited");
  try {
    const first = await limited.spawn({ argv: ["sleep", "30"] });
    await assert.rejects(limited.spawn({ argv: ["true"] }), execError(-32602, "limitExceeded"));
    await first.terminate();
  } finally {
    await limited.close();
  }
});

test("errors without a kind: unknown method, unparseable params", { timeout: 30_000 }, async () => {
  // Past the types on purpose: the server's answers to what they reject.
  // These frames break the schema by design, so they go straight to the
  // server rather than through the conformance proxy, which would record them.
  const direct = await ExecClient.connect(server.serverUrl, { clientName: "past-the-types" });
  try {
    await assert.rejects(direct.request("no/such" as RequestMethod, {} as never), execError(-32601, undefined));
    await assert.rejects(
      direct.request("fs/readFile", { path: 42 } as unknown as { path: string }),
      (error: unknown) => error instanceof ExecError && error.code === -32602,
    );
  } finally {
    await direct.close();
  }
});

test("a message over the server's limit is refused before it is sent", { timeout: 30_000 }, async () => {
  const limit = client.initializeResponse.limits.maxMessageBytes;
  const data = "A".repeat(limit);
  await assert.rejects(client.request("fs/writeFile", { path: "/tmp/never", dataBase64: data }), (error: unknown) => {
    assert.ok(error instanceof MessageTooLargeError);
    assert.equal(error.limit, limit);
    assert.ok(error.bytes > limit);
    return true;
  });
  // The connection is still fine.
  assert.ok((await client.request("process/list", {})).processes.length >= 0);
});

test("a token server refuses a missing or wrong token with 401 and accepts the right one", { timeout: 30_000 }, async () => {
  // Straight to the server, past any conformance proxy: the upgrade and
  // its HTTP status are between the SDK and the server, and a proxy in
  // front would answer the upgrade itself.
  const url = tokenServer.serverUrl;
  for (const token of [undefined, "wrong"]) {
    await assert.rejects(
      ExecClient.connect(url, token === undefined ? {} : { token }),
      (error: unknown) => {
        assert.ok(error instanceof ConnectError, String(error));
        assert.equal(error.status, 401);
        assert.equal(error.url, url);
        return true;
      },
    );
  }
  const authorized = await ExecClient.connect(url, { token: TOKEN, clientName: "with-token" });
  assert.equal(authorized.initializeResponse.serverInfo.name, "exec-server");
  await authorized.close();
});

test("connecting to nothing, or to a server that never answers, is a ConnectError", { timeout: 30_000 }, async () => {
  // A port that was just free: nothing listens there.
  const freePort = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
  await assert.rejects(ExecClient.connect(`ws://127.0.0.1:${freePort}`), ConnectError);
  await assert.rejects(ExecClient.connect("not a url"), ConnectError);

  // A TCP server that accepts and says nothing: only the timeout ends it.
  const silent: Server = createServer(() => {});
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const address = silent.address();
  assert.ok(typeof address === "object" && address !== null);
  try {
    await assert.rejects(ExecClient.connect(`ws://127.0.0.1:${address.port}`, { connectTimeoutMs: 200 }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.match(error.message, /within 200 ms/);
      return true;
    });
  } finally {
    silent.close();
    // The refused connections may linger; they are no reason to wait.
    (silent as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
  }
});

test("close() rejects every pending call, wait and output with ConnectionClosedError", { timeout: 30_000 }, async () => {
  const closing = await connect(server, "closed-by-client");
  const proc = await closing.spawn({ argv: ["sleep", "30"] });
  // Long polls the server holds for 20 s: pending until the close.
  const reads = [1, 2].map(() => closing.request("process/read", { processId: proc.processId, afterSeq: 0, waitMs: 20_000 }));
  const waited = proc.wait();
  const output = proc.output[Symbol.asyncIterator]().next();
  // Handlers first: the calls reject as soon as close() starts.
  const rejected = [...reads, waited, output].map((pending) =>
    assert.rejects(pending, (error: unknown) => {
      assert.ok(error instanceof ConnectionClosedError, String(error));
      assert.match(error.message, /closed by the client/);
      return true;
    }),
  );
  await closing.close();
  assert.equal(closing.isClosed, true);
  await Promise.all(rejected);
  await assert.rejects(closing.request("process/list", {}), ConnectionClosedError);
  await assert.rejects(closing.spawn({ argv: ["true"] }), ConnectionClosedError);
  await assert.rejects(proc.terminate(), ConnectionClosedError);
  await assert.rejects(proc.wait(), ConnectionClosedError);
});

test("a server that goes away rejects every pending call with ConnectionClosedError (reconnect off)", { timeout: 30_000 }, async () => {
  const doomed = await startServer();
  try {
    // Reconnecting would wait up to the session's TTL for a server that
    // will not come back; `resume.test.ts` covers that side.
    const orphan = await connect(doomed, "server-goes-away", { reconnect: false });
    const proc = await orphan.spawn({ argv: ["sleep", "30"] });
    const read = orphan.request("process/read", { processId: proc.processId, afterSeq: 0, waitMs: 20_000 });
    const waited = proc.wait();
    const output = (async () => {
      for await (const chunk of proc.output) {
        assert.fail(`unexpected output ${String(chunk.data)}`);
      }
    })();
    // The list answers: every request before it reached the server.
    await orphan.request("process/list", {});
    const rejected = [read, waited, output].map((pending) => assert.rejects(pending, ConnectionClosedError));
    doomed.server.kill("SIGKILL");
    await Promise.all(rejected);
    assert.equal(orphan.isClosed, true);
    await assert.rejects(orphan.request("process/list", {}), ConnectionClosedError);
    await orphan.close();
  } finally {
    await doomed.stop();
  }
});
