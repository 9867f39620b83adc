//! What a remote process reports: [`OutputBytes`], [`ProcessEvent`],
//! [`RemoteExitStatus`], and [`Output`] (everything at once, like
//! `std::process::Output`).

use bytes::Bytes;
use exec_protocol::{ExitReason, OutputStream, Signal};

/// One piece of a process's output, in the order the process wrote it,
/// decoded: the bytes that the protocol's `OutputChunk` and `process/output`
/// carry as base64 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputBytes {
    /// Position in the process's sequence (shared with the exit and the
    /// close, starting at 1); consecutive chunks may skip the exit's number.
    pub seq: u64,
    /// `stdout` or `stderr` for a pipe process, `pty` for a PTY process.
    pub stream: OutputStream,
    /// The bytes, exactly as the process wrote them (not necessarily whole
    /// lines or whole UTF-8 characters). A long chunk (32 KiB or more) from
    /// a binary frame is a slice of the received frame, not a copy.
    pub bytes: Bytes,
}

/// How a remote process ended, as `process/exited` reports it: unlike
/// `std::process::ExitStatus`, it also says why (a timeout, a terminate).
/// A death by a signal is told by `signal` and `reason`, never by the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteExitStatus {
    /// The exit code as the server reports it: the exit status, or 128 + N
    /// when signal N ended the process (as a shell reports it), or -1 when
    /// the server could not learn the status.
    pub exit_code: i32,
    /// The signal that ended the process, when it has a protocol name.
    pub signal: Option<Signal>,
    /// Why it ended: by itself, by a signal, its timeout, or a terminate.
    pub reason: ExitReason,
}

impl RemoteExitStatus {
    /// Whether the process exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.reason == ExitReason::Exited && self.exit_code == 0
    }

    /// The code the process passed to `exit`, like
    /// `std::process::ExitStatus::code`: `None` when a signal ended it
    /// (`signal` is set, or `reason` is `signaled` for a signal without a
    /// protocol name), where `exit_code` is 128 + N rather than a code the
    /// process chose.
    pub fn code(&self) -> Option<i32> {
        let signaled = self.signal.is_some() || self.reason == ExitReason::Signaled;
        (!signaled).then_some(self.exit_code)
    }
}

/// The next thing that happened to a process, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProcessEvent {
    /// Output bytes.
    Output(OutputBytes),
    /// Output the server no longer retained when this client fell behind:
    /// `bytes` bytes at this point of the stream are gone for good. Only
    /// reported when the server's `droppedBytes` says so.
    OutputLost {
        /// How many bytes were lost.
        bytes: u64,
    },
    /// The process ended. Output written before it ended may still follow,
    /// until the stream ends (`None`).
    Exited(RemoteExitStatus),
}

/// Everything a process wrote and how it ended, as [`RemoteChild::output`]
/// and [`Command::output`] collect it.
///
/// [`RemoteChild::output`]: crate::RemoteChild::output
/// [`Command::output`]: crate::Command::output
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Bytes from stdout; for a PTY process, everything the terminal showed
    /// (a terminal merges stdout and stderr).
    pub stdout: Vec<u8>,
    /// Bytes from stderr; always empty for a PTY process.
    pub stderr: Vec<u8>,
    /// How the process ended.
    pub status: RemoteExitStatus,
    /// Bytes lost because the server no longer retained them (0 unless the
    /// consumer stalled for longer than the server's retention covers).
    pub dropped_bytes: u64,
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    fn status(exit_code: i32, signal: Option<Signal>, reason: ExitReason) -> RemoteExitStatus {
        RemoteExitStatus {
            exit_code,
            signal,
            reason,
        }
    }

    #[test]
    fn a_signal_is_told_by_signal_and_reason_not_by_the_code() {
        let exited = status(3, None, ExitReason::Exited);
        assert_eq!((exited.code(), exited.success()), (Some(3), false));
        assert!(status(0, None, ExitReason::Exited).success());
        let killed = status(137, Some(Signal::Kill), ExitReason::Killed);
        assert_eq!((killed.code(), killed.success()), (None, false));
        // A signal without a protocol name: only `reason` says it.
        let unnamed = status(156, None, ExitReason::Signaled);
        assert_eq!(unnamed.code(), None);
        // A process that chose to exit with 137 is not a signal death.
        assert_eq!(status(137, None, ExitReason::Exited).code(), Some(137));
    }
}
