//! Starting a process on a pseudo-terminal: the server opens the PTY itself
//! (`posix_openpt`), the child leads a session of its own with the PTY's
//! slave side as stdin, stdout, stderr and controlling terminal (so a resize
//! of the master sends its foreground group SIGWINCH), and the server keeps
//! only the master, as a [`PtyMaster`].
//!
//! The child is started from [`LaunchSpec::command`], the one builder both
//! spawners share, so it gets the same program, `argv[0]` (`arg0` included),
//! arguments, working directory and environment as a pipe process: exactly
//! the spec's environment, nothing added (no `SHELL`, no `TERM`), since the
//! protocol calls `env` the child's whole environment.
//!
//! The master's reader and the child's `wait` are blocking, so each PTY
//! process has two small threads: one reads the terminal into a channel of one
//! chunk (when the driver stops taking chunks, the thread stops reading, the
//! terminal's buffer fills and the child blocks on write), one waits for the
//! child and reports its status. A thread that cannot start is an error of
//! the start, never a panic.
//!
//! Every descriptor of the PTY is opened close-on-exec, so no other child the
//! server starts at the same time inherits one; the child gets the slave
//! only through its stdio, and the server drops its copies of the slave right
//! after the spawn (the master reads EOF only once every process on the
//! terminal closed it).

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, ExitStatus, Stdio};

use rustix::fs::{Mode, OFlags};
use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, ptsname, unlockpt};
use rustix::termios::{SpecialCodeIndex, Winsize, tcgetattr, tcsetwinsize};
use tokio::sync::{mpsc, oneshot};

use super::cgroup::ProcessCgroup;
use super::command::LaunchSpec;
use super::reaper;

/// The errno of a read from a master whose slave side is closed everywhere.
const EIO: i32 = rustix::io::Errno::IO.raw_os_error();

/// The master side of a PTY: resizing the terminal and reading its termios.
/// Dropping it closes the descriptor.
pub(crate) struct PtyMaster(OwnedFd);

impl PtyMaster {
    /// Sets the terminal's size to `rows` by `cols` (`TIOCSWINSZ`); the
    /// kernel sends SIGWINCH to the terminal's foreground process group when
    /// the size changed. Errors: the kernel's refusal.
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        tcsetwinsize(&self.0, window_size(rows, cols)).map_err(io::Error::from)
    }

    /// The terminal's VEOF character (usually ^D), or ^D when VEOF is
    /// disabled or the termios cannot be read. On Linux the master's termios
    /// are those of the slave, which the child's programs set.
    pub(crate) fn eof_character(&self) -> u8 {
        const CONTROL_D: u8 = 0x04;
        tcgetattr(&self.0)
            .ok()
            .map(|termios| termios.special_codes[SpecialCodeIndex::VEOF])
            .filter(|character| *character != 0)
            .unwrap_or(CONTROL_D)
    }

    /// A second descriptor of the master (close-on-exec), as a file to read
    /// or write the terminal through. Errors: `dup` failed (descriptor limit).
    fn file(&self) -> io::Result<File> {
        Ok(File::from(self.0.try_clone()?))
    }
}

/// A started PTY process.
pub(crate) struct PtyChild {
    /// Its pid (and process group and session id).
    pub pid: u32,
    /// The child, for waiting.
    pub child: std::process::Child,
    /// The master side, for resizing and termios.
    pub master: PtyMaster,
    /// A reader of the master (the terminal's output).
    pub reader: File,
    /// A writer of the master (the terminal's input).
    pub writer: File,
}

