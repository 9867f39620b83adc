//! exec-server: runs and controls processes and files on this machine for a
//! remote client, over JSON-RPC 2.0 on stdio or WebSocket.
//!
//! # Layout
//! - `transport/`: `stdio` (one JSON message per line) and `ws` (one per
//!   WebSocket frame, with the upgrade's origin and token checks). Each
//!   connection has one reader loop and one writer task.
//! - `connection`: one client's session: the JSON-RPC envelope, the
//!   `initialize`/`initialized` lifecycle, concurrency limits, and the
//!   ordering rule that output never overtakes a `process/start` response.
//! - `dispatch`: the jsonrpsee `RpcModule` built from the generated method
//!   table, one handler per method.
//! - `process/`: processes on pipes and PTYs, sequence-numbered retained
//!   output, and killing whole process trees.
//! - `handlers/fs`: the `fs/*` methods.
//! - `error`: [`ServerError`] and its mapping to JSON-RPC error objects.
//! - `config`: [`ServerConfig`], the limits every connection shares.
//! - `in_process`: the in-process mode: an `exec_client::ExecClient` served
//!   by a [`Connection`] in the same process, with no transport.
//!
//! The binary (`main.rs`) adds `exec_command/`, the `exec` subcommand: a
//! command-line client that runs one program like `ssh host CMD`.

mod config;
mod connection;
mod dispatch;
mod error;
pub mod handlers;
pub mod in_process;
pub mod process;
mod sync;
pub mod transport;

pub use config::ServerConfig;
pub use connection::Connection;
pub use error::*;
