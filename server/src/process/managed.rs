//! [`ManagedProcess`]: the state one running or retained process shares
//! between the table's methods and its driver task: the event log, the
//! announce gate, stdin, the PTY master, and its tree.

use std::collections::{HashSet, VecDeque};
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use exec_protocol::{
    ExitReason, OutputStream, ProcessId, ProcessInfo, ProcessReadResponse, ProcessStartParams,
    Signal, WriteStatus,
};
use tokio::io::AsyncWriteExt as _;
use tokio::net::unix::pipe::Sender;
use tokio::sync::{Notify, watch};

use super::output::{ExitEvent, RetainedOutput};
use super::pty::PtyMaster;
use super::signal::{nix_signal, protocol_signal, wire_exit_code};
use super::start_digest::StartDigest;
use super::tree::Tree;
use crate::error::ServerError;
use crate::sync::lock;

/// How many recent `writeId`s a process remembers for de-duplication.
const REMEMBERED_WRITE_IDS: usize = 1024;

/// Whether a process's notifications may go out yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gate {
    /// The `process/start` response is not queued yet: hold notifications.
    Pending,
    /// The response is queued: send them.
    Announced,
    /// The connection is gone: drop them.
    Silenced,
}

/// How the child's stdin, stdout and stderr are connected: pipes or a PTY.
pub(crate) enum ChildIo {
    /// stdout and stderr are pipes; stdin is a pipe only with `pipeStdin`.
    Pipes {
        /// Whether stdin was opened for `process/write`.
        pipe_stdin: bool,
    },
    /// The process runs on a PTY whose master the server holds.
    Pty {
        /// The master side, for resizing and for reading the terminal's VEOF;
        /// `None` once the process closed (see [`ManagedProcess::release_io`]).
        master: Mutex<Option<PtyMaster>>,
    },
}

/// Where `process/write` bytes go.
pub(crate) enum StdinSink {
    /// A pipe process's stdin.
    Pipe(Sender),
    /// A PTY's master side (non-blocking, written through the reactor).
    Pty(PtyMaster),
}

/// The stdin of a process, with the write ids already applied.
struct Stdin {
    /// `None` once closed (or never open).
    sink: Option<StdinSink>,
    /// Recently applied `writeId`s, oldest first, bounded.
    recent_order: VecDeque<String>,
    /// The same ids, for lookup.
    recent: HashSet<String>,
}

impl Stdin {
    /// Remembers an applied `writeId`, forgetting the oldest beyond the bound.
    fn remember(&mut self, write_id: String) {
        if self.recent.insert(write_id.clone()) {
            self.recent_order.push_back(write_id);
        }
        while self.recent_order.len() > REMEMBERED_WRITE_IDS {
            if let Some(oldest) = self.recent_order.pop_front() {
                self.recent.remove(&oldest);
            }
        }
    }
}

/// The status of a write to `stdin` that ended with `written`: `accepted`
/// (and `write_id` remembered) or, when it failed, `stdinClosed` with the
/// sink dropped, as every later write would fail the same way.
fn settle(
    stdin: &mut Stdin,
    written: std::io::Result<()>,
    write_id: Option<String>,
    process_id: &ProcessId,
) -> WriteStatus {
    match written {
        Ok(()) => {
            if let Some(write_id) = write_id {
                stdin.remember(write_id);
            }
            WriteStatus::Accepted
        }
        Err(error) => {
            tracing::debug!(process_id = %process_id.as_str(), %error, "stdin is closed");
            stdin.sink = None;
            WriteStatus::StdinClosed
        }
    }
}

/// The mutable state behind the process's lock.
struct State {
    /// Output, exit and close with their seqs.
    log: RetainedOutput,
    /// Why the server killed the process, when it did (first reason wins).
    kill_reason: Option<ExitReason>,
}

