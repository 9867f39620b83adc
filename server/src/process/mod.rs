//! Processes on pipes and PTYs, their sequence-numbered output, and killing
//! whole process trees.
//!
//! # Layout
//! - `mod.rs` (this file): [`ProcessTable`], one connection's processes and
//!   the `process/*` methods.
//! - `start`: `process/start` off the locks: the id reserved under the
//!   table's lock, the spawn outside every lock, the process in its place.
//! - `start_digest`: what a process keeps of its `process/start` to know a
//!   start retried after a resume (a SHA-256, not the request).
//! - `command`: a checked `process/start` request: program found in the
//!   child's `PATH`, whole environment, working directory; and the one
//!   builder of what the child execs, which both spawners start from.
//! - `env_policy`: the child's environment under Codex's `envPolicy`.
//! - `sandbox`: refusing Codex's sandbox and managed-network fields, which
//!   this server does not apply (fail closed).
//! - `pipe`, `pty`: starting a child on pipes or on a pseudo-terminal.
//! - `spawn`: starting a child without `fork` (`clone(CLONE_VM |
//!   CLONE_VFORK)`), its setup (stdio, group or session, cgroup, working
//!   directory, signals) done in the child before its exec.
//! - `child_wait`: waiting for a managed child's exit through its pidfd.
//! - `managed`: the state of one process shared by the methods and its tasks
//!   (event log, announce gate, stdin, PTY master, kill reason).
//! - `driver`: the tasks that read output, learn the exit, log events and
//!   send notifications with back-pressure.
//! - `read_buffer`: a stream's read buffer: room for the frame's head, made
//!   only once the stream is readable, handed on without a copy when full.
//! - `output`: the event log: seqs, retained output, cursors, dropped bytes.
//! - `events`: [`ProcessEvent`], the typed events a process reports (the
//!   protocol layer encodes them; nothing here knows JSON-RPC).
//! - `signal`: the one table of protocol signals and their POSIX signals.
//! - `tree`: a process's tree and killing trees: by cgroup, or in rounds of
//!   `/proc` walks.
//! - `cgroup`: cgroup v2 containment: a cgroup per process below one per
//!   table below the server's, `cgroup.kill`, removal.
//! - `reaper`: the child subreaper, the orphan reaper, and the managed
//!   children it must leave alone.
//! - `registry`: the live processes of every table, for [`kill_all`].
//! - `retention`: how long closed processes stay readable, and how many.
//! - `resume`: what a table does for a session that detaches and resumes:
//!   the eviction rule, `process/ack`, and answering retried starts.
//! - `global`: the server-wide side: [`init_reaper`],
//!   [`init_cgroup_containment`], [`kill_all`], and what the guardian runs.
//! - `shutdown`: the end of a table (its session ended): every tree killed.
//! - `timeout`: `timeoutMs`, the task that kills a whole tree when its time
//!   is up.
//! - `threads`: the pools process control's blocking work runs on (starts,
//!   kill rounds), apart from tokio's blocking pool.
//! - `identity`: this server's id (pid and random bits), for markers and
//!   cgroups.
//! - `procfs`: reading `/proc`.
//!
//! Imports between these files flow one way, from `start` and `global`
//! down to `procfs` and `cgroup`: `start` uses `pipe`, `pty`, `command`,
//! `driver`, `registry`, `managed`, `tree`, `cgroup` and `reaper`; `global`
//! uses `reaper`, `registry`, `tree` and `cgroup`; `driver` uses `registry`,
//! `managed`, `pty` (its master), `read_buffer` and `events`; `registry` uses `managed`; `managed` uses `tree`,
//! `signal`, `output`, `start_digest` and `pty` (its master); `pipe` and `pty` use `command`,
//! `spawn`, `child_wait`, `cgroup` (the child starts in its cgroup) and
//! `reaper`, and `pty` uses `read_buffer`; `command` uses `spawn` (what the child execs), `env_policy`
//! and `sandbox`;
//! `tree` uses `reaper` and `cgroup`; and
//! `command`, `tree` and `reaper` use `procfs`.
//!
//! # Which processes belong to a tree
//! With cgroup containment (`init_cgroup_containment`, on by default in
//! `serve`), a tree is its cgroup: the child is cloned into it (or, where
//! the kernel refuses `clone3`, joins it between clone and exec) and every
//! descendant stays in it, whatever it does; killing the tree
//! writes `cgroup.kill`. Without it (no writable cgroup v2, or
//! `serve --containment process-tree`), trees are found by walking `/proc`:
//! A managed process leads a process group of its own (a PTY process a
//! session of its own). Its descendants may leave both (`setsid`,
//! `setpgid`) and may lose their parent (a double fork), so killing the group
//! is not enough. Killing a tree works in rounds (at least two, until none
//! of its processes is alive); each round walks `/proc`, SIGSTOPs what it
//! found (a stopped process can neither fork nor die, so a second walk sees
//! intact parent links), walks again and SIGKILLs both finds. A tree is:
//! - the group, and every process whose group or session is the child's pid,
//!   while the child is not yet reaped (afterwards its pid may be reused);
//! - every process whose start environment carries the tree's marker: each
//!   managed child gets `EXEC_SERVER_TREE=<server id>/<table>/<process>/`
//!   (the server id is its pid and 32 random bits),
//!   which its descendants inherit. This finds escaped orphans, which the
//!   server, as child subreaper, has adopted;
//! - every process an earlier walk of the same tree found (remembered by pid
//!   and start time, so a reused pid is not mistaken for it);
//! - all descendants of the above, by parent links.
//!
//! Limits: a descendant that both left the group and session and started
//! with an environment without the marker is found only while it is the
//! descendant of a found process or was seen by an earlier walk of its tree;
//! a process that overwrites its start environment in memory hides its
//! marker. The marker is visible to the child as an environment variable.
//! A kill is followed by reaping: the managed child (pipes or PTY) is reaped
//! by its waiter (`child_wait`); adopted orphans by the orphan reaper.

