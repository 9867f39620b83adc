//! `process/start` off the locks: the id is reserved under the table's lock,
//! the blocking work runs on tokio's blocking pool outside every lock, and
//! the process then takes its reservation's place under the lock.
//!
//! The blocking work is the checks of [`LaunchSpec::new`] (a stat of the
//! working directory, the `PATH` search), the clone and exec (`pipe::spawn`,
//! `pty::spawn`, which also opens the PTY and registers its master with the
//! reactor). None of it runs under the table's lock, nor under a global
//! lock that other spawns wait for (`reaper` says how a spawn and the orphan
//! reaper keep out of each other's way). The process's own tasks (its
//! waiter, its driver, its timeout) are started afterwards from a runtime
//! worker ([`Started::run`]): started from the blocking pool they would land
//! on the runtime's global queue, away from the connection's tasks, which
//! measurably slowed streaming output over stdio.
//!
//! # Invariants
//! - A reservation is an entry of the table ([`Slot::Reserved`]): the process
//!   limit counts it and a second start with its id gets `ProcessExists`, but
//!   no method sees it as a process. It ends exactly once, under the lock: its
//!   process replaces it, or the [`Reservation`] guard removes it when the
//!   start fails or panics, or when the blocking task is dropped unrun.
//! - Once its blocking work runs, a start runs to its end (in a task of its
//!   own) even when its caller stopped waiting: its process then stays in the table, never announced,
//!   until the table shuts down and kills it.
//! - A start racing with [`ProcessTable::shutdown`] leaves no child behind:
//!   shutdown marks the table closed under the lock, waits for every
//!   reservation it found there to end, and only then collects the processes
//!   to kill. A start that reserved before the table closed puts its process
//!   in the table all the same (so shutdown kills it) and then fails; a later
//!   start is refused at its reservation.
//! - Errors come in the order they came when the whole start ran under the
//!   lock: the request's own (`LaunchSpec::new`), then the table's refusal
//!   (closed, `ProcessExists`, `LimitExceeded`), then the spawn's.

use std::io;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use exec_protocol::{ProcessId, ProcessStartParams, ProcessStartResponse, SandboxType};
use futures_util::future::BoxFuture;
use tokio::sync::{oneshot, watch};

use super::cgroup;
use super::cgroup_spares::SpareCgroups;
use super::command::LaunchSpec;
use super::driver::{Driver, OutputSource};
use super::managed::{ChildIo, ManagedProcess, StdinSink};
use super::timeout::Timeout;
use super::tree::Tree;
use super::{ProcessConfig, ProcessTable, Slot, TableInner, pipe, pty, reaper, registry};
use crate::error::ServerError;
use crate::sync::lock;

/// Largest chunk of a child's output read at once (and so the largest
/// `process/output` chunk), in bytes; smaller when the retained output is.
const MAX_OUTPUT_CHUNK_BYTES: usize = 64 * 1024;

/// Numbers processes across all tables, for the tree marker and the registry.
static NEXT_PROCESS_SERIAL: AtomicU64 = AtomicU64::new(1);

/// A process id held in a table for a start in progress; dropping it unfilled
/// gives the id back.
pub(super) struct Reservation {
    /// The table holding the id.
    table: Arc<TableInner>,
    /// The reserved id.
    process_id: ProcessId,
    /// Never sends; dropped when the reservation ends, which wakes a
    /// `shutdown` waiting for it through the slot's receiver.
    _ended: watch::Sender<()>,
    /// Whether the process took the reservation's place (then dropping it
    /// leaves the table alone).
    filled: bool,
}

impl Reservation {
    /// Reserves `process_id` in `table`.
    ///
    /// Errors: `Internal` (the table shut down), `ProcessExists` (the id is
    /// taken or reserved), `LimitExceeded` (`max_processes`, reservations
    /// included).
    pub(super) fn take(
        table: &Arc<TableInner>,
        process_id: &ProcessId,
    ) -> Result<Self, ServerError> {
        let mut processes = lock(&table.processes);
        if *table.closed.borrow() {
            return Err(closing());
        }
        if processes.contains_key(process_id) {
            return Err(ServerError::ProcessExists {
                process_id: process_id.clone(),
            });
        }
        // Closed processes (retained for `process/read`) do not count: they
        // hold no child and no descriptor; `retention` bounds them apart.
        let max_processes = table.config.max_processes;
        let mut open = lock(&table.open);
        if open.count() >= max_processes {
            return Err(ServerError::LimitExceeded {
                what: "processes per connection",
                limit: max_processes as u64,
            });
        }
        open.reserved += 1;
        drop(open);
        let (ended, waiter) = watch::channel(());
        processes.insert(process_id.clone(), Slot::Reserved(waiter));
        Ok(Self {
            table: table.clone(),
            process_id: process_id.clone(),
            _ended: ended,
            filled: false,
        })
    }

