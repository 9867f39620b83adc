//! The tasks that run one process: the driver, which reads its output, learns
//! its exit and logs every event with its seq, and the sender, which sends the
//! notifications in seq order once the process is announced.
//!
//! Back-pressure: the driver reads a chunk only while it holds one of
//! [`CHUNKS_IN_FLIGHT`] permits, and the sender gives a permit back only
//! after the session's event queue took the chunk's event. While the
//! queue is full the driver stops reading, the pipe or terminal fills, and
//! the child blocks on write: output waits, it is never dropped. (A PTY's
//! master is read in this task too, through the reactor, so a terminal
//! holds back exactly as a pipe does.) The exit and the close need no
//! permit, so they are logged (and `process/read` sees them) even while
//! the queue is full. The driver also stops reading
//! while the process's log has no room (see `resume`).

use std::io;
use std::process::ExitStatus;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::BufMut as _;
use exec_protocol::{OutputStream, ProcessClosedNotification, ProcessExitedNotification};
use tokio::net::unix::pipe::Receiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::events::{OutputRead, ProcessEvent};
use super::managed::{Gate, ManagedProcess};
use super::pty::PtyMaster;
use super::read_buffer::ReadBuffer;
use super::{EventSink, TableInner, registry};
use crate::wire_message::WireMessage;

/// Output chunks read but not yet taken by the event queue, per process.
const CHUNKS_IN_FLIGHT: usize = 2;

/// After the child was reaped, how long the driver waits for its output to
/// reach EOF before it logs the exit anyway. The output the child wrote
/// before it exited is already in the pipes, so the wait is normally no
/// longer than reading it; only a descendant that keeps the output open makes
/// `process/exited` wait this long (and `process/closed` wait for it).
const EXIT_AFTER_OUTPUT_GRACE: Duration = Duration::from_millis(200);

/// Where a process's output comes from.
pub(crate) enum OutputSource {
    /// The pipes of a pipe process.
    Pipes {
        /// stdout's read end.
        stdout: Receiver,
        /// stderr's read end.
        stderr: Receiver,
    },
    /// A PTY's master, read in the driver's task.
    Pty {
        /// Reads 0 bytes at the terminal's EOF.
        master: PtyMaster,
    },
}

/// Everything the driver of one process needs.
pub(crate) struct Driver {
    /// The process.
    pub process: Arc<ManagedProcess>,
    /// Its output.
    pub output: OutputSource,
    /// Its wait status, once reaped.
    pub exit: oneshot::Receiver<io::Result<ExitStatus>>,
    /// Largest chunk read at once, in bytes.
    pub read_size: usize,
    /// Where the events go (the session's event queue).
    pub events: EventSink,
    /// How long the process stays readable after `process/closed`.
    pub retention: Duration,
    /// The table, to remove the process after the retention time.
    pub table: Weak<TableInner>,
    /// Becomes true when the table shuts down, which ends the retention early.
    pub table_closed: watch::Receiver<bool>,
}

/// An encoded event ready to go out, with the permit of its chunk.
struct Queued {
    /// The event's wire message.
    text: WireMessage,
    /// Returned once the event queue took the event (output chunks only).
    permit: Option<OwnedSemaphorePermit>,
}

impl Driver {
    /// Runs the process to its close, then keeps it readable for the
    /// retention time and removes it from its table.
    pub(crate) async fn run(self) {
        let Self {
            process,
            output,
            exit,
            read_size,
            events,
            retention,
            table,
            mut table_closed,
        } = self;
        let (queue, queued) = mpsc::unbounded_channel();
        tokio::spawn(send_events(queued, process.gate(), events.clone()));
        pump(&process, output, exit, read_size, &events, &queue).await;
        // Before `process/closed` goes out, so a start its client makes
        // after seeing it can reuse the cgroup. The child was reaped unless
        // its waiter failed; a live child keeps the cgroup populated, which
        // `give_back` checks. A table that shut down starts nothing more.
        if let Some(table) = table.upgrade()
            && !*table_closed.borrow()
        {
            table.spare_cgroups.give_back(&process.tree);
        }
        queue_closed(&process, &events, &queue);
        drop(queue);
        registry::unregister_live(process.serial);
        process.release_io().await;
        if let Some(table) = table.upgrade() {
            table.retire(&process);
        }
        // A timer, not a poll: the process is removed when it runs out or the
        // table shuts down, whichever comes first.
        tokio::select! {
            () = tokio::time::sleep(retention) => {}
            _ = table_closed.wait_for(|closed| *closed) => {}
        }
        if let Some(table) = table.upgrade() {
            table.forget(&process);
        }
    }
}

