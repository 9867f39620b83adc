//! `exec-server exec [--url URL [--ca-file PATH]] [-i] [-t] [--cwd DIR] [-e KEY=VALUE]... -- PROGRAM [ARGS]...`:
//! runs one program through an exec-server and behaves like it, the way
//! `ssh host CMD` or `docker exec -it` do: its output on our stdout and
//! stderr, byte for byte, and its exit status as ours.
//!
//! # Layout
//! - `mod.rs` (this file): the arguments, connecting, the session loop and
//!   the exit status.
//! - `local_server`: the server served in this process when no `--url` is given.
//! - `reconnect_note`: the note on stderr when a dropped `--url` connection
//!   took more than a second to resume.
//! - `input`: forwarding stdin (`-i`, `-t`).
//! - `output`: writing the output to our stdout and stderr.
//! - `signals`: the signals handled while the process runs.
//! - `terminal`: the local terminal's size and raw mode (`-t`).
//!
//! # Dropped connections
//! With `--url`, a connection that drops (a reset, no close frame) is
//! resumed by the SDK: the process keeps running on the server, and its
//! output comes through byte-exact and its exit status right. A resume that
//! takes more than a second is noted with one line on stderr; one that
//! cannot be made (the server is gone longer than its session TTL) is an
//! error of the connection.
//!
//! # Exit status
//! The remote exit code; 128 + N when signal N ended the remote process, or
//! ended `exec` itself (SIGTERM, SIGHUP; 141 when our stdout is a closed
//! pipe); 255 with one line on stderr for an error of `exec`, the
//! connection or the server (including a program that cannot be started,
//! and a remote death by a signal the protocol has no name for).

mod input;
mod local_server;
mod output;
mod reconnect_note;
mod signals;
mod terminal;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use exec_client::{
    ClientError, ClosedReason, ConnectOptions, ConnectionState, ExecClient, OutputBytes,
    OutputStream, ProcessEvent, ProcessHandle, RemoteExitStatus,
};
use nix::sys::signal::Signal as NixSignal;

use self::local_server::LocalServer;
use self::output::LocalOutput;
use self::signals::{LocalSignal, Signals, signal_number};
use self::terminal::RawMode;

/// The exit status for an error of `exec` itself, as `ssh` uses it.
const ERROR_EXIT: u8 = 255;

/// The variables of the local environment every remote process gets (before `-e`).
const FORWARDED_VARIABLES: [&str; 4] = ["PATH", "HOME", "LANG", "TERM"];

/// The environment variable holding the token for `--url`.
const TOKEN_VARIABLE: &str = "EXEC_SERVER_TOKEN";

/// Run PROGRAM through an exec-server, like `ssh host CMD` or `docker exec`:
/// its stdout and stderr become ours, byte for byte, and its exit code (or
/// 128 + N when signal N ended it) becomes our exit status. Errors of the
/// connection or the server exit 255.
#[derive(clap::Args, Debug)]
#[command(
    override_usage = "exec-server exec [--url URL [--ca-file PATH]] [-i] [-t] [--cwd DIR] [-e KEY=VALUE]... -- PROGRAM [ARGS]..."
)]
pub(crate) struct ExecArgs {
    /// The server: `ws://HOST:PORT` or `wss://HOST:PORT`, sending the token
    /// in EXEC_SERVER_TOKEN when set. Without it, a local server is started
    /// over stdio.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// PEM file of the CA certificates a `wss://` server's certificate must
    /// chain to, trusted instead of the system's roots (default: the file
    /// named by EXEC_SERVER_CA_FILE, else the system's roots).
    #[arg(long, value_name = "PATH", requires = "url")]
    ca_file: Option<std::path::PathBuf>,
    /// Forward stdin to the process, and close the process's stdin at EOF.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Run the process on a PTY of the local terminal's size, with the
    /// local terminal in raw mode and keystrokes forwarded (stdin must be a
    /// terminal); window size changes follow.
    #[arg(short = 't', long)]
    tty: bool,
    /// The working directory on the server (absolute). Default: the local
    /// working directory.
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Set a variable in the process's environment, which otherwise holds
    /// only the local PATH, HOME, LANG and TERM (repeatable).
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = parse_variable)]
    env: Vec<(String, String)>,
    /// The program and its arguments (after `--`, or after the last option).
    #[arg(
        value_name = "PROGRAM",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

