//! `http/request`: one HTTP request made from the server's machine, its
//! answer returned whole or its body streamed as `http/request/bodyDelta`
//! notifications (Codex's `http_request.rs`, reimplemented).
//!
//! Memory stays bounded either way. A buffered body is read up to
//! [`max_buffered_body_bytes`] (three quarters of the connection's message
//! limit, so that its base64 fits in one message) and refused with
//! `limitExceeded` past it. A streamed body is read one chunk at a time,
//! and the next chunk only once the previous one's notifications are in
//! the connection's bounded outbox: a client that reads slowly slows the
//! download, never grows the server.
//!
//! # Layout
//! - `mod.rs` (this file): the method's entry point, [`request`].
//! - `client`: the shared HTTP clients (one per redirect policy) and what
//!   their errors become.
//! - `exchange`: checking the params, sending the request, and reading a
//!   buffered body under its cap.
//! - `body_stream`: the task that turns a streamed body into typed deltas of
//!   at most `MAX_BODY_DELTA_BYTES` (1 MiB), seq one-based, the last one `done`.
//! - `streams`: the connection's table of active streams by `requestId`,
//!   which refuses a second stream of one id and aborts them all when the
//!   connection ends.
//!
//! Imports flow one way: `exchange` uses `client`; `body_stream` uses
//! `client` and `streams`; this file uses all of them.

mod body_stream;
mod client;
mod exchange;
mod streams;

use exec_protocol::{HttpRequestParams, HttpRequestResponse};

pub(crate) use body_stream::DeltaSink;
pub(crate) use streams::HttpStreams;

use crate::error::ServerError;

/// Largest buffered body `http/request` returns, in bytes, for a connection
/// whose messages may be `max_message_bytes` long: three quarters of it,
/// which base64 turns into at most the whole message (headers aside).
pub(crate) fn max_buffered_body_bytes(max_message_bytes: usize) -> usize {
    max_message_bytes / 4 * 3
}

/// What `http/request` answers, and for a streamed body what must start
/// once that answer is queued.
pub(crate) struct Outcome {
    /// The result: status, headers, and the body unless streamed.
    pub(crate) response: HttpRequestResponse,
    /// The streamed body, to start (with [`body_stream::Pending::start`])
    /// only after `response` was queued, so that no delta overtakes it.
    pub(crate) pending: Option<body_stream::Pending>,
}

/// Makes the request of `params`. A streamed request reserves its
/// `requestId` in `streams` first and keeps it until its last delta.
///
/// Errors: `invalidParams` for a method, URL (not `http`/`https`) or header
/// that cannot be sent, or a `requestId` still streaming on this
/// connection; `httpFailed` when the request fails or its body breaks off;
/// `httpTimeout` when `timeoutMs` runs out; `limitExceeded` for a buffered
/// body over [`max_buffered_body_bytes`].
pub(crate) async fn request(
    mut params: HttpRequestParams,
    streams: &HttpStreams,
    max_message_bytes: usize,
) -> Result<Outcome, ServerError> {
    let prepared = exchange::prepare(&mut params)?;
    let reservation = if params.stream_response.unwrap_or(false) {
        Some(streams.reserve(&params.request_id)?)
    } else {
        None
    };
    let (response, head) = exchange::send(prepared).await?;
    match reservation {
        Some(reservation) => Ok(Outcome {
            response: head,
            pending: Some(body_stream::Pending::new(
                reservation,
                response,
                params.timeout_ms,
            )),
        }),
        None => {
            let body = exchange::read_body(
                response,
                max_buffered_body_bytes(max_message_bytes),
                params.timeout_ms,
            )
            .await?;
            Ok(Outcome {
                response: HttpRequestResponse {
                    body_base64: exec_protocol::Base64Bytes(body),
                    ..head
                },
                pending: None,
            })
        }
    }
}
