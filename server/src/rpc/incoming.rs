//! Reading one incoming message: the JSON-RPC 2.0 envelope parsed once into
//! jsonrpsee's [`Request`] or [`Notification`], or the error response that
//! refuses it.
//!
//! jsonrpsee's own request type requires `"jsonrpc": "2.0"`, which Codex
//! clients omit, so the envelope is read here with that member optional
//! (present, it must be `"2.0"`), and the request is built from the borrowed
//! parts: the params stay raw text until the method parses them into its
//! generated `*Params` type.

use std::borrow::Cow;

use jsonrpsee::core::middleware::Notification;
use jsonrpsee::types::{Id, Request};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::errors::{error_response, server_error_response};
use super::id::{self, EchoedId};
use crate::error::{INVALID_REQUEST, PARSE_ERROR, ServerError};

/// What one incoming message is.
pub(crate) enum Incoming<'a> {
    /// A request to dispatch.
    Request {
        /// The request, its params still raw text borrowed from the message.
        request: Request<'a>,
        /// The client's id, when the request travels under a stand-in
        /// (see `id`): its response must get it back.
        echoed_id: Option<EchoedId>,
    },
    /// A notification (a request without an id).
    Notification(Notification<'a>),
    /// A message refused without dispatch: the error response text to send.
    Refused(String),
    /// Nothing to answer: a blank message, or a response from the client
    /// (the server sends no requests, so there is nothing to match it with).
    Ignored,
}

/// The members of an incoming message that the envelope rules look at.
#[derive(Deserialize)]
struct Envelope<'a> {
    /// `"2.0"` when present (`Some("null")` for an explicit `null`, which is refused).
    #[serde(borrow, default, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    /// A string or an integer (any, negative too); absent (or `null`) for
    /// a notification.
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    /// The method name, a string (`Some("null")` for an explicit `null`, which is refused).
    #[serde(borrow, default, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    /// Present in a response (which the client has no reason to send).
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    /// Present in an error response.
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
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

/// Reads one message (a stdio line or a WebSocket frame). Every way it can
/// be malformed gets its JSON-RPC 2.0 error: -32700 for text that is not
/// JSON, -32600 for JSON that is not one request object (batches are not
/// part of this protocol) or is over `max_message_bytes`, -32602 for
/// `params` that are not an object.
pub(crate) fn parse(text: &str, max_message_bytes: usize) -> Incoming<'_> {
    if text.len() > max_message_bytes {
        let message = format!(
            "message of {} bytes is over the limit of {max_message_bytes} bytes",
            text.len()
        );
        return Incoming::Refused(error_response(Id::Null, INVALID_REQUEST, message));
    }
    if text.trim().is_empty() {
        return Incoming::Ignored;
    }
    if !text.trim_start().starts_with('{') {
        return Incoming::Refused(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => error_response(
                Id::Null,
                INVALID_REQUEST,
                "invalid request: expected one JSON-RPC request object",
            ),
            Err(error) => error_response(Id::Null, PARSE_ERROR, format!("parse error: {error}")),
        });
    }
    let envelope: Envelope<'_> = match serde_json::from_str(text) {
        Ok(envelope) => envelope,
        Err(error) if error.is_data() => {
            let message = format!("invalid request: {error}");
            return Incoming::Refused(error_response(Id::Null, INVALID_REQUEST, message));
        }
        Err(error) => {
            let message = format!("parse error: {error}");
            return Incoming::Refused(error_response(Id::Null, PARSE_ERROR, message));
        }
    };
    let id = envelope.id.map(id::read);
    let refuse = |code: i32, message: &str| {
        let (id, echoed) = id.clone().flatten().unwrap_or((Id::Null, None));
        refusal(error_response(id, code, message), echoed.as_ref())
    };
    if let Some(version) = envelope.jsonrpc
        && version.get() != "\"2.0\""
    {
        return refuse(
            INVALID_REQUEST,
            "invalid request: `jsonrpc` must be \"2.0\"",
        );
    }
    let Some(method) = envelope.method else {
        if envelope.result.is_some() || envelope.error.is_some() {
            // A response: the server sends no requests, so nothing waits for it.
            tracing::debug!("ignoring a response from the client");
            return Incoming::Ignored;
        }
        return refuse(INVALID_REQUEST, "invalid request: `method` is missing");
    };
    let Ok(method) = serde_json::from_str::<Cow<'_, str>>(method.get()) else {
        return refuse(
            INVALID_REQUEST,
            "invalid request: `method` must be a string",
        );
    };
    let Some(id) = id else {
        return Incoming::Notification(Notification::new(
            method,
            envelope.params.map(Cow::Borrowed),
        ));
    };
    let Some((id, echoed_id)) = id else {
        let message = "invalid request: `id` must be an integer or a string";
        return Incoming::Refused(error_response(Id::Null, INVALID_REQUEST, message));
    };
    if let Some(params) = envelope.params
        && !params.get().starts_with('{')
        && params.get() != "null"
    {
        // Params by name only: arrays and scalars are refused here because
        // serde would read an empty struct from `[]`. A `null` goes on to
        // the method's params type, which refuses it unless the schema
        // allows it (`environment/*`, which Codex's client calls with null).
        let error = ServerError::InvalidParams {
            message: String::from("`params` must be an object"),
        };
        return refusal(server_error_response(id, error), echoed_id.as_ref());
    }
    let mut request = Request::borrowed("", envelope.params, id);
    request.method = method;
    Incoming::Request { request, echoed_id }
}

