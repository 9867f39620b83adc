//! The client's own ends of a transport: [`Outgoing`], where a caller writes
//! its message, and [`Incoming`], what the router's reader loop reads.
//!
//! Over a [`TransportChannels`] pair (a server in the same process, any
//! user transport) they are the pair's channels, with a task of the
//! transport's on the other side of each. Over the built-in WebSocket and
//! stdio they are the socket or the pipes themselves (`socket`, `lines`):
//! the caller's task writes its message (no writer task to hand it to) and
//! the router's reader loop reads (no reader task between the transport and
//! the router). A request's round trip then wakes one task less on each
//! side, which is most of what the client adds to the server's own latency
//! (issue 14's round-trip figure).

use std::sync::Arc;

use futures_util::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};

use super::limit::IncomingLimit;
use super::lines::{LineReader, LineWriter};
use super::socket::{CloseCode, Socket, SocketReader, SocketWriter};
use super::{Inbound, ServerMessage, TransportChannels};

/// The transport is gone: nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransportGone;

/// Where the client's messages to the server go. Cheap to clone; when the
/// last clone is dropped the transport closes the connection once what was
/// written is out (a WebSocket close frame; the channel's end for a
/// [`TransportChannels`] transport).
#[derive(Debug, Clone)]
pub(crate) enum Outgoing {
    /// A [`TransportChannels`] pair's sending channel.
    Channel(mpsc::Sender<String>),
    /// The WebSocket's sending half, written by the caller's task.
    Socket(Arc<SocketWriter>),
    /// The server's input as lines (stdio), written by the caller's task.
    Lines(Arc<LineWriter>),
}

impl Outgoing {
    /// Sends one message (a complete JSON text). Over a channel it waits
    /// for room; over the WebSocket or the lines of stdio it writes the
    /// message and flushes it. A message is never sent in part: a cancelled
    /// send either sent nothing or leaves the rest of the message to be
    /// written (see `SocketWriter::send`, `LineWriter::send`).
    ///
    /// # Errors
    /// [`TransportGone`] when the transport ended.
    pub(crate) async fn send(&self, text: String) -> Result<(), TransportGone> {
        match self {
            Self::Channel(sender) => sender.send(text).await.map_err(|_| TransportGone),
            Self::Socket(writer) => writer.send(text).await.map_err(|_| TransportGone),
            Self::Lines(writer) => writer.send(text).await.map_err(|_| TransportGone),
        }
    }
}

/// The messages from the server, as the router's reader loop reads them.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A [`TransportChannels`] pair's receiving channel.
    Channel(mpsc::Receiver<ServerMessage>),
    /// The WebSocket's receiving half, read by the reader loop itself.
    Socket(SocketReader),
    /// The server's output as lines (stdio), read by the reader loop itself.
    Lines(LineReader),
}

impl Incoming {
    /// The next message, `None` once the transport ended (the server closed
    /// it, it failed, or a message went over the limit, which the transport
    /// records in its [`IncomingLimit`] first).
    pub(crate) async fn next(&mut self) -> Option<Inbound> {
        match self {
            Self::Channel(receiver) => receiver.recv().await.map(Inbound::from),
            Self::Socket(reader) => reader.next().await,
            Self::Lines(reader) => reader.next().await.map(Inbound::Text),
        }
    }
}

/// The two ends of a transport as the client uses them.
#[derive(Debug)]
pub(crate) struct Link {
    /// Where messages to the server go.
    pub outgoing: Outgoing,
    /// The messages from the server.
    pub incoming: Incoming,
}

impl Link {
    /// The client's ends of an open WebSocket `socket`, reading under
    /// `limit` and recording the server's close code in `close_code`.
    pub(crate) fn websocket(
        socket: Socket,
        limit: Arc<IncomingLimit>,
        close_code: Arc<CloseCode>,
    ) -> Self {
        let (sink, stream) = socket.split();
        Self {
            outgoing: Outgoing::Socket(Arc::new(SocketWriter::new(sink))),
            incoming: Incoming::Socket(SocketReader::new(stream, limit, close_code)),
        }
    }

    /// The client's ends of a line transport (stdio): `reader` is the
    /// server's output, `writer` its input; lines are held to `limit`.
    pub(crate) fn lines(
        reader: Box<dyn AsyncRead + Unpin + Send>,
        writer: Box<dyn AsyncWrite + Unpin + Send>,
        limit: Arc<IncomingLimit>,
    ) -> Self {
        Self {
            outgoing: Outgoing::Lines(Arc::new(LineWriter::new(writer))),
            incoming: Incoming::Lines(LineReader::new(reader, limit)),
        }
    }

