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
//! Without a pidfd (a kernel before 5.3, or no descriptor left) the child
//! is looked at on every SIGCHLD the process gets, as `tokio::process` does
//! without pidfds; should even the SIGCHLD stream be refused, it is looked
//! at on a timer. Neither takes a thread (the start pool and tokio's
//! blocking pool are kept for work that must block).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, WaitOptions, pidfd_open, waitpid};
use tokio::io::unix::AsyncFd;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// How often a child is looked at when neither a pidfd nor SIGCHLD can
/// tell its exit.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How the exit of one child (of this process, not yet reaped) is awaited.
pub(crate) enum ChildWait {
    /// Through its pidfd, readable once it exited.
    Pidfd {
        /// The child.
        pid: Pid,
        /// Its pidfd, registered with the reactor.
        pidfd: AsyncFd<OwnedFd>,
    },
    /// Looked at on every SIGCHLD.
    Sigchld {
        /// The child.
        pid: Pid,
        /// The process's SIGCHLDs from before the first look on.
        sigchld: Signal,
    },
    /// Looked at every [`POLL_INTERVAL`].
    Polled {
        /// The child.
        pid: Pid,
    },
}

impl ChildWait {
    /// Prepares to wait for the child `pid`, which must be an unreaped
    /// child of this process that nothing else waits for. Inside a runtime
    /// (the pidfd registers with its reactor). Cannot fail: without a pidfd
    /// it waits on SIGCHLD, or else on a timer.
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
        let error = match registered {
            Ok(pidfd) => return Self::Pidfd { pid, pidfd },
            Err(error) => error,
        };
        tracing::debug!(%error, pid = pid.as_raw_pid(), "no pidfd; waiting on SIGCHLD");
        match signal(SignalKind::child()) {
            Ok(sigchld) => Self::Sigchld { pid, sigchld },
            Err(error) => {
                tracing::warn!(%error, pid = pid.as_raw_pid(), "no SIGCHLD stream; polling");
                Self::Polled { pid }
            }
        }
    }

    /// Waits until the child exited and reaps it; returns its wait status.
    /// Errors: the kernel's (ECHILD should someone else have reaped it).
    pub(crate) async fn wait(self) -> io::Result<ExitStatus> {
        match self {
            Self::Pidfd { pid, pidfd } => loop {
                let mut ready = pidfd.readable().await?;
                match reap(pid)? {
                    Some(status) => return Ok(status),
                    // Readable but not yet waitable would be a stale
                    // readiness: wait for the next.
                    None => ready.clear_ready(),
                }
            },
            // A SIGCHLD after the stream's creation wakes `recv`; one
            // before it is covered by the look that precedes each wait.
            Self::Sigchld { pid, mut sigchld } => loop {
                if let Some(status) = reap(pid)? {
                    return Ok(status);
                }
                if sigchld.recv().await.is_none() {
                    // The runtime's signal driver is gone: look on a timer.
                    tokio::time::sleep(POLL_INTERVAL).await;
                }
            },
            Self::Polled { pid } => loop {
                if let Some(status) = reap(pid)? {
                    return Ok(status);
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            },
        }
    }
}

/// Reaps the child `pid` when it exited (without waiting); its wait status.
/// Errors: the kernel's.
fn reap(pid: Pid) -> io::Result<Option<ExitStatus>> {
    loop {
        match waitpid(Some(pid), WaitOptions::NOHANG) {
            Ok(reaped) => {
                return Ok(reaped.map(|(_, status)| ExitStatus::from_raw(status.as_raw())));
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    /// A child of this process that exits with `code` once `go` is written
    /// to its stdin, and its pid.
    fn child_exiting_with(code: i32) -> (std::process::Child, Pid) {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", &format!("read line; exit {code}")])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("sh starts");
        let pid = Pid::from_child(&child);
        (child, pid)
    }

    /// Lets the child of `child_exiting_with` exit.
    fn release(child: &mut std::process::Child) {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("a stdin");
        stdin.write_all(b"go\n").expect("written");
    }

    #[tokio::test]
    async fn every_way_of_waiting_reaps_the_child_with_its_status() {
        let (mut first, pid) = child_exiting_with(3);
        let waiting = ChildWait::new(pid);
        assert!(
            matches!(waiting, ChildWait::Pidfd { .. }),
            "this kernel has pidfds"
        );
        release(&mut first);
        assert_eq!(waiting.wait().await.expect("reaped").code(), Some(3));

        let (mut second, pid) = child_exiting_with(4);
        let sigchld = signal(SignalKind::child()).expect("a SIGCHLD stream");
        let waiting = ChildWait::Sigchld { pid, sigchld };
        release(&mut second);
        assert_eq!(waiting.wait().await.expect("reaped").code(), Some(4));

        let (mut third, pid) = child_exiting_with(5);
        release(&mut third);
        let waiting = ChildWait::Polled { pid };
        assert_eq!(waiting.wait().await.expect("reaped").code(), Some(5));
        // Each was reaped: nothing is left to wait for.
        for pid in [first.id(), second.id(), third.id()] {
            let pid = Pid::from_raw(pid as i32).expect("a pid");
            assert!(reap(pid).is_err(), "{pid:?} was not reaped");
        }
    }
}
