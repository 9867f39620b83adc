//! [`ConnectionValidator`]: validates every message of one connection, in
//! both directions, as it travels on the wire.
//!
//! A message is checked whole: the JSON-RPC 2.0 envelope, `params` against
//! the def `x-methods` names for its method, a response's `result` against the
//! result def of the request with the same `id` (requests are tracked per
//! connection and direction), an error against `x-error` plus the protocol's
//! rules on codes and `data.kind`, and the per-process order of the server's
//! process notifications. Each broken rule is one [`Violation`].
//!
//! # Layout
//! - this file: [`ConnectionValidator`], its state, and the first steps of a
//!   check (UTF-8, JSON, one object, `jsonrpc`) before the rules of its kind.
//! - `report`: what a check takes and gives ([`Frame`], [`Checked`],
//!   [`Observation`], [`Violation`]) and the report one check fills.
//! - `envelope`: the rules every message obeys (its members, its `id`).
//! - `call`: requests and notifications: method, direction, `params`.
//! - `response`: responses, and a `result` against its request.
//! - `error_object`: the JSON-RPC error codes and the rules of an `error`.
//! - `binary`: binary output frames: the grant in `initialize`, and each
//!   frame decoded and checked as the notification it stands for.

mod binary;
mod call;
mod envelope;
mod error_object;
mod report;
mod response;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::process_events::ProcessEvents;
use crate::schema::{Direction, ProtocolSchema};

pub use error_object::{
    INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR,
};
pub use report::{Checked, Frame, Observation, Violation};

use report::{Report, quote};

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
    /// Its params carry a `resumeSessionId` (an `initialize` that resumes a session).
    resumes: bool,
    /// An `initialize` that asks for binary output frames.
    asks_binary: bool,
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
    /// The server granted binary output frames (`initialize`).
    binary_output: bool,
    /// The connection carries lines (stdio), which are text only.
    line_transport: bool,
}

impl ConnectionValidator {
    /// A validator for a new connection.
    pub fn new(schema: Arc<ProtocolSchema>) -> Self {
        Self {
            schema,
            pending: HashMap::new(),
            processes: ProcessEvents::default(),
            binary_output: false,
            line_transport: false,
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
        if matches!(frame, Frame::Line(_)) {
            // Lines are stdio's framing, which carries text only.
            self.line_transport = true;
        }
        let text = match frame {
            Frame::Text(text) => text,
            Frame::Line(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => text,
                Err(error) => {
                    report.add("utf8", format!("the line is not UTF-8: {error}"));
                    return report.finish(None, Observation::Unrecognized);
                }
            },
            Frame::Binary(bytes)
                if direction == Direction::ServerToClient && bytes.first() != Some(&b'{') =>
            {
                return self.check_binary_frame(bytes, report);
            }
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
            Some(object) => {
                if direction == Direction::ServerToClient {
                    self.check_text_notification(object, &mut report);
                }
                self.check_object(object, &mut report)
            }
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
}
