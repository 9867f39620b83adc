//! [`ExecClient`]: connecting (WebSocket, stdio, a local child server, or any
//! transport), the `initialize` handshake, and raw and generic calls. The
//! typed methods, one per request, are generated in `methods.rs`.

use std::sync::Arc;

use exec_protocol::{
    INITIALIZED_METHOD, Initialize, InitializeResponse, InitializedNotification, Request,
};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::connection::{ClientConnection, WebSocketEnd};
use crate::error::ClientError;
use crate::handshake::{check_version, initialize_params};
use crate::local::{SERVER_BINARY_ENV, locate_server_binary, start_server};
use crate::options::ConnectOptions;
use crate::process::Command;
use crate::router::is_repeatable_raw_call;
use crate::state::ConnectionState;
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
/// the session when it ends: with the connection over stdio, or a session
/// TTL (`limits.sessionTtlMs`) after the connection closes over WebSocket.
///
/// A WebSocket connection that drops is resumed by default (see
/// [`ConnectOptions::reconnect`]): the processes keep running on the server,
/// each [`RemoteChild`](crate::RemoteChild) still gets every byte once and in
/// order, and [`ExecClient::connection_state`] reports the drop and the
/// resume.
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
    /// Connects to `url` (`ws://HOST:PORT`, or `wss://HOST:PORT` with TLS
    /// verified against [`ConnectOptions::ca_file`], else the file named by
    /// [`CA_FILE_ENV`](crate::CA_FILE_ENV), else the system's roots) and
    /// initializes, sending `options.token` as `Authorization: Bearer TOKEN`
    /// when set.
    ///
    /// With [`ConnectOptions::reconnect`] (the default) the session is
    /// resumable: `initialize` asks for `acknowledgeOutput`, and a drop is
    /// followed by a resume on a new connection to `url`. The first connect
    /// is not retried.
    ///
    /// # Errors
    /// [`ClientError::Connect`] when the connection, the TLS handshake (an
    /// untrusted certificate) or the upgrade fails (HTTP 401 for a missing
    /// or wrong token); [`ClientError::Tls`] when the CA file or the
    /// system's roots cannot be used; [`ClientError::Timeout`] after
    /// `connect_timeout` or `initialize_timeout`; the errors of the handshake.
    pub async fn connect_websocket(
        url: &str,
        options: ConnectOptions,
    ) -> Result<Self, ClientError> {
        let limit = Arc::new(IncomingLimit::new(options.max_incoming_message_bytes));
        let (link, close_code) = limited_websocket_transport(
            url,
            options.token.as_deref(),
            options.ca_file.as_deref(),
            options.connect_timeout,
            limit.clone(),
        )
        .await?;
        let acknowledge_output = options.reconnect;
        let websocket = WebSocketEnd {
            close_code,
            redial: options.reconnect.then(|| url.to_owned()),
        };
        let connection = ClientConnection::start(link, limit, options, None, Some(websocket));
        Self::handshake(connection, acknowledge_output, true).await
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
        let link = limited_stdio_transport(reader, writer, limit.clone());
        Self::handshake(
            ClientConnection::start(link, limit, options, None, None),
            false,
            false,
        )
        .await
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
        let (server, link) = start_server(&program, limit.clone())?;
        Self::handshake(
            ClientConnection::start(link, limit, options, Some(server), None),
            false,
            false,
        )
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
        Self::handshake(
            ClientConnection::start(channels.into(), limit, options, None, None),
            false,
            false,
        )
        .await
    }

    /// Sends `initialize` (asking for `acknowledgeOutput` when the session
    /// is to be resumable, and for binary output frames over a `websocket`
    /// when the options say so), checks the protocol version, sends `initialized`.
    async fn handshake(
        connection: Arc<ClientConnection>,
        acknowledge_output: bool,
        websocket: bool,
    ) -> Result<Self, ClientError> {
        let options = connection.options();
        let params = initialize_params(options, None, acknowledge_output, websocket);
        let initialize = tokio::time::timeout(
            options.initialize_timeout,
            connection.call::<Initialize>(&params),
        )
        .await
        .map_err(|_| ClientError::Timeout {
            what: String::from("the initialize response"),
        })??;
        check_version(&initialize)?;
        connection.adopt_initialize(&initialize, acknowledge_output);
        connection
            .notify(INITIALIZED_METHOD, &InitializedNotification {})
            .await?;
        Ok(Self {
            connection,
            initialize: Arc::new(initialize),
        })
    }

    /// The server's answer to the first `initialize`: protocol version,
    /// session id, server name and version, platform, and limits (bytes,
    /// counts, and the session's TTL in milliseconds). A resume keeps the
    /// session id.
    pub fn initialize_response(&self) -> &InitializeResponse {
        &self.initialize
    }

    /// The connection's state, now and as it changes: `Connected`,
    /// `Reconnecting { attempt }` while a dropped WebSocket connection is
    /// being resumed, and `Closed(reason)` at the end (see
    /// [`ConnectionState`]). Each change is one event of the `watch` channel;
    /// a receiver that looks only now and then sees the latest state.
    pub fn connection_state(&self) -> watch::Receiver<ConnectionState> {
        self.connection.router().state()
    }

    /// The OS pid of the server [`ExecClient::spawn_local`] started, while it runs.
    pub fn local_server_pid(&self) -> Option<u32> {
        self.connection.local_server_pid()
    }

    /// Sends any request and returns its raw `result`. A `process/start`,
    /// and a `process/write` with a `writeId`, are sent again after a resume
    /// if the connection drops before the answer.
    ///
    /// # Errors
    /// [`ClientError::Server`] for a JSON-RPC error (e.g. -32601 for an
    /// unknown method); [`ClientError::ConnectionLost`] when the connection
    /// drops first (the request may or may not have run);
    /// [`ClientError::TransportClosed`] when it closes first.
    pub async fn request(&self, method: &str, params: Value) -> Result<Value, ClientError> {
        let repeatable = is_repeatable_raw_call(method, &params);
        let raw = self
            .connection
            .request_raw(method, &params, repeatable)
            .await?;
        serde_json::from_str(raw.get()).map_err(|error| {
            ClientError::Protocol(format!("the result of `{method}` is not JSON ({error})"))
        })
    }

    /// Sends any notification (no response comes back). While a dropped
    /// connection is being resumed, it waits for the resume.
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
    /// [`ClientError::ConnectionLost`] when the connection drops first (not
    /// for `process/start`, nor `process/write` with a `writeId`, which are
    /// sent again after the resume); [`ClientError::TransportClosed`] when
    /// it closes first.
    pub async fn call<M: Request>(&self, params: M::Params) -> Result<M::Response, ClientError> {
        self.connection.call::<M>(&params).await
    }

    /// A builder for a process running `program`, like
    /// `tokio::process::Command::new`. See [`Command`] for the defaults.
    pub fn command(&self, program: impl Into<String>) -> Command {
        Command::new(self.connection.clone(), program.into())
    }

    /// Closes the connection for every clone: no more calls can be sent, a
    /// resume in progress stops, and calls still waiting fail with
    /// [`ClientError::TransportClosed`]. The server ends the session and
    /// kills its processes at once over stdio; over WebSocket it keeps them
    /// for the session's TTL (`limits.sessionTtlMs`, 0 for at once), during
    /// which another client may resume the session by its id. Waits up to 10 s
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
