//! [`WsServer`]: the server on a WebSocket port, optionally behind the
//! validating `conformance-proxy` of the conformance suite.

use std::process::{ExitStatus, Stdio};

use tokio::process::Command;

use crate::error::HarnessError;
use crate::server_process::ServerProcess;

/// The variable naming the `conformance-proxy` binary (`cargo xtask test`
/// sets it, with `EXEC_CONFORMANCE_VIOLATIONS`, the file the proxy records
/// violations in, which the proxy reads from its inherited environment).
pub const CONFORMANCE_PROXY_ENV: &str = "EXEC_CONFORMANCE_PROXY";

/// What the server prints on stderr once it listens, before its URL.
const SERVER_LISTENING: &str = "exec-server listening on ";

/// What the proxy prints on stderr once it listens, before its URL.
const PROXY_LISTENING: &str = "conformance-proxy listening on ";

/// A server listening on a WebSocket port; it (and the proxy) get SIGTERM
/// when dropped.
#[derive(Debug)]
pub struct WsServer {
    /// The server process.
    pub process: ServerProcess,
    /// The proxy in front of it, when one was asked for and named.
    pub proxy: Option<ServerProcess>,
    /// Where clients connect: the proxy's URL when there is a proxy, else
    /// the server's (`ws://127.0.0.1:PORT`, as printed).
    pub url: String,
    /// The server's own URL, as it printed it.
    pub server_url: String,
}

impl WsServer {
    /// Spawns `command` (a `serve --listen ws://...`), waits for its
    /// address, and when `behind_proxy` and `EXEC_CONFORMANCE_PROXY` is set,
    /// starts the proxy in front.
    pub(crate) async fn start(command: Command, behind_proxy: bool) -> Result<Self, HarnessError> {
        let process = ServerProcess::spawn(command, "exec-server")?;
        let server_url = process.listening_url(SERVER_LISTENING).await?;
        let proxy_binary =
            std::env::var_os(CONFORMANCE_PROXY_ENV).filter(|path| behind_proxy && !path.is_empty());
        let Some(proxy_binary) = proxy_binary else {
            return Ok(Self {
                process,
                proxy: None,
                url: server_url.clone(),
                server_url,
            });
        };
        // The proxy forwards the client's `Authorization` header, so token
        // tests see the server's own answers.
        let mut command = Command::new(proxy_binary);
        command
            .args(["--upstream", &server_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let proxy = ServerProcess::spawn(command, "conformance-proxy")?;
        let url = proxy.listening_url(PROXY_LISTENING).await?;
        Ok(Self {
            process,
            proxy: Some(proxy),
            url,
            server_url,
        })
    }

    /// Sends SIGTERM to the server (it kills its processes and exits 0); the
    /// proxy stays, and closes its clients when the server goes away.
    pub fn terminate(&self) {
        self.process.terminate();
    }

    /// Waits for the server to exit.
    ///
    /// # Errors
    /// As [`ServerProcess::wait`].
    pub async fn wait(&mut self) -> Result<ExitStatus, HarnessError> {
        self.process.wait().await
    }

    /// Stops the server with SIGTERM and returns its exit status (0 for a
    /// clean stop); the proxy gets SIGTERM when this is dropped.
    ///
    /// # Errors
    /// As [`ServerProcess::wait`].
    pub async fn stop(mut self) -> Result<ExitStatus, HarnessError> {
        self.process.stop().await
    }
}
