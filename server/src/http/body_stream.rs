//! A streamed `http/request` body turned into `http/request/bodyDelta`
//! notifications: typed deltas of at most [`MAX_BODY_DELTA_BYTES`], seq
//! from 1, the last one `done` (with `error` when the body broke off).
//!
//! Back-pressure: the task reads the next chunk of the body only after the
//! previous chunk's notifications are in the connection's outbox, which is
//! bounded; while the client reads slowly the outbox stays full, the task
//! waits, and the TCP window towards the HTTP server closes.

use std::num::NonZeroU64;

use exec_protocol::{Base64Bytes, HttpRequestBodyDeltaNotification};
use tokio::sync::mpsc;

use super::client;
use super::streams::Reservation;

/// Most body bytes in one `http/request/bodyDelta`, decoded (Codex's
/// `MAX_HTTP_BODY_DELTA_BYTES`, 1 MiB).
pub(crate) const MAX_BODY_DELTA_BYTES: usize = 1024 * 1024;

/// Where a stream's deltas go: the connection's outbox, and the encoder of
/// the protocol layer (this module emits typed deltas, never wire text).
pub(crate) struct DeltaSink {
    /// The connection's bounded queue of outgoing texts, behind its responses.
    pub(crate) outbox: mpsc::Sender<String>,
    /// Turns a delta into its notification text.
    pub(crate) encode: fn(&HttpRequestBodyDeltaNotification) -> String,
}

/// A streamed body waiting for its `http/request` response to be queued.
pub(crate) struct Pending {
    /// The `requestId`, held until the last delta is queued.
    reservation: Reservation,
    /// The answer whose body is streamed.
    response: reqwest::Response,
    /// `timeoutMs`, to name it when it runs out mid-body.
    timeout_ms: Option<u64>,
}

impl Pending {
    /// A stream of `response`'s body under `reservation`'s id.
    pub(crate) fn new(
        reservation: Reservation,
        response: reqwest::Response,
        timeout_ms: Option<u64>,
    ) -> Self {
        Self {
            reservation,
            response,
            timeout_ms,
        }
    }

    /// Starts the stream's task; call only once the `http/request` response
    /// is queued, so that every delta follows it. Dropping a `Pending`
    /// instead (the response could not be queued) lets the id go.
    pub(crate) fn start(self, sink: DeltaSink) {
        let streams = self.reservation.streams();
        let request_id = self.reservation.request_id().to_owned();
        let task = tokio::spawn(self.run(sink));
        streams.track(&request_id, task.abort_handle());
    }

    async fn run(mut self, sink: DeltaSink) {
        let mut seq = NonZeroU64::MIN;
        loop {
            let (bytes, done, error) = match self.response.chunk().await {
                Ok(Some(chunk)) => {
                    for piece in chunk.chunks(MAX_BODY_DELTA_BYTES) {
                        if !self
                            .send(&sink, &mut seq, piece.to_vec(), false, None)
                            .await
                        {
                            return;
                        }
                    }
                    continue;
                }
                Ok(None) => (Vec::new(), true, None),
                Err(error) => (
                    Vec::new(),
                    true,
                    Some(client::failure(&error, self.timeout_ms).to_string()),
                ),
            };
            self.send(&sink, &mut seq, bytes, done, error).await;
            return;
        }
    }

    /// Queues one delta; false when the connection is gone (then the
    /// stream just stops: nobody is left to tell).
    async fn send(
        &self,
        sink: &DeltaSink,
        seq: &mut NonZeroU64,
        bytes: Vec<u8>,
        done: bool,
        error: Option<String>,
    ) -> bool {
        let delta = HttpRequestBodyDeltaNotification {
            request_id: self.reservation.request_id().to_owned(),
            seq: *seq,
            delta_base64: Base64Bytes(bytes),
            done,
            error,
        };
        *seq = seq.saturating_add(1);
        sink.outbox.send((sink.encode)(&delta)).await.is_ok()
    }
}
