//! The JSON-RPC error codes of the protocol and the rules of an `error`
//! object: valid against `x-error`, one of the protocol's codes, a null `id`
//! only for unreadable messages, and `data.kind` on every method error, with
//! the code the schema gives that kind.

use serde_json::Value;

use super::report::{Report, def_name};
use super::{ConnectionValidator, PendingRequest};

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
/// Codex's "not found", a server-defined code: `notFound` from `fs/*`.
pub const NOT_FOUND: i64 = -32004;

/// The error codes protocol.md allows (the `ErrorObject` description lists the same).
const PROTOCOL_CODES: [i64; 6] = [
    PARSE_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    INVALID_PARAMS,
    INTERNAL_ERROR,
    NOT_FOUND,
];

impl ConnectionValidator {
    /// Checks an error object; returns its code and kind for the observation.
    pub(super) fn check_error(
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
