//! The processes a run starts: the real `exec-server` over WebSocket and
//! stdio, started by the workspace's one harness (`exec_testkit`), and this
//! binary's own helpers (`exec-bench helper ...`) that serve as baselines.
//! Each server is stopped with SIGTERM or the end of its stdin, so that it
//! kills its managed processes, never with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use exec_client::{ConnectOptions, ExecClient};
use exec_testkit::{RunningServer, ServerLauncher, ServerProcess, Transport, connect_client};
use tokio::process::{Child, Command};

/// `PATH` for the processes the server starts (their environment is empty otherwise).
pub use exec_testkit::CHILD_PATH;

/// The binaries a run uses.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `exec-server`.
    pub server: PathBuf,
    /// This driver, for `exec-bench helper ...`.
    pub driver: PathBuf,
}

/// Client options for every connection of the benchmark.
pub fn client_options() -> ConnectOptions {
    ConnectOptions::new("exec-bench").client_version(env!("CARGO_PKG_VERSION"))
}

/// The server `binary` with room for `max_processes` per connection.
fn launcher(binary: &Path, max_processes: usize) -> ServerLauncher {
    ServerLauncher::new()
        .binary(binary)
        .max_processes(max_processes)
}

/// `exec-server serve --listen ws://127.0.0.1:0` (SIGTERM when dropped).
pub struct WsServer {
    /// The harness's server.
    server: exec_testkit::WsServer,
}

impl WsServer {
    /// Starts the server with room for `max_processes` per connection and
    /// waits for its `listening` line.
    ///
    /// # Errors
    /// When it cannot be started or exits before listening.
    pub async fn start(binary: &Path, max_processes: usize) -> Result<Self> {
        let server = launcher(binary, max_processes)
            .start_websocket()
            .await
            .with_context(|| format!("starting {} on WebSocket", binary.display()))?;
        Ok(Self { server })
    }

    /// The server's `ws://` URL.
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// A new initialized client of this server.
    ///
    /// # Errors
    /// When connecting or the handshake fails.
    pub async fn connect(&self) -> Result<ExecClient> {
        ExecClient::connect_websocket(&self.server.url, client_options())
            .await
            .with_context(|| format!("connecting to {}", self.server.url))
    }

    /// The server's resident memory (`VmRSS`), in KiB.
    ///
    /// # Errors
    /// When the server is gone.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.server.process.pid().context("the server has exited")?)
    }

    /// Stops the server with SIGTERM (it kills every managed process) and waits.
    ///
    /// # Errors
    /// When it does not exit in time or fails.
    pub async fn stop(self) -> Result<()> {
        let status = self
            .server
            .stop()
            .await
            .context("stopping exec-server with SIGTERM")?;
        if !status.success() {
            bail!("exec-server exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

/// `exec-server serve --listen stdio://` with `--max-processes`, which
/// `ExecClient::spawn_local` cannot pass (SIGTERM when dropped).
pub struct StdioServer {
    /// The server process.
    process: ServerProcess,
}

impl StdioServer {
    /// Starts the server and connects a client to its stdin and stdout.
    ///
    /// # Errors
    /// When it cannot be started or the handshake fails.
    pub async fn start(binary: &Path, max_processes: usize) -> Result<(Self, ExecClient)> {
        let launcher = launcher(binary, max_processes);
        let (client, server) = connect_client(Transport::Stdio, &launcher, client_options())
            .await
            .with_context(|| format!("connecting to {} over stdio", binary.display()))?;
        match server {
            RunningServer::Stdio(process) => Ok((Self { process: *process }, client)),
            other => bail!("expected a stdio child of the harness, got {other:?}"),
        }
    }

    /// Closes `client` (the server sees EOF, kills its processes and exits)
    /// and waits for the server.
    ///
    /// # Errors
    /// When the server does not exit in time or fails.
    pub async fn stop(mut self, client: ExecClient) -> Result<()> {
        client.close().await.context("closing the stdio client")?;
        let status = self
            .process
            .wait()
            .await
            .context("exec-server did not exit at EOF")?;
        if !status.success() {
            bail!("exec-server exited with {status}");
        }
        Ok(())
    }
}

/// A helper: this binary started as `exec-bench helper ARGS...`, with piped
/// stdin and stdout.
pub fn start_helper(binaries: &Binaries, args: &[&str]) -> Result<Child> {
    Command::new(&binaries.driver)
        .arg("helper")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} helper {args:?}", binaries.driver.display()))
}

/// The resident memory (`VmRSS` of `/proc/PID/status`) of process `pid`, in KiB.
///
/// # Errors
/// When the process is gone or the file has no such line.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().strip_suffix("kB"))
        .and_then(|value| value.trim().parse().ok())
        .with_context(|| format!("no VmRSS line in {path}"))
}
