//! [`ConnectOptions`]: how a client connects, identifies itself, buffers
//! output, bounds what it accepts from the server, and resumes a dropped
//! WebSocket connection.

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
    /// `wss://` only: a PEM file of the CA certificates the server's
    /// certificate must chain to, trusted instead of the system's roots
    /// (read at every connect and reconnect). When unset: the file named by
    /// the `EXEC_SERVER_CA_FILE` environment variable
    /// ([`CA_FILE_ENV`](crate::CA_FILE_ENV)), else the system's roots.
    pub ca_file: Option<PathBuf>,
    /// WebSocket only: how long the TCP connect, the TLS handshake and the
    /// upgrade may take. Default 10 s.
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
    /// WebSocket only: whether a connection that drops (without being closed
    /// by this client or taken over by another one) is resumed. The client
    /// then dials the same URL again, with the same token, resumes the
    /// session (`initialize` with `resumeSessionId`), reads back what each
    /// [`RemoteChild`](crate::RemoteChild) missed, and sends again the
    /// `process/start` and `process/write` calls that were waiting; other
    /// waiting calls fail with
    /// [`ClientError::ConnectionLost`](crate::ClientError::ConnectionLost).
    /// It also asks the server to keep unacknowledged output
    /// (`acknowledgeOutput`) and acknowledges what it receives, so nothing
    /// is lost while detached. Follow it with
    /// [`ExecClient::connection_state`](crate::ExecClient::connection_state).
    /// When `false`, a drop closes the client as in v1. Default `true`.
    ///
    /// An exit notification lost in flight is rebuilt from `process/read`,
    /// which does not tell `killed` or `timedOut` apart: such an exit then
    /// reports `signaled`.
    pub reconnect: bool,
    /// The wait before the second reconnect attempt after a drop (the
    /// first goes at once: most drops are a cut connection, not a server
    /// that is down); each further attempt waits twice as long, up to
    /// [`ConnectOptions::reconnect_max_delay`]. Default 100 ms.
    pub reconnect_initial_delay: Duration,
    /// The longest wait between two reconnect attempts. Default 2 s.
    pub reconnect_max_delay: Duration,
    /// How long after a drop the client gives up reconnecting, if shorter
    /// than the session's TTL (the server's `limits.sessionTtlMs`, after
    /// which the session is gone anyway). Default none: the TTL.
    pub reconnect_max_elapsed: Option<Duration>,
    /// WebSocket only: ask the server for binary output frames
    /// (`initialize`'s `binaryOutput`): each `process/output` then comes
    /// as one binary WebSocket message with the raw bytes, skipping base64
    /// and JSON on both ends. The output a
    /// [`RemoteChild`](crate::RemoteChild) reads is the same either way; a
    /// server that does not know binary frames just answers with text.
    /// Ignored over stdio and in-process transports, which carry text only.
    /// Default true.
    pub binary_output: bool,
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

    /// Sets the PEM file of CA certificates a `wss://` server is verified
    /// against; see [`ConnectOptions::ca_file`].
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
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

    /// Enables (the default) or disables resuming a dropped WebSocket
    /// connection; see [`ConnectOptions::reconnect`].
    pub fn reconnect(mut self, enabled: bool) -> Self {
        self.reconnect = enabled;
        self
    }

    /// Sets the wait before the second reconnect attempt (the first goes at
    /// once) and the longest wait between two attempts (raised to `initial`
    /// if below it).
    pub fn reconnect_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.reconnect_initial_delay = initial;
        self.reconnect_max_delay = max.max(initial);
        self
    }

    /// Gives up reconnecting this long after a drop, if that comes before
    /// the session's TTL runs out.
    pub fn reconnect_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.reconnect_max_elapsed = Some(max_elapsed);
        self
    }

    /// Asks for binary output frames over WebSocket or not; see
    /// [`ConnectOptions::binary_output`].
    pub fn binary_output(mut self, enabled: bool) -> Self {
        self.binary_output = enabled;
        self
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            client_name: String::from("exec-client"),
            client_version: None,
            token: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            initialize_timeout: Duration::from_secs(10),
            server_binary: None,
            output_buffer_chunks: 64,
            output_stall_timeout: Duration::from_secs(2),
            max_incoming_message_bytes: DEFAULT_MAX_INCOMING_MESSAGE_BYTES,
            reconnect: true,
            reconnect_initial_delay: Duration::from_millis(100),
            reconnect_max_delay: Duration::from_secs(2),
            reconnect_max_elapsed: None,
            binary_output: true,
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
            .field("ca_file", &self.ca_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("initialize_timeout", &self.initialize_timeout)
            .field("server_binary", &self.server_binary)
            .field("output_buffer_chunks", &self.output_buffer_chunks)
            .field("output_stall_timeout", &self.output_stall_timeout)
            .field(
                "max_incoming_message_bytes",
                &self.max_incoming_message_bytes,
            )
            .field("reconnect", &self.reconnect)
            .field("reconnect_initial_delay", &self.reconnect_initial_delay)
            .field("reconnect_max_delay", &self.reconnect_max_delay)
            .field("reconnect_max_elapsed", &self.reconnect_max_elapsed)
            .field("binary_output", &self.binary_output)
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

    #[test]
    fn reconnect_is_on_by_default_with_bounded_backoff() {
        let options = ConnectOptions::default();
        assert!(options.reconnect);
        assert_eq!(options.reconnect_initial_delay, Duration::from_millis(100));
        assert_eq!(options.reconnect_max_delay, Duration::from_secs(2));
        assert_eq!(options.reconnect_max_elapsed, None);
        let options = ConnectOptions::new("test")
            .reconnect(false)
            .reconnect_delays(Duration::from_secs(3), Duration::from_secs(1))
            .reconnect_max_elapsed(Duration::from_secs(5));
        assert!(!options.reconnect);
        assert_eq!(
            (options.reconnect_initial_delay, options.reconnect_max_delay),
            (Duration::from_secs(3), Duration::from_secs(3))
        );
        assert_eq!(options.reconnect_max_elapsed, Some(Duration::from_secs(5)));
    }
}
