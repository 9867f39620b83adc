//! The processes a run starts: the real `exec-server` over WebSocket or
//! stdio, and this binary's own helpers (`exec-bench helper ...`) that serve
//! as baselines. Each server is stopped with SIGTERM, so that it kills its
//! managed processes, never with SIGKILL.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use exec_client::{ConnectOptions, ExecClient};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// `PATH` for the processes the server starts (their environment is empty otherwise).
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long a server may take to start, or to stop after SIGTERM.
const SERVER_TIMEOUT: Duration = Duration::from_secs(10);

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

/// `exec-server serve --listen ws://127.0.0.1:0`.
pub struct WsServer {
    /// The server process.
    child: Child,
    /// `ws://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
}

impl WsServer {
    /// Starts the server with room for `max_processes` per connection and
    /// waits for its `listening` line.
    ///
    /// # Errors
    /// When it cannot be started or exits before listening.
    pub async fn start(binary: &Path, max_processes: usize) -> Result<Self> {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "ws://127.0.0.1:0", "--max-processes"])
            .arg(max_processes.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let url = tokio::time::timeout(SERVER_TIMEOUT, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("exec-server listening on ") {
                    return Ok(url.trim().to_owned());
                }
                eprintln!("{line}");
            }
            bail!("exec-server exited before it listened")
        })
        .await
        .context("exec-server did not say where it listens")??;
        // Pass on whatever it logs later (warnings), so nothing is hidden.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("{line}");
            }
        });
        Ok(Self { child, url })
    }

    /// A new initialized client of this server.
    ///
    /// # Errors
    /// When connecting or the handshake fails.
    pub async fn connect(&self) -> Result<ExecClient> {
        ExecClient::connect_websocket(&self.url, client_options())
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    /// The server's resident memory (`VmRSS`), in KiB.
    ///
    /// # Errors
    /// When the server is gone.
    pub fn rss_kib(&self) -> Result<u64> {
        rss_kib(self.child.id().context("the server has exited")?)
    }

    /// Stops the server with SIGTERM (it kills every managed process) and waits.
    ///
    /// # Errors
    /// When it does not exit in time or fails.
    pub async fn stop(mut self) -> Result<()> {
        terminate(&self.child);
        let status = tokio::time::timeout(SERVER_TIMEOUT, self.child.wait())
            .await
            .context("exec-server did not exit after SIGTERM")??;
        if !status.success() {
            bail!("exec-server exited with {status} after SIGTERM");
        }
        Ok(())
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        terminate(&self.child);
    }
}

/// `exec-server serve --listen stdio://`, started here (rather than by
/// `ExecClient::spawn_local`) so that it gets `--max-processes`.
pub struct StdioServer {
    /// The server process.
    child: Child,
}

impl StdioServer {
    /// Starts the server and connects a client to its stdin and stdout.
    ///
    /// # Errors
    /// When it cannot be started or the handshake fails.
    pub async fn start(binary: &Path, max_processes: usize) -> Result<(Self, ExecClient)> {
        let mut child = Command::new(binary)
            .args(["serve", "--listen", "stdio://", "--max-processes"])
            .arg(max_processes.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdin: ChildStdin = child.stdin.take().context("the server's stdin")?;
        let stdout: ChildStdout = child.stdout.take().context("the server's stdout")?;
        let server = Self { child };
        let client = ExecClient::connect_stdio(stdout, stdin, client_options())
            .await
            .context("connecting to exec-server over stdio")?;
        Ok((server, client))
    }

    /// Closes `client` (the server sees EOF, kills its processes and exits)
    /// and waits for the server.
    ///
    /// # Errors
    /// When the server does not exit in time or fails.
    pub async fn stop(mut self, client: ExecClient) -> Result<()> {
        client.close().await.context("closing the stdio client")?;
        let status = tokio::time::timeout(SERVER_TIMEOUT, self.child.wait())
            .await
            .context("exec-server did not exit at EOF")??;
        if !status.success() {
            bail!("exec-server exited with {status}");
        }
        Ok(())
    }
}

impl Drop for StdioServer {
    fn drop(&mut self) {
        terminate(&self.child);
    }
}

/// Sends SIGTERM to `child` unless it was already reaped.
fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
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
