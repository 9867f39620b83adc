/**
 * Every request method of the protocol, through `client.request`, against
 * the real server. The checks are a record keyed by the generated
 * `RequestMethod`, so a method added to the schema does not compile until
 * it has a check here, and the run fails if `REQUEST_METHODS` (the
 * generated run-time list) names one without a check.
 */

import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { type ExecClient, ExecError, PROTOCOL_VERSION, REQUEST_METHODS, type RequestMethod } from "exec-server-client";

import { PATH, type TestServer, connect, execError, startServer } from "./harness.js";

let server: TestServer;
let client: ExecClient;
let directory: string;

before(async () => {
  server = await startServer();
  client = await connect(server, "methods-test");
  directory = await mkdtemp(join(tmpdir(), "exec-server-client-methods-"));
});

after(async () => {
  await client?.close();
  await server?.stop();
  if (directory !== undefined) {
    await rm(directory, { recursive: true, force: true });
  }
});

/** Base64 of a UTF-8 string. */
function base64(text: string): string {
  return Buffer.from(text).toString("base64");
}

/** Reads a raw process's output with long-polling `process/read`s until it is closed. */
async function readToEnd(processId: string): Promise<{ text: string; exitCode: number | null }> {
  let afterSeq = 0;
  let text = "";
  for (;;) {
    const read = await client.request("process/read", { processId, afterSeq, waitMs: 5_000 });
    assert.equal(read.droppedBytes, 0);
    for (const chunk of read.chunks) {
      text += Buffer.from(chunk.chunk, "base64").toString();
    }
    // `nextSeq` is the seq after the last one the read covered.
    afterSeq = read.nextSeq - 1;
    if (read.closed) {
      return { text, exitCode: read.exitCode };
    }
  }
}

