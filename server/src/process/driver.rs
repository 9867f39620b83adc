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
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::net::unix::pipe::Receiver;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use super::events::{OutputRead, ProcessEvent};
use super::managed::{Gate, ManagedProcess};
use super::pty::PtyMaster;
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
/// `select!` branch needs no unwrap. Cancel-safe, as tokio's reads are.
async fn read_some<R: AsyncRead + Unpin>(
    reader: &mut Option<R>,
    buffer: &mut ReadBuffer,
) -> io::Result<usize> {
    match reader {
        Some(reader) => {
            let space = buffer.space;
            reader.read_buf(&mut (&mut buffer.bytes).limit(space)).await
        }
        None => std::future::pending().await,
    }
}

/// Reads the terminal from `master` when it is there, forever pending
/// otherwise. Cancel-safe, as [`PtyMaster::read`] is.
async fn read_terminal(master: &Option<PtyMaster>, buffer: &mut ReadBuffer) -> io::Result<usize> {
    match master {
        Some(master) => master.read(&mut buffer.bytes).await,
        None => std::future::pending().await,
    }
}

/// Bytes a pipe's or terminal's read buffer starts with: an idle process (most of them)
/// then holds 4 KiB per stream instead of the full read size.
const INITIAL_READ_BYTES: usize = 4 * 1024;

/// A pipe's or terminal's read buffer: room for the head of the chunk's
/// frame (`EventSink::head_length`), then the space a read appends to,
/// which starts small and doubles, up to the read size, each time a read
/// fills it, so a busy stream soon reads in large chunks.
///
/// A read that fills at least half the space hands the buffer itself on
/// (frame and log share it, no copy) and the next read gets a new one; a
/// smaller read is copied out and the buffer kept, so that a retained
/// chunk never holds much more memory than its bytes.
struct ReadBuffer {
    /// The head's room (zeros), then the bytes read, with `space` bytes of
    /// capacity after the room.
    bytes: Vec<u8>,
    /// The head's room, in bytes.
    head_length: usize,
    /// The most one read appends, in bytes.
    space: usize,
    /// The most `space` grows to, in bytes.
    limit: usize,
}

impl ReadBuffer {
    fn new(used: bool, limit: usize, head_length: usize) -> Self {
        let space = if used {
            INITIAL_READ_BYTES.min(limit)
        } else {
            0
        };
        Self {
            bytes: Self::empty(head_length, space),
            head_length,
            space,
            limit,
        }
    }

    /// A buffer of `head_length` bytes of room with `space` bytes of capacity after them.
    fn empty(head_length: usize, space: usize) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(head_length + space);
        bytes.resize(head_length, 0);
        bytes
    }

    /// The head's room and the `length` bytes just read, in a buffer of
    /// their size; grows the space when they filled it.
    fn take(&mut self, length: usize) -> Vec<u8> {
        debug_assert_eq!(self.bytes.len(), self.head_length + length);
        let half_full = length * 2 >= self.space;
        if length == self.space && self.space < self.limit {
            self.space = (self.space * 2).min(self.limit);
        }
        if half_full {
            let next = Self::empty(self.head_length, self.space);
            let mut taken = std::mem::replace(&mut self.bytes, next);
            taken.shrink_to_fit();
            taken
        } else {
            let taken = self.bytes.clone();
            self.bytes.truncate(self.head_length);
            taken
        }
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
    let mut stdout_buffer = ReadBuffer::new(stdout.is_some(), read_size, head_length);
    let mut stderr_buffer = ReadBuffer::new(stderr.is_some(), read_size, head_length);
    let mut pty_buffer = ReadBuffer::new(pty.is_some(), read_size, head_length);
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

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    /// What a read of `length` bytes leaves in `buffer`.
    fn read(buffer: &mut ReadBuffer, length: usize) {
        assert!(buffer.bytes.capacity() - buffer.bytes.len() >= length);
        let start = buffer.bytes.as_ptr();
        buffer.bytes.extend((0..length).map(|index| index as u8));
        assert_eq!(buffer.bytes.as_ptr(), start, "the read fits the space");
    }

    #[test]
    fn a_read_that_fills_half_the_space_hands_the_buffer_on_and_a_full_one_grows_it() {
        let mut buffer = ReadBuffer::new(true, 16 * 1024, 20);
        assert_eq!(buffer.bytes, vec![0; 20]);
        assert_eq!(buffer.bytes.capacity(), 20 + INITIAL_READ_BYTES);

        read(&mut buffer, INITIAL_READ_BYTES);
        let start = buffer.bytes.as_ptr();
        let taken = buffer.take(INITIAL_READ_BYTES);
        assert_eq!(taken.as_ptr(), start, "not copied");
        assert_eq!(taken.len(), 20 + INITIAL_READ_BYTES);
        assert_eq!(taken.capacity(), taken.len());
        assert_eq!(buffer.space, 2 * INITIAL_READ_BYTES);
        assert_eq!(buffer.bytes, vec![0; 20]);
        assert_eq!(buffer.bytes.capacity(), 20 + 2 * INITIAL_READ_BYTES);

        // Half the space: handed on, trimmed to the chunk, no growth.
        read(&mut buffer, INITIAL_READ_BYTES);
        let taken = buffer.take(INITIAL_READ_BYTES);
        assert_eq!(taken.len(), 20 + INITIAL_READ_BYTES);
        assert!(taken.capacity() < 20 + 2 * INITIAL_READ_BYTES);
        assert_eq!(buffer.space, 2 * INITIAL_READ_BYTES);

        // Full reads grow the space up to the limit, never past it.
        for _ in 0..4 {
            let space = buffer.space;
            read(&mut buffer, space);
            assert_eq!(buffer.take(space).len(), 20 + space);
        }
        assert_eq!(buffer.space, 16 * 1024);
        assert_eq!(buffer.bytes.capacity(), 20 + 16 * 1024);
    }

    #[test]
    fn a_small_read_is_copied_out_and_the_buffer_kept() {
        let mut buffer = ReadBuffer::new(true, 64 * 1024, 13);
        read(&mut buffer, 5);
        let start = buffer.bytes.as_ptr();
        let taken = buffer.take(5);
        assert_eq!(taken, [&[0; 13][..], &[0, 1, 2, 3, 4]].concat());
        assert_ne!(taken.as_ptr(), start);
        assert!(taken.capacity() < 13 + INITIAL_READ_BYTES);
        assert_eq!(buffer.bytes.as_ptr(), start, "kept for the next read");
        assert_eq!(buffer.bytes, vec![0; 13]);
        assert_eq!(buffer.space, INITIAL_READ_BYTES);
    }

    #[test]
    fn an_unused_stream_holds_only_the_heads_room() {
        let buffer = ReadBuffer::new(false, 64 * 1024, 13);
        assert_eq!(buffer.space, 0);
        assert_eq!(buffer.bytes.capacity(), 13);
    }
}
