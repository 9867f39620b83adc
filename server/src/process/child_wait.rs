//! [`ChildWait`]: learning a managed child's exit without `tokio::process`:
//! a pidfd registered with the runtime's reactor, which turns readable when
//! the child exits, so waiting needs no thread and no SIGCHLD handling.
//!
//! Once the pidfd is readable the child is a zombie, and `waitpid(pid,
//! WNOHANG)` reaps it and gives its wait status as the kernel encodes it
//! (what `ExitStatus::from_raw` takes). Waiting by pid is sound here: the
//! child is unreaped until this call (nobody else waits for a managed
//! child: the orphan reaper leaves the pids of `reaper`'s managed set
//! alone), so its pid cannot have been reused; and unlike `waitid(P_PIDFD)`
//! (Linux 5.4) it works on every kernel with `pidfd_open` (5.3).
//!
//! Without a pidfd (a kernel before 5.3, no descriptor left, or the
//! reactor refusing it) a blocking `waitpid` on tokio's blocking pool waits
//! instead: one pool thread per such child, as before tokio had pidfds.

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;

use rustix::process::{Pid, PidfdFlags, WaitOptions, pidfd_open, waitpid};
use tokio::io::unix::AsyncFd;

/// How the exit of one child (of this process, not yet reaped) is awaited.
pub(crate) enum ChildWait {
    /// Through its pidfd, readable once it exited.
    Pidfd {
        /// The child.
        pid: Pid,
        /// Its pidfd, registered with the reactor.
        pidfd: AsyncFd<OwnedFd>,
    },
    /// With a blocking `waitpid` on tokio's blocking pool.
    Blocking {
        /// The child.
        pid: Pid,
    },
}

impl ChildWait {
    /// Prepares to wait for the child `pid`, which must be an unreaped
    /// child of this process that nothing else waits for. Inside a runtime
    /// (the pidfd registers with its reactor). Cannot fail: without a pidfd
    /// it falls back to a blocking wait.
    #[allow(unsafe_code)]
    pub(crate) fn new(pid: Pid) -> Self {
        let registered = pidfd_open(pid, PidfdFlags::empty())
            .map_err(io::Error::from)
            .and_then(|pidfd| {
                // SAFETY: `register` needs the descriptor to stay open, and
                // the same open file, while registered. An `OwnedFd` is open
                // until dropped and its number never changes, and this type
                // never hands the `AsyncFd` out (no `get_mut`, no
                // `into_inner`): it is dropped whole, deregistering first.
                unsafe { AsyncFd::register(pidfd) }.map_err(io::Error::from)
            });
        match registered {
            Ok(pidfd) => Self::Pidfd { pid, pidfd },
            Err(error) => {
                tracing::debug!(%error, pid = pid.as_raw_pid(), "no pidfd; waiting on a thread");
                Self::Blocking { pid }
            }
        }
    }

    /// Waits until the child exited and reaps it; returns its wait status.
    /// Errors: the kernel's (ECHILD should someone else have reaped it).
    pub(crate) async fn wait(self) -> io::Result<ExitStatus> {
        match self {
            Self::Pidfd { pid, pidfd } => loop {
                let mut ready = pidfd.readable().await?;
                match waitpid(Some(pid), WaitOptions::NOHANG) {
                    Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
                    // Readable but not yet waitable would be a stale
                    // readiness: wait for the next.
                    Ok(None) => ready.clear_ready(),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(errno) => return Err(errno.into()),
                }
            },
            Self::Blocking { pid } => tokio::task::spawn_blocking(move || {
                loop {
                    match waitpid(Some(pid), WaitOptions::empty()) {
                        Ok(Some((_, status))) => return Ok(ExitStatus::from_raw(status.as_raw())),
                        Ok(None) | Err(rustix::io::Errno::INTR) => {}
                        Err(errno) => return Err(errno.into()),
                    }
                }
            })
            .await
            .map_err(io::Error::other)?,
        }
    }
}
