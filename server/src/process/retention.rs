//! How long a closed process stays in its table: for `ProcessConfig::retention`
//! after `process/closed`, so that `process/read` can still serve it, but
//! never more than `max_processes` closed processes at once (the oldest
//! goes first), since closed processes no longer count against the limit
//! of processes a table may have.

use std::collections::VecDeque;
use std::sync::Arc;

use super::TableInner;
use super::managed::ManagedProcess;
use crate::sync::lock;

/// The closed processes of a table, oldest first.
pub(super) type ClosedProcesses = std::sync::Mutex<VecDeque<Arc<ManagedProcess>>>;

impl TableInner {
    /// `process` closed: it joins the retained closed processes; beyond
    /// `max_processes` of them the oldest is removed from the table now.
    pub(crate) fn retire(&self, process: &Arc<ManagedProcess>) {
        let evicted: Vec<Arc<ManagedProcess>> = {
            let mut closed = lock(&self.closed_processes);
            closed.push_back(process.clone());
            let excess = closed
                .len()
                .saturating_sub(self.config.max_processes.max(1));
            closed.drain(..excess).collect()
        };
        for oldest in evicted {
            self.remove_if_same(&oldest);
        }
    }

    /// `process`'s retention ran out: it leaves the table.
    pub(crate) fn forget(&self, process: &Arc<ManagedProcess>) {
        lock(&self.closed_processes).retain(|closed| !Arc::ptr_eq(closed, process));
        self.remove_if_same(process);
    }
}
