//! Starting a process on a pseudo-terminal: the server opens the PTY itself
//! (`posix_openpt`), the child leads a session of its own with the PTY's
//! slave side as stdin, stdout, stderr and controlling terminal (so a resize
//! of the master sends its foreground group SIGWINCH), and the server keeps
//! only the master, as a [`PtyMaster`].
//!
//! The child is started from [`LaunchSpec::exec_image`], which both
//! spawners share, so it gets the same program, `argv[0]` (`arg0` included),
//! arguments, working directory and environment as a pipe process: exactly
//! the spec's environment, nothing added (no `SHELL`, no `TERM`), since the
//! protocol calls `env` the child's whole environment. `spawn` starts it
//! without a fork, joining its cgroup and taking the terminal in the child.
//!
//! The master is non-blocking and registered with the runtime's reactor
//! (`AsyncFd`), so a PTY process needs no thread of its own: the driver reads
//! the terminal in its task only while it can take a chunk (when it stops,
//! the terminal's buffer fills and the child blocks on write), a
//! `process/write` waits in its own task for the terminal to take its bytes
//! (a child that does not read holds back only writes to itself), and the
//! child is waited for through its pidfd, as a pipe child is.
//!
//! Every descriptor of the PTY is opened close-on-exec, so no other child the
//! server starts at the same time inherits one; the child gets the slave
//! only through its stdio, and the server drops its copies of the slave right
//! after the spawn (the master reads EOF only once every process on the
//! terminal closed it).

use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::sync::Arc;

use rustix::buffer::spare_capacity;
use rustix::fs::{Mode, OFlags};
use rustix::pty::{OpenptFlags, grantpt, ioctl_tiocgptpeer, openpt, ptsname, unlockpt};
use rustix::termios::{SpecialCodeIndex, Winsize, tcgetattr, tcsetwinsize};
use tokio::io::unix::AsyncFd;

use super::cgroup::ProcessCgroup;
use super::child_wait::ChildWait;
use super::command::LaunchSpec;
use super::read_buffer::ReadBuffer;
use super::reaper;
use super::spawn::{self, ChildSetup, Leader};

/// The errno of a read from a master whose slave side is closed everywhere.
const EIO: i32 = rustix::io::Errno::IO.raw_os_error();

/// The master side of a PTY, non-blocking and registered with the reactor:
/// reading the terminal's output, writing its input, resizing it and reading
/// its termios. Clones share the one descriptor, which closes with the last.
#[derive(Clone)]
pub(crate) struct PtyMaster(Arc<AsyncFd<OwnedFd>>);

impl PtyMaster {
    /// Makes `master` non-blocking and registers it with the current
    /// runtime's reactor; must be called inside a runtime (tokio panics
    /// otherwise). Errors: `FIONBIO` refused, or the reactor's refusal to
    /// register it.
    #[allow(unsafe_code)]
    fn new(master: OwnedFd) -> io::Result<Self> {
        // O_NONBLOCK belongs to the open file, which only the server holds:
        // the child's stdio is the slave, another open file, and stays blocking.
        rustix::io::ioctl_fionbio(&master, true)?;
        // SAFETY: `register` needs the descriptor to stay open, and to stay
        // the same descriptor of the same open file, for the `AsyncFd`'s
        // whole life. An `OwnedFd` is open until dropped, its `as_raw_fd`
        // never changes, and this type never hands out the `AsyncFd`
        // mutably (no `get_mut`, no `into_inner`), so nothing can close or
        // replace it while it is registered.
        let registered = unsafe { AsyncFd::register(master) };
        let master = registered.map_err(io::Error::from)?;
        Ok(Self(Arc::new(master)))
    }

