//! [`ServerLauncher`]: how to start a server under test (which binary, its
//! limits, extra `serve` arguments, environment, token), whatever the
//! transport; and [`StdioServer`], one started on stdio.
//!
//! The limits are the one place that maps a test's wishes both to `serve`
//! arguments (`--max-processes`) and to the in-process
//! `exec_server::ServerConfig`, so a scenario asks for them once and runs
//! over every transport.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use exec_server::ServerConfig;
use tokio::process::{ChildStdin, ChildStdout, Command};

use crate::binary::locate_server_binary;
use crate::error::HarnessError;
use crate::server_process::ServerProcess;
use crate::transport::Transport;
use crate::ws_server::WsServer;

/// The variable the server reads its connection token from.
const TOKEN_ENV: &str = "EXEC_SERVER_TOKEN";

/// How to start a server: a builder, cheap to clone, used once per server.
///
/// The server never inherits a token: `EXEC_SERVER_TOKEN` is removed from
/// its environment unless [`ServerLauncher::token`] sets it.
#[derive(Debug, Clone, Default)]
pub struct ServerLauncher {
    /// The binary; [`locate_server_binary`] when unset.
    binary: Option<PathBuf>,
    /// `--max-processes`, or `config.process.max_processes` in-process.
    max_processes: Option<usize>,
    /// `--retained-output-bytes`, or `config.process.retained_output_bytes`.
    retained_output_bytes: Option<usize>,
    /// Further `serve` arguments, which have no in-process equivalent.
    args: Vec<OsString>,
    /// Further environment variables of the server process.
    env: Vec<(OsString, OsString)>,
    /// The connection token, passed in `EXEC_SERVER_TOKEN` (never as an
    /// argument, which the process list would show).
    token: Option<String>,
    /// Whether a WebSocket server gets `conformance-proxy` in front when
    /// `EXEC_CONFORMANCE_PROXY` names it.
    behind_conformance_proxy: bool,
}

impl ServerLauncher {
    /// The default server: the located binary, default limits, no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `binary` instead of the located one (another build, or another
    /// implementation that takes `exec-server serve`'s arguments).
    pub fn binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.binary = Some(binary.into());
        self
    }

    /// Processes a connection may have at once (`--max-processes`).
    pub fn max_processes(mut self, count: usize) -> Self {
        self.max_processes = Some(count);
        self
    }

    /// Output retained per process, in bytes (`--retained-output-bytes`).
    pub fn retained_output_bytes(mut self, bytes: usize) -> Self {
        self.retained_output_bytes = Some(bytes);
        self
    }

    /// One more `serve` argument (e.g. `--allow-origin`). A launcher with
    /// arguments cannot start an in-process server.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// More `serve` arguments; see [`ServerLauncher::arg`].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The connection token WebSocket clients must send, read by the server
    /// from a file (`--token-file PATH`).
    pub fn token_file(self, path: &Path) -> Self {
        self.arg("--token-file").arg(path)
    }

    /// The connection token WebSocket clients must send, passed to the
    /// server in `EXEC_SERVER_TOKEN`.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// An environment variable of the server process.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Puts the validating `conformance-proxy` in front of WebSocket servers
    /// when `EXEC_CONFORMANCE_PROXY` names it (`cargo xtask test` sets it, so
    /// SDK traffic is checked against the schema); clients then get the
    /// proxy's URL. Only for traffic that is valid: the proxy records every
    /// violation, and any recorded one fails `cargo xtask test`.
    pub fn behind_conformance_proxy(mut self) -> Self {
        self.behind_conformance_proxy = true;
        self
    }

    /// The binary this launcher runs.
    ///
    /// # Errors
    /// As [`locate_server_binary`] when none was given.
    pub fn server_binary(&self) -> Result<PathBuf, HarnessError> {
        match &self.binary {
            Some(binary) => Ok(binary.clone()),
            None => locate_server_binary(),
        }
    }

    /// Whether [`ServerLauncher::new`]'s server would do: no limits,
    /// arguments, environment or token of its own (the binary may differ).
    pub fn is_default(&self) -> bool {
        self.max_processes.is_none()
            && self.retained_output_bytes.is_none()
            && self.args.is_empty()
            && self.env.is_empty()
            && self.token.is_none()
    }

    /// The configuration of an in-process server with these limits.
    ///
    /// # Errors
    /// [`HarnessError::Unsupported`] when the launcher has `serve`
    /// arguments, environment variables or a token: in-process there is no
    /// command line, no process and no upgrade to check a token on.
    pub fn config(&self) -> Result<ServerConfig, HarnessError> {
        if !self.args.is_empty() || !self.env.is_empty() || self.token.is_some() {
            return Err(HarnessError::Unsupported {
                transport: Transport::InProcess,
                what: format!("`serve` arguments {:?}, environment or a token", self.args),
            });
        }
        let mut config = ServerConfig::default();
        if let Some(count) = self.max_processes {
            config.process.max_processes = count;
        }
        if let Some(bytes) = self.retained_output_bytes {
            config.process.retained_output_bytes = bytes;
        }
        Ok(config)
    }

    /// The command `BINARY serve --listen LISTEN ARGS...` with this
    /// launcher's environment and stdin, stdout and stderr unset.
    ///
    /// # Errors
    /// As [`ServerLauncher::server_binary`].
    pub fn serve_command(&self, listen: &str) -> Result<Command, HarnessError> {
        let mut command = Command::new(self.server_binary()?);
        command.args(["serve", "--listen", listen]);
        if let Some(count) = self.max_processes {
            command.arg("--max-processes").arg(count.to_string());
        }
        if let Some(bytes) = self.retained_output_bytes {
            command
                .arg("--retained-output-bytes")
                .arg(bytes.to_string());
        }
        command.args(&self.args);
        command.env_remove(TOKEN_ENV);
        if let Some(token) = &self.token {
            command.env(TOKEN_ENV, token);
        }
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        Ok(command)
    }

    /// Starts `serve --listen stdio://` with piped stdin and stdout. Call it
    /// within a Tokio runtime.
    ///
    /// # Errors
    /// As [`ServerLauncher::server_binary`] and [`ServerProcess::spawn`].
    pub fn spawn_stdio(&self) -> Result<StdioServer, HarnessError> {
        let mut command = self.serve_command("stdio://")?;
        command.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut process = ServerProcess::spawn(command, "exec-server")?;
        let child = process.child_mut();
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("stdin and stdout were set to piped above");
        };
        Ok(StdioServer {
            process,
            stdin,
            stdout,
        })
    }

    /// Starts `serve --listen ws://127.0.0.1:0` (behind the proxy when asked
    /// and named) and waits for its address.
    ///
    /// # Errors
    /// As [`ServerLauncher::server_binary`] and [`ServerProcess::spawn`];
    /// [`HarnessError::NotListening`] or [`HarnessError::Timeout`] when it
    /// prints no address.
    pub async fn start_websocket(&self) -> Result<WsServer, HarnessError> {
        let mut command = self.serve_command("ws://127.0.0.1:0")?;
        command.stdin(Stdio::null()).stdout(Stdio::null());
        WsServer::start(command, self.behind_conformance_proxy).await
    }
}

