//! [`Transport`]: the three ways a test reaches the server.

use std::fmt;

/// How a test reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// The real binary as `exec-server serve --listen stdio://`: one JSON
    /// message per line on its stdin and stdout; one connection per process.
    Stdio,
    /// The real binary as `exec-server serve --listen ws://127.0.0.1:0`: one
    /// JSON message per WebSocket frame; any number of connections.
    WebSocket,
    /// A server connection on this process's Tokio tasks
    /// (`exec_server::in_process::transport`): whole JSON texts over channels.
    InProcess,
}

impl Transport {
    /// Every transport, in the order above.
    pub const ALL: [Transport; 3] = [Transport::Stdio, Transport::WebSocket, Transport::InProcess];
}

impl fmt::Display for Transport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            Self::Stdio => "stdio",
            Self::WebSocket => "websocket",
            Self::InProcess => "in-process",
        })
    }
}
