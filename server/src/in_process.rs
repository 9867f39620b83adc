//! In-process mode: an [`ExecClient`] whose server is a connection served in
//! the same process (by `transport::serve_connection`), with no bytes, sockets or child processes in between.
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

use std::io;
use std::sync::Arc;

use exec_client::{
    ClientError, ConnectOptions, ExecClient, ServerChannels, ServerMessage, TransportChannels,
};
use tokio::sync::mpsc;

use crate::config::ServerConfig;
use crate::shutdown::ShutdownSignal;
use crate::transport::{Farewell, MessageSink, MessageSource, Received, serve_connection};

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
    let ServerChannels {
        outgoing: to_client,
        incoming: from_client,
    } = server_end;
    let source = ChannelSource { from_client };
    tokio::spawn(serve_connection(
        config,
        source,
        ChannelSink { to_client },
        ShutdownSignal::never(),
    ));
    client_end
}

/// The client's texts, one message each.
struct ChannelSource {
    /// What the client sends.
    from_client: mpsc::Receiver<String>,
}

impl MessageSource for ChannelSource {
    async fn next(&mut self) -> Option<Received> {
        let text = self.from_client.recv().await?;
        Some(Received::Message(text.into()))
    }
}

/// The client's incoming texts; a full channel holds the server back, as a
/// slow socket would. Dropping it ends the client's `incoming`.
struct ChannelSink {
    /// Where the client reads.
    to_client: mpsc::Sender<ServerMessage>,
}

impl MessageSink for ChannelSink {
    async fn send(&mut self, text: String) -> io::Result<()> {
        self.to_client
            .send(ServerMessage::Text(text))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn close(self, _farewell: Farewell) {}
}
