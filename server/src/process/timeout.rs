//! `timeoutMs`: the task that kills a process's whole tree when its time is
//! up, reason `timedOut` while its child runs. The timeout holds for the
//! whole tree: what the child left running when it exited before its time
//! dies then too.
//!
//! The task holds the tree and only a weak reference to the process (whose
//! retained output may go first), and ends early when the process's table
//! shuts down, since every tree of the table dies with it.

use std::sync::{Arc, Weak};
use std::time::Duration;

use exec_protocol::ExitReason;
use tokio::sync::watch;

use super::managed::ManagedProcess;
use super::tree::{self, Tree};

/// A process's `timeoutMs`, not started yet.
pub(crate) struct Timeout {
    /// The process, for its exit reason while its child runs.
    process: Weak<ManagedProcess>,
    /// Its tree, killed when the time is up.
    tree: Arc<Tree>,
    /// How long after the start.
    after: Duration,
    /// Whether the process's table shut down.
    table_closed: watch::Receiver<bool>,
}

impl Timeout {
    /// The timeout of `process`, `after` its start; it ends early once
    /// `table_closed` says so.
    pub(crate) fn new(
        process: &Arc<ManagedProcess>,
        after: Duration,
        table_closed: watch::Receiver<bool>,
    ) -> Self {
        Self {
            process: Arc::downgrade(process),
            tree: process.tree.clone(),
            after,
            table_closed,
        }
    }

    /// Waits out the timeout, then kills the tree (a task of its own).
    pub(crate) async fn run(mut self) {
        tokio::select! {
            () = tokio::time::sleep(self.after) => {}
            // The table's shutdown killed every tree; a dropped table too.
            _ = self.table_closed.wait_for(|closed| *closed) => return,
        }
        if let Some(process) = self.process.upgrade() {
            process.request_kill(ExitReason::TimedOut);
        }
        tree::kill_trees(vec![self.tree], None).await;
    }
}
