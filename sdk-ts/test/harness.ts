/**
 * Shared test helpers: starting the real `exec-server` binary on a
 * WebSocket (routed through the conformance proxy when
 * `EXEC_CONFORMANCE_PROXY` is set), connecting to it, and reading output.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import {
  type ConnectOptions,
  type ConnectionState,
  ExecClient,
  ExecError,
  type ErrorKind,
  type RemoteProcess,
} from "exec-server-client";

/** The `sdk-ts` directory (this file runs from `dist-test/test/`). */
export const SDK_DIR = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** `PATH` for processes that need more than the server's default `/bin:/usr/bin`. */
export const PATH = "/usr/local/bin:/usr/bin:/bin";

/** How long a server or proxy may take to print its listening line, in milliseconds. */
const LISTEN_TIMEOUT_MS = 20_000;

/**
 * The `exec-server` binary: `EXEC_SERVER_BIN`, else the workspace's debug
 * build. Throws, saying how to build it, when it is missing.
 */
export function serverBinary(): string {
  const path = process.env["EXEC_SERVER_BIN"] ?? resolve(SDK_DIR, "..", "target", "debug", "exec-server");
  if (!existsSync(path)) {
    throw new Error(
      `the exec-server binary is missing at ${path}: run \`cargo build -p exec-server\` in the workspace ` +
        "(or set EXEC_SERVER_BIN to the binary)",
    );
  }
  return path;
}

/** A child process that printed the WebSocket URL it listens on. */
interface Listening {
  /** The child. */
  readonly child: ChildProcess;
  /** The URL from its listening line. */
  readonly url: string;
}

/**
 * Starts `program` with `args` and resolves once it prints a stderr line
 * matching `pattern` (whose first group is the URL). Rejects, with what it
 * printed, when it exits first or takes longer than {@link LISTEN_TIMEOUT_MS}.
 * Its stderr keeps being read (and kept, for diagnostics) after that, so
 * the child never blocks on a full pipe.
 */