/// Starts `spec` on a new PTY of `rows` by `cols`, in `cgroup` when given. Errors: the operating
/// system's reason (opening the PTY, a descriptor limit, the spawn, or the
/// child's `setsid`/`TIOCSCTTY`, which the spawn reports as its own error).
pub(crate) fn spawn(
    spec: &LaunchSpec,
    rows: u16,
    cols: u16,
    cgroup: Option<&ProcessCgroup>,
) -> io::Result<PtyChild> {
    let (master, slave) = open(rows, cols)?;
    let reader = master.file()?;
    let writer = master.file()?;

    let mut command = spec.command(cgroup);
    command
        .stdin(Stdio::from(slave.try_clone()?))
        .stdout(Stdio::from(slave.try_clone()?))
        .stderr(Stdio::from(slave));
    lead_a_session_on_stdin(&mut command);
    let spawned = reaper::spawn_tracked(|| {
        let child = command.spawn()?;
        let pid = child.id();
        Ok((child, pid))
    });
    // The command holds the server's copies of the slave: they go now, spawned
    // or not, so the master reads EOF once the child's side is closed.
    drop(command);
    let (child, pid) = spawned?;
    Ok(PtyChild {
        pid,
        child,
        master,
        reader,
        writer,
    })
}

/// Opens a PTY of `rows` by `cols`: its master and its slave, both
/// close-on-exec and neither becoming the server's controlling terminal.
fn open(rows: u16, cols: u16) -> io::Result<(PtyMaster, OwnedFd)> {
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = openpt(flags)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    // TIOCGPTPEER (Linux 4.13) opens the slave from the master itself, which
    // works even where the slave's path under /dev/pts is not reachable; older
    // kernels open it by name.
    let slave = match ioctl_tiocgptpeer(&master, flags) {
        Ok(slave) => slave,
        Err(_) => {
            let path = ptsname(&master, Vec::new())?;
            rustix::fs::open(
                path.as_c_str(),
                OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::empty(),
            )?
        }
    };
    tcsetwinsize(&master, window_size(rows, cols))?;
    Ok((PtyMaster(master), slave))
}

/// The `winsize` of `rows` by `cols` (pixel sizes unknown, so zero).
fn window_size(rows: u16, cols: u16) -> Winsize {
    Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Makes the child of `command` leave the server's session and take its
/// stdin (the PTY's slave) as its controlling terminal: `setsid()`, then
/// `ioctl(0, TIOCSCTTY, 0)`. Without a controlling terminal the child would
/// get no SIGWINCH on a resize, no SIGINT from ^C and no job control.
///
/// The command must not also ask for a process group (`process_group`):
/// std applies it before this hook, and a group leader cannot `setsid`.
#[allow(unsafe_code)]
fn lead_a_session_on_stdin(command: &mut Command) {
    // SAFETY: `pre_exec` hooks run in the child between `fork` and `exec`,
    // where only async-signal-safe work is sound. This one makes two system
    // calls through rustix, which issues them directly (no allocation, no
    // lock, no libc state), and on failure builds an `io::Error` from the
    // errno alone, which does not allocate either. std has already moved the
    // slave to descriptors 0, 1 and 2 when hooks run.
    unsafe {
        command.pre_exec(|| {
            rustix::process::setsid()?;
            rustix::process::ioctl_tiocsctty(rustix::stdio::stdin())?;
            Ok(())
        });
    }
}

/// Starts the thread that reads the terminal in chunks of at most `read_size`
/// bytes; the receiver ends when the terminal reaches EOF (every process on it
/// closed it) or fails. Errors: the thread could not start.
pub(crate) fn start_reader(
    mut reader: File,
    read_size: usize,
) -> io::Result<mpsc::Receiver<Vec<u8>>> {
    let (chunks, receiver) = mpsc::channel(1);
    std::thread::Builder::new()
        .name(String::from("exec-server-pty-read"))
        .spawn(move || {
            let mut buffer = vec![0; read_size];
            loop {
                match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(length) => {
                        if chunks.blocking_send(buffer[..length].to_vec()).is_err() {
                            break;
                        }
                    }
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    // Linux reports a terminal whose slave every process
                    // closed as EIO on the master: that is its EOF.
                    Err(error) if error.raw_os_error() == Some(EIO) => break,
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
/// the orphan reaper, and the error is returned.
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