    /// Reads the terminal's output into `buffer`'s space (appended to what
    /// it holds; as much as the space takes), waiting until there is some
    /// (the buffer is made only then, so an idle terminal holds none);
    /// `Ok(0)` at its EOF, which Linux reports as EIO once every
    /// process on the terminal closed its slave side. Cancel-safe: bytes are
    /// only taken by a read that returns them.
    /// Errors: the kernel's (other than EIO, EAGAIN and EINTR).
    pub(super) async fn read(&self, buffer: &mut ReadBuffer) -> io::Result<usize> {
        loop {
            let mut ready = self.0.readable().await?;
            let hung_up = ready.ready().is_read_closed();
            let mut asked = 0;
            let read = ready.try_io(|master| {
                let prepared = buffer.prepared();
                asked = prepared.capacity() - prepared.len();
                rustix::io::read(master.get_ref(), spare_capacity(prepared))
                    .map_err(io::Error::from)
            });
            match read {
                // The reactor keeps a hang-up ready for good, so waiting again
                // would spin; EAGAIN after one means the slave was opened
                // anew after every process had closed it: still the EOF.
                Err(_would_block) if hung_up => return Ok(0),
                // EAGAIN: the readiness was stale and is cleared; wait again.
                Err(_would_block) => {}
                Ok(Ok(length)) => {
                    // A short read took what the line discipline held: the
                    // next read waits for the reactor's next edge instead of
                    // failing with EAGAIN first (before this output's
                    // notification is written, on the same worker). Output
                    // still in the terminal's flip buffer comes with the
                    // kernel worker that pushes it on, which wakes the
                    // reactor; the guard clears only the readiness it saw,
                    // so an edge meanwhile is kept. (PTY output throughput
                    // measured the same with and without this.)
                    if length > 0 && length < asked {
                        ready.clear_ready();
                    }
                    return Ok(length);
                }
                // Linux reports a terminal whose slave every process closed
                // as EIO on the master: that is its EOF.
                Ok(Err(error)) if error.raw_os_error() == Some(EIO) => return Ok(0),
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Err(error),
            }
        }
    }

    /// Writes as much of `bytes` as the terminal's input queue takes now,
    /// without waiting; returns how many bytes it took (all of them unless
    /// the queue filled). Errors: the kernel's, such as EIO once no process
    /// has the slave side open.
    pub(crate) fn write_now(&self, bytes: &[u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < bytes.len() {
            match rustix::io::write(self.0.get_ref(), &bytes[written..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(length) => written += length,
                Err(rustix::io::Errno::INTR) => {}
                // The queue is full: the caller waits with `write_all`, whose
                // first look at the (maybe stale) readiness sees EAGAIN too.
                Err(rustix::io::Errno::AGAIN) => break,
                Err(errno) => return Err(errno.into()),
            }
        }
        Ok(written)
    }

    /// Writes all of `bytes` to the terminal's input, waiting (in this task
    /// only) while its input queue is full; a partial write is continued.
    /// Not cancel-safe: dropped midway, a prefix of `bytes` may have been
    /// written. Errors: the kernel's, such as EIO once no process has the
    /// slave side open.
    pub(crate) async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let mut ready = self.0.writable().await?;
            let hung_up = ready.ready().is_write_closed();
            let written = ready.try_io(|master| {
                rustix::io::write(master.get_ref(), bytes).map_err(io::Error::from)
            });
            match written {
                // Every process closed the slave (the master hung up): the
                // reactor keeps that ready for good, so waiting again would
                // spin, and the kernel may still say EAGAIN for a moment
                // before its EIO. (The blocking write this replaced was seen
                // to sleep on for good once its child was killed.)
                Err(_would_block) if hung_up => {
                    return Err(io::Error::from_raw_os_error(EIO));
                }
                // EAGAIN: the input queue is full and the readiness cleared;
                // the reactor wakes this task when the child read some.
                Err(_would_block) => {}
                Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(Ok(length)) => bytes = &bytes[length..],
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(error)) => return Err(error),
            }
        }
        Ok(())
    }

    /// Sets the terminal's size to `rows` by `cols` (`TIOCSWINSZ`); the
    /// kernel sends SIGWINCH to the terminal's foreground process group when
    /// the size changed. Errors: the kernel's refusal.
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        tcsetwinsize(self.0.get_ref(), window_size(rows, cols)).map_err(io::Error::from)
    }

    /// The terminal's VEOF character (usually ^D), or ^D when VEOF is
    /// disabled or the termios cannot be read. On Linux the master's termios
    /// are those of the slave, which the child's programs set.
    pub(crate) fn eof_character(&self) -> u8 {
        const CONTROL_D: u8 = 0x04;
        tcgetattr(self.0.get_ref())
            .ok()
            .map(|termios| termios.special_codes[SpecialCodeIndex::VEOF])
            .filter(|character| *character != 0)
            .unwrap_or(CONTROL_D)
    }
}

