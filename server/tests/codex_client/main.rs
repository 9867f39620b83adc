//! A Codex client of today against the real binary over WebSocket: every
//! method Codex's exec-server client calls, sent exactly as it sends them
//! (`client.rs`), every answer read by Codex's types (`types.rs`), behind
//! the conformance proxy under `cargo xtask test`, so each of these
//! messages is also validated against our schema.

mod client;
mod types;

use exec_testkit::{HttpTestServer, ServerLauncher, pattern_byte, scratch_dir};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use client::{CodexClient, exec_params};
use types::{
    Empty, EnvironmentInfo, EnvironmentStatus, ExecResponse, FsCanonicalizeResponse,
    FsGetMetadataResponse, FsOpenResponse, FsReadBlockResponse, FsReadDirectoryResponse,
    FsReadFileResponse, HttpRequestBodyDeltaNotification, HttpRequestResponse, ReadResponse,
    SignalResponse, TerminateResponse, WalkEntryKind, WalkOutcome, WriteResponse, WriteStatus,
};

/// Codex's `NOT_FOUND` error code (`codex-rs/exec-server/src/rpc.rs`), which
/// its callers test to tell "no such path" from other failures.
const NOT_FOUND: i64 = -32004;

/// `path` as the `file://` URI Codex's `PathUri` would send.
fn uri(path: &std::path::Path) -> String {
    let text = path.to_str().expect("a UTF-8 scratch path");
    format!("file://{}", text.replace('%', "%25").replace(' ', "%20"))
}

fn base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

#[tokio::test]
async fn a_process_runs_and_is_recovered_as_codex_expects() {
    let (mut codex, initialize) = CodexClient::connect(ServerLauncher::new()).await;
    assert!(!initialize.session_id.is_empty());
    let info: EnvironmentInfo = codex.call("environment/info", Value::Null).await;
    assert!(info.cwd.is_some(), "{info:?}");
    assert!(info.shell.path.ends_with(&info.shell.name), "{info:?}");
    let status: EnvironmentStatus = codex.call("environment/status", Value::Null).await;
    assert_eq!(status.status, "ready");

    let scratch = scratch_dir();
    let script = "pwd; printf err >&2; exit 3";
    let started: ExecResponse = codex
        .call(
            "process/start",
            exec_params("p1", &["/bin/sh", "-c", script], &uri(scratch.path())),
        )
        .await;
    assert_eq!(started.process_id, "p1");
    let events = codex.events_until_closed("p1").await;
    assert_eq!(
        events.stdout().trim_end(),
        scratch.path().to_str().expect("UTF-8")
    );
    assert_eq!(
        events.exited.as_ref().map(|exited| exited.exit_code),
        Some(3)
    );
    // Codex's client publishes events strictly by seq: 1, 2, 3, ... with
    // no gap, shared by output, exit and close.
    let seqs = events.seqs();
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let closed_seq = events.closed.as_ref().map(|closed| closed.seq);

    // Codex's `recover_events` after a reconnect: read after the last
    // published output with no wait; `nextSeq - 1` is the last event the
    // server has, and the close event must sit exactly there.
    let last_output = events
        .output
        .iter()
        .map(|chunk| chunk.seq)
        .max()
        .unwrap_or(0);
    let read: ReadResponse = codex
        .call(
            "process/read",
            json!({"processId": "p1", "afterSeq": last_output, "maxBytes": null, "waitMs": 0}),
        )
        .await;
    assert!(read.chunks.is_empty(), "{read:?}");
    assert!(read.exited && read.closed, "{read:?}");
    assert_eq!(read.exit_code, Some(3));
    assert_eq!(Some(read.next_seq - 1), closed_seq, "{read:?}");
    assert!(read.failure.is_none() && !read.sandbox_denied, "{read:?}");

    // Codex's `envPolicy` (`inherit: core`): the child gets the core
    // variables of the server's environment, then `env` over them.
    let mut params = exec_params("env", &["/usr/bin/env"], "file:///");
    params["envPolicy"] = json!({
        "inherit": "core",
        "ignoreDefaultExcludes": false,
        "exclude": [],
        "set": {"FROM_SET": "1"},
        "includeOnly": [],
    });
    params["env"] = json!({"FROM_ENV": "2"});
    let _: ExecResponse = codex.call("process/start", params).await;
    let printed = codex.events_until_closed("env").await.stdout();
    let names: Vec<&str> = printed
        .lines()
        .filter_map(|line| line.split_once('=').map(|(name, _)| name))
        .collect();
    for name in ["PATH", "FROM_SET", "FROM_ENV"] {
        assert!(names.contains(&name), "{name} missing from {printed}");
    }

    // A read from the start returns every chunk, and the same `nextSeq`.
    let whole: ReadResponse = codex
        .call(
            "process/read",
            json!({"processId": "p1", "afterSeq": null, "maxBytes": null, "waitMs": null}),
        )
        .await;
    let chunk_seqs: Vec<u64> = whole.chunks.iter().map(|chunk| chunk.seq).collect();
    let output_seqs: Vec<u64> = events.output.iter().map(|chunk| chunk.seq).collect();
    assert_eq!(chunk_seqs, output_seqs);
    assert_eq!(whole.next_seq, read.next_seq);
}

