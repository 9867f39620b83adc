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
//! - `command` and `child`: the process API modelled on `tokio::process`:
//!   [`Command`], [`RemoteChild`], [`ProcessHandle`].
//! - `output`: what a process reports: [`OutputChunk`], [`ProcessEvent`],
//!   [`ExitStatus`], [`Output`].
//! - `router`: the one reader task per connection: responses by id to their
//!   calls, notifications by `processId` to their child through bounded
//!   channels, with back-pressure and lag handling.
//! - `sequence`: per process, puts events back in order and fills gaps from
//!   `process/read`, so output is lossless unless the server says otherwise.
//! - `connection`: request ids, sending, closing; owns a local server process.
//! - `transport/`: [`TransportChannels`] (the abstraction: channels of
//!   complete JSON texts), [`stdio_transport`] and [`websocket_transport`].
//! - `local`: finding and starting `exec-server serve --listen stdio://`.
//! - `options`: [`ConnectOptions`].
//! - `error`: [`ClientError`].

mod child;
mod client;
mod command;
mod connection;
mod error;
mod local;
mod methods;
mod options;
mod output;
mod router;
mod sequence;
mod transport;

pub use child::{ProcessHandle, RemoteChild};
pub use client::ExecClient;
pub use command::Command;
pub use error::ClientError;
pub use exec_protocol as protocol;
pub use exec_protocol::{ErrorKind, ExitReason, OutputStream, Signal};
pub use local::SERVER_BINARY_ENV;
pub use options::ConnectOptions;
pub use output::{ExitStatus, Output, OutputChunk, ProcessEvent};
pub use transport::TransportChannels;
pub use transport::stdio::stdio_transport;
pub use transport::websocket::websocket_transport;
