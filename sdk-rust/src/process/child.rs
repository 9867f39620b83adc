//! [`RemoteChild`], a started process modelled on `tokio::process::Child`:
//! its output in order and complete, and its controls through a
//! [`ProcessHandle`].

use std::sync::Arc;
use std::sync::atomic::Ordering;

use exec_protocol::{ProcessId, ProcessRead, ProcessReadParams, ProcessReadResponse, Signal};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use super::handle::ProcessHandle;
use super::output::{Output, OutputBytes, ProcessEvent, RemoteExitStatus};
use super::sequence::{Event, Sequencer};
use crate::connection::ClientConnection;
use crate::error::ClientError;
use crate::router::RouteShared;
use crate::sync::lock;

/// The budget of one `process/read`, in bytes. Bounded, so that one answer
/// stays a modest message however much the server retains (up to its
/// retention, 1 MiB by default, and more while output is unacknowledged): a
/// connection that keeps dropping still gets whole answers through, and a
/// gap closes in a few reads.
const READ_BUDGET_BYTES: u64 = 128 * 1024;

/// A process started with [`Command::spawn`](crate::Command::spawn): its
/// output, in order and complete, and its controls.
///
/// Output is read with [`RemoteChild::next_event`] / [`RemoteChild::next_output`]
/// (or [`RemoteChild::into_events`] as a `Stream`), or collected by
/// [`RemoteChild::output`]. Every chunk arrives exactly once and in order:
/// when this consumer falls behind, or a dropped connection lost output in
/// flight (the client resumes the session by itself, see
/// [`ConnectOptions::reconnect`](crate::ConnectOptions::reconnect)), the
/// output it missed is read back from the server, and only bytes the server
/// no longer retains (beyond 1 MiB per process by default, never while the
/// session acknowledges output) are reported, as [`ProcessEvent::OutputLost`].
///
/// Dropping a `RemoteChild` stops following the process but does not stop
/// it; the server kills it when the session ends (see
/// [`ExecClient::close`](crate::ExecClient::close)), or call
/// [`RemoteChild::terminate`] first. Its further output is acknowledged as
/// it arrives, so it never waits for a reader that is gone.
pub struct RemoteChild {
    /// The controls, shared with [`RemoteChild::handle`]'s clones.
    handle: ProcessHandle,
    /// The OS pid the server reported (0 until the start is confirmed).
    pid: u32,
    /// Whether stdin is a pipe that [`RemoteChild::wait`] and
    /// [`RemoteChild::output`] close first, as tokio's `Child` does.
    closes_stdin_on_wait: bool,
    /// Events from the connection's reader.
    events: mpsc::Receiver<Event>,
    /// The state shared with the reader: drop counters, overflow, wake-ups.
    route: Arc<RouteShared>,
    /// Puts events in order and finds what is missing.
    sequencer: Sequencer,
    /// The exit, once it was handed out.
    exit: Option<RemoteExitStatus>,
    /// The route's resume count at this child's last look: a new resume
    /// makes the next read rebuild what was lost in flight.
    resumes_seen: u64,
}

impl std::fmt::Debug for RemoteChild {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RemoteChild")
            .field("process_id", &self.handle.process_id())
            .field("pid", &self.pid)
            .field("exit", &self.exit)
            .finish_non_exhaustive()
    }
}

impl RemoteChild {
    /// A child following `process_id` through an already registered route.
    pub(crate) fn new(
        connection: Arc<ClientConnection>,
        process_id: ProcessId,
        closes_stdin_on_wait: bool,
        events: mpsc::Receiver<Event>,
        route: Arc<RouteShared>,
    ) -> Self {
        Self {
            handle: ProcessHandle::new(connection, process_id),
            pid: 0,
            closes_stdin_on_wait,
            events,
            route,
            sequencer: Sequencer::new(),
            exit: None,
            resumes_seen: 0,
        }
    }

    /// Records the OS pid from the `process/start` response.
    pub(crate) fn set_pid(&mut self, pid: u32) {
        self.pid = pid;
    }

    /// The process's protocol handle (its `processId`).
    pub fn process_id(&self) -> &str {
        self.handle.process_id()
    }

    /// The OS pid on the server's machine, for display and debugging.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// A clonable handle to write, resize, signal and terminate from other tasks.
    pub fn handle(&self) -> ProcessHandle {
        self.handle.clone()
    }

    /// The exit, if [`RemoteChild::next_event`] or [`RemoteChild::wait`]
    /// already handed it out (like `try_wait`, without asking the server).
    pub fn exit_status(&self) -> Option<RemoteExitStatus> {
        self.exit
    }

    /// Output bytes lost so far because the server no longer retained them
    /// when this consumer caught up; 0 unless it stalled for long.
    pub fn dropped_bytes(&self) -> u64 {
        self.sequencer.lost_bytes()
    }

