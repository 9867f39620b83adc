//! In-process mode: an [`ExecClient`] whose server is a [`Connection`] in
//! the same process, with no bytes, sockets or child processes in between.
//! Messages still travel as complete JSON texts (the SDK's
//! [`TransportChannels`]), so the client and the server behave exactly as
//! over stdio or WebSocket.
//!
//! This lives in the server crate, not in the SDK, to keep the crate graph
//! acyclic: `exec-client` depends on `exec-protocol` only, and `exec-server`
//! depends on both. A program that wants the in-process mode depends on
//! `exec-server`; a plain client depends on `exec-client` alone and never
//! compiles the server.
//!
//! # Process-wide state is left alone
//! The `serve` command makes its process the child subreaper and starts an
//! orphan reaper ([`crate::process::init_reaper`]). The in-process mode does
//! not: both are process-wide and would change the host program. As
//! subreaper, the host would inherit every orphaned descendant of every
//! child it has, and the orphan reaper would reap zombie children outside the
//! host's process group that the process module did not spawn, stealing the
//! exit status of the host's own children that run in a group of their own.
//! Without them nothing of the protocol is lost: the managed children are
//! reaped by their own waiters, and killing a tree still finds descendants
//! that escaped it by the tree marker in their environment. Orphans are
//! re-parented to init (or the nearest subreaper) instead of the host, which
//! reaps them. A host that owns its whole process, as the `serve` command
//! does, may call [`crate::process::init_reaper`] itself.

use std::sync::Arc;

use exec_client::{ClientError, ConnectOptions, ExecClient, TransportChannels};
use tokio::sync::{mpsc, oneshot};

use crate::config::ServerConfig;
use crate::connection::Connection;

/// Starts a server connection with the default [`ServerConfig`] in this
/// process and connects a client to it (`initialize` included). The server
/// runs on tasks of the current Tokio runtime; it kills the connection's
/// processes when the client closes (or when its last clone and child are
/// dropped). Call it from within a Tokio runtime.
///
/// # Errors
/// The errors of [`ExecClient::connect_transport`]: the handshake's
/// ([`ClientError::Timeout`] after `options.initialize_timeout`).
pub async fn connect(options: ConnectOptions) -> Result<ExecClient, ClientError> {
    ExecClient::connect_transport(transport(Arc::new(ServerConfig::default())), options).await
}

/// Starts a server connection with `config` in this process and returns the
/// client's end of it, for [`ExecClient::connect_transport`]. The server
/// reads what the client sends on `outgoing` and answers on `incoming`;
/// when the client drops `outgoing`, the server kills the connection's
/// processes, delivers what is queued and drops `incoming`'s sender. Call
/// it from within a Tokio runtime.
pub fn transport(config: Arc<ServerConfig>) -> TransportChannels {
    let (client_end, server_end) = TransportChannels::pair(config.outbox_capacity);
    tokio::spawn(serve(config, server_end));
    client_end
}

/// Serves one connection over the server's end of a channel pair, like
/// `transport::stdio::serve` does over a byte stream.
async fn serve(config: Arc<ServerConfig>, server_end: TransportChannels) {
    let TransportChannels {
        outgoing: to_client,
        incoming: mut from_client,
    } = server_end;
    // The connection's outbox is a queue of its own rather than `to_client`
    // itself: request tasks and process drivers hold clones of the outbox,
    // and the client must see the end of the connection once it is closed,
    // not once the last clone happens to be dropped.
    let (outbox, queue) = mpsc::channel(config.outbox_capacity);
    let (stop_forwarding, stop) = oneshot::channel();
    let forwarder = tokio::spawn(forward(queue, to_client, stop));
    let connection = Connection::new(config, outbox);
    while let Some(text) = from_client.recv().await {
        connection.handle_message(&text).await;
    }
    connection.close().await;
    let _ = stop_forwarding.send(());
    if let Err(error) = forwarder.await {
        tracing::warn!(%error, "the in-process forwarder failed");
    }
}

/// Moves the connection's messages to the client, awaiting room (so a slow
/// client holds the server back). Ends when `stop` fires, after forwarding
/// what is already queued, or when the client is gone; dropping `to_client`
/// then ends the client's `incoming`.
async fn forward(
    mut queue: mpsc::Receiver<String>,
    to_client: mpsc::Sender<String>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let message = crate::transport::next_outgoing(&mut queue, &mut stop).await;
        let Some(message) = message else { return };
        if to_client.send(message).await.is_err() {
            return;
        }
    }
}
