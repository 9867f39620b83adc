//! The transports: how messages reach a [`Connection`] and how its
//! [`Outgoing`] texts reach the client. Every transport (stdio, WebSocket,
//! the in-process mode) is a [`MessageSource`] and a [`MessageSink`] served
//! by the one [`serve_connection`]: one reader loop, one writer loop (two
//! futures of the connection's one task), the same drain on close.
//! `budget` caps the memory all WebSocket connections together hold in
//! partially received messages; `keepalive` makes the kernel notice a
//! vanished TCP peer; `nonblocking_fd` puts the server's own stdin and
//! stdout on the reactor when it can.
//!
//! The WebSocket listener's layers, outermost first: `tls` (the optional
//! TLS handshake, [`ServerTls`]), `stream` (plain or TLS behind one type),
//! `budget` (reads charged), `request_head` (`GET /readyz` and other
//! requests that are no upgrade), then `ws` (the upgrade and the frames).

mod budget;
mod keepalive;
mod nonblocking_fd;
mod request_head;
pub mod stdio;
mod stream;
mod tls;
pub mod ws;

pub use request_head::READINESS_PATH;
pub use tls::{ServerTls, TlsFilesError};

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::config::ServerConfig;
use crate::connection::{Connection, Outgoing};
pub use crate::rpc::MessageText;
use crate::rpc::{self, BinaryOutput};
use crate::session::Departure;
use crate::shutdown::ShutdownSignal;
use crate::wire_message::WireMessage;

/// How long a closing connection may take to send what is still queued; a
/// client that stopped reading (a full TCP window, a stalled pipe) would
/// otherwise hold the connection, its queues and its task forever.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// The same for a connection whose session lives on (detached, or resumed
/// by another connection): only its responses and a close remain to send,
/// and a writer stuck on a dead socket must soon let go of the session's
/// event queue for the connection that resumes it.
const DETACH_GRACE: Duration = Duration::from_secs(1);

/// Why a connection is closed, for the transport's goodbye.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Farewell {
    /// The client closed it, the server is shutting down, or it failed.
    Normal,
    /// Another connection resumed its session (WebSocket close code 4000,
    /// reason "session resumed by another connection").
    SessionResumed,
    /// The client broke the transport's framing (WebSocket close code 1002).
    ProtocolError,
    /// A message too big for the transport to take in (close code 1009).
    TooBig,
    /// A text message that is not UTF-8 (close code 1007).
    InvalidData,
    /// A message that would take the server's memory for partially
    /// received messages over its budget (close code 1013, "try again later").
    OverBudget,
}

/// What the writer is told when the connection closes.
struct Stop {
    /// Whether the session's queued events are still sent (it ended) or
    /// left for the next connection (it lives on).
    drain_events: bool,
    /// How the sink says goodbye.
    farewell: Farewell,
}

/// One thing a transport read.
pub enum Received {
    /// A complete message text, handed over (the transport keeps no copy).
    Message(MessageText),
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
    fn next(&mut self) -> impl Future<Output = Option<Received>> + Send;

    /// How to say goodbye once [`Self::next`] returned `None`: why reading
    /// ended, when it was the client's fault.
    fn farewell(&self) -> Farewell {
        Farewell::Normal
    }
}

/// Where a connection's outgoing texts go.
pub trait MessageSink: Send + 'static {
    /// Queues one message (a complete JSON text) for sending.
    ///
    /// # Errors
    /// The client is gone; the writer stops.
    fn send(&mut self, text: String) -> impl Future<Output = io::Result<()>> + Send;

    /// Whether the transport carries binary messages, so that `initialize`
    /// may grant binary output frames (WebSocket does; stdio does not).
    fn carries_binary(&self) -> bool {
        false
    }

    /// Queues one binary frame (laid out as the schema's `x-binaryFrames`
    /// says) for sending; only called when [`Self::carries_binary`] is true.
    ///
    /// # Errors
    /// The client is gone; the writer stops. A transport without binary
    /// messages fails with [`io::ErrorKind::Unsupported`].
    fn send_binary(&mut self, frame: Bytes) -> impl Future<Output = io::Result<()>> + Send {
        drop(frame);
        std::future::ready(Err(io::Error::from(io::ErrorKind::Unsupported)))
    }

    /// Sends what is queued; called whenever nothing more is ready, so a
    /// burst of output goes out in few writes.
    ///
    /// # Errors
    /// The client is gone; the writer stops.
    fn flush(&mut self) -> impl Future<Output = io::Result<()>> + Send;

    /// Ends the connection cleanly (a WebSocket close frame, EOF on stdout),
    /// saying why where the transport can.
    fn close(self, farewell: Farewell) -> impl Future<Output = ()> + Send;
}