/// Reads from `reader` when it is there, forever pending otherwise, so a
/// `select!` branch needs no unwrap. The buffer is made only once the pipe
/// is readable, so an idle process holds none. Cancel-safe: only the wait
/// for readiness is ever cancelled.
async fn read_some(reader: &mut Option<Receiver>, buffer: &mut ReadBuffer) -> io::Result<usize> {
    let Some(reader) = reader else {
        return std::future::pending().await;
    };
    loop {
        reader.readable().await?;
        let space = buffer.space();
        match reader.try_read_buf(&mut buffer.prepared().limit(space)) {
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            read => return read,
        }
    }
}

/// Reads the terminal from `master` when it is there, forever pending
/// otherwise. Cancel-safe, as [`PtyMaster::read`] is.
async fn read_terminal(master: &Option<PtyMaster>, buffer: &mut ReadBuffer) -> io::Result<usize> {
    match master {
        Some(master) => master.read(buffer).await,
        None => std::future::pending().await,
    }
}

/// Reads all output and the exit, logging each event and queueing its
/// notification, until the process closes (the caller queues `process/closed`).
async fn pump(
    process: &ManagedProcess,
    output: OutputSource,
    mut exit: oneshot::Receiver<io::Result<ExitStatus>>,
    read_size: usize,
    events: &EventSink,
    queue: &mpsc::UnboundedSender<Queued>,
) {
    let permits = Arc::new(Semaphore::new(CHUNKS_IN_FLIGHT));
    let (mut stdout, mut stderr, mut pty) = match output {
        OutputSource::Pipes { stdout, stderr } => (Some(stdout), Some(stderr), None),
        OutputSource::Pty { master } => (None, None, Some(master)),
    };
    let head_length = events.head_length(&process.process_id);
    let mut stdout_buffer = ReadBuffer::new(read_size, head_length);
    let mut stderr_buffer = ReadBuffer::new(read_size, head_length);
    let mut pty_buffer = ReadBuffer::new(read_size, head_length);
    let mut permit: Option<OwnedSemaphorePermit> = None;
    let mut status: Option<Option<ExitStatus>> = None;
    let mut exit_logged = false;
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);

    let record = |stream: OutputStream, buffer: Vec<u8>, permit: Option<OwnedSemaphorePermit>| {
        // Only this task logs events, so the seq the event is encoded with
        // is the one the log gives the chunk. The encoder writes the
        // frame's head into the buffer's room and hands back the chunk,
        // which the log keeps without a copy.
        let seq = process.next_seq();
        let (text, chunk) = events.encode_output(OutputRead {
            process_id: &process.process_id,
            seq,
            stream,
            buffer,
            head_length,
        });
        let logged = process.record_output(stream, chunk);
        debug_assert_eq!(seq, logged);
        let _ = queue.send(Queued { text, permit });
    };

    loop {
        let output_open = stdout.is_some() || stderr.is_some() || pty.is_some();
        if !exit_logged
            && let Some(status) = status
            && !output_open
        {
            log_exit(process, status, events, queue);
            exit_logged = true;
        }
        if exit_logged && !output_open {
            break;
        }
        // Output is read only while the log has room: while the session is
        // detached or its client acknowledges output, a full log waits for
        // an acknowledgement or a new connection (see `resume`).
        let room = process.has_room();
        // Biased, in this order: the grace first, so that output that never
        // stops cannot hold `process/exited` back; then the wait status,
        // which only starts the grace (the exit is logged once the output
        // reached EOF, so a child's last words come before it); then output.
        tokio::select! {
            biased;
            () = &mut grace, if status.is_some() && !exit_logged => {
                if let Some(status) = status {
                    log_exit(process, status, events, queue);
                }
                exit_logged = true;
            },
            waited = &mut exit, if status.is_none() => {
                status = Some(match waited {
                    Ok(Ok(status)) => Some(status),
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "waiting for a child failed");
                        None
                    }
                    Err(_) => {
                        tracing::warn!("the waiter of a child ended without a status");
                        None
                    }
                });
                grace.as_mut().reset(tokio::time::Instant::now() + EXIT_AFTER_OUTPUT_GRACE);
            },
            () = process.room_changed(), if !room && output_open => {}
            acquired = permits.clone().acquire_owned(), if permit.is_none() && output_open => {
                // The semaphore is never closed, so acquiring cannot fail.
                permit = acquired.ok();
            }
            read = read_some(&mut stdout, &mut stdout_buffer), if permit.is_some() && room => match read {
                Ok(0) => stdout = None,
                Ok(length) => record(OutputStream::Stdout, stdout_buffer.take(length), permit.take()),
                Err(error) => {
                    tracing::debug!(%error, "reading stdout failed; treating it as EOF");
                    stdout = None;
                }
            },
            read = read_some(&mut stderr, &mut stderr_buffer), if permit.is_some() && room => match read {
                Ok(0) => stderr = None,
                Ok(length) => record(OutputStream::Stderr, stderr_buffer.take(length), permit.take()),
                Err(error) => {
                    tracing::debug!(%error, "reading stderr failed; treating it as EOF");
                    stderr = None;
                }
            },
            read = read_terminal(&pty, &mut pty_buffer), if permit.is_some() && room => match read {
                Ok(0) => pty = None,
                Ok(length) => record(OutputStream::Pty, pty_buffer.take(length), permit.take()),
                Err(error) => {
                    tracing::debug!(%error, "reading the terminal failed; treating it as EOF");
                    pty = None;
                }
            },
        }
    }
}

