//! [`ProcessEvent`]: what a process reports to whoever is attached to its
//! session, as typed values, and [`EventSink`], where they go. The protocol
//! layer (`crate::rpc`) supplies the function that turns each one into its
//! notification text; nothing here knows JSON-RPC.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use exec_protocol::{
    OutputStream, ProcessClosedNotification, ProcessExitedNotification, ProcessId,
    ProcessOutputNotification,
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

/// A chunk of output as a process's driver read it, in a buffer that keeps
/// room before the chunk for the protocol layer to write a frame's head in
/// (so that the chunk is not copied into a frame of its own).
#[derive(Debug)]
pub struct OutputRead<'a> {
    /// The process that wrote it.
    pub process_id: &'a ProcessId,
    /// The chunk's sequence number within its process.
    pub seq: u64,
    /// The stream it was read from.
    pub stream: OutputStream,
    /// `head_length` bytes of room, then the chunk.
    pub buffer: Vec<u8>,
    /// The room before the chunk, in bytes: what [`Encoder::head_length`]
    /// gave for this process.
    pub head_length: usize,
}

/// The protocol layer's encoders, which the sink holds (`crate::rpc`
/// supplies them, so that this module never learns the format).
#[derive(Debug, Clone, Copy)]
pub struct Encoder {
    /// The wire message of any event.
    pub event: EncodeEvent,
    /// The wire message of a chunk read with room for a head (the second
    /// argument: binary output granted), and the chunk itself, for the
    /// process's log, sharing the buffer when it can.
    pub output: fn(OutputRead<'_>, bool) -> (WireMessage, Bytes),
    /// The room, in bytes, a process's read buffers keep before each chunk.
    pub head_length: fn(&ProcessId) -> usize,
}

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
    /// The protocol layer's encoders.
    encoder: Encoder,
    /// Whether the attached connection was granted binary output; shared
    /// by every clone.
    binary_output: Arc<AtomicBool>,
}

impl EventSink {
    /// A sink that encodes with `encoder` (as text until
    /// [`Self::set_binary_output`]) and queues on `queue`.
    pub fn new(queue: tokio::sync::mpsc::Sender<WireMessage>, encoder: Encoder) -> Self {
        Self {
            queue,
            encoder,
            binary_output: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Encodes from now on for a connection granted binary output or not.
    pub fn set_binary_output(&self, granted: bool) {
        self.binary_output.store(granted, Ordering::Release);
    }

    /// The wire message of `event`.
    pub(crate) fn encode(&self, event: &ProcessEvent) -> WireMessage {
        (self.encoder.event)(event, self.binary_output.load(Ordering::Acquire))
    }

    /// The wire message of a chunk of output read with room for its head,
    /// and the chunk for the process's log.
    pub(crate) fn encode_output(&self, read: OutputRead<'_>) -> (WireMessage, Bytes) {
        (self.encoder.output)(read, self.binary_output.load(Ordering::Acquire))
    }

    /// The room, in bytes, `process_id`'s read buffers keep before each chunk.
    pub(crate) fn head_length(&self, process_id: &ProcessId) -> usize {
        (self.encoder.head_length)(process_id)
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
