//! [`Command`]: a builder for a remote process, modelled on
//! `tokio::process::Command`, that turns into `process/start` params.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use exec_protocol::{AbsolutePath, ProcessId, ProcessStart, ProcessStartParams};

use super::child::RemoteChild;
use super::output::{Output, RemoteExitStatus};
use super::terminal_size;
use crate::connection::ClientConnection;
use crate::error::ClientError;
use crate::router::Route;

/// How a process will be started, built from [`ExecClient::command`](crate::ExecClient::command).
///
/// Defaults, where the wire protocol needs a value the server cannot choose:
/// - `cwd` is `/` unless [`Command::cwd`] sets it (the protocol requires an
///   absolute working directory);
/// - the environment is empty unless [`Command::env`] adds variables or
///   [`Command::inherit_env`] starts from the server's environment;
/// - the process runs on pipes (streams `stdout` and `stderr`) with stdin
///   from `/dev/null`, unless [`Command::pty`] or [`Command::pipe_stdin`];
/// - the `processId` is a fresh id unique within the connection
///   (`exec-client-N`), unless [`Command::process_id`] sets one.
///
/// The builder can be cloned and spawned more than once (without a fixed
/// `processId`, each spawn gets a new one).
#[derive(Clone)]
pub struct Command {
    /// The connection the process will be started on.
    connection: Arc<ClientConnection>,
    /// Program and arguments.
    argv: Vec<String>,
    /// `argv[0]` as the child sees it, when it differs from the program.
    arg0: Option<String>,
    /// The working directory, an absolute path on the server.
    cwd: String,
    /// Variables set in the child's environment.
    env: BTreeMap<String, String>,
    /// Start from the server's environment instead of an empty one.
    inherit_env: bool,
    /// `(rows, cols)` of a PTY, when the process runs on one.
    pty: Option<(u16, u16)>,
    /// Keep a pipe process's stdin open for writes.
    pipe_stdin: bool,
    /// Kill the process after this long.
    timeout: Option<Duration>,
    /// A fixed `processId`.
    process_id: Option<String>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Command")
            .field("argv", &self.argv)
            .field("arg0", &self.arg0)
            .field("cwd", &self.cwd)
            .field("env", &self.env)
            .field("inherit_env", &self.inherit_env)
            .field("pty", &self.pty)
            .field("pipe_stdin", &self.pipe_stdin)
            .field("timeout", &self.timeout)
            .field("process_id", &self.process_id)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// A command running `program` (looked up in the child's `PATH` when it
    /// has no `/`) on `connection`, with the defaults of the type doc.
    pub(crate) fn new(connection: Arc<ClientConnection>, program: String) -> Self {
        Self {
            connection,
            argv: vec![program],
            arg0: None,
            cwd: String::from("/"),
            env: BTreeMap::new(),
            inherit_env: false,
            pty: None,
            pipe_stdin: false,
            timeout: None,
            process_id: None,
        }
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.argv.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.argv.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets `argv[0]` as the child sees it; the program that runs is unchanged.
    pub fn arg0(mut self, arg0: impl Into<String>) -> Self {
        self.arg0 = Some(arg0.into());
        self
    }

    /// Sets the working directory: an absolute path on the server (a
    /// relative one is refused with `invalidPath`). Default `/`.
    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = cwd.into();
        self
    }

