//! Our stdout and stderr: the remote process's output, written by a thread
//! of its own.
//!
//! The session loop hands each chunk over (moved, not copied) and goes on
//! reading the connection while the thread writes, so decoding the next
//! chunk overlaps writing this one. The thread writes straight to the file
//! descriptors, without std's line buffering or tokio's per-write hop to the
//! blocking pool, and without a flush per chunk: a chunk is in the kernel
//! once its `write` returns, so nothing is held back on our side when the
//! process waits for input, and a terminal shows output as it arrives. One
//! queue for both streams keeps their order. [`LocalOutput::finish`] waits
//! until everything queued is written, so no byte is lost at a normal end.
//!
//! The file descriptors are left blocking: setting `O_NONBLOCK` on them
//! would change the open file description shared with the shell and the
//! rest of a pipeline. A reader that stops reading blocks only the thread;
//! the queue then fills and the session loop waits for room without
//! blocking the runtime (signals and stdin forwarding go on).

use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::AsFd;

use exec_client::{OutputBytes, OutputStream};
use tokio::sync::{mpsc, oneshot};

/// Chunks queued for the writing thread (the server sends at most 64 KiB
/// per chunk, so at most 4 MiB in memory).
const QUEUE_CHUNKS: usize = 64;

/// Our output: the writing thread, started with the first chunk (a process
/// that writes nothing costs no thread).
#[derive(Default)]
pub(crate) struct LocalOutput {
    /// The running thread's end, once there was output.
    writer: Option<Writer>,
}

/// The writing thread's end of the queue and the way to learn how it ended.
struct Writer {
    /// Chunks for the thread; dropped to tell it that nothing more comes.
    chunks: mpsc::Sender<OutputBytes>,
    /// The thread's result once it stopped: `Ok` after writing everything,
    /// else the first write error (after which it writes nothing more).
    finished: oneshot::Receiver<io::Result<()>>,
}

impl LocalOutput {
    /// Queues a chunk for the stream it came from (starting the thread on
    /// the first), waiting while the queue is full. Cancel-safe only in
    /// that a cancelled call queued nothing.
    ///
    /// # Errors
    /// The thread could not be started; it stopped on a write error (a
    /// closed pipe is [`io::ErrorKind::BrokenPipe`]), which is returned.
    pub(crate) async fn write(&mut self, chunk: OutputBytes) -> io::Result<()> {
        let writer = match &mut self.writer {
            Some(writer) => writer,
            None => self.writer.insert(Writer::start()?),
        };
        if writer.chunks.send(chunk).await.is_ok() {
            return Ok(());
        }
        // The thread dropped its end: it stopped on an error.
        match (&mut writer.finished).await {
            Ok(Err(error)) => Err(error),
            Ok(Ok(())) | Err(_) => Err(stopped()),
        }
    }

    /// Waits until every queued chunk is written.
    ///
    /// # Errors
    /// The first write error, if any.
    pub(crate) async fn finish(self) -> io::Result<()> {
        let Some(writer) = self.writer else {
            return Ok(());
        };
        drop(writer.chunks);
        writer.finished.await.unwrap_or_else(|_| Err(stopped()))
    }
}

impl Writer {
    /// Starts the writing thread on duplicates of our stdout and stderr.
    ///
    /// # Errors
    /// A descriptor could not be duplicated, or the thread not started.
    fn start() -> io::Result<Self> {
        let stdout = File::from(io::stdout().as_fd().try_clone_to_owned()?);
        let stderr = File::from(io::stderr().as_fd().try_clone_to_owned()?);
        widen_pipe(&stdout);
        let (chunks, received) = mpsc::channel(QUEUE_CHUNKS);
        let (report, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(String::from("exec-output"))
            .spawn(move || {
                let _ = report.send(write_all(received, stdout, stderr));
            })?;
        Ok(Self { chunks, finished })
    }
}

/// The pipe capacity asked for when stdout is a pipe, in bytes: the
/// kernel's default of 64 KiB holds one chunk, so the thread would sleep on
/// nearly every write until the reader took it; a larger buffer lets both
/// sides run without waiting for each other. Linux caps it at
/// `/proc/sys/fs/pipe-max-size` (1 MiB by default) for unprivileged users.
const PIPE_BYTES: usize = 1 << 20;

/// Grows the pipe on `stdout` to [`PIPE_BYTES`] when it is a smaller pipe;
/// anything else (a terminal, a file, a socket), or a refusal, leaves it
/// as it is.
fn widen_pipe(stdout: &File) {
    if let Ok(size) = rustix::pipe::fcntl_getpipe_size(stdout)
        && size < PIPE_BYTES
        && let Err(error) = rustix::pipe::fcntl_setpipe_size(stdout, PIPE_BYTES)
    {
        tracing::debug!(%error, "cannot grow the stdout pipe");
    }
}

/// The error for a thread that ended without saying why (it panicked).
fn stopped() -> io::Error {
    io::Error::other("the output thread stopped")
}

/// The thread: writes each chunk whole to its stream, in order, until the
/// queue closes or a write fails.
fn write_all(
    mut received: mpsc::Receiver<OutputBytes>,
    mut stdout: File,
    mut stderr: File,
) -> io::Result<()> {
    while let Some(chunk) = received.blocking_recv() {
        let stream = match chunk.stream {
            OutputStream::Stderr => &mut stderr,
            OutputStream::Stdout | OutputStream::Pty => &mut stdout,
        };
        // `write_all` retries on EINTR and after short writes.
        stream.write_all(&chunk.bytes)?;
    }
    Ok(())
}
