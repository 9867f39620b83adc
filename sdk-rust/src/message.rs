//! The JSON-RPC texts this client writes: requests and notifications, one
//! serialization each, shared by calls and by the supervisor's resume.

use serde::Serialize;

use crate::error::ClientError;

/// A request as written on the wire.
#[derive(Serialize)]
struct RequestMessage<'a, P: ?Sized> {
    jsonrpc: &'static str,
    id: u64,
    method: &'a str,
    params: &'a P,
}

/// A notification as written on the wire.
#[derive(Serialize)]
struct NotificationMessage<'a, P: ?Sized> {
    jsonrpc: &'static str,
    method: &'a str,
    params: &'a P,
}

/// The text of request `id` calling `method` with `params`.
///
/// # Errors
/// [`ClientError::InvalidInput`] when `params` do not serialize.
pub(crate) fn request_text<P: Serialize + ?Sized>(
    id: u64,
    method: &str,
    params: &P,
) -> Result<String, ClientError> {
    serde_json::to_string(&RequestMessage {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
    .map_err(|error| unserializable(method, &error))
}

/// The text of a `method` notification with `params`.
///
/// # Errors
/// [`ClientError::InvalidInput`] when `params` do not serialize.
pub(crate) fn notification_text<P: Serialize + ?Sized>(
    method: &str,
    params: &P,
) -> Result<String, ClientError> {
    serde_json::to_string(&NotificationMessage {
        jsonrpc: "2.0",
        method,
        params,
    })
    .map_err(|error| unserializable(method, &error))
}

/// The error for params that do not serialize.
fn unserializable(method: &str, error: &serde_json::Error) -> ClientError {
    ClientError::InvalidInput(format!(
        "the params of `{method}` do not serialize: {error}"
    ))
}
