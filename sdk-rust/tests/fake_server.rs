//! The client against a scripted server in the same process, through
//! [`TransportChannels::pair`]: routing, errors, closing, protocol
//! violations, and the output sequencing (gaps, lag, eviction), with
//! exact control over what the "server" sends and when.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_client::protocol::{FsGetMetadata, FsGetMetadataParams, ProcessListParams};
use exec_client::{
    ClientError, ConnectOptions, ErrorKind, ExecClient, ExitReason, OutputStream, ProcessEvent,
    ServerChannels, ServerMessage, TransportChannels,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// What the scripted server answers to a request.
enum Reply {
    /// A `result`.
    Result(Value),
    /// An error object with this code, message and data.
    Error(i32, &'static str, Value),
    /// Nothing (the call stays pending).
    Silence,
}

type Handler = Box<dyn FnMut(&str, &Value) -> Reply + Send>;

/// The test's side of the scripted server.
struct Fake {
    /// Sends raw texts to the client (notifications, broken messages).
    to_client: mpsc::Sender<ServerMessage>,
    /// Every request after the handshake, as `(method, params)`.
    requests: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Fake {
    async fn send(&self, message: Value) {
        self.send_text(message.to_string()).await;
    }

    async fn send_text(&self, text: String) {
        self.to_client
            .send(ServerMessage::Text(text))
            .await
            .expect("the client is listening");
    }

    async fn output(&self, process_id: &str, seq: u64, bytes: &[u8]) {
        self.send(output_notification(process_id, seq, bytes)).await;
    }

    async fn exited(&self, process_id: &str, seq: u64, exit_code: i32) {
        self.send(json!({"jsonrpc": "2.0", "method": "process/exited", "params": {
            "processId": process_id, "seq": seq, "exitCode": exit_code, "signal": null, "reason": "exited"}}))
            .await;
    }

    async fn closed(&self, process_id: &str, seq: u64) {
        self.send(
            json!({"jsonrpc": "2.0", "method": "process/closed", "params": {
            "processId": process_id, "seq": seq}}),
        )
        .await;
    }

    fn requests_of(&self, method: &str) -> Vec<Value> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|(name, _)| name == method)
            .map(|(_, params)| params.clone())
            .collect()
    }
}

fn base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

fn output_notification(process_id: &str, seq: u64, bytes: &[u8]) -> Value {
    json!({"jsonrpc": "2.0", "method": "process/output", "params": {
        "processId": process_id, "seq": seq, "stream": "stdout", "chunk": base64(bytes)}})
}

fn initialize_result() -> Value {
    json!({
        "protocolVersion": "exec-server.v1",
        "sessionId": "fake-session",
        "serverInfo": {"name": "fake", "version": "0.0.0"},
        "platform": {"os": "linux", "arch": "x86_64"},
        "limits": {"retainedOutputBytesPerProcess": 1048576, "maxProcessesPerConnection": 8, "maxMessageBytes": 65536, "sessionTtlMs": 0}
    })
}

/// Starts a scripted server answering `initialize` itself and everything
/// else with `handler`, and connects a client to it.
async fn connect(options: ConnectOptions, handler: Handler) -> (ExecClient, Fake) {
    let (client_end, fake) = start_fake(handler);
    let client = ExecClient::connect_transport(client_end, options)
        .await
        .expect("the handshake succeeds");
    (client, fake)
}

/// Starts a scripted server answering `initialize` itself and everything
/// else with `handler`; returns the client's end of its channels.
fn start_fake(handler: Handler) -> (TransportChannels, Fake) {
    let (client_end, server_end) = TransportChannels::pair(1024);
    let requests = Arc::new(Mutex::new(Vec::new()));
    let fake = Fake {
        to_client: server_end.outgoing.clone(),
        requests: requests.clone(),
    };
    tokio::spawn(serve(server_end, handler, requests));
    (client_end, fake)
}

async fn serve(
    mut end: ServerChannels,
    mut handler: Handler,
    requests: Arc<Mutex<Vec<(String, Value)>>>,
) {
    while let Some(text) = end.incoming.recv().await {
        let message: Value = serde_json::from_str(&text).expect("the client sends JSON");
        assert_eq!(message["jsonrpc"], "2.0", "{message}");
        let method = message["method"].as_str().expect("a method").to_owned();
        let Some(id) = message.get("id").cloned() else {
            continue;
        };
        let reply = if method == "initialize" {
            Reply::Result(initialize_result())
        } else {
            requests
                .lock()
                .expect("lock")
                .push((method.clone(), message["params"].clone()));
            handler(&method, &message["params"])
        };
        let response = match reply {
            Reply::Result(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Reply::Error(code, text, data) => {
                json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": text, "data": data}})
            }
            Reply::Silence => continue,
        };
        if end
            .outgoing
            .send(response.to_string().into())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A handler that starts any process (pid 42) and answers `process/read`
/// from `retained`, a list of `(seq, bytes)`, reporting as dropped the
/// `evicted` chunks, a list of `(seq, length in bytes)`, after the cursor.
fn process_server(retained: Vec<(u64, Vec<u8>)>, evicted: Vec<(u64, u64)>) -> Handler {
    Box::new(move |method, params| match method {
        "process/start" => Reply::Result(json!({"processId": params["processId"], "pid": 42})),
        "process/read" => {
            let after = params["afterSeq"].as_u64().unwrap_or(0);
            let chunks: Vec<Value> = retained
                .iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(seq, bytes)| json!({"seq": seq, "stream": "stdout", "chunk": base64(bytes)}))
                .collect();
            // Codex's `nextSeq`: the seq after the last one the read covers.
            let next_seq = retained.last().map_or(after, |(seq, _)| (*seq).max(after)) + 1;
            let dropped_bytes: u64 = evicted
                .iter()
                .filter(|(seq, _)| *seq > after)
                .map(|(_, length)| length)
                .sum();
            Reply::Result(
                json!({"chunks": chunks, "nextSeq": next_seq, "exited": false, "exitCode": null,
                "signal": null, "closed": false, "droppedBytes": dropped_bytes}),
            )
        }
        "process/list" => Reply::Result(json!({"processes": []})),
        _ => Reply::Error(-32601, "method not found", json!(null)),
    })
}

/// Every event until the end, rendered short.
async fn events(child: &mut exec_client::RemoteChild) -> Vec<String> {
    let mut seen = Vec::new();
    while let Some(event) = child.next_event().await.expect("no error") {
        seen.push(match event {
            ProcessEvent::Output(chunk) => {
                format!("{}:{}", chunk.seq, String::from_utf8_lossy(&chunk.bytes))
            }
            ProcessEvent::OutputLost { bytes } => format!("lost {bytes}"),
            ProcessEvent::Exited(status) => format!("exited {}", status.exit_code),
            other => format!("{other:?}"),
        });
    }
    seen
}

#[tokio::test]
async fn calls_are_routed_by_id_and_typed() {
    let handler: Handler = Box::new(|method, params| match method {
        "fs/getMetadata" => Reply::Result(
            json!({"isDirectory": true, "isFile": false, "isSymlink": false,
            "size": 4096, "createdAtMs": 0, "modifiedAtMs": 1, "mode": 16877, "echo": params["path"]}),
        ),
        "process/list" => Reply::Result(json!({"processes": []})),
        "custom/echo" => Reply::Result(params.clone()),
        _ => Reply::Error(-32601, "method not found", json!(null)),
    });
    let (client, fake) = connect(ConnectOptions::new("routing"), handler).await;
    assert_eq!(client.initialize_response().session_id, "fake-session");

    let (list, metadata, echo) = tokio::join!(
        client.process_list(ProcessListParams {}),
        client.call::<FsGetMetadata>(FsGetMetadataParams {
            sandbox: None,
            follow_symlinks: None,
            path: "/tmp".to_owned().into(),
        }),
        client.request("custom/echo", json!({"x": [1, 2]})),
    );
    assert_eq!(list.expect("list").processes, vec![]);
    assert!(metadata.expect("metadata").is_directory);
    assert_eq!(echo.expect("echo"), json!({"x": [1, 2]}));
    client
        .notify("custom/notice", json!({}))
        .await
        .expect("notify");
    assert_eq!(
        fake.requests_of("fs/getMetadata"),
        vec![json!({"path": "/tmp"})]
    );
}

#[tokio::test]
async fn a_silent_server_times_out_the_handshake() {
    let (client_end, _server_end) = TransportChannels::pair(16);
    let options = ConnectOptions::default().initialize_timeout(Duration::from_millis(50));
    let error = ExecClient::connect_transport(client_end, options)
        .await
        .expect_err("no answer");
    assert!(
        matches!(&error, ClientError::Timeout { what } if what.contains("initialize")),
        "{error:?}"
    );
}

#[tokio::test]
async fn another_protocol_version_is_refused() {
    let (client_end, mut server_end) = TransportChannels::pair(16);
    tokio::spawn(async move {
        let initialize: Value =
            serde_json::from_str(&server_end.incoming.recv().await.expect("initialize"))
                .expect("json");
        let mut result = initialize_result();
        result["protocolVersion"] = json!("exec-server.v2");
        let response = json!({"jsonrpc": "2.0", "id": initialize["id"], "result": result});
        server_end
            .outgoing
            .send(response.to_string().into())
            .await
            .expect("send");
        // Keep the connection open until the client gives up.
        while server_end.incoming.recv().await.is_some() {}
    });
    let error = ExecClient::connect_transport(client_end, ConnectOptions::default())
        .await
        .expect_err("wrong version");
    assert!(
        matches!(&error, ClientError::Protocol(text) if text.contains("exec-server.v2")),
        "{error:?}"
    );
}

#[tokio::test]
async fn server_errors_carry_code_kind_and_data() {
    let handler: Handler = Box::new(|_, _| {
        Reply::Error(
            -32602,
            "no such file",
            json!({"kind": "notFound", "path": "/nope"}),
        )
    });
    let (client, _fake) = connect(ConnectOptions::default(), handler).await;
    let error = client
        .request("fs/readFile", json!({"path": "/nope"}))
        .await
        .expect_err("an error");
    assert_eq!(error.kind(), Some(ErrorKind::NotFound));
    match error {
        ClientError::Server {
            code,
            message,
            data,
            ..
        } => {
            assert_eq!((code, message.as_str()), (-32602, "no such file"));
            assert_eq!(data, Some(json!({"kind": "notFound", "path": "/nope"})));
        }
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_connection_fails_pending_and_later_calls() {
    let (client_end, mut server_end) = TransportChannels::pair(16);
    let server = tokio::spawn(async move {
        // Answer the handshake, then swallow one request and hang up.
        let initialize: Value =
            serde_json::from_str(&server_end.incoming.recv().await.expect("initialize"))
                .expect("json");
        let response =
            json!({"jsonrpc": "2.0", "id": initialize["id"], "result": initialize_result()});
        server_end
            .outgoing
            .send(response.to_string().into())
            .await
            .expect("send");
        let _initialized = server_end.incoming.recv().await.expect("initialized");
        let _pending = server_end.incoming.recv().await.expect("a request");
    });
    let client = ExecClient::connect_transport(client_end, ConnectOptions::default())
        .await
        .expect("handshake");
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("closed");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
    server.await.expect("server task");
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("still closed");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
}

#[tokio::test]
async fn invalid_json_from_the_server_fails_the_connection_with_a_protocol_error() {
    let (client, fake) = connect(ConnectOptions::default(), Box::new(|_, _| Reply::Silence)).await;
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.process_list(ProcessListParams {}).await }
    });
    // Wait until the request is out, so it is pending when the garbage comes.
    while fake.requests_of("process/list").is_empty() {
        tokio::task::yield_now().await;
    }
    fake.send_text(String::from("{this is not json")).await;
    let error = pending.await.expect("task").expect_err("a violation");
    assert!(
        matches!(&error, ClientError::Protocol(text) if text.contains("not a JSON-RPC object")),
        "{error:?}"
    );
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("closed by the violation");
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn a_response_to_no_request_is_a_protocol_violation() {
    let (client, fake) = connect(ConnectOptions::default(), Box::new(|_, _| Reply::Silence)).await;
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.process_list(ProcessListParams {}).await }
    });
    while fake.requests_of("process/list").is_empty() {
        tokio::task::yield_now().await;
    }
    fake.send(json!({"jsonrpc": "2.0", "id": 9999, "result": {}}))
        .await;
    let error = pending.await.expect("task").expect_err("a violation");
    assert!(
        matches!(&error, ClientError::Protocol(text) if text.contains("9999")),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_result_that_does_not_match_the_schema_fails_only_that_call() {
    let handler: Handler = Box::new(|method, _| match method {
        "process/list" => Reply::Result(json!({"processes": "not a list"})),
        _ => Reply::Result(json!({"x": 1})),
    });
    let (client, _fake) = connect(ConnectOptions::default(), handler).await;
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("schema mismatch");
    assert!(
        matches!(&error, ClientError::Protocol(text) if text.contains("process/list")),
        "{error:?}"
    );
    assert_eq!(
        client
            .request("custom/x", json!({}))
            .await
            .expect("still open"),
        json!({"x": 1})
    );
}

#[tokio::test]
async fn messages_over_the_server_limit_are_refused_before_sending() {
    let (client, fake) = connect(
        ConnectOptions::default(),
        Box::new(|_, _| Reply::Result(json!({}))),
    )
    .await;
    let big = "x".repeat(70_000);
    let error = client
        .request("custom/big", json!({"data": big}))
        .await
        .expect_err("too large");
    assert!(
        matches!(error, ClientError::MessageTooLarge { limit: 65536, .. }),
        "{error:?}"
    );
    assert!(fake.requests_of("custom/big").is_empty());
}

#[tokio::test]
async fn command_defaults_are_root_cwd_empty_env_pipes_and_fresh_ids() {
    let (client, fake) = connect(ConnectOptions::default(), process_server(vec![], vec![])).await;
    let first = client.command("ls").spawn().await.expect("spawn");
    let second = client
        .command("sh")
        .args(["-c", "read x"])
        .arg("extra")
        .cwd("/tmp")
        .env("A", "1")
        .inherit_env(true)
        .pty(30, 100)
        .timeout(Duration::from_micros(1500))
        .process_id("mine")
        .spawn()
        .await
        .expect("spawn");
    assert_eq!((first.pid(), second.process_id()), (42, "mine"));
    assert_ne!(first.process_id(), "");
    assert_eq!(
        fake.requests_of("process/start"),
        vec![
            json!({"processId": first.process_id(), "argv": ["ls"], "cwd": "/", "env": {}, "tty": false}),
            json!({"processId": "mine", "argv": ["sh", "-c", "read x", "extra"], "cwd": "/tmp", "env": {"A": "1"},
                "inheritEnv": true, "tty": true, "size": {"rows": 30, "cols": 100}, "timeoutMs": 2}),
        ]
    );
    let error = client
        .command("x")
        .pty(0, 80)
        .spawn()
        .await
        .expect_err("zero rows");
    assert!(matches!(error, ClientError::InvalidInput(_)), "{error:?}");
    let error = client
        .command("x")
        .process_id("mine")
        .spawn()
        .await
        .expect_err("id in use");
    assert!(matches!(error, ClientError::InvalidInput(_)), "{error:?}");
}

#[tokio::test]
async fn in_order_output_needs_no_reads() {
    let (client, fake) = connect(ConnectOptions::default(), process_server(vec![], vec![])).await;
    let mut child = client
        .command("x")
        .process_id("p")
        .spawn()
        .await
        .expect("spawn");
    fake.output("p", 1, b"a").await;
    fake.output("p", 2, b"b").await;
    fake.exited("p", 3, 0).await;
    fake.output("p", 4, b"late").await;
    fake.closed("p", 5).await;
    fake.output("other", 1, b"not ours").await;
    assert_eq!(
        events(&mut child).await,
        ["1:a", "2:b", "exited 0", "4:late"]
    );
    assert!(fake.requests_of("process/read").is_empty());
    assert_eq!(
        child.exit_status().map(|status| status.reason),
        Some(ExitReason::Exited)
    );
}

#[tokio::test]
async fn a_seq_gap_is_filled_from_process_read() {
    let retained = vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())];
    let (client, fake) = connect(ConnectOptions::default(), process_server(retained, vec![])).await;
    let mut child = client
        .command("x")
        .process_id("p")
        .spawn()
        .await
        .expect("spawn");
    fake.output("p", 1, b"a").await;
    // Seq 2 never comes as a notification.
    fake.output("p", 3, b"c").await;
    fake.exited("p", 4, 3).await;
    fake.closed("p", 5).await;
    assert_eq!(events(&mut child).await, ["1:a", "2:b", "3:c", "exited 3"]);
    assert_eq!(
        fake.requests_of("process/read"),
        vec![json!({"processId": "p", "afterSeq": 1, "maxBytes": 131072})]
    );
    assert_eq!(child.dropped_bytes(), 0);
}

