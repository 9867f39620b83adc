//! Starting a process on a pseudo-terminal with portable-pty: the child leads
//! a session of its own with the PTY as its controlling terminal (so a resize
//! of the master sends it SIGWINCH), and the server keeps the master.
//!
//! The master's reader and the child's `wait` are blocking, so each PTY
//! process has two small threads: one reads the terminal into a channel of one
//! chunk (when the driver stops taking chunks, the thread stops reading, the
//! terminal's buffer fills and the child blocks on write), one waits for the
//! child and reports its status.
//!
//! Two differences from pipe processes come from portable-pty: it runs
//! `argv[0]` and shows the child that same string, so an `arg0` goes through
//! a helper program (`ProcessConfig::arg0_helper`, the `exec-server` binary)
//! that execs the real program under that name; and it sets `SHELL` (to the
//! user's login shell) when the requested environment has none.

use std::ffi::OsString;
use std::io::{self, Read};
use std::process::ExitStatus;

use portable_pty::{CommandBuilder, MasterPty, PtySize, native_pty_system};
use tokio::sync::{mpsc, oneshot};

use super::command::LaunchSpec;
use super::reaper;

/// A started PTY process.
pub(crate) struct PtyChild {
    /// Its pid (and process group and session id).
    pub pid: u32,
    /// The child, for waiting.
    pub child: std::process::Child,
    /// The master side, for resizing and termios.
    pub master: Box<dyn MasterPty + Send>,
    /// A reader of the master (the terminal's output).
    pub reader: Box<dyn Read + Send>,
    /// The writer of the master (the terminal's input).
    pub writer: Box<dyn io::Write + Send>,
}

/// Starts `spec` on a new PTY of `rows` by `cols`. Errors: the operating
/// system's reason, or portable-pty's in words.
pub(crate) fn spawn(
    spec: &LaunchSpec,
    rows: u16,
    cols: u16,
    arg0_helper: Option<&std::path::Path>,
) -> io::Result<PtyChild> {
    let argv = pty_argv(spec, arg0_helper)?;
    let pair = native_pty_system()
        .openpty(PtySize {
            rows,
            cols,
            pixel_width: 0,
            pixel_height: 0,
        })
        .map_err(into_io_error)?;
    let reader = pair.master.try_clone_reader().map_err(into_io_error)?;
    let writer = pair.master.take_writer().map_err(into_io_error)?;

    let mut builder = CommandBuilder::from_argv(argv);
    builder.env_clear();
    for (name, value) in &spec.env {
        builder.env(name, value);
    }
    builder.cwd(&spec.cwd);

    let (child, pid) = reaper::spawn_tracked(|| {
        let child = pair.slave.spawn_command(builder).map_err(into_io_error)?;
        let pid = child
            .process_id()
            .ok_or_else(|| io::Error::other("the child has no pid right after its spawn"))?;
        Ok((child, pid))
    })?;
    // The server must not hold the slave open: the master reads EOF only
    // once every process on the terminal closed it.
    drop(pair.slave);
    // portable-pty's Unix children are std children; only those give the
    // signal number of a killed child, which the protocol reports.
    let child: Box<dyn portable_pty::Child> = child;
    let child = match child.downcast::<std::process::Child>() {
        Ok(child) => *child,
        Err(_) => {
            reaper::abandon_child(pid);
            return Err(io::Error::other(
                "portable-pty returned a child of an unknown kind",
            ));
        }
    };
    Ok(PtyChild {
        pid,
        child,
        master: pair.master,
        reader,
        writer,
    })
}

