//! WebSocket (tokio-tungstenite): one JSON message per text frame, and each
//! `process/output` as a binary frame once `initialize` grants binary output;
//! binary frames of UTF-8 JSON are accepted too; tungstenite answers pings. The upgrade enforces the listener's security rules
//! (protocol.md, "Security of the WebSocket listener").
//!
//! A new connection goes through, within one deadline
//! (`HANDSHAKE_TIMEOUT`) and one cap on connections doing so
//! (`max_handshakes`): the TLS handshake when the listener has
//! [`ServerTls`], the request head (`request_head`, which answers `GET
//! /readyz` and other requests that are not upgrades), then the upgrade.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::budget::{Charge, ChargedStream, OverBudget, PartialMessageBudget};
use super::keepalive;
use super::request_head::{self, Asked, Replay};
use super::stream::AcceptedStream;
use super::tls::ServerTls;
use super::{Farewell, MessageSink, MessageSource, MessageText, Received, serve_connection};
use crate::config::ServerConfig;
use crate::error::PARSE_ERROR;
use crate::shutdown::{Shutdown, ShutdownSignal};

/// Who may open a connection.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicy {
    /// The connection token every upgrade must carry as `Authorization: Bearer TOKEN`;
    /// `None` lets any client on the listening address in.
    pub token: Option<String>,
    /// `Origin` header values allowed to connect. An upgrade that carries any
    /// other `Origin` (a browser page) gets HTTP 403, which stops cross-site
    /// WebSocket hijacking of a local server.
    pub allowed_origins: Vec<String>,
    /// On a loopback listener, the `Host` names allowed besides loopback
    /// ones (`localhost`, `*.localhost`, loopback addresses); any other
    /// `Host` gets HTTP 403, which stops DNS rebinding (a name that resolved
    /// elsewhere, then to 127.0.0.1). `None` (a non-loopback listener): any `Host`.
    pub allowed_hosts: Option<Vec<String>>,
}

impl AccessPolicy {
    /// Checks an upgrade request: `Err` is the HTTP response that refuses it.
    #[allow(clippy::result_large_err)] // The type is tungstenite's callback contract.
    fn check(&self, request: &Request) -> Result<(), ErrorResponse> {
        // With two values of a header, which one a proxy in front of us
        // checked and which one we would check may differ: refuse both.
        for name in [header::ORIGIN, header::AUTHORIZATION, header::HOST] {
            if request.headers().get_all(&name).iter().nth(1).is_some() {
                return Err(refusal(StatusCode::BAD_REQUEST, "a header given twice"));
            }
        }
        if let Some(allowed_hosts) = &self.allowed_hosts {
            let host = request
                .headers()
                .get(header::HOST)
                .and_then(|host| host.to_str().ok())
                .unwrap_or_default();
            let name = host_name(host);
            if !is_loopback_name(name) && !allowed_hosts.iter().any(|allowed| allowed == name) {
                return Err(refusal(StatusCode::FORBIDDEN, "host not allowed"));
            }
        }
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let allowed = origin
                .to_str()
                .is_ok_and(|origin| self.allowed_origins.iter().any(|allowed| allowed == origin));
            if !allowed {
                return Err(refusal(StatusCode::FORBIDDEN, "origin not allowed"));
            }
        }
        if let Some(token) = &self.token {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !constant_time_eq::constant_time_eq(presented.as_bytes(), token.as_bytes()) {
                return Err(refusal(StatusCode::UNAUTHORIZED, "missing or wrong token"));
            }
        }
        Ok(())
    }
}