/// Logs the close and queues `process/closed`, the process's last event.
fn queue_closed(
    process: &ManagedProcess,
    events: &EventSink,
    queue: &mpsc::UnboundedSender<Queued>,
) {
    let seq = process.record_closed();
    let event = ProcessEvent::Closed(ProcessClosedNotification {
        process_id: process.process_id.clone(),
        seq,
    });
    let _ = queue.send(Queued {
        text: events.encode(&event),
        permit: None,
    });
}

/// Logs the exit and queues `process/exited`.
fn log_exit(
    process: &ManagedProcess,
    status: Option<ExitStatus>,
    events: &EventSink,
    queue: &mpsc::UnboundedSender<Queued>,
) {
    let event = process.record_exit(status);
    let event = ProcessEvent::Exited(ProcessExitedNotification {
        exit_code: event.exit_code,
        process_id: process.process_id.clone(),
        reason: event.reason,
        seq: event.seq,
        signal: event.signal,
    });
    let _ = queue.send(Queued {
        text: events.encode(&event),
        permit: None,
    });
}

/// Sends the queued events in order: none before the process is
/// announced, none after it is silenced or the queue closed (the process
/// then lives on until the connection shuts the table down).
async fn send_events(
    mut queued: mpsc::UnboundedReceiver<Queued>,
    mut gate: watch::Receiver<Gate>,
    events: EventSink,
) {
    let mut queue_open = true;
    while let Some(Queued { text, permit }) = queued.recv().await {
        let announced = match gate.wait_for(|gate| *gate != Gate::Pending).await {
            Ok(gate) => *gate == Gate::Announced,
            Err(_) => false,
        };
        if announced && queue_open {
            tokio::select! {
                sent = events.send(text) => queue_open = sent.is_ok(),
                _ = gate.wait_for(|gate| *gate == Gate::Silenced) => {}
            }
        }
        // Giving the permit back lets the driver read the next chunk.
        drop(permit);
    }
}
