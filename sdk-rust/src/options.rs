//! [`ConnectOptions`]: how a client connects, identifies itself, buffers
//! output and bounds what it accepts from the server.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::transport::limit::DEFAULT_MAX_INCOMING_MESSAGE_BYTES;

/// Settings for every way of connecting ([`ExecClient::connect_websocket`],
/// [`ExecClient::connect_stdio`], [`ExecClient::spawn_local`],
/// [`ExecClient::connect_transport`]).
///
/// Start from [`ConnectOptions::new`] or [`Default`] and chain the setters.
///
/// [`ExecClient::connect_websocket`]: crate::ExecClient::connect_websocket
/// [`ExecClient::connect_stdio`]: crate::ExecClient::connect_stdio
/// [`ExecClient::spawn_local`]: crate::ExecClient::spawn_local
/// [`ExecClient::connect_transport`]: crate::ExecClient::connect_transport
#[derive(Clone)]
#[non_exhaustive]
pub struct ConnectOptions {
    /// Sent as `initialize`'s `clientName`, for the server's logs. Default `exec-client`.
    pub client_name: String,
    /// Sent as `initialize`'s `clientVersion`. Default none.
    pub client_version: Option<String>,
    /// WebSocket only: sent as `Authorization: Bearer TOKEN` with the upgrade.
    /// Never printed by `Debug`.
    pub token: Option<String>,
    /// WebSocket only: how long the TCP connect and the upgrade may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long the server may take to answer `initialize`. Default 10 s.
    pub initialize_timeout: Duration,
    /// [`ExecClient::spawn_local`](crate::ExecClient::spawn_local) only: the
    /// `exec-server` binary to run. When unset: the `EXEC_SERVER_BIN`
    /// environment variable, else an `exec-server` next to the current
    /// executable or in its parent directory, else `exec-server` on `PATH`.
    pub server_binary: Option<PathBuf>,
    /// Events (output chunks, the exit, the close) buffered per process
    /// between the connection's reader and its [`RemoteChild`](crate::RemoteChild),
    /// in messages of up to 64 KiB each. Default 64.
    pub output_buffer_chunks: usize,
    /// How long the connection's reader waits for a process whose buffer is
    /// full before it stops waiting for that process. While it waits, the
    /// server is held back (lossless back-pressure), but so are the responses
    /// of every other call on the connection. After this time the process is
    /// marked as lagging: its further output is read back with `process/read`
    /// when its consumer catches up, and what the server no longer retains is
    /// reported as lost bytes. Default 2 s.
    pub output_stall_timeout: Duration,
    /// The largest message accepted from the server (a stdio line or a
    /// WebSocket message), in bytes. The server runs where the client trusts
    /// it less (inside a sandbox), so a bigger message is not buffered: the
    /// connection closes and every call still waiting fails with
    /// [`ClientError::IncomingMessageTooLarge`](crate::ClientError::IncomingMessageTooLarge).
    /// Once `initialize` reports the server's `limits.maxMessageBytes`, the
    /// cap drops to 4 times that if this is larger, but not below 64 MiB (a
    /// server sends `fs/readFile` pages of 16 MiB whatever it accepts).
    /// Applies to the transports this crate opens (WebSocket, stdio,
    /// [`ExecClient::spawn_local`](crate::ExecClient::spawn_local)), not to
    /// [`ExecClient::connect_transport`](crate::ExecClient::connect_transport),
    /// whose messages are already in memory. Default 256 MiB (4 times the
    /// server's default limit of 64 MiB).
    pub max_incoming_message_bytes: usize,
}

impl ConnectOptions {
    /// Default options with `client_name` as the `initialize` client name.
    pub fn new(client_name: impl Into<String>) -> Self {
        Self {
            client_name: client_name.into(),
            ..Self::default()
        }
    }

    /// Sets the `initialize` client version.
    pub fn client_version(mut self, version: impl Into<String>) -> Self {
        self.client_version = Some(version.into());
        self
    }

    /// Sets the WebSocket connection token (sent as `Authorization: Bearer TOKEN`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Sets the WebSocket connect timeout.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets how long `initialize` may take.
    pub fn initialize_timeout(mut self, timeout: Duration) -> Self {
        self.initialize_timeout = timeout;
        self
    }

    /// Sets the `exec-server` binary [`ExecClient::spawn_local`](crate::ExecClient::spawn_local) runs.
    pub fn server_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.server_binary = Some(path.into());
        self
    }

    /// Sets the per-process event buffer, in messages (at least 1).
    pub fn output_buffer_chunks(mut self, chunks: usize) -> Self {
        self.output_buffer_chunks = chunks.max(1);
        self
    }

    /// Sets how long the reader waits for a process whose consumer does not
    /// take its output before marking it as lagging.
    pub fn output_stall_timeout(mut self, timeout: Duration) -> Self {
        self.output_stall_timeout = timeout;
        self
    }

    /// Sets the largest message accepted from the server, in bytes (at least
    /// 1); see [`ConnectOptions::max_incoming_message_bytes`].
    pub fn max_incoming_message_bytes(mut self, bytes: usize) -> Self {
        self.max_incoming_message_bytes = bytes.max(1);
        self
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            client_name: String::from("exec-client"),
            client_version: None,
            token: None,
            connect_timeout: Duration::from_secs(10),
            initialize_timeout: Duration::from_secs(10),
            server_binary: None,
            output_buffer_chunks: 64,
            output_stall_timeout: Duration::from_secs(2),
            max_incoming_message_bytes: DEFAULT_MAX_INCOMING_MESSAGE_BYTES,
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: logs must never show it.
        formatter
            .debug_struct("ConnectOptions")
            .field("client_name", &self.client_name)
            .field("client_version", &self.client_version)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("initialize_timeout", &self.initialize_timeout)
            .field("server_binary", &self.server_binary)
            .field("output_buffer_chunks", &self.output_buffer_chunks)
            .field("output_stall_timeout", &self.output_stall_timeout)
            .field(
                "max_incoming_message_bytes",
                &self.max_incoming_message_bytes,
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let options = ConnectOptions::new("test").token("s3cret");
        let shown = format!("{options:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
