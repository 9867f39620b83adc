//! [`BinaryOutput`]: whether one connection can carry binary output frames
//! (its transport is WebSocket) and whether its `initialize` was granted
//! them. The writer reads the grant to put every `process/output` in the
//! form the connection gets (see `transport::serve_connection`).

use std::sync::atomic::{AtomicBool, Ordering};

/// One connection's binary output: offered by the transport, granted by `initialize`.
#[derive(Debug, Default)]
pub(crate) struct BinaryOutput {
    /// The transport carries binary messages (WebSocket, plain or TLS).
    offered: AtomicBool,
    /// `initialize` asked for binary output and the transport offers it.
    granted: AtomicBool,
}

impl BinaryOutput {
    /// The transport can carry binary frames; set before any message is read.
    pub(crate) fn offer(&self) {
        self.offered.store(true, Ordering::Release);
    }

    /// `initialize`'s decision: granted when the client `asked` and the
    /// transport offers binary frames; recorded and returned (the
    /// response's `binaryOutput`).
    pub(crate) fn grant(&self, asked: bool) -> bool {
        let granted = asked && self.offered.load(Ordering::Acquire);
        self.granted.store(granted, Ordering::Release);
        granted
    }

    /// Whether `process/output` goes out as binary frames on this connection.
    pub(crate) fn is_granted(&self) -> bool {
        self.granted.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn granted_only_when_asked_on_a_transport_that_offers_it() {
        let stdio = BinaryOutput::default();
        assert!(!stdio.grant(true));
        assert!(!stdio.is_granted());
        let websocket = BinaryOutput::default();
        websocket.offer();
        assert!(!websocket.grant(false));
        assert!(!websocket.is_granted());
        assert!(websocket.grant(true));
        assert!(websocket.is_granted());
    }
}