/// A server on stdio: its process and the pipes a client talks over.
#[derive(Debug)]
pub struct StdioServer {
    /// The process (SIGTERM when dropped; it also exits by itself at the
    /// end of its stdin).
    pub process: ServerProcess,
    /// Its stdin: the client's messages, one per line; dropping it ends the
    /// connection.
    pub stdin: ChildStdin,
    /// Its stdout: the server's messages, one per line.
    pub stdout: ChildStdout,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_serve_arguments_and_the_token_never_is_one() {
        let launcher = ServerLauncher::new()
            .binary("/opt/exec-server")
            .max_processes(2)
            .retained_output_bytes(4096)
            .args(["--allow-origin", "https://ide.example"])
            .token("s3cret");
        let command = launcher.serve_command("stdio://").expect("a command");
        let command = command.as_std();
        assert_eq!(command.get_program(), "/opt/exec-server");
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "serve",
                "--listen",
                "stdio://",
                "--max-processes",
                "2",
                "--retained-output-bytes",
                "4096",
                "--allow-origin",
                "https://ide.example"
            ]
        );
        let token = command
            .get_envs()
            .find(|(key, _)| *key == TOKEN_ENV)
            .and_then(|(_, value)| value);
        assert_eq!(token, Some("s3cret".as_ref()));
    }

    #[test]
    fn without_a_token_the_inherited_one_is_removed() {
        let command = ServerLauncher::new()
            .binary("/opt/exec-server")
            .serve_command("stdio://")
            .expect("a command");
        let removed = command
            .as_std()
            .get_envs()
            .any(|(key, value)| key == TOKEN_ENV && value.is_none());
        assert!(removed);
    }

    #[test]
    fn limits_become_the_in_process_config_and_arguments_cannot() {
        let config = ServerLauncher::new()
            .max_processes(2)
            .retained_output_bytes(4096)
            .config()
            .expect("limits map to the config");
        assert_eq!(
            (
                config.process.max_processes,
                config.process.retained_output_bytes
            ),
            (2, 4096)
        );
        let error = ServerLauncher::new()
            .arg("--allow-origin")
            .config()
            .expect_err("no command line in-process");
        assert!(
            matches!(
                error,
                HarnessError::Unsupported {
                    transport: Transport::InProcess,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_missing_binary_says_how_to_build_it() {
        let error = HarnessError::MissingBinary {
            path: PathBuf::from("/target/debug/exec-server"),
        };
        let message = error.to_string();
        assert!(
            message.contains("/target/debug/exec-server")
                && message.contains("cargo build -p exec-server"),
            "{message}"
        );
    }
}
