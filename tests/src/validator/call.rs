//! The rules of a request or a notification: a method of the protocol, in
//! its direction, with or without an `id` as its kind says, and `params`
//! valid against the method's params def. A request is remembered until its
//! response comes.

use serde_json::{Map, Value};

use super::envelope::{check_members, valid_id};
use super::report::{Report, def_name};
use super::{ConnectionValidator, Observation, PendingRequest};
use crate::schema::{Direction, MethodKind};

impl ConnectionValidator {
    /// A request or a notification.
    pub(super) fn check_call(
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
                    resumes: params.get("resumeSessionId").is_some_and(Value::is_string),
                    asks_binary: self.asks_binary_output(method, params),
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
}
