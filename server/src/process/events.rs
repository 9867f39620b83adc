//! [`ProcessEvent`]: what a process reports to whoever is attached to its
//! session, as typed values. The protocol layer (`crate::rpc`) turns each one
//! into its notification text; nothing here knows JSON-RPC.

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

/// Where a table's processes send their events: bounded, so that a full
/// queue holds output back (back-pressure) rather than dropping it.
pub type EventSink = tokio::sync::mpsc::Sender<ProcessEvent>;