/// Parses `-e KEY=VALUE`.
fn parse_variable(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, not `{text}`")),
    }
}

/// Runs the command and returns the exit status for this process. An error
/// is printed as one line on stderr and gives 255.
pub(crate) async fn run(args: ExecArgs) -> u8 {
    match execute(args).await {
        Ok(status) => status,
        Err(error) => {
            eprintln!("exec-server: {}", one_line(&error));
            ERROR_EXIT
        }
    }
}

/// The error and its causes on one line, joined with ": ". A cause whose
/// text its outer error already shows (the SDK's errors print their source)
/// is skipped, and newlines become spaces.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// A client error for the one-line report: a server error as the server's
/// own message with its `data.kind` (the JSON-RPC code says little to a
/// person), anything else as it is.
fn describe(error: ClientError) -> anyhow::Error {
    match error {
        ClientError::Server {
            message,
            kind: Some(kind),
            ..
        } => anyhow::anyhow!("{message} ({kind})"),
        ClientError::Server { message, .. } => anyhow::anyhow!("{message}"),
        other => other.into(),
    }
}

/// An error of the output stream, with why the connection closed when a
/// drop could not be resumed (the session expired, the server stayed out of
/// reach, another client took the session over).
fn lost(client: &ExecClient, error: ClientError) -> anyhow::Error {
    let state = client.connection_state().borrow().clone();
    match state {
        ConnectionState::Closed(
            reason @ (ClosedReason::SessionExpired
            | ClosedReason::GaveUp { .. }
            | ClosedReason::ResumedElsewhere
            | ClosedReason::ResumeRefused(_)),
        ) => describe(error).context(reason.to_string()),
        _ => describe(error),
    }
}

/// What the remote process is started with.
struct Launch {
    /// Program and arguments.
    argv: Vec<String>,
    /// The working directory on the server.
    cwd: String,
    /// The process's whole environment.
    env: BTreeMap<String, String>,
    /// The PTY size (rows, cols) under `-t`.
    terminal_size: Option<(u16, u16)>,
    /// Whether stdin is forwarded.
    forward_stdin: bool,
}

/// Connects, runs the session and closes the connection (which, on every
/// path, makes the server kill what is left of the process).
async fn execute(args: ExecArgs) -> Result<u8> {
    let launch = Launch::from_args(&args)?;
    let options = ConnectOptions::new("exec-server exec").client_version(env!("CARGO_PKG_VERSION"));
    let (client, local_server) = match &args.url {
        Some(url) => {
            let options = match std::env::var(TOKEN_VARIABLE) {
                Ok(token) if !token.is_empty() => options.token(token),
                _ => options,
            };
            let options = match &args.ca_file {
                Some(path) => options.ca_file(path),
                None => options,
            };
            (ExecClient::connect_websocket(url, options).await?, None)
        }
        None => {
            let (client, server) = LocalServer::connect(options).await?;
            (client, Some(server))
        }
    };
    let notes = reconnect_note::follow(&client);
    let outcome = session(&client, launch).await;
    notes.abort();
    // For the local server, this returns once the server connection killed
    // what is left of the process's tree.
    if let Err(error) = client.close().await {
        tracing::debug!(%error, "closing the connection");
    }
    drop(local_server);
    outcome
}

impl Launch {
    /// The launch the arguments describe, with the local defaults filled in.
    ///
    /// # Errors
    /// `-t` without a terminal on stdin; the local working directory cannot
    /// be read or is not UTF-8.
    fn from_args(args: &ExecArgs) -> Result<Self> {
        let cwd = match &args.cwd {
            Some(cwd) => cwd.clone(),
            None => std::env::current_dir()
                .context("reading the working directory")?
                .into_os_string()
                .into_string()
                .map_err(|cwd| {
                    anyhow::anyhow!(
                        "the working directory {} is not UTF-8; pass --cwd",
                        cwd.display()
                    )
                })?,
        };
        let mut env: BTreeMap<String, String> = FORWARDED_VARIABLES
            .iter()
            .filter_map(|name| Some((name.to_string(), std::env::var(name).ok()?)))
            .collect();
        env.extend(args.env.iter().cloned());
        let terminal_size = if args.tty {
            if !terminal::stdin_is_terminal() {
                bail!("-t needs a terminal on stdin");
            }
            Some(terminal::window_size().context("reading the terminal size")?)
        } else {
            None
        };
        Ok(Self {
            argv: args.command.clone(),
            cwd,
            env,
            terminal_size,
            forward_stdin: args.interactive || args.tty,
        })
    }
}

