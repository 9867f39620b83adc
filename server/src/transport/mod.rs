//! The transports: how messages reach a [`Connection`] and how its
//! [`Outgoing`] texts reach the client. Every transport (stdio, WebSocket,
//! the in-process mode) is a [`MessageSource`] and a [`MessageSink`] served
//! by the one [`serve_connection`]: one reader loop, one writer loop, the
//! same drain on close.

pub mod stdio;
pub mod ws;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::config::ServerConfig;
use crate::connection::{Connection, Outgoing};
use crate::shutdown::ShutdownSignal;

/// How long a closing connection may take to send what is still queued; a
/// client that stopped reading (a full TCP window, a stalled pipe) would
/// otherwise hold the connection, its queues and its task forever.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// One thing a transport read.
pub enum Received<'a> {
    /// A complete message text.
    Message(&'a str),
    /// A message the transport could not hand over (not UTF-8, over the
    /// size limit): answered with this JSON-RPC error code and message, id null.
    Unreadable {
        /// The JSON-RPC error code (-32700 or -32600).
        code: i32,
        /// What was wrong with it.
        message: String,
    },
}

/// Where a connection's incoming messages come from.
pub trait MessageSource: Send {
    /// The next message; `None` once the client closed the connection or
    /// reading failed (logged).
    fn next(&mut self) -> impl Future<Output = Option<Received<'_>>> + Send;
}

/// Where a connection's outgoing texts go.
pub trait MessageSink: Send + 'static {
    /// Queues one message (a complete JSON text) for sending.
    ///
    /// # Errors
    /// The client is gone; the writer stops.
    fn send(&mut self, text: String) -> impl Future<Output = io::Result<()>> + Send;

    /// Sends what is queued; called whenever nothing more is ready, so a
    /// burst of output goes out in few writes.
    ///
    /// # Errors
    /// The client is gone; the writer stops.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Ends the connection cleanly (a WebSocket close frame, EOF on stdout).
    fn close(self) -> impl Future<Output = ()> + Send;
}

/// Serves one connection until the client closes it or the server shuts
/// down; then ends the connection's session (kills its processes), sends
/// what is still queued (for at most [`DRAIN_GRACE`]), and closes the sink.
pub async fn serve_connection<S: MessageSource, K: MessageSink>(
    config: Arc<ServerConfig>,
    mut source: S,
    sink: K,
    mut shutdown: ShutdownSignal,
) {
    let (connection, outgoing) = Connection::new(config);
    let (stop_writer, stop) = oneshot::channel();
    let mut writer = tokio::spawn(write_loop(outgoing, sink, stop));
    loop {
        let received = tokio::select! {
            received = source.next() => received,
            () = shutdown.recv() => break,
        };
        match received {
            Some(Received::Message(text)) => connection.handle_message(text).await,
            Some(Received::Unreadable { code, message }) => {
                connection.reply_error(code, &message).await;
            }
            None => break,
        }
    }
    connection.close().await;
    drop(connection);
    let _ = stop_writer.send(());
    match tokio::time::timeout(DRAIN_GRACE, &mut writer).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "the writer task failed"),
        Err(_) => {
            tracing::warn!(
                ?DRAIN_GRACE,
                "the client stopped reading; dropping what is queued"
            );
            writer.abort();
        }
    }
}

/// Writes the connection's texts to `sink`, flushing whenever nothing more
/// is ready. Once `stop` fires, writes what is already queued, then closes
/// the sink. Ends early when the client is gone.
async fn write_loop<K: MessageSink>(
    mut outgoing: Outgoing,
    mut sink: K,
    mut stop: oneshot::Receiver<()>,
) {
    let mut stopping = false;
    loop {
        let next = if stopping {
            outgoing.next().await
        } else {
            tokio::select! {
                biased;
                next = outgoing.next() => next,
                _ = &mut stop => {
                    outgoing.stop();
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(text) = next else { break };
        if sink.send(text).await.is_err() {
            return;
        }
        while let Some(text) = outgoing.try_next() {
            if sink.send(text).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    sink.close().await;
}
