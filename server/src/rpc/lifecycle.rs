//! [`Lifecycle`]: the jsonrpsee RPC middleware that enforces the
//! `initialize`/`initialized` handshake (protocol.md, "Lifecycle") in one
//! place: every method of the table except `initialize` is refused with
//! `notInitialized` until the `initialized` notification arrived, and that
//! notification is handled here, as is the client's other notification,
//! `process/ack`, once ready. Unknown methods pass through, so they get
//! "Method not found" whatever the state.

use std::future::Future;
use std::sync::Arc;

use exec_protocol::{INITIALIZE_METHOD, INITIALIZED_METHOD, PROCESS_ACK_METHOD};
use jsonrpsee::core::middleware::{Batch, Notification, ResponseFuture, RpcServiceT};
use jsonrpsee::types::Request;
use jsonrpsee::{MethodResponse, Methods};

use super::context::MethodContext;
use super::errors::into_error_object;
use super::handlers;
use crate::error::ServerError;

/// The lifecycle check around an inner RPC service.
#[derive(Clone)]
pub(crate) struct Lifecycle<S> {
    /// The service that runs the methods.
    inner: S,
    /// The connection's lifecycle state.
    context: Arc<MethodContext>,
    /// The method table, to tell the protocol's methods from unknown ones.
    methods: Methods,
}

impl<S> Lifecycle<S> {
    /// Wraps `inner`.
    pub(crate) fn new(inner: S, context: Arc<MethodContext>, methods: Methods) -> Self {
        Self {
            inner,
            context,
            methods,
        }
    }
}

impl<S> RpcServiceT for Lifecycle<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            NotificationResponse = MethodResponse,
            BatchResponse = MethodResponse,
        > + Send
        + Sync,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let method = request.method_name();
        let refused = method != INITIALIZE_METHOD
            && !self.context.is_ready()
            && self.methods.method(method).is_some();
        if refused {
            let error = into_error_object(ServerError::NotInitialized);
            ResponseFuture::ready(MethodResponse::error(request.id, error))
        } else {
            ResponseFuture::future(self.inner.call(request))
        }
    }

    fn batch<'a>(&self, requests: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.batch(requests)
    }

    fn notification<'a>(
        &self,
        notification: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        if notification.method_name() == INITIALIZED_METHOD {
            if !self.context.finish_initialize() {
                tracing::warn!("`initialized` without a preceding `initialize`; ignored");
            }
            ResponseFuture::ready(MethodResponse::notification())
        } else if notification.method_name() == PROCESS_ACK_METHOD {
            // Like a method, served only once the connection is ready.
            if self.context.is_ready() {
                handlers::process_ack(&self.context, notification.params.as_deref());
            } else {
                tracing::debug!("`process/ack` before `initialized`; ignored");
            }
            ResponseFuture::ready(MethodResponse::notification())
        } else {
            ResponseFuture::future(self.inner.notification(notification))
        }
    }
}