    /// Puts `process` in the reservation's place; returns whether the table
    /// was still open (if not, its shutdown kills the process).
    fn fill(mut self, process: &Arc<ManagedProcess>) -> bool {
        let mut processes = lock(&self.table.processes);
        // Under the lock that `ProcessTable::set_delivery` holds, so the
        // process gets the eviction rule in force when it joins the table.
        process.set_evict_unacknowledged(self.table.evicts_unacknowledged());
        processes.insert(self.process_id.clone(), Slot::Started(process.clone()));
        let mut open = lock(&self.table.open);
        open.reserved -= 1;
        open.started.push(process.clone());
        drop(open);
        self.filled = true;
        !*self.table.closed.borrow()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.filled {
            return;
        }
        let mut processes = lock(&self.table.processes);
        lock(&self.table.open).reserved -= 1;
        if matches!(processes.get(&self.process_id), Some(Slot::Reserved(_))) {
            processes.remove(&self.process_id);
        }
    }
}

/// What counts against `max_processes` in a table: its reservations and
/// its started processes not yet closed. Changed only under the table's
/// `processes` lock (and locked after it), so it always matches the table:
/// a reservation is counted from its slot's insertion to its end, a
/// process from its slot's insertion until it is seen closed (a process
/// leaves the table only once closed, or when the table shuts down and
/// starts no more).
///
/// Counting it costs O(open processes) per start, not O(processes in the
/// table), which includes the closed ones retained for `process/read`.
#[derive(Default)]
pub(super) struct OpenProcesses {
    /// Reservations not yet filled or dropped.
    reserved: usize,
    /// Started processes, with the closed ones pruned at each count.
    started: Vec<Arc<ManagedProcess>>,
}

impl OpenProcesses {
    /// How many processes count now: a process counts until it closed, as
    /// [`ManagedProcess::is_closed`] says at this moment.
    fn count(&mut self) -> usize {
        self.started.retain(|process| !process.is_closed());
        self.reserved + self.started.len()
    }
}

/// The error of a start on a table that shut down.
fn closing() -> ServerError {
    ServerError::Internal(String::from("the connection is closing"))
}

/// A started child with what its driver needs.
struct Launched {
    /// The process, not yet in the table.
    process: Arc<ManagedProcess>,
    /// Its output.
    output: OutputSource,
    /// Its wait status, once reaped.
    exit: oneshot::Receiver<io::Result<ExitStatus>>,
    /// The task that waits for the child, started by [`Started::run`].
    waiter: BoxFuture<'static, ()>,
}

impl ProcessTable {
    /// The blocking part of [`ProcessTable::start`], on a thread of tokio's
    /// blocking pool: checks the request, spawns the child and puts it in
    /// the reservation's place. Its tasks are started by [`Started::run`],
    /// back on a runtime worker. Errors: those of [`ProcessTable::start`].
    pub(super) fn start_blocking(
        &self,
        params: ProcessStartParams,
        reservation: Result<Reservation, ServerError>,
    ) -> Result<Started, ServerError> {
        let serial = NEXT_PROCESS_SERIAL.fetch_add(1, Ordering::Relaxed);
        let marker = format!("{}{serial}/", self.inner.marker_prefix());
        let spec = LaunchSpec::new(&params, &marker)?;
        let reservation = reservation?;
        let config = &self.inner.config;
        let read_size = MAX_OUTPUT_CHUNK_BYTES.min(config.retained_output_bytes.max(1));
        let Launched {
            process,
            output,
            exit,
            waiter,
        } = launch(
            &spec,
            &params,
            (self.inner.id, serial),
            marker,
            config,
            &self.inner.spare_cgroups,
        )?;
        let table_open = reservation.fill(&process);
        registry::register_live(serial, &process);

        let response = ProcessStartResponse {
            pid: process.pid(),
            process_id: params.process_id,
            sandbox_type: Some(SandboxType::None),
        };
        let timeout = params.timeout_ms.map(|timeout_ms| {
            Timeout::new(
                &process,
                Duration::from_millis(timeout_ms),
                self.inner.closed.subscribe(),
            )
        });
        Ok(Started {
            waiter,
            driver: Driver {
                process,
                output,
                exit,
                read_size,
                events: self.inner.events.clone(),
                retention: config.retention,
                table: Arc::downgrade(&self.inner),
                table_closed: self.inner.closed.subscribe(),
            },
            timeout,
            table_open,
            response,
        })
    }
}