/// Starts the process and follows it to its end: output to stdout and
/// stderr as it arrives, stdin and signals to it. Returns the exit status
/// for this process.
async fn session(client: &ExecClient, launch: Launch) -> Result<u8> {
    let Some((program, arguments)) = launch.argv.split_first() else {
        bail!("no program to run");
    };
    let mut command = client
        .command(program.clone())
        .args(arguments.iter().cloned())
        .cwd(launch.cwd)
        .envs(launch.env);
    if let Some((rows, cols)) = launch.terminal_size {
        command = command.pty(rows, cols);
    } else if launch.forward_stdin {
        command = command.pipe_stdin();
    }
    // Installed before the terminal goes raw, so that no signal can kill
    // this process while the terminal is raw (the guard restores it only
    // when it is dropped).
    let mut signals =
        Signals::install(launch.terminal_size.is_some()).context("installing signal handlers")?;
    // The server's message for a failed start names the program.
    let mut child = command.spawn().await.map_err(describe)?;
    let handle = child.handle();
    let _raw_mode = match launch.terminal_size {
        Some(_) => Some(RawMode::enter().context("switching the terminal to raw mode")?),
        None => None,
    };
    if launch.forward_stdin {
        input::forward_stdin(handle.clone()).context("starting to read stdin")?;
    }

    let mut output = LocalOutput::default();
    let mut status = None;
    loop {
        tokio::select! {
            event = child.next_event() => match event {
                Err(error) => {
                    // What arrived before the connection failed is still
                    // written out.
                    if let Err(error) = output.finish().await {
                        tracing::debug!(%error, "writing the output");
                    }
                    return Err(lost(client, error));
                }
                Ok(Some(ProcessEvent::Output(chunk))) => {
                    if let Err(error) = output.write(chunk).await {
                        if error.kind() == std::io::ErrorKind::BrokenPipe {
                            // Nobody reads our output any more (`| head`):
                            // end quietly, as a process killed by SIGPIPE.
                            end_remote(&handle).await;
                        }
                        return output_failed(error);
                    }
                }
                Ok(Some(ProcessEvent::OutputLost { bytes })) => {
                    // Through the output queue, in its place among the chunks.
                    let note = OutputBytes {
                        seq: 0,
                        stream: OutputStream::Stderr,
                        bytes: format!("exec-server: {bytes} bytes of output were lost\n").into_bytes().into(),
                    };
                    if let Err(error) = output.write(note).await {
                        return output_failed(error);
                    }
                }
                Ok(Some(ProcessEvent::Exited(exited))) => status = Some(exited),
                Ok(Some(_)) => {}
                Ok(None) => break,
            },
            signal = signals.next() => match signal {
                LocalSignal::Forward(signal) => {
                    let handle = handle.clone();
                    // Not awaited here: the answer may queue behind output
                    // that only this loop consumes.
                    tokio::spawn(async move {
                        if let Err(error) = handle.signal(signal).await {
                            tracing::debug!(%error, %signal, "forwarding a signal failed");
                        }
                    });
                }
                LocalSignal::WindowResized => resize_later(&handle),
                LocalSignal::End(signal) => {
                    // What is still queued for our stdout is dropped, as a
                    // process killed by the signal loses its buffers.
                    end_remote(&handle).await;
                    return Ok(exit_for_signal(signal as i32));
                }
            },
        }
    }
    // Everything the process wrote is on our stdout and stderr before the
    // exit status is ours.
    if let Err(error) = output.finish().await {
        return output_failed(error);
    }
    match status {
        Some(status) => Ok(exit_status(status)),
        None => bail!("the server closed `{program}` without reporting its exit"),
    }
}