    /// See [`ProcessHandle::write`].
    ///
    /// # Errors
    /// As [`ProcessHandle::write`].
    pub async fn write(&self, bytes: impl AsRef<[u8]>) -> Result<(), ClientError> {
        self.handle.write(bytes).await
    }

    /// See [`ProcessHandle::close_stdin`].
    ///
    /// # Errors
    /// As [`ProcessHandle::close_stdin`].
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        self.handle.close_stdin().await
    }

    /// See [`ProcessHandle::resize`].
    ///
    /// # Errors
    /// As [`ProcessHandle::resize`].
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ClientError> {
        self.handle.resize(rows, cols).await
    }

    /// See [`ProcessHandle::signal`].
    ///
    /// # Errors
    /// As [`ProcessHandle::signal`].
    pub async fn signal(&self, signal: Signal) -> Result<(), ClientError> {
        self.handle.signal(signal).await
    }

    /// See [`ProcessHandle::terminate`].
    ///
    /// # Errors
    /// As [`ProcessHandle::terminate`].
    pub async fn terminate(&self) -> Result<bool, ClientError> {
        self.handle.terminate().await
    }

    /// The next event of the process in sequence order: output, a loss
    /// report, or the exit (output may follow the exit). `Ok(None)` once the
    /// server closed the process: all output was delivered.
    ///
    /// Cancel-safe: dropping the future loses no event.
    ///
    /// # Errors
    /// [`ClientError::TransportClosed`] when the connection closed before
    /// the stream ended (including a dropped connection that could not be
    /// resumed); the errors of `process/read` while catching up.
    pub async fn next_event(&mut self) -> Result<Option<ProcessEvent>, ClientError> {
        loop {
            if let Some(event) = self.sequencer.next_ready() {
                if let ProcessEvent::Exited(status) = &event {
                    self.exit = Some(*status);
                }
                return Ok(Some(event));
            }
            if self.sequencer.is_finished() {
                return Ok(None);
            }
            match self.events.try_recv() {
                Ok(event) => {
                    self.sequencer.accept(event);
                    continue;
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => {
                    if self.take_overflow() {
                        continue;
                    }
                    return Err(self.handle.connection().router().closed_error());
                }
            }
            if self.take_overflow() {
                continue;
            }
            // Read the counters before the read: a drop (or a resume)
            // during the read stays unacknowledged and triggers another read.
            let dropped = self.route.dropped.load(Ordering::Acquire);
            let resumes = self.route.resumes.load(Ordering::Acquire);
            if resumes != self.resumes_seen {
                self.resumes_seen = resumes;
                self.sequencer
                    .note_resume(self.route.resumed_after_seq.load(Ordering::Acquire));
            }
            let lagging = dropped != self.route.caught_up.load(Ordering::Acquire);
            if let Some(after_seq) = self.sequencer.wants_read(lagging) {
                let response = match self.read_after(after_seq).await {
                    Ok(response) => response,
                    // The connection dropped under the read: the resume
                    // marks this route for another read, made on the next
                    // round (which waits for the resume).
                    Err(ClientError::ConnectionLost { .. }) => continue,
                    Err(error) => return Err(error),
                };
                // `nextSeq` is the seq after the last one the read covered.
                let covered = response.next_seq.saturating_sub(1);
                tracing::debug!(
                    after_seq,
                    covered,
                    chunks = response.chunks.len(),
                    exited = response.exited,
                    closed = response.closed,
                    "read back"
                );
                let bytes = response
                    .chunks
                    .iter()
                    .map(|chunk| chunk.chunk.0.len() as u64)
                    .sum();
                self.sequencer.apply_read(after_seq, response);
                self.route.caught_up.store(dropped, Ordering::Release);
                self.handle.connection().router().acknowledge_read(
                    self.handle.protocol_id(),
                    &self.route,
                    after_seq,
                    covered,
                    bytes,
                );
                continue;
            }
            let received = tokio::select! {
                event = self.events.recv() => event,
                () = self.route.wake.notified() => None,
            };
            if let Some(event) = received {
                self.sequencer.accept(event);
            }
        }
    }

    /// The next chunk of output, in order; loss reports and the exit are
    /// skipped (see [`RemoteChild::dropped_bytes`] and
    /// [`RemoteChild::exit_status`]). `Ok(None)` once all output was delivered.
    ///
    /// # Errors
    /// As [`RemoteChild::next_event`].
    pub async fn next_output(&mut self) -> Result<Option<OutputBytes>, ClientError> {
        while let Some(event) = self.next_event().await? {
            if let ProcessEvent::Output(chunk) = event {
                return Ok(Some(chunk));
            }
        }
        Ok(None)
    }

    /// The events as a `Stream`, ending after the last one (or after the
    /// first error).
    pub fn into_events(
        self,
    ) -> impl Stream<Item = Result<ProcessEvent, ClientError>> + Send + 'static {
        futures_util::stream::unfold(Some(self), |child| async move {
            let mut child = child?;
            match child.next_event().await {
                Ok(Some(event)) => Some((Ok(event), Some(child))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }

    /// Waits for the process to exit. Output not read yet up to the exit is
    /// read and discarded (read it first, or use [`RemoteChild::output`], to
    /// keep it); output after the exit stays readable. Like tokio's
    /// `Child::wait`, a piped stdin ([`Command::pipe_stdin`](crate::Command::pipe_stdin))
    /// is closed first, so a child reading it sees EOF.
    ///
    /// # Errors
    /// As [`RemoteChild::next_event`]; [`ClientError::Protocol`] when the
    /// server closed the process without an exit.
    pub async fn wait(&mut self) -> Result<RemoteExitStatus, ClientError> {
        if let Some(status) = self.exit {
            return Ok(status);
        }
        self.close_piped_stdin(|_| {}).await?;
        if let Some(status) = self.exit {
            return Ok(status);
        }
        while let Some(event) = self.next_event().await? {
            if let ProcessEvent::Exited(status) = event {
                return Ok(status);
            }
        }
        self.exit.ok_or_else(|| self.closed_without_exit())
    }

    /// Collects the rest of the output and the exit, closing a piped stdin
    /// first (like `std::process::Command::output`). PTY output goes to
    /// [`Output::stdout`].
    ///
    /// # Errors
    /// As [`RemoteChild::wait`].
    pub async fn output(mut self) -> Result<Output, ClientError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut collect = |event: ProcessEvent| {
            if let ProcessEvent::Output(chunk) = event {
                match chunk.stream {
                    exec_protocol::OutputStream::Stderr => stderr.extend_from_slice(&chunk.bytes),
                    _ => stdout.extend_from_slice(&chunk.bytes),
                }
            }
        };
        self.close_piped_stdin(&mut collect).await?;
        while let Some(event) = self.next_event().await? {
            collect(event);
        }
        let status = self.exit.ok_or_else(|| self.closed_without_exit())?;
        Ok(Output {
            stdout,
            stderr,
            status,
            dropped_bytes: self.sequencer.lost_bytes(),
        })
    }

    /// Closes a piped stdin that is still open, handing the events that
    /// arrive meanwhile to `keep`. They must be taken: the answer to
    /// `process/closeStdin` may be queued behind this process's output, which
    /// the reader can only pass on as this child takes it. Errors of the
    /// close are ignored: the process may have exited or closed stdin
    /// already, which is what was wanted.
    ///
    /// # Errors
    /// As [`RemoteChild::next_event`].
    async fn close_piped_stdin(
        &mut self,
        mut keep: impl FnMut(ProcessEvent),
    ) -> Result<(), ClientError> {
        if !self.closes_stdin_on_wait || self.handle.is_stdin_closed() {
            return Ok(());
        }
        let handle = self.handle.clone();
        let closing = handle.close_stdin();
        tokio::pin!(closing);
        loop {
            // `next_event` is cancel-safe, so losing this race loses nothing.
            tokio::select! {
                closed = &mut closing => {
                    if let Err(error) = closed {
                        tracing::debug!(%error, "closing stdin before waiting failed");
                    }
                    return Ok(());
                }
                event = self.next_event() => match event? {
                    Some(event) => keep(event),
                    None => return Ok(()),
                },
            }
        }
    }

    /// The error for a stream that ended without an exit.
    fn closed_without_exit(&self) -> ClientError {
        ClientError::Protocol(format!(
            "process `{}` was closed without a process/exited notification",
            self.handle.process_id()
        ))
    }

    /// Moves the exit and close the reader parked in the overflow into the
    /// sequencer; `true` when there were any.
    fn take_overflow(&mut self) -> bool {
        let parked: Vec<Event> = lock(&self.route.overflow).drain(..).collect();
        let any = !parked.is_empty();
        for event in parked {
            self.sequencer.accept(event);
        }
        any
    }

    /// Reads back the retained output after `after_seq`, at most
    /// [`READ_BUDGET_BYTES`] of it (the sequencer asks for the rest with
    /// further reads).
    async fn read_after(&self, after_seq: u64) -> Result<ProcessReadResponse, ClientError> {
        let params = ProcessReadParams {
            after_seq: Some(after_seq),
            max_bytes: Some(READ_BUDGET_BYTES),
            process_id: self.handle.protocol_id().clone(),
            wait_ms: None,
        };
        self.handle.connection().call::<ProcessRead>(&params).await
    }
}

impl Drop for RemoteChild {
    fn drop(&mut self) {
        self.handle
            .connection()
            .router()
            .remove_route(self.handle.process_id(), &self.route);
    }
}
