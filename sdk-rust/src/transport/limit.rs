//! [`IncomingLimit`]: the cap on one message from the server (a stdio line,
//! a WebSocket message), shared by the transport's reader, which enforces it,
//! and the router, which fails the waiting calls with
//! [`ClientError::IncomingMessageTooLarge`](crate::ClientError::IncomingMessageTooLarge).
//!
//! The server runs where the client trusts it less (inside a sandbox), so a
//! message is never buffered past the cap: the reader stops at it, records
//! the breach here and ends the connection.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The cap until `initialize` reports the server's limit, in bytes: 4 times
/// the server's default `maxMessageBytes` of 64 MiB.
pub(crate) const DEFAULT_MAX_INCOMING_MESSAGE_BYTES: usize = 4 * SERVER_DEFAULT_MESSAGE_BYTES;

/// The server's default `limits.maxMessageBytes`, in bytes.
const SERVER_DEFAULT_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// How many times the server's `limits.maxMessageBytes` a message from it
/// may be: its responses carry base64 (4/3 of the bytes) and JSON around it.
const SERVER_LIMIT_FACTOR: usize = 4;

/// The cap after `initialize` never drops below this, in bytes: a server
/// with a small limit for what it accepts still sends `fs/readFile` pages of
/// 16 MiB (about 22 MiB of JSON).
const MIN_MAX_INCOMING_MESSAGE_BYTES: usize = SERVER_DEFAULT_MESSAGE_BYTES;

/// The cap on one incoming message and, once it was broken, by what.
#[derive(Debug)]
pub(crate) struct IncomingLimit {
    /// The cap now, in bytes: [`ConnectOptions::max_incoming_message_bytes`](crate::ConnectOptions::max_incoming_message_bytes),
    /// lowered after `initialize` by [`IncomingLimit::adopt_server_limit`].
    bytes: AtomicUsize,
    /// The first breach: the bytes the reader had seen of the message (at
    /// least that many) and the cap it broke. Set before the reader drops its
    /// channel, so the router finds it when the channel reports the end.
    exceeded: OnceLock<(usize, usize)>,
}

impl IncomingLimit {
    /// A cap of `bytes` bytes (at least 1).
    pub(crate) fn new(bytes: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(bytes.max(1)),
            exceeded: OnceLock::new(),
        }
    }

    /// The cap now, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Lowers the cap to 4 times the server's `limits.maxMessageBytes`
    /// (`server_bytes`), but not below 64 MiB, and never raises it. A server
    /// that reports 0 reported nothing usable, so the cap stays.
    pub(crate) fn adopt_server_limit(&self, server_bytes: u64) {
        if server_bytes == 0 {
            return;
        }
        let scaled = usize::try_from(server_bytes)
            .unwrap_or(usize::MAX)
            .saturating_mul(SERVER_LIMIT_FACTOR)
            .max(MIN_MAX_INCOMING_MESSAGE_BYTES);
        self.bytes.fetch_min(scaled, Ordering::Relaxed);
    }

    /// Records that a message of at least `seen` bytes broke the cap of
    /// `limit` bytes; the first breach is the one reported.
    pub(crate) fn record_exceeded(&self, seen: usize, limit: usize) {
        let _ = self.exceeded.set((seen, limit));
    }

    /// The recorded breach, if there was one: the bytes seen of the message
    /// and the cap it broke.
    pub(crate) fn exceeded(&self) -> Option<(usize, usize)> {
        self.exceeded.get().copied()
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn the_server_limit_lowers_the_cap_within_bounds() {
        let limit = IncomingLimit::new(DEFAULT_MAX_INCOMING_MESSAGE_BYTES);
        assert_eq!(limit.bytes(), 256 * MIB);
        // Nothing reported: unchanged.
        limit.adopt_server_limit(0);
        assert_eq!(limit.bytes(), 256 * MIB);
        // A larger server limit never raises the cap.
        limit.adopt_server_limit(1024 * MIB as u64);
        assert_eq!(limit.bytes(), 256 * MIB);
        // 4 times a 32 MiB limit.
        limit.adopt_server_limit(32 * MIB as u64);
        assert_eq!(limit.bytes(), 128 * MIB);
        // A tiny limit stops at the floor.
        limit.adopt_server_limit(1024);
        assert_eq!(limit.bytes(), 64 * MIB);
        // A cap chosen below the floor stays.
        let small = IncomingLimit::new(1000);
        small.adopt_server_limit(1024);
        assert_eq!(small.bytes(), 1000);
    }

    #[test]
    fn the_first_breach_is_reported() {
        let limit = IncomingLimit::new(10);
        assert_eq!(limit.exceeded(), None);
        limit.record_exceeded(11, 10);
        limit.record_exceeded(50, 10);
        assert_eq!(limit.exceeded(), Some((11, 10)));
    }
}
