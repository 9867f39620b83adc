//! [`ClientError`]: everything a call, a connect or a process handle can fail with.

use std::path::PathBuf;

use exec_protocol::{ErrorKind, WriteStatus};

/// The one error type of this crate.
///
/// A JSON-RPC error from the server is [`ClientError::Server`], with the
/// protocol's machine-readable `data.kind` parsed into [`ErrorKind`]; use
/// [`ClientError::kind`] to branch on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered the request with a JSON-RPC error object.
    #[error("server error {code}{}: {message}", kind.map(|kind| format!(" ({kind})")).unwrap_or_default())]
    Server {
        /// The JSON-RPC error code (-32600 invalid request, -32602 invalid
        /// params, -32603 internal error, ...).
        code: i32,
        /// The server's human-readable description.
        message: String,
        /// `data.kind`, when the error carries one this crate knows.
        kind: Option<ErrorKind>,
        /// The whole `data` member (with `kind`, `path`, `processId`), as sent.
        data: Option<serde_json::Value>,
    },
    /// Opening the connection failed (TCP, the TLS handshake, e.g. a server
    /// certificate this client does not trust, the WebSocket upgrade, HTTP
    /// 401 or 403).
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL that was dialled.
        url: String,
        /// What went wrong, from the WebSocket library.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The TLS settings of a `wss://` connection cannot be used: the CA
    /// file is unreadable or holds no certificate, or the system has no
    /// trusted roots. Nothing was dialled.
    #[error("cannot set up TLS for {url}: {reason}")]
    Tls {
        /// The URL that was to be dialled.
        url: String,
        /// What is wrong with the CA file or the system's roots.
        reason: String,
    },
    /// The connection is closed: the server went away, the transport failed,
    /// or [`ExecClient::close`](crate::ExecClient::close) was called. Every
    /// call still waiting when the connection closes fails with this.
    #[error("the connection to the exec-server is closed")]
    TransportClosed,
    /// The connection dropped while this call waited for its answer, so the
    /// request may or may not have run on the server: retry it if that is
    /// safe. The client resumes the session by itself (see
    /// [`ConnectionState`](crate::ConnectionState)), so a retry waits for the
    /// resume. `process/start` and `process/write` with a `writeId` (every
    /// write of a [`ProcessHandle`](crate::ProcessHandle)) never fail this
    /// way: they are sent again after the resume, where the server applies
    /// them once.
    #[error(
        "the connection dropped while `{method}` was waiting for its answer; it may or may not have run"
    )]
    ConnectionLost {
        /// The method of the call, e.g. `process/read`.
        method: String,
    },
    /// Something took longer than its configured limit.
    #[error("timed out waiting for {what}")]
    Timeout {
        /// What was being waited for, e.g. `the initialize response`.
        what: String,
    },
    /// The server broke the protocol: a message that is not JSON-RPC, a
    /// response to a request never sent, a result that does not match the
    /// schema. A violation that could hide a response closes the connection,
    /// and the calls still waiting fail with it.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A local I/O operation failed (waiting for a local server to exit).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The local server binary could not be started.
    #[error("cannot start the exec-server binary {program}: {source}")]
    Spawn {
        /// The program that was run.
        program: PathBuf,
        /// Why it could not be started.
        #[source]
        source: std::io::Error,
    },
    /// An argument was refused before anything was sent (a zero PTY size, a
    /// `processId` another live [`RemoteChild`](crate::RemoteChild) of this
    /// client uses, params that do not serialize, a token that is not a valid
    /// HTTP header value).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A streamed `http/request` body ended before its end: the server
    /// reported that reading it failed (its `error`), or the connection
    /// dropped or closed mid-body (the server aborts the streams of a
    /// connection that ends).
    #[error("the body of http/request `{request_id}` broke off: {message}")]
    HttpBody {
        /// The request's `requestId`.
        request_id: String,
        /// The server's `error`, or what ended the stream.
        message: String,
    },
    /// The message is larger than the server's `limits.maxMessageBytes`; it
    /// was not sent (the server would refuse it without saying which request
    /// it was, so the call could not be answered).
    #[error("a message of {bytes} bytes is over the server's limit of {limit} bytes")]
    MessageTooLarge {
        /// The size of the message, in bytes.
        bytes: usize,
        /// The server's limit, in bytes.
        limit: u64,
    },
    /// The server sent a message (a stdio line, a WebSocket message) larger
    /// than this client accepts
    /// ([`ConnectOptions::max_incoming_message_bytes`](crate::ConnectOptions::max_incoming_message_bytes),
    /// lowered to a few times the server's `limits.maxMessageBytes` after
    /// `initialize`). The client stopped reading it instead of buffering it
    /// and closed the connection; every call still waiting fails with this.
    #[error(
        "the server sent a message of at least {bytes} bytes, over this client's limit of {limit} bytes; the connection is closed"
    )]
    IncomingMessageTooLarge {
        /// How much of the message was seen before reading stopped, in bytes
        /// (the message is at least this long).
        bytes: usize,
        /// The cap it broke, in bytes.
        limit: usize,
    },
    /// An [`ExecPool`](crate::ExecPool) has no endpoint by this name (it
    /// was never added, or was removed).
    #[error("the pool has no endpoint named `{name}`")]
    UnknownEndpoint {
        /// The name that was asked for.
        name: String,
    },
    /// `process/write` answered with a status other than `accepted`.
    #[error("process {process_id} did not accept the write: {status}")]
    WriteRejected {
        /// The process written to.
        process_id: String,
        /// What the server answered (`stdinClosed`, `unknownProcess`, or
        /// `starting` when retries ran out).
        status: WriteStatus,
    },
}

impl ClientError {
    /// The protocol's `data.kind` of a [`ClientError::Server`] error; `None`
    /// for any other error or a server error without a known kind.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            Self::Server { kind, .. } => *kind,
            _ => None,
        }
    }

    /// The JSON-RPC error object as sent, turned into a [`ClientError::Server`].
    pub(crate) fn from_wire(code: i32, message: String, data: Option<serde_json::Value>) -> Self {
        let kind = data
            .as_ref()
            .and_then(|data| data.get("kind"))
            .and_then(|kind| serde_json::from_value::<ErrorKind>(kind.clone()).ok());
        Self::Server {
            code,
            message,
            kind,
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    #[test]
    fn server_errors_carry_their_kind() {
        let error = ClientError::from_wire(
            -32602,
            "no such file".into(),
            Some(json!({"kind": "notFound", "path": "/nope"})),
        );
        assert_eq!(error.kind(), Some(ErrorKind::NotFound));
        assert_eq!(
            error.to_string(),
            "server error -32602 (notFound): no such file"
        );
    }

    #[test]
    fn an_unknown_kind_keeps_the_data() {
        let error = ClientError::from_wire(-32603, "odd".into(), Some(json!({"kind": "brandNew"})));
        assert_eq!(error.kind(), None);
        match error {
            ClientError::Server { data, .. } => assert_eq!(data, Some(json!({"kind": "brandNew"}))),
            other => panic!("expected a server error, got {other:?}"),
        }
    }
}
