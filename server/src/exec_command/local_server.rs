//! The local server `exec` starts when no `--url` is given: this same
//! binary as `exec-server serve --listen stdio://`, in a process group of
//! its own.
//!
//! `ExecClient::spawn_local` is not used because it starts the server in the
//! caller's process group. A Ctrl-C at the terminal sends SIGINT to the
//! whole foreground group, and a server that gets SIGINT shuts down, killing
//! the process that `exec` was about to send `interrupt` to. In a group of
//! its own the server never sees the terminal's signals; it still ends with
//! `exec`, because its stdin (the connection) closes when `exec` exits, even
//! when `exec` is killed.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result};
use exec_client::{ConnectOptions, ExecClient};
use tokio::process::Child;

/// How long [`LocalServer::finish`] waits for the server to exit after the
/// connection closed before killing it.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A running local server; [`LocalServer::finish`] waits for it to exit.
pub(crate) struct LocalServer {
    /// The server process.
    child: Child,
}

impl LocalServer {
    /// Starts this executable as `serve --listen stdio://` and connects a
    /// client to it over its stdin and stdout (its stderr is shared, for
    /// its log lines).
    ///
    /// # Errors
    /// The executable cannot be found or started; the handshake failed.
    pub(crate) async fn connect(options: ConnectOptions) -> Result<(ExecClient, Self)> {
        let program = std::env::current_exe().context("finding this executable")?;
        let mut child = tokio::process::Command::new(&program)
            .args(["serve", "--listen", "stdio://"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the local server {}", program.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            // Both were requested as pipes just above.
            let _ = child.start_kill();
            anyhow::bail!("the local server's stdio pipes are missing");
        };
        let server = Self { child };
        match ExecClient::connect_stdio(stdout, stdin, options).await {
            Ok(client) => Ok((client, server)),
            Err(error) => {
                server.finish().await;
                Err(error).context("connecting to the local server")
            }
        }
    }

    /// Waits for the server to exit (it does once its connection closed,
    /// after killing its processes), killing it after 10 s.
    pub(crate) async fn finish(mut self) {
        match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(Ok(_status)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot wait for the local server"),
            Err(_) => {
                tracing::warn!("the local server did not exit in time; killing it");
                let _ = self.child.kill().await;
            }
        }
    }
}
