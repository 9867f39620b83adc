//! [`WireClient`]: a JSON-RPC test client on a [`RawConnection`]: raw texts
//! out, parsed messages in, with request ids, a backlog of the messages that
//! arrived while it waited for another, and the process notifications.
//! Everything here panics on failure, as a test would.

use std::collections::VecDeque;

use serde_json::{Value, json};

use crate::launcher::ServerLauncher;
use crate::raw::{Outgoing, RawConnection, Received};
use crate::server_process::ServerProcess;
use crate::transport::Transport;

/// A JSON-RPC peer of the server for wire-level tests.
#[derive(Debug)]
pub struct WireClient {
    /// The connection, and the server process when it started one.
    connection: RawConnection,
    /// Messages received while waiting for something else, in arrival order.
    backlog: VecDeque<Value>,
    /// The id of the next request of [`WireClient::send_request`].
    next_id: i64,
}

impl WireClient {
    /// A client of a fresh default server over `transport`.
    ///
    /// # Panics
    /// When the server cannot be started or connected to.
    pub async fn connect(transport: Transport) -> Self {
        Self::start(transport, &ServerLauncher::new()).await
    }

    /// A client of a fresh server started by `launcher` over `transport`.
    ///
    /// # Panics
    /// When the server cannot be started or connected to.
    pub async fn start(transport: Transport, launcher: &ServerLauncher) -> Self {
        let connection = RawConnection::start(transport, launcher)
            .await
            .unwrap_or_else(|error| panic!("a server over {transport}: {error}"));
        Self::new(connection)
    }

    /// A client of the WebSocket server at `url`.
    ///
    /// # Panics
    /// When the connection fails.
    pub async fn websocket(url: &str) -> Self {
        let connection = RawConnection::websocket(url, None)
            .await
            .unwrap_or_else(|error| panic!("{error}"));
        Self::new(connection)
    }

    /// A client of the WebSocket server at `url` that waits up to
    /// `patience` for each message, with the `initialize` / `initialized`
    /// handshake made.
    ///
    /// # Panics
    /// When the connection or the handshake fails.
    pub async fn initialized_websocket(url: &str, patience: std::time::Duration) -> Self {
        let connection = RawConnection::websocket(url, None)
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .with_patience(patience);
        let mut client = Self::new(connection);
        client.handshake().await;
        client
    }

    /// A client on `connection`.
    pub fn new(connection: RawConnection) -> Self {
        Self {
            connection,
            backlog: VecDeque::new(),
            next_id: 1,
        }
    }

    /// The transport the client talks over.
    pub fn transport(&self) -> Transport {
        self.connection.transport()
    }

    /// The `exec-server` process the client started, for stdio and for a
    /// WebSocket server of its own.
    pub fn server_mut(&mut self) -> Option<&mut ServerProcess> {
        self.connection.server_mut()
    }

    /// Sends one raw text message (a line, a text frame, an in-process message).
    ///
    /// # Panics
    /// When the connection is closed.
    pub async fn send_text(&self, text: &str) {
        self.send(Outgoing::Text(text.to_owned())).await;
    }

    /// Sends one transport message as is (binary frames, pings).
    ///
    /// # Panics
    /// When the transport cannot carry it or the connection is closed.
    pub async fn send(&self, message: Outgoing) {
        self.connection
            .send(message)
            .unwrap_or_else(|error| panic!("sending: {error}"));
    }

    /// Ends the connection: stdin EOF, a WebSocket close frame, or the end
    /// of the in-process sender.
    pub async fn close(&self) {
        self.connection.close();
    }

    /// The next message from the server, oldest backlog first.
    ///
    /// # Panics
    /// When none comes in time, the server closed the connection, or the
    /// message is not JSON text.
    pub async fn recv(&mut self) -> Value {
        if let Some(message) = self.backlog.pop_front() {
            return message;
        }
        self.recv_fresh().await
    }

