//! Every method, notification, error code and error kind of the protocol,
//! against the real binary over stdio and against the in-process mode: the
//! coverage the server issue asks for, checked against the generated method
//! table and the schema's error kinds.

use std::collections::BTreeSet;

use exec_protocol::{ErrorKind, METHODS};
use exec_testkit::{
    HttpTestServer, ServerLauncher, Transport, WireClient, decode, output_of, process_alive,
    wait_gone,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn pipe(process_id: &str, argv: &[&str]) -> Value {
    json!({"processId": process_id, "argv": argv, "cwd": "/", "env": {"PATH": "/usr/bin:/bin"}, "tty": false})
}

fn sh(process_id: &str, script: &str) -> Value {
    pipe(process_id, &["/bin/sh", "-c", script])
}

/// Records which methods and notifications a test used.
#[derive(Default)]
struct Seen(BTreeSet<String>);

impl Seen {
    async fn call(&mut self, client: &mut WireClient, method: &str, params: Value) -> Value {
        self.0.insert(method.to_owned());
        client.call(method, params).await
    }

    fn events(&mut self, events: &[Value]) {
        for event in events {
            self.0
                .insert(event["method"].as_str().unwrap_or_default().to_owned());
        }
    }
}

async fn every_method_and_notification_over_the_wire(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    let mut seen = Seen::default();
    seen.call(&mut client, "initialize", json!({"clientName": "test"}))
        .await;
    client.notify("initialized", json!({})).await;
    seen.0.insert("initialized".into());

    // Pipe stdin, write, EOF, read.
    let mut params = pipe("cat", &["cat"]);
    params["pipeStdin"] = json!(true);
    seen.call(&mut client, "process/start", params).await;
    let written = seen
        .call(
            &mut client,
            "process/write",
            json!({"processId": "cat", "chunk": "aGVsbG8K", "writeId": "w1"}),
        )
        .await;
    assert_eq!(written, json!({"status": "accepted"}));
    seen.call(
        &mut client,
        "process/closeStdin",
        json!({"processId": "cat"}),
    )
    .await;
    let events = client.events_until_closed("cat").await;
    seen.events(&events);
    assert_eq!(output_of(&events, "stdout"), "hello\n");
    let read = seen
        .call(
            &mut client,
            "process/read",
            json!({"processId": "cat", "afterSeq": 0}),
        )
        .await;
    assert_eq!(read["chunks"][0]["chunk"], "aGVsbG8K");
    // An acknowledgement lets the server evict only beyond the retention
    // limit: the output under it stays readable.
    client
        .notify(
            "process/ack",
            json!({"processId": "cat", "seq": read["nextSeq"].as_u64().expect("nextSeq") - 1}),
        )
        .await;
    seen.0.insert("process/ack".into());
    let reread = client
        .request("process/read", json!({"processId": "cat", "afterSeq": 0}))
        .await;
    assert_eq!(reread["result"]["chunks"][0]["chunk"], "aGVsbG8K");
    assert_eq!(
        (
            read["exited"].clone(),
            read["exitCode"].clone(),
            read["closed"].clone()
        ),
        (json!(true), json!(0), json!(true))
    );
    let info = seen
        .call(&mut client, "environment/info", Value::Null)
        .await;
    assert!(info["shell"]["path"].is_string(), "{info}");
    let status = seen
        .call(&mut client, "environment/status", Value::Null)
        .await;
    assert_eq!(status, json!({"status": "ready"}));
    let listed = seen.call(&mut client, "process/list", json!({})).await;
    assert_eq!(listed["processes"][0]["processId"], "cat");
    assert_eq!(listed["processes"][0]["running"], false);

    // A PTY: resize, signal, terminate.
    let mut params = sh("tty", "sleep 60");
    params["tty"] = json!(true);
    seen.call(&mut client, "process/start", params).await;
    seen.call(
        &mut client,
        "process/resize",
        json!({"processId": "tty", "rows": 10, "cols": 20}),
    )
    .await;
    seen.call(
        &mut client,
        "process/signal",
        json!({"processId": "tty", "signal": "continue"}),
    )
    .await;
    let terminated = seen
        .call(
            &mut client,
            "process/terminate",
            json!({"processId": "tty"}),
        )
        .await;
    assert_eq!(terminated, json!({"running": true}));
    let events = client.events_until_closed("tty").await;
    let exited = events
        .iter()
        .find(|event| event["method"] == "process/exited")
        .expect("exited");
    assert_eq!(exited["params"]["reason"], "killed");

    // Files.
    let directory = tempfile::tempdir().expect("tempdir");
    let root = directory.path().to_str().expect("UTF-8").to_owned();
    seen.call(
        &mut client,
        "fs/createDirectory",
        json!({"path": format!("{root}/a/b"), "recursive": true}),
    )
    .await;
    seen.call(
        &mut client,
        "fs/writeFile",
        json!({"path": format!("{root}/a/b/f"), "dataBase64": "AAH/"}),
    )
    .await;
    let read = seen
        .call(
            &mut client,
            "fs/readFile",
            json!({"path": format!("{root}/a/b/f")}),
        )
        .await;
    assert_eq!(read, json!({"dataBase64": "AAH/", "size": 3, "eof": true}));
    let metadata = seen
        .call(
            &mut client,
            "fs/getMetadata",
            json!({"path": format!("{root}/a/b/f")}),
        )
        .await;
    assert_eq!(
        (metadata["isFile"].clone(), metadata["size"].clone()),
        (json!(true), json!(3))
    );
    seen.call(&mut client, "fs/copy", json!({"sourcePath": format!("{root}/a"), "destinationPath": format!("{root}/c"), "recursive": true})).await;
    seen.call(
        &mut client,
        "fs/rename",
        json!({"sourcePath": format!("{root}/c"), "destinationPath": format!("{root}/d")}),
    )
    .await;
    let listing = seen
        .call(&mut client, "fs/readDirectory", json!({"path": root}))
        .await;
    let names: Vec<&str> = listing["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|entry| entry["fileName"].as_str())
        .collect();
    assert_eq!(names, ["a", "d"]);
    let walked = seen
        .call(
            &mut client,
            "fs/walk",
            json!({"path": format!("{root}/a"), "options": {"maxDepth": 4, "maxDirectories": 10, "maxEntries": 10, "followDirectorySymlinks": false}}),
        )
        .await;
    assert_eq!(
        walked,
        json!({"entries": [{"path": format!("{root}/a/b"), "kind": "directory"}, {"path": format!("{root}/a/b/f"), "kind": "file"}], "errors": [], "truncated": false})
    );
    let canonical = seen
        .call(
            &mut client,
            "fs/canonicalize",
            json!({"path": format!("{root}/a/./b/../b/f")}),
        )
        .await;
    let expected = std::fs::canonicalize(format!("{root}/a/b/f")).expect("a canonical path");
    assert_eq!(canonical, json!({"path": expected.display().to_string()}));
    seen.call(
        &mut client,
        "fs/open",
        json!({"handleId": "f", "path": format!("{root}/a/b/f")}),
    )
    .await;
    let block = seen
        .call(
            &mut client,
            "fs/readBlock",
            json!({"handleId": "f", "offset": 1, "len": 8}),
        )
        .await;
    assert_eq!(block, json!({"chunk": "Af8=", "eof": true}));
    seen.call(&mut client, "fs/close", json!({"handleId": "f"}))
        .await;
    seen.call(
        &mut client,
        "fs/remove",
        json!({"path": format!("{root}/d"), "recursive": true}),
    )
    .await;

    // HTTP: a streamed request to a local server, its body in a delta.
    let http = HttpTestServer::start().await;
    let streamed = seen
        .call(
            &mut client,
            "http/request",
            json!({"method": "GET", "url": http.url("/hello"), "requestId": "h", "streamResponse": true}),
        )
        .await;
    assert_eq!(streamed["status"], 200);
    let delta = client
        .recv_matching(|message| message["method"] == "http/request/bodyDelta")
        .await;
    seen.events(std::slice::from_ref(&delta));
    assert_eq!(decode(&delta["params"]["deltaBase64"]), b"hello");

    let table: BTreeSet<String> = METHODS.iter().map(|info| info.name.to_owned()).collect();
    assert_eq!(
        seen.0, table,
        "every method and notification of the table was exercised"
    );
}

async fn every_error_code_and_kind(transport: Transport) {
    let launcher = ServerLauncher::new().max_processes(2);
    let mut client = WireClient::start(transport, &launcher).await;
    let mut codes = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let mut expect = |response: &Value, code: i64, kind: Option<&str>| {
        assert_eq!(response["error"]["code"], code, "{response}");
        assert_eq!(
            response["error"]["data"]["kind"].as_str(),
            kind,
            "{response}"
        );
        codes.insert(code);
        if let Some(kind) = kind {
            kinds.insert(kind.to_owned());
        }
    };

    let response = client
        .request(
            "initialize",
            json!({"clientName": "resume", "resumeSessionId": "0123456789abcdef0123456789abcdef"}),
        )
        .await;
    expect(&response, -32602, Some("unknownSession"));
    // The failed resume leaves the connection uninitialized, free to initialize afresh.
    let response = client.request("process/list", json!({})).await;
    expect(&response, -32600, Some("notInitialized"));
    client.handshake().await;
    let response = client
        .request("initialize", json!({"clientName": "again"}))
        .await;
    expect(&response, -32600, Some("alreadyInitialized"));
    client.send_text("{not json").await;
    expect(&client.recv().await, -32700, None);
    expect(
        &client.request("process/nothing", json!({})).await,
        -32601,
        None,
    );
    expect(
        &client.request("process/start", json!({"argv": []})).await,
        -32602,
        Some("invalidParams"),
    );

    expect(
        &client
            .request("process/read", json!({"processId": "ghost"}))
            .await,
        -32602,
        Some("unknownProcess"),
    );
    client.call("process/start", sh("one", "sleep 60")).await;
    expect(
        &client.request("process/start", sh("one", "true")).await,
        -32602,
        Some("processExists"),
    );
    expect(
        &client
            .request(
                "process/resize",
                json!({"processId": "one", "rows": 5, "cols": 5}),
            )
            .await,
        -32602,
        Some("notPty"),
    );
    expect(
        &client
            .request("process/closeStdin", json!({"processId": "one"}))
            .await,
        -32602,
        Some("stdinClosed"),
    );
    expect(
        &client
            .request("process/start", pipe("bad", &["/nonexistent/program"]))
            .await,
        -32602,
        Some("spawnFailed"),
    );
    let mut boxed = sh("boxed", "true");
    boxed["sandbox"] = json!({"permissions": {"type": "managed"}});
    expect(
        &client.request("process/start", boxed).await,
        -32602,
        Some("sandboxUnavailable"),
    );
    client.call("process/start", sh("two", "sleep 60")).await;
    expect(
        &client.request("process/start", sh("three", "true")).await,
        -32602,
        Some("limitExceeded"),
    );

    let directory = tempfile::tempdir().expect("tempdir");
    let root = directory.path().to_str().expect("UTF-8").to_owned();
    let file = format!("{root}/file");
    client
        .call("fs/writeFile", json!({"path": file, "dataBase64": ""}))
        .await;
    client
        .call(
            "fs/createDirectory",
            json!({"path": format!("{root}/full/x"), "recursive": true}),
        )
        .await;
    expect(
        &client
            .request("fs/readFile", json!({"path": format!("{root}/missing")}))
            .await,
        -32004,
        Some("notFound"),
    );
    // Even root may not unlink a /proc file (EPERM).
    expect(
        &client
            .request("fs/remove", json!({"path": "/proc/self/status"}))
            .await,
        -32602,
        Some("permissionDenied"),
    );
    expect(
        &client
            .request("fs/createDirectory", json!({"path": root}))
            .await,
        -32602,
        Some("alreadyExists"),
    );
    expect(
        &client
            .request("fs/readDirectory", json!({"path": file}))
            .await,
        -32602,
        Some("notADirectory"),
    );
    expect(
        &client.request("fs/readFile", json!({"path": root})).await,
        -32602,
        Some("isADirectory"),
    );
    expect(
        &client
            .request("fs/remove", json!({"path": format!("{root}/full")}))
            .await,
        -32602,
        Some("directoryNotEmpty"),
    );
    expect(
        &client
            .request("fs/getMetadata", json!({"path": "relative"}))
            .await,
        -32602,
        Some("invalidPath"),
    );
    // The server's own memory at offset 0 is unmapped: EIO, an `io` error.
    expect(
        &client
            .request("fs/readFile", json!({"path": "/proc/self/mem"}))
            .await,
        -32603,
        Some("io"),
    );

    // HTTP: a server that never answers, and a port nobody listens on.
    let http = HttpTestServer::start().await;
    expect(
        &client
            .request(
                "http/request",
                json!({"method": "GET", "url": http.url("/hang"), "requestId": "t", "timeoutMs": 100}),
            )
            .await,
        -32603,
        Some("httpTimeout"),
    );
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    expect(
        &client
            .request(
                "http/request",
                json!({"method": "GET", "url": format!("http://{refused}/"), "requestId": "c"}),
            )
            .await,
        -32603,
        Some("httpFailed"),
    );

    assert_eq!(
        codes,
        BTreeSet::from([-32700, -32600, -32601, -32602, -32603, -32004])
    );
    let schema: Value = serde_json::from_str(exec_protocol::SCHEMA_JSON).expect("schema");
    let all_kinds: BTreeSet<String> = schema["$defs"]["ErrorKind"]["oneOf"]
        .as_array()
        .expect("ErrorKind variants")
        .iter()
        .filter_map(|variant| variant["const"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        kinds, all_kinds,
        "every error kind of the schema was provoked"
    );
    let _ = ErrorKind::Io;
}

async fn output_is_binary_exact(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    client
        .call(
            "process/start",
            sh("bin", r"printf '\000\377\001abc\n\000'"),
        )
        .await;
    let events = client.events_until_closed("bin").await;
    let bytes: Vec<u8> = events
        .iter()
        .filter(|event| event["method"] == "process/output")
        .flat_map(|event| decode(&event["params"]["chunk"]))
        .collect();
    assert_eq!(bytes, b"\x00\xff\x01abc\n\x00");
}

async fn three_hundred_thousand_lines_arrive_in_order(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    client
        .call("process/start", pipe("seq", &["seq", "1", "300000"]))
        .await;
    let events = client.events_until_closed("seq").await;
    let seqs: Vec<u64> = events
        .iter()
        .map(|event| event["params"]["seq"].as_u64().expect("seq"))
        .collect();
    assert!(
        seqs.iter().copied().eq(1..=seqs.len() as u64),
        "seq is contiguous from 1"
    );
    let text = output_of(&events, "stdout");
    let mut count = 0u64;
    for (index, line) in text.lines().enumerate() {
        assert_eq!(line.parse::<u64>().ok(), Some(index as u64 + 1));
        count += 1;
    }
    assert_eq!(count, 300_000);
}

async fn long_poll_is_woken_by_output(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = sh("poll", "read line; echo got $line");
    params["pipeStdin"] = json!(true);
    client.call("process/start", params).await;
    // The read waits (up to 60 s) for output that only the write below causes.
    let read = client
        .send_request(
            "process/read",
            json!({"processId": "poll", "afterSeq": 0, "waitMs": 60000}),
        )
        .await;
    client
        .call(
            "process/write",
            json!({"processId": "poll", "chunk": "Z28K"}),
        )
        .await;
    let response = client.response(read).await;
    let chunk = &response["result"]["chunks"][0];
    assert_eq!(
        String::from_utf8_lossy(&decode(&chunk["chunk"])),
        "got go\n"
    );
    // The read covers at least this chunk (and the exit and close, if they
    // came too): `nextSeq` is the seq after the last one covered.
    assert!(response["result"]["nextSeq"].as_u64() > chunk["seq"].as_u64());
}

async fn timeout_and_signals_end_processes_with_their_reason(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = sh("slow", "sleep 60");
    params["timeoutMs"] = json!(300);
    client.call("process/start", params).await;
    let exited = client.notification("process/exited", "slow").await;
    assert_eq!(
        (
            exited["params"]["reason"].clone(),
            exited["params"]["exitCode"].clone()
        ),
        // SIGKILL (9) ends a timed-out process: 128 + 9.
        (json!("timedOut"), json!(137))
    );

    client
        .call("process/start", pipe("sleeper", &["sleep", "60"]))
        .await;
    client
        .call(
            "process/signal",
            json!({"processId": "sleeper", "signal": "interrupt"}),
        )
        .await;
    let exited = client.notification("process/exited", "sleeper").await;
    assert_eq!(
        (
            exited["params"]["reason"].clone(),
            exited["params"]["signal"].clone(),
            exited["params"]["exitCode"].clone()
        ),
        // SIGINT (2): 128 + 2.
        (json!("signaled"), json!("interrupt"), json!(130))
    );
}

/// A child that starts a `setsid` grandchild and prints the grandchild's pid.
async fn start_tree(client: &mut WireClient, process_id: &str) -> (i64, i64) {
    let started = client
        .call(
            "process/start",
            sh(process_id, "setsid sleep 60 & echo $!; wait"),
        )
        .await;
    let output = client.notification("process/output", process_id).await;
    let grandchild = String::from_utf8_lossy(&decode(&output["params"]["chunk"]))
        .trim()
        .parse()
        .expect("pid");
    (started["pid"].as_i64().expect("pid"), grandchild)
}

async fn terminate_kills_the_tree_including_a_setsid_grandchild(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let (child, grandchild) = start_tree(&mut client, "tree").await;
    assert!(process_alive(grandchild));
    assert_eq!(
        client
            .call("process/terminate", json!({"processId": "tree"}))
            .await,
        json!({"running": true})
    );
    client.events_until_closed("tree").await;
    assert!(
        wait_gone(child).await && wait_gone(grandchild).await,
        "the tree survived terminate"
    );
    assert_eq!(
        client
            .call("process/terminate", json!({"processId": "tree"}))
            .await,
        json!({"running": false})
    );
}

async fn disconnect_kills_the_tree_including_a_setsid_grandchild(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let (child, grandchild) = start_tree(&mut client, "tree").await;
    // Ends the connection: closes stdin over stdio, drops the sender in-process.
    client.close().await;
    assert!(
        wait_gone(child).await && wait_gone(grandchild).await,
        "the tree survived the disconnect"
    );
}

#[tokio::test]
async fn twenty_connections_share_a_process_id_without_interference() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut tasks = Vec::new();
    for connection in 0..20 {
        let url = server.url.clone();
        tasks.push(tokio::spawn(async move {
            let mut client = WireClient::websocket(&url).await;
            client.handshake().await;
            let mut params = sh("same", "echo connection-$N");
            params["env"]["N"] = json!(connection.to_string());
            client.call("process/start", params).await;
            let events = client.events_until_closed("same").await;
            assert_eq!(
                output_of(&events, "stdout"),
                format!("connection-{connection}\n")
            );
            let listed = client.call("process/list", json!({})).await;
            assert_eq!(listed["processes"].as_array().map(Vec::len), Some(1));
        }));
    }
    for task in tasks {
        task.await.expect("a connection's test passed");
    }
}

async fn pty_echoes_input(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = pipe("echo", &["cat"]);
    params["tty"] = json!(true);
    client.call("process/start", params).await;
    client
        .call(
            "process/write",
            json!({"processId": "echo", "chunk": "YWJjCg=="}),
        )
        .await;
    let mut seen = String::new();
    while !seen.contains("abc\r\nabc\r\n") {
        let output = client.notification("process/output", "echo").await;
        seen.push_str(&String::from_utf8_lossy(&decode(
            &output["params"]["chunk"],
        )));
    }
    // VEOF on an empty line ends `cat`.
    client
        .call("process/closeStdin", json!({"processId": "echo"}))
        .await;
    let exited = client.notification("process/exited", "echo").await;
    assert_eq!(exited["params"]["exitCode"], 0);
}

/// A write to a pipe nobody reads waits, on a task of its own, for room;
/// requests after it (answered on the connection's reader when they need no
/// waiting) are not held up by it, and the write is answered once the
/// process is gone.
async fn a_write_to_a_full_pipe_holds_up_no_other_request(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = sh("deaf", "sleep 60");
    params["pipeStdin"] = json!(true);
    client.call("process/start", params).await;
    // 10 KiB per write keeps each request small; eight of them are more
    // than a pipe holds (64 KiB), so the last ones wait.
    let chunk = base64_simd::STANDARD.encode_to_string([b'x'; 10 * 1024]);
    let mut writes = Vec::new();
    for _ in 0..8 {
        writes.push(
            client
                .send_request(
                    "process/write",
                    json!({"processId": "deaf", "chunk": chunk}),
                )
                .await,
        );
    }
    for _ in 0..3 {
        let listed = client.call("process/list", json!({})).await;
        assert_eq!(listed["processes"][0]["running"], true);
        let read = client
            .call("process/read", json!({"processId": "deaf", "afterSeq": 0}))
            .await;
        assert_eq!(read["exited"], false);
    }
    client
        .call("process/terminate", json!({"processId": "deaf"}))
        .await;
    for write in writes {
        let response = client.response(write).await;
        let status = response["result"]["status"].as_str();
        assert!(
            matches!(status, Some("accepted" | "stdinClosed")),
            "{response}"
        );
    }
}

exec_testkit::transport_tests! {
    every_method_and_notification_over_the_wire: [stdio, in_process],
    every_error_code_and_kind: [stdio, in_process],
    output_is_binary_exact: [stdio, in_process],
    three_hundred_thousand_lines_arrive_in_order: [stdio, in_process],
    long_poll_is_woken_by_output: [stdio, in_process],
    timeout_and_signals_end_processes_with_their_reason: [stdio, in_process],
    terminate_kills_the_tree_including_a_setsid_grandchild: [stdio, in_process],
    disconnect_kills_the_tree_including_a_setsid_grandchild: [stdio, in_process],
    pty_echoes_input: [stdio, in_process],
    a_write_to_a_full_pipe_holds_up_no_other_request: [stdio, websocket, in_process],
}