mod cgroup;
mod cgroup_spares;
mod child_wait;
mod command;
mod driver;
mod env_policy;
mod events;
mod global;
mod identity;
mod managed;
mod output;
mod pipe;
mod procfs;
mod pty;
mod read_buffer;
mod reaper;
mod registry;
mod resume;
mod retention;
mod sandbox;
mod shutdown;
mod signal;
mod spawn;
mod start;
mod start_digest;
mod threads;
mod timeout;
mod tree;

pub use command::TOKEN_ENV_VARIABLE;
pub use events::{EncodeEvent, Encoder, EventSink, OutputRead, ProcessEvent};
pub use global::{
    cgroup_directory, init_cgroup_containment, init_reaper, kill_all, kill_dead_server_trees,
    remove_released_server_cgroup, server_id,
};
pub use reaper::is_ignored;
pub(crate) use sandbox::requested_profile;
pub use signal::nix_signal;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_protocol::{
    ExitReason, ProcessCloseStdinParams, ProcessCloseStdinResponse, ProcessId, ProcessListParams,
    ProcessListResponse, ProcessReadParams, ProcessReadResponse, ProcessResizeParams,
    ProcessResizeResponse, ProcessSignalParams, ProcessSignalResponse, ProcessStartParams,
    ProcessStartResponse, ProcessTerminateParams, ProcessTerminateResponse, ProcessWriteParams,
    ProcessWriteResponse, WriteStatus,
};
use tokio::sync::watch;

use self::managed::ManagedProcess;
use self::start::{Reservation, Started};
use crate::error::ServerError;
use crate::sync::lock;

/// Numbers tables, for the tree marker of their processes.
static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

