//! [`BlockingPool`]: a bounded pool of plain OS threads for blocking work
//! that may take forever (a file on a stalled mount), kept apart from tokio's
//! blocking pool so that such work can never starve process control,
//! signals or shutdown, which need threads of their own.
//!
//! # Bounds
//! - At most [`PoolLimits::max_threads`] threads. They start lazily, when a
//!   job arrives and no idle thread can take it, and end after
//!   [`PoolLimits::idle_timeout`] without work, so an idle server holds none.
//! - At most [`PoolLimits::queue_capacity`] jobs wait for a thread; one more
//!   makes [`BlockingPool::run`] fail at once with [`PoolError::Full`]
//!   instead of waiting.
//! - Each job has a deadline. When it passes, [`BlockingPool::run`] returns
//!   [`PoolError::DeadlinePassed`]: a job still queued is then dropped
//!   without running; a running job cannot be stopped (a thread stuck in the
//!   kernel cannot be interrupted), so its thread finishes it and keeps its
//!   slot until then. A stuck job therefore still counts against the bound,
//!   and a pool whose every thread is stuck answers every further job with
//!   `DeadlinePassed` (or `Full`), never with more threads.
//! - A thread that the OS refuses to create (a pids cgroup limit,
//!   `RLIMIT_NPROC`) makes `run` fail with [`PoolError::Spawn`] when no
//!   thread exists to take the job later; when some do, the job waits for
//!   one of them. Nothing panics.
//!
//! Dropping the future of [`BlockingPool::run`] (a client that went away)
//! abandons its job the same way a passed deadline does.
//!
//! Nothing joins the threads: a process that exits does not wait for a job
//! stuck in the kernel, which is what lets the server exit on SIGTERM with
//! fs calls stuck.

use std::collections::VecDeque;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::sync::lock;

/// The sizes and timeouts of one [`BlockingPool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    /// The most threads the pool runs at once, stuck ones included.
    pub max_threads: usize,
    /// The most jobs waiting for a thread; beyond it, [`PoolError::Full`].
    pub queue_capacity: usize,
    /// How long a thread without work waits for more before it ends.
    pub idle_timeout: Duration,
    /// The name of the pool's threads (as `ps -L` and panics show it).
    pub thread_name: &'static str,
}

/// Why [`BlockingPool::run`] returned no result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Every thread is busy and the queue holds `capacity` jobs already.
    #[error("{capacity} jobs are already waiting for one of {threads} threads")]
    Full {
        /// The queue's capacity, in jobs.
        capacity: usize,
        /// The pool's thread limit.
        threads: usize,
    },
    /// No thread could take the job: the OS refused to create one and none
    /// is running.
    #[error("cannot start a thread for it: {0}")]
    Spawn(#[source] io::Error),
    /// The deadline passed before the job finished; a running job goes on
    /// in its thread and its result is dropped.
    #[error("it did not finish within {} s; it may still complete", .0.as_secs_f64())]
    DeadlinePassed(Duration),
    /// The job panicked; its thread survives and serves the next job.
    #[error("it panicked")]
    Panicked,
}

/// A bounded pool of threads for blocking jobs; see the module documentation
/// for its bounds. Cloning gives another handle to the same pool.
#[derive(Debug, Clone)]
pub struct BlockingPool {
    /// The queue and counts every handle and every thread of the pool share.
    shared: Arc<Shared>,
}

/// What a pool's handles and threads share.
#[derive(Debug)]
struct Shared {
    /// The pool's configuration, fixed at creation.
    limits: PoolLimits,
    /// The queue and the thread counts, changed together under one lock.
    state: Mutex<State>,
    /// Wakes an idle thread when a job is queued.
    job_queued: Condvar,
}

/// A pool's mutable state.
#[derive(Default)]
struct State {
    /// Jobs waiting for a thread, oldest first.
    queue: VecDeque<Box<dyn Job>>,
    /// Threads alive (or reserved while being created), busy or not.
    threads: usize,
    /// Threads running a job (perhaps stuck in it).
    busy: usize,
    /// Whether the last attempt to start a thread failed, so that a pool
    /// at the OS's limit warns once, not once per job.
    spawn_failing: bool,
}

