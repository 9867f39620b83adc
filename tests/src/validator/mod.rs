//! [`ConnectionValidator`]: validates every message of one connection, in
//! both directions, as it travels on the wire.
//!
//! A message is checked whole: the JSON-RPC 2.0 envelope, `params` against
//! the def `x-methods` names for its method, a response's `result` against the
//! result def of the request with the same `id` (requests are tracked per
//! connection and direction), an error against `x-error` plus the protocol's
//! rules on codes and `data.kind`, and the per-process order of the server's
//! process notifications. Each broken rule is one [`Violation`].

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::process_events::ProcessEvents;
use crate::schema::{Direction, MethodKind, ProtocolSchema};

/// JSON-RPC 2.0 "Parse error".
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC 2.0 "Invalid Request".
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC 2.0 "Method not found".
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC 2.0 "Invalid params".
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC 2.0 "Internal error".
pub const INTERNAL_ERROR: i64 = -32603;

/// The error codes protocol.md allows (the `ErrorObject` description lists the same).
const PROTOCOL_CODES: [i64; 5] = [
    PARSE_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    INVALID_PARAMS,
    INTERNAL_ERROR,
];

/// How much of a frame a [`Violation`] quotes, in bytes.
const QUOTED_FRAME_BYTES: usize = 2000;

/// One message as it travelled: a stdio line or a WebSocket data frame.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// A WebSocket text frame (or a line already known to be UTF-8).
    Text(&'a str),
    /// A stdio line, without its `\n`, as raw bytes (it must be UTF-8).
    Line(&'a [u8]),
    /// A WebSocket binary frame.
    Binary(&'a [u8]),
}

/// A rule a message broke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Which way the message travelled.
    pub direction: Direction,
    /// A short stable name of the rule, e.g. `params` or `errorKindMissing`.
    pub rule: &'static str,
    /// What exactly is wrong.
    pub detail: String,
    /// The message as it travelled (cut after 2000 bytes).
    pub frame: String,
}

/// What a message was, as far as it could be understood; the suite's
/// coverage counts these.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// Not JSON, not an object, or neither a request, a notification nor a response.
    Unrecognized,
    /// A request (it has an `id` and a `method`).
    Request {
        /// Its `id`.
        id: Value,
        /// Its `method`.
        method: String,
    },
    /// A notification (a `method` and no `id`).
    Notification {
        /// Its `method`.
        method: String,
    },
    /// A response carrying `result`.
    Result {
        /// Its `id`.
        id: Value,
        /// The method of the request it answers, when that request was seen.
        method: Option<String>,
    },
    /// A response carrying `error`.
    Error {
        /// Its `id` (null for errors about unreadable messages).
        id: Value,
        /// The method of the request it answers, when that request was seen.
        method: Option<String>,
        /// `error.code`, when it is an integer.
        code: Option<i64>,
        /// `error.data.kind`, when present.
        kind: Option<String>,
    },
}

/// The outcome of checking one frame.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The parsed message, when the frame held JSON.
    pub message: Option<Value>,
    /// What the message was.
    pub observation: Observation,
    /// Every rule it broke; empty for a valid message.
    pub violations: Vec<Violation>,
}

/// A request seen on the connection and not answered yet.
#[derive(Debug, Clone)]
struct PendingRequest {
    /// Its `method`.
    method: String,
    /// The method is a request of the protocol in the direction it travelled.
    known: bool,
    /// Its envelope was valid (`jsonrpc`, `id`, members).
    envelope_valid: bool,
    /// Its params were valid against the method's params def.
    params_valid: bool,
    /// The `processId` of its params, for `process/start`.
    process_id: Option<String>,
}

/// Validation state of one connection: the requests awaiting a response in
/// each direction and the processes whose notifications may flow.
pub struct ConnectionValidator {
    schema: Arc<ProtocolSchema>,
    /// Unanswered requests by the direction they travelled and their `id`
    /// (as JSON text, so that `1` and `"1"` differ).
    pending: HashMap<(Direction, String), PendingRequest>,
    /// Order of the server's process notifications.
    processes: ProcessEvents,
}