/// Per-connection process limits and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// Output retained per process for `process/read`, in bytes (default 1 MiB);
    /// older chunks are evicted and reported as `droppedBytes`.
    pub retained_output_bytes: usize,
    /// How long a closed process stays readable after `process/closed` (default 30 s).
    pub retention: Duration,
    /// Processes per session that have not closed (default 256); one more
    /// gets `ServerError::LimitExceeded`. Closed processes do not count, and
    /// at most this many more are retained (the oldest leave first).
    pub max_processes: usize,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            retained_output_bytes: 1024 * 1024,
            retention: Duration::from_secs(30),
            max_processes: 256,
        }
    }
}

/// The processes of one connection. Cheap to clone (an `Arc` inside), `Send + Sync`.
#[derive(Clone)]
pub struct ProcessTable {
    /// The shared table.
    inner: Arc<TableInner>,
}

/// The state a [`ProcessTable`]'s clones share.
pub(crate) struct TableInner {
    /// Unique in this server, for the tree marker of its processes.
    id: u64,
    /// Limits and retention.
    config: ProcessConfig,
    /// Where its processes' events go: the session's event queue.
    events: EventSink,
    /// The processes by id, running or retained, and the ids reserved by
    /// starts in progress; a `BTreeMap` so that `process/list` comes out sorted.
    processes: Mutex<BTreeMap<ProcessId, Slot>>,
    /// True once the table shut down: no more starts, retention ends.
    closed: watch::Sender<bool>,
    /// Whether output not acknowledged may be evicted (see `resume`).
    evict_unacknowledged: AtomicBool,
    /// Whether the session was resumed: a retried start is then answered (see `resume`).
    resumed: AtomicBool,
    /// The retained closed processes, oldest first (see `retention`).
    closed_processes: retention::ClosedProcesses,
    /// What counts against `max_processes` (see `start`); locked only under
    /// `processes`.
    open: Mutex<start::OpenProcesses>,
    /// Emptied cgroups of closed processes, for the next starts.
    spare_cgroups: cgroup_spares::SpareCgroups,
}

/// What a table holds under one process id.
enum Slot {
    /// A start in progress reserved the id (see `start`); the receiver's
    /// sender is dropped when the start ends, for `shutdown` to wait on.
    Reserved(watch::Receiver<()>),
    /// A started process, running or retained.
    Started(Arc<ManagedProcess>),
}

impl Slot {
    /// The process, unless the slot is a reservation.
    fn process(&self) -> Option<&Arc<ManagedProcess>> {
        match self {
            Self::Reserved(_) => None,
            Self::Started(process) => Some(process),
        }
    }
}

impl TableInner {
    /// Removes `process` if the table still maps its id to it (the id may
    /// have been reused after an earlier removal).
    pub(crate) fn remove_if_same(&self, process: &Arc<ManagedProcess>) {
        let removed = {
            let mut processes = lock(&self.processes);
            let same = processes
                .get(&process.process_id)
                .and_then(Slot::process)
                .is_some_and(|current| Arc::ptr_eq(current, process));
            if same {
                processes.remove(&process.process_id);
            }
            same
        };
        // Its cgroup goes once empty (outside the lock: the cgroup
        // filesystem may make it wait); one that still holds descendants
        // stays until a kill of its tree or of the table removes it.
        if removed && let Some(directory) = process.tree.cgroup() {
            cgroup::remove(directory);
        }
    }

    /// What killing everything of this table takes (its session ended).
    fn sweep(&self) -> tree::Sweep {
        tree::Sweep {
            marker_prefix: self.marker_prefix(),
            cgroup: cgroup::table_directory(self.id),
        }
    }

    /// The tree marker prefix of this table's processes.
    fn marker_prefix(&self) -> String {
        format!("{}{}/", registry::server_marker_prefix(), self.id)
    }

    /// The process with this id.
    fn get(&self, process_id: &ProcessId) -> Option<Arc<ManagedProcess>> {
        lock(&self.processes)
            .get(process_id)
            .and_then(Slot::process)
            .cloned()
    }