    /// The next transport message as it came, past the backlog (for pongs).
    ///
    /// # Panics
    /// When none comes in time or the server closed the connection.
    pub async fn recv_raw(&mut self) -> Received {
        self.connection
            .recv()
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .expect("the server is still connected")
    }

    async fn recv_fresh(&mut self) -> Value {
        match self.recv_raw().await {
            Received::Text(text) => serde_json::from_str(&text)
                .unwrap_or_else(|error| panic!("the server sent non-JSON {text:?}: {error}")),
            other => panic!("the server sent {other:?}, not a JSON text"),
        }
    }

    /// Waits for the first message matching `wanted`, keeping the others.
    ///
    /// # Panics
    /// As [`WireClient::recv`].
    pub async fn recv_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(position) = self.backlog.iter().position(&wanted)
            && let Some(message) = self.backlog.remove(position)
        {
            return message;
        }
        loop {
            let message = self.recv_fresh().await;
            if wanted(&message) {
                return message;
            }
            self.backlog.push_back(message);
        }
    }

    /// Whether the server closed the connection (stdout EOF, socket closed,
    /// in-process sender dropped) before any further message.
    ///
    /// # Panics
    /// When neither happens in time.
    pub async fn closed(&mut self) -> bool {
        self.connection
            .recv()
            .await
            .unwrap_or_else(|error| panic!("{error}"))
            .is_none()
    }

    /// Sends a request and returns the whole response object.
    ///
    /// # Panics
    /// As [`WireClient::recv`].
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    /// Sends a request without waiting; returns its id for [`WireClient::response`].
    ///
    /// # Panics
    /// When the connection is closed.
    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_text(&text.to_string()).await;
        id
    }

    /// Waits for the response to request `id`.
    ///
    /// # Panics
    /// As [`WireClient::recv`].
    pub async fn response(&mut self, id: i64) -> Value {
        self.recv_matching(|message| message.get("id") == Some(&json!(id)))
            .await
    }

    /// Sends a request and returns its `result`.
    ///
    /// # Panics
    /// On an error response, and as [`WireClient::recv`].
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params).await;
        match response.get("result") {
            Some(result) => result.clone(),
            None => panic!("{method} failed: {response}"),
        }
    }

    /// Sends a notification.
    ///
    /// # Panics
    /// When the connection is closed.
    pub async fn notify(&self, method: &str, params: Value) {
        let text = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_text(&text.to_string()).await;
    }

    /// The `initialize` / `initialized` handshake; returns the `initialize` result.
    ///
    /// # Panics
    /// When `initialize` fails, and as [`WireClient::recv`].
    pub async fn handshake(&mut self) -> Value {
        let result = self.call("initialize", json!({"clientName": "test"})).await;
        self.notify("initialized", json!({})).await;
        result
    }

    /// Waits for the notification `method` about `process_id`.
    ///
    /// # Panics
    /// As [`WireClient::recv`].
    pub async fn notification(&mut self, method: &str, process_id: &str) -> Value {
        self.recv_matching(|message| {
            message["method"] == method && message["params"]["processId"] == process_id
        })
        .await
    }

    /// Every notification about `process_id` up to and including `process/closed`.
    ///
    /// # Panics
    /// As [`WireClient::recv`].
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
///
/// # Panics
/// When it is not a base64 string.
pub fn decode(chunk: &Value) -> Vec<u8> {
    base64_simd::STANDARD
        .decode_to_vec(chunk.as_str().expect("chunk is a string"))
        .expect("chunk is base64")
}

/// The concatenated bytes of the `process/output` events of `stream`
/// (`stdout`, `stderr`, `pty`), as text (lossy).
///
/// # Panics
/// When a chunk is not base64.
pub fn output_of(events: &[Value], stream: &str) -> String {
    let bytes: Vec<u8> = events
        .iter()
        .filter(|event| event["method"] == "process/output" && event["params"]["stream"] == stream)
        .flat_map(|event| decode(&event["params"]["chunk"]))
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