/** A check per request method. */
const checks: Record<RequestMethod, () => Promise<void>> = {
  async initialize() {
    // The handshake already ran: the server answered as documented.
    assert.equal(client.initializeResponse.protocolVersion, PROTOCOL_VERSION);
    assert.equal(client.initializeResponse.serverInfo.name, "exec-server");
    assert.ok(client.initializeResponse.limits.maxMessageBytes > 0);
    // A second one is a lifecycle violation.
    await assert.rejects(client.request("initialize", { clientName: "again" }), execError(-32600, "alreadyInitialized"));
  },

  async "http/request"() {
    // A local HTTP server, so that the server's request needs no internet.
    const http = createServer((_request, response) => {
      response.setHeader("x-repeat", ["a", "b"]);
      response.end("hello");
    });
    await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = http.address() as AddressInfo;
      const result = await client.request("http/request", { method: "GET", url: `http://127.0.0.1:${port}/`, requestId: "h1" });
      assert.equal(result.status, 200);
      assert.equal(Buffer.from(result.bodyBase64, "base64").toString(), "hello");
      const repeats = result.headers.filter((header) => header.name === "x-repeat").map((header) => header.value);
      assert.deepEqual(repeats, ["a", "b"]);
      await assert.rejects(
        client.request("http/request", { method: "GET", url: "ftp://127.0.0.1/", requestId: "h2" }),
        execError(-32602, "invalidParams"),
      );
    } finally {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    }
  },

  async "fs/writeFile"() {
    const path = join(directory, "written", "file.txt");
    await client.request("fs/writeFile", { path, dataBase64: base64("one"), createParents: true });
    await client.request("fs/writeFile", { path, dataBase64: base64(" two"), append: true });
    assert.equal(await readFile(path, "utf8"), "one two");
  },

  async "fs/readFile"() {
    const path = join(directory, "read.txt");
    await writeFile(path, "hello, world");
    const whole = await client.request("fs/readFile", { path });
    assert.deepEqual(whole, { dataBase64: base64("hello, world"), size: 12, eof: true });
    const part = await client.request("fs/readFile", { path, offset: 7, maxBytes: 3 });
    assert.deepEqual(part, { dataBase64: base64("wor"), size: 12, eof: false });
  },

  async "fs/createDirectory"() {
    const path = join(directory, "made", "deep");
    await client.request("fs/createDirectory", { path, recursive: true });
    const metadata = await client.request("fs/getMetadata", { path });
    assert.equal(metadata.isDirectory, true);
    await assert.rejects(
      client.request("fs/createDirectory", { path: join(directory, "missing", "child") }),
      execError(-32004, "notFound"),
    );
  },

  async "fs/getMetadata"() {
    const path = join(directory, "meta.txt");
    await writeFile(path, "12345", { mode: 0o640 });
    const link = join(directory, "meta-link");
    await symlink(path, link);
    const metadata = await client.request("fs/getMetadata", { path });
    assert.equal(metadata.isFile, true);
    assert.equal(metadata.isDirectory, false);
    assert.equal(metadata.size, 5);
    assert.equal(metadata.mode & 0o777, 0o640);
    assert.equal(typeof metadata.modifiedAtMs, "number");
    const linkMetadata = await client.request("fs/getMetadata", { path: link, followSymlinks: false });
    assert.equal(linkMetadata.isSymlink, true);
  },

  async "fs/readDirectory"() {
    const path = join(directory, "listing");
    await client.request("fs/createDirectory", { path });
    await writeFile(join(path, "b.txt"), "");
    await client.request("fs/createDirectory", { path: join(path, "a") });
    const { entries } = await client.request("fs/readDirectory", { path });
    assert.deepEqual(entries, [
      { fileName: "a", isDirectory: true, isFile: false, isSymlink: false },
      { fileName: "b.txt", isDirectory: false, isFile: true, isSymlink: false },
    ]);
  },

  async "fs/remove"() {
    const path = join(directory, "removed");
    await client.request("fs/createDirectory", { path: join(path, "inner"), recursive: true });
    await assert.rejects(client.request("fs/remove", { path }), execError(-32602, "directoryNotEmpty"));
    await client.request("fs/remove", { path, recursive: true });
    await client.request("fs/remove", { path, force: true });
    await assert.rejects(client.request("fs/getMetadata", { path }), execError(-32004, "notFound"));
  },

  async "fs/copy"() {
    const source = join(directory, "copy-source");
    await client.request("fs/writeFile", { path: join(source, "f.txt"), dataBase64: base64("copied"), createParents: true });
    const destination = join(directory, "copy-destination");
    await assert.rejects(
      client.request("fs/copy", { sourcePath: source, destinationPath: destination }),
      execError(-32602, "isADirectory"),
    );
    await client.request("fs/copy", { sourcePath: source, destinationPath: destination, recursive: true });
    assert.equal(await readFile(join(destination, "f.txt"), "utf8"), "copied");
  },

  async "fs/rename"() {
    const source = join(directory, "rename-source.txt");
    const destination = join(directory, "rename-destination.txt");
    await writeFile(source, "moved");
    await writeFile(destination, "old");
    await assert.rejects(
      client.request("fs/rename", { sourcePath: source, destinationPath: destination }),
      execError(-32602, "alreadyExists"),
    );
    await client.request("fs/rename", { sourcePath: source, destinationPath: destination, overwrite: true });
    assert.equal(await readFile(destination, "utf8"), "moved");
  },

  async "fs/canonicalize"() {
    const target = join(directory, "canonical.txt");
    await writeFile(target, "x");
    const resolved = await client.request("fs/canonicalize", { path: join(directory, ".", "canonical.txt") });
    assert.equal(resolved.path, target);
  },

  async "fs/walk"() {
    const root = join(directory, "walked");
    await client.request("fs/writeFile", { path: join(root, "sub", "leaf.txt"), dataBase64: "", createParents: true });
    const walked = await client.request("fs/walk", {
      path: root,
      options: { maxDepth: 4, maxDirectories: 10, maxEntries: 10, followDirectorySymlinks: false },
    });
    assert.deepEqual(walked, {
      entries: [
        { path: join(root, "sub"), kind: "directory" },
        { path: join(root, "sub", "leaf.txt"), kind: "file" },
      ],
      errors: [],
      truncated: false,
    });
  },

  async "fs/open"() {
    const path = join(directory, "opened.txt");
    await writeFile(path, "opened");
    assert.deepEqual(await client.request("fs/open", { handleId: "open-check", path }), { handleId: "open-check" });
    await client.request("fs/close", { handleId: "open-check" });
  },

  async "fs/readBlock"() {
    const path = join(directory, "blocks.txt");
    await writeFile(path, "0123456789");
    await client.request("fs/open", { handleId: "block-check", path });
    const first = await client.request("fs/readBlock", { handleId: "block-check", offset: 2, len: 3 });
    assert.deepEqual(first, { chunk: base64("234"), eof: false });
    const last = await client.request("fs/readBlock", { handleId: "block-check", offset: 8, len: 4 });
    assert.deepEqual(last, { chunk: base64("89"), eof: true });
    await client.request("fs/close", { handleId: "block-check" });
  },

  async "fs/close"() {
    const path = join(directory, "closed.txt");
    await writeFile(path, "x");
    await client.request("fs/open", { handleId: "close-check", path });
    assert.deepEqual(await client.request("fs/close", { handleId: "close-check" }), {});
    // Closing again is not an error; reading a closed handle is `notFound`.
    assert.deepEqual(await client.request("fs/close", { handleId: "close-check" }), {});
    await assert.rejects(client.request("fs/readBlock", { handleId: "close-check", offset: 0, len: 1 }), (error: unknown) => {
      assert.ok(error instanceof ExecError, String(error));
      assert.equal(error.kind, "notFound");
      return true;
    });
  },

  async "process/start"() {
    const started = await client.request("process/start", {
      processId: "raw-start",
      argv: ["sh", "-c", "echo started in $(pwd)"],
      cwd: directory,
      env: {},
      tty: false,
    });
    assert.equal(started.processId, "raw-start");
    assert.ok(started.pid > 0);
    assert.deepEqual(await readToEnd("raw-start"), { text: `started in ${directory}\n`, exitCode: 0 });
  },

  async "process/read"() {
    await client.request("process/start", { processId: "raw-read", argv: ["printf", "abc"], cwd: "/", env: {}, tty: false });
    const first = await client.request("process/read", { processId: "raw-read", maxBytes: 1, waitMs: 5_000 });
    assert.equal(first.chunks.length, 1);
    assert.equal(first.droppedBytes, 0);
    // The read covers the chunk, and the exit and close when they came
    // already: `nextSeq` is the seq after the last one covered.
    assert.ok(first.nextSeq > (first.chunks[0]?.seq ?? Infinity));
    assert.deepEqual(await readToEnd("raw-read"), { text: "abc", exitCode: 0 });
  },

  async "process/write"() {
    await client.request("process/start", {
      processId: "raw-write",
      argv: ["cat"],
      cwd: "/",
      env: {},
      tty: false,
      pipeStdin: true,
    });
    const written = await client.request("process/write", { processId: "raw-write", chunk: base64("typed\n"), writeId: "w1" });
    assert.ok(written.status === "accepted" || written.status === "starting", written.status);
    if (written.status === "starting") {
      // Retried with the same writeId, so it is applied once.
      assert.equal((await client.request("process/write", { processId: "raw-write", chunk: base64("typed\n"), writeId: "w1" })).status, "accepted");
    }
    await client.request("process/closeStdin", { processId: "raw-write" });
    assert.deepEqual(await readToEnd("raw-write"), { text: "typed\n", exitCode: 0 });
    const late = await client.request("process/write", { processId: "raw-write", chunk: base64("late") });
    assert.equal(late.status, "stdinClosed");
    const unknown = await client.request("process/write", { processId: "raw-nobody", chunk: base64("x") });
    assert.equal(unknown.status, "unknownProcess");
  },

  async "process/closeStdin"() {
    await client.request("process/start", { processId: "raw-close-stdin", argv: ["cat"], cwd: "/", env: {}, tty: false, pipeStdin: true });
    assert.deepEqual(await client.request("process/closeStdin", { processId: "raw-close-stdin" }), {});
    assert.deepEqual(await readToEnd("raw-close-stdin"), { text: "", exitCode: 0 });
    await client.request("process/start", { processId: "raw-no-stdin", argv: ["true"], cwd: "/", env: {}, tty: false });
    await assert.rejects(client.request("process/closeStdin", { processId: "raw-no-stdin" }), execError(-32602, "stdinClosed"));
  },

  async "process/resize"() {
    await client.request("process/start", {
      processId: "raw-resize",
      argv: ["sh", "-c", "read line; stty size"],
      cwd: "/",
      // The server's PTY spawner resolves argv[0] in this PATH only.
      env: { PATH },
      tty: true,
      size: { rows: 10, cols: 20 },
    });
    await client.request("process/resize", { processId: "raw-resize", rows: 33, cols: 77 });
    await client.request("process/write", { processId: "raw-resize", chunk: base64("go\n") });
    const { text } = await readToEnd("raw-resize");
    assert.match(text, /33 77/);
    await assert.rejects(client.request("process/resize", { processId: "raw-nobody", rows: 1, cols: 1 }), execError(-32602, "unknownProcess"));
  },

  async "process/signal"() {
    await client.request("process/start", { processId: "raw-signal", argv: ["sleep", "30"], cwd: "/", env: {}, tty: false });
    await client.request("process/signal", { processId: "raw-signal", signal: "kill" });
    const read = await readToEnd("raw-signal");
    // 128 + SIGKILL (9): never null once exited.
    assert.equal(read.exitCode, 137);
    const listed = await client.request("process/list", {});
    const info = listed.processes.find((process) => process.processId === "raw-signal");
    assert.deepEqual([info?.signal, info?.exitCode], ["kill", 137]);
  },

  async "process/terminate"() {
    await client.request("process/start", { processId: "raw-terminate", argv: ["sleep", "30"], cwd: "/", env: {}, tty: false });
    assert.deepEqual(await client.request("process/terminate", { processId: "raw-terminate" }), { running: true });
    await readToEnd("raw-terminate");
    assert.deepEqual(await client.request("process/terminate", { processId: "raw-terminate" }), { running: false });
  },

  async "environment/info"() {
    const info = await client.request("environment/info", null);
    assert.ok(info.shell.path.startsWith("/"), info.shell.path);
    assert.ok(info.cwd?.startsWith("file:///"), String(info.cwd));
    assert.deepEqual(info.capabilities, { networkProxyLaunch: false });
  },

  async "environment/status"() {
    assert.deepEqual(await client.request("environment/status", null), { status: "ready" });
  },

  async "process/list"() {
    await client.request("process/start", { processId: "raw-list", argv: ["sleep", "30"], cwd: "/", env: { PATH }, tty: true });
    const { processes } = await client.request("process/list", {});
    const info = processes.find((process) => process.processId === "raw-list");
    assert.deepEqual(info && { argv: info.argv, tty: info.tty, running: info.running, exitCode: info.exitCode }, {
      argv: ["sleep", "30"],
      tty: true,
      running: true,
      exitCode: null,
    });
    const ids = processes.map((process) => process.processId);
    assert.deepEqual(ids, [...ids].sort());
    await client.request("process/terminate", { processId: "raw-list" });
  },
};

test("every method of the generated list has a check", () => {
  assert.deepEqual(Object.keys(checks).sort(), [...REQUEST_METHODS].sort());
});

for (const method of REQUEST_METHODS) {
  test(`request("${method}")`, { timeout: 30_000 }, async () => {
    await checks[method]();
  });
}