impl State {
    /// Threads that will take a queued job without a new one being started:
    /// idle ones and ones being started.
    fn free_threads(&self) -> usize {
        self.threads - self.busy
    }

    /// Queued jobs no free thread will take: those waiting for a busy
    /// thread to finish.
    fn waiting(&self) -> usize {
        self.queue.len().saturating_sub(self.free_threads())
    }
}

impl std::fmt::Debug for State {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("State")
            .field("queued", &self.queue.len())
            .field("threads", &self.threads)
            .field("busy", &self.busy)
            .field("spawn_failing", &self.spawn_failing)
            .finish()
    }
}

/// One queued job, with its result's way back erased so that jobs of every
/// result type share one queue.
trait Job: Send {
    /// Whether the caller stopped waiting (its deadline passed or its future
    /// was dropped), so running the job would be wasted work.
    fn is_abandoned(&self) -> bool;
    /// Runs the job and sends its result to the caller.
    fn run(self: Box<Self>);
    /// Tells the caller the job will not run, and why.
    fn refuse(self: Box<Self>, error: PoolError);
}

/// A closure and the channel its result goes back on.
struct Reply<F, T> {
    /// The work.
    work: F,
    /// Where the result goes; closed when the caller stopped waiting.
    reply: oneshot::Sender<Result<T, PoolError>>,
}

impl<F, T> Job for Reply<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn is_abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    fn run(self: Box<Self>) {
        let Self { work, reply } = *self;
        // The thread survives a panicking job, so a panic cannot shrink the
        // pool while its count says otherwise.
        let result = catch_unwind(AssertUnwindSafe(work)).map_err(|_| PoolError::Panicked);
        // The caller may have given up meanwhile; then nobody wants it.
        let _ = reply.send(result);
    }

    fn refuse(self: Box<Self>, error: PoolError) {
        let _ = self.reply.send(Err(error));
    }
}

impl BlockingPool {
    /// A pool with `limits` and no threads yet.
    pub fn new(limits: PoolLimits) -> Self {
        Self {
            shared: Arc::new(Shared {
                limits,
                state: Mutex::new(State::default()),
                job_queued: Condvar::new(),
            }),
        }
    }

    /// The pool's threads now alive, busy, stuck or idle (for tests; a
    /// count is stale as soon as it is read).
    #[cfg(test)]
    pub fn threads(&self) -> usize {
        lock(&self.shared.state).threads
    }

    /// Runs `work` on one of the pool's threads and returns its result, or
    /// an error after at most `deadline` (counted from this call, so time
    /// in the queue counts).
    ///
    /// # Errors
    /// [`PoolError::Full`] at once when the queue is full;
    /// [`PoolError::Spawn`] at once when no thread exists and none can be
    /// created; [`PoolError::DeadlinePassed`] when `deadline` passes first;
    /// [`PoolError::Panicked`] when `work` panics.
    pub async fn run<T, F>(&self, deadline: Duration, work: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        self.submit(Box::new(Reply { work, reply }))?;
        match tokio::time::timeout(deadline, result).await {
            Ok(Ok(outcome)) => outcome,
            // Every job sends before it is dropped; a lost reply means its
            // thread died in a way `catch_unwind` does not see.
            Ok(Err(_)) => Err(PoolError::Panicked),
            Err(_) => Err(PoolError::DeadlinePassed(deadline)),
        }
    }