/// Serves one connection until the client closes it, the server shuts
/// down, or another connection resumes its session; then detaches the
/// session (which ends, killing its processes, when the session TTL is
/// zero), sends what is still queued (for at most [`DRAIN_GRACE`], or
/// [`DETACH_GRACE`] when the session lives on), and closes the sink.
///
/// The reader and the writer are two futures of the caller's one task,
/// the reader polled first on every wake-up: an answer the reader gives
/// within its poll (`Connection::handle_message`) is then written in the
/// same pass, and a socket event that wakes both halves (tokio-tungstenite
/// wakes its sink's and its stream's wakers on every read) wakes one task,
/// not two on two worker threads.
pub async fn serve_connection<S: MessageSource, K: MessageSink>(
    config: Arc<ServerConfig>,
    source: S,
    sink: K,
    shutdown: ShutdownSignal,
) {
    let (connection, outgoing) = Connection::new(config);
    if sink.carries_binary() {
        connection.binary_output().offer();
    }
    let binary_output = connection.binary_output().clone();
    let (stop_writer, stop) = oneshot::channel();
    let reader = read_loop(connection, source, shutdown, stop_writer);
    let writer = write_loop(outgoing, sink, stop, binary_output);
    tokio::pin!(reader, writer);
    let mut writer_done = false;
    let grace = loop {
        tokio::select! {
            biased;
            grace = &mut reader => break grace,
            () = &mut writer, if !writer_done => writer_done = true,
        }
    };
    if !writer_done && tokio::time::timeout(grace, writer).await.is_err() {
        tracing::warn!(
            ?grace,
            "the client stopped reading; dropping what is queued"
        );
    }
}

/// Reads and handles the connection's messages until the client closes it,
/// the server shuts down or another connection resumes its session; then
/// closes the connection, tells the writer how to finish, and says how long
/// the writer may take to.
async fn read_loop<S: MessageSource>(
    connection: Connection,
    mut source: S,
    mut shutdown: ShutdownSignal,
    stop_writer: oneshot::Sender<Stop>,
) -> Duration {
    let superseded = connection.superseded();
    // Made once, not per message: each would register its waiter (a lock)
    // on every pass and take it out again.
    let superseded = superseded.notified();
    let shutting_down = shutdown.recv();
    tokio::pin!(superseded, shutting_down);
    loop {
        let received = tokio::select! {
            received = source.next() => received,
            () = &mut shutting_down => break,
            () = &mut superseded => break,
        };
        match received {
            Some(Received::Message(text)) => connection.handle_message(text).await,
            Some(Received::Unreadable { code, message }) => {
                connection.reply_error(code, &message).await;
            }
            None => break,
        }
    }
    let departure = connection.close().await;
    let ended = departure == Departure::Ended;
    // Told before the connection (the last sender of responses) goes, so a
    // writer that finds the responses closed also finds how to say goodbye.
    let _ = stop_writer.send(Stop {
        drain_events: ended,
        farewell: match departure {
            Departure::Superseded => Farewell::SessionResumed,
            Departure::Ended | Departure::Detached => source.farewell(),
        },
    });
    drop(connection);
    if ended { DRAIN_GRACE } else { DETACH_GRACE }
}

/// Writes the connection's messages to `sink`, flushing whenever nothing
/// more is ready, each `process/output` in the form `binary_output` says
/// (see `rpc::fit_grant`). Once `stop` fires, writes what is already
/// queued, then closes the sink. Ends early when the client is gone.
async fn write_loop<K: MessageSink>(
    mut outgoing: Outgoing,
    mut sink: K,
    mut stop: oneshot::Receiver<Stop>,
    binary_output: Arc<BinaryOutput>,
) {
    let mut stopping = false;
    let mut farewell = Farewell::Normal;
    loop {
        let next = if stopping {
            outgoing.next().await
        } else {
            tokio::select! {
                biased;
                next = outgoing.next() => next,
                stopped = &mut stop => {
                    // A dropped sender means the connection task is gone:
                    // nothing is left to keep the events for.
                    let stopped = stopped.unwrap_or(Stop { drain_events: true, farewell });
                    outgoing.stop(stopped.drain_events);
                    farewell = stopped.farewell;
                    stopping = true;
                    continue;
                }
            }
        };
        let Some(message) = next else {
            // Everything is out; the stop may have come meanwhile unseen.
            if !stopping && let Ok(stopped) = stop.try_recv() {
                farewell = stopped.farewell;
            }
            break;
        };
        if send(&mut sink, message, &binary_output).await.is_err() {
            return;
        }
        while let Some(message) = outgoing.try_next() {
            if send(&mut sink, message, &binary_output).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    sink.close(farewell).await;
}

/// Sends one message as the connection gets it: a `process/output` encoded
/// for another connection's grant (it waited in a resumed session's queue)
/// is re-encoded first.
async fn send<K: MessageSink>(
    sink: &mut K,
    message: WireMessage,
    binary_output: &BinaryOutput,
) -> io::Result<()> {
    match rpc::fit_grant(message, binary_output.is_granted()) {
        Some(WireMessage::Text(text)) => sink.send(text).await,
        Some(WireMessage::Binary(frame)) => sink.send_binary(frame).await,
        None => Ok(()),
    }
}
