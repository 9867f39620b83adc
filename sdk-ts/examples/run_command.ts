/**
 * Runs a command on an exec-server and streams its output, feeds a second
 * process through stdin, then writes and reads back a file.
 *
 * Start a server, then run this with its URL:
 *
 * ```sh
 * cargo build -p exec-server && target/debug/exec-server serve   # prints: exec-server listening on ws://127.0.0.1:PORT
 * cd sdk-ts && npm run build && npm run example -- ws://127.0.0.1:PORT
 * ```
 *
 * With a token (`EXEC_SERVER_TOKEN` set for the server), set it here too.
 */

import { ExecClient } from "exec-server-client";

const url = process.argv[2] ?? process.env["EXEC_SERVER_URL"];
if (url === undefined) {
  console.error("usage: run_command.js ws://HOST:PORT (or set EXEC_SERVER_URL)");
  process.exit(2);
}

const token = process.env["EXEC_SERVER_TOKEN"];
const client = await ExecClient.connect(url, { clientName: "run-command-example", ...(token === undefined ? {} : { token }) });
const { serverInfo, platform } = client.initializeResponse;
console.log(`connected to ${serverInfo.name} ${serverInfo.version} on ${platform.os}/${platform.arch}`);
// A dropped connection is resumed by itself (within the session's TTL); say so when it happens.
client.onConnectionStateChange((state) => {
  if (state.status === "reconnecting") {
    console.error(`connection dropped, reconnecting (attempt ${state.attempt})`);
  } else if (state.status === "connected") {
    console.error("reconnected");
  }
});

try {
  // Output streams as it comes, each chunk tagged with its stream.
  const greeting = await client.spawn({ argv: ["sh", "-c", "echo hello from $(uname -s); echo to stderr >&2; exit 3"] });
  for await (const chunk of greeting.output) {
    process.stdout.write(`[${chunk.stream}] ${new TextDecoder().decode(chunk.data)}`);
  }
  console.log("exit:", await greeting.wait());

  // Stdin is a pipe with `pipeStdin`; close it so the child sees EOF.
  const sorter = await client.spawn({ argv: ["sort"], pipeStdin: true });
  await sorter.write("pear\napple\nfig\n");
  await sorter.closeStdin();
  let sorted = "";
  for await (const chunk of sorter.output) {
    sorted += new TextDecoder().decode(chunk.data);
  }
  console.log("sorted:", sorted.trim().split("\n").join(", "));

  // Files: paths are absolute on the server's machine, bytes are base64.
  const path = `/tmp/exec-server-client-example-${process.pid}.txt`;
  await client.request("fs/writeFile", { path, dataBase64: Buffer.from("written remotely\n").toString("base64") });
  const file = await client.request("fs/readFile", { path });
  console.log(`read back ${file.size} bytes:`, Buffer.from(file.dataBase64, "base64").toString().trim());
  await client.request("fs/remove", { path });
} finally {
  await client.close();
}
