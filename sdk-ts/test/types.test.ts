/**
 * Type-level tests, checked by `tsc` when the tests are built (a failure
 * here fails `npm test` before anything runs):
 * - every method of the generated `RequestMap` has a typed path through
 *   `client.request`: its params and result exactly, and a call per method
 *   in a table keyed by the map, so a method added to the schema does not
 *   compile until it is listed;
 * - the generated run-time lists name every method of the type maps;
 * - wrong uses do not compile (each `@ts-expect-error` must meet an error,
 *   or `tsc` reports it unused);
 * - `ws`'s WebSocket and a browser's fit `WebSocketConstructor`;
 * - a connection state is told apart by its `status`, and `reconnect` takes
 *   `false` or its options.
 */

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  type ConnectOptions,
  type ConnectionState,
  type ExecClient,
  type ProcessOutput,
  REQUEST_METHODS,
  type RemoteProcess,
  type RequestMethod,
  type RequestParams,
  type RequestResult,
  SERVER_NOTIFICATION_METHODS,
  type ServerNotificationMethod,
  type WebSocketConstructor,
} from "exec-server-client";
import { WebSocket as NodeWebSocket } from "ws";

/** `true` when `A` and `B` are the same type (not merely assignable). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
/** Compiles only for `true`. */
type Expect<T extends true> = T;

declare const client: ExecClient;

/** For each method: `request`'s params and result, instantiated at that method, are exactly the generated ones. */
type RequestIsTyped = {
  [M in RequestMethod]: [
    Equal<Parameters<typeof client.request<M>>, [method: M, params: RequestParams<M>]>,
    Equal<ReturnType<typeof client.request<M>>, Promise<RequestResult<M>>>,
  ];
};
export type EveryMethodIsTyped = Expect<Equal<RequestIsTyped[RequestMethod], [true, true]>>;

/** The run-time lists name exactly the methods of the type maps. */
export type RequestListIsComplete = Expect<Equal<(typeof REQUEST_METHODS)[number], RequestMethod>>;
export type NotificationListIsComplete = Expect<Equal<(typeof SERVER_NOTIFICATION_METHODS)[number], ServerNotificationMethod>>;

/**
 * One call per method, in a table keyed by the generated map: a method the
 * map has and the table lacks is a compile error, and each entry must
 * produce that method's result type.
 */
function typedPaths(exec: ExecClient): { [M in RequestMethod]: () => Promise<RequestResult<M>> } {
  const path = "/tmp/x";
  return {
    initialize: () => exec.request("initialize", { clientName: "types", clientVersion: "1" }),
    "environment/info": () => exec.request("environment/info", null),
    "environment/status": () => exec.request("environment/status", null),
    "fs/copy": () => exec.request("fs/copy", { sourcePath: path, destinationPath: `${path}2`, recursive: true }),
    "fs/createDirectory": () => exec.request("fs/createDirectory", { path, recursive: true }),
    "fs/getMetadata": () => exec.request("fs/getMetadata", { path, followSymlinks: false }),
    "fs/readDirectory": () => exec.request("fs/readDirectory", { path }),
    "fs/canonicalize": () => exec.request("fs/canonicalize", { path }),
    "fs/walk": () =>
      exec.request("fs/walk", {
        path,
        options: { maxDepth: 1, maxDirectories: 1, maxEntries: 1, followDirectorySymlinks: true, pruneHiddenDirectories: true },
      }),
    "fs/open": () => exec.request("fs/open", { handleId: "h", path }),
    "fs/readBlock": () => exec.request("fs/readBlock", { handleId: "h", offset: 0, len: 1 }),
    "fs/close": () => exec.request("fs/close", { handleId: "h" }),
    "fs/readFile": () => exec.request("fs/readFile", { path, offset: 0, maxBytes: 10 }),
    "fs/remove": () => exec.request("fs/remove", { path, recursive: true, force: true }),
    "fs/rename": () => exec.request("fs/rename", { sourcePath: path, destinationPath: `${path}2`, overwrite: true }),
    "fs/writeFile": () => exec.request("fs/writeFile", { path, dataBase64: "", append: true, createParents: true, mode: 0o644 }),
    "http/request": () =>
      exec.request("http/request", {
        method: "POST",
        url: "http://127.0.0.1/",
        headers: [{ name: "x-a", value: "1" }],
        bodyBase64: "",
        timeoutMs: 1_000,
        redirectPolicy: "stop",
        requestId: "r",
        streamResponse: false,
      }),
    "process/closeStdin": () => exec.request("process/closeStdin", { processId: "p" }),
    "process/list": () => exec.request("process/list", {}),
    "process/read": () => exec.request("process/read", { processId: "p", afterSeq: 0, maxBytes: 1, waitMs: 1 }),
    "process/resize": () => exec.request("process/resize", { processId: "p", rows: 1, cols: 1 }),
    "process/signal": () => exec.request("process/signal", { processId: "p", signal: "interrupt" }),
    "process/start": () =>
      exec.request("process/start", { processId: "p", argv: ["true"], cwd: "/", env: {}, tty: false, pipeStdin: true, timeoutMs: 1 }),
    "process/terminate": () => exec.request("process/terminate", { processId: "p" }),
    "process/write": () => exec.request("process/write", { processId: "p", chunk: "", writeId: "w" }),
  };
}

