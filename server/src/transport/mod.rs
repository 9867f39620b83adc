//! The transports: how messages reach a [`Connection`](crate::connection::Connection)
//! and how its outbox reaches the client. Each connection has one reader loop
//! and one writer task; the outbox between them is bounded.

pub mod stdio;
pub mod ws;

use tokio::sync::{mpsc, oneshot};

/// The next message of a connection's outbox for its writer: any queued
/// message first; once `stop` fires, the outbox is closed so that what is
/// already queued still comes out, then `None`. Also `None` when every
/// sender is gone.
pub(crate) async fn next_outgoing(
    queue: &mut mpsc::Receiver<String>,
    stop: &mut oneshot::Receiver<()>,
) -> Option<String> {
    tokio::select! {
        biased;
        message = queue.recv() => message,
        _ = stop => {
            queue.close();
            queue.recv().await
        }
    }
}
