//! The signals `exec` handles while the remote process runs, and what each
//! means for it.
//!
//! - SIGINT and SIGQUIT (Ctrl-C and Ctrl-\ at a terminal in its normal
//!   mode) are forwarded to the remote process group as `interrupt` and
//!   `quit`. Under `-t` the terminal is raw, so those keys arrive as bytes
//!   and reach the remote PTY instead; only a signal sent from elsewhere is
//!   forwarded then.
//! - SIGWINCH (the window was resized) resizes the remote PTY under `-t`.
//! - SIGTERM and SIGHUP end the session: the remote process tree is
//!   terminated, the terminal restored, the connection closed, and `exec`
//!   exits with 128 + the signal number, as if it had died of it.

use std::io;

use exec_client::Signal;
use nix::sys::signal::Signal as NixSignal;
use tokio::signal::unix::{SignalKind, signal};

/// What a received signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalSignal {
    /// Send this signal to the remote process group.
    Forward(Signal),
    /// The local window size changed.
    WindowResized,
    /// End the session, exiting with 128 + this signal number.
    End(NixSignal),
}

/// The installed handlers. Once installed, these signals no longer have
/// their default action (death) for this process.
pub(crate) struct Signals {
    /// SIGINT.
    interrupt: tokio::signal::unix::Signal,
    /// SIGQUIT.
    quit: tokio::signal::unix::Signal,
    /// SIGTERM.
    terminate: tokio::signal::unix::Signal,
    /// SIGHUP.
    hangup: tokio::signal::unix::Signal,
    /// SIGWINCH, only under `-t`.
    window: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers; SIGWINCH's only when `terminal` is true.
    ///
    /// # Errors
    /// A handler could not be installed.
    pub(crate) fn install(terminal: bool) -> io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
            window: if terminal {
                Some(signal(SignalKind::window_change())?)
            } else {
                None
            },
        })
    }

    /// The next signal received. Cancel-safe: a signal that arrives while
    /// the future is dropped is returned by the next call.
    pub(crate) async fn next(&mut self) -> LocalSignal {
        let window = &mut self.window;
        let window = async move {
            match window {
                Some(window) => window.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => LocalSignal::Forward(Signal::Interrupt),
            _ = self.quit.recv() => LocalSignal::Forward(Signal::Quit),
            _ = self.terminate.recv() => LocalSignal::End(NixSignal::SIGTERM),
            _ = self.hangup.recv() => LocalSignal::End(NixSignal::SIGHUP),
            _ = window => LocalSignal::WindowResized,
        }
    }
}

/// The local number of a protocol signal, for the 128 + N exit status.
pub(crate) fn signal_number(signal: Signal) -> i32 {
    exec_server::process::nix_signal(signal) as i32
}
