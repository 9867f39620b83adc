//! The HTTP clients `http/request` shares, one per redirect policy, and
//! what their errors become.
//!
//! A client is built once, on first use, and kept: building one reads the
//! system's trusted roots from disk, and a shared client reuses its
//! connection pool. Timeouts are per request, so they need no client of
//! their own.

use std::error::Error as _;
use std::sync::OnceLock;

use exec_protocol::HttpRedirectPolicy;

use crate::error::ServerError;

/// Most redirects followed in a row before the request fails with
/// `httpFailed` (the HTTP client's usual limit, which Codex keeps too).
pub(super) const MAX_REDIRECTS: usize = 10;

/// The client for `policy`, built on first use.
///
/// Errors: `io` (internal) when the client cannot be built (no TLS backend,
/// unreadable trusted roots), which no request can then fix.
pub(super) fn shared(policy: HttpRedirectPolicy) -> Result<&'static reqwest::Client, ServerError> {
    static FOLLOW: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static STOP: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let (cell, redirect) = match policy {
        HttpRedirectPolicy::Follow => (&FOLLOW, reqwest::redirect::Policy::limited(MAX_REDIRECTS)),
        HttpRedirectPolicy::Stop => (&STOP, reqwest::redirect::Policy::none()),
    };
    cell.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(redirect)
            .build()
            .map_err(|error| describe(&error))
    })
    .as_ref()
    .map_err(|message| ServerError::Internal(format!("cannot build the HTTP client: {message}")))
}

/// What a failed request becomes: `httpTimeout` when the client's own
/// `timeoutMs` ran out, `httpFailed` otherwise (Codex answers both with
/// its internal error, -32603).
pub(super) fn failure(error: &reqwest::Error, timeout_ms: Option<u64>) -> ServerError {
    match timeout_ms {
        Some(timeout_ms) if error.is_timeout() => ServerError::HttpTimeout { timeout_ms },
        _ => ServerError::HttpFailed {
            message: describe(error),
        },
    }
}

/// `error` and its causes, outermost first: the HTTP client's own text
/// ("error sending request") says little without the OS error under it.
pub(super) fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
