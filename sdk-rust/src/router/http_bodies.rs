//! [`HttpBodies`]: where the `http/request/bodyDelta` notifications of each
//! streamed `http/request` go, by `requestId`, until its `done` delta.
//!
//! A stream is registered before its request is sent, since its first delta
//! may be read right behind the response. When the transport drops or the
//! connection closes, every stream is let go of: the server aborts the
//! streams of a connection that ends, so no more deltas would come, and the
//! reader of each sees its body end without a `done` delta.

use std::collections::HashMap;
use std::sync::Mutex;

use exec_protocol::HttpRequestBodyDeltaNotification;
use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::sync::lock;

/// Deltas queued for one stream's reader before the client stops reading
/// the connection (back-pressure that reaches the server): at most this
/// many MiB.
pub(crate) const BODY_DELTAS_QUEUED: usize = 16;

/// The streamed bodies being received.
#[derive(Default)]
pub(crate) struct HttpBodies {
    /// The reader of each stream, by `requestId`.
    senders: Mutex<HashMap<String, mpsc::Sender<HttpRequestBodyDeltaNotification>>>,
}

impl HttpBodies {
    /// Registers `request_id`; its deltas arrive on the returned receiver.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] when a stream of that id is still
    /// being received.
    pub(crate) fn register(
        &self,
        request_id: &str,
    ) -> Result<mpsc::Receiver<HttpRequestBodyDeltaNotification>, ClientError> {
        let mut senders = lock(&self.senders);
        if senders.contains_key(request_id) {
            return Err(ClientError::InvalidInput(format!(
                "an http/request stream `{request_id}` is still being received"
            )));
        }
        let (sender, receiver) = mpsc::channel(BODY_DELTAS_QUEUED);
        senders.insert(request_id.to_owned(), sender);
        Ok(receiver)
    }

    /// Lets go of `request_id` (its request failed, or its reader went).
    pub(crate) fn remove(&self, request_id: &str) {
        lock(&self.senders).remove(request_id);
    }

    /// Hands `delta` to its stream's reader, waiting while the reader's
    /// queue is full; a delta of no registered stream is dropped.
    pub(crate) async fn deliver(&self, delta: HttpRequestBodyDeltaNotification) {
        let request_id = delta.request_id.clone();
        let sender = if delta.done {
            lock(&self.senders).remove(&request_id)
        } else {
            lock(&self.senders).get(&request_id).cloned()
        };
        let Some(sender) = sender else {
            tracing::debug!(request_id, "a body delta for a stream nobody reads");
            return;
        };
        if sender.send(delta).await.is_err() {
            // The reader was dropped: the rest of the body goes nowhere.
            self.remove(&request_id);
        }
    }

    /// Lets go of every stream (the transport dropped or closed).
    pub(crate) fn clear(&self) {
        lock(&self.senders).clear();
    }
}