/** Wrong uses of the API; never run, only compiled. */
export async function wrongUses(exec: ExecClient, proc: RemoteProcess): Promise<void> {
  // @ts-expect-error: not a method of the protocol.
  await exec.request("fs/nope", {});
  // @ts-expect-error: a notification is not a request.
  await exec.request("process/output", {});
  // @ts-expect-error: a param the method does not have.
  await exec.request("fs/readFile", { file: "/x" });
  // @ts-expect-error: another method's params.
  await exec.request("fs/readFile", { sourcePath: "/a", destinationPath: "/b" });
  // @ts-expect-error: a required param is missing (cwd, env, tty).
  await exec.request("process/start", { processId: "p", argv: ["x"] });
  // @ts-expect-error: a param of the wrong type.
  await exec.request("process/resize", { processId: "p", rows: "24", cols: 80 });
  // @ts-expect-error: exactOptionalPropertyTypes: an optional param is omitted, not undefined.
  await exec.request("fs/readFile", { path: "/x", offset: undefined });

  const metadata = await exec.request("fs/getMetadata", { path: "/" });
  // @ts-expect-error: not a field of this result.
  void metadata.dataBase64;
  // @ts-expect-error: a field of another type.
  const size: string = metadata.size;
  void size;
  const list = await exec.request("process/list", {});
  // @ts-expect-error: the result is not an array.
  list.map((process) => process);

  // @ts-expect-error: argv is required.
  await exec.spawn({ cwd: "/" });
  // @ts-expect-error: a size has rows and cols.
  await exec.spawn({ argv: ["sh"], tty: true, size: { width: 80 } });
  // @ts-expect-error: signals are named by the protocol.
  await proc.signal("SIGKILL");
  // @ts-expect-error: writes take text or bytes.
  await proc.write(42);
  for await (const chunk of proc.output) {
    const data: Uint8Array = chunk.data;
    // @ts-expect-error: the stream is one of the protocol's.
    const stream: "stdin" = chunk.stream;
    void [data, stream];
  }
  const status = await proc.wait();
  const code: number = status.exitCode;
  // @ts-expect-error: the exit code is never null (a signal is told by `signal` and `reason`).
  const none: null = status.exitCode;
  void [code, none];
  // @ts-expect-error: the constructor is private; connect() makes clients.
  new (exec.constructor as typeof ExecClient)();
}

/** `ws`'s class and a browser's fit the `WebSocket` option. */
export const wsFits: WebSocketConstructor = NodeWebSocket;
export const browserFits: WebSocketConstructor = globalThis.WebSocket;

/** What each connection state carries, by its `status`. */
export function describeState(state: ConnectionState): string {
  switch (state.status) {
    case "connected":
      return "connected";
    case "reconnecting":
      return `reconnecting, attempt ${state.attempt}${state.lastError === undefined ? "" : ` after ${state.lastError.message}`}`;
    case "closed":
      return `closed: ${state.error.message}`;
  }
}

/** `reconnect` is on, off, or tuned; nothing else. */
export const reconnectOff: ConnectOptions = { reconnect: false };
export const reconnectTuned: ConnectOptions = { reconnect: { initialDelayMs: 50, maxDelayMs: 1_000, maxElapsedMs: 5_000 } };
// @ts-expect-error: a delay alone is not the options.
export const reconnectWrong: ConnectOptions = { reconnect: 100 };

/** An output chunk's shape, as the issue gives it. */
export type OutputShape = Expect<Equal<ProcessOutput, { readonly stream: "stdout" | "stderr" | "pty"; readonly data: Uint8Array; readonly seq: number }>>;

test("the typed table of calls has one entry per method of the generated list", () => {
  // Built, never called: only its keys are looked at.
  const table = typedPaths(undefined as unknown as ExecClient);
  assert.deepEqual(Object.keys(table).sort(), [...REQUEST_METHODS].sort());
});
