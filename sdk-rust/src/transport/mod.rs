//! The transport abstraction: the client core runs over a pair of channels of
//! complete JSON texts (and, from the server, binary output frames), so any
//! byte pipe (stdio, WebSocket, or a server in the same process) can carry it.
//!
//! - `stdio`: newline-delimited JSON over any `AsyncRead`/`AsyncWrite`.
//! - `websocket`: one JSON message per WebSocket text frame; binary output
//!   frames (the schema's `x-binaryFrames`) as binary messages.
//! - `link`: the client's own ends of a transport (over the built-in
//!   WebSocket and stdio, the socket or pipes themselves: no task between
//!   them and the client); `socket` and `lines` are those two.
//! - `tls`: how a `wss://` server is verified (the system's roots or a CA file).
//! - `limit`: the cap on one message from the server, which both readers
//!   enforce without buffering past it.

pub(crate) mod limit;
pub(crate) mod lines;
pub(crate) mod link;
pub(crate) mod socket;
pub(crate) mod stdio;
pub(crate) mod tls;
pub(crate) mod websocket;

use tokio::sync::mpsc;

/// Runs the clean-up of a dropped writer (the rest of a flush, a close
/// frame, EOF) on the current Tokio runtime. Without one (the client's
/// runtime is shutting down) it is skipped: the connection then ends with
/// the process's descriptors, unclosed.
pub(crate) fn spawn_cleanup(cleanup: impl Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(cleanup);
    }
}

/// Messages buffered in each direction by the transports of this crate.
pub(crate) const TRANSPORT_CAPACITY: usize = 64;

/// One message from the server, as its transport framed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage {
    /// A complete JSON-RPC message text (no framing, no trailing newline).
    Text(String),
    /// A binary WebSocket message: a binary output frame (the schema's
    /// `x-binaryFrames`, sent once `initialize` granted `binaryOutput`),
    /// or UTF-8 JSON from a server that sends its text that way.
    Binary(Vec<u8>),
}

/// One message from the server as the client's own reader loop takes it:
/// a [`ServerMessage`], with a WebSocket's binary payload kept as the
/// transport read it (no copy before the frame is decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inbound {
    /// A complete JSON-RPC message text.
    Text(String),
    /// A binary message (see [`ServerMessage::Binary`]).
    Binary(bytes::Bytes),
}

impl From<ServerMessage> for Inbound {
    fn from(message: ServerMessage) -> Self {
        match message {
            ServerMessage::Text(text) => Self::Text(text),
            ServerMessage::Binary(bytes) => Self::Binary(bytes.into()),
        }
    }
}

impl From<Inbound> for ServerMessage {
    fn from(message: Inbound) -> Self {
        match message {
            Inbound::Text(text) => Self::Text(text),
            Inbound::Binary(bytes) => Self::Binary(bytes.into()),
        }
    }
}

impl ServerMessage {
    /// The text of a [`ServerMessage::Text`].
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }
}

impl From<String> for ServerMessage {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// The client's end of a transport: complete JSON-RPC messages in both
/// directions, one JSON text per `String` (no framing, no trailing newline)
/// to the server, one [`ServerMessage`] per message from it.
///
/// # Contract
/// - The client sends every message it writes on [`outgoing`](Self::outgoing),
///   in order. The transport delivers each to the server as one message.
/// - The transport puts every message from the server into
///   [`incoming`](Self::incoming), in the order the server sent them. It
///   awaits `send` rather than dropping when the channel is full: that is how
///   a slow client holds a fast server back.
/// - When the client is done, it drops its `outgoing` sender; the transport
///   then delivers what is queued and closes the connection.
/// - When the connection ends (the server closed it, or an I/O error), the
///   transport drops its `incoming` sender; every call still waiting then
///   fails with [`ClientError::TransportClosed`](crate::ClientError::TransportClosed).
///
/// # An in-process transport
/// A server in the same process needs no bytes at all: make a pair with
/// [`TransportChannels::pair`], give one end to
/// [`ExecClient::connect_transport`](crate::ExecClient::connect_transport)
/// and serve the other, e.g. with exec-server's `Connection`:
///
/// ```ignore
/// let (client_end, mut server_end) = TransportChannels::pair(256);
/// // server_end: ServerChannels { outgoing, incoming }
/// tokio::spawn(async move {
///     let connection = Connection::new(config, server_end.outgoing);
///     while let Some(text) = server_end.incoming.recv().await {
///         connection.handle_message(&text).await;
///     }
///     connection.close().await;
/// });
/// let client = ExecClient::connect_transport(client_end, ConnectOptions::default()).await?;
/// ```
#[derive(Debug)]
pub struct TransportChannels {
    /// Messages from the client to the server.
    pub outgoing: mpsc::Sender<String>,
    /// Messages from the server to the client.
    pub incoming: mpsc::Receiver<ServerMessage>,
}

/// The server's end of a [`TransportChannels::pair`]: the client's texts
/// in, the server's messages out.
#[derive(Debug)]
pub struct ServerChannels {
    /// Messages from the server to the client.
    pub outgoing: mpsc::Sender<ServerMessage>,
    /// Messages from the client to the server.
    pub incoming: mpsc::Receiver<String>,
}

impl TransportChannels {
    /// Two connected ends, the client's and the server's: what one end
    /// sends on `outgoing` arrives on the other end's `incoming`.
    /// `capacity` is the number of messages buffered in each direction (at
    /// least 1).
    pub fn pair(capacity: usize) -> (TransportChannels, ServerChannels) {
        let capacity = capacity.max(1);
        let (to_server, from_client) = mpsc::channel(capacity);
        let (to_client, from_server) = mpsc::channel(capacity);
        (
            TransportChannels {
                outgoing: to_server,
                incoming: from_server,
            },
            ServerChannels {
                outgoing: to_client,
                incoming: from_client,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_pair_is_crossed() {
        let (mut client, mut server) = TransportChannels::pair(4);
        client
            .outgoing
            .send("to server".into())
            .await
            .expect("open");
        server
            .outgoing
            .send(String::from("to client").into())
            .await
            .expect("open");
        assert_eq!(server.incoming.recv().await.as_deref(), Some("to server"));
        assert_eq!(
            client.incoming.recv().await,
            Some(ServerMessage::Text("to client".into()))
        );
        drop(server);
        assert_eq!(client.incoming.recv().await, None);
    }
}
