//! The JSON-RPC 2.0 layer: the only part of the server that knows the wire
//! format. It reads incoming messages, dispatches requests through
//! jsonrpsee, and writes process events as notification texts.
//!
//! # Layout
//! - `incoming`: one message parsed once into jsonrpsee's `Request` or
//!   `Notification`, or refused with its error response (`"jsonrpc"` may be
//!   omitted, as Codex clients do).
//! - `id`: request ids echoed as sent, including those jsonrpsee's `Id`
//!   cannot hold (negative integers).
//! - `message`: the owned message text, whose `params` reach the method
//!   without a copy.
//! - `lifecycle`: the RPC middleware that enforces `initialize`, then
//!   `initialized`, in one place.
//! - `service`: the innermost RPC service, which calls a method of the table.
//! - `methods`: the jsonrpsee `RpcModule` built from the generated method
//!   table: params parsed into `*Params`, results from `*Response`.
//! - `handlers`: one handler per request method.
//! - `answer`: a handler's result plus what must happen once its response is queued.
//! - `context`: what one connection's methods share (settings, lifecycle, session).
//! - `errors`: the one place a failure becomes an error object or response.
//! - `inline`: which requests the connection's reader starts itself.
//! - `notifications`: process events encoded as notification texts, or as
//!   binary frames on a connection granted binary output (the encoder each
//!   session hands its processes, so they encode on their own tasks without
//!   knowing the format), and re-encoded for a connection whose grant differs.
//! - `binary_output`: whether a connection can carry, and was granted,
//!   binary output frames.
//!
//! A request's path: `incoming::parse` -> `message::owned_request` ->
//! `Lifecycle` -> `Dispatcher` -> the `RpcModule` method (params parsed
//! once, from the message itself) -> its handler -> jsonrpsee's
//! `MethodResponse`, which the connection queues and then reports queued
//! (jsonrpsee's completion notice), running the handler's after-queued action.

mod answer;
mod binary_output;
mod context;
mod errors;
mod handlers;
mod id;
mod incoming;
mod inline;
mod lifecycle;
mod message;
mod methods;
mod notifications;
mod service;

use std::sync::Arc;

use jsonrpsee::Methods;
use jsonrpsee::core::middleware::RpcServiceBuilder;

pub(crate) use binary_output::BinaryOutput;
pub(crate) use context::MethodContext;
pub(crate) use errors::error_response;
pub(crate) use incoming::{Incoming, parse};
pub(crate) use inline::starts_inline;
pub use message::MessageText;
pub(crate) use message::owned_request;
/// The encoders, for the tests of the layers below that need sessions.
#[cfg(test)]
pub(crate) use notifications::ENCODER;
/// The encoder sessions give their processes (`handlers::initialize` does),
/// for the tests of the layers below that need real notification texts.
#[cfg(test)]
pub(crate) use notifications::encode;
pub(crate) use notifications::fit_grant;

use self::lifecycle::Lifecycle;
use self::service::Dispatcher;

/// The RPC service of one connection: the lifecycle middleware around the
/// dispatcher of its method table.
pub(crate) type ConnectionService = Lifecycle<Dispatcher>;

/// Builds the RPC service of one connection over `context`.
pub(crate) fn connection_service(context: Arc<MethodContext>) -> ConnectionService {
    let methods: Methods = methods::rpc_module(context.clone()).into();
    let table = methods.clone();
    RpcServiceBuilder::new()
        .layer_fn(move |inner| Lifecycle::new(inner, context.clone(), table.clone()))
        .service(Dispatcher::new(methods))
}
