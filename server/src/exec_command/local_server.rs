//! The local server `exec` uses when no `--url` is given: a server
//! connection served in this same process (`exec_server::in_process`), with
//! the containment `serve` sets up for itself: this process becomes the
//! child subreaper with the orphan reaper, the processes run in cgroups of
//! their own below this process's, and a guardian process kills what is
//! left should `exec` die (SIGKILL included).
//!
//! Earlier versions started this binary as `serve --listen stdio://` in a
//! process group of its own; serving in-process saves that process's start
//! and its handshake over pipes (issue 14: `exec -- true` took over 8 ms,
//! most of it a second process starting). What the separate group was for
//! still holds: a Ctrl-C at the terminal reaches only `exec`, which forwards
//! it as `interrupt` (the managed process leads a group or session of its
//! own), and the process's tree dies with the connection, which `exec`
//! closes on every way out; if `exec` is killed, the guardian kills it.

use std::sync::Arc;

use anyhow::{Context, Result};
use exec_client::{ConnectOptions, ExecClient};
use exec_server::ServerConfig;

/// The in-process server's process-wide state; dropping it after the
/// connection closed tells the guardian that the server ended cleanly.
pub(crate) struct LocalServer(());

impl LocalServer {
    /// Sets up the process-wide containment `serve` has, starts a server
    /// connection in this process and connects a client to it.
    ///
    /// # Errors
    /// This process cannot become the child subreaper; the handshake failed.
    pub(crate) async fn connect(options: ConnectOptions) -> Result<(ExecClient, Self)> {
        exec_server::process::init_reaper().context("becoming the child subreaper")?;
        if let Err(reason) = exec_server::process::init_cgroup_containment() {
            tracing::info!("no cgroup containment ({reason}); trees are found by walking /proc");
        }
        if let Err(error) = exec_server::guardian::start() {
            tracing::warn!(%error, "cannot start the guardian process");
        }
        let transport = exec_server::in_process::transport(Arc::new(ServerConfig::default()));
        let client = ExecClient::connect_transport(transport, options)
            .await
            .context("connecting to the in-process server")?;
        Ok((client, Self(())))
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        // Dropped after `close`, which returns once the server connection
        // killed the process's tree: nothing is left for the guardian to
        // sweep, only the cgroup to remove.
        exec_server::guardian::release();
    }
}