/// Starts the thread that reads the terminal in chunks of at most `read_size`
/// bytes; the receiver ends when the terminal reaches EOF (every process on it
/// closed it) or fails.
pub(crate) fn start_reader(
    mut reader: Box<dyn Read + Send>,
    read_size: usize,
) -> io::Result<mpsc::Receiver<Vec<u8>>> {
    let (chunks, receiver) = mpsc::channel(1);
    std::thread::Builder::new()
        .name(String::from("exec-server-pty-read"))
        .spawn(move || {
            let mut buffer = vec![0; read_size];
            loop {
                match reader.read(&mut buffer) {
                    // portable-pty turns the EIO of a closed terminal into EOF.
                    Ok(0) => break,
                    Ok(length) => {
                        if chunks.blocking_send(buffer[..length].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Err(error) => {
                        tracing::debug!(%error, "reading the terminal failed; treating it as EOF");
                        break;
                    }
                }
            }
        })?;
    Ok(receiver)
}

/// Starts the thread that waits for the child; `on_reaped` runs on it right
/// after the child was reaped, then the status goes to the receiver. If the
/// thread cannot start, the child's group is killed and its zombie left to
/// the orphan reaper.
pub(crate) fn start_waiter(
    mut child: std::process::Child,
    on_reaped: impl FnOnce() + Send + 'static,
) -> io::Result<oneshot::Receiver<io::Result<ExitStatus>>> {
    let pid = child.id();
    let (status_sender, status) = oneshot::channel();
    let started = std::thread::Builder::new()
        .name(String::from("exec-server-pty-wait"))
        .spawn(move || {
            let waited = child.wait();
            reaper::child_reaped(pid);
            on_reaped();
            let _ = status_sender.send(waited);
        });
    if let Err(error) = started {
        reaper::abandon_child(pid);
        return Err(error);
    }
    Ok(status)
}

/// portable-pty reports `anyhow` errors; keeps the OS error when there is one.
fn into_io_error(error: anyhow::Error) -> io::Error {
    match error.downcast::<io::Error>() {
        Ok(error) => error,
        Err(error) => io::Error::other(format!("{error:#}")),
    }
}

/// The argument vector portable-pty runs.
///
/// portable-pty looks `argv[0]` up in the child's own `PATH` and fails when
/// there is none; the spec already resolved it the way pipe processes are
/// resolved (with the default `PATH` as fallback), so without a `PATH` the
/// resolved program runs (and the child sees it as its `argv[0]`). With an
/// `arg0` the helper runs instead and execs the resolved program under it.
fn pty_argv(spec: &LaunchSpec, arg0_helper: Option<&std::path::Path>) -> io::Result<Vec<OsString>> {
    let mut argv: Vec<OsString> = spec.argv.iter().map(OsString::from).collect();
    if spec.arg0 != spec.program_name {
        let Some(helper) = arg0_helper else {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "`arg0` on a PTY process needs the exec-server binary as helper, \
                 which this server (in-process mode) does not have",
            ));
        };
        let mut wrapped = vec![
            helper.as_os_str().to_owned(),
            OsString::from(ARG0_HELPER_COMMAND),
            OsString::from(&spec.arg0),
            spec.program.clone().into_os_string(),
        ];
        wrapped.extend(argv.drain(1..));
        return Ok(wrapped);
    }
    if !spec.env.contains_key(std::ffi::OsStr::new("PATH"))
        && let Some(first) = argv.first_mut()
    {
        *first = spec.program.clone().into_os_string();
    }
    Ok(argv)
}

/// The hidden first argument of `exec-server` that makes it the `arg0`
/// helper: `exec-server __exec-arg0 ARG0 PROGRAM [ARGS]...`.
pub const ARG0_HELPER_COMMAND: &str = "__exec-arg0";

/// Runs the `arg0` helper: execs `PROGRAM` with `ARGS`, showing it `ARG0` as
/// its `argv[0]`; the environment, working directory and terminal are
/// inherited. Returns only when the exec failed, with the error.
pub fn run_arg0_helper(mut arguments: impl Iterator<Item = OsString>) -> io::Error {
    use std::os::unix::process::CommandExt as _;
    let (Some(arg0), Some(program)) = (arguments.next(), arguments.next()) else {
        return io::Error::new(
            io::ErrorKind::InvalidInput,
            "usage: __exec-arg0 ARG0 PROGRAM [ARGS]...",
        );
    };
    std::process::Command::new(program)
        .arg0(arg0)
        .args(arguments)
        .exec()
}