    /// The process with this id, waiting while a start in progress holds
    /// the id, so that a request pipelined right behind its `process/start`
    /// finds the process as it would once the start's response came.
    async fn get_started(&self, process_id: &ProcessId) -> Option<Arc<ManagedProcess>> {
        loop {
            let mut start_ended = match lock(&self.processes).get(process_id)? {
                Slot::Started(process) => return Some(process.clone()),
                Slot::Reserved(ended) => ended.clone(),
            };
            // The reservation's sender never sends; it is dropped when the
            // start ends, either way.
            let _ = start_ended.changed().await;
        }
    }

    /// [`Self::get_started`], or `UnknownProcess`.
    async fn require(&self, process_id: &ProcessId) -> Result<Arc<ManagedProcess>, ServerError> {
        self.get_started(process_id)
            .await
            .ok_or_else(|| ServerError::UnknownProcess {
                process_id: process_id.clone(),
            })
    }
}

impl ProcessTable {
    /// An empty table whose processes' events go to `events`.
    pub fn new(config: ProcessConfig, events: EventSink) -> Self {
        Self {
            inner: Arc::new(TableInner {
                id: NEXT_TABLE_ID.fetch_add(1, Ordering::Relaxed),
                config,
                events,
                processes: Mutex::new(BTreeMap::new()),
                closed: watch::Sender::new(false),
                evict_unacknowledged: AtomicBool::new(true),
                resumed: AtomicBool::new(false),
                closed_processes: Mutex::default(),
                open: Mutex::default(),
                spare_cgroups: cgroup_spares::SpareCgroups::default(),
            }),
        }
    }

    /// `process/start`: starts a process in its own process group (a PTY
    /// process in its own session). Its notifications wait for [`Self::announce`].
    ///
    /// Errors: `InvalidParams` (empty `argv`), `InvalidPath`
    /// (relative `cwd`), `ProcessExists`, `LimitExceeded` (`max_processes`),
    /// `SpawnFailed`, `Internal` (the table shut down, a thread or PTY failure).
    ///
    /// Dropping the future after its first poll does not undo the start (see
    /// `start`'s invariants): the process then stays in the table, never
    /// announced, until [`Self::shutdown`] kills it.
    pub async fn start(
        &self,
        params: ProcessStartParams,
    ) -> Result<ProcessStartResponse, ServerError> {
        if let Some(retried) = self.retried_start(&params).await {
            return retried;
        }
        // Reserved before the first await, so that of two starts with one id
        // the one called first wins, as when a start ran all at once. The
        // rest blocks (stat, PATH search, clone and exec), so it runs on the
        // blocking pool, outside every lock.
        let reservation = Reservation::take(&self.inner, &params.process_id);
        let table = self.clone();
        // A task of its own, so that the start runs to its end (its tasks
        // started) even when this future is dropped.
        let started = tokio::spawn(async move {
            threads::run_start(move || table.start_blocking(params, reservation))
                .await?
                .map(Started::run)?
        });
        started
            .await
            .map_err(|error| ServerError::Internal(format!("the start failed: {error}")))?
    }

    /// Lets `process_id`'s notifications go out. The connection calls it right
    /// after it queued the `process/start` response, so output never
    /// overtakes that response. An unknown id is ignored.
    pub fn announce(&self, process_id: &ProcessId) {
        if let Some(process) = self.inner.get(process_id) {
            process.announce();
        }
    }

    /// `process/read`: retained output after `afterSeq`, waiting up to
    /// `waitMs` milliseconds for an event when there is none yet; `maxBytes`
    /// bounds the chunk bytes (at least one chunk is returned when any is there).
    ///
    /// Errors: `UnknownProcess`.
    pub async fn read(
        &self,
        params: ProcessReadParams,
    ) -> Result<ProcessReadResponse, ServerError> {
        let process = self.inner.require(&params.process_id).await?;
        Ok(process
            .read(
                params.after_seq.unwrap_or(0),
                params.max_bytes.unwrap_or(u64::MAX),
                Duration::from_millis(params.wait_ms.unwrap_or(0)),
            )
            .await)
    }

