//! [`ServerProcess`]: a child the harness started (the `exec-server` binary,
//! or a `conformance-proxy` in front of it), stopped with SIGTERM when
//! dropped so that the server kills its process groups on its way out.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

use crate::error::HarnessError;
use crate::stderr::StderrLog;

/// How long anything the harness awaits may take: a server starting or
/// stopping, one expected message. Generous, because the tests share a
/// loaded machine; nothing waits this long when things work.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A started child with its stderr followed ([`StderrLog`]).
///
/// Dropping it sends SIGTERM (not SIGKILL): the server then kills every
/// process tree it manages and exits, so a failed test leaves nothing
/// running. Tokio reaps the child afterwards.
#[derive(Debug)]
pub struct ServerProcess {
    /// The process; `id()` is `None` once it has been waited for.
    child: Child,
    /// Its stderr, kept and echoed.
    stderr: StderrLog,
    /// The program, for errors.
    program: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with its stderr piped and followed under `name`
    /// (stdin and stdout are as the command sets them). Call it within a
    /// Tokio runtime.
    ///
    /// # Errors
    /// [`HarnessError::Spawn`] when the program cannot be started.
    pub fn spawn(mut command: Command, name: &str) -> Result<Self, HarnessError> {
        let program = PathBuf::from(command.as_std().get_program());
        let mut child =
            command
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|source| HarnessError::Spawn {
                    program: program.clone(),
                    source,
                })?;
        let stderr = match child.stderr.take() {
            Some(stream) => StderrLog::follow(name, stream),
            None => unreachable!("stderr was set to piped above"),
        };
        Ok(Self {
            child,
            stderr,
            program,
        })
    }

    /// The process id, until the process has been waited for.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The child itself, e.g. to take its piped stdin and stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Its stderr so far.
    pub fn stderr(&self) -> &StderrLog {
        &self.stderr
    }

    /// Waits (up to [`PATIENCE`]) for the stderr line `PREFIX URL` and
    /// returns `URL`.
    ///
    /// # Errors
    /// See [`StderrLog::wait_for_line`].
    pub async fn listening_url(&self, prefix: &str) -> Result<String, HarnessError> {
        self.stderr.wait_for_line(prefix, PATIENCE).await
    }

    /// Sends SIGTERM unless the process was already waited for. A server
    /// stops cleanly on it: it kills its processes and exits 0.
    pub fn terminate(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// Sends `signal` unless the process was already waited for (its pid may
    /// then belong to another process).
    pub fn signal(&self, signal: Signal) {
        if let Some(pid) = self.child.id().and_then(|pid| i32::try_from(pid).ok()) {
            // It may have exited without being waited for: nothing to do then.
            let _ = kill(Pid::from_raw(pid), signal);
        }
    }

    /// Kills it with SIGKILL, which it cannot handle: its processes stay.
    ///
    /// # Errors
    /// The error of `kill(2)`, e.g. when it was already waited for.
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.start_kill()
    }

    /// Waits (up to [`PATIENCE`]) for it to exit.
    ///
    /// # Errors
    /// [`HarnessError::Timeout`], or [`HarnessError::Wait`] when `wait` fails.
    pub async fn wait(&mut self) -> Result<ExitStatus, HarnessError> {
        self.wait_for(PATIENCE).await
    }

    /// Waits up to `patience` for it to exit.
    ///
    /// # Errors
    /// [`HarnessError::Timeout`], or [`HarnessError::Wait`] when `wait` fails.
    pub async fn wait_for(&mut self, patience: Duration) -> Result<ExitStatus, HarnessError> {
        let name = self.stderr.name().to_owned();
        match tokio::time::timeout(patience, self.child.wait()).await {
            Ok(status) => status.map_err(|source| HarnessError::Wait { name, source }),
            Err(_) => Err(HarnessError::Timeout {
                what: format!("{name} ({}) exiting", self.program.display()),
                patience,
            }),
        }
    }

    /// Sends SIGTERM and waits (up to [`PATIENCE`]) for the exit status: 0
    /// for a clean stop.
    ///
    /// # Errors
    /// As [`ServerProcess::wait`].
    pub async fn stop(&mut self) -> Result<ExitStatus, HarnessError> {
        self.terminate();
        self.wait().await
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A clean stop (not a kill) lets the server kill its process groups.
        self.terminate();
    }
}