/// The name of a `Host` header value, without its port (`[::1]:80` is `::1`).
fn host_name(host: &str) -> &str {
    if let Some(bracketed) = host.strip_prefix('[') {
        return bracketed.split(']').next().unwrap_or_default();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|byte| byte.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Whether `name` can only mean this machine: `localhost` and its
/// subdomains (RFC 6761), or a loopback address.
fn is_loopback_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "localhost"
        || lower.ends_with(".localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// The first wait after a failed `accept`; each further failure in a row
/// doubles it, up to [`MAX_ACCEPT_BACKOFF`] (mini-redis's rule). Out of file
/// descriptors, retrying at once would spin a core and flood the log.
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The longest wait between two failed `accept`s.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(64);

/// The WebSocket close code (in the range RFC 6455 leaves to applications)
/// of a connection whose session another connection resumed.
pub const SESSION_RESUMED_CLOSE_CODE: u16 = 4000;

/// How many bytes one read from a client's socket asks for. tungstenite
/// zeroes that much of its buffer before every read, ready or not (128 KiB
/// by default, a few microseconds per read); clients send mostly small
/// requests, and a big message only takes more reads.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// How long a client has to complete the TLS handshake (if any) and the
/// WebSocket upgrade after its TCP connection was accepted.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections on `listener` until `shutdown` begins, serving each
/// on its own task with a signal of `shutdown`; with `tls`, each connection
/// first does a TLS handshake (`wss://`).
///
/// At most `config.max_handshakes` connections are in their TLS handshake
/// or upgrade at once: the loop accepts no more until one is done (or timed out after
/// [`HANDSHAKE_TIMEOUT`]), so further clients wait in the kernel's listen
/// backlog instead of each holding a socket and a task here. All connections
/// share one budget of `config.max_partial_message_bytes` for partially
/// received messages (see `budget`).
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    policy: Arc<AccessPolicy>,
    tls: Option<ServerTls>,
    shutdown: &Shutdown,
) {
    let mut stopping = shutdown.signal();
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    let handshakes = Arc::new(Semaphore::new(config.max_handshakes.max(1)));
    let budget = PartialMessageBudget::new(config.max_partial_message_bytes);
    loop {
        let permit = tokio::select! {
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                // Never closed; if it were, no more upgrades could be made.
                Err(_) => return,
            },
            () = stopping.recv() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopping.recv() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = FIRST_ACCEPT_BACKOFF;
                let socket = Socket {
                    stream,
                    peer,
                    handshake: permit,
                    charge: budget.charge(),
                };
                let listener = Listener {
                    config: config.clone(),
                    policy: policy.clone(),
                    tls: tls.clone(),
                };
                let signal = shutdown.signal();
                tokio::spawn(async move { serve_socket(socket, listener, signal).await });
            }
            Err(error) if is_out_of_resources(&error) => {
                // Out of file descriptors or memory: the listener itself is
                // fine, so keep accepting after a pause that lets some free.
                tracing::warn!(%error, retry_in = ?backoff, "accepting a connection failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = stopping.recv() => return,
                }
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
            }
            Err(error) => {
                // One connection's own failure (reset or aborted before
                // accept): the next one may be fine.
                tracing::debug!(%error, "accepting a connection failed");
            }
        }
    }
}

/// An accepted socket and what it holds of the listener's limits.
struct Socket {
    /// The connection.
    stream: TcpStream,
    /// The client's address, for logs.
    peer: SocketAddr,
    /// Its place among the upgrades in progress, given back once upgraded.
    handshake: OwnedSemaphorePermit,
    /// Its share of the budget for partially received messages.
    charge: Arc<Charge>,
}

/// What every connection of one listener shares.
struct Listener {
    /// The server's limits.
    config: Arc<ServerConfig>,
    /// Who may upgrade.
    policy: Arc<AccessPolicy>,
    /// The certificate and key when the listener speaks `wss://`.
    tls: Option<ServerTls>,
}

/// Whether an `accept` failed for want of a resource (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM), which retrying at once cannot fix.
fn is_out_of_resources(error: &io::Error) -> bool {
    use nix::errno::Errno;
    error.raw_os_error().is_some_and(|code| {
        [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM]
            .iter()
            .any(|errno| *errno as i32 == code)
    })
}

