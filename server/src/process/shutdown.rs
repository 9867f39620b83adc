//! The end of a table, when its session ends: every tree of it killed
//! (leftovers of processes that already closed included), its processes
//! removed and its cgroup with them.

use std::sync::Arc;

use exec_protocol::ExitReason;
use tokio::sync::watch;

use super::managed::ManagedProcess;
use super::{ProcessTable, Slot, cgroup, tree};
use crate::sync::lock;

impl ProcessTable {
    /// The connection closed: kills every process tree of this table (exit
    /// reason `killed`), including leftovers of processes already removed,
    /// and waits until the children are reaped. Their notifications are
    /// dropped; later starts fail.
    pub async fn shutdown(&self) {
        // Closed under the lock, so that every start either reserved before
        // (and is waited for here) or finds the table closed.
        let starting: Vec<watch::Receiver<()>> = {
            let processes = lock(&self.inner.processes);
            self.inner.closed.send_replace(true);
            processes
                .values()
                .filter_map(|slot| match slot {
                    Slot::Reserved(ended) => Some(ended.clone()),
                    Slot::Started(_) => None,
                })
                .collect()
        };
        // What runs dies first: a start that hangs (a working directory on a
        // stalled mount) must not keep the other trees alive.
        let mut processes = self.kill_started().await;
        if !starting.is_empty() {
            for mut ended in starting {
                // Nothing is ever sent: this returns once the start dropped
                // its sender, its process (if any) now in the table.
                let _ = ended.changed().await;
            }
            processes = self.kill_started().await;
        }
        for process in &processes {
            process.tree.wait_reaped().await;
        }
        lock(&self.inner.processes).clear();
        if let Some(directory) = cgroup::table_directory(self.inner.id) {
            cgroup::remove(&directory);
        }
    }

    /// For `shutdown`: silences and kills every started process of the table
    /// and everything carrying its marker or in its cgroup; returns them.
    async fn kill_started(&self) -> Vec<Arc<ManagedProcess>> {
        let processes: Vec<Arc<ManagedProcess>> = lock(&self.inner.processes)
            .values()
            .filter_map(Slot::process)
            .cloned()
            .collect();
        for process in &processes {
            process.silence();
            process.request_kill(ExitReason::Killed);
        }
        let trees = processes
            .iter()
            .map(|process| process.tree.clone())
            .collect();
        tree::kill_trees(trees, Some(self.inner.sweep())).await;
        processes
    }
}
