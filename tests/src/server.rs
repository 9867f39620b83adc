//! Starting the server under test: finding the `exec-server` binary (or the
//! one `EXEC_CONFORMANCE_SERVER` names), its settings, and a server on stdio
//! or on a WebSocket port.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Environment variable naming another server binary to test; it must take
/// `exec-server`'s `serve` arguments.
pub const SERVER_ENV: &str = "EXEC_CONFORMANCE_SERVER";

/// How long a server may take to start or stop.
const STARTUP: Duration = Duration::from_secs(60);

/// Server settings a case needs, named after the `initialize` result's
/// `limits` so that any implementation can map them to its own options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSettings {
    /// `limits.maxProcessesPerConnection` (`--max-processes`).
    pub max_processes_per_connection: Option<u64>,
    /// `limits.retainedOutputBytesPerProcess` (`--retained-output-bytes`).
    pub retained_output_bytes_per_process: Option<u64>,
}

impl ServerSettings {
    /// The `exec-server serve` arguments for these settings.
    pub fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(count) = self.max_processes_per_connection {
            args.extend(["--max-processes".to_owned(), count.to_string()]);
        }
        if let Some(bytes) = self.retained_output_bytes_per_process {
            args.extend(["--retained-output-bytes".to_owned(), bytes.to_string()]);
        }
        args
    }
}

/// The directory cargo builds this profile into (`target/debug`): the parent
/// of the running test binary's `deps` directory, or of a binary itself.
pub fn profile_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("the path of the running binary")?;
    let dir = exe.parent().context("the binary has a directory")?;
    Ok(if dir.file_name().is_some_and(|name| name == "deps") {
        dir.parent().unwrap_or(dir).to_path_buf()
    } else {
        dir.to_path_buf()
    })
}

/// The server binary: `EXEC_CONFORMANCE_SERVER` when set, else
/// `exec-server` in this profile's target directory, built with
/// `cargo build -p exec-server --bin exec-server` if it is missing
/// (`cargo test --workspace` builds it anyway).
///
/// # Panics
/// When the binary is missing and cannot be built.
pub fn server_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| locate_server_binary().unwrap_or_else(|error| panic!("{error:#}")))
        .clone()
}

fn locate_server_binary() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(SERVER_ENV).filter(|path| !path.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let binary = profile_dir()?.join(format!("exec-server{}", std::env::consts::EXE_SUFFIX));
    if !binary.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let status = std::process::Command::new(&cargo)
            .args(["build", "-p", "exec-server", "--bin", "exec-server"])
            .arg("--manifest-path")
            .arg(&manifest)
            .status()
            .with_context(|| format!("running `{cargo} build -p exec-server`"))?;
        if !status.success() {
            bail!("`cargo build -p exec-server --bin exec-server` failed ({status})");
        }
    }
    if !binary.is_file() {
        bail!("no exec-server at {}", binary.display());
    }
    Ok(binary)
}

/// `SERVER serve --listen stdio://` with piped stdin and stdout.
pub fn spawn_stdio(settings: &ServerSettings) -> Result<Child> {
    Command::new(server_binary())
        .args(["serve", "--listen", "stdio://"])
        .args(settings.args())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the server on stdio")
}

/// Waits for the line `PREFIX URL` on `child`'s piped stderr, returns `URL`,
/// and keeps draining stderr so the child never blocks on it.
pub async fn listening_url(child: &mut Child, prefix: &str) -> Result<String> {
    let stderr = child.stderr.take().context("stderr is piped")?;
    let mut lines = BufReader::new(stderr).lines();
    let url = tokio::time::timeout(STARTUP, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(url) = line.strip_prefix(prefix) {
                return Ok(url.trim().to_owned());
            }
        }
        bail!("the process exited without printing `{prefix}URL`")
    })
    .await
    .with_context(|| format!("waiting for `{prefix}URL`"))??;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(url)
}

/// Sends SIGTERM to `child` if it is still running.
pub fn terminate(child: &Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        // It may have exited meanwhile; then there is nothing to stop.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// `SERVER serve --listen ws://127.0.0.1:0`, stopped with SIGTERM on drop.
pub struct WsServer {
    /// The server process.
    child: Child,
    /// `ws://IP:PORT` as the server printed it.
    pub url: String,
}

impl WsServer {
    /// Starts a server and waits for its `exec-server listening on` line.
    pub async fn start(settings: &ServerSettings) -> Result<Self> {
        Self::start_with_token(settings, None).await
    }

    /// Like [`WsServer::start`], requiring `token` (passed in
    /// `EXEC_SERVER_TOKEN`, never as an argument) when one is given.
    pub async fn start_with_token(settings: &ServerSettings, token: Option<&str>) -> Result<Self> {
        let mut command = Command::new(server_binary());
        command.env_remove("EXEC_SERVER_TOKEN");
        if let Some(token) = token {
            command.env("EXEC_SERVER_TOKEN", token);
        }
        let mut child = command
            .args(["serve", "--listen", "ws://127.0.0.1:0"])
            .args(settings.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server on WebSocket")?;
        let url = listening_url(&mut child, "exec-server listening on ").await?;
        Ok(Self { child, url })
    }

    /// Sends SIGTERM and waits for the exit status (0 for a clean stop).
    pub async fn stop(mut self) -> Result<ExitStatus> {
        terminate(&self.child);
        tokio::time::timeout(STARTUP, self.child.wait())
            .await
            .context("the server stops after SIGTERM")?
            .context("waiting for the server")
    }
}

impl Drop for WsServer {
    fn drop(&mut self) {
        // A clean stop lets the server kill its process groups.
        terminate(&self.child);
    }
}
