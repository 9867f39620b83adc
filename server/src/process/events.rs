//! [`ProcessEvent`]: what a process reports to whoever is attached to its
//! session, as typed values, and [`EventSink`], where they go. The protocol
//! layer (`crate::rpc`) supplies the function that turns each one into its
//! notification text; nothing here knows JSON-RPC.

use exec_protocol::{
    ProcessClosedNotification, ProcessExitedNotification, ProcessOutputNotification,
};

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

/// Turns an event into its wire text; supplied by the protocol layer, so
/// that this module never learns the format.
pub type EncodeEvent = fn(&ProcessEvent) -> String;

/// Where a table's processes send their events: each event is encoded (by
/// the protocol layer's [`EncodeEvent`]) on its process's own task, which
/// keeps encoding off the connection's writer, then queued on a bounded
/// queue, so that a full queue holds output back (back-pressure) rather
/// than dropping it.
#[derive(Clone)]
pub struct EventSink {
    /// The session's event queue.
    queue: tokio::sync::mpsc::Sender<String>,
    /// The protocol layer's encoder.
    encode: EncodeEvent,
}

impl EventSink {
    /// A sink that encodes with `encode` and queues on `queue`.
    pub fn new(queue: tokio::sync::mpsc::Sender<String>, encode: EncodeEvent) -> Self {
        Self { queue, encode }
    }

    /// The wire text of `event`.
    pub(crate) fn encode(&self, event: &ProcessEvent) -> String {
        (self.encode)(event)
    }

    /// Queues an encoded event, waiting for room.
    ///
    /// # Errors
    /// The queue's receiving end is gone (the session ended).
    pub(crate) async fn send(
        &self,
        text: String,
    ) -> Result<(), tokio::sync::mpsc::error::SendError<String>> {
        self.queue.send(text).await
    }
}
