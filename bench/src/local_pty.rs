//! A program on a pseudo-terminal of this process, read and written
//! directly: the PTY baselines, with no server in between.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Stdio};

use anyhow::{Context, Result};
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::pty::{Winsize, openpty};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};

/// A child whose stdin and stdout are the terminal, and the terminal's master.
pub struct LocalPty {
    /// The master side: what the child writes to the terminal is read here.
    pub master: File,
    /// The child.
    child: Child,
}

impl LocalPty {
    /// Starts `program args` on a new 24x80 terminal; `raw` switches the
    /// terminal to raw mode first (no echo, no line editing, no output
    /// processing), as `stty raw -echo` does.
    ///
    /// # Errors
    /// When the terminal cannot be opened or set up, or the program not started.
    pub fn spawn(program: &str, args: &[&str], raw: bool) -> Result<Self> {
        let size = Winsize {
            ws_row: 24,
            ws_col: 80,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = openpty(&size, None).context("openpty")?;
        // Without close-on-exec the child would hold the master open too and
        // never see the terminal hang up when this side closes it.
        for fd in [&pty.master, &pty.slave] {
            fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).context("FD_CLOEXEC")?;
        }
        if raw {
            let mut termios = tcgetattr(&pty.slave).context("tcgetattr")?;
            cfmakeraw(&mut termios);
            tcsetattr(&pty.slave, SetArg::TCSANOW, &termios).context("tcsetattr")?;
        }
        let stdin: OwnedFd = pty.slave.try_clone().context("dup")?;
        let stdout: OwnedFd = pty.slave.try_clone().context("dup")?;
        let child = std::process::Command::new(program)
            .args(args)
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {program} on a PTY"))?;
        drop(pty.slave);
        Ok(Self {
            master: File::from(pty.master),
            child,
        })
    }

    /// Reads the master until the terminal hangs up (the child and every
    /// other holder of the terminal closed it) and returns the byte count.
    ///
    /// # Errors
    /// A read error other than the hang-up (`EIO` on Linux).
    pub fn read_to_end_counting(&mut self, buffer: &mut [u8]) -> Result<u64> {
        let mut total = 0u64;
        loop {
            match self.master.read(buffer) {
                Ok(0) => return Ok(total),
                Ok(length) => total += length as u64,
                Err(error) if error.raw_os_error() == Some(nix::libc::EIO) => return Ok(total),
                Err(error) if error.kind() == ErrorKind::Interrupted => {}
                Err(error) => return Err(error).context("reading the PTY master"),
            }
        }
    }

    /// Closes the terminal and reaps the child: one still reading it gets
    /// `EIO` (the terminal hung up) and ends.
    ///
    /// # Errors
    /// When waiting for the child fails.
    pub fn finish(self) -> Result<std::process::ExitStatus> {
        let Self { master, mut child } = self;
        drop(master);
        child.wait().context("waiting for the PTY child")
    }
}
