//! [`MethodContext`]: what the methods of one connection share: the server's
//! settings, the `initialize`/`initialized` lifecycle, and the session that
//! `initialize` created.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::session::Session;
use crate::sync::lock;

/// Lifecycle states (protocol.md, "Lifecycle"): nothing received yet.
const NEW: u8 = 0;
/// `initialize` was answered; waiting for the `initialized` notification.
const INITIALIZING: u8 = 1;
/// `initialized` arrived: `process/*` and `fs/*` are served.
const READY: u8 = 2;

/// The context of one connection's methods (jsonrpsee's `RpcModule` context).
pub(crate) struct MethodContext {
    /// Server-wide settings.
    pub(crate) config: Arc<ServerConfig>,
    /// One of [`NEW`], [`INITIALIZING`], [`READY`].
    lifecycle: AtomicU8,
    /// The session `initialize` created.
    session: OnceLock<Arc<Session>>,
    /// Hands the connection's writer the event queue of the session it is
    /// attached to, once.
    attach: Mutex<Option<oneshot::Sender<mpsc::Receiver<String>>>>,
}

impl MethodContext {
    /// A context before `initialize`; `attach` receives the event queue of
    /// the session `initialize` creates.
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        attach: oneshot::Sender<mpsc::Receiver<String>>,
    ) -> Self {
        Self {
            config,
            lifecycle: AtomicU8::new(NEW),
            session: OnceLock::new(),
            attach: Mutex::new(Some(attach)),
        }
    }

    /// Moves from new to initializing; fails with `alreadyInitialized` after the first time.
    pub(crate) fn begin_initialize(&self) -> Result<(), ServerError> {
        self.lifecycle
            .compare_exchange(NEW, INITIALIZING, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
            .map_err(|_| ServerError::AlreadyInitialized)
    }

    /// The `initialized` notification: moves from initializing to ready;
    /// returns false (and changes nothing) in any other state.
    pub(crate) fn finish_initialize(&self) -> bool {
        self.lifecycle
            .compare_exchange(INITIALIZING, READY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether `initialized` arrived.
    pub(crate) fn is_ready(&self) -> bool {
        self.lifecycle.load(Ordering::Acquire) == READY
    }

    /// Attaches the connection to `session` (once, from `initialize`, before
    /// its response is queued: the writer, woken by that response, takes the
    /// session's event queue on its next round).
    pub(crate) fn attach(&self, session: Arc<Session>) {
        let events = session.take_events();
        if self.session.set(session).is_err() {
            tracing::error!("a second session for one connection; ignored");
            return;
        }
        if let (Some(attach), Some(events)) = (lock(&self.attach).take(), events) {
            // The connection is closing when its end is gone; the session
            // then ends with it (see `Connection::close`).
            let _ = attach.send(events);
        }
    }

    /// The attached session. Errors: `notInitialized` before `initialize`.
    pub(crate) fn session(&self) -> Result<&Arc<Session>, ServerError> {
        self.session.get().ok_or(ServerError::NotInitialized)
    }
}