#[tokio::test]
async fn signal_deaths_carry_an_integer_exit_code() {
    let (mut codex, _) = CodexClient::connect(ServerLauncher::new()).await;
    // Killed by a signal of its own: the shell's 128 + N.
    let _: ExecResponse = codex
        .call(
            "process/start",
            exec_params("killed", &["/bin/sh", "-c", "kill -KILL $$"], "file:///"),
        )
        .await;
    let events = codex.events_until_closed("killed").await;
    assert_eq!(events.exited.map(|exited| exited.exit_code), Some(128 + 9));

    // Interrupted through `process/signal`, with stdin piped and written.
    let mut params = exec_params("cat", &["/bin/cat"], "file:///");
    params["pipeStdin"] = json!(true);
    let _: ExecResponse = codex.call("process/start", params).await;
    let written: WriteResponse = codex
        .call(
            "process/write",
            json!({"processId": "cat", "chunk": base64(b"ping\n"), "writeId": "w1"}),
        )
        .await;
    assert_eq!(written.status, WriteStatus::Accepted);
    let echoed: types::ExecOutputDeltaNotification = codex
        .notification("process/output", |params| params["processId"] == "cat")
        .await;
    assert_eq!(echoed.chunk.0, b"ping\n");
    let _: SignalResponse = codex
        .call(
            "process/signal",
            json!({"processId": "cat", "signal": "interrupt"}),
        )
        .await;
    let events = codex.events_until_closed("cat").await;
    assert_eq!(events.exited.map(|exited| exited.exit_code), Some(128 + 2));

    // Terminated: an integer too, and terminate of what is gone is `false`.
    let _: ExecResponse = codex
        .call(
            "process/start",
            exec_params("sleeper", &["/bin/sleep", "30"], "file:///"),
        )
        .await;
    let terminated: TerminateResponse = codex
        .call("process/terminate", json!({"processId": "sleeper"}))
        .await;
    assert!(terminated.running);
    let events = codex.events_until_closed("sleeper").await;
    let code = events.exited.map(|exited| exited.exit_code);
    assert!(code.is_some_and(|code| code > 128), "{code:?}");
    let unknown: TerminateResponse = codex
        .call("process/terminate", json!({"processId": "never-started"}))
        .await;
    assert!(!unknown.running);
}