#[tokio::test]
async fn a_stalled_consumer_is_caught_up_from_process_read_without_loss() {
    let options = ConnectOptions::default()
        .output_buffer_chunks(4)
        .output_stall_timeout(Duration::from_millis(50));
    let chunks: Vec<(u64, Vec<u8>)> = (1..=50)
        .map(|seq| (seq, format!("<{seq}>").into_bytes()))
        .collect();
    let (client, fake) = connect(options, process_server(chunks.clone(), vec![])).await;
    let mut child = client
        .command("x")
        .process_id("p")
        .spawn()
        .await
        .expect("spawn");
    for (seq, bytes) in &chunks {
        fake.output("p", *seq, bytes).await;
    }
    fake.exited("p", 51, 0).await;
    fake.closed("p", 52).await;
    // This answer is queued behind all the output: it arrives only once the
    // reader gave up waiting for the stalled child (an event, not a sleep).
    client
        .process_list(ProcessListParams {})
        .await
        .expect("list");

    let mut received = Vec::new();
    while let Some(chunk) = child.next_output().await.expect("no error") {
        received.push((chunk.seq, chunk.bytes.to_vec()));
    }
    assert_eq!(received, chunks);
    assert_eq!(child.exit_status().map(|status| status.exit_code), Some(0));
    assert_eq!(child.dropped_bytes(), 0);
    assert!(
        !fake.requests_of("process/read").is_empty(),
        "the gap was filled by reading"
    );
}