/// One process of a connection, running or retained.
pub(crate) struct ManagedProcess {
    /// The client's handle.
    pub(crate) process_id: ProcessId,
    /// Unique among all processes of this server, for the `kill_all` registry.
    pub(crate) serial: u64,
    /// The `argv` it was started with, for `process/list`.
    argv: Vec<String>,
    /// What a retried `process/start` in a resumed session is compared
    /// with (a digest, not a copy of the request and its environment).
    pub(crate) start_digest: StartDigest,
    /// The process's tree: pid, marker, reaped flag.
    pub(crate) tree: Arc<Tree>,
    /// Pipes or PTY.
    child_io: ChildIo,
    /// The event log and kill reason.
    state: Mutex<State>,
    /// The seq of the latest event, so long polls wake on events.
    events: watch::Sender<u64>,
    /// Whether notifications may go out.
    gate: watch::Sender<Gate>,
    /// Wakes the driver when the log may have room again (an
    /// acknowledgement, a change of the eviction rule).
    room: Notify,
    /// stdin, behind an async lock because writes wait for the child (which
    /// also keeps one process's writes in order, as the lock is fair); in
    /// an `Arc` so a PTY write's own task can hold the lock.
    stdin: Arc<tokio::sync::Mutex<Stdin>>,
}

impl ManagedProcess {
    /// A started process.
    pub(crate) fn new(
        process_id: ProcessId,
        serial: u64,
        start: &ProcessStartParams,
        tree: Arc<Tree>,
        child_io: ChildIo,
        stdin: Option<StdinSink>,
        retained_output_bytes: usize,
    ) -> Self {
        Self {
            process_id,
            serial,
            argv: start.argv.clone(),
            start_digest: StartDigest::of(start),
            tree,
            child_io,
            state: Mutex::new(State {
                log: RetainedOutput::new(retained_output_bytes),
                kill_reason: None,
            }),
            events: watch::Sender::new(0),
            gate: watch::Sender::new(Gate::Pending),
            room: Notify::new(),
            stdin: Arc::new(tokio::sync::Mutex::new(Stdin {
                sink: stdin,
                recent_order: VecDeque::new(),
                recent: HashSet::new(),
            })),
        }
    }

    /// The OS pid.
    pub(crate) fn pid(&self) -> u32 {
        self.tree.root()
    }

    /// Whether it runs on a PTY.
    pub(crate) fn is_pty(&self) -> bool {
        matches!(self.child_io, ChildIo::Pty { .. })
    }

    /// Lets notifications go out (the `process/start` response is queued).
    pub(crate) fn announce(&self) {
        self.gate.send_if_modified(|gate| {
            let opened = *gate == Gate::Pending;
            if opened {
                *gate = Gate::Announced;
            }
            opened
        });
    }

    /// Drops all further notifications (the connection is gone).
    pub(crate) fn silence(&self) {
        self.gate.send_replace(Gate::Silenced);
    }

    /// The announce gate, for the notification sender.
    pub(crate) fn gate(&self) -> watch::Receiver<Gate> {
        self.gate.subscribe()
    }

    /// Records that the server is killing the process for `reason`; returns
    /// whether it was still running (not yet reaped).
    pub(crate) fn request_kill(&self, reason: ExitReason) -> bool {
        let mut state = lock(&self.state);
        if self.tree.is_reaped() {
            return false;
        }
        state.kill_reason.get_or_insert(reason);
        true
    }

    /// The seq the next event gets (only the driver adds events, so it stays
    /// valid until the driver logs one).
    pub(crate) fn next_seq(&self) -> u64 {
        lock(&self.state).log.next_seq()
    }

    /// Whether the log has room for another chunk (see `output`).
    pub(crate) fn has_room(&self) -> bool {
        lock(&self.state).log.has_room()
    }

    /// Resolves after [`Self::has_room`] may have changed since the last
    /// time it resolved (a change while nobody waits is kept for the next wait).
    pub(crate) async fn room_changed(&self) {
        self.room.notified().await;
    }

    /// `process/ack`: the client received every event up to `seq`.
    pub(crate) fn acknowledge(&self, seq: u64) {
        lock(&self.state).log.acknowledge(seq);
        self.room.notify_one();
    }

