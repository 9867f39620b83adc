//! WebSocket (tokio-tungstenite): one JSON message per text frame, as
//! `exec-server serve --listen ws://IP:PORT` speaks it, over TLS for
//! `wss://` (see `tls`). Binary messages go to the router as they are: a
//! binary output frame (the schema's `x-binaryFrames`) once `initialize`
//! granted `binaryOutput`, or UTF-8 JSON from a server that sends its text
//! that way; pings are answered by tungstenite.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_tungstenite::tungstenite::Error as WebSocketError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::limit::{DEFAULT_MAX_INCOMING_MESSAGE_BYTES, IncomingLimit};
use super::link::Link;
use super::socket::CloseCode;
use super::tls;
use super::{TRANSPORT_CAPACITY, TransportChannels};
use crate::error::ClientError;

/// How many bytes one read from the socket asks for. tungstenite zeroes
/// that much of its buffer before every read (128 KiB by default, a few
/// microseconds each); 32 KiB keeps a response's read cheap and still
/// takes output in large reads.
const READ_BUFFER_BYTES: usize = 32 * 1024;

/// Opens a WebSocket connection to `url` (`ws://HOST:PORT`, or
/// `wss://HOST:PORT` verified against the CA file in
/// [`CA_FILE_ENV`](crate::CA_FILE_ENV) when set, else the system's roots),
/// sending `token` as `Authorization: Bearer TOKEN` when given, and returns
/// it as a transport. Spawns one task per direction (the client's own
/// connections use the socket directly, see `link`).
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
    let (link, _close_code) =
        limited_websocket_transport(url, token, None, connect_timeout, limit).await?;
    Ok(link.into_channels(TRANSPORT_CAPACITY))
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

/// [`websocket_transport`] as the client's own [`Link`] (no task between the
/// socket and the client), with the cap on one incoming message shared with
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
) -> Result<(Link, Arc<CloseCode>), ClientError> {
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
        .max_frame_size(Some(limit.bytes()))
        .read_buffer_size(READ_BUFFER_BYTES);
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

    let close_code = Arc::new(CloseCode::default());
    Ok((
        Link::websocket(socket, limit, close_code.clone()),
        close_code,
    ))
}
