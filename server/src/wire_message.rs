//! [`WireMessage`]: one outgoing message as its transport frames it: JSON
//! text (a stdio line, a WebSocket text frame, an in-process message), or a
//! binary WebSocket frame (a `process/output` notification on a connection
//! that was granted binary output, see `rpc/notifications.rs`).

/// One outgoing message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    /// A complete JSON-RPC message text.
    Text(String),
    /// A binary frame laid out as the schema's `x-binaryFrames` says; only
    /// ever sent on a connection that was granted binary output. Its chunk
    /// may share the buffer of the chunk the process's log keeps.
    Binary(bytes::Bytes),
}

impl From<String> for WireMessage {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}
