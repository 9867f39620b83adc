//! [`Connection`]: one client's session. It turns incoming messages (lines or
//! frames) into calls, enforces the JSON-RPC 2.0 envelope and the
//! `initialize`/`initialized` lifecycle, and owns the connection's processes.
//!
//! Transports feed it text with [`Connection::handle_message`] and drain its
//! outbox (complete JSON texts, responses and notifications in one queue).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use exec_protocol::{ErrorObject, ProcessId};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, mpsc};

use crate::config::ServerConfig;
use crate::dispatch;
use crate::error::{INVALID_REQUEST, PARSE_ERROR, ServerError};
use crate::process::ProcessTable;

/// Lifecycle states (protocol.md, "Lifecycle").
const NEW: u8 = 0;
/// `initialize` was answered; waiting for the `initialized` notification.
const INITIALIZING: u8 = 1;
/// `initialized` arrived: `process/*` and `fs/*` are served.
const READY: u8 = 2;

/// What the handlers of one connection share.
pub struct ConnectionState {
    /// Server-wide settings.
    pub config: Arc<ServerConfig>,
    /// The processes this connection started; killed when it closes.
    pub processes: ProcessTable,
    /// Identifier reported by `initialize`, for logs.
    pub session_id: String,
    /// One of [`NEW`], [`INITIALIZING`], [`READY`].
    lifecycle: AtomicU8,
}

impl ConnectionState {
    /// Moves from new to initializing; fails with `alreadyInitialized` after the first time.
    pub fn begin_initialize(&self) -> Result<(), ServerError> {
        self.lifecycle
            .compare_exchange(NEW, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| ServerError::AlreadyInitialized)
    }

    /// Fails with `notInitialized` until the `initialized` notification arrived.
    pub fn require_ready(&self) -> Result<(), ServerError> {
        if self.lifecycle.load(Ordering::Acquire) == READY {
            Ok(())
        } else {
            Err(ServerError::NotInitialized)
        }
    }
}

/// One client connection, whatever its transport.
pub struct Connection {
    state: Arc<ConnectionState>,
    methods: Arc<jsonrpsee::RpcModule<ConnectionState>>,
    outbox: mpsc::Sender<String>,
    /// Bounds the requests handled at once (see [`ServerConfig::max_requests_in_flight`]).
    in_flight: Arc<Semaphore>,
}

/// The fields of an incoming message the connection looks at before dispatch.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<&'a RawValue>,
    /// `Some("null")` for an explicit `null` (plain `Option` would read it as absent).
    #[serde(borrow, default, deserialize_with = "present")]
    params: Option<&'a RawValue>,
}

/// Deserializes any present value, `null` included, as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

/// The `processId` of `process/start` params, to announce the process once its response is queued.
#[derive(Deserialize)]
struct StartedProcess {
    #[serde(rename = "processId")]
    process_id: ProcessId,
}

impl Connection {
    /// A new connection whose outgoing messages go to `outbox`.
    pub fn new(config: Arc<ServerConfig>, outbox: mpsc::Sender<String>) -> Self {
        let processes = ProcessTable::new(config.process.clone(), outbox.clone());
        let state = Arc::new(ConnectionState {
            config: config.clone(),
            processes,
            session_id: new_session_id(),
            lifecycle: AtomicU8::new(NEW),
        });
        let methods = Arc::new(dispatch::rpc_module(state.clone()));
        let in_flight = Arc::new(Semaphore::new(config.max_requests_in_flight.max(1)));
        Self {
            state,
            methods,
            outbox,
            in_flight,
        }
    }