/// How long `exec` waits for the server to kill the remote tree when it
/// ends early; past it, the session's end (at the server's session TTL)
/// kills the tree instead.
const END_REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// `exec` ends before the remote process (a signal, a closed stdout): kills
/// the remote tree now. Closing the connection alone would leave it running
/// for the server's session TTL, since the server keeps a session whose
/// connection went for a client to resume.
async fn end_remote(handle: &ProcessHandle) {
    match tokio::time::timeout(END_REMOTE_TIMEOUT, handle.terminate()).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::debug!(%error, "terminating the remote process failed"),
        Err(_) => tracing::debug!("terminating the remote process timed out"),
    }
}

/// Resizes the remote PTY to the local terminal's size, on a task of its
/// own (see the signal forwarding in [`session`]).
fn resize_later(handle: &ProcessHandle) {
    let size = match terminal::window_size() {
        Ok(size) => size,
        Err(error) => {
            tracing::debug!(%error, "cannot read the terminal size");
            return;
        }
    };
    let handle = handle.clone();
    tokio::spawn(async move {
        if let Err(error) = handle.resize(size.0, size.1).await {
            tracing::debug!(%error, "resizing the remote terminal failed");
        }
    });
}

/// The exit status for an error writing the output: 128 + SIGPIPE, quietly,
/// when nobody reads it any more (`| head`), as for a process killed by
/// SIGPIPE; else the error.
fn output_failed(error: std::io::Error) -> Result<u8> {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        return Ok(exit_for_signal(NixSignal::SIGPIPE as i32));
    }
    Err(error).context("writing the output")
}

/// 128 + the signal number, as shells report a death by a signal.
fn exit_for_signal(number: i32) -> u8 {
    u8::try_from(128 + number).unwrap_or(ERROR_EXIT)
}

/// Our exit status for the remote process's: 128 + the local number of a
/// named signal that ended it (the signal, not the code, says it was one),
/// else the server's exit code, which is already 128 + N after a signal
/// without a protocol name.
fn exit_status(status: RemoteExitStatus) -> u8 {
    match status.signal {
        Some(signal) => exit_for_signal(signal_number(signal)),
        // Exit codes are 0 to 255; anything else (-1 for a status the server
        // could not learn) keeps its low byte, as `exit(2)` does.
        None => status.exit_code.rem_euclid(256) as u8,
    }
}

#[cfg(test)]
mod tests {
    use exec_client::{ExitReason, Signal};
    use pretty_assertions::assert_eq;

    use super::*;

    fn status(exit_code: i32, signal: Option<Signal>, reason: ExitReason) -> RemoteExitStatus {
        RemoteExitStatus {
            exit_code,
            signal,
            reason,
        }
    }

    #[test]
    fn exit_codes_and_signals_become_exit_statuses() {
        let exited = status(7, None, ExitReason::Exited);
        assert_eq!(exit_status(exited), 7);
        let terminated = status(143, Some(Signal::Terminate), ExitReason::Signaled);
        assert_eq!(exit_status(terminated), 143);
        let killed = status(137, Some(Signal::Kill), ExitReason::Killed);
        assert_eq!(exit_status(killed), 137);
        // SIGWINCH has no protocol name: the server's 128 + N is kept.
        let unnamed = status(156, None, ExitReason::Signaled);
        assert_eq!(exit_status(unnamed), 156);
        let unknown = status(-1, None, ExitReason::Exited);
        assert_eq!(exit_status(unknown), 255);
    }

    #[test]
    fn errors_are_reported_on_one_line_without_repeats() {
        let source = std::io::Error::other("Connection refused");
        let connect = ClientError::Connect {
            url: String::from("ws://127.0.0.1:1"),
            source: Box::new(source),
        };
        let error = anyhow::Error::from(connect).context("connecting\nsomewhere");
        assert_eq!(
            one_line(&error),
            "connecting somewhere: cannot connect to ws://127.0.0.1:1: Connection refused"
        );
        let server = ClientError::Server {
            code: -32602,
            message: String::from("`nope` not found in PATH"),
            kind: Some(exec_client::ErrorKind::SpawnFailed),
            data: None,
        };
        assert_eq!(
            one_line(&describe(server)),
            "`nope` not found in PATH (spawnFailed)"
        );
    }

    #[test]
    fn variables_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_variable("A=b=c"),
            Ok((String::from("A"), String::from("b=c")))
        );
        assert_eq!(parse_variable("A="), Ok((String::from("A"), String::new())));
        assert!(parse_variable("A").is_err());
        assert!(parse_variable("=b").is_err());
    }
}
