//! [`ExecClient`]: connecting (WebSocket, stdio, a local child server, or any
//! transport), the `initialize` handshake, and raw and generic calls. The
//! typed methods, one per request, are generated in `methods.rs`.

use std::sync::Arc;

use exec_protocol::{
    INITIALIZED_METHOD, Initialize, InitializeParams, InitializeResponse, InitializedNotification,
    PROTOCOL_VERSION, Request,
};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::ClientConnection;
use crate::error::ClientError;
use crate::local::{SERVER_BINARY_ENV, locate_server_binary, start_server};
use crate::options::ConnectOptions;
use crate::process::Command;
use crate::transport::TransportChannels;
use crate::transport::limit::IncomingLimit;
use crate::transport::stdio::limited_stdio_transport;
use crate::transport::websocket::limited_websocket_transport;

/// A connection to an exec-server, initialized and ready for `process/*`
/// and `fs/*` calls.
///
/// Cheap to clone: clones share the connection, which closes when the last
/// clone and the last [`RemoteChild`](crate::RemoteChild) are dropped (or
/// when [`ExecClient::close`] is called). The server kills the processes of
/// a connection when it closes.
///
/// Besides the typed method per request (`fs_read_file`, `process_start`, ...),
/// [`ExecClient::command`] starts processes the way `tokio::process::Command`
/// does. Prefer it to the raw [`ExecClient::process_start`]: only processes
/// started through a [`Command`] have their `process/output`, `process/exited`
/// and `process/closed` notifications routed to a
/// [`RemoteChild`](crate::RemoteChild); the notifications of other processes
/// are ignored, and their output is read with [`ExecClient::process_read`].
#[derive(Clone)]
pub struct ExecClient {
    /// The shared connection.
    pub(crate) connection: Arc<ClientConnection>,
    /// What the server said in the handshake.
    initialize: Arc<InitializeResponse>,
}

impl std::fmt::Debug for ExecClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExecClient")
            .field("session_id", &self.initialize.session_id)
            .field("server_info", &self.initialize.server_info)
            .finish_non_exhaustive()
    }
}

impl ExecClient {
    /// Connects to `url` (`ws://HOST:PORT`; `wss://` is not supported, as
    /// no TLS is compiled in) and initializes, sending `options.token` as
    /// `Authorization: Bearer TOKEN` when set.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the connection or the upgrade fails
    /// (HTTP 401 for a missing or wrong token); [`ClientError::Timeout`] after
    /// `connect_timeout` or `initialize_timeout`; the errors of the handshake.
    pub async fn connect_websocket(
        url: &str,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        let limit = Arc::new(IncomingLimit::new(options.max_incoming_message_bytes));
        let channels = limited_websocket_transport(
            url,
            options.token.as_deref(),
            options.connect_timeout,
            limit.clone(),
        )
        .await?;
        Self::handshake(ClientConnection::start(channels, limit, options, None)).await
    }