#[tokio::test]
async fn output_the_server_evicted_is_reported_once() {
    let options = ConnectOptions::default()
        .output_buffer_chunks(2)
        .output_stall_timeout(Duration::from_millis(20));
    // The server retains only seqs 9 and 10; 1-8 (a byte each) were evicted.
    let retained = vec![(9, b"i".to_vec()), (10, b"j".to_vec())];
    let evicted = (1..=8).map(|seq| (seq, 1)).collect();
    let (client, fake) = connect(options, process_server(retained, evicted)).await;
    let mut child = client
        .command("x")
        .process_id("p")
        .spawn()
        .await
        .expect("spawn");
    for seq in 1..=10u64 {
        fake.output("p", seq, &[b'a' + (seq as u8 - 1)]).await;
    }
    fake.exited("p", 11, 0).await;
    fake.closed("p", 12).await;
    client
        .process_list(ProcessListParams {})
        .await
        .expect("list");
    // Seqs 1-2 sit in the channel and the reader dropped 3-10; of those,
    // the server no longer has 3-8: 6 bytes are lost.
    assert_eq!(
        events(&mut child).await,
        ["1:a", "2:b", "lost 6", "9:i", "10:j", "exited 0"]
    );
    assert_eq!(child.dropped_bytes(), 6);
}

