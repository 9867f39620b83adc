//! The threads process control does its blocking work on: pools of their
//! own (see `crate::blocking_pool`), never tokio's blocking pool, which
//! panics when the OS refuses it a thread and which fs work may fill.
//!
//! - Starts (the checks of the working directory and program, the clone and
//!   exec) run on the start pool; when it cannot take one (its queue is
//!   full, or the OS refuses a first thread) the start gets a typed error.
//! - Kill rounds that walk `/proc` run on the kill pool, whose one thread is
//!   started with the server ([`warm_up`]) and never ends, so that a pids
//!   limit reached later cannot stop a kill; should the OS still refuse the
//!   pool its thread, the round runs on the calling task's thread.

use std::sync::LazyLock;
use std::time::Duration;

use crate::blocking_pool::{BlockingPool, PoolError, PoolLimits};
use crate::error::ServerError;

/// The most starts that spawn at once (more wait in the queue). Generous,
/// because a start can hang (a working directory on a stalled mount) and
/// every start of every connection shares the pool.
const START_THREADS: usize = 64;

/// The most starts waiting for a thread; one more gets `limitExceeded`.
const START_QUEUE: usize = 1024;

/// How long a start may take before its caller stops waiting: never, in
/// practice. A start must run to its end, since the process it spawns is
/// only complete once its tasks run.
const START_DEADLINE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long a kill round may take before its caller walks again itself.
const KILL_ROUND_DEADLINE: Duration = Duration::from_secs(10);

/// The start pool.
static START_POOL: LazyLock<BlockingPool> = LazyLock::new(|| {
    BlockingPool::new(PoolLimits {
        max_threads: START_THREADS,
        queue_capacity: START_QUEUE,
        idle_timeout: Duration::from_secs(10),
        thread_name: "exec-server-start",
    })
});

/// How long the kill pool's thread waits for work before it ends: a
/// century, so once started it never ends.
const KILL_THREAD_IDLE: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The kill pool: its one thread, once started, stays.
static KILL_POOL: LazyLock<BlockingPool> = LazyLock::new(|| {
    BlockingPool::new(PoolLimits {
        max_threads: 1,
        queue_capacity: 4096,
        idle_timeout: KILL_THREAD_IDLE,
        thread_name: "exec-server-kill",
    })
});

/// Starts the kill pool's thread now, while the OS still gives threads.
pub(crate) async fn warm_up() {
    if let Err(error) = KILL_POOL.run(KILL_ROUND_DEADLINE, || ()).await {
        tracing::warn!(%error, "cannot start the thread that kills process trees");
    }
}

/// Runs a start's blocking `work` on the start pool, inside the calling
/// task's runtime (the child's pidfd, pipes and PTY register with its reactor).
///
/// Errors: `limitExceeded` when the pool's queue is full, `io` (`Internal`)
/// when the OS refused it a thread.
pub(crate) async fn run_start<T, F>(work: F) -> Result<T, ServerError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    START_POOL
        .run(START_DEADLINE, move || {
            let _context = runtime.enter();
            work()
        })
        .await
        .map_err(|error| pool_error(error, "process starts waiting for a thread", "the start"))
}

/// The error of work (`what`) a pool could not run: `limitExceeded` (the
/// limit named `queued`) when the pool's queue is full, `io` (`Internal`)
/// when the OS refused a thread (or the work panicked, or outlived its
/// deadline).
fn pool_error(error: PoolError, queued: &'static str, what: &str) -> ServerError {
    match error {
        PoolError::Full { capacity, .. } => ServerError::LimitExceeded {
            what: queued,
            limit: capacity as u64,
        },
        PoolError::Spawn(_) | PoolError::DeadlinePassed(_) | PoolError::Panicked => {
            ServerError::Internal(format!("{what} failed: {error}"))
        }
    }
}

/// Runs one kill round (`work`, cheap to repeat) on the kill pool; on this
/// thread only when the OS refused the pool its thread. `None` when the
/// round did not finish in time (a `/proc` read stuck behind another
/// process): the caller tries again in its next round rather than block a
/// runtime thread on the same read.
pub(crate) async fn run_kill_round<T, F>(work: F) -> Option<T>
where
    T: Send + 'static,
    F: Fn() -> T + Send + Sync + 'static,
{
    let work = std::sync::Arc::new(work);
    let pooled = work.clone();
    match KILL_POOL.run(KILL_ROUND_DEADLINE, move || pooled()).await {
        Ok(result) => Some(result),
        Err(PoolError::Spawn(error)) => {
            tracing::warn!(%error, "no thread to walk /proc on; walking on this one");
            Some(work())
        }
        Err(error) => {
            tracing::warn!(%error, "a kill round did not finish");
            None
        }
    }
}
