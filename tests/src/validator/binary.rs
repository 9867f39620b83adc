//! The rules of binary output frames (the schema's `x-binaryFrames`): the
//! server grants them in `initialize` only to a client that asked, and
//! never over stdio; a binary frame comes only on a connection that was
//! granted them, decodes by its kind's layout, and is then checked as the
//! text notification it stands for (params, process order); on a granted
//! connection every notification that has a frame kind comes as a frame.

use serde_json::{Map, Value};

use super::report::Report;
use super::{ConnectionValidator, Observation, PendingRequest};

impl ConnectionValidator {
    /// Whether `request` (an `initialize`) asks for binary output.
    pub(super) fn asks_binary_output(&self, method: &str, params: &Value) -> bool {
        method == exec_protocol::INITIALIZE_METHOD
            && self
                .schema
                .binary_frames()
                .is_some_and(|frames| params.get(&frames.params_field) == Some(&Value::Bool(true)))
    }

    /// A valid `initialize` result from the server: records whether it
    /// granted binary output, which it may only do when asked, and never
    /// over stdio.
    pub(super) fn record_binary_grant(
        &mut self,
        request: &PendingRequest,
        result: &Value,
        report: &mut Report,
    ) {
        let Some(frames) = self.schema.binary_frames() else {
            return;
        };
        let granted = result.get(&frames.result_field) == Some(&Value::Bool(true));
        if granted && !request.asks_binary {
            report.add(
                "binaryOutput",
                "`initialize` granted binary output the client did not ask for",
            );
        }
        if granted && self.line_transport {
            report.add(
                "binaryOutput",
                "`initialize` granted binary output over stdio, which carries text only",
            );
        }
        self.binary_output = granted;
    }

    /// A binary frame from the server that is not JSON text: allowed only
    /// once binary output was granted, decoded by its layout, then checked
    /// as the notification it stands for.
    pub(super) fn check_binary_frame(
        &mut self,
        bytes: &[u8],
        mut report: Report,
    ) -> super::Checked {
        if !self.binary_output {
            report.add(
                "binaryFrames",
                "a binary frame on a connection that was not granted binary output",
            );
        }
        let decoded = self
            .schema
            .binary_frames()
            .map(|frames| frames.decode(bytes));
        let message = match decoded {
            Some(Ok(message)) => message,
            Some(Err(problem)) => {
                report.add(
                    "binaryFrame",
                    format!("the binary frame does not follow its layout: {problem}"),
                );
                return report.finish(None, Observation::Unrecognized);
            }
            None => {
                report.add("binaryFrame", "the schema defines no binary frames");
                return report.finish(None, Observation::Unrecognized);
            }
        };
        let observation = match message.as_object() {
            Some(object) => self.check_object(object, &mut report),
            None => Observation::Unrecognized,
        };
        report.finish(Some(message), observation)
    }

    /// A text notification from the server: on a connection granted binary
    /// output, one that has a frame kind must come as a frame, unless a
    /// param is too long for the frame's length field.
    pub(super) fn check_text_notification(&self, object: &Map<String, Value>, report: &mut Report) {
        if !self.binary_output || object.contains_key("id") {
            return;
        }
        let Some(method) = object.get("method").and_then(Value::as_str) else {
            return;
        };
        let Some(kind) = self
            .schema
            .binary_frames()
            .and_then(|frames| frames.kind_for_method(method))
        else {
            return;
        };
        let params = object.get("params");
        let too_long = kind.utf8_limits().iter().any(|(param, max)| {
            params
                .and_then(|params| params.get(param))
                .and_then(Value::as_str)
                .is_some_and(|text| text.len() as u64 > *max)
        });
        if !too_long {
            report.add(
                "binaryFrames",
                format!("`{method}` sent as text on a connection granted binary output"),
            );
        }
    }
}
