/**
 * `ExecPool` against real servers: 20 servers driven through one pool (5
 * processes each, output checked, 0 errors, the memory per connection
 * printed), removing an endpoint, unknown names, and the bound on connects
 * in flight with their failures reported. (The Rust SDK's pool test drives
 * 100 servers; 20 keep this one light inside `cargo xtask test`.)
 */

import assert from "node:assert/strict";
import { type Server, type Socket, createServer } from "node:net";
import { test } from "node:test";

import {
  ConnectError,
  ConnectionClosedError,
  ExecPool,
  UnknownEndpointError,
} from "exec-server-client";

import { PATH, type TestServer, collect, startServer } from "./harness.js";

/** How many servers the large test drives. */
const SERVERS = 20;

/** How many processes it runs on each. */
const PROCESSES_PER_SERVER = 5;

test("twenty servers run five processes each through one pool", async () => {
  const servers: TestServer[] = await Promise.all(Array.from({ length: SERVERS }, () => startServer()));
  const pool = new ExecPool();
  try {
    servers.forEach((server, index) => pool.add(`server-${String(index).padStart(3, "0")}`, server.url, { clientName: "pool-test" }));
    assert.ok(pool.healthAll().every(([, health]) => health.state.status === "idle"), "nothing is dialled before the first use");
    // The first connection loads the `ws` module and warms the code up;
    // the memory per connection is measured over the others.
    const [first, ...others] = pool.names();
    const firstRoundTrip = await pool.ping(first ?? "");
    const rssBefore = process.memoryUsage().rss;
    const roundTrips = [firstRoundTrip, ...(await Promise.all(others.map((name) => pool.ping(name))))];
    const rssConnected = process.memoryUsage().rss;

    const runs = pool.names().flatMap((name) =>
      Array.from({ length: PROCESSES_PER_SERVER }, (_, index) => ({ name, word: `${name}-${index}` })),
    );
    const outcomes = await Promise.all(
      runs.map(async ({ name, word }) => {
        try {
          const proc = await pool.spawn(name, { argv: ["echo", word], env: { PATH } });
          const { stdout, status } = await collect(proc);
          return stdout === `${word}\n` && status.exitCode === 0 ? undefined : `${word}: ${JSON.stringify({ stdout, status })}`;
        } catch (error) {
          return `${word}: ${String(error)}`;
        }
      }),
    );
    assert.deepEqual(
      outcomes.filter((outcome) => outcome !== undefined),
      [],
    );
    const perConnectionKiB = (rss: number): number => Math.round((rss - rssBefore) / 1024 / others.length);
    console.log(
      `pool memory (RSS of the node process): ${perConnectionKiB(rssConnected)} KiB per connection with ${SERVERS} open (over the last ${others.length}); ` +
        `${perConnectionKiB(process.memoryUsage().rss)} KiB after ${SERVERS * PROCESSES_PER_SERVER} processes`,
    );

    const health = pool.healthAll();
    assert.equal(health.length, SERVERS);
    health.forEach(([name, endpoint], index) => {
      assert.deepEqual(
        [endpoint.state, endpoint.connectionsOpened, endpoint.lastFailure, endpoint.lastRoundTripMs],
        [{ status: "connected" }, 1, undefined, roundTrips[index]],
        name,
      );
    });
  } finally {
    await pool.close();
    await Promise.all(servers.map((server) => server.stop()));
  }
  assert.deepEqual(pool.names(), []);
});

test("removing an endpoint closes its connection and forgets its name", async () => {
  const server = await startServer();
  const pool = new ExecPool();
  try {
    pool.add("one", server.url, { clientName: "pool-test" });
    assert.throws(() => pool.add("one", server.url), TypeError);
    const client = await pool.client("one");
    assert.equal(await pool.client("one"), client, "one connection per endpoint");
    assert.equal(await pool.remove("one"), true);
    assert.equal(client.isClosed, true);
    await assert.rejects(client.request("process/list", {}), ConnectionClosedError);
    await assert.rejects(pool.client("one"), (error: unknown) => error instanceof UnknownEndpointError && error.endpoint === "one");
    await assert.rejects(pool.ping("nowhere"), UnknownEndpointError);
    assert.equal(await pool.remove("one"), false);
    assert.equal(pool.health("one"), undefined);
  } finally {
    await pool.close();
    await server.stop();
  }
});

test("connects in flight are bounded and their failures are reported", async () => {
  // A listener that accepts and never answers the upgrade: each connect
  // holds its slot until the test destroys its socket.
  const accepted: Socket[] = [];
  const acceptListeners: (() => void)[] = [];
  const silent: Server = createServer((socket) => {
    accepted.push(socket);
    acceptListeners.splice(0).forEach((listener) => listener());
  });
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const address = silent.address();
  assert.ok(address !== null && typeof address === "object");
  const url = `ws://127.0.0.1:${address.port}`;
  const acceptedAtLeast = async (count: number): Promise<void> => {
    while (accepted.length < count) {
      await new Promise<void>((resolve) => acceptListeners.push(resolve));
    }
  };

  const pool = new ExecPool({ maxConcurrentConnects: 2 });
  const names = Array.from({ length: 5 }, (_, index) => `silent-${index}`);
  try {
    names.forEach((name) => pool.add(name, url, { connectTimeoutMs: 60_000 }));
    const started = new Date();
    const connects = names.map((name) => pool.client(name).then(
      () => assert.fail(`${name} connected to a silent listener`),
      (error: unknown) => error,
    ));
    await acceptedAtLeast(2);
    const states = pool.healthAll().map(([, health]) => health.state.status).sort();
    assert.deepEqual(states, ["connecting", "connecting", "queued", "queued", "queued"]);

    // Each destroyed socket fails its connect and frees its slot for the next.
    for (let index = 0; index < 5; index += 1) {
      await acceptedAtLeast(index + 1);
      accepted[index]?.destroy();
    }
    for (const error of await Promise.all(connects)) {
      assert.ok(error instanceof ConnectError, String(error));
      assert.equal(error.url, url);
    }
    for (const [name, health] of pool.healthAll()) {
      assert.equal(health.state.status, "failed", name);
      assert.ok(health.lastFailure?.error instanceof ConnectError, name);
      assert.ok((health.lastFailure?.at.getTime() ?? 0) >= started.getTime(), name);
    }
  } finally {
    await pool.close();
    await new Promise<void>((resolve) => silent.close(() => resolve()));
  }
});