/// Opens one socket (TLS, request head, upgrade checking the policy) and
/// serves it.
async fn serve_socket(socket: Socket, listener: Listener, mut shutdown: ShutdownSignal) {
    let Socket {
        stream,
        peer,
        handshake: handshake_permit,
        charge,
    } = socket;
    let _ = stream.set_nodelay(true);
    if let Err(error) = keepalive::detect_vanished_peers(&stream) {
        tracing::debug!(%peer, %error, "cannot set TCP keepalive");
    }
    let opening = open(stream, peer, &listener, charge.clone());
    let socket = tokio::select! {
        opened = tokio::time::timeout(HANDSHAKE_TIMEOUT, opening) => match opened {
            Ok(Ok(Some(socket))) => socket,
            // A request that was no upgrade, answered.
            Ok(Ok(None)) => return,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "WebSocket handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, ?HANDSHAKE_TIMEOUT, "WebSocket handshake timed out");
                return;
            }
        },
        () = shutdown.recv() => return,
    };
    drop(handshake_permit);
    // The upgrade request is done with; messages are charged from here on.
    charge.settle();
    tracing::debug!(%peer, "connection opened");
    let (sink, frames) = socket.split();
    let source = FrameSource {
        frames,
        charge,
        peer,
        failure: Farewell::Normal,
    };
    serve_connection(listener.config, source, FrameSink { sink }, shutdown).await;
    tracing::debug!(%peer, "connection closed");
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
enum OpenFailure {
    /// The TLS handshake failed (or the client spoke plain HTTP to it).
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    /// Reading the request head or answering it failed.
    #[error("request: {0}")]
    Request(io::Error),
    /// The upgrade failed or was refused.
    #[error("upgrade: {0}")]
    Upgrade(WsError),
}

/// Takes a connection from accepted to upgraded: the TLS handshake when the
/// listener has TLS, the request head (answering one that is no upgrade,
/// then `Ok(None)`), the upgrade under the listener's policy.
// The upgrade callback must return tungstenite's (large) `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn open(
    stream: TcpStream,
    peer: SocketAddr,
    listener: &Listener,
    charge: Arc<Charge>,
) -> Result<Option<ChargedSocket>, OpenFailure> {
    let stream = match &listener.tls {
        None => AcceptedStream::Plain(stream),
        Some(tls) => match tls.accept(stream).await.map_err(OpenFailure::Tls)? {
            Some(stream) => AcceptedStream::Tls(Box::new(stream)),
            None => return Ok(None),
        },
    };
    let mut stream = ChargedStream::new(stream, charge);
    let head = match request_head::read(&mut stream)
        .await
        .map_err(OpenFailure::Request)?
    {
        Asked::Upgrade(head) => head,
        Asked::Answered => return Ok(None),
    };
    // tungstenite drops the connection on a frame over its limit; allow twice
    // ours so that a message just over our limit still gets a JSON-RPC error.
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(listener.config.max_message_bytes.saturating_mul(2)))
        .max_frame_size(Some(listener.config.max_message_bytes.saturating_mul(2)))
        .read_buffer_size(READ_BUFFER_BYTES);
    let callback = |request: &Request, response: Response| match listener.policy.check(request) {
        Ok(()) => Ok(response),
        Err(refused) => {
            tracing::info!(%peer, status = %refused.status(), "refused a WebSocket upgrade");
            Err(refused)
        }
    };
    let stream = Replay::new(head, stream);
    let socket = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config))
        .await
        .map_err(OpenFailure::Upgrade)?;
    Ok(Some(socket))
}

/// The WebSocket of one connection, its reads charged to the budget.
type ChargedSocket = WebSocketStream<Replay<ChargedStream<AcceptedStream>>>;

/// The bytes of a client's control frame besides its payload: two of
/// header (control payloads are at most 125 bytes, so no extended length)
/// and four of mask.
const CLIENT_CONTROL_FRAME_OVERHEAD: usize = 6;