/// A spawned child whose tasks are not started yet.
pub(super) struct Started {
    /// Waits for the child (until it runs, the child's pid stays in the
    /// reaper's managed set, so its exit status cannot be taken by another).
    waiter: BoxFuture<'static, ()>,
    /// Reads its output and learns its exit.
    driver: Driver,
    /// Its `timeoutMs`, when it has one.
    timeout: Option<Timeout>,
    /// False when the table shut down while the child was being spawned.
    table_open: bool,
    /// What `process/start` answers.
    response: ProcessStartResponse,
}

impl Started {
    /// Starts the process's tasks, from a runtime worker (so they start on
    /// its local queue, beside the tasks that feed on them, rather than on
    /// the blocking pool's global one). Errors: `Internal` when the table
    /// shut down meanwhile (its shutdown kills the process).
    pub(super) fn run(self) -> Result<ProcessStartResponse, ServerError> {
        tokio::spawn(self.waiter);
        tokio::spawn(self.driver.run());
        if let Some(timeout) = self.timeout {
            tokio::spawn(timeout.run());
        }
        if !self.table_open {
            return Err(closing());
        }
        Ok(self.response)
    }
}

/// Spawns `spec`'s child on pipes or a PTY and makes the task that reaps it.
/// Blocking; runs inside the runtime (the child's pidfd, its pipes and the
/// PTY's master register with its reactor).
///
/// Errors: `SpawnFailed`.
fn launch(
    spec: &LaunchSpec,
    params: &ProcessStartParams,
    (table, serial): (u64, u64),
    marker: String,
    config: &ProcessConfig,
    spare_cgroups: &SpareCgroups,
) -> Result<Launched, ServerError> {
    let spawn_failed = |source: io::Error| ServerError::SpawnFailed {
        program: spec.program_name.clone(),
        source,
    };
    let cgroup = spare_cgroups.take(table, serial).map_err(|error| {
        spawn_failed(io::Error::new(
            error.kind(),
            format!("cannot create the process's cgroup: {error}"),
        ))
    })?;
    // A failed spawn leaves no process in the cgroup: it goes at once.
    let spawn_failed = |source: io::Error| {
        if let Some(cgroup) = &cgroup {
            cgroup::remove(&cgroup.directory);
        }
        spawn_failed(source)
    };
    let (child_exit, pid, child_io, stdin, output) = match spec.terminal_size {
        None => {
            let child = pipe::spawn(spec, cgroup.as_ref()).map_err(spawn_failed)?;
            let child_io = ChildIo::Pipes {
                pipe_stdin: spec.pipe_stdin,
            };
            let output = OutputSource::Pipes {
                stdout: child.stdout,
                stderr: child.stderr,
            };
            let stdin = child.stdin.map(StdinSink::Pipe);
            (child.exit, child.pid, child_io, stdin, output)
        }
        Some((rows, cols)) => {
            let child = pty::spawn(spec, rows, cols, cgroup.as_ref()).map_err(spawn_failed)?;
            let child_io = ChildIo::Pty {
                master: Mutex::new(Some(child.master.clone())),
            };
            let stdin = Some(StdinSink::Pty(child.master.clone()));
            let output = OutputSource::Pty {
                master: child.master,
            };
            (child.exit, child.pid, child_io, stdin, output)
        }
    };
    let cgroup = cgroup.map(|cgroup| cgroup.directory);
    let tree = Arc::new(Tree::new(pid, marker, cgroup));
    let process = Arc::new(ManagedProcess::new(
        params.process_id.clone(),
        serial,
        params,
        tree.clone(),
        child_io,
        stdin,
        config.retained_output_bytes,
    ));
    // Pipe and PTY children alike are waited for through their pidfd: the
    // runtime's reactor learns of their exit (no thread per process waits).
    let (status_sender, exit) = oneshot::channel();
    let waiter = async move {
        let status = child_exit.wait().await;
        reaper::child_reaped(pid);
        tree.mark_reaped();
        let _ = status_sender.send(status);
    };
    Ok(Launched {
        process,
        output,
        exit,
        waiter: Box::pin(waiter),
    })
}
