//! WebSocket (tokio-tungstenite): one JSON message per text frame, as
//! `exec-server serve --listen ws://IP:PORT` speaks it, over TLS for
//! `wss://` (see `tls`). Binary messages go to the router as they are: a
//! binary output frame (the schema's `x-binaryFrames`) once `initialize`
//! granted `binaryOutput`, or UTF-8 JSON from a server that sends its text
//! that way; pings are answered by tungstenite.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WebSocketError, Message, Utf8Bytes};

use super::limit::{DEFAULT_MAX_INCOMING_MESSAGE_BYTES, IncomingLimit};
use super::tls;
use super::{ServerMessage, TRANSPORT_CAPACITY, TransportChannels};
use crate::error::ClientError;

/// Opens a WebSocket connection to `url` (`ws://HOST:PORT`, or
/// `wss://HOST:PORT` verified against the CA file in
/// [`CA_FILE_ENV`](crate::CA_FILE_ENV) when set, else the system's roots),
/// sending `token` as `Authorization: Bearer TOKEN` when given, and returns
/// it as a transport. Spawns one task per direction.
///
/// A message or frame from the server larger than 256 MiB ends the
/// connection without being read into memory
/// ([`ExecClient::connect_websocket`](crate::ExecClient::connect_websocket)
/// takes the cap from [`ConnectOptions::max_incoming_message_bytes`](crate::ConnectOptions::max_incoming_message_bytes)
/// and reports a breach as [`ClientError::IncomingMessageTooLarge`]).
///
/// # Errors
/// [`ClientError::Connect`] when the URL is invalid, the TCP connect, the
/// TLS handshake or the upgrade fails (HTTP 401 for a wrong token, 403 for a
/// refused origin); [`ClientError::Tls`] when the CA file or the system's
/// roots cannot be used;
/// [`ClientError::Timeout`] when it takes longer than `connect_timeout`;
/// [`ClientError::InvalidInput`] when the token is not a valid header value.
pub async fn websocket_transport(
    url: &str,
    token: Option<&str>,
    connect_timeout: Duration,
) -> Result<TransportChannels, ClientError> {
    let limit = Arc::new(IncomingLimit::new(DEFAULT_MAX_INCOMING_MESSAGE_BYTES));
    let (channels, _close_code) =
        limited_websocket_transport(url, token, None, connect_timeout, limit).await?;
    Ok(channels)
}

/// A failed connect as the caller should read it: what TLS went wrong
/// with, or the server's reason for a 400 (the body of its answer, e.g.
/// that it speaks TLS), else tungstenite's error. Other statuses say enough
/// (401, 403) and keep the error's text as it was.
fn describe_failure(url: &str, error: WebSocketError) -> Box<dyn std::error::Error + Send + Sync> {
    if let Some(explained) = tls::explain_failure(url, &error) {
        return explained.into();
    }
    if let WebSocketError::Http(response) = &error
        && response.status() == tokio_tungstenite::tungstenite::http::StatusCode::BAD_REQUEST
    {
        let body = response
            .body()
            .as_deref()
            .and_then(|body| std::str::from_utf8(body).ok())
            .map(str::trim)
            .filter(|body| !body.is_empty());
        if let Some(body) = body {
            return format!("{error}: {body}").into();
        }
    }
    Box::new(error)
}

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
}

/// [`websocket_transport`] with the cap on one incoming message shared with
/// the client, which lowers it after `initialize` and reports a breach, and
/// where the code of the server's close frame will be recorded; a `wss://`
/// server is verified against `ca_file` when given.
///
/// # Errors
/// As [`websocket_transport`].
pub(crate) async fn limited_websocket_transport(
    url: &str,
    token: Option<&str>,
    ca_file: Option<&Path>,
    connect_timeout: Duration,
    limit: Arc<IncomingLimit>,
) -> Result<(TransportChannels, Arc<CloseCode>), ClientError> {
    let connect_error = |source: Box<dyn std::error::Error + Send + Sync>| ClientError::Connect {
        url: url.to_owned(),
        source,
    };
    let mut request = url
        .into_client_request()
        .map_err(|error| connect_error(Box::new(error)))?;
    if let Some(token) = token {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            ClientError::InvalidInput(String::from("the token is not a valid HTTP header value"))
        })?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    // tungstenite refuses a frame by its header and a message as its frames
    // add up, so neither is buffered past the cap. The cap fixed here is the
    // one before `initialize`; the reader checks the lowered one after.
    let config = WebSocketConfig::default()
        .max_message_size(Some(limit.bytes()))
        .max_frame_size(Some(limit.bytes()));
    let connector = tls::connector(url, ca_file)?;
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector),
    );
    let (socket, _response) = tokio::time::timeout(connect_timeout, connecting)
        .await
        .map_err(|_| ClientError::Timeout {
            what: format!("the WebSocket connection to {url}"),
        })?
        .map_err(|error| connect_error(describe_failure(url, error)))?;

    let (mut sink, mut stream) = socket.split();
    let (outgoing, mut to_send) = mpsc::channel::<String>(TRANSPORT_CAPACITY);
    let (received, incoming) = mpsc::channel(TRANSPORT_CAPACITY);
    let (reader_done, mut reader_gone) = oneshot::channel::<()>();
    let close_code = Arc::new(CloseCode::default());
    let record_close = close_code.clone();

    tokio::spawn(async move {
        // Dropping `reader_done` when this task ends tells the writer.
        let _reader_done = reader_done;
        while let Some(frame) = stream.next().await {
            let message = match frame {
                Ok(Message::Text(text)) => ServerMessage::Text(text.as_str().to_owned()),
                // Decoded by the router, which knows binary output frames
                // from JSON and reports a frame it cannot read.
                Ok(Message::Binary(bytes)) => ServerMessage::Binary(bytes.into()),
                Ok(Message::Close(frame)) => {
                    if let Some(frame) = frame {
                        let _ = record_close.0.set(u16::from(frame.code));
                    }
                    return;
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Err(WebSocketError::Capacity(CapacityError::MessageTooLong { size, max_size })) => {
                    tracing::error!(
                        size,
                        max_size,
                        "the server sent a message over the client's limit; closing the connection"
                    );
                    limit.record_exceeded(size, max_size);
                    return;
                }
                Err(error) => {
                    tracing::debug!(%error, "the WebSocket connection failed");
                    return;
                }
            };
            let cap = limit.bytes();
            let size = match &message {
                ServerMessage::Text(text) => text.len(),
                ServerMessage::Binary(bytes) => bytes.len(),
            };
            if size > cap {
                tracing::error!(
                    size,
                    cap,
                    "the server sent a message over the client's limit; closing the connection"
                );
                limit.record_exceeded(size, cap);
                return;
            }
            if received.send(message).await.is_err() {
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
            if let Err(error) = sink.send(Message::Text(Utf8Bytes::from(message))).await {
                tracing::debug!(%error, "sending to the server failed; the connection is ending");
                return;
            }
        }
        // The client is done: a close frame ends the connection cleanly.
        let _ = sink.close().await;
    });

    Ok((TransportChannels { outgoing, incoming }, close_code))
}