    /// `process/write`: writes the bytes to stdin (PTY processes and pipe
    /// processes with `pipeStdin`); a `writeId` seen recently is accepted
    /// without writing again. An unknown process is status `unknownProcess`,
    /// a closed or never-open stdin `stdinClosed`.
    ///
    /// A PTY write waits for the terminal through the reactor, holding no
    /// thread, and only its own process's later writes wait behind it.
    ///
    /// Errors: `Internal` only when the task finishing a PTY write panicked
    /// or the runtime shut down under it.
    pub async fn write(
        &self,
        params: ProcessWriteParams,
    ) -> Result<ProcessWriteResponse, ServerError> {
        let Some(process) = self.inner.get_started(&params.process_id).await else {
            return Ok(ProcessWriteResponse {
                status: WriteStatus::UnknownProcess,
            });
        };
        let status = process
            .write(params.chunk.into_inner(), params.write_id)
            .await?;
        Ok(ProcessWriteResponse { status })
    }

    /// `process/closeStdin`: closes a pipe process's stdin (the child reads
    /// EOF) or types the terminal's VEOF character on a PTY.
    ///
    /// Errors: `UnknownProcess`; `StdinClosed` for a pipe process started
    /// without `pipeStdin`.
    pub async fn close_stdin(
        &self,
        params: ProcessCloseStdinParams,
    ) -> Result<ProcessCloseStdinResponse, ServerError> {
        let process = self.inner.require(&params.process_id).await?;
        process.close_stdin().await?;
        Ok(ProcessCloseStdinResponse {})
    }

    /// `process/resize`: sets a PTY's size in rows and columns; the child gets SIGWINCH.
    ///
    /// Errors: `UnknownProcess`; `NotPty` for a pipe process; `Internal` when the kernel refuses.
    pub async fn resize(
        &self,
        params: ProcessResizeParams,
    ) -> Result<ProcessResizeResponse, ServerError> {
        let process = self.inner.require(&params.process_id).await?;
        process.resize(params.rows.get(), params.cols.get())?;
        Ok(ProcessResizeResponse {})
    }

    /// `process/signal`: sends the signal to the process's group (nothing
    /// once the process was reaped).
    ///
    /// Errors: `UnknownProcess`; `Internal` when the kernel refuses.
    pub async fn signal(
        &self,
        params: ProcessSignalParams,
    ) -> Result<ProcessSignalResponse, ServerError> {
        let process = self.inner.require(&params.process_id).await?;
        process.signal(params.signal)?;
        Ok(ProcessSignalResponse {})
    }

    /// `process/terminate`: kills the process's whole tree (exit reason
    /// `killed`) and returns once every process of it got SIGKILL. `running`
    /// is false for an unknown or already exited process (whose leftover
    /// descendants are killed all the same). Never an error.
    pub async fn terminate(
        &self,
        params: ProcessTerminateParams,
    ) -> Result<ProcessTerminateResponse, ServerError> {
        let Some(process) = self.inner.get_started(&params.process_id).await else {
            return Ok(ProcessTerminateResponse { running: false });
        };
        let running = process.request_kill(ExitReason::Killed);
        tree::kill_trees(vec![process.tree.clone()], None).await;
        Ok(ProcessTerminateResponse { running })
    }

    /// `process/list`: every process of the connection, running or retained,
    /// sorted by `processId`. Never an error.
    pub async fn list(
        &self,
        _params: ProcessListParams,
    ) -> Result<ProcessListResponse, ServerError> {
        let processes: Vec<Arc<ManagedProcess>> = lock(&self.inner.processes)
            .values()
            .filter_map(Slot::process)
            .cloned()
            .collect();
        Ok(ProcessListResponse {
            processes: processes.iter().map(|process| process.info()).collect(),
        })
    }
}

#[cfg(test)]
mod tests;
