//! [`ConnectionState`] and [`ClosedReason`]: what
//! [`ExecClient::connection_state`](crate::ExecClient::connection_state)
//! reports as the connection drops, resumes and closes.

use std::fmt;

/// The state of a client's connection to its session, as a
/// `tokio::sync::watch` value: every change is one event.
///
/// A WebSocket client with reconnect enabled (the default) goes
/// `Connected` → `Reconnecting { attempt: 1 }` → ... → `Connected` each time
/// the connection drops and is resumed, and ends in `Closed`. Other clients
/// go straight from `Connected` to `Closed`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// Initialized and attached to the session: calls are sent at once.
    Connected,
    /// The connection dropped and the client is resuming the session. Calls
    /// made now wait for the resume (or fail when it gives up);
    /// `process/start` and `process/write` calls that were waiting for their
    /// answer at the drop are sent again once resumed.
    Reconnecting {
        /// The attempt under way (or waiting for its delay), from 1 after the drop.
        attempt: u32,
    },
    /// Closed for good: every call fails with
    /// [`ClientError::TransportClosed`](crate::ClientError::TransportClosed)
    /// (or the error the reason names), and every
    /// [`RemoteChild`](crate::RemoteChild) stream that had not ended reports it.
    Closed(ClosedReason),
}

/// Why a connection is closed for good.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClosedReason {
    /// [`ExecClient::close`](crate::ExecClient::close) was called, or every
    /// clone of the client and every child was dropped.
    ClientClosed,
    /// The connection ended and resuming was not possible: reconnect is
    /// disabled ([`ConnectOptions::reconnect`](crate::ConnectOptions::reconnect)),
    /// the transport is not a WebSocket, or the server keeps no session after
    /// a drop (`limits.sessionTtlMs` 0).
    ConnectionLost,
    /// Another connection resumed this session: the server closed this one
    /// with WebSocket close code 4000. The client does not reconnect, as it
    /// would take the session back from the other client.
    ResumedElsewhere,
    /// The server no longer has the session (`unknownSession` on resume):
    /// it expired or ended, and its processes were killed.
    SessionExpired,
    /// No reconnect attempt succeeded before the session's TTL (or
    /// [`ConnectOptions::reconnect_max_elapsed`](crate::ConnectOptions::reconnect_max_elapsed))
    /// ran out.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
    },
    /// The server refused the resume with another error, or resumed another
    /// session or protocol version: the server's or this client's message.
    ResumeRefused(String),
    /// The server broke the protocol (see
    /// [`ClientError::Protocol`](crate::ClientError::Protocol)).
    ProtocolViolation(String),
    /// The server sent a message over this client's limit (see
    /// [`ClientError::IncomingMessageTooLarge`](crate::ClientError::IncomingMessageTooLarge)).
    IncomingMessageTooLarge {
        /// How much of it was seen, in bytes.
        bytes: usize,
        /// The cap, in bytes.
        limit: usize,
    },
}

impl fmt::Display for ClosedReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ClientClosed => formatter.write_str("closed by the client"),
            Self::ConnectionLost => formatter.write_str("the connection was lost"),
            Self::ResumedElsewhere => formatter.write_str("another connection resumed the session"),
            Self::SessionExpired => formatter.write_str("the server no longer has the session"),
            Self::GaveUp { attempts } => write!(
                formatter,
                "the connection was lost and {attempts} reconnect attempts failed"
            ),
            Self::ResumeRefused(why) => write!(formatter, "the resume was refused: {why}"),
            Self::ProtocolViolation(why) => write!(formatter, "protocol violation: {why}"),
            Self::IncomingMessageTooLarge { bytes, limit } => write!(
                formatter,
                "the server sent a message of at least {bytes} bytes, over the limit of {limit} bytes"
            ),
        }
    }
}
