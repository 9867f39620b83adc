//! Binary output frames against the real binary: `initialize` grants
//! `binaryOutput` only to a WebSocket client that asks; such a client gets
//! each `process/output` as one binary frame (the schema's
//! `x-binaryFrames`) carrying the same bytes and seqs as the JSON path,
//! everything else as text; a client that did not ask, and any stdio
//! client, gets text only; and a resumed session's output follows the grant
//! of the connection that resumed it.

use std::collections::VecDeque;

use exec_protocol::{OutputStream, ProcessOutputNotification, decode_binary_frame};
use exec_testkit::{RawConnection, Received, ServerLauncher, Transport, decode};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// One message from the server, as it came.
#[derive(Debug, Clone)]
enum Message {
    /// A JSON text.
    Json(Value),
    /// A binary output frame, decoded.
    Frame(ProcessOutputNotification),
}

/// One output chunk as either path carries it: seq, stream, bytes.
type Chunk = (u64, String, Vec<u8>);

/// A client that keeps binary frames apart from text.
struct Peer {
    connection: RawConnection,
    next_id: i64,
    /// Messages that came while a response was awaited.
    backlog: VecDeque<Message>,
}

impl Peer {
    async fn start(transport: Transport, launcher: &ServerLauncher) -> Self {
        let connection = RawConnection::start(transport, launcher)
            .await
            .expect("the server starts");
        Self::new(connection)
    }

    async fn websocket(url: &str) -> Self {
        Self::new(
            RawConnection::websocket(url, None)
                .await
                .expect("the upgrade succeeds"),
        )
    }

    fn new(connection: RawConnection) -> Self {
        Self {
            connection,
            next_id: 1,
            backlog: VecDeque::new(),
        }
    }