    /// A [`TransportChannels`] pair for callers of the public transport
    /// functions: a task per direction moves messages between the channels
    /// and this link (the writer closes the link once the channel's senders
    /// are all gone, or stops once the reader ended).
    pub(crate) fn into_channels(self, capacity: usize) -> TransportChannels {
        let (outgoing, mut to_send) = mpsc::channel::<String>(capacity);
        let (received, incoming) = mpsc::channel(capacity);
        let (reader_done, mut reader_gone) = oneshot::channel::<()>();
        let Self {
            outgoing: link_out,
            incoming: mut link_in,
        } = self;
        tokio::spawn(async move {
            // Dropping `reader_done` when this task ends tells the writer.
            let _reader_done = reader_done;
            while let Some(message) = link_in.next().await {
                if received.send(ServerMessage::from(message)).await.is_err() {
                    return;
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    message = to_send.recv() => message,
                    // The connection is gone: nothing more can be delivered.
                    _ = &mut reader_gone => return,
                };
                let Some(message) = message else { break };
                if link_out.send(message).await.is_err() {
                    return;
                }
            }
            // Dropping `link_out` (the last clone) closes the connection.
        });
        TransportChannels { outgoing, incoming }
    }
}

impl From<TransportChannels> for Link {
    fn from(channels: TransportChannels) -> Self {
        Self {
            outgoing: Outgoing::Channel(channels.outgoing),
            incoming: Incoming::Channel(channels.incoming),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use futures_util::SinkExt as _;
    use pretty_assertions::assert_eq;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
    use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

    use super::*;

    /// A link to a fresh tungstenite server on loopback, and the server's end.
    async fn linked(
        limit: &Arc<IncomingLimit>,
    ) -> (Link, Arc<CloseCode>, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}", listener.local_addr().expect("address"));
        let accepting = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("accept");
            tokio_tungstenite::accept_async(stream)
                .await
                .expect("upgrade")
        });
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect");
        let server = accepting.await.expect("accepted");
        let close_code = Arc::new(CloseCode::default());
        let link = Link::websocket(socket, limit.clone(), close_code.clone());
        (link, close_code, server)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_each_send_whole_frames_and_the_last_drop_closes() {
        let (link, _, mut server) = linked(&Arc::new(IncomingLimit::new(1 << 20))).await;
        let outgoing = link.outgoing;
        let senders: Vec<_> = (0..64)
            .map(|caller| {
                let outgoing = outgoing.clone();
                tokio::spawn(async move {
                    for message in 0..16 {
                        let text = format!("{caller}:{message}:{}", "x".repeat(caller * 100));
                        outgoing.send(text).await.expect("sent");
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await.expect("sender");
        }
        drop(outgoing);
        let mut seen = BTreeSet::new();
        loop {
            match server.next().await {
                Some(Ok(Message::Text(text))) => {
                    let mut fields = text.split(':');
                    let caller: usize = fields.next().and_then(|f| f.parse().ok()).expect("caller");
                    let message: usize = fields.next().and_then(|f| f.parse().ok()).expect("n");
                    assert_eq!(
                        fields.next().map(str::len),
                        Some(caller * 100),
                        "whole frame"
                    );
                    assert!(seen.insert((caller, message)), "sent once");
                }
                Some(Ok(Message::Close(_))) => break,
                other => panic!("expected text frames then a close frame, got {other:?}"),
            }
        }
        assert_eq!(seen.len(), 64 * 16);
    }

    #[tokio::test]
    async fn the_reader_records_the_close_code_and_ends() {
        let (link, close_code, mut server) = linked(&Arc::new(IncomingLimit::new(1 << 20))).await;
        let mut incoming = link.incoming;
        server.send(Message::text("hello")).await.expect("sent");
        server
            .send(Message::Close(Some(CloseFrame {
                code: WsCloseCode::Library(4000),
                reason: Utf8Bytes::from_static("resumed"),
            })))
            .await
            .expect("closed");
        assert_eq!(
            incoming.next().await,
            Some(Inbound::Text(String::from("hello")))
        );
        assert_eq!(incoming.next().await, None);
        assert_eq!(close_code.get(), Some(4000));
        assert_eq!(incoming.next().await, None, "not read past its end");
    }

    #[tokio::test]
    async fn a_message_over_the_limit_ends_the_reader_and_is_recorded() {
        // The reader checks each message against the limit itself (as after
        // `initialize` lowered it).
        let limit = Arc::new(IncomingLimit::new(16));
        let (link, _, mut server) = linked(&limit).await;
        let mut incoming = link.incoming;
        server
            .send(Message::text("x".repeat(16)))
            .await
            .expect("sent");
        server
            .send(Message::text("x".repeat(17)))
            .await
            .expect("sent");
        assert_eq!(incoming.next().await, Some(Inbound::Text("x".repeat(16))));
        assert_eq!(
            tokio::time::timeout(Duration::from_secs(10), incoming.next()).await,
            Ok(None)
        );
        assert_eq!(limit.exceeded(), Some((17, 16)));
    }
}
