//! The rules of a response: an `id` that a request awaits, `result` or
//! `error` but not both, and a `result` valid against the result def of the
//! request it answers. A valid `process/start` result lets that process's
//! notifications flow; a valid `process/read` or `process/list` result is
//! also held to the rules of `process_results`.

use serde_json::{Map, Value};

use super::envelope::{check_members, valid_id};
use super::report::{Report, def_name};
use super::{ConnectionValidator, Observation, PendingRequest};
use crate::process_results::{list_result_problems, read_result_problems};
use crate::schema::Direction;

impl ConnectionValidator {
    /// A response: `result` or `error`.
    pub(super) fn check_response(
        &mut self,
        object: &Map<String, Value>,
        report: &mut Report,
    ) -> Observation {
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
        // A handle of its own, so the checks below may update `self`.
        let schema = self.schema.clone();
        let Some(spec) = schema.method(&request.method).filter(|_| request.known) else {
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
        if problems.is_empty() && report.direction == Direction::ServerToClient {
            let field_problems = match request.method.as_str() {
                exec_protocol::PROCESS_READ_METHOD => read_result_problems(result),
                exec_protocol::PROCESS_LIST_METHOD => list_result_problems(result),
                _ => Vec::new(),
            };
            for problem in field_problems {
                report.add(
                    "processResult",
                    format!("`{}` result: {problem}", request.method),
                );
            }
        }
        if problems.is_empty()
            && request.method == exec_protocol::INITIALIZE_METHOD
            && request.resumes
            && report.direction == Direction::ServerToClient
        {
            self.processes.resumed();
        }
        if problems.is_empty()
            && request.method == exec_protocol::INITIALIZE_METHOD
            && report.direction == Direction::ServerToClient
        {
            self.record_binary_grant(request, result, report);
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
}