    async fn recv_fresh(&mut self) -> Message {
        let received = self
            .connection
            .recv()
            .await
            .expect("a message in time")
            .expect("the server is connected");
        match received {
            Received::Text(text) => Message::Json(serde_json::from_str(&text).expect("JSON text")),
            Received::Binary(frame) => {
                Message::Frame(decode_binary_frame(&frame).expect("a binary frame that decodes"))
            }
            Received::Pong(_) => panic!("an unasked pong"),
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.connection
            .send_text(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string(),
            )
            .expect("connected");
        loop {
            let message = self.recv_fresh().await;
            if let Message::Json(value) = &message
                && value["id"] == id
            {
                return value
                    .get("result")
                    .cloned()
                    .unwrap_or_else(|| panic!("{method} failed: {value}"));
            }
            self.backlog.push_back(message);
        }
    }

    /// `initialize` (asking for binary output or not, resuming `resume`)
    /// and `initialized`; returns the `initialize` result.
    async fn handshake(&mut self, binary_output: Option<bool>, resume: Option<&Value>) -> Value {
        let mut params = json!({"clientName": "binary-output-test"});
        if let Some(asked) = binary_output {
            params["binaryOutput"] = json!(asked);
        }
        if let Some(session_id) = resume {
            params["resumeSessionId"] = session_id.clone();
        }
        let result = self.call("initialize", params).await;
        self.connection
            .send_text(json!({"jsonrpc": "2.0", "method": "initialized"}).to_string())
            .expect("connected");
        result
    }

    async fn next(&mut self) -> Message {
        match self.backlog.pop_front() {
            Some(message) => message,
            None => self.recv_fresh().await,
        }
    }

    /// The process's messages through its `process/closed`.
    async fn until_closed(&mut self, process_id: &str) -> Vec<Message> {
        let mut messages = Vec::new();
        loop {
            let message = self.next().await;
            let (id, closed) = match &message {
                Message::Json(value) => (
                    value["params"]["processId"].as_str().map(str::to_owned),
                    value["method"] == "process/closed",
                ),
                Message::Frame(output) => (Some(output.process_id.to_string()), false),
            };
            if id.as_deref() != Some(process_id) {
                continue;
            }
            messages.push(message);
            if closed {
                return messages;
            }
        }
    }

    /// Every chunk `process/read` holds for `process_id`, from the start.
    async fn read_all(&mut self, process_id: &str) -> Vec<Chunk> {
        let read = self
            .call("process/read", json!({"processId": process_id}))
            .await;
        assert_eq!(read["closed"], true, "{read}");
        read["chunks"]
            .as_array()
            .expect("chunks")
            .iter()
            .map(|chunk| {
                (
                    chunk["seq"].as_u64().expect("seq"),
                    chunk["stream"].as_str().expect("stream").to_owned(),
                    decode(&chunk["chunk"]),
                )
            })
            .collect()
    }
}

fn stream_name(stream: OutputStream) -> String {
    serde_json::to_value(stream)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The chunks of `notified`, without how each came.
fn without_form(notified: Vec<(Chunk, bool)>) -> Vec<Chunk> {
    notified.into_iter().map(|(chunk, _)| chunk).collect()
}

/// The output chunks among `messages`, and whether each came as a frame.
fn chunks(messages: &[Message]) -> Vec<(Chunk, bool)> {
    messages
        .iter()
        .filter_map(|message| match message {
            Message::Frame(output) => Some((
                (
                    output.seq,
                    stream_name(output.stream),
                    output.chunk.0.clone(),
                ),
                true,
            )),
            Message::Json(value) if value["method"] == "process/output" => Some((
                (
                    value["params"]["seq"].as_u64().expect("seq"),
                    value["params"]["stream"]
                        .as_str()
                        .expect("stream")
                        .to_owned(),
                    decode(&value["params"]["chunk"]),
                ),
                false,
            )),
            Message::Json(_) => None,
        })
        .collect()
}

fn start_params(process_id: &str, script: &str, pipe_stdin: bool) -> Value {
    json!({
        "processId": process_id,
        "argv": ["/bin/sh", "-c", script],
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "tty": false,
        "pipeStdin": pipe_stdin
    })
}

/// Both streams, several chunks, NUL and 0xFF bytes.
const SCRIPT: &str = "seq 1 30000; printf '\\000\\377' >&2; seq 1 20000 >&2";

/// Runs [`SCRIPT`] on a connection over `transport` that asks (or not) for
/// binary output; returns the grant, the chunks as notified (with their
/// form) and the chunks `process/read` holds.
async fn run(transport: Transport, asked: Option<bool>) -> (Value, Vec<(Chunk, bool)>, Vec<Chunk>) {
    let mut peer = Peer::start(transport, &ServerLauncher::new()).await;
    let initialized = peer.handshake(asked, None).await;
    peer.call("process/start", start_params("p", SCRIPT, false))
        .await;
    let messages = peer.until_closed("p").await;
    // The exit and the close are text whatever the grant.
    let texts: Vec<&Value> = messages
        .iter()
        .filter_map(|message| match message {
            Message::Json(value) if value["method"] != "process/output" => Some(value),
            _ => None,
        })
        .collect();
    assert_eq!(
        texts
            .iter()
            .map(|value| value["method"].clone())
            .collect::<Vec<_>>(),
        [json!("process/exited"), json!("process/closed")]
    );
    let read = peer.read_all("p").await;
    (initialized["binaryOutput"].clone(), chunks(&messages), read)
}

#[tokio::test]
async fn a_websocket_client_that_asks_gets_frames_with_the_bytes_and_seqs_of_the_json_path() {
    let (granted, notified, read) = run(Transport::WebSocket, Some(true)).await;
    assert_eq!(granted, true);
    assert!(
        notified.iter().all(|(_, frame)| *frame),
        "every output chunk is a frame"
    );
    let notified = without_form(notified);
    assert_eq!(
        notified, read,
        "the frames carry what process/read (JSON) holds"
    );
    let (_, text_notified, text_read) = run(Transport::WebSocket, Some(false)).await;
    let per_stream = |chunks: &[Chunk], stream: &str| -> Vec<u8> {
        chunks
            .iter()
            .filter(|(_, name, _)| name == stream)
            .flat_map(|(_, _, bytes)| bytes.clone())
            .collect()
    };
    for stream in ["stdout", "stderr"] {
        assert_eq!(
            per_stream(&notified, stream),
            per_stream(&text_read, stream),
            "{stream}"
        );
    }
    assert_eq!(without_form(text_notified), text_read);
}

#[tokio::test]
async fn a_client_that_does_not_ask_gets_text_only() {
    for asked in [None, Some(false)] {
        let (granted, notified, read) = run(Transport::WebSocket, asked).await;
        assert_eq!(granted, false, "{asked:?}");
        assert!(notified.iter().all(|(_, frame)| !*frame));
        assert_eq!(without_form(notified), read);
    }
}

#[tokio::test]
async fn stdio_never_grants_binary_output() {
    let (granted, notified, read) = run(Transport::Stdio, Some(true)).await;
    assert_eq!(granted, false);
    assert!(notified.iter().all(|(_, frame)| !*frame));
    assert_eq!(without_form(notified), read);
}

/// The first connection asks `first`, starts a process and leaves the
/// session (its output in flight); the second resumes it asking `second`:
/// every output chunk it is notified of comes in its own form, and the
/// notified and read chunks are the process's output.
async fn resume_with(first: bool, second: bool) {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut one = Peer::websocket(&server.url).await;
    let initialized = one.handshake(Some(first), None).await;
    assert_eq!(initialized["binaryOutput"], first);
    let session_id = initialized["sessionId"].clone();
    let script = "printf one; read x; printf two; read y; printf three";
    one.call("process/start", start_params("p", script, true))
        .await;
    let message = one.next().await;
    assert_eq!(matches!(message, Message::Frame(_)), first, "{message:?}");
    // "two" is written while the connection goes: it reaches the first
    // connection or waits in the session's queue for the second.
    one.call("process/write", json!({"processId": "p", "chunk": "eAo="}))
        .await;
    one.connection.close();
    while one
        .connection
        .recv()
        .await
        .expect("the close in time")
        .is_some()
    {}

    let mut two = Peer::websocket(&server.url).await;
    let resumed = two.handshake(Some(second), Some(&session_id)).await;
    assert_eq!(resumed["binaryOutput"], second);
    assert_eq!(resumed["sessionId"], session_id);
    two.call("process/write", json!({"processId": "p", "chunk": "eQo="}))
        .await;
    let messages = two.until_closed("p").await;
    let notified = chunks(&messages);
    assert!(
        notified.iter().all(|(_, frame)| *frame == second),
        "the second connection's form only: {notified:?}"
    );
    let read = two.read_all("p").await;
    let all: Vec<u8> = read
        .iter()
        .flat_map(|(_, _, bytes)| bytes.clone())
        .collect();
    assert_eq!(String::from_utf8_lossy(&all), "onetwothree");
    for (chunk, _) in notified {
        assert!(read.contains(&chunk), "{chunk:?} is in {read:?}");
    }
}

#[tokio::test]
async fn a_resumed_session_follows_the_grant_of_the_connection_that_resumed_it() {
    resume_with(true, false).await;
    resume_with(false, true).await;
}