    /// Queues `job`, starting a thread for it when no idle one can take it
    /// and the limit allows.
    fn submit(&self, job: Box<dyn Job>) -> Result<(), PoolError> {
        let limits = self.shared.limits;
        {
            let mut state = lock(&self.shared.state);
            self.check_room(&mut state)?;
            // A job that no free thread will take waits for a busy one to
            // finish, unless a new thread can take it at once.
            if state.queue.len() < state.free_threads() || state.threads >= limits.max_threads {
                state.queue.push_back(job);
                self.shared.job_queued.notify_one();
                return Ok(());
            }
            // Reserve the slot before unlocking, so that concurrent callers
            // cannot create more than `max_threads` between them.
            state.threads += 1;
        }
        // Creating a thread is a system call that may take a while; other
        // callers need not wait for it.
        let spawned = self.spawn_thread();
        let mut state = lock(&self.shared.state);
        match spawned {
            Ok(()) => state.spawn_failing = false,
            Err(error) => {
                state.threads -= 1;
                if !state.spawn_failing {
                    state.spawn_failing = true;
                    tracing::warn!(
                        "{}: the OS refuses another thread ({error}); jobs wait for running ones or fail",
                        limits.thread_name
                    );
                }
                if state.threads == 0 {
                    // Jobs queued meanwhile counted on this thread; no thread
                    // is left to run them.
                    for queued in state.queue.drain(..) {
                        queued.refuse(PoolError::Spawn(copy_of(&error)));
                    }
                    return Err(PoolError::Spawn(error));
                }
            }
        }
        // Another caller may have filled the queue while this one spawned.
        self.check_room(&mut state)?;
        state.queue.push_back(job);
        self.shared.job_queued.notify_one();
        Ok(())
    }

    /// Fails with [`PoolError::Full`] when the queue has no room, after
    /// dropping the jobs nobody waits for any more: when every thread is
    /// stuck, their callers' deadlines pass and their places free up here.
    fn check_room(&self, state: &mut State) -> Result<(), PoolError> {
        let limits = self.shared.limits;
        if state.waiting() >= limits.queue_capacity {
            state.queue.retain(|job| !job.is_abandoned());
        }
        if state.waiting() >= limits.queue_capacity {
            return Err(PoolError::Full {
                capacity: limits.queue_capacity,
                threads: limits.max_threads,
            });
        }
        Ok(())
    }

    /// Starts one pool thread; the caller has counted it already.
    fn spawn_thread(&self) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        std::thread::Builder::new()
            .name(self.shared.limits.thread_name.to_owned())
            .spawn(move || work_loop(&shared))
            .map(drop)
    }
}

/// Another `io::Error` saying what `error` says (`io::Error` is not `Clone`).
fn copy_of(error: &io::Error) -> io::Error {
    match error.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(error.kind(), error.to_string()),
    }
}