#[tokio::test]
async fn files_are_named_by_uri_and_answered_by_uri() {
    let (mut codex, _) = CodexClient::connect(ServerLauncher::new()).await;
    let scratch = scratch_dir();
    let root = scratch.path().join("a dir");
    let nested = root.join("sub/deeper");
    // `recursive: null` is Codex's `mkdir -p`.
    let _: Empty = codex
        .call(
            "fs/createDirectory",
            json!({"path": uri(&nested), "recursive": null, "sandbox": null}),
        )
        .await;
    let file = nested.join("100% file.txt");
    let contents = b"hello from codex\n".repeat(1000);
    let _: Empty = codex
        .call(
            "fs/writeFile",
            json!({"path": uri(&file), "dataBase64": base64(&contents), "sandbox": null}),
        )
        .await;
    let read: FsReadFileResponse = codex
        .call("fs/readFile", json!({"path": uri(&file), "sandbox": null}))
        .await;
    assert_eq!(
        base64_simd::STANDARD
            .decode_to_vec(read.data_base64.as_bytes())
            .expect("base64"),
        contents
    );
    let metadata: FsGetMetadataResponse = codex
        .call(
            "fs/getMetadata",
            json!({"path": uri(&file), "sandbox": null}),
        )
        .await;
    assert!(metadata.is_file && !metadata.is_directory && !metadata.is_symlink);
    assert_eq!(metadata.size, contents.len() as u64);
    assert!(metadata.modified_at_ms > 0 && metadata.created_at_ms >= 0);

    let listing: FsReadDirectoryResponse = codex
        .call(
            "fs/readDirectory",
            json!({"path": uri(&nested), "sandbox": null}),
        )
        .await;
    let names: Vec<&str> = listing
        .entries
        .iter()
        .map(|entry| entry.file_name.as_str())
        .collect();
    assert_eq!(names, ["100% file.txt"]);

    let copy = root.join("copy.txt");
    let _: Empty = codex
        .call(
            "fs/copy",
            json!({"sourcePath": uri(&file), "destinationPath": uri(&copy), "recursive": false, "sandbox": null}),
        )
        .await;
    let link = root.join("link");
    std::os::unix::fs::symlink(&nested, &link).expect("symlink");
    // Codex types entries through links: a link to a directory is one.
    let listing: FsReadDirectoryResponse = codex
        .call(
            "fs/readDirectory",
            json!({"path": uri(&root), "sandbox": null}),
        )
        .await;
    let linked = listing
        .entries
        .iter()
        .find(|entry| entry.file_name == "link");
    assert!(
        linked.is_some_and(|entry| entry.is_directory && !entry.is_file),
        "{listing:?}"
    );
    let canonical: FsCanonicalizeResponse = codex
        .call(
            "fs/canonicalize",
            json!({"path": uri(&link.join("100% file.txt")), "sandbox": null}),
        )
        .await;
    let canonical_file = std::fs::canonicalize(&file).expect("canonical");
    assert_eq!(canonical.path.0, uri(&canonical_file));

    let walk: WalkOutcome = codex
        .call(
            "fs/walk",
            json!({
                "path": uri(&root),
                "options": {"maxDepth": 8, "maxDirectories": 100, "maxEntries": 1000, "followDirectorySymlinks": false},
                "sandbox": null,
            }),
        )
        .await;
    assert!(!walk.truncated && walk.errors.is_empty(), "{walk:?}");
    let files: Vec<&str> = walk
        .entries
        .iter()
        .filter(|entry| entry.kind == WalkEntryKind::File)
        .map(|entry| entry.path.0.as_str())
        .collect();
    assert!(files.contains(&uri(&file).as_str()), "{walk:?}");
    assert!(files.contains(&uri(&copy).as_str()), "{walk:?}");

    // Large files in blocks.
    let opened: FsOpenResponse = codex
        .call(
            "fs/open",
            json!({"handleId": "h1", "path": uri(&file), "sandbox": null}),
        )
        .await;
    assert_eq!(opened.handle_id, "h1");
    let mut blocks = Vec::new();
    let mut offset = 0u64;
    loop {
        let block: FsReadBlockResponse = codex
            .call(
                "fs/readBlock",
                json!({"handleId": "h1", "offset": offset, "len": 4096}),
            )
            .await;
        offset += block.chunk.0.len() as u64;
        blocks.extend(block.chunk.0);
        if block.eof {
            break;
        }
    }
    assert_eq!(blocks, contents);
    let _: Empty = codex.call("fs/close", json!({"handleId": "h1"})).await;
    let gone = codex
        .call_err(
            "fs/readBlock",
            json!({"handleId": "h1", "offset": 0, "len": 1}),
        )
        .await;
    assert_eq!(gone.code, NOT_FOUND, "{gone:?}");

    // `recursive: null, force: null` is Codex's `rm -rf`.
    let _: Empty = codex
        .call(
            "fs/remove",
            json!({"path": uri(&root), "recursive": null, "force": null, "sandbox": null}),
        )
        .await;
    let missing = codex
        .call_err(
            "fs/getMetadata",
            json!({"path": uri(&root), "sandbox": null}),
        )
        .await;
    assert_eq!(missing.code, NOT_FOUND, "{missing:?}");
}

#[tokio::test]
async fn http_requests_are_made_from_the_server() {
    let origin = HttpTestServer::start().await;
    // 3.5 MiB: several 1 MiB deltas, so a lost or reordered one shows.
    let large = 7 << 19;
    let (mut codex, _) = CodexClient::connect(ServerLauncher::new()).await;
    let buffered: HttpRequestResponse = codex
        .call(
            "http/request",
            json!({
                "method": "POST",
                "url": origin.url("/echo"),
                "headers": [{"name": "X-One", "value": "1"}, {"name": "X-One", "value": "2"}],
                "bodyBase64": base64(b"request body"),
                "timeoutMs": null,
                "redirectPolicy": "follow",
                "requestId": "r1",
                "streamResponse": false,
            }),
        )
        .await;
    assert_eq!(buffered.status, 200);
    let echoed = String::from_utf8_lossy(&buffered.body.0).into_owned();
    assert!(echoed.starts_with("POST /echo HTTP/1.1\r\n"), "{echoed}");
    assert!(
        echoed
            .to_ascii_lowercase()
            .contains("x-one: 1\r\nx-one: 2\r\n"),
        "{echoed}"
    );
    assert!(echoed.ends_with("request body"), "{echoed}");

    let streamed: HttpRequestResponse = codex
        .call(
            "http/request",
            json!({
                "method": "GET",
                "url": origin.url(&format!("/bytes/{large}")),
                "headers": [],
                "bodyBase64": null,
                "timeoutMs": 30000,
                "redirectPolicy": "follow",
                "requestId": "r2",
                "streamResponse": true,
            }),
        )
        .await;
    assert_eq!(streamed.status, 200);
    assert!(streamed.body.0.is_empty());
    let mut body = Vec::new();
    let mut next_seq = 1;
    loop {
        let delta: HttpRequestBodyDeltaNotification = codex
            .notification("http/request/bodyDelta", |params| {
                params["requestId"] == "r2"
            })
            .await;
        assert_eq!(delta.seq, next_seq);
        assert!(delta.error.is_none(), "{:?}", delta.error);
        next_seq += 1;
        body.extend(delta.delta.0);
        if delta.done {
            break;
        }
    }
    assert_eq!(body, (0..large).map(pattern_byte).collect::<Vec<u8>>());
}
