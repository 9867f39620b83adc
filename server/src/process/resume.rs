//! What a process table does for a session that outlives its connection:
//! the eviction rule of its retained output, the client's `process/ack`s,
//! and answering a `process/start` retried after a resume.
//!
//! The eviction rule (see `output`): output the client did not acknowledge
//! may be evicted only while a connection is attached that does not send
//! acknowledgements (v1's behaviour, and Codex's). While the session is
//! detached, or its client acknowledges, unacknowledged output is kept and a
//! process whose log is full is not read until room frees up, so that a
//! client that resumes can replay every byte.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use exec_protocol::{ProcessId, ProcessStartParams, ProcessStartResponse, SandboxType};

use super::managed::ManagedProcess;
use super::{ProcessTable, Slot, TableInner};
use crate::error::ServerError;
use crate::sync::lock;

impl TableInner {
    /// Whether a process joining the table may evict unacknowledged output.
    /// Read under the table's lock, which [`ProcessTable::set_delivery`] holds.
    pub(super) fn evicts_unacknowledged(&self) -> bool {
        self.evict_unacknowledged.load(Ordering::Acquire)
    }
}

impl ProcessTable {
    /// Sets how output reaches the client: whether a connection is attached
    /// and whether it acknowledges output; applies the resulting eviction
    /// rule to every process (and, through the lock, to those joining).
    pub fn set_delivery(&self, attached: bool, acknowledged: bool) {
        let evict = attached && !acknowledged;
        let processes = lock(&self.inner.processes);
        self.inner
            .evict_unacknowledged
            .store(evict, Ordering::Release);
        for process in processes.values().filter_map(Slot::process) {
            process.set_evict_unacknowledged(evict);
        }
    }

    /// `process/ack`: the client received every event of `process_id` up to
    /// `seq`. An unknown process is ignored (it is a notification).
    pub fn acknowledge(&self, process_id: &ProcessId, seq: u64) {
        if let Some(process) = self.inner.get(process_id) {
            process.acknowledge(seq);
        }
    }

    /// The session was resumed by a new connection: from now on a retried
    /// start is answered, and every process whose start response never
    /// went out (the old connection dropped first) is announced, so that its
    /// notifications flow (a client that does not know it ignores them, and
    /// one that retries its start learns of it then).
    pub fn resumed(&self) {
        self.inner.resumed.store(true, Ordering::Release);
        let processes: Vec<Arc<ManagedProcess>> = lock(&self.inner.processes)
            .values()
            .filter_map(Slot::process)
            .cloned()
            .collect();
        for process in processes {
            process.announce();
        }
    }

    /// In a resumed session, a start whose `processId` is taken: the
    /// original process's result when the params are identical (the client
    /// retries a start it cannot know ran), `ProcessExists` when not. `None`
    /// when the session was not resumed or the id is free: start as usual.
    pub(super) async fn retried_start(
        &self,
        params: &ProcessStartParams,
    ) -> Option<Result<ProcessStartResponse, ServerError>> {
        if !self.inner.resumed.load(Ordering::Acquire) {
            return None;
        }
        let process = self.inner.get_started(&params.process_id).await?;
        if !process.start_digest.matches(params) {
            return Some(Err(ServerError::ProcessExists {
                process_id: params.process_id.clone(),
            }));
        }
        Some(Ok(ProcessStartResponse {
            process_id: process.process_id.clone(),
            pid: process.pid(),
            sandbox_type: Some(SandboxType::None),
        }))
    }
}
