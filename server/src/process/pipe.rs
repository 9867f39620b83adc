//! Starting a process on pipes: stdout and stderr are pipes the driver reads,
//! stdin is a pipe with `pipeStdin` and `/dev/null` otherwise, and the child
//! leads a process group of its own so signals reach its children too.
//!
//! The server creates the pipes itself, close-on-exec (the child gets its
//! ends only as its stdio), makes its own ends non-blocking and registers
//! them with the reactor before the spawn, so nothing can fail once the
//! child runs; its copies of the child's ends go right after the spawn, so
//! the driver reads EOF once the child (and whatever inherited them) closed
//! them.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd as _, OwnedFd};

use rustix::pipe::{PipeFlags, pipe_with};
use tokio::net::unix::pipe::{Receiver, Sender};

use super::cgroup::ProcessCgroup;
use super::child_wait::ChildWait;
use super::command::LaunchSpec;
use super::reaper;
use super::spawn::{self, ChildSetup, Leader};

/// A started pipe process.
pub(crate) struct PipeChild {
    /// Its pid (and process group id).
    pub pid: u32,
    /// Waits for its exit.
    pub exit: ChildWait,
    /// Its stdin, with `pipeStdin`.
    pub stdin: Option<Sender>,
    /// Its stdout.
    pub stdout: Receiver,
    /// Its stderr.
    pub stderr: Receiver,
}

/// Starts `spec` on pipes, in `cgroup` when given; must run inside a
/// runtime (the pipes and the child's pidfd register with its reactor).
/// Errors: the operating system's reason the pipes or the spawn (or joining
/// the cgroup) failed.
pub(crate) fn spawn(spec: &LaunchSpec, cgroup: Option<&ProcessCgroup>) -> io::Result<PipeChild> {
    let image = spec.exec_image()?;
    let (stdin, child_stdin) = if spec.pipe_stdin {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
        (Some(sender(write)?), read)
    } else {
        // std's `File::open` opens close-on-exec.
        (None, OwnedFd::from(File::open("/dev/null")?))
    };
    let (stdout, child_stdout) = output_pipe()?;
    let (stderr, child_stderr) = output_pipe()?;
    let setup = ChildSetup {
        image: &image,
        stdio: [
            child_stdin.as_fd(),
            child_stdout.as_fd(),
            child_stderr.as_fd(),
        ],
        leader: Leader::ProcessGroup,
        cgroup: cgroup.map(ProcessCgroup::handle),
    };
    let (exit, pid) = reaper::spawn_tracked(|| {
        let pid = spawn::spawn(&setup)?;
        Ok((ChildWait::new(pid), pid.as_raw_pid().unsigned_abs()))
    })?;
    Ok(PipeChild {
        pid,
        exit,
        stdin,
        stdout,
        stderr,
    })
}

/// A pipe for one output stream: the server's read end, registered with the
/// reactor, and the child's write end.
fn output_pipe() -> io::Result<(Receiver, OwnedFd)> {
    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    // O_NONBLOCK belongs to the open file of the read end, which only the
    // server holds; the child's write end stays blocking.
    rustix::io::ioctl_fionbio(&read, true)?;
    Ok((Receiver::from_owned_fd_unchecked(read)?, write))
}

/// The server's write end of the stdin pipe, non-blocking and registered.
fn sender(write: OwnedFd) -> io::Result<Sender> {
    rustix::io::ioctl_fionbio(&write, true)?;
    Sender::from_owned_fd_unchecked(write)
}
