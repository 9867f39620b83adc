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
//!
//! `exec` does not wait for the server to exit: the server closes its
//! stdout once the connection ended and it killed the connection's process
//! trees (see `main.rs`), and that end of file is what closing the client
//! waits for. The server's own exit (its runtime, its guardian, its cgroup)
//! then happens after `exec` exited, off the command's critical path.

use std::process::Stdio;

use anyhow::{Context, Result};
use exec_client::{ConnectOptions, ExecClient};
use tokio::process::Child;

/// A running local server; dropping it leaves it to end by itself once
/// its stdin closes.
pub(crate) struct LocalServer {
    /// The server process, held so that a failed handshake can kill it.
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
        let mut server = Self { child };
        match ExecClient::connect_stdio(stdout, stdin, options).await {
            Ok(client) => Ok((client, server)),
            Err(error) => {
                // The handshake failed: the server may be stuck, so it is
                // not left to end by itself.
                if let Err(error) = server.child.kill().await {
                    tracing::warn!(%error, "cannot kill the local server");
                }
                Err(error).context("connecting to the local server")
            }
        }
    }
}
