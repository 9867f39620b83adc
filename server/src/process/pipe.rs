//! Starting a process on pipes: stdout and stderr are pipes the driver reads,
//! stdin is a pipe with `pipeStdin` and `/dev/null` otherwise, and the child
//! leads a process group of its own so signals reach its children too.

use std::io;
use std::process::Stdio;

use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

use super::cgroup::ProcessCgroup;
use super::command::LaunchSpec;
use super::reaper;

/// A started pipe process.
pub(crate) struct PipeChild {
    /// Its pid (and process group id).
    pub pid: u32,
    /// The child, for waiting.
    pub child: Child,
    /// Its stdin, with `pipeStdin`.
    pub stdin: Option<ChildStdin>,
    /// Its stdout.
    pub stdout: ChildStdout,
    /// Its stderr.
    pub stderr: ChildStderr,
}

/// Starts `spec` on pipes, in `cgroup` when given. Errors: the operating
/// system's reason the spawn (or joining the cgroup) failed.
pub(crate) fn spawn(spec: &LaunchSpec, cgroup: Option<&ProcessCgroup>) -> io::Result<PipeChild> {
    let mut command = Command::from(spec.command(cgroup));
    command
        .stdin(if spec.pipe_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        // The tree is killed explicitly (the whole tree, not just the child),
        // and the child is always waited for.
        .kill_on_drop(false);
    let (mut child, pid) = reaper::spawn_tracked(|| {
        let child = command.spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the child has no pid right after its spawn"))?;
        Ok((child, pid))
    })?;
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        reaper::abandon_child(pid);
        return Err(io::Error::other("the child's output pipes are missing"));
    };
    Ok(PipeChild {
        pid,
        stdin: child.stdin.take(),
        child,
        stdout,
        stderr,
    })
}
