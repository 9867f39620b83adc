//! [`ServerConfig`]: the limits and sizes every connection of a server shares.

use crate::process::ProcessConfig;

/// Settings of a server, shared by all its connections.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Process limits and output retention, per connection.
    pub process: ProcessConfig,
    /// Largest incoming message (a stdio line or a WebSocket frame), in bytes;
    /// a larger one gets -32600 and is discarded.
    pub max_message_bytes: usize,
    /// Outgoing messages queued per connection before the server stops
    /// reading process output for it (back-pressure), in messages.
    pub outbox_capacity: usize,
    /// Requests of one connection handled at once; further requests wait to
    /// be read, so a flooding client slows only itself.
    pub max_requests_in_flight: usize,
    /// How long a session stays resumable after its connection closes or
    /// drops (`serve --session-ttl`, reported as `limits.sessionTtlMs`);
    /// zero ends it with its connection, as v1 did. Zero by default, and
    /// always over stdio, whose one connection has no successor.
    pub session_ttl: std::time::Duration,
    /// Memory all connections together may hold in partially received
    /// WebSocket messages, in bytes (`serve --max-partial-message-bytes`): a
    /// connection whose message would take more than what is left is closed
    /// with 1013 ("try again later"), the others go on.
    pub max_partial_message_bytes: usize,
    /// Connections in their WebSocket upgrade at once (`serve
    /// --max-handshakes`); further ones wait in the kernel's listen backlog
    /// until one is done or timed out.
    pub max_handshakes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            process: ProcessConfig::default(),
            max_message_bytes: 64 * 1024 * 1024,
            outbox_capacity: 256,
            max_requests_in_flight: 64,
            session_ttl: std::time::Duration::ZERO,
            max_partial_message_bytes: 256 * 1024 * 1024,
            max_handshakes: 64,
        }
    }
}