#[tokio::test]
async fn writes_retry_while_starting_with_the_same_write_id() {
    let mut answers = vec!["starting", "starting", "accepted", "stdinClosed"].into_iter();
    let handler: Handler = Box::new(move |method, params| match method {
        "process/start" => Reply::Result(json!({"processId": params["processId"], "pid": 7})),
        "process/write" => {
            Reply::Result(json!({"status": answers.next().unwrap_or("unknownProcess")}))
        }
        _ => Reply::Error(-32601, "method not found", json!(null)),
    });
    let (client, fake) = connect(ConnectOptions::default(), handler).await;
    let child = client
        .command("cat")
        .process_id("w")
        .pipe_stdin()
        .spawn()
        .await
        .expect("spawn");
    child
        .write(b"hello")
        .await
        .expect("accepted on the third try");
    let writes = fake.requests_of("process/write");
    assert_eq!(writes.len(), 3);
    assert!(writes.iter().all(|write| write == &writes[0]), "{writes:?}");
    assert_eq!(writes[0]["chunk"], base64(b"hello"));
    let error = child.handle().write("more").await.expect_err("closed");
    assert!(
        matches!(&error, ClientError::WriteRejected { status, .. } if status.to_string() == "stdinClosed"),
        "{error:?}"
    );
}

