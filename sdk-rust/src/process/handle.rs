//! [`ProcessHandle`]: the controls of a started process (write, close stdin,
//! resize, signal, terminate), cheap to clone, so one task can read a
//! [`RemoteChild`](crate::RemoteChild)'s output while another types.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use exec_protocol::{
    Base64Bytes, ErrorKind, ProcessCloseStdin, ProcessCloseStdinParams, ProcessId, ProcessResize,
    ProcessResizeParams, ProcessSignal, ProcessSignalParams, ProcessTerminate,
    ProcessTerminateParams, ProcessWrite, ProcessWriteParams, Signal, WriteStatus,
};

use super::terminal_size;
use crate::connection::ClientConnection;
use crate::error::ClientError;

/// Largest piece one `process/write` carries, in bytes; longer writes are
/// split, so a write never runs into the server's message limit.
const WRITE_PIECE_BYTES: usize = 1024 * 1024;

/// How often, and how long apart, a write is retried while the server
/// answers `starting` (the process is not ready for input yet).
const WRITE_RETRIES: u32 = 100;
/// See [`WRITE_RETRIES`].
const WRITE_RETRY_DELAY: Duration = Duration::from_millis(20);

/// The controls of a started process: write to its stdin, close it, resize
/// its terminal, signal or terminate it. Cheap to clone and usable from any
/// task while the [`RemoteChild`](crate::RemoteChild) reads output.
#[derive(Clone)]
pub struct ProcessHandle {
    /// The connection the process runs on.
    connection: Arc<ClientConnection>,
    /// The process's protocol handle.
    process_id: ProcessId,
    /// Numbers the `writeId`s of this process's writes.
    writes: Arc<AtomicU64>,
    /// Whether stdin was closed through any clone.
    stdin_closed: Arc<AtomicBool>,
}

impl std::fmt::Debug for ProcessHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ProcessHandle")
            .field("process_id", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl ProcessHandle {
    /// The controls of `process_id` on `connection`, with stdin open and
    /// write numbers starting at 1.
    pub(super) fn new(connection: Arc<ClientConnection>, process_id: ProcessId) -> Self {
        Self {
            connection,
            process_id,
            writes: Arc::new(AtomicU64::new(1)),
            stdin_closed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The process's protocol handle (its `processId`).
    pub fn process_id(&self) -> &str {
        &self.process_id
    }

    /// The process's protocol handle, typed, for the child's own requests.
    pub(super) fn protocol_id(&self) -> &ProcessId {
        &self.process_id
    }

    /// The connection the process runs on.
    pub(super) fn connection(&self) -> &ClientConnection {
        &self.connection
    }

    /// Whether stdin was closed through any clone of this handle.
    pub(super) fn is_stdin_closed(&self) -> bool {
        self.stdin_closed.load(Ordering::Acquire)
    }

    /// Writes `bytes` to the process's stdin (the terminal for a PTY
    /// process). Each piece of up to 1 MiB carries a `writeId`, so a retry
    /// (while the server answers `starting`, or after a resumed connection)
    /// is applied once.
    ///
    /// # Errors
    /// [`ClientError::WriteRejected`] with `stdinClosed` (stdin closed or
    /// never open: no `pipe_stdin` and no PTY, or the process exited) or
    /// `unknownProcess`; [`ClientError::TransportClosed`].
    pub async fn write(&self, bytes: impl AsRef<[u8]>) -> Result<(), ClientError> {
        for piece in bytes.as_ref().chunks(WRITE_PIECE_BYTES) {
            self.write_piece(piece).await?;
        }
        Ok(())
    }

    /// One `process/write`, retried while the process is starting.
    async fn write_piece(&self, piece: &[u8]) -> Result<(), ClientError> {
        let number = self.writes.fetch_add(1, Ordering::Relaxed);
        let params = ProcessWriteParams {
            chunk: Base64Bytes(piece.to_vec()),
            process_id: self.process_id.clone(),
            write_id: Some(format!("{}:{number}", *self.process_id)),
        };
        let mut attempts = 0;
        loop {
            let response = self.connection.call::<ProcessWrite>(&params).await?;
            match response.status {
                WriteStatus::Accepted => return Ok(()),
                WriteStatus::Starting if attempts < WRITE_RETRIES => {
                    attempts += 1;
                    tokio::time::sleep(WRITE_RETRY_DELAY).await;
                }
                status => {
                    return Err(ClientError::WriteRejected {
                        process_id: self.process_id.to_string(),
                        status,
                    });
                }
            }
        }
    }

    /// Closes stdin: a pipe process reads EOF; a PTY process gets the
    /// terminal's EOF character (usually ^D). When the connection drops
    /// before the answer, the close is sent again after the resume, and a
    /// `stdinClosed` answer then means the first one was applied.
    ///
    /// # Errors
    /// [`ClientError::Server`] with kind `stdinClosed` (a pipe process
    /// without `pipe_stdin`) or `unknownProcess`; [`ClientError::TransportClosed`].
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        let params = ProcessCloseStdinParams {
            process_id: self.process_id.clone(),
        };
        let mut repeated = false;
        loop {
            match self.connection.call::<ProcessCloseStdin>(&params).await {
                Ok(_) => break,
                Err(ClientError::ConnectionLost { .. }) => repeated = true,
                Err(error) if repeated && error.kind() == Some(ErrorKind::StdinClosed) => break,
                Err(error) => return Err(error),
            }
        }
        self.stdin_closed.store(true, Ordering::Release);
        Ok(())
    }

    /// Resizes the process's terminal to `rows` by `cols` character cells
    /// (each 1 to 65535); the child receives SIGWINCH.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] for a zero size; [`ClientError::Server`]
    /// with kind `notPty` (a pipe process) or `unknownProcess`;
    /// [`ClientError::TransportClosed`].
    pub async fn resize(&self, rows: u16, cols: u16) -> Result<(), ClientError> {
        let size = terminal_size(rows, cols)?;
        let params = ProcessResizeParams {
            cols: size.cols,
            process_id: self.process_id.clone(),
            rows: size.rows,
        };
        self.connection.call::<ProcessResize>(&params).await?;
        Ok(())
    }

    /// Sends `signal` to the process's whole process group.
    ///
    /// # Errors
    /// [`ClientError::Server`] with kind `unknownProcess`; [`ClientError::TransportClosed`].
    pub async fn signal(&self, signal: Signal) -> Result<(), ClientError> {
        let params = ProcessSignalParams {
            process_id: self.process_id.clone(),
            signal,
        };
        self.connection.call::<ProcessSignal>(&params).await?;
        Ok(())
    }

    /// Kills the process's whole tree. Returns `true` when it was running
    /// and is now being killed, `false` when it had already exited. The exit
    /// then reports `reason` `killed`.
    ///
    /// # Errors
    /// [`ClientError::TransportClosed`].
    pub async fn terminate(&self) -> Result<bool, ClientError> {
        let params = ProcessTerminateParams {
            process_id: self.process_id.clone(),
        };
        Ok(self
            .connection
            .call::<ProcessTerminate>(&params)
            .await?
            .running)
    }
}