    /// Sets one environment variable (over the server's environment with
    /// [`Command::inherit_env`], else in an environment of its own).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets several environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env.extend(
            vars.into_iter()
                .map(|(key, value)| (key.into(), value.into())),
        );
        self
    }

    /// Removes a variable set with [`Command::env`] (the server's own
    /// variables cannot be removed under [`Command::inherit_env`]).
    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Whether the child starts from the server's environment (`true`) or
    /// an empty one (`false`, the default). Variables set with
    /// [`Command::env`] apply on top either way.
    pub fn inherit_env(mut self, inherit: bool) -> Self {
        self.inherit_env = inherit;
        self
    }

    /// Runs the process on a new pseudo-terminal of `rows` by `cols`
    /// character cells (each 1 to 65535): its output is one stream, `pty`,
    /// and its stdin is the terminal.
    pub fn pty(mut self, rows: u16, cols: u16) -> Self {
        self.pty = Some((rows, cols));
        self
    }

    /// Keeps a pipe process's stdin open for [`RemoteChild::write`]; without
    /// it (and without a PTY) stdin is `/dev/null`.
    pub fn pipe_stdin(mut self) -> Self {
        self.pipe_stdin = true;
        self
    }

    /// Has the server kill the process group after `timeout` (sent in whole
    /// milliseconds, rounded up); the exit then reports `reason` `timedOut`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Uses `process_id` as the process's protocol handle instead of a fresh
    /// one; it must be unique within the connection.
    pub fn process_id(mut self, process_id: impl Into<String>) -> Self {
        self.process_id = Some(process_id.into());
        self
    }

    /// The `process/start` params for a process named `process_id`.
    ///
    /// # Errors
    /// [`ClientError::InvalidInput`] for an empty `processId` or a zero PTY size.
    pub(crate) fn start_params(
        &self,
        process_id: String,
    ) -> Result<ProcessStartParams, ClientError> {
        let process_id = ProcessId::try_from(process_id)
            .map_err(|error| ClientError::InvalidInput(format!("invalid processId: {error}")))?;
        let size = match self.pty {
            Some((rows, cols)) => Some(terminal_size(rows, cols)?),
            None => None,
        };
        Ok(ProcessStartParams {
            arg0: self.arg0.clone(),
            argv: self.argv.clone(),
            cwd: AbsolutePath(self.cwd.clone()),
            env: self.env.clone(),
            inherit_env: self.inherit_env.then_some(true),
            env_policy: None,
            sandbox: None,
            enforce_managed_network: None,
            managed_network: None,
            network_proxy: None,
            pipe_stdin: self.pipe_stdin.then_some(true),
            process_id,
            size,
            timeout_ms: self.timeout.map(|timeout| {
                u64::try_from(timeout.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
            }),
            tty: self.pty.is_some(),
        })
    }

    /// Starts the process and returns its handle once the server confirmed
    /// the start. The handle follows the process's output from its first byte.
    ///
    /// # Errors
    /// [`ClientError::Server`] with kind `spawnFailed` (no such program, bad
    /// `cwd`), `processExists`, `invalidPath` or `limitExceeded`;
    /// [`ClientError::InvalidInput`] for a bad argument;
    /// [`ClientError::TransportClosed`].
    pub async fn spawn(&self) -> Result<RemoteChild, ClientError> {
        let process_id = self
            .process_id
            .clone()
            .unwrap_or_else(|| self.connection.next_process_id());
        let params = self.start_params(process_id)?;
        let (route, events, shared) = Route::new(self.connection.options().output_buffer_chunks);
        // The route exists before the request is sent, so no notification
        // can arrive unrouted; the child removes it when dropped, which also
        // covers a failed or cancelled start.
        self.connection
            .router()
            .register_route(&params.process_id, route)?;
        let mut child = RemoteChild::new(
            self.connection.clone(),
            params.process_id.clone(),
            self.pipe_stdin && self.pty.is_none(),
            events,
            shared,
        );
        let started = self.connection.call::<ProcessStart>(&params).await?;
        child.set_pid(started.pid);
        Ok(child)
    }

    /// Starts the process and waits for it to end, discarding its output
    /// (see [`RemoteChild::wait`]).
    ///
    /// # Errors
    /// As [`Command::spawn`] and [`RemoteChild::wait`].
    pub async fn status(&self) -> Result<RemoteExitStatus, ClientError> {
        self.spawn().await?.wait().await
    }

    /// Starts the process and collects all its output and its exit, like
    /// `std::process::Command::output` (see [`RemoteChild::output`]).
    ///
    /// # Errors
    /// As [`Command::spawn`] and [`RemoteChild::output`].
    pub async fn output(&self) -> Result<Output, ClientError> {
        self.spawn().await?.output().await
    }
}
