//! The method table made callable: one jsonrpsee [`RpcModule`] per connection
//! with every request of the schema registered, its params parsed once into
//! the generated `*Params` type and its result serialized from the
//! `*Response` type.
//!
//! Registration iterates over `exec_protocol::for_each_request!`, and each
//! method calls the handler of the same snake-case name in `handlers`: a
//! method added to the schema without a handler does not compile. A
//! handler's after-queued action rides on jsonrpsee's own completion
//! notice ([`ResponsePayload::notify_on_completion`]), which the connection
//! fires once it queued the response.

use std::sync::Arc;

use jsonrpsee::types::{ErrorObjectOwned, Extensions};
use jsonrpsee::{ResponsePayload, RpcModule};
use serde::de::DeserializeOwned;

use super::answer::Answer;
use super::context::MethodContext;
use super::errors::into_error_object;
use super::handlers;
use super::message::with_params;
use crate::error::ServerError;

/// Builds the module serving every request of the protocol for one connection.
pub(crate) fn rpc_module(context: Arc<MethodContext>) -> RpcModule<MethodContext> {
    let mut module = RpcModule::from_arc(context);
    macro_rules! register {
        ($(($marker:path, $snake:ident, $wire:literal, $params:path, $response:path, $direction:ident)),* $(,)?) => {$(
            let registered = module.register_async_method($wire, |_params, context, extensions| async move {
                let params: $params = match parse_params(&extensions) {
                    Ok(params) => params,
                    Err(error) => return ResponsePayload::error(error),
                };
                match handlers::$snake(&context, params).await {
                    Ok(answer) => into_payload(Answer::<$response>::from(answer)),
                    Err(error) => ResponsePayload::error(into_error_object(error)),
                }
            });
            if let Err(error) = registered {
                // Only a name registered twice gets here, which the schema's
                // method table (a JSON object) cannot hold.
                tracing::error!(method = $wire, %error, "method registered twice");
            }
        )*};
    }
    exec_protocol::for_each_request!(register);
    module
}

/// Parses the request's `params` (kept in its message, see `message`) into
/// the method's params type, then lets go of the message; a missing
/// `params` counts as `{}`, so methods whose params are all optional can
/// omit it.
fn parse_params<T: DeserializeOwned>(extensions: &Extensions) -> Result<T, ErrorObjectOwned> {
    with_params(extensions, |params| {
        serde_json::from_str(params.unwrap_or("{}")).map_err(|error| {
            into_error_object(ServerError::InvalidParams {
                message: error.to_string(),
            })
        })
    })
}

/// The success payload of `answer`; its after-queued action, if any, runs
/// once the connection reports the response queued.
fn into_payload<R: Clone>(answer: Answer<R>) -> ResponsePayload<'static, R> {
    let payload = ResponsePayload::success(answer.result);
    let Some(action) = answer.after_queued else {
        return payload;
    };
    let (payload, queued) = payload.notify_on_completion();
    tokio::spawn(async move {
        if queued.await.is_ok() {
            action();
        }
    });
    payload
}
