//! The local terminal of `exec -t`: its window size, and raw mode for as
//! long as a [`RawMode`] guard lives.
//!
//! Everything goes through rustix's safe termios wrappers (`tcgetattr`,
//! `tcsetattr`, `cfmakeraw`, and `TIOCGWINSZ` as `tcgetwinsize`), so this
//! module needs no `unsafe`.

use std::io;

use rustix::termios::{OptionalActions, Termios, isatty, tcgetattr, tcgetwinsize, tcsetattr};

/// The PTY size used when the terminal reports 0 rows or columns (a
/// terminal whose size was never set): the protocol's default.
const FALLBACK_SIZE: (u16, u16) = (24, 80);

/// Whether stdin is a terminal.
pub(crate) fn stdin_is_terminal() -> bool {
    isatty(io::stdin())
}

/// The size of the terminal on stdin as `(rows, cols)`, in character cells;
/// 24x80 when it reports no size.
///
/// # Errors
/// The `TIOCGWINSZ` ioctl failed (stdin is not a terminal).
pub(crate) fn window_size() -> io::Result<(u16, u16)> {
    let size = tcgetwinsize(io::stdin())?;
    if size.ws_row == 0 || size.ws_col == 0 {
        return Ok(FALLBACK_SIZE);
    }
    Ok((size.ws_row, size.ws_col))
}

/// Raw mode on the terminal on stdin (no echo, no line editing, no signals
/// from Ctrl-C or Ctrl-Z, no output processing), so that every keystroke
/// goes to the remote PTY as typed. Dropping the guard restores the
/// settings it found, on every way out: a normal return, an error, a
/// handled signal, or a panic unwinding.
pub(crate) struct RawMode {
    /// The settings before raw mode, restored on drop.
    original: Termios,
}

impl RawMode {
    /// Switches the terminal on stdin to raw mode.
    ///
    /// # Errors
    /// Reading or setting the terminal's attributes failed (stdin is not a
    /// terminal).
    pub(crate) fn enter() -> io::Result<Self> {
        let original = tcgetattr(io::stdin())?;
        let mut raw = original.clone();
        raw.make_raw();
        // `Drain` (TCSADRAIN) lets output already written go out under the
        // old settings, and unlike TCSAFLUSH it keeps what was typed ahead.
        tcsetattr(io::stdin(), OptionalActions::Drain, &raw)?;
        Ok(Self { original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Err(error) = tcsetattr(io::stdin(), OptionalActions::Drain, &self.original) {
            // Nothing better can be done on the way out; the shell usually
            // restores its own settings, and `stty sane` does too.
            tracing::warn!(%error, "cannot restore the terminal settings");
        }
    }
}
