//! [`ServerError`]: every way a method can fail, and the one place where a
//! failure becomes a JSON-RPC 2.0 error object.

use std::io;

use exec_protocol::{ErrorData, ErrorKind, ErrorObject, ProcessId};

/// JSON-RPC 2.0 "Parse error": the message is not JSON.
pub const PARSE_ERROR: i32 = -32700;
/// JSON-RPC 2.0 "Invalid Request": not a request object, or a lifecycle violation.
pub const INVALID_REQUEST: i32 = -32600;
/// JSON-RPC 2.0 "Method not found".
pub const METHOD_NOT_FOUND: i32 = -32601;
/// JSON-RPC 2.0 "Invalid params".
pub const INVALID_PARAMS: i32 = -32602;
/// JSON-RPC 2.0 "Internal error".
pub const INTERNAL_ERROR: i32 = -32603;
/// Codex's "not found" (`codex-rs/exec-server/src/rpc.rs`, `not_found`), in
/// the range JSON-RPC 2.0 leaves to servers: an `fs/*` path that does not
/// exist (`data.kind` `notFound`), which Codex's clients test by this code.
pub const NOT_FOUND: i32 = -32004;

/// A failed method call. Each variant maps to one JSON-RPC code and one
/// `data.kind` of the schema's closed `ErrorKind` set (see [`ServerError::to_error_object`]).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A `process/*` or `fs/*` request before the `initialize`/`initialized` handshake.
    #[error("the connection is not initialized: send `initialize`, then `initialized`")]
    NotInitialized,
    /// A second `initialize` on one connection.
    #[error("the connection is already initialized")]
    AlreadyInitialized,
    /// `initialize`'s `resumeSessionId` names no live session of this server.
    #[error(
        "no session `{session_id}` to resume: unknown, ended, or detached longer than the session TTL"
    )]
    UnknownSession {
        /// The id the client sent.
        session_id: String,
    },
    /// The params do not match the method's params type.
    #[error("invalid params: {message}")]
    InvalidParams {
        /// What serde (or a range check) said.
        message: String,
    },
    /// The connection has no process with this id.
    #[error("no process `{}` on this connection", .process_id.as_str())]
    UnknownProcess {
        /// The id the client sent.
        process_id: ProcessId,
    },
    /// `process/start` with an id the connection already has.
    #[error("process `{}` already exists on this connection", .process_id.as_str())]
    ProcessExists {
        /// The id the client sent.
        process_id: ProcessId,
    },
    /// A PTY-only method on a pipe process.
    #[error("process `{}` does not run on a PTY", .process_id.as_str())]
    NotPty {
        /// The id the client sent.
        process_id: ProcessId,
    },
    /// Writing to or closing a stdin that is closed or was never open.
    #[error("the stdin of process `{}` is closed", .process_id.as_str())]
    StdinClosed {
        /// The id the client sent.
        process_id: ProcessId,
    },
    /// The program could not be started.
    #[error("cannot start `{program}`: {source}")]
    SpawnFailed {
        /// `argv[0]`.
        program: String,
        /// The operating system's reason.
        source: io::Error,
    },
    /// `process/start` or an `fs/*` method asked for a sandbox, managed
    /// network or network proxy that this server does not apply (see
    /// `process/sandbox.rs`).
    #[error("`{field}` asks for confinement this server does not apply: {reason}")]
    SandboxUnavailable {
        /// The id the client sent, for `process/start`; `None` for `fs/*`.
        process_id: Option<ProcessId>,
        /// The wire name of the refused field.
        field: &'static str,
        /// Why it cannot be applied.
        reason: String,
    },
    /// A path that is not absolute, or that the operation cannot use (a NUL
    /// byte, a directory copied into itself).
    #[error("path `{path}`: {reason}")]
    InvalidPath {
        /// The path the client sent.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A filesystem operation failed; `data.kind` follows the OS error.
    #[error("{path}: {source}")]
    Fs {
        /// The path the operation was about.
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// `fs/readBlock` names a handle this connection does not have open
    /// (never opened, closed, or closed by a failed read); `data.kind`
    /// `notFound`, as Codex answers.
    #[error("no open file handle `{handle_id}` on this connection")]
    UnknownHandle {
        /// The id the client sent.
        handle_id: String,
    },
    /// A server limit was reached.
    #[error("{what}: the limit is {limit}")]
    LimitExceeded {
        /// Which limit, in words.
        what: &'static str,
        /// The limit's value (a count or bytes).
        limit: u64,
    },
    /// `http/request` could not be made or its answer not read (name
    /// resolution, connection refused, TLS, too many redirects, a body cut
    /// short); see `http/request.rs`.
    #[error("http/request failed: {message}")]
    HttpFailed {
        /// What the HTTP client said, with its causes.
        message: String,
    },
    /// `http/request`'s `timeoutMs` ran out before the answer was complete.
    #[error("http/request timed out after {timeout_ms} ms")]
    HttpTimeout {
        /// The deadline the client gave, in milliseconds.
        timeout_ms: u64,
    },
    /// A failure of the server itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServerError {
    /// Wraps a filesystem error about `path`.
    pub fn fs(path: impl Into<String>, source: io::Error) -> Self {
        Self::Fs {
            path: path.into(),
            source,
        }
    }

    /// A path the operation cannot use, and why (`invalidPath`).
    pub fn invalid_path(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidPath {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The JSON-RPC error code: -32600 for lifecycle violations, -32603 for
    /// failures of the server or the OS it cannot classify, -32004
    /// ([`NOT_FOUND`], Codex's code) for a filesystem path that does not
    /// exist or a file handle that is not open, and -32602 for everything else the request itself names and
    /// that cannot be acted upon.
    pub fn code(&self) -> i32 {
        match self {
            Self::NotInitialized | Self::AlreadyInitialized => INVALID_REQUEST,
            Self::Internal(_) => INTERNAL_ERROR,
            // Codex answers a failed HTTP request with its internal error.
            Self::HttpFailed { .. } | Self::HttpTimeout { .. } => INTERNAL_ERROR,
            Self::Fs { .. } if self.kind() == ErrorKind::Io => INTERNAL_ERROR,
            // A missing path and an unknown `fs/readBlock` handle alike.
            _ if self.kind() == ErrorKind::NotFound => NOT_FOUND,
            _ => INVALID_PARAMS,
        }
    }

    /// The schema's `data.kind`; every error has one.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotInitialized => ErrorKind::NotInitialized,
            Self::AlreadyInitialized => ErrorKind::AlreadyInitialized,
            Self::UnknownSession { .. } => ErrorKind::UnknownSession,
            Self::InvalidParams { .. } => ErrorKind::InvalidParams,
            Self::UnknownProcess { .. } => ErrorKind::UnknownProcess,
            Self::ProcessExists { .. } => ErrorKind::ProcessExists,
            Self::NotPty { .. } => ErrorKind::NotPty,
            Self::StdinClosed { .. } => ErrorKind::StdinClosed,
            Self::SpawnFailed { .. } => ErrorKind::SpawnFailed,
            Self::SandboxUnavailable { .. } => ErrorKind::SandboxUnavailable,
            Self::InvalidPath { .. } => ErrorKind::InvalidPath,
            Self::Fs { source, .. } => io_error_kind(source),
            Self::UnknownHandle { .. } => ErrorKind::NotFound,
            Self::LimitExceeded { .. } => ErrorKind::LimitExceeded,
            Self::HttpFailed { .. } => ErrorKind::HttpFailed,
            Self::HttpTimeout { .. } => ErrorKind::HttpTimeout,
            Self::Internal(_) => ErrorKind::Io,
        }
    }

    /// The JSON-RPC error object sent to the client.
    pub fn to_error_object(&self) -> ErrorObject {
        let data = Some(ErrorData {
            kind: self.kind(),
            path: match self {
                Self::InvalidPath { path, .. } | Self::Fs { path, .. } => Some(echo(path)),
                _ => None,
            },
            process_id: match self {
                Self::UnknownProcess { process_id }
                | Self::ProcessExists { process_id }
                | Self::NotPty { process_id }
                | Self::StdinClosed { process_id } => Some(process_id.clone()),
                Self::SandboxUnavailable { process_id, .. } => process_id.clone(),
                _ => None,
            },
        });
        ErrorObject {
            code: self.code(),
            message: echo(&self.to_string()),
            data,
        }
    }
}

/// Most bytes of a client's input (a path, a value serde quotes) an error
/// object repeats: a longer one is cut, so that a huge request cannot make
/// a huge reply. PATH_MAX (4096) keeps every path the kernel accepts whole.
pub const MAX_ECHO_BYTES: usize = 4096;

/// `text`, or its first [`MAX_ECHO_BYTES`] (at a character boundary) and
/// how long it was.
pub(crate) fn echo(text: &str) -> String {
    if text.len() <= MAX_ECHO_BYTES {
        return text.to_owned();
    }
    let mut end = MAX_ECHO_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// Maps an OS error to the schema's error kind (POSIX errno names in the comments).
pub fn io_error_kind(error: &io::Error) -> ErrorKind {
    match error.kind() {
        io::ErrorKind::NotFound => ErrorKind::NotFound, // ENOENT
        io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied, // EACCES, EPERM
        io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists, // EEXIST
        io::ErrorKind::NotADirectory => ErrorKind::NotADirectory, // ENOTDIR
        io::ErrorKind::IsADirectory => ErrorKind::IsADirectory, // EISDIR
        io::ErrorKind::DirectoryNotEmpty => ErrorKind::DirectoryNotEmpty, // ENOTEMPTY
        io::ErrorKind::InvalidFilename => ErrorKind::InvalidPath, // ENAMETOOLONG
        _ => ErrorKind::Io,
    }
}

/// Longest path the kernel takes, in bytes (Linux's `PATH_MAX`, 4096, counts
/// the terminating NUL): any longer one fails with `ENAMETOOLONG`.
pub const MAX_PATH_BYTES: usize = 4095;

/// Rejects a path that is not absolute, or that is longer than
/// [`MAX_PATH_BYTES`], with `invalidPath`.
///
/// The length is checked here, before anything copies the path (into a
/// `PathBuf`, the `CString` of a system call, an error message), so a
/// huge path costs no more than the request that carried it.
pub fn require_absolute(path: &str) -> Result<&std::path::Path, ServerError> {
    if path.len() > MAX_PATH_BYTES {
        let reason = format!(
            "a path of {} bytes is longer than the {MAX_PATH_BYTES} the system allows",
            path.len()
        );
        return Err(ServerError::invalid_path(echo(path), reason));
    }
    let candidate = std::path::Path::new(path);
    if candidate.is_absolute() {
        Ok(candidate)
    } else {
        Err(ServerError::invalid_path(path, "not an absolute path"))
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn paths_the_kernel_cannot_take_are_refused_before_use() {
        let longest = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert!(require_absolute(&longest).is_ok());
        let error = require_absolute(&format!("{longest}a")).expect_err("too long");
        assert_eq!(
            (error.kind(), error.code()),
            (ErrorKind::InvalidPath, INVALID_PARAMS)
        );
        // A huge path is named in the reply, cut to a few KiB.
        let huge = format!("/{}", "a".repeat(10 * MAX_ECHO_BYTES));
        let object = require_absolute(&huge)
            .expect_err("too long")
            .to_error_object();
        let path = object.data.and_then(|data| data.path).expect("the path");
        assert!(path.len() < MAX_ECHO_BYTES + 100, "{}", path.len());
        assert!(
            object.message.len() < 2 * MAX_ECHO_BYTES + 200,
            "{}",
            object.message.len()
        );
    }
}