/// A refusal whose response gets the client's id back when it travelled
/// under a stand-in.
fn refusal(mut response: String, echoed_id: Option<&EchoedId>) -> Incoming<'static> {
    if let Some(echoed_id) = echoed_id {
        echoed_id.restore(&mut response);
    }
    Incoming::Refused(response)
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;

    /// The error code and id of a refused message.
    fn refusal(text: &str) -> (i64, Value) {
        match parse(text, 1024) {
            Incoming::Refused(response) => {
                let response: Value = serde_json::from_str(&response).expect("json");
                (
                    response["error"]["code"].as_i64().expect("code"),
                    response["id"].clone(),
                )
            }
            _ => panic!("`{text}` was not refused"),
        }
    }

    #[test]
    fn malformed_messages_are_refused_with_their_code() {
        let cases = [
            ("not json", (-32700, Value::Null)),
            ("{\"id\":1,", (-32700, Value::Null)),
            ("[1, 2]", (-32600, Value::Null)),
            ("{\"id\":1,\"method\":5}", (-32600, json!(1))),
            (
                "{\"jsonrpc\":\"1.0\",\"id\":7,\"method\":\"m\"}",
                (-32600, json!(7)),
            ),
            ("{\"id\":1.5,\"method\":\"m\"}", (-32600, Value::Null)),
            ("{\"id\":[1],\"method\":\"m\"}", (-32600, Value::Null)),
            (
                "{\"jsonrpc\":null,\"id\":1,\"method\":\"m\"}",
                (-32600, json!(1)),
            ),
            (
                "{\"id\":2,\"method\":\"m\",\"params\":[]}",
                (-32602, json!(2)),
            ),
            (&"x".repeat(2000), (-32600, Value::Null)),
            ("{\"id\":8}", (-32600, json!(8))),
            ("{\"id\":1,\"method\":null}", (-32600, json!(1))),
            ("{\"id\":-1,\"method\":null}", (-32600, json!(-1))),
            (
                "{\"id\":-2,\"method\":\"m\",\"params\":[]}",
                (-32602, json!(-2)),
            ),
            ("{}", (-32600, Value::Null)),
        ];
        for (text, expected) in cases {
            assert_eq!(refusal(text), expected, "{text}");
        }
    }

    #[test]
    fn requests_and_notifications_are_read_with_or_without_jsonrpc() {
        for text in [
            r#"{"id":3,"method":"process/list","params":{"a":1}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"process/list","params":{"a":1}}"#,
        ] {
            let Incoming::Request { request, .. } = parse(text, 1024) else {
                panic!("not a request: {text}");
            };
            assert_eq!(request.method_name(), "process/list");
            assert_eq!(request.id, Id::Number(3));
            assert_eq!(request.params().as_str(), Some(r#"{"a":1}"#));
        }
        let Incoming::Notification(notification) = parse(r#"{"method":"initialized"}"#, 1024)
        else {
            panic!("not a notification");
        };
        assert_eq!(notification.method_name(), "initialized");
        // A `null` params goes on to the method's params type, which refuses
        // it unless the schema allows it (`server/tests/envelope.rs` checks
        // both ends).
        let Incoming::Request { request, .. } = parse(
            r#"{"id":"x","method":"environment/info","params":null}"#,
            1024,
        ) else {
            panic!("a request with null params is a request");
        };
        assert_eq!(request.params().as_str(), Some("null"));
        let Incoming::Request { request, echoed_id } =
            parse(r#"{"id":-1,"method":"process/list"}"#, 1024)
        else {
            panic!("a negative id is a request");
        };
        // It travels under a stand-in; the response gets `-1` back.
        let mut response = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#, request.id);
        echoed_id.expect("an echoed id").restore(&mut response);
        assert_eq!(response, r#"{"jsonrpc":"2.0","id":-1,"result":{}}"#);
        assert!(matches!(parse("  ", 1024), Incoming::Ignored));
        assert!(matches!(
            parse(r#"{"id":1,"result":{}}"#, 1024),
            Incoming::Ignored
        ));
    }
}