impl ConnectionValidator {
    /// A validator for a new connection.
    pub fn new(schema: Arc<ProtocolSchema>) -> Self {
        Self {
            schema,
            pending: HashMap::new(),
            processes: ProcessEvents::default(),
        }
    }

    /// The schema this validator checks against.
    pub fn schema(&self) -> &Arc<ProtocolSchema> {
        &self.schema
    }

    /// Checks one frame that travelled in `direction`, and updates the
    /// connection's state (pending requests, process sequences).
    pub fn check(&mut self, direction: Direction, frame: Frame<'_>) -> Checked {
        let quoted = quote(frame);
        let mut report = Report {
            direction,
            frame: quoted,
            violations: Vec::new(),
        };
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Line(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => {
                    report.add("utf8", format!("the line is not UTF-8: {error}"));
                    return report.finish(None, Observation::Unrecognized);
                }
            },
            Frame::Binary(bytes) => {
                if direction == Direction::ServerToClient {
                    report.add(
                        "textFrames",
                        "the server sends each message as a text frame, not a binary one",
                    );
                }
                match std::str::from_utf8(bytes) {
                    Ok(text) => text,
                    Err(error) => {
                        report.add("utf8", format!("the frame is not UTF-8: {error}"));
                        return report.finish(None, Observation::Unrecognized);
                    }
                }
            }
        };
        let message: Value = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(error) => {
                report.add("json", format!("not one JSON value: {error}"));
                return report.finish(None, Observation::Unrecognized);
            }
        };
        let observation = match message.as_object() {
            None => {
                report.add(
                    "envelope",
                    "a message is one JSON-RPC object (batches are not part of the protocol)",
                );
                Observation::Unrecognized
            }
            Some(object) => self.check_object(object, &mut report),
        };
        report.finish(Some(message), observation)
    }

    fn check_object(&mut self, object: &Map<String, Value>, report: &mut Report) -> Observation {
        let direction = report.direction;
        let jsonrpc_valid = match object.get("jsonrpc") {
            Some(Value::String(version)) if version == "2.0" => true,
            None if direction == Direction::ClientToServer => true,
            None => {
                report.add(
                    "jsonrpc",
                    "the server sends `\"jsonrpc\":\"2.0\"` on every message",
                );
                false
            }
            Some(other) => {
                report.add("jsonrpc", format!("`jsonrpc` must be \"2.0\", not {other}"));
                false
            }
        };
        if object.contains_key("method") {
            self.check_call(object, jsonrpc_valid, report)
        } else if object.contains_key("result") || object.contains_key("error") {
            self.check_response(object, report)
        } else {
            report.add(
                "envelope",
                "a message has a `method` (request, notification) or a `result` or `error` (response)",
            );
            Observation::Unrecognized
        }
    }

    /// A request or a notification.
    fn check_call(
        &mut self,
        object: &Map<String, Value>,
        jsonrpc_valid: bool,
        report: &mut Report,
    ) -> Observation {
        let direction = report.direction;
        let mut envelope_valid = jsonrpc_valid;
        envelope_valid &= check_members(object, &["jsonrpc", "id", "method", "params"], report);
        let Some(method) = object.get("method").and_then(Value::as_str) else {
            report.add("envelope", "`method` must be a string");
            return Observation::Unrecognized;
        };
        let id = object.get("id");
        if let Some(id) = id
            && !valid_id(id)
        {
            report.add(
                "id",
                format!("a request `id` is an integer or a string, not {id}"),
            );
            envelope_valid = false;
        }
        let spec = self.schema.method(method).cloned();
        let mut known = false;
        match &spec {
            None => report.add(
                "unknownMethod",
                format!("`{method}` is not a method of the protocol (x-methods)"),
            ),
            Some(spec) if spec.direction != direction => report.add(
                "direction",
                format!("`{method}` travels {:?} only", spec.direction),
            ),
            Some(spec) => match (spec.kind, id.is_some()) {
                (MethodKind::Request, false) => report.add(
                    "notificationForRequest",
                    format!("`{method}` is a request: it needs an `id`"),
                ),
                (MethodKind::Notification, true) => report.add(
                    "requestForNotification",
                    format!("`{method}` is a notification: it has no `id`"),
                ),
                _ => known = true,
            },
        }
        // A missing `params` counts as `{}`: valid exactly when the params def
        // has no required field.
        let empty = Value::Object(Map::new());
        let params = object.get("params").unwrap_or(&empty);
        let mut params_valid = true;
        if let Some(spec) = &spec {
            let problems = self.schema.validate(&spec.params, params);
            params_valid = problems.is_empty();
            for problem in problems {
                report.add(
                    "params",
                    format!("`{method}` params {}: {problem}", def_name(&spec.params)),
                );
            }
        }
        match id {
            Some(id) => {
                let key = (direction, id.to_string());
                let pending = PendingRequest {
                    method: method.to_owned(),
                    known,
                    envelope_valid,
                    params_valid,
                    process_id: params
                        .get("processId")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                };
                if valid_id(id) && self.pending.insert(key, pending).is_some() {
                    report.add(
                        "duplicateId",
                        format!("`id` {id} is already used by a request awaiting its response"),
                    );
                }
                Observation::Request {
                    id: id.clone(),
                    method: method.to_owned(),
                }
            }
            None => {
                if known && direction == Direction::ServerToClient {
                    for problem in self.processes.notification(method, params) {
                        report.add("processEvents", problem);
                    }
                }
                Observation::Notification {
                    method: method.to_owned(),
                }
            }
        }
    }

    /// A response: `result` or `error`.
    fn check_response(&mut self, object: &Map<String, Value>, report: &mut Report) -> Observation {
        let direction = report.direction;
        check_members(object, &["jsonrpc", "id", "result", "error"], report);
        let id = match object.get("id") {
            Some(id) => id.clone(),
            None => {
                report.add("id", "a response has an `id` (null when it is unknown)");
                Value::Null
            }
        };
        if !id.is_null() && !valid_id(&id) {
            report.add(
                "id",
                format!("a response `id` is an integer, a string or null, not {id}"),
            );
        }
        let pending = if id.is_null() {
            None
        } else {
            let request = self.pending.remove(&(direction.reverse(), id.to_string()));
            if request.is_none() {
                report.add(
                    "unknownId",
                    format!("no request with `id` {id} awaits a response"),
                );
            }
            request
        };
        let method = pending.as_ref().map(|request| request.method.clone());
        match (object.get("result"), object.get("error")) {
            (Some(_), Some(_)) => {
                report.add("envelope", "a response has `result` or `error`, not both");
                Observation::Unrecognized
            }
            (Some(result), None) => {
                self.check_result(&id, result, pending.as_ref(), report);
                Observation::Result { id, method }
            }
            (None, Some(error)) => {
                let (code, kind) = self.check_error(&id, error, pending.as_ref(), report);
                Observation::Error {
                    id,
                    method,
                    code,
                    kind,
                }
            }
            (None, None) => Observation::Unrecognized,
        }
    }

    fn check_result(
        &mut self,
        id: &Value,
        result: &Value,
        request: Option<&PendingRequest>,
        report: &mut Report,
    ) {
        if id.is_null() {
            report.add("id", "a result answers a request: its `id` cannot be null");
        }
        let Some(request) = request else { return };
        let Some(spec) = self
            .schema
            .method(&request.method)
            .filter(|_| request.known)
        else {
            report.add(
                "resultForUnknownMethod",
                format!(
                    "`{}` is not a request of the protocol in this direction: it gets an error, not a result",
                    request.method
                ),
            );
            return;
        };
        if !request.params_valid {
            report.add(
                "acceptsInvalidParams",
                format!(
                    "the `{}` request's params are invalid against the schema: they get -32602, not a result",
                    request.method
                ),
            );
        }
        let Some(result_def) = &spec.result else {
            return;
        };
        let problems = self.schema.validate(result_def, result);
        if problems.is_empty()
            && request.method == exec_protocol::PROCESS_START_METHOD
            && report.direction == Direction::ServerToClient
        {
            let process_id = result
                .get("processId")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| request.process_id.clone());
            if let Some(process_id) = process_id {
                self.processes.started(&process_id);
            }
        }
        for problem in problems {
            report.add(
                "result",
                format!(
                    "`{}` result {}: {problem}",
                    request.method,
                    def_name(result_def)
                ),
            );
        }
    }

    /// Checks an error object; returns its code and kind for the observation.
    fn check_error(
        &self,
        id: &Value,
        error: &Value,
        request: Option<&PendingRequest>,
        report: &mut Report,
    ) -> (Option<i64>, Option<String>) {
        for problem in self.schema.validate(self.schema.error_def(), error) {
            report.add(
                "errorObject",
                format!("error {}: {problem}", def_name(self.schema.error_def())),
            );
        }
        let code = error.get("code").and_then(Value::as_i64);
        let kind = error
            .pointer("/data/kind")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(code) = code else {
            return (None, kind);
        };
        if !PROTOCOL_CODES.contains(&code) {
            report.add(
                "errorCode",
                format!("{code} is not one of the protocol's codes {PROTOCOL_CODES:?}"),
            );
        }
        if code == PARSE_ERROR && !id.is_null() {
            report.add(
                "errorId",
                "-32700 answers a message that is not JSON: its `id` is null",
            );
        }
        if id.is_null() && code != PARSE_ERROR && code != INVALID_REQUEST {
            report.add(
                "errorId",
                format!("only -32700 and -32600 may have a null `id`, not {code}"),
            );
        }
        if let Some(request) = request {
            if code == METHOD_NOT_FOUND && request.known {
                report.add(
                    "errorCode",
                    format!(
                        "-32601 for `{}`, which is a method of the protocol",
                        request.method
                    ),
                );
            }
            // protocol.md: "Every error from a method carries `data.kind`".
            // Exempt are the errors about the message itself: an invalid
            // envelope, an unknown method, and params invalid against the schema.
            if kind.is_none() && request.known && request.envelope_valid && request.params_valid {
                report.add(
                    "errorKindMissing",
                    format!(
                        "error {code} answers a valid `{}` request: a method error carries `data.kind`",
                        request.method
                    ),
                );
            }
        }
        if let Some(kind) = &kind
            && let Some(expected) = self.schema.code_of_kind(kind)
            && expected != code
        {
            report.add(
                "errorKindCode",
                format!("the schema gives `{kind}` code {expected}, not {code}"),
            );
        }
        (Some(code), kind)
    }
}