    /// Handles one incoming message (a stdio line or a WebSocket frame).
    ///
    /// Requests run concurrently on their own tasks; this returns once the
    /// request is under way, waiting only while too many are in flight.
    /// Errors in the message itself are answered with a JSON-RPC error object
    /// and never end the connection.
    pub async fn handle_message(&self, text: &str) {
        if text.len() > self.state.config.max_message_bytes {
            let message = format!(
                "message of {} bytes is over the limit of {} bytes",
                text.len(),
                self.state.config.max_message_bytes
            );
            self.send_error(None, INVALID_REQUEST, &message).await;
            return;
        }
        if text.trim().is_empty() {
            return;
        }
        if !text.trim_start().starts_with('{') {
            match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                // Valid JSON that is not an object (an array, a number): JSON-RPC
                // batches are not part of this protocol.
                Ok(_) => {
                    let message = "invalid request: expected one JSON-RPC request object";
                    self.send_error(None, INVALID_REQUEST, message).await;
                }
                Err(error) => {
                    self.send_error(None, PARSE_ERROR, &format!("parse error: {error}"))
                        .await;
                }
            }
            return;
        }
        let envelope: Envelope<'_> = match serde_json::from_str(text) {
            Ok(envelope) => envelope,
            Err(error) if error.is_data() => {
                let message = format!("invalid request: {error}");
                self.send_error(None, INVALID_REQUEST, &message).await;
                return;
            }
            Err(error) => {
                self.send_error(None, PARSE_ERROR, &format!("parse error: {error}"))
                    .await;
                return;
            }
        };
        if let Some(version) = envelope.jsonrpc
            && version.get() != "\"2.0\""
        {
            let message = "invalid request: `jsonrpc` must be \"2.0\"";
            self.send_error(valid_id(envelope.id), INVALID_REQUEST, message)
                .await;
            return;
        }
        let Some(method) = envelope.method else {
            // A response from the client: the server sends no requests, so
            // there is nothing to match it with.
            tracing::debug!("ignoring a message without `method`");
            return;
        };
        let Ok(method) = serde_json::from_str::<std::borrow::Cow<'_, str>>(method.get()) else {
            let message = "invalid request: `method` must be a string";
            self.send_error(valid_id(envelope.id), INVALID_REQUEST, message)
                .await;
            return;
        };
        let Some(id) = envelope.id else {
            self.handle_notification(&method);
            return;
        };
        if valid_id(Some(id)).is_none() {
            let message = "invalid request: `id` must be an integer or a string";
            self.send_error(None, INVALID_REQUEST, message).await;
            return;
        }

        if let Some(params) = envelope.params
            && !params.get().starts_with('{')
        {
            // Params by name only: `null`, arrays and scalars are refused here
            // because serde (behind jsonrpsee) would read an empty struct
            // from `null` or `[]`.
            let response = ErrorObject {
                code: crate::error::INVALID_PARAMS,
                message: String::from("invalid params: `params` must be an object"),
                data: None,
            };
            self.send_error_object(Some(id), response).await;
            return;
        }
        let Ok(permit) = self.in_flight.clone().acquire_owned().await else {
            return;
        };
        // jsonrpsee requires `"jsonrpc":"2.0"`; Codex clients omit it.
        let request = if envelope.jsonrpc.is_some() {
            text.to_owned()
        } else {
            with_jsonrpc_member(text)
        };
        let announce = if method == "process/start" {
            envelope
                .params
                .and_then(|params| serde_json::from_str::<StartedProcess>(params.get()).ok())
                .map(|started| started.process_id)
        } else {
            None
        };
        let methods = self.methods.clone();
        let outbox = self.outbox.clone();
        let state = self.state.clone();
        let call = async move {
            let response = match methods.raw_json_request(&request, 1).await {
                Ok((response, _subscriptions)) => response.get().to_owned(),
                Err(error) => {
                    let message = format!("invalid request: {error}");
                    error_text(
                        None,
                        ErrorObject {
                            code: INVALID_REQUEST,
                            message,
                            data: None,
                        },
                    )
                }
            };
            let started = announce.filter(|_| is_success(&response));
            if outbox.send(response).await.is_ok()
                && let Some(process_id) = started
            {
                // Only now may the process's output go out: it must not
                // overtake the `process/start` response.
                state.processes.announce(&process_id);
            }
            drop(permit);
        };
        if method == "initialize" {
            // Answered before the next message is read, so an `initialized`
            // sent right behind it (without waiting for the response) finds
            // the connection initializing rather than new.
            call.await;
        } else {
            tokio::spawn(call);
        }
    }

    fn handle_notification(&self, method: &str) {
        match method {
            "initialized" => {
                let moved = self.state.lifecycle.compare_exchange(
                    INITIALIZING,
                    READY,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if moved.is_err() {
                    tracing::warn!("`initialized` without a preceding `initialize`; ignored");
                }
            }
            other => tracing::debug!(method = other, "ignoring an unknown notification"),
        }
    }

    /// Answers a message the transport could not even hand over (not UTF-8,
    /// too long) with a JSON-RPC error object whose id is null.
    pub async fn reply_error(&self, code: i32, message: &str) {
        self.send_error(None, code, message).await;
    }

    async fn send_error(&self, id: Option<&RawValue>, code: i32, message: &str) {
        let error = ErrorObject {
            code,
            message: message.to_owned(),
            data: None,
        };
        self.send_error_object(id, error).await;
    }

    async fn send_error_object(&self, id: Option<&RawValue>, error: ErrorObject) {
        // The transport is gone if this fails; the connection is ending anyway.
        let _ = self.outbox.send(error_text(id, error)).await;
    }

    /// The connection ended: kill every process it started and wait for them.
    pub async fn close(&self) {
        self.state.processes.shutdown().await;
    }
}

/// The id when it is an integer or a string (JSON-RPC 2.0 also allows null,
/// which this protocol does not use, and discourages fractions).
fn valid_id(id: Option<&RawValue>) -> Option<&RawValue> {
    let id = id?;
    match serde_json::from_str::<serde_json::Value>(id.get()) {
        Ok(serde_json::Value::String(_)) => Some(id),
        Ok(serde_json::Value::Number(number)) if number.is_i64() || number.is_u64() => Some(id),
        _ => None,
    }
}

/// Whether a response text carries a `result` (rather than an `error`).
fn is_success(response: &str) -> bool {
    #[derive(Deserialize)]
    struct Outcome<'a> {
        #[serde(borrow, default)]
        result: Option<&'a RawValue>,
    }
    serde_json::from_str::<Outcome<'_>>(response).is_ok_and(|outcome| outcome.result.is_some())
}

/// `text` (a JSON object) with `"jsonrpc":"2.0"` as its first member.
fn with_jsonrpc_member(text: &str) -> String {
    let body = text.trim_start();
    let rest = body.strip_prefix('{').unwrap_or(body);
    let mut request = String::with_capacity(text.len() + 17);
    request.push_str("{\"jsonrpc\":\"2.0\",");
    request.push_str(rest);
    request
}

/// A JSON-RPC error response (id null when the request's id is unknown).
fn error_text(id: Option<&RawValue>, error: ErrorObject) -> String {
    #[derive(serde::Serialize)]
    struct ErrorResponse<'a> {
        jsonrpc: &'static str,
        id: Option<&'a RawValue>,
        error: ErrorObject,
    }
    let code = error.code;
    serde_json::to_string(&ErrorResponse { jsonrpc: "2.0", id, error }).unwrap_or_else(|_| {
        format!("{{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{{\"code\":{code},\"message\":\"error\"}}}}")
    })
}

/// A session id unique enough for logs: time, process id and a counter.
fn new_session_id() -> String {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{:x}-{count}", nanos, std::process::id())
}