/// A pool thread: runs queued jobs until none comes for the idle timeout.
fn work_loop(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        if let Some(job) = state.queue.pop_front() {
            state.busy += 1;
            drop(state);
            if !job.is_abandoned() {
                job.run();
            }
            state = lock(&shared.state);
            state.busy -= 1;
            continue;
        }
        let (next, timeout) = shared
            .job_queued
            .wait_timeout(state, shared.limits.idle_timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        state = next;
        if timeout.timed_out() && state.queue.is_empty() {
            state.threads -= 1;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use pretty_assertions::assert_eq;

    use super::*;

    fn limits(max_threads: usize, queue_capacity: usize) -> PoolLimits {
        PoolLimits {
            max_threads,
            queue_capacity,
            idle_timeout: Duration::from_secs(30),
            thread_name: "test-pool",
        }
    }

    /// A gate that jobs block on until the test opens it, and that tells
    /// the test when a job reached it.
    #[derive(Clone, Default)]
    struct Gate {
        /// (open, jobs waiting at the gate).
        state: Arc<(Mutex<(bool, usize)>, Condvar)>,
    }

    impl Gate {
        /// Blocks the calling job until [`Gate::open`].
        fn pass(&self) {
            let (mutex, changed) = &*self.state;
            let mut state = lock(mutex);
            state.1 += 1;
            changed.notify_all();
            while !state.0 {
                state = changed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }

        /// Waits until `count` jobs are blocked at the gate.
        fn wait_for(&self, count: usize) {
            let (mutex, changed) = &*self.state;
            let mut state = lock(mutex);
            while state.1 < count {
                state = changed
                    .wait(state)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }

        fn open(&self) {
            let (mutex, changed) = &*self.state;
            lock(mutex).0 = true;
            changed.notify_all();
        }
    }

    const LONG: Duration = Duration::from_secs(60);

    /// Polls `job` (a [`BlockingPool::run`] future) once, which submits its
    /// work; true when it then waits for the result.
    fn submitted<F: Future + Unpin>(job: &mut F) -> bool {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        std::pin::Pin::new(job).poll(&mut context).is_pending()
    }

    #[tokio::test]
    async fn run_returns_what_the_work_returns() {
        let pool = BlockingPool::new(limits(2, 2));
        assert_eq!(pool.run(LONG, || 6 * 7).await.ok(), Some(42));
        assert_eq!(pool.threads(), 1);
    }

    #[tokio::test]
    async fn threads_stop_at_the_limit_and_a_full_queue_fails_at_once() {
        let pool = BlockingPool::new(limits(2, 2));
        let gate = Gate::default();
        let mut waiting = Vec::new();
        for _ in 0..4 {
            let gate = gate.clone();
            let mut job = Box::pin(pool.run(LONG, move || gate.pass()));
            // The first poll submits the job: two start threads, two queue.
            assert!(submitted(&mut job));
            waiting.push(job);
        }
        gate.wait_for(2);
        let refused = pool.run(LONG, || ()).await;
        assert!(
            matches!(
                refused,
                Err(PoolError::Full {
                    capacity: 2,
                    threads: 2
                })
            ),
            "{refused:?}"
        );
        assert_eq!(pool.threads(), 2);
        gate.open();
        for job in waiting {
            assert!(matches!(job.await, Ok(())));
        }
        assert_eq!(pool.threads(), 2);
    }

    #[tokio::test]
    async fn a_deadline_answers_while_the_thread_stays_stuck_and_keeps_its_slot() {
        let pool = BlockingPool::new(limits(1, 1));
        let gate = Gate::default();
        let stuck_gate = gate.clone();
        let stuck = pool
            .run(Duration::from_millis(50), move || stuck_gate.pass())
            .await;
        assert!(
            matches!(stuck, Err(PoolError::DeadlinePassed(_))),
            "{stuck:?}"
        );
        gate.wait_for(1);
        assert_eq!(pool.threads(), 1, "the stuck thread keeps its slot");

        // Queued behind the stuck job, a second one times out too, and is
        // never run once its caller gave up.
        let ran = Arc::new(AtomicBool::new(false));
        let ran_flag = Arc::clone(&ran);
        let queued = pool
            .run(Duration::from_millis(50), move || {
                ran_flag.store(true, Ordering::SeqCst)
            })
            .await;
        assert!(
            matches!(queued, Err(PoolError::DeadlinePassed(_))),
            "{queued:?}"
        );
        assert_eq!(pool.threads(), 1, "no thread beyond the limit");

        // The abandoned job's place in the full queue is free again.
        let mut later = Box::pin(pool.run(LONG, || "done"));
        assert!(submitted(&mut later));
        gate.open();
        assert_eq!(later.await.ok(), Some("done"));
        assert!(!ran.load(Ordering::SeqCst), "an abandoned job never runs");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone() {
        let pool = BlockingPool::new(limits(1, 1));
        let panicked = pool.run(LONG, || panic!("a job's bug")).await;
        assert!(matches!(panicked, Err(PoolError::Panicked)), "{panicked:?}");
        assert_eq!(pool.run(LONG, || 1).await.ok(), Some(1));
        assert_eq!(pool.threads(), 1);
    }

    #[tokio::test]
    async fn idle_threads_end() {
        let pool = BlockingPool::new(PoolLimits {
            idle_timeout: Duration::from_millis(20),
            ..limits(2, 2)
        });
        assert_eq!(pool.run(LONG, || 1).await.ok(), Some(1));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.threads() > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(pool.threads(), 0);
        assert_eq!(pool.run(LONG, || 2).await.ok(), Some(2));
    }
}
