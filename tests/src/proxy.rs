//! The validating WebSocket proxy: every client connection gets its own
//! upstream connection; frames are forwarded unchanged both ways and each is
//! validated on the way; each violation becomes one JSON line in a
//! [`ViolationSink`].
//!
//! The upstream connection is opened while the client's upgrade request is
//! being answered, with the client's `Authorization` and `Origin` headers,
//! so the upstream's refusal (HTTP 401, 403) reaches the client as is.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::schema::{Direction, ProtocolSchema};
use crate::validator::{ConnectionValidator, Frame, Violation};

/// Environment variable the SDK test harnesses read: the path of this
/// proxy's binary; when set, they put the proxy in front of their servers.
pub const PROXY_ENV: &str = "EXEC_CONFORMANCE_PROXY";

/// Environment variable naming the file violations are appended to, when
/// `--violations` is not given.
pub const VIOLATIONS_ENV: &str = "EXEC_CONFORMANCE_VIOLATIONS";

/// Where violations go: one JSON object per line.
pub enum ViolationSink {
    /// Appended to a file (several proxies may share it: each line is one write).
    File(Mutex<File>),
    /// Written to stderr.
    Stderr,
}

impl ViolationSink {
    /// Appends to `path`, creating it if needed.
    pub fn append_to(path: &Path) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self::File(Mutex::new(file)))
    }

    /// Writes one record as a JSON line. A sink that cannot be written to is
    /// reported on stderr, so the violation is not lost silently.
    pub fn record(&self, record: &impl Serialize) {
        let mut line = serde_json::to_string(record).unwrap_or_else(|error| {
            format!("{{\"rule\":\"unserializable\",\"detail\":\"{error}\"}}")
        });
        line.push('\n');
        let written = match self {
            Self::File(file) => file
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(line.as_bytes()),
            Self::Stderr => std::io::stderr().write_all(line.as_bytes()),
        };
        if let Err(error) = written {
            eprintln!("conformance-proxy: cannot record a violation ({error}): {line}");
        }
    }
}

/// One violation line: the connection it happened on, then the violation.
#[derive(Serialize)]
struct ViolationRecord<'a> {
    /// The proxy's number for the client connection, from 1.
    connection: u64,
    /// The client's address.
    client: String,
    #[serde(flatten)]
    violation: &'a Violation,
}

/// What every connection of a proxy shares.
pub struct Proxy {
    /// The server's URL, `ws://HOST:PORT`.
    upstream: String,
    /// The compiled schema.
    schema: Arc<ProtocolSchema>,
    /// Where violations go.
    sink: ViolationSink,
    /// Numbers client connections for the violation records.
    connections: AtomicU64,
}

impl Proxy {
    /// A proxy to `upstream` validating against `schema`.
    pub fn new(upstream: String, schema: Arc<ProtocolSchema>, sink: ViolationSink) -> Self {
        Self {
            upstream,
            schema,
            sink,
            connections: AtomicU64::new(0),
        }
    }