#[tokio::test]
async fn a_child_sees_the_connection_close() {
    let (client_end, mut server_end) = TransportChannels::pair(16);
    let server = tokio::spawn(async move {
        let answer = async |text: String, result: Value| {
            let request: Value = serde_json::from_str(&text).expect("json");
            let response = json!({"jsonrpc": "2.0", "id": request["id"], "result": result});
            server_end
                .outgoing
                .send(response.to_string().into())
                .await
                .expect("send");
        };
        let initialize = server_end.incoming.recv().await.expect("initialize");
        answer(initialize, initialize_result()).await;
        let _initialized = server_end.incoming.recv().await.expect("initialized");
        let start = server_end.incoming.recv().await.expect("start");
        answer(start, json!({"processId": "p", "pid": 1})).await;
        let notification = output_notification("p", 1, b"last words");
        server_end
            .outgoing
            .send(notification.to_string().into())
            .await
            .expect("send");
        // Hanging up here closes the connection.
    });
    let client = ExecClient::connect_transport(client_end, ConnectOptions::default())
        .await
        .expect("handshake");
    let mut child = client
        .command("x")
        .process_id("p")
        .spawn()
        .await
        .expect("spawn");
    server.await.expect("server task");
    let chunk = child
        .next_output()
        .await
        .expect("delivered before the close")
        .expect("a chunk");
    assert_eq!(
        (chunk.stream, &chunk.bytes[..]),
        (OutputStream::Stdout, &b"last words"[..])
    );
    let error = child.next_output().await.expect_err("closed");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
}