async function startListening(
  program: string,
  args: readonly string[],
  pattern: RegExp,
  env: NodeJS.ProcessEnv,
): Promise<Listening> {
  const child = spawn(program, args, { env, stdio: ["ignore", "ignore", "pipe"] });
  const printed: string[] = [];
  return await new Promise<Listening>((resolvePromise, reject) => {
    const fail = (why: string): void => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${program} ${args.join(" ")}: ${why}; it printed:\n${printed.join("\n")}`));
    };
    const timer = setTimeout(() => fail(`no listening line within ${LISTEN_TIMEOUT_MS} ms`), LISTEN_TIMEOUT_MS);
    child.once("error", (error) => fail(`cannot start: ${error.message}`));
    child.once("exit", (code, signal) => fail(`exited (${code ?? signal}) before listening`));
    const lines = createInterface({ input: child.stderr! });
    lines.on("line", (line) => {
      if (printed.length < 200) {
        printed.push(line);
      }
      const match = pattern.exec(line);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        child.removeAllListeners("exit");
        child.removeAllListeners("error");
        resolvePromise({ child, url: match[1] });
      }
    });
  });
}

/**
 * Starts `$EXEC_CONFORMANCE_PROXY --upstream UPSTREAM` and resolves with
 * the URL from its `conformance-proxy listening on ws://IP:PORT` line. The
 * proxy checks every message on the wire and records violations itself.
 */
export async function startConformanceProxy(proxyBinary: string, upstreamUrl: string): Promise<Listening> {
  return await startListening(
    proxyBinary,
    ["--upstream", upstreamUrl],
    /conformance-proxy listening on (ws:\/\/\S+)/,
    process.env,
  );
}

/** Stops a child with SIGTERM and resolves once it has exited. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise<void>((resolvePromise) => child.once("exit", () => resolvePromise()));
  child.kill("SIGTERM");
  await exited;
}

/** A running `exec-server` (and conformance proxy) for one test file. */
export interface TestServer {
  /** The URL clients connect to: the proxy's when there is one, else the server's. */
  readonly url: string;
  /** The server's own URL. */
  readonly serverUrl: string;
  /** The server process. */
  readonly server: ChildProcess;
  /** Stops the proxy (if any) and the server, and waits for both to exit. */
  stop(): Promise<void>;
}

/** How {@link startServer} starts the server. */
export interface ServerOptions {
  /** Extra arguments of `exec-server serve`, e.g. `["--max-processes", "1"]`. */
  readonly args?: readonly string[];
  /** Extra environment variables of the server (e.g. `EXEC_SERVER_TOKEN`). */
  readonly env?: Readonly<Record<string, string>>;
}

/**
 * Starts `exec-server serve --listen ws://127.0.0.1:0` and resolves once it
 * listens (on `wss://` when `args` give `--tls-cert` and `--tls-key`). With
 * `EXEC_CONFORMANCE_PROXY` set (the path of a `conformance-proxy` binary),
 * it also starts the proxy in front of a plain server, and
 * {@link TestServer.url} is the proxy's; the proxy speaks plain `ws://`
 * only, so a TLS server is reached directly.
 */
export async function startServer(options: ServerOptions = {}): Promise<TestServer> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  if (options.env?.["EXEC_SERVER_TOKEN"] === undefined) {
    // A token in the developer's environment would lock the tests out.
    delete env["EXEC_SERVER_TOKEN"];
  }
  const server = await startListening(
    serverBinary(),
    ["serve", "--listen", "ws://127.0.0.1:0", ...(options.args ?? [])],
    /exec-server listening on (wss?:\/\/\S+)/,
    env,
  );
  const proxyBinary = process.env["EXEC_CONFORMANCE_PROXY"];
  let proxy: Listening | undefined;
  if (proxyBinary !== undefined && proxyBinary !== "" && server.url.startsWith("ws://")) {
    try {
      proxy = await startConformanceProxy(proxyBinary, server.url);
    } catch (error) {
      await stop(server.child);
      throw error;
    }
  }
  return {
    url: proxy?.url ?? server.url,
    serverUrl: server.url,
    server: server.child,
    async stop() {
      if (proxy !== undefined) {
        await stop(proxy.child);
      }
      await stop(server.child);
    },
  };
}

/** Connects to `server` as `clientName`. */
export async function connect(server: TestServer, clientName: string, options: ConnectOptions = {}): Promise<ExecClient> {
  return await ExecClient.connect(server.url, { clientName, ...options });
}

/** Everything a process wrote, by stream, as text, with the exit. */
export interface Collected {
  /** stdout (or the terminal, for a PTY process). */
  stdout: string;
  /** stderr. */
  stderr: string;
  /** How it ended. */
  status: Awaited<ReturnType<RemoteProcess["wait"]>>;
}

/** Reads all of a process's output, then its exit. */
export async function collect(proc: RemoteProcess): Promise<Collected> {
  const decoder = { stdout: new TextDecoder(), stderr: new TextDecoder() };
  let stdout = "";
  let stderr = "";
  let lastSeq = 0;
  for await (const chunk of proc.output) {
    assert.ok(chunk.seq > lastSeq, `seq ${chunk.seq} after ${lastSeq}`);
    lastSeq = chunk.seq;
    if (chunk.stream === "stderr") {
      stderr += decoder.stderr.decode(chunk.data, { stream: true });
    } else {
      stdout += decoder.stdout.decode(chunk.data, { stream: true });
    }
  }
  return { stdout, stderr, status: await proc.wait() };
}

/**
 * Reads from `output` until the text seen so far contains `expected`, and
 * returns that text. Fails when the output ends first.
 */
export async function readUntil(output: AsyncIterator<{ data: Uint8Array }>, expected: string, seen = ""): Promise<string> {
  const decoder = new TextDecoder();
  let text = seen;
  while (!text.includes(expected)) {
    const next = await output.next();
    assert.ok(next.done !== true, `the output ended before ${JSON.stringify(expected)}; it was ${JSON.stringify(text)}`);
    text += decoder.decode(next.value.data, { stream: true });
  }
  return text;
}

/**
 * Waits, through long-polling `process/read`s on `client`, until the server
 * has closed process `processId`: by then it has sent every notification.
 */
export async function waitClosedOnServer(client: ExecClient, processId: string): Promise<void> {
  for (;;) {
    // A cursor past the end: the long poll answers at once when the
    // process is closed, else after `waitMs` with nothing.
    const read = await client.request("process/read", {
      processId,
      afterSeq: Number.MAX_SAFE_INTEGER - 1,
      maxBytes: 1,
      waitMs: 1_000,
    });
    if (read.closed) {
      return;
    }
  }
}

/** An assertion for `assert.rejects`: an {@link ExecError} with `code` and `kind`. */
export function execError(code: number, kind: ErrorKind | undefined): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof ExecError, `expected an ExecError, got ${String(error)}`);
    assert.deepEqual({ code: error.code, kind: error.kind }, { code, kind });
    return true;
  };
}

/** Resolves with the next state of `client` that is `status`. */
export function reaches(client: ExecClient, status: ConnectionState["status"]): Promise<ConnectionState> {
  return new Promise((resolve) => {
    const stop = client.onConnectionStateChange((state) => {
      if (state.status === status) {
        stop();
        resolve(state);
      }
    });
  });
}