    /// Sets whether output the client did not acknowledge may be evicted
    /// (see `output`).
    pub(crate) fn set_evict_unacknowledged(&self, evict: bool) {
        lock(&self.state).log.set_evict_unacknowledged(evict);
        self.room.notify_one();
    }

    /// Whether the process closed (`process/closed` was logged): it exited
    /// and its output reached EOF.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).log.is_finished_for(u64::MAX)
    }

    /// The process closed: lets go of its PTY master and its stdin, so a
    /// retained process holds no file descriptor (its output stays readable).
    pub(crate) async fn release_io(&self) {
        if let ChildIo::Pty { master } = &self.child_io {
            drop(lock(master).take());
        }
        self.stdin.lock().await.sink = None;
    }

    /// Logs a chunk of output; returns its seq.
    pub(crate) fn record_output(&self, stream: OutputStream, bytes: Bytes) -> u64 {
        let seq = lock(&self.state).log.push_output(stream, bytes);
        self.events.send_replace(seq);
        seq
    }

    /// Logs the exit from the wait status (`None` when waiting failed).
    pub(crate) fn record_exit(&self, status: Option<ExitStatus>) -> ExitEvent {
        let raw_signal = status.and_then(|status| status.signal());
        let exit_code = wire_exit_code(status);
        let event = {
            let mut state = lock(&self.state);
            let reason = state.kill_reason.unwrap_or(if raw_signal.is_some() {
                ExitReason::Signaled
            } else {
                ExitReason::Exited
            });
            state
                .log
                .push_exit(exit_code, raw_signal.and_then(protocol_signal), reason)
        };
        self.events.send_replace(event.seq);
        event
    }

    /// Logs the close (the last event); returns its seq.
    pub(crate) fn record_closed(&self) -> u64 {
        let seq = lock(&self.state).log.push_closed();
        self.events.send_replace(seq);
        seq
    }

    /// `process/read`: waits up to `wait` for an event after `after_seq` when
    /// there is none yet, then reads.
    pub(crate) async fn read(
        &self,
        after_seq: u64,
        max_bytes: u64,
        wait: Duration,
    ) -> ProcessReadResponse {
        if !wait.is_zero() {
            // Subscribing before looking means no event can slip in between.
            let mut events = self.events.subscribe();
            let quiet = {
                let state = lock(&self.state);
                state.log.last_seq() <= after_seq && !state.log.is_finished_for(after_seq)
            };
            if quiet {
                let _ = tokio::time::timeout(wait, events.wait_for(|last| *last > after_seq)).await;
            }
        }
        let state = lock(&self.state);
        let outcome = state.log.read(after_seq, max_bytes);
        let exit = state.log.exit();
        ProcessReadResponse {
            chunks: outcome.chunks,
            closed: outcome.closed,
            dropped_bytes: outcome.dropped_bytes,
            exit_code: exit.map(|exit| exit.exit_code),
            exited: exit.is_some(),
            next_seq: outcome.next_seq,
            signal: exit.and_then(|exit| exit.signal),
        }
    }

    /// `process/list`'s entry.
    pub(crate) fn info(&self) -> ProcessInfo {
        let exit = lock(&self.state).log.exit();
        ProcessInfo {
            argv: self.argv.clone(),
            exit_code: exit.map(|exit| exit.exit_code),
            pid: self.pid(),
            process_id: self.process_id.clone(),
            running: exit.is_none(),
            signal: exit.and_then(|exit| exit.signal),
            tty: self.is_pty(),
        }
    }

    /// `process/write`: writes `bytes` to stdin once per `write_id`, and
    /// answers once the pipe or terminal took all of them. A child that does
    /// not read holds back only this task and later writes to it.
    ///
    /// Errors: `Internal` only when the task finishing a PTY write panicked
    /// or the runtime shut down under it (a failed write is `stdinClosed`).
    pub(crate) async fn write(
        &self,
        bytes: Vec<u8>,
        write_id: Option<String>,
    ) -> Result<WriteStatus, ServerError> {
        if matches!(self.child_io, ChildIo::Pipes { pipe_stdin: false }) {
            return Ok(WriteStatus::StdinClosed);
        }
        let mut stdin = self.stdin.clone().lock_owned().await;
        if let Some(write_id) = &write_id
            && stdin.recent.contains(write_id)
        {
            return Ok(WriteStatus::Accepted);
        }
        if self.tree.is_reaped() {
            return Ok(WriteStatus::StdinClosed);
        }
        let terminal = match &stdin.sink {
            None => return Ok(WriteStatus::StdinClosed),
            Some(StdinSink::Pty(master)) => Some(master.clone()),
            Some(StdinSink::Pipe(_)) => None,
        };
        let written = if let Some(master) = terminal {
            match master.write_now(&bytes) {
                Ok(length) if length < bytes.len() => {
                    // The terminal's input queue is full. The rest is written
                    // by a task of its own that waits on the reactor (no
                    // thread) and holds stdin's lock, so later writes stay
                    // behind it; it finishes even if this request is dropped
                    // (its connection went away, its session stays), so a
                    // write is never left half done by its caller leaving.
                    let process_id = self.process_id.clone();
                    let rest = tokio::spawn(async move {
                        let written = master.write_all(&bytes[length..]).await;
                        settle(&mut stdin, written, write_id, &process_id)
                    });
                    return rest.await.map_err(|error| {
                        ServerError::Internal(format!("the PTY write failed: {error}"))
                    });
                }
                written => written.map(drop),
            }
        } else {
            match &mut stdin.sink {
                Some(StdinSink::Pipe(pipe)) => match pipe.write_all(&bytes).await {
                    Ok(()) => pipe.flush().await,
                    Err(error) => Err(error),
                },
                _ => return Ok(WriteStatus::StdinClosed),
            }
        };
        Ok(settle(&mut stdin, written, write_id, &self.process_id))
    }

    /// `process/closeStdin`. Errors: `StdinClosed` for a pipe process started
    /// without `pipeStdin`.
    pub(crate) async fn close_stdin(&self) -> Result<(), ServerError> {
        match &self.child_io {
            ChildIo::Pipes { pipe_stdin: false } => Err(ServerError::StdinClosed {
                process_id: self.process_id.clone(),
            }),
            ChildIo::Pipes { pipe_stdin: true } => {
                // Dropping the pipe's write end is what makes the child read EOF.
                self.stdin.lock().await.sink = None;
                Ok(())
            }
            ChildIo::Pty { master } => {
                let Some(eof) = lock(master).as_ref().map(PtyMaster::eof_character) else {
                    // The process closed: it has no input left to end.
                    return Ok(());
                };
                // Typing VEOF is the terminal's way to end input; a process
                // that already exited has no input left to end.
                let _ = self.write(vec![eof], None).await;
                Ok(())
            }
        }
    }

    /// `process/resize`. Errors: `NotPty` for a pipe process, `Internal` when
    /// the kernel refuses.
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> Result<(), ServerError> {
        let ChildIo::Pty { master } = &self.child_io else {
            return Err(ServerError::NotPty {
                process_id: self.process_id.clone(),
            });
        };
        // A process that closed has no terminal left to resize.
        let master = lock(master);
        let Some(master) = master.as_ref() else {
            return Ok(());
        };
        master
            .resize(rows, cols)
            .map_err(|error| ServerError::Internal(format!("cannot resize the terminal: {error}")))
    }

    /// `process/signal`: sends `signal` to the process group (nothing once the
    /// child was reaped, since its pid, the group id, may then be reused).
    /// Errors: `Internal` when the kernel refuses.
    pub(crate) fn signal(&self, signal: Signal) -> Result<(), ServerError> {
        self.tree.signal_group(nix_signal(signal)).map_err(|error| {
            ServerError::Internal(format!(
                "cannot send {signal} to process group {}: {error}",
                self.pid()
            ))
        })
    }
}
