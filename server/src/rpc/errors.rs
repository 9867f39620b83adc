//! Error objects in jsonrpsee's types: a [`ServerError`]'s object (whose
//! code and `data.kind` `crate::error` decides, in one place) and the error
//! response text of a message refused before dispatch.

use jsonrpsee::MethodResponse;
use jsonrpsee::types::{ErrorObjectOwned, Id};

use crate::error::ServerError;

/// The jsonrpsee error object of a [`ServerError`] (code, message, and the
/// schema's `data` with its `kind`).
pub(crate) fn into_error_object(error: ServerError) -> ErrorObjectOwned {
    let object = error.to_error_object();
    ErrorObjectOwned::owned(object.code, object.message, object.data)
}

/// The text of an error response to a message that was not dispatched: `id`
/// is the request's id when it could be read, `null` otherwise (JSON-RPC 2.0,
/// "Response object").
pub(crate) fn error_response(id: Id<'_>, code: i32, message: impl Into<String>) -> String {
    let error = ErrorObjectOwned::owned(code, message.into(), None::<()>);
    MethodResponse::error(id, error)
        .into_json()
        .get()
        .to_owned()
}

/// The error response for a [`ServerError`] found before dispatch (params
/// that are not an object), with its `data.kind`.
pub(crate) fn server_error_response(id: Id<'_>, error: ServerError) -> String {
    MethodResponse::error(id, into_error_object(error))
        .into_json()
        .get()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::{Value, json};

    use super::*;

    #[test]
    fn error_responses_carry_the_id_or_null() {
        let text = error_response(Id::Null, -32700, "parse error: x");
        assert_eq!(
            serde_json::from_str::<Value>(&text).expect("json"),
            json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": "parse error: x"}})
        );
        let text = error_response(Id::Str("a".into()), -32600, "invalid request");
        assert_eq!(
            serde_json::from_str::<Value>(&text).expect("json"),
            json!({"jsonrpc": "2.0", "id": "a", "error": {"code": -32600, "message": "invalid request"}})
        );
    }

    #[test]
    fn server_errors_keep_their_kind() {
        let object = into_error_object(ServerError::NotInitialized);
        assert_eq!(object.code(), -32600);
        let data: Value = serde_json::from_str(object.data().expect("data").get()).expect("json");
        assert_eq!(data, json!({"kind": "notInitialized"}));
    }
}
