//! [`Dispatcher`]: the innermost jsonrpsee RPC service, which calls a method
//! of the connection's [`Methods`] table. jsonrpsee's own `RpcService` lives
//! in its HTTP/WebSocket server crate, which this server does not use (it
//! has transports of its own), so this is the small equivalent: look the
//! method up, call it, or answer "Method not found".

use std::future::Future;

use jsonrpsee::core::middleware::{Batch, Notification, RpcServiceT};
use jsonrpsee::types::{ErrorCode, ErrorObject, Request};
use jsonrpsee::{ConnectionId, MethodCallback, MethodResponse, Methods};

use crate::error::INVALID_REQUEST;

/// Largest response a method may produce, in bytes: no cap of jsonrpsee's
/// own, since the methods bound what they return (`fs/readFile` pages,
/// `process/read`'s `maxBytes` and the retained output).
const MAX_RESPONSE_BYTES: usize = usize::MAX;

/// Calls the methods of one connection.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    /// The connection's method table.
    methods: Methods,
}

impl Dispatcher {
    /// A service over `methods`.
    pub(crate) fn new(methods: Methods) -> Self {
        Self { methods }
    }
}

impl RpcServiceT for Dispatcher {
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let callback = self.methods.method(request.method_name()).cloned();
        async move {
            let params = request.params().into_owned();
            let Request { id, extensions, .. } = request;
            let id = id.into_owned();
            match callback {
                Some(MethodCallback::Async(callback)) => {
                    callback(id, params, ConnectionId(0), MAX_RESPONSE_BYTES, extensions).await
                }
                Some(MethodCallback::Sync(callback)) => {
                    callback(id, params, MAX_RESPONSE_BYTES, extensions)
                }
                // Subscriptions are not part of this protocol, and none are
                // registered.
                Some(MethodCallback::Subscription(_) | MethodCallback::Unsubscription(_))
                | None => MethodResponse::error(id, ErrorObject::from(ErrorCode::MethodNotFound)),
            }
        }
    }

    fn batch<'a>(&self, _requests: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        // Batches are refused before dispatch (see `incoming`); this keeps
        // the service total.
        std::future::ready(MethodResponse::error(
            jsonrpsee::types::Id::Null,
            ErrorObject::owned(
                INVALID_REQUEST,
                "invalid request: batches are not part of this protocol",
                None::<()>,
            ),
        ))
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        tracing::debug!(
            method = notification.method_name(),
            "ignoring an unknown notification"
        );
        std::future::ready(MethodResponse::notification())
    }
}