    /// Connects over newline-delimited JSON: `reader` carries the server's
    /// messages, `writer` takes the client's (e.g. a child's stdout and
    /// stdin, or a socket's halves), then initializes.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] after `initialize_timeout`; the errors of the
    /// handshake.
    pub async fn connect_stdio<R, W>(
        reader: R,
        writer: W,
        options: ConnectOptions,
    ) -> Result<Self, ClientError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let limit = Arc::new(IncomingLimit::new(options.max_incoming_message_bytes));
        let channels = limited_stdio_transport(reader, writer, limit.clone());
        Self::handshake(ClientConnection::start(channels, limit, options, None)).await
    }

    /// Starts `exec-server serve --listen stdio://` as a child process,
    /// connects to it over its stdin and stdout, and initializes. The client
    /// owns the server: when the connection closes, the server's stdin closes,
    /// and it kills its processes and exits.
    ///
    /// The binary is `options.server_binary`, else the `EXEC_SERVER_BIN`
    /// environment variable, else an `exec-server` next to the current
    /// executable or in its parent directory, else `exec-server` on `PATH`.
    ///
    /// # Errors
    /// [`ClientError::Spawn`] when the binary cannot be started;
    /// [`ClientError::Timeout`] after `initialize_timeout`; the errors of the handshake.
    pub async fn spawn_local(options: ConnectOptions) -> Result<Self, ClientError> {
        let current_exe = std::env::current_exe().ok();
        let program = locate_server_binary(
            options.server_binary.as_deref(),
            std::env::var_os(SERVER_BINARY_ENV),
            current_exe.as_deref(),
        );
        tracing::debug!(program = %program.display(), "starting a local exec-server");
        let limit = Arc::new(IncomingLimit::new(options.max_incoming_message_bytes));
        let (server, channels) = start_server(&program, limit.clone())?;
        Self::handshake(ClientConnection::start(
            channels,
            limit,
            options,
            Some(server),
        ))
        .await
    }

    /// Runs the client over any transport (see [`TransportChannels`] for the
    /// contract, e.g. a server in the same process) and initializes.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] after `initialize_timeout`; the errors of the handshake.
    pub async fn connect_transport(
        channels: TransportChannels,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        // Nothing enforces this cap: the messages are already in memory.
        let limit = Arc::new(IncomingLimit::new(options.max_incoming_message_bytes));
        Self::handshake(ClientConnection::start(channels, limit, options, None)).await
    }

    /// Sends `initialize`, checks the protocol version, sends `initialized`.
    async fn handshake(connection: Arc<ClientConnection>) -> Result<Self, ClientError> {
        let options = connection.options();
        let params = InitializeParams {
            client_name: options.client_name.clone(),
            client_version: options.client_version.clone(),
            resume_session_id: None,
            acknowledge_output: None,
        };
        let initialize = tokio::time::timeout(
            options.initialize_timeout,
            connection.call::<Initialize>(&params),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            what: String::from("the initialize response"),
        })??;
        if initialize.protocol_version != PROTOCOL_VERSION {
            return Err(ClientError::Protocol(format!(
                "the server speaks `{}`, this client `{PROTOCOL_VERSION}`",
                initialize.protocol_version
            )));
        }
        connection.set_max_message_bytes(initialize.limits.max_message_bytes);
        connection
            .notify(INITIALIZED_METHOD, &InitializedNotification {})
            .await?;
        Ok(Self {
            connection,
            initialize: Arc::new(initialize),
        })
    }

    /// The server's answer to `initialize`: protocol version, session id,
    /// server name and version, platform, and limits (bytes and counts).
    pub fn initialize_response(&self) -> &InitializeResponse {
        &self.initialize
    }

    /// The OS pid of the server [`ExecClient::spawn_local`] started, while it runs.
    pub fn local_server_pid(&self) -> Option<u32> {
        self.connection.local_server_pid()
    }

    /// Sends any request and returns its raw `result`.
    ///
    /// # Errors
    /// [`ClientError::Server`] for a JSON-RPC error (e.g. -32601 for an
    /// unknown method); [`ClientError::TransportClosed`] when the connection
    /// closes first.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let raw = self.connection.request_raw(method, &params).await?;
        serde_json::from_str(raw.get()).map_err(|error| {
            ClientError::Protocol(format!("the result of `{method}` is not JSON ({error})"))
        })
    }

    /// Sends any notification (no response comes back).
    ///
    /// # Errors
    /// [`ClientError::TransportClosed`] when the connection is closed.
    pub async fn notify(&self, method: &str, params: Value) -> Result<(), ClientError> {
        self.connection.notify(method, &params).await
    }

    /// Sends request `M` (a marker type of `exec_protocol`, e.g.
    /// `exec_protocol::FsReadFile`) and returns its typed result.
    ///
    /// # Errors
    /// [`ClientError::Server`] for a JSON-RPC error; [`ClientError::Protocol`]
    /// when the result does not match the schema;
    /// [`ClientError::TransportClosed`] when the connection closes first.
    pub async fn call<M: Request>(&self, params: M::Params) -> Result<M::Response, ClientError> {
        self.connection.call::<M>(&params).await
    }

    /// A builder for a process running `program`, like
    /// `tokio::process::Command::new`. See [`Command`] for the defaults.
    pub fn command(&self, program: impl Into<String>) -> Command {
        Command::new(self.connection.clone(), program.into())
    }

    /// Closes the connection for every clone: no more calls can be sent, the
    /// server ends the connection (killing its processes), and calls still
    /// waiting fail with [`ClientError::TransportClosed`]. Waits up to 10 s
    /// for the server to end the connection and, for [`ExecClient::spawn_local`],
    /// up to 10 s for the server process to exit before killing it.
    ///
    /// # Errors
    /// [`ClientError::Timeout`] when a local server had to be killed;
    /// [`ClientError::Io`] when waiting for it failed.
    pub async fn close(self) -> Result<(), ClientError> {
        self.connection.close().await
    }
}
