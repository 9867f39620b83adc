//! [`ProcessEvent`]: what a process reports to whoever is attached to its
//! session, as typed values, and [`EventSink`], where they go. The protocol
//! layer (`crate::rpc`) supplies the function that turns each one into its
//! notification text; nothing here knows JSON-RPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use exec_protocol::{
    ProcessClosedNotification, ProcessExitedNotification, ProcessOutputNotification,
};

use crate::wire_message::WireMessage;

/// One event of one process, in the order of its `seq`.
#[derive(Debug, Clone, PartialEq)]
pub enum ProcessEvent {
    /// A chunk of output (`process/output`).
    Output(ProcessOutputNotification),
    /// The process exited (`process/exited`).
    Exited(ProcessExitedNotification),
    /// The output reached EOF after the exit; the last event (`process/closed`).
    Closed(ProcessClosedNotification),
}

impl ProcessEvent {
    /// The event's sequence number within its process.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Output(output) => output.seq,
            Self::Exited(exited) => exited.seq,
            Self::Closed(closed) => closed.seq,
        }
    }
}

/// Turns an event into its wire message, as a binary frame where it has one
/// when the second argument (binary output granted) is true; supplied by
/// the protocol layer, so that this module never learns the format.
pub type EncodeEvent = fn(&ProcessEvent, bool) -> WireMessage;

/// Where a table's processes send their events: each event is encoded (by
/// the protocol layer's [`EncodeEvent`]) on its process's own task, which
/// keeps encoding off the connection's writer, then queued on a bounded
/// queue, so that a full queue holds output back (back-pressure) rather
/// than dropping it.
///
/// Events are encoded for the binary output grant of the connection
/// attached when they are encoded ([`Self::set_binary_output`]); one
/// encoded for an earlier connection's grant is re-encoded by the writer of
/// the connection that sends it (see `transport::serve_connection`).
#[derive(Clone)]
pub struct EventSink {
    /// The session's event queue.
    queue: tokio::sync::mpsc::Sender<WireMessage>,
    /// The protocol layer's encoder.
    encode: EncodeEvent,
    /// Whether the attached connection was granted binary output; shared
    /// by every clone.
    binary_output: Arc<AtomicBool>,
}

impl EventSink {
    /// A sink that encodes with `encode` (as text until
    /// [`Self::set_binary_output`]) and queues on `queue`.
    pub fn new(queue: tokio::sync::mpsc::Sender<WireMessage>, encode: EncodeEvent) -> Self {
        Self {
            queue,
            encode,
            binary_output: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Encodes from now on for a connection granted binary output or not.
    pub fn set_binary_output(&self, granted: bool) {
        self.binary_output.store(granted, Ordering::Release);
    }

    /// The wire message of `event`.
    pub(crate) fn encode(&self, event: &ProcessEvent) -> WireMessage {
        (self.encode)(event, self.binary_output.load(Ordering::Acquire))
    }

    /// Queues an encoded event, waiting for room.
    ///
    /// # Errors
    /// The queue's receiving end is gone (the session ended).
    pub(crate) async fn send(
        &self,
        message: WireMessage,
    ) -> Result<(), tokio::sync::mpsc::error::SendError<WireMessage>> {
        self.queue.send(message).await
    }
}