/// A started PTY process.
pub(crate) struct PtyChild {
    /// Its pid (and process group and session id).
    pub pid: u32,
    /// Waits for its exit (through its pidfd, so waiting needs no thread).
    pub exit: ChildWait,
    /// The master side: output, input, resizing and termios.
    pub master: PtyMaster,
}

/// Starts `spec` on a new PTY of `rows` by `cols`, in `cgroup` when given;
/// must run inside a runtime (the master and the child's pidfd register
/// with its reactor). Errors: the operating system's reason (opening the
/// PTY, a descriptor limit, the reactor's registration, the spawn, or the
/// child's `setsid`/`TIOCSCTTY`).
pub(crate) fn spawn(
    spec: &LaunchSpec,
    rows: u16,
    cols: u16,
    cgroup: Option<&ProcessCgroup>,
) -> io::Result<PtyChild> {
    let image = spec.exec_image()?;
    let (master, slave) = open(rows, cols)?;
    // Registered before the spawn, so nothing can fail once the child runs.
    let master = PtyMaster::new(master)?;
    // The child leaves the server's session and takes its stdin (the slave)
    // as its controlling terminal: without one it would get no SIGWINCH on
    // a resize, no SIGINT from ^C and no job control.
    let setup = ChildSetup {
        image: &image,
        stdio: [slave.as_fd(), slave.as_fd(), slave.as_fd()],
        leader: Leader::SessionOnStdin,
        cgroup: cgroup.map(ProcessCgroup::handle),
    };
    let spawned = reaper::spawn_tracked(|| {
        let pid = spawn::spawn(&setup)?;
        Ok((ChildWait::new(pid), pid.as_raw_pid().unsigned_abs()))
    });
    // The server's copy of the slave goes now, spawned or not, so the master
    // reads EOF once the child's side is closed.
    drop(slave);
    let (exit, pid) = spawned?;
    Ok(PtyChild { pid, exit, master })
}

/// Opens a PTY of `rows` by `cols`: its master and its slave, both
/// close-on-exec and neither becoming the server's controlling terminal.
fn open(rows: u16, cols: u16) -> io::Result<(OwnedFd, OwnedFd)> {
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
    Ok((master, slave))
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pretty_assertions::assert_eq;

    use super::*;

    /// The next `count` bytes `master` reads, each read within 10 s.
    async fn next_bytes(master: &PtyMaster, buffer: &mut ReadBuffer, count: usize) -> Vec<u8> {
        let mut bytes = Vec::new();
        while bytes.len() < count {
            let length = tokio::time::timeout(Duration::from_secs(10), master.read(buffer))
                .await
                .expect("woken by the terminal's output")
                .expect("read");
            assert!(length > 0, "the terminal ended");
            bytes.extend(buffer.take(length));
        }
        bytes
    }

    #[tokio::test]
    async fn output_after_a_short_read_still_wakes_the_reader() {
        // A short read clears the readiness without a read that fails with
        // EAGAIN; the terminal's next output must still wake the reader.
        let (master, slave) = open(24, 80).expect("a PTY");
        let master = PtyMaster::new(master).expect("registered");
        let mut buffer = ReadBuffer::new(64 * 1024, 0);
        for output in [&b"first"[..], b"second", b"third"] {
            rustix::io::write(&slave, output).expect("written to the slave");
            assert_eq!(next_bytes(&master, &mut buffer, output.len()).await, output);
        }
    }
}
