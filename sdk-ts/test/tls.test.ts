/**
 * `wss://` against the real `exec-server serve --tls-cert --tls-key`, with a
 * private CA: trusted through the `ca` option, trusted by a spawned Node
 * program through `NODE_EXTRA_CA_CERTS` (what a program that cannot pass
 * the option does), and refused with a `ConnectError` without it.
 *
 * The certificates are made with the `openssl` command (installed with
 * `ca-certificates`), since Node cannot make certificates itself.
 */

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { promisify } from "node:util";

import { ConnectError, ExecClient } from "exec-server-client";

import { SDK_DIR, type TestServer, collect, startServer } from "./harness.js";

/** PEM files of a CA and a server certificate for 127.0.0.1 and localhost it signed. */
interface Certificates {
  readonly directory: string;
  readonly ca: string;
  readonly certificate: string;
  readonly key: string;
}

/** Makes a P-256 CA and a server certificate signed by it in a new temporary directory. */
function makeCertificates(): Certificates {
  const directory = mkdtempSync(join(tmpdir(), "exec-server-tls-"));
  const path = (name: string): string => join(directory, name);
  const openssl = (...args: string[]): void => {
    execFileSync("openssl", args, { cwd: directory, stdio: ["ignore", "ignore", "pipe"] });
  };
  const curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  openssl("req", "-x509", ...curve, "-keyout", path("ca.key"), "-out", path("ca.pem"), "-days", "2",
    "-subj", "/CN=exec-server test CA",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl("req", ...curve, "-keyout", path("server.key"), "-out", path("server.csr"),
    "-subj", "/CN=exec-server test server");
  writeFileSync(path("server.ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
  openssl("x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
    "-CAcreateserial", "-days", "2", "-extfile", path("server.ext"), "-out", path("server.pem"));
  return { directory, ca: path("ca.pem"), certificate: path("server.pem"), key: path("server.key") };
}

let certificates: Certificates;
let server: TestServer;

before(async () => {
  certificates = makeCertificates();
  server = await startServer({ args: ["--tls-cert", certificates.certificate, "--tls-key", certificates.key] });
});

after(async () => {
  await server?.stop();
  if (certificates !== undefined) {
    rmSync(certificates.directory, { recursive: true, force: true });
  }
});

test("the server listens on wss://", () => {
  assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
});

test("the `ca` option trusts a private CA", { timeout: 30_000 }, async () => {
  const client = await ExecClient.connect(server.url, {
    clientName: "tls",
    ca: readFileSync(certificates.ca, "utf8"),
  });
  try {
    const proc = await client.spawn({ argv: ["sh", "-c", "echo over tls; exit 4"] });
    const { stdout, status } = await collect(proc);
    assert.equal(stdout, "over tls\n");
    assert.equal(status.exitCode, 4);
  } finally {
    await client.close();
  }
});

test("a spawned Node program trusts the CA through NODE_EXTRA_CA_CERTS", { timeout: 30_000 }, async () => {
  const script = join(SDK_DIR, "dist-test", "examples", "run_command.js");
  const { stdout } = await promisify(execFile)(process.execPath, [script, server.url], {
    timeout: 20_000,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: certificates.ca },
  });
  assert.match(stdout, /^connected to exec-server /m);
  assert.match(stdout, /^\[stdout\] hello from Linux$/m);
});

test("without the CA the connection is refused with the certificate's problem", { timeout: 30_000 }, async () => {
  await assert.rejects(ExecClient.connect(server.url, { clientName: "tls", reconnect: false }), (error: unknown) => {
    assert.ok(error instanceof ConnectError, String(error));
    assert.match(error.message, /certificate/);
    return true;
  });
});
