//! WebSocket (tokio-tungstenite): one JSON message per text frame; binary
//! frames holding UTF-8 JSON are accepted too; pings are answered by
//! tungstenite. The upgrade enforces the listener's security rules
//! (protocol.md, "Security of the WebSocket listener").

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::config::ServerConfig;
use crate::connection::Connection;
use crate::error::PARSE_ERROR;

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
}

impl AccessPolicy {
    /// Checks an upgrade request: `Err` is the HTTP response that refuses it.
    #[allow(clippy::result_large_err)] // The type is tungstenite's callback contract.
    fn check(&self, request: &Request) -> Result<(), ErrorResponse> {
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

fn refusal(status: StatusCode, reason: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(reason.to_owned()));
    *response.status_mut() = status;
    response
}

/// Accepts connections on `listener` until the task is dropped, serving each
/// on its own task.
pub async fn serve(listener: TcpListener, config: Arc<ServerConfig>, policy: Arc<AccessPolicy>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let config = config.clone();
                let policy = policy.clone();
                tokio::spawn(async move { serve_connection(stream, peer, config, policy).await });
            }
            Err(error) => {
                // Out of file descriptors or a reset before accept: the
                // listener itself is fine, so keep accepting.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

// The upgrade callback must return tungstenite's (large) `ErrorResponse`.
#[allow(clippy::result_large_err)]
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    config: Arc<ServerConfig>,
    policy: Arc<AccessPolicy>,
) {
    let _ = stream.set_nodelay(true);
    // tungstenite drops the connection on a frame over its limit; allow twice
    // ours so that a message just over our limit still gets a JSON-RPC error.
    let ws_config = WebSocketConfig::default()
        .max_message_size(Some(config.max_message_bytes.saturating_mul(2)))
        .max_frame_size(Some(config.max_message_bytes.saturating_mul(2)));
    let callback = |request: &Request, response: Response| match policy.check(request) {
        Ok(()) => Ok(response),
        Err(refused) => {
            tracing::info!(%peer, status = %refused.status(), "refused a WebSocket upgrade");
            Err(refused)
        }
    };
    let socket =
        match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(ws_config))
            .await
        {
            Ok(socket) => socket,
            Err(error) => {
                tracing::debug!(%peer, %error, "WebSocket handshake failed");
                return;
            }
        };
    tracing::debug!(%peer, "connection opened");
    let (mut sink, mut frames) = socket.split();
    let (outbox, mut queue) = mpsc::channel::<String>(config.outbox_capacity);
    let writer = tokio::spawn(async move {
        while let Some(message) = queue.recv().await {
            if sink
                .feed(Message::Text(Utf8Bytes::from(message)))
                .await
                .is_err()
            {
                return;
            }
            while let Ok(message) = queue.try_recv() {
                if sink
                    .feed(Message::Text(Utf8Bytes::from(message)))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let connection = Connection::new(config, outbox);
    while let Some(frame) = frames.next().await {
        match frame {
            Ok(Message::Text(text)) => connection.handle_message(text.as_str()).await,
            Ok(Message::Binary(bytes)) => match std::str::from_utf8(&bytes) {
                Ok(text) => connection.handle_message(text).await,
                Err(error) => {
                    let message = format!("parse error: the binary frame is not UTF-8 ({error})");
                    connection.reply_error(PARSE_ERROR, &message).await;
                }
            },
            Ok(Message::Close(_)) => break,
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
            Err(error) => {
                tracing::debug!(%peer, %error, "connection failed");
                break;
            }
        }
    }
    tracing::debug!(%peer, "connection closed");
    connection.close().await;
    drop(connection);
    writer.abort();
}
