//! The client's WebSocket, used directly by the client's tasks: callers
//! write their frames through [`SocketWriter`] and the router's reader loop
//! reads through [`SocketReader`] (see `link`).

use std::sync::{Arc, OnceLock};
use std::task::{Context, Waker};

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::{Error as WebSocketError, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::Inbound;
use super::limit::IncomingLimit;
use super::spawn_cleanup;

/// Writing failed: the connection is ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteFailed;

/// The code of the close frame the server ended the connection with, if it
/// sent one: the reconnect supervisor tells a session another connection
/// took over (4000) from a drop by it.
#[derive(Debug, Default)]
pub(crate) struct CloseCode(OnceLock<u16>);

impl CloseCode {
    /// The code, once the server's close frame was read.
    pub(crate) fn get(&self) -> Option<u16> {
        self.0.get().copied()
    }

    /// Records the code of the server's close frame (the first one counts).
    pub(crate) fn record(&self, code: u16) {
        let _ = self.0.set(code);
    }
}

/// The client's WebSocket.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The WebSocket's sending half, shared by every caller (one frame at a
/// time, under an async lock). Dropping the last one closes the connection
/// with a close frame, from a task of its own.
#[derive(Debug)]
pub(crate) struct SocketWriter {
    /// The sink, shared with the closing task.
    sink: Arc<Mutex<SplitSink<Socket, Message>>>,
}

impl SocketWriter {
    /// The writer of `sink`.
    pub(crate) fn new(sink: SplitSink<Socket, Message>) -> Self {
        Self {
            sink: Arc::new(Mutex::new(sink)),
        }
    }

    /// Writes `text` as one text frame and flushes it.
    ///
    /// A send cancelled before tungstenite took the frame sends nothing. One
    /// cancelled after (while flushing) leaves the frame in tungstenite's
    /// buffer whole; a task of its own then flushes it, so a message a caller
    /// gave up on still goes out whole rather than waiting for the next.
    ///
    /// # Errors
    /// [`WriteFailed`] when writing failed (the connection is ending).
    pub(crate) async fn send(&self, text: String) -> Result<(), WriteFailed> {
        let mut sink = self.sink.lock().await;
        if let Err(error) = sink.feed(Message::Text(Utf8Bytes::from(text))).await {
            tracing::debug!(%error, "sending to the server failed; the connection is ending");
            return Err(WriteFailed);
        }
        let mut pending = FlushOnDrop {
            sink: Some(self.sink.clone()),
        };
        let flushed = sink.flush().await;
        pending.sink = None;
        flushed.map_err(|error| {
            tracing::debug!(%error, "sending to the server failed; the connection is ending");
            WriteFailed
        })?;
        forget_waker(&mut sink);
        Ok(())
    }
}

impl Drop for SocketWriter {
    fn drop(&mut self) {
        let sink = self.sink.clone();
        spawn_cleanup(async move {
            let _ = sink.lock().await.close().await;
        });
    }
}

/// Leaves a waker that does nothing where the caller's was, once its frame
/// is out. tokio-tungstenite wakes the waker of the last write on every
/// read as well (its stream and sink share the socket's wakers), so a
/// caller that wrote would be woken again by the response the router reads
/// (a wake-up for nothing, which costs another worker thread's wake-up).
/// Nothing is buffered after a completed flush, so no write waits for this
/// waker; the next write registers its own. A sink the reader holds just
/// then is left alone.
fn forget_waker(sink: &mut SplitSink<Socket, Message>) {
    let mut context = Context::from_waker(Waker::noop());
    let _ = sink.poll_flush_unpin(&mut context);
}

/// Finishes a flush its caller stopped waiting for.
struct FlushOnDrop {
    /// Set while the flush is under way.
    sink: Option<Arc<Mutex<SplitSink<Socket, Message>>>>,
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        let Some(sink) = self.sink.take() else {
            return;
        };
        spawn_cleanup(async move {
            let _ = sink.lock().await.flush().await;
        });
    }
}

/// The WebSocket's receiving half, with the cap on one message and where
/// the server's close code goes.
#[derive(Debug)]
pub(crate) struct SocketReader {
    /// The frames.
    stream: SplitStream<Socket>,
    /// The cap on one message, and where a breach is recorded.
    limit: Arc<IncomingLimit>,
    /// Where the server's close code is recorded.
    close_code: Arc<CloseCode>,
    /// Set once the transport ended, so it is not read past its end.
    ended: bool,
}

impl SocketReader {
    /// The reader of `stream`, holding a message to `limit` and recording
    /// the server's close code in `close_code`.
    pub(crate) fn new(
        stream: SplitStream<Socket>,
        limit: Arc<IncomingLimit>,
        close_code: Arc<CloseCode>,
    ) -> Self {
        Self {
            stream,
            limit,
            close_code,
            ended: false,
        }
    }

    /// The next message: a text frame, or a binary message as it came (a
    /// binary output frame, or UTF-8 JSON from a server that sends its text
    /// that way, which the router tells apart). Pings are answered by
    /// tungstenite. `None` once the connection ended (and after that): a
    /// close frame (its code recorded), an error, or a message over the cap
    /// (recorded).
    pub(crate) async fn next(&mut self) -> Option<Inbound> {
        if self.ended {
            return None;
        }
        let text = self.read().await;
        self.ended = text.is_none();
        text
    }

    async fn read(&mut self) -> Option<Inbound> {
        loop {
            let message = match self.stream.next().await? {
                Ok(Message::Text(text)) => Inbound::Text(text.as_str().to_owned()),
                Ok(Message::Binary(bytes)) => Inbound::Binary(bytes),
                Ok(Message::Close(frame)) => {
                    if let Some(frame) = frame {
                        self.close_code.record(u16::from(frame.code));
                    }
                    return None;
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(WebSocketError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                    tracing::error!(
                        size,
                        max_size,
                        "the server sent a message over the client's limit; closing the connection"
                    );
                    self.limit.record_exceeded(size, max_size);
                    return None;
                }
                Err(error) => {
                    tracing::debug!(%error, "the WebSocket connection failed");
                    return None;
                }
            };
            let cap = self.limit.bytes();
            let size = match &message {
                Inbound::Text(text) => text.len(),
                Inbound::Binary(bytes) => bytes.len(),
            };
            if size > cap {
                tracing::error!(
                    size,
                    cap,
                    "the server sent a message over the client's limit; closing the connection"
                );
                self.limit.record_exceeded(size, cap);
                return None;
            }
            return Some(message);
        }
    }
}
