/** The example in `examples/` runs against the real server and prints what it should. */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { SDK_DIR, type TestServer, startServer } from "./harness.js";

let server: TestServer;

before(async () => {
  server = await startServer();
});

after(async () => {
  await server?.stop();
});

test("examples/run_command", { timeout: 30_000 }, async () => {
  const script = join(SDK_DIR, "dist-test", "examples", "run_command.js");
  const { stdout } = await promisify(execFile)(process.execPath, [script, server.url], { timeout: 20_000 });
  assert.match(stdout, /^connected to exec-server /m);
  assert.match(stdout, /^\[stdout\] hello from Linux$/m);
  assert.match(stdout, /^\[stderr\] to stderr$/m);
  assert.match(stdout, /^exit: \{ exitCode: 3, signal: null, reason: 'exited' \}$/m);
  assert.match(stdout, /^sorted: apple, fig, pear$/m);
  assert.match(stdout, /^read back 17 bytes: written remotely$/m);
});
