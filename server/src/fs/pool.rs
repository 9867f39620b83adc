//! Where every `fs/*` operation runs: the fs [`BlockingPool`] (its own
//! threads, never tokio's blocking pool, which process control and shutdown
//! need), with a deadline on each call.
//!
//! A filesystem call can block for as long as the kernel likes (a stalled
//! network mount, a device). Such a call ties up one of
//! [`FS_MAX_THREADS`] threads until the kernel lets it go, but its request is
//! answered when [`FS_CALL_DEADLINE`] passes, and no more than
//! [`FS_MAX_THREADS`] threads are ever tied up that way, however many calls
//! clients send.

use std::io;
use std::path::Path;
use std::sync::LazyLock;
use std::time::Duration;

use super::local_mounts::all_mounts_local;
use crate::blocking_pool::{BlockingPool, PoolError, PoolLimits};
use crate::error::ServerError;

/// The most threads doing fs work at once, for the whole server (stuck ones
/// included).
pub const FS_MAX_THREADS: usize = 16;

/// The most fs calls waiting for one of the [`FS_MAX_THREADS`] threads, for
/// the whole server; one more is answered `limitExceeded` at once.
pub const FS_QUEUE_CAPACITY: usize = 256;

/// How long an fs call may take, queueing included, before it is answered
/// with an `io` error naming this deadline (30 s). The work itself cannot be
/// stopped once running, so it may still complete after the answer.
pub const FS_CALL_DEADLINE: Duration = Duration::from_secs(30);

/// The server's one fs pool, started on first use.
static FS_POOL: LazyLock<BlockingPool> = LazyLock::new(|| {
    BlockingPool::new(PoolLimits {
        max_threads: FS_MAX_THREADS,
        queue_capacity: FS_QUEUE_CAPACITY,
        idle_timeout: Duration::from_secs(10),
        thread_name: "exec-server-fs",
    })
});

/// Runs filesystem work about `path` (the path a failure of the pool itself
/// names) on the fs pool, so that a slow or stuck disk never stalls the
/// tasks serving connections, nor process control.
///
/// # Errors
/// What `work` returns; `limitExceeded` when [`FS_QUEUE_CAPACITY`] calls
/// already wait; `io` naming `path` when no thread can be started for it
/// (a pids limit) or when [`FS_CALL_DEADLINE`] passes first; `io` (-32603)
/// when the work panicked.
pub(super) async fn run_blocking<T, F>(path: &Path, work: F) -> Result<T, ServerError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ServerError> + Send + 'static,
{
    FS_POOL
        .run(FS_CALL_DEADLINE, work)
        .await
        .map_err(|error| pool_error(path, error))?
}

/// Runs a metadata lookup about `path` (`stat`, `realpath`: no data read or
/// written) on the calling thread when every mount is local
/// (`local_mounts`), which saves the two thread wake-ups of the pool's
/// round trip; otherwise on the fs pool, as [`run_blocking`] does.
///
/// # Errors
/// As [`run_blocking`]; run on the calling thread, only what `work` returns.
pub(super) async fn run_metadata<T, F>(path: &Path, work: F) -> Result<T, ServerError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ServerError> + Send + 'static,
{
    if all_mounts_local() {
        work()
    } else {
        run_blocking(path, work).await
    }
}

/// The client's view of a pool failure for a call about `path`.
fn pool_error(path: &Path, error: PoolError) -> ServerError {
    let os_kind = match &error {
        PoolError::Full { .. } => {
            return ServerError::LimitExceeded {
                what: "fs calls waiting for a thread",
                limit: FS_QUEUE_CAPACITY as u64,
            };
        }
        PoolError::Panicked => {
            return ServerError::Internal(format!("the fs call about `{}` failed", path.display()));
        }
        PoolError::Spawn(source) => source.kind(),
        PoolError::DeadlinePassed(_) => io::ErrorKind::TimedOut,
    };
    ServerError::fs(
        path.display().to_string(),
        io::Error::new(os_kind, format!("the fs call failed: {error}")),
    )
}

#[cfg(test)]
mod tests {
    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn pool_errors_name_the_path_and_the_limit() {
        let path = Path::new("/stuck/file");
        let cases = [
            (
                PoolError::DeadlinePassed(FS_CALL_DEADLINE),
                ErrorKind::Io,
                "/stuck/file: the fs call failed: it did not finish within 30 s; it may still complete",
            ),
            (
                PoolError::Spawn(io::Error::from_raw_os_error(nix::libc::EAGAIN)),
                ErrorKind::Io,
                "/stuck/file: the fs call failed: cannot start a thread for it: Resource temporarily unavailable (os error 11)",
            ),
            (
                PoolError::Full {
                    capacity: FS_QUEUE_CAPACITY,
                    threads: FS_MAX_THREADS,
                },
                ErrorKind::LimitExceeded,
                "fs calls waiting for a thread: the limit is 256",
            ),
        ];
        for (error, kind, message) in cases {
            let error = pool_error(path, error);
            assert_eq!(
                (error.kind(), error.to_string()),
                (kind, message.to_owned())
            );
        }
    }
}
