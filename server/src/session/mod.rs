//! [`Session`]: what `initialize` creates and a connection attaches to: an
//! id, the processes with their retained output and limits, and the queue of
//! their events.
//!
//! A session owns its processes; a connection only attaches to it and
//! forwards its events. When the connection closes or drops, the session is
//! *detached*: its processes keep running (their output kept, see
//! `process::resume`) for the server's session TTL, during which a new
//! connection may resume it (`initialize {resumeSessionId}`); when the TTL
//! runs out, or at once when it is zero, the session ends and its processes
//! are killed. A session is attached to at most one connection: resuming it
//! from another closes the older one (as Codex's exec-server does).
//!
//! `registry` holds the server's sessions by id, for resuming.

mod registry;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};

use crate::config::ServerConfig;
use crate::process::{Encoder, EventSink, ProcessTable};
use crate::sync::lock;
use crate::wire_message::WireMessage;

pub(crate) use self::registry::resume;

/// The receiving end of a session's event queue: held by the attached
/// connection's writer while it is attached, waiting here otherwise, so
/// events wait (bounded) instead of being lost.
pub(crate) type EventQueue = Arc<tokio::sync::Mutex<mpsc::Receiver<WireMessage>>>;

/// One client's session: its processes and their events.
pub(crate) struct Session {
    /// Reported by `initialize` as `sessionId`; what `resumeSessionId` names.
    id: String,
    /// The processes, their retained output and their limits.
    processes: ProcessTable,
    /// The processes' encoded notifications.
    events: EventQueue,
    /// Where the processes' events go: told the binary output grant of
    /// each connection that attaches.
    sink: EventSink,
    /// How long the session stays resumable once detached; zero ends it
    /// with its connection.
    ttl: Duration,
    /// Which connection is attached.
    attachment: Mutex<Attachment>,
}

/// Which connection a session is attached to.
struct Attachment {
    /// Counts attachments; a connection knows its own, so that one that was
    /// superseded cannot detach its successor.
    generation: u64,
    /// Tells the attached connection it was superseded; `None` while detached.
    attached: Option<Arc<Notify>>,
    /// The session ended: it cannot be attached again.
    ended: bool,
}

/// What became of a session when its connection went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Departure {
    /// It ended with the connection (zero TTL): its processes were killed
    /// and the connection should send the events still queued.
    Ended,
    /// It is detached and resumable: its events stay queued for the next connection.
    Detached,
    /// Another connection had already taken it over.
    Superseded,
}

impl Session {
    /// A new session with an empty process table whose events, encoded by
    /// `encoder`, queue up to `config.outbox_capacity` deep before output is
    /// held back. Registered, so that it can be resumed.
    pub(crate) fn new(config: &ServerConfig, encoder: Encoder) -> Arc<Self> {
        let (queue, events) = mpsc::channel(config.outbox_capacity.max(1));
        let sink = EventSink::new(queue, encoder);
        let session = Arc::new(Self {
            id: new_session_id(),
            processes: ProcessTable::new(config.process.clone(), sink.clone()),
            events: Arc::new(tokio::sync::Mutex::new(events)),
            sink,
            ttl: config.session_ttl,
            attachment: Mutex::new(Attachment {
                generation: 0,
                attached: None,
                ended: false,
            }),
        });
        registry::register(&session);
        session
    }

    /// The session id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The session's processes.
    pub(crate) fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    /// The event queue, for the attached connection's writer to lock.
    pub(crate) fn event_queue(&self) -> EventQueue {
        self.events.clone()
    }

    /// Attaches a connection, which `superseded` tells when another takes
    /// the session over, whose client acknowledges output or not, and which
    /// was granted binary output or not (events are encoded for it from
    /// now on). Returns the attachment's generation, or `None` when the
    /// session already ended. A connection still attached is told it was
    /// superseded.
    pub(crate) fn attach(
        &self,
        superseded: Arc<Notify>,
        acknowledged: bool,
        binary_output: bool,
    ) -> Option<u64> {
        let mut attachment = lock(&self.attachment);
        if attachment.ended {
            return None;
        }
        self.sink.set_binary_output(binary_output);
        if let Some(older) = attachment.attached.replace(superseded) {
            older.notify_one();
        }
        attachment.generation += 1;
        self.processes.set_delivery(true, acknowledged);
        if attachment.generation > 1 {
            self.processes.resumed();
        }
        Some(attachment.generation)
    }

    /// The connection of attachment `generation` went away: the session is
    /// detached (and ends after its TTL unless resumed), or ends at once
    /// with a zero TTL, or stays with the connection that superseded it.
    pub(crate) async fn detach(self: &Arc<Self>, generation: u64) -> Departure {
        {
            let mut attachment = lock(&self.attachment);
            if attachment.generation != generation || attachment.ended {
                return Departure::Superseded;
            }
            attachment.attached = None;
            if self.ttl.is_zero() {
                attachment.ended = true;
            } else {
                self.processes.set_delivery(false, false);
            }
        }
        if self.ttl.is_zero() {
            registry::remove(&self.id);
            self.processes.shutdown().await;
            return Departure::Ended;
        }
        tracing::debug!(session = %self.id, ttl = ?self.ttl, "session detached");
        let session = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(session.ttl).await;
            session.expire(generation).await;
        });
        Departure::Detached
    }

    /// The TTL of the detachment after attachment `generation` ran out: ends
    /// the session unless a connection resumed it meanwhile.
    async fn expire(&self, generation: u64) {
        {
            let mut attachment = lock(&self.attachment);
            if attachment.generation != generation
                || attachment.attached.is_some()
                || attachment.ended
            {
                return;
            }
            attachment.ended = true;
        }
        tracing::info!(session = %self.id, "a detached session expired; killing its processes");
        registry::remove(&self.id);
        self.processes.shutdown().await;
    }
}

/// A session id: 128 bits from the operating system's random source, as 32
/// lowercase hex digits. It is what resuming a session takes, so it must not
/// be guessable.
fn new_session_id() -> String {
    let mut bytes = [0_u8; 16];
    if let Err(error) = getrandom::fill(&mut bytes) {
        // No random source at all is not a state this server can run in
        // safely; such ids are still unique (time and a counter), only guessable.
        tracing::error!(%error, "no random source for session ids");
        bytes = fallback_id_bytes();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Unique (not secret) id bytes: time, process id and a counter.
fn fallback_id_bytes() -> [u8; 16] {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()) << 32;
    let mut bytes = [0_u8; 16];
    bytes[..8].copy_from_slice(&nanos.to_le_bytes());
    bytes[8..].copy_from_slice(&count.to_le_bytes());
    bytes
}
