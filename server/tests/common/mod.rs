//! Shared helpers for the server's integration tests: start the real
//! `exec-server` binary over stdio or WebSocket and talk JSON-RPC to it.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// How long any single expected message may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The server binary built by cargo for these tests.
pub fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_exec-server")
}

/// A JSON-RPC peer over some transport: raw texts out, parsed messages in.
pub struct TestClient {
    outgoing: mpsc::Sender<Message>,
    incoming: mpsc::Receiver<Value>,
    /// Messages received while waiting for something else, in arrival order.
    backlog: VecDeque<Value>,
    next_id: i64,
    /// The server process, when this client started it.
    pub server: Option<Child>,
}

impl TestClient {
    /// Starts `exec-server serve --listen stdio://` and talks to it over its stdio.
    pub async fn stdio() -> Self {
        Self::stdio_with(&[]).await
    }

    /// Like [`TestClient::stdio`], with extra `serve` arguments.
    pub async fn stdio_with(extra_args: &[&str]) -> Self {
        let mut child = Command::new(server_binary())
            .args(["serve", "--listen", "stdio://"])
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the server starts");
        let mut stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (outgoing, mut to_send) = mpsc::channel::<Message>(64);
        let (deliver, incoming) = mpsc::channel::<Value>(1024);
        tokio::spawn(async move {
            while let Some(message) = to_send.recv().await {
                let bytes: Vec<u8> = match message {
                    Message::Text(text) => text.as_bytes().to_vec(),
                    Message::Binary(bytes) => bytes.to_vec(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                if stdin.write_all(&bytes).await.is_err() || stdin.write_all(b"\n").await.is_err() {
                    break;
                }
            }
            // Dropping stdin closes the connection.
        });
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|error| {
                    panic!("server wrote a non-JSON line {line:?}: {error}")
                });
                if deliver.send(value).await.is_err() {
                    break;
                }
            }
        });
        Self {
            outgoing,
            incoming,
            backlog: VecDeque::new(),
            next_id: 1,
            server: Some(child),
        }
    }

    /// Starts `exec-server serve` on a free loopback port and returns the
    /// child and its `ws://` URL (read from its stderr line).
    pub async fn start_ws_server(extra_args: &[&str], env: &[(&str, &str)]) -> (Child, String) {
        let mut command = Command::new(server_binary());
        command
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the server starts");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(PATIENCE, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("exec-server listening on ") {
                    return url.to_owned();
                }
            }
            panic!("the server exited without printing its address");
        })
        .await
        .expect("the server prints its address");
        // Keep draining stderr so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (child, url)
    }

    /// Connects to a WebSocket server at `url`.
    pub async fn websocket(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connects");
        let (mut sink, mut stream) = socket.split();
        let (outgoing, mut to_send) = mpsc::channel::<Message>(64);
        let (deliver, incoming) = mpsc::channel::<Value>(1024);
        tokio::spawn(async move {
            while let Some(message) = to_send.recv().await {
                let closing = matches!(message, Message::Close(_));
                if sink.send(message).await.is_err() || closing {
                    break;
                }
            }
        });
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let text = match frame {
                    Message::Text(text) => text.as_str().to_owned(),
                    Message::Pong(payload) => {
                        json!({"pong": String::from_utf8_lossy(&payload)}).to_string()
                    }
                    _ => continue,
                };
                let value: Value = serde_json::from_str(&text).expect("server sent JSON");
                if deliver.send(value).await.is_err() {
                    break;
                }
            }
        });
        Self {
            outgoing,
            incoming,
            backlog: VecDeque::new(),
            next_id: 1,
            server: None,
        }
    }

    /// Sends one raw text message (a line or a text frame).
    pub async fn send_text(&self, text: &str) {
        self.send_message(Message::text(text)).await;
    }

    /// Sends one transport message as is (binary frames, pings, close).
    pub async fn send_message(&self, message: Message) {
        self.outgoing
            .send(message)
            .await
            .expect("the transport is open");
    }

    /// The next message from the server, oldest backlog first.
    pub async fn recv(&mut self) -> Value {
        if let Some(message) = self.backlog.pop_front() {
            return message;
        }
        self.recv_fresh().await
    }

    async fn recv_fresh(&mut self) -> Value {
        tokio::time::timeout(PATIENCE, self.incoming.recv())
            .await
            .expect("a message from the server in time")
            .expect("the server is still connected")
    }

    /// Waits for the first message matching `wanted`, keeping the others.
    pub async fn recv_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(position) = self.backlog.iter().position(&wanted) {
            return self.backlog.remove(position).expect("position is valid");
        }
        loop {
            let message = self.recv_fresh().await;
            if wanted(&message) {
                return message;
            }
            self.backlog.push_back(message);
        }
    }

    /// Whether the server closed the connection (stdout EOF or socket closed)
    /// before any further message.
    pub async fn closed(&mut self) -> bool {
        tokio::time::timeout(PATIENCE, self.incoming.recv())
            .await
            .expect("in time")
            .is_none()
    }

    /// Sends a request and returns the whole response object.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    /// Sends a request without waiting; returns its id for [`TestClient::response`].
    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&text.to_string()).await;
        id
    }

    /// Waits for the response to request `id`.
    pub async fn response(&mut self, id: i64) -> Value {
        self.recv_matching(|message| message.get("id") == Some(&json!(id)))
            .await
    }

    /// Sends a request and returns its `result`, failing on an error response.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// Sends a notification.
    pub async fn notify(&self, method: &str, params: Value) {
        let text = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_text(&text.to_string()).await;
    }

    /// The `initialize` / `initialized` handshake.
    pub async fn handshake(&mut self) -> Value {
        let result = self.call("initialize", json!({"clientName": "test"})).await;
        self.notify("initialized", json!({})).await;
        result
    }

    /// Waits for the notification `method` about `process_id`.
    pub async fn notification(&mut self, method: &str, process_id: &str) -> Value {
        self.recv_matching(|message| {
            message["method"] == method && message["params"]["processId"] == process_id
        })
        .await
    }

    /// Every notification about `process_id` up to and including `process/closed`.
    pub async fn events_until_closed(&mut self, process_id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        loop {
            let event = self
                .recv_matching(|message| {
                    message.get("id").is_none() && message["params"]["processId"] == process_id
                })
                .await;
            let done = event["method"] == "process/closed";
            events.push(event);
            if done {
                return events;
            }
        }
    }
}

/// Decodes a base64 `chunk` field.
pub fn decode(chunk: &Value) -> Vec<u8> {
    base64_simd::STANDARD
        .decode_to_vec(chunk.as_str().expect("chunk is a string"))
        .expect("chunk is base64")
}

/// The concatenated bytes of the `process/output` events of `stream`.
pub fn output_of(events: &[Value], stream: &str) -> String {
    let bytes: Vec<u8> = events
        .iter()
        .filter(|event| event["method"] == "process/output" && event["params"]["stream"] == stream)
        .flat_map(|event| decode(&event["params"]["chunk"]))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Whether a process with this pid exists (zombies count as gone).
pub fn process_alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state is the first field after the parenthesised command name.
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

/// Waits until `pid` is gone. Processes of another parent give no event to
/// wait on, so this checks /proc after each short pause, up to PATIENCE.
pub async fn wait_gone(pid: i64) -> bool {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while tokio::time::Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}