/// Messages read one per WebSocket frame.
struct FrameSource {
    /// The incoming frames.
    frames: SplitStream<ChargedSocket>,
    /// The connection's share of the partial-message budget, settled at
    /// each complete message.
    charge: Arc<Charge>,
    /// The client's address, for logs.
    peer: SocketAddr,
    /// Why reading failed, when the client broke the framing.
    failure: Farewell,
}

impl MessageSource for FrameSource {
    async fn next(&mut self) -> Option<Received> {
        loop {
            let frame = self.frames.next().await?;
            match &frame {
                // A complete data message (or a close) leaves nothing partial.
                Ok(Message::Text(_) | Message::Binary(_) | Message::Close(_)) => {
                    self.charge.settle();
                }
                // A control frame may sit between the fragments of a message:
                // only its own bytes are released.
                Ok(Message::Ping(payload) | Message::Pong(payload)) => {
                    self.charge
                        .release(payload.len() + CLIENT_CONTROL_FRAME_OVERHEAD);
                }
                Ok(Message::Frame(_)) | Err(_) => {}
            }
            match frame {
                Ok(Message::Text(text)) => return Some(Received::Message(MessageText::new(text))),
                Ok(Message::Binary(bytes)) => match Utf8Bytes::try_from(bytes) {
                    Ok(text) => return Some(Received::Message(MessageText::new(text))),
                    Err(error) => {
                        return Some(Received::Unreadable {
                            code: PARSE_ERROR,
                            message: format!(
                                "parse error: the binary frame is not UTF-8 ({error})"
                            ),
                        });
                    }
                },
                Ok(Message::Close(_)) => return None,
                // tungstenite answers pings itself.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Err(error) => {
                    tracing::debug!(peer = %self.peer, %error, "connection failed");
                    self.failure = match error {
                        WsError::Io(error) if OverBudget::is(&error) => Farewell::OverBudget,
                        WsError::Protocol(_) => Farewell::ProtocolError,
                        WsError::Capacity(_) => Farewell::TooBig,
                        WsError::Utf8(_) => Farewell::InvalidData,
                        _ => Farewell::Normal,
                    };
                    return None;
                }
            }
        }
    }

    fn farewell(&self) -> Farewell {
        self.failure
    }
}

/// Messages written one per text frame, binary output frames one per binary frame.
struct FrameSink {
    /// The outgoing half of the WebSocket.
    sink: SplitSink<ChargedSocket, Message>,
}

impl MessageSink for FrameSink {
    async fn send(&mut self, text: String) -> io::Result<()> {
        let message = Message::Text(Utf8Bytes::from(text));
        self.sink.feed(message).await.map_err(io::Error::other)
    }

    fn carries_binary(&self) -> bool {
        true
    }

    async fn send_binary(&mut self, frame: Bytes) -> io::Result<()> {
        let message = Message::Binary(frame);
        self.sink.feed(message).await.map_err(io::Error::other)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.sink.flush().await.map_err(io::Error::other)
    }

    async fn close(mut self, farewell: Farewell) {
        let frame = |code, reason| CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let frame = match farewell {
            Farewell::Normal => None,
            Farewell::SessionResumed => Some(frame(
                CloseCode::Library(SESSION_RESUMED_CLOSE_CODE),
                "session resumed by another connection",
            )),
            Farewell::ProtocolError => Some(frame(CloseCode::Protocol, "framing error")),
            Farewell::TooBig => Some(frame(CloseCode::Size, "message too big")),
            Farewell::InvalidData => Some(frame(CloseCode::Invalid, "text frame not UTF-8")),
            Farewell::OverBudget => Some(frame(
                CloseCode::Again,
                "the server holds too much of partially received messages",
            )),
        };
        if let Some(frame) = frame {
            let _ = self.sink.send(Message::Close(Some(frame))).await;
        }
        let _ = self.sink.close().await;
    }
}
