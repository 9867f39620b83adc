//! [`Session`]: what `initialize` creates and a connection attaches to: an
//! id, the processes with their retained output and limits, and the queue of
//! their events.
//!
//! A session owns its processes; a connection only attaches to a session and
//! forwards its events. Today a session ends when its connection closes
//! (its processes are killed, as they always were); the split lets a later
//! connection take a session over instead.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::ServerConfig;
use crate::process::{EncodeEvent, EventSink, ProcessTable};
use crate::sync::lock;

/// One client's session: its processes and their events.
pub(crate) struct Session {
    /// Reported by `initialize` as `sessionId`, and logged.
    id: String,
    /// The processes, their retained output and their limits.
    processes: ProcessTable,
    /// The receiving end of the processes' event queue (their encoded
    /// notifications), held here while no connection is attached, so events
    /// wait (bounded) instead of being lost.
    events: Mutex<Option<mpsc::Receiver<String>>>,
}

impl Session {
    /// A new session with an empty process table whose events, encoded by
    /// `encode`, queue up to `config.outbox_capacity` deep before output is
    /// held back.
    pub(crate) fn new(config: &ServerConfig, encode: EncodeEvent) -> Arc<Self> {
        let (queue, events) = mpsc::channel(config.outbox_capacity.max(1));
        Arc::new(Self {
            id: new_session_id(),
            processes: ProcessTable::new(config.process.clone(), EventSink::new(queue, encode)),
            events: Mutex::new(Some(events)),
        })
    }

    /// The session id.
    pub(crate) fn id(&self) -> &str {
        &self.id
    }

    /// The session's processes.
    pub(crate) fn processes(&self) -> &ProcessTable {
        &self.processes
    }

    /// Attaches a connection: hands over the event queue's receiving end,
    /// which only one connection at a time can hold (`None` while another has it).
    pub(crate) fn take_events(&self) -> Option<mpsc::Receiver<String>> {
        lock(&self.events).take()
    }

    /// Ends the session: kills every process tree it started and waits until
    /// the children are reaped. Their further events are dropped.
    pub(crate) async fn end(&self) {
        self.processes.shutdown().await;
    }
}

/// A session id unique enough for logs: time, process id and a counter.
fn new_session_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}-{:x}-{count}", nanos, std::process::id())
}
