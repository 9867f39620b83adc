//! [`MethodContext`]: what the methods of one connection share: the server's
//! settings, the `initialize`/`initialized` lifecycle, and the session that
//! `initialize` created.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::fs::FileHandles;
use crate::http::{DeltaSink, HttpStreams};
use crate::session::{EventQueue, Session};
use crate::sync::lock;

use super::BinaryOutput;

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
    /// The session `initialize` created or resumed, and the generation of
    /// this connection's attachment to it.
    session: OnceLock<(Arc<Session>, u64)>,
    /// Hands the connection's writer the event queue of the session it is
    /// attached to, once.
    attach: Mutex<Option<oneshot::Sender<EventQueue>>>,
    /// Notified when another connection resumed this one's session.
    superseded: Arc<Notify>,
    /// The files `fs/open` opened on this connection (not the session:
    /// they are closed when the connection ends, see `Connection::close`).
    file_handles: FileHandles,
    /// The connection's outbox (its responses' queue), for the
    /// notifications that belong to the connection rather than to the
    /// session: `http/request/bodyDelta`, which must follow their response.
    outbox: mpsc::Sender<String>,
    /// The connection's streamed `http/request` bodies, aborted when it ends.
    http_streams: HttpStreams,
    /// Whether the connection can carry, and was granted, binary output
    /// frames; shared with its writer.
    binary_output: Arc<BinaryOutput>,
}

impl MethodContext {
    /// A context before `initialize`; `attach` receives the event queue of
    /// the session `initialize` creates; `outbox` is the connection's queue
    /// of responses.
    pub(crate) fn new(
        config: Arc<ServerConfig>,
        attach: oneshot::Sender<EventQueue>,
        outbox: mpsc::Sender<String>,
    ) -> Self {
        Self {
            config,
            lifecycle: AtomicU8::new(NEW),
            session: OnceLock::new(),
            attach: Mutex::new(Some(attach)),
            superseded: Arc::new(Notify::new()),
            file_handles: FileHandles::default(),
            outbox,
            http_streams: HttpStreams::default(),
            binary_output: Arc::default(),
        }
    }

    /// The connection's binary output: offered by its transport, granted by `initialize`.
    pub(crate) fn binary_output(&self) -> &Arc<BinaryOutput> {
        &self.binary_output
    }

    /// The connection's streamed `http/request` bodies.
    pub(crate) fn http_streams(&self) -> &HttpStreams {
        &self.http_streams
    }

    /// Where a streamed body's deltas go: behind the responses already
    /// queued, encoded by `encode`.
    pub(crate) fn delta_sink(
        &self,
        encode: fn(&exec_protocol::HttpRequestBodyDeltaNotification) -> String,
    ) -> DeltaSink {
        DeltaSink {
            outbox: self.outbox.clone(),
            encode,
        }
    }

    /// Back from initializing to new, after an `initialize` that failed
    /// (an unknown `resumeSessionId`), so the client may send another.
    pub(crate) fn abort_initialize(&self) {
        let _ =
            self.lifecycle
                .compare_exchange(INITIALIZING, NEW, Ordering::AcqRel, Ordering::Acquire);
    }

    /// What tells this connection that another resumed its session.
    pub(crate) fn superseded(&self) -> &Arc<Notify> {
        &self.superseded
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

    /// Records that the connection is attached to `session` as its
    /// attachment `generation` (once, from `initialize`, before its response
    /// is queued: the writer, woken by that response, takes the session's
    /// event queue on its next round).
    pub(crate) fn attach(&self, session: Arc<Session>, generation: u64) {
        let events = session.event_queue();
        if self.session.set((session, generation)).is_err() {
            tracing::error!("a second session for one connection; ignored");
            return;
        }
        if let Some(attach) = lock(&self.attach).take() {
            // The connection is closing when its end is gone; the session
            // is then detached (see `Connection::close`).
            let _ = attach.send(events);
        }
    }

    /// The attached session. Errors: `notInitialized` before `initialize`.
    pub(crate) fn session(&self) -> Result<&Arc<Session>, ServerError> {
        self.session
            .get()
            .map(|(session, _)| session)
            .ok_or(ServerError::NotInitialized)
    }

    /// This connection's open file handles (`fs/open`).
    pub(crate) fn file_handles(&self) -> &FileHandles {
        &self.file_handles
    }

    /// The attached session and this connection's attachment generation.
    pub(crate) fn attachment(&self) -> Option<&(Arc<Session>, u64)> {
        self.session.get()
    }
}
