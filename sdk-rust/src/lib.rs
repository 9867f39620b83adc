//! The Rust SDK for exec-server: start and control processes and files on
//! another machine (a sandbox, a container, a VM, a child process) over the
//! exec-server JSON-RPC 2.0 protocol.
//!
//! ```no_run
//! # async fn demo() -> Result<(), exec_client::ClientError> {
//! use exec_client::{ConnectOptions, ExecClient};
//!
//! let client = ExecClient::spawn_local(ConnectOptions::new("demo")).await?;
//! let output = client.command("sh").args(["-c", "echo hi"]).output().await?;
//! assert_eq!(output.stdout, b"hi\n");
//! client.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `client`: [`ExecClient`]: connecting (WebSocket, stdio, a local child
//!   server, any [`TransportChannels`]), the `initialize` handshake, raw
//!   [`ExecClient::request`] / [`ExecClient::notify`] and generic
//!   [`ExecClient::call`].
//! - `methods` (generated from the protocol's method table): one typed
//!   method per request, e.g. [`ExecClient::fs_read_file`],
//!   [`ExecClient::process_start`].
//! - `process/`: the process API modelled on `tokio::process`, imports
//!   flowing one way:
//!   - `command`: [`Command`], which spawns a
//!   - `child`: [`RemoteChild`], which controls the process through a
//!   - `handle`: [`ProcessHandle`] (write, resize, signal, terminate), and
//!     orders its events with
//!   - `sequence`: per process, puts events back in order and fills gaps
//!     from `process/read`, so output is lossless unless the server says
//!     otherwise;
//!   - `output`: what a process reports: [`OutputBytes`], [`ProcessEvent`],
//!     [`RemoteExitStatus`], [`Output`].
//! - `router/`: the session's link, pending calls and process routes, fed by
//!   one reader task per transport: responses by id to their calls,
//!   notifications by `processId` to their child through bounded channels;
//!   `dispatch` is the reader loop, `calls` the pending calls and which are
//!   sent again after a resume, `incoming` parses the server's messages (one
//!   pass for `process/output`), `route` holds the back-pressure and lag
//!   policy, `received` decides the `process/ack`s.
//! - `connection`: the client's end of a session: request ids, sending,
//!   closing; owns the supervisor and a local server process.
//! - `reconnect/`: the supervisor of a session's transports: what an ended
//!   transport means, and resuming a dropped WebSocket connection
//!   (`backoff`: when to try again, when to give up).
//! - `state`: [`ConnectionState`] and [`ClosedReason`], the connection's
//!   state as events ([`ExecClient::connection_state`]).
//! - `handshake`: the `initialize` params and checks shared by a first
//!   connection and a resume.
//! - `message`: the JSON-RPC texts the client writes.
//! - `transport/`: [`TransportChannels`] (the abstraction: channels of
//!   complete JSON texts), [`stdio_transport`], [`websocket_transport`],
//!   `tls` (verifying a `wss://` server: the system's roots, or a CA file
//!   from [`ConnectOptions::ca_file`] or [`CA_FILE_ENV`]), and `limit`, the cap on one message from the server
//!   ([`ConnectOptions::max_incoming_message_bytes`]), which both enforce
//!   without buffering past it.
//! - `pool/`: [`ExecPool`], connections to many servers by name, opened
//!   lazily and resumed through `reconnect/`, with per-endpoint
//!   [`EndpointHealth`].
//! - `local`: finding and starting `exec-server serve --listen stdio://`.
//! - `options`: [`ConnectOptions`].
//! - `error`: [`ClientError`].
//! - `sync`: `lock`, the one way this crate takes a mutex.

mod client;
mod connection;
mod error;
mod handshake;
mod http;
mod local;
mod message;
mod methods;
mod options;
mod pool;
mod process;
mod reconnect;
mod router;
mod state;
mod sync;
mod transport;

/// The byte buffer type of output chunks ([`OutputBytes::bytes`]), from the `bytes` crate.
pub use bytes::Bytes;
pub use client::ExecClient;
pub use error::ClientError;
pub use exec_protocol as protocol;
pub use exec_protocol::{ErrorKind, ExitReason, OutputStream, Signal};
pub use http::HttpBodyStream;
pub use local::SERVER_BINARY_ENV;
pub use options::ConnectOptions;
pub use pool::{
    DEFAULT_MAX_CONCURRENT_CONNECTS, EndpointFailure, EndpointHealth, EndpointState, ExecPool,
};
pub use process::{
    Command, Output, OutputBytes, ProcessEvent, ProcessHandle, RemoteChild, RemoteExitStatus,
};
pub use state::{ClosedReason, ConnectionState};
pub use transport::stdio::stdio_transport;
pub use transport::tls::CA_FILE_ENV;
pub use transport::websocket::websocket_transport;
pub use transport::{ServerChannels, ServerMessage, TransportChannels};
