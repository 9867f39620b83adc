//! [`CodexClient`]: sends exactly what Codex's exec-server client sends
//! (`codex-rs/exec-server/src/client.rs`, openai/codex) over WebSocket:
//! requests `{id, method, params}` with no `"jsonrpc"` member, every
//! `Option` field present as `null`, paths as `file://` URIs, and the
//! `initialized` notification with `{}`. Every answer is read by Codex's
//! rules ([`super::types`]); a result that does not deserialize fails the
//! test, as it would fail Codex's client.

use std::collections::BTreeMap;

use exec_testkit::{ServerLauncher, WireClient, WsServer};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::types::{
    ExecClosedNotification, ExecExitedNotification, ExecOutputDeltaNotification, ExecOutputStream,
    InitializeResponse,
};

/// A JSON-RPC error as Codex's client receives it (all three members are
/// read by Codex; the tests look at `code` and print the rest).
#[allow(dead_code)]
#[derive(Debug, serde::Deserialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    #[serde(default)]
    pub data: Option<Value>,
}

/// Every event of one process, split by kind, as Codex's client orders
/// them by `seq`.
#[derive(Debug, Default)]
pub struct ProcessEvents {
    pub output: Vec<ExecOutputDeltaNotification>,
    pub exited: Option<ExecExitedNotification>,
    pub closed: Option<ExecClosedNotification>,
}

impl ProcessEvents {
    /// What the process wrote to stdout, as text (lossy).
    pub fn stdout(&self) -> String {
        let bytes: Vec<u8> = self
            .output
            .iter()
            .filter(|chunk| chunk.stream == ExecOutputStream::Stdout)
            .flat_map(|chunk| chunk.chunk.0.iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Every seq the process's events took, in arrival order.
    pub fn seqs(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self.output.iter().map(|chunk| chunk.seq).collect();
        seqs.extend(self.exited.iter().map(|exited| exited.seq));
        seqs.extend(self.closed.iter().map(|closed| closed.seq));
        seqs
    }
}

/// A Codex-shaped client of a real server on WebSocket.
pub struct CodexClient {
    /// The wire, for raw texts and the messages that came.
    wire: WireClient,
    /// The next request id (Codex counts from 1).
    next_id: i64,
    /// The server, kept alive as long as the client.
    _server: WsServer,
}

impl CodexClient {
    /// Starts a server (behind the validating conformance proxy when
    /// `cargo xtask test` runs) and makes Codex's handshake:
    /// `initialize {clientName, resumeSessionId: null}`, then `initialized {}`.
    pub async fn connect(launcher: ServerLauncher) -> (Self, InitializeResponse) {
        let server = launcher
            .behind_conformance_proxy()
            .start_websocket()
            .await
            .unwrap_or_else(|error| panic!("a WebSocket server: {error}"));
        let wire = WireClient::websocket(&server.url).await;
        let mut client = Self {
            wire,
            next_id: 1,
            _server: server,
        };
        let initialize = client
            .call(
                "initialize",
                json!({"clientName": "codex-shaped-test", "resumeSessionId": null}),
            )
            .await;
        client
            .wire
            .send_text(&json!({"method": "initialized", "params": {}}).to_string())
            .await;
        (client, initialize)
    }

    /// Sends `method` with `params` as Codex does and returns the raw
    /// response (result or error), whichever arrives for its id.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, RpcError> {
        let id = self.next_id;
        self.next_id += 1;
        let text = json!({"id": id, "method": method, "params": params}).to_string();
        assert!(!text.contains("jsonrpc"), "{text}");
        self.wire.send_text(&text).await;
        let mut response = self
            .wire
            .recv_matching(|message| message.get("id") == Some(&json!(id)))
            .await;
        if let Some(error) = response.get_mut("error") {
            return Err(serde_json::from_value(error.take())
                .unwrap_or_else(|problem| panic!("{method}: error object {problem}")));
        }
        Ok(response
            .get_mut("result")
            .map(Value::take)
            .unwrap_or_else(|| panic!("{method}: neither result nor error")))
    }

    /// [`CodexClient::request`], read as Codex's result type `T`.
    ///
    /// # Panics
    /// On an error response or a result Codex could not deserialize.
    pub async fn call<T: DeserializeOwned>(&mut self, method: &str, params: Value) -> T {
        match self.request(method, params).await {
            Ok(result) => serde_json::from_value(result.clone()).unwrap_or_else(|error| {
                panic!("Codex cannot read the {method} result {result}: {error}")
            }),
            Err(error) => panic!("{method} failed: {error:?}"),
        }
    }

    /// [`CodexClient::request`] that must fail; returns the error object.
    pub async fn call_err(&mut self, method: &str, params: Value) -> RpcError {
        match self.request(method, params).await {
            Ok(result) => panic!("{method} succeeded with {result}"),
            Err(error) => error,
        }
    }

    /// The next notification `method` whose params satisfy `wanted`, read as
    /// Codex's type `T`.
    pub async fn notification<T: DeserializeOwned>(
        &mut self,
        method: &str,
        wanted: impl Fn(&Value) -> bool,
    ) -> T {
        let message = self
            .wire
            .recv_matching(|message| {
                message.get("id").is_none()
                    && message["method"] == method
                    && wanted(&message["params"])
            })
            .await;
        serde_json::from_value(message["params"].clone())
            .unwrap_or_else(|error| panic!("Codex cannot read {message}: {error}"))
    }

    /// Every event of `process_id` up to `process/closed`, each read as
    /// Codex's notification type.
    pub async fn events_until_closed(&mut self, process_id: &str) -> ProcessEvents {
        let mut events = ProcessEvents::default();
        loop {
            let message = self
                .wire
                .recv_matching(|message| {
                    message.get("id").is_none() && message["params"]["processId"] == process_id
                })
                .await;
            let params = message["params"].clone();
            let method = message["method"].as_str().unwrap_or_default().to_owned();
            let unreadable =
                |error: serde_json::Error| -> ! { panic!("Codex cannot read {message}: {error}") };
            match method.as_str() {
                "process/output" => events
                    .output
                    .push(serde_json::from_value(params).unwrap_or_else(|e| unreadable(e))),
                "process/exited" => {
                    events.exited =
                        Some(serde_json::from_value(params).unwrap_or_else(|e| unreadable(e)));
                }
                "process/closed" => {
                    events.closed =
                        Some(serde_json::from_value(params).unwrap_or_else(|e| unreadable(e)));
                    return events;
                }
                other => panic!("unexpected notification {other}: {message}"),
            }
        }
    }
}

/// `process/start` params exactly as Codex's client builds them: every
/// optional member present (`null` or its default).
pub fn exec_params(process_id: &str, argv: &[&str], cwd: &str) -> Value {
    json!({
        "processId": process_id,
        "argv": argv,
        "cwd": cwd,
        "envPolicy": null,
        "env": BTreeMap::from([("PATH", "/usr/local/bin:/usr/bin:/bin")]),
        "tty": false,
        "pipeStdin": false,
        "arg0": null,
        "sandbox": null,
        "enforceManagedNetwork": false,
        "managedNetwork": null,
    })
}
