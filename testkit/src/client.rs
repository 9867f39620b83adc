//! [`connect_client`]: an `exec_client::ExecClient` connected to a fresh
//! server over any [`Transport`], with what keeps that server running.

use std::sync::Arc;

use exec_client::{ConnectOptions, ExecClient};

use crate::error::HarnessError;
use crate::launcher::ServerLauncher;
use crate::server_process::ServerProcess;
use crate::transport::Transport;
use crate::ws_server::WsServer;

/// The server of a client from [`connect_client`]; keep it as long as the
/// client is used (a started process gets SIGTERM when this is dropped).
#[derive(Debug)]
pub enum RunningServer {
    /// The client owns it: `ExecClient::spawn_local`'s child, or an
    /// in-process server on this process's Tokio tasks.
    InClient,
    /// A `serve --listen stdio://` child the harness started (for limits
    /// or arguments `spawn_local` cannot pass).
    Stdio(Box<ServerProcess>),
    /// The WebSocket server the client connected to.
    WebSocket(Box<WsServer>),
}

/// Starts a server as `launcher` says and connects an initialized
/// `ExecClient` to it with `options`:
/// - [`Transport::Stdio`]: `ExecClient::spawn_local` on the launcher's
///   binary when the launcher is default ([`ServerLauncher::is_default`]),
///   so the client owns the child (`local_server_pid` is set); otherwise the
///   harness starts the child with the launcher's arguments and connects
///   with `ExecClient::connect_stdio`;
/// - [`Transport::WebSocket`]: `ExecClient::connect_websocket` to a server
///   on port 0 (behind the proxy when the launcher asks);
/// - [`Transport::InProcess`]: `ExecClient::connect_transport` over
///   `exec_server::in_process::transport` with the launcher's limits.
///
/// Call it within a Tokio runtime.
///
/// # Errors
/// The launcher's errors, and [`HarnessError::Client`] when the client
/// cannot connect or initialize.
pub async fn connect_client(
    transport: Transport,
    launcher: &ServerLauncher,
    options: ConnectOptions,
) -> Result<(ExecClient, RunningServer), HarnessError> {
    let client_error = |source| HarnessError::Client { transport, source };
    match transport {
        Transport::Stdio if launcher.is_default() => {
            let options = options.server_binary(launcher.server_binary()?);
            let client = ExecClient::spawn_local(options)
                .await
                .map_err(client_error)?;
            Ok((client, RunningServer::InClient))
        }
        Transport::Stdio => {
            let server = launcher.spawn_stdio()?;
            let client = ExecClient::connect_stdio(server.stdout, server.stdin, options)
                .await
                .map_err(client_error)?;
            Ok((client, RunningServer::Stdio(Box::new(server.process))))
        }
        Transport::WebSocket => {
            let server = launcher.start_websocket().await?;
            let client = ExecClient::connect_websocket(&server.url, options)
                .await
                .map_err(client_error)?;
            Ok((client, RunningServer::WebSocket(Box::new(server))))
        }
        Transport::InProcess => {
            let channels = exec_server::in_process::transport(Arc::new(launcher.config()?));
            let client = ExecClient::connect_transport(channels, options)
                .await
                .map_err(client_error)?;
            Ok((client, RunningServer::InClient))
        }
    }
}

/// Starts a `process/read` of `process_id` that waits a minute past the end
/// of its sequence (`afterSeq` near `u64::MAX`), so nothing answers it
/// before the connection goes; then waits until the server has read it,
/// by a `process/list` answered after it on the same connection. For tests
/// of what a call pending at a drop gets.
///
/// # Panics
/// When `process_id` is not a valid process id or the `process/list` fails.
pub async fn pending_long_poll(
    client: &ExecClient,
    process_id: &str,
) -> tokio::task::JoinHandle<
    Result<exec_client::protocol::ProcessReadResponse, exec_client::ClientError>,
> {
    let pending = tokio::spawn({
        let client = client.clone();
        let process_id = process_id.to_owned();
        async move {
            client
                .process_read(exec_client::protocol::ProcessReadParams {
                    after_seq: Some(u64::MAX - 1),
                    max_bytes: None,
                    process_id: process_id.try_into().expect("a process id"),
                    wait_ms: Some(60_000),
                })
                .await
        }
    });
    client
        .process_list(exec_client::protocol::ProcessListParams {})
        .await
        .expect("process/list answers after the long poll was read");
    pending
}