    /// Accepts client connections on `listener` forever, each on its own task.
    /// Needs the multi-threaded runtime (the upstream handshake runs inside
    /// the client's, with `block_in_place`).
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, client)) => {
                    let proxy = self.clone();
                    tokio::spawn(async move {
                        if let Err(error) = proxy.handle(stream, client).await {
                            eprintln!("conformance-proxy: connection from {client}: {error:#}");
                        }
                    });
                }
                Err(error) => eprintln!("conformance-proxy: accept failed: {error}"),
            }
        }
    }

    // The handshake callback's error type is tungstenite's HTTP response.
    #[allow(clippy::result_large_err)]
    async fn handle(self: Arc<Self>, stream: TcpStream, client: SocketAddr) -> Result<()> {
        let number = self.connections.fetch_add(1, Ordering::Relaxed) + 1;
        let config = unlimited();
        let upstream_slot: Arc<Mutex<Option<Upstream>>> = Arc::default();
        let callback = {
            let slot = upstream_slot.clone();
            let url = self.upstream.clone();
            move |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
                let upstream = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(connect_upstream(&url, request))
                })?;
                *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(upstream);
                Ok(response)
            }
        };
        let client_socket =
            tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config))
                .await
                .context("the client's WebSocket upgrade")?;
        let upstream = upstream_slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .context("the upstream connection")?;
        let validator = Arc::new(Mutex::new(ConnectionValidator::new(self.schema.clone())));
        let (client_sink, client_stream) = client_socket.split();
        let (upstream_sink, upstream_stream) = upstream.split();
        let to_server = self.clone().pump(
            client_stream,
            upstream_sink,
            Direction::ClientToServer,
            validator.clone(),
            (number, client),
        );
        let to_client = self.clone().pump(
            upstream_stream,
            client_sink,
            Direction::ServerToClient,
            validator,
            (number, client),
        );
        tokio::join!(to_server, to_client);
        Ok(())
    }

    /// Forwards frames from `from` to `to`, validating each; when `from`
    /// ends, closes `to`, which ends the other direction in turn.
    async fn pump<S, K>(
        self: Arc<Self>,
        mut from: S,
        mut to: K,
        direction: Direction,
        validator: Arc<Mutex<ConnectionValidator>>,
        (connection, client): (u64, SocketAddr),
    ) where
        S: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
        K: futures_util::Sink<Message, Error = WsError> + Unpin,
    {
        while let Some(Ok(message)) = from.next().await {
            let frame = match &message {
                Message::Text(text) => Some(Frame::Text(text.as_str())),
                Message::Binary(bytes) => Some(Frame::Binary(bytes)),
                Message::Close(_) => {
                    let _ = to.send(message).await;
                    break;
                }
                // tungstenite answers pings itself on each side.
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
            };
            if let Some(frame) = frame {
                let checked = validator
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .check(direction, frame);
                for violation in &checked.violations {
                    self.sink.record(&ViolationRecord {
                        connection,
                        client: client.to_string(),
                        violation,
                    });
                }
                if to.send(message).await.is_err() {
                    break;
                }
            }
        }
        let _ = to.close().await;
    }
}

type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens the upstream connection for a client's upgrade `request`, with its
/// `Authorization` and `Origin`; the upstream's HTTP refusal is passed back.
#[allow(clippy::result_large_err)] // The error is the HTTP response the client gets.
async fn connect_upstream(url: &str, request: &Request) -> Result<Upstream, ErrorResponse> {
    let mut upstream_request = url.into_client_request().map_err(|error| {
        refusal(
            StatusCode::BAD_GATEWAY,
            format!("bad upstream URL: {error}"),
        )
    })?;
    for name in [header::AUTHORIZATION, header::ORIGIN] {
        if let Some(value) = request.headers().get(&name) {
            upstream_request.headers_mut().insert(name, value.clone());
        }
    }
    match tokio_tungstenite::connect_async_with_config(upstream_request, Some(unlimited()), false)
        .await
    {
        Ok((socket, _)) => Ok(socket),
        Err(WsError::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|body| String::from_utf8_lossy(body).into_owned());
            let mut refused = ErrorResponse::new(body);
            *refused.status_mut() = response.status();
            Err(refused)
        }
        Err(error) => Err(refusal(
            StatusCode::BAD_GATEWAY,
            format!("upstream {url}: {error}"),
        )),
    }
}

fn refusal(status: StatusCode, message: String) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(message));
    *response.status_mut() = status;
    response
}

/// No size limits: the proxy passes on whatever the peers allow.
fn unlimited() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(None)
        .max_frame_size(None)
}

/// The `HOST:PORT` of a `ws://HOST:PORT` listen URL (a trailing `/` allowed).
pub fn listen_authority(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("ws://")
        .with_context(|| format!("`{url}` is not a ws:// URL"))?;
    Ok(rest.trim_end_matches('/'))
}