/// Violations of one frame as they are found.
struct Report {
    direction: Direction,
    frame: String,
    violations: Vec<Violation>,
}

impl Report {
    fn add(&mut self, rule: &'static str, detail: impl Into<String>) {
        self.violations.push(Violation {
            direction: self.direction,
            rule,
            detail: detail.into(),
            frame: self.frame.clone(),
        });
    }

    fn finish(self, message: Option<Value>, observation: Observation) -> Checked {
        Checked {
            message,
            observation,
            violations: self.violations,
        }
    }
}

/// Reports members outside `allowed`; returns whether there were none.
fn check_members(object: &Map<String, Value>, allowed: &[&str], report: &mut Report) -> bool {
    let unknown: Vec<&str> = object
        .keys()
        .map(String::as_str)
        .filter(|key| !allowed.contains(key))
        .collect();
    if unknown.is_empty() {
        return true;
    }
    report.add(
        "envelope",
        format!("unknown members {unknown:?}; this message may have only {allowed:?}"),
    );
    false
}

/// An `id` of the protocol: an integer or a string (no fractions, no null).
fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(number) => number.is_i64() || number.is_u64(),
        _ => false,
    }
}

/// `ProcessStartParams` for `#/$defs/ProcessStartParams`.
fn def_name(pointer: &str) -> &str {
    pointer.rsplit('/').next().unwrap_or(pointer)
}

/// The frame as text for a violation record, cut at a character boundary.
fn quote(frame: Frame<'_>) -> String {
    let text = match frame {
        Frame::Text(text) => std::borrow::Cow::Borrowed(text),
        Frame::Line(bytes) | Frame::Binary(bytes) => String::from_utf8_lossy(bytes),
    };
    if text.len() <= QUOTED_FRAME_BYTES {
        return text.into_owned();
    }
    let mut end = QUOTED_FRAME_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &text[..end], text.len())
}