/// A handler that answers nothing and tells `seen` each method it got.
fn silent_server(seen: mpsc::UnboundedSender<String>) -> Handler {
    Box::new(move |method, _| {
        let _ = seen.send(method.to_owned());
        Reply::Silence
    })
}

/// The limit the over-long message tests set, in bytes: the handshake fits.
const SMALL_INCOMING_LIMIT: usize = 4096;

/// With a call pending, the server sends a message over the client's limit:
/// the call, and every call after, fails with `IncomingMessageTooLarge`.
async fn assert_an_over_long_message_closes_the_connection(
    client: ExecClient,
    fake: Fake,
    mut seen: mpsc::UnboundedReceiver<String>,
) {
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.process_list(ProcessListParams {}).await }
    });
    assert_eq!(seen.recv().await.as_deref(), Some("process/list"));
    let padding = "x".repeat(SMALL_INCOMING_LIMIT * 4);
    fake.send(json!({"jsonrpc": "2.0", "method": "custom/big", "params": {"padding": padding}}))
        .await;
    let error = pending.await.expect("task").expect_err("closed");
    assert!(
        matches!(
            error,
            ClientError::IncomingMessageTooLarge { bytes, limit: SMALL_INCOMING_LIMIT }
                if bytes > SMALL_INCOMING_LIMIT
        ),
        "{error:?}"
    );
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("still closed");
    assert!(
        matches!(error, ClientError::IncomingMessageTooLarge { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn an_over_long_stdio_line_closes_the_connection_with_a_clear_error() {
    let (seen, seen_by_test) = mpsc::unbounded_channel();
    let (mut fake_end, fake) = start_fake(silent_server(seen));
    let (client_side, server_side) = tokio::io::duplex(64 * 1024);
    // Carries the scripted server's messages as lines over the byte stream.
    tokio::spawn(async move {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let (reader, mut writer) = tokio::io::split(server_side);
        let mut lines = tokio::io::BufReader::new(reader).lines();
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) => {
                        if fake_end.outgoing.send(line).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                },
                text = fake_end.incoming.recv() => {
                    let Some(ServerMessage::Text(text)) = text else { return };
                    let written = writer.write_all(format!("{text}\n").as_bytes()).await;
                    if written.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let (reader, writer) = tokio::io::split(client_side);
    let options =
        ConnectOptions::new("stdio-limit").max_incoming_message_bytes(SMALL_INCOMING_LIMIT);
    let client = ExecClient::connect_stdio(reader, writer, options)
        .await
        .expect("the handshake fits under the limit");
    assert_an_over_long_message_closes_the_connection(client, fake, seen_by_test).await;
}

#[tokio::test]
async fn an_over_long_websocket_message_closes_the_connection_with_a_clear_error() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (seen, seen_by_test) = mpsc::unbounded_channel();
    let (mut fake_end, fake) = start_fake(silent_server(seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    // Carries the scripted server's messages as WebSocket text messages.
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.expect("accept");
        let mut socket = tokio_tungstenite::accept_async(stream)
            .await
            .expect("upgrade");
        loop {
            tokio::select! {
                message = socket.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        if fake_end.outgoing.send(text.as_str().to_owned()).await.is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => return,
                },
                text = fake_end.incoming.recv() => {
                    let Some(ServerMessage::Text(text)) = text else { return };
                    if socket.send(Message::text(text)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let options =
        ConnectOptions::new("websocket-limit").max_incoming_message_bytes(SMALL_INCOMING_LIMIT);
    let client = ExecClient::connect_websocket(&format!("ws://{address}"), options)
        .await
        .expect("the handshake fits under the limit");
    assert_an_over_long_message_closes_the_connection(client, fake, seen_by_test).await;
}
