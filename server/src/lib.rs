//! exec-server: runs and controls processes and files on this machine for a
//! remote client, over JSON-RPC 2.0 on stdio or WebSocket.
//!
//! # Layout
//! - `transport/`: the one connection skeleton ([`transport::serve_connection`]:
//!   a reader loop and a writer loop over a message source and sink) and its
//!   transports: `stdio` (one JSON message per line) and `ws` (one per
//!   WebSocket frame, with the upgrade's origin and token checks and the
//!   accept loop), under which `tls` (optional TLS, [`transport::ServerTls`])
//!   and `request_head` (`GET /readyz`, 404 for other plain requests)
//!   come first. The in-process mode is a third.
//! - `connection`: one client's link: hands messages to the JSON-RPC layer,
//!   bounds the requests in flight, and merges responses and process events
//!   into one ordered outgoing stream.
//! - `rpc/`: the JSON-RPC 2.0 layer, the only one that knows the wire
//!   format: parsing, the lifecycle middleware, the jsonrpsee method table,
//!   one handler per method, error objects, notification texts.
//! - `session`: what `initialize` creates and a connection attaches to: the
//!   processes (with their retained output and limits) and their event
//!   queue; detached, not ended, when its connection goes, for the session TTL.
//!   `session/registry.rs` holds them by id, for `initialize {resumeSessionId}`.
//! - `process/`: processes on pipes and PTYs, sequence-numbered retained
//!   output, typed events, and killing whole process trees.
//! - `fs/`: the `fs/*` methods, one file per operation.
//! - `http/`: `http/request`, made from this machine with a shared HTTP
//!   client; a buffered body capped by the message limit, a streamed one
//!   sent as `http/request/bodyDelta` notifications with back-pressure.
//! - `environment`: `environment/info` and `environment/status` (the shell,
//!   working directory and features Codex's client asks about).
//! - `guardian`: the process the binary starts beside itself, which kills
//!   every managed tree when the server dies, even by SIGKILL.
//! - `blocking_pool`: a bounded pool of threads of its own for blocking work
//!   that may never return, with a deadline per job and typed errors instead
//!   of panics; the fs methods run on one, process starts and `/proc` kill
//!   rounds on others (`process/threads.rs`), never on tokio's blocking
//!   pool. (PTY input and output need none: the master is non-blocking.)
//! - `shutdown`: the explicit server shutdown (tell every connection, wait,
//!   kill what remains).
//! - `error`: [`ServerError`], every way a method can fail.
//! - `config`: [`ServerConfig`], the limits every connection shares.
//! - `heap`: the C heap's settings for the server's traffic (glibc's trim
//!   threshold), which `main` applies.
//! - `sync`: the lock helper.
//! - `wire_message`: [`WireMessage`], one outgoing message: text or a
//!   binary frame.
//! - `in_process`: the in-process mode: an `exec_client::ExecClient` served
//!   in the same process, with no transport.
//!
//! The binary (`main.rs`) adds `exec_command/`, the `exec` subcommand: a
//! command-line client that runs one program like `ssh host CMD`.
//!
//! # The path of one output chunk
//! From a child's pipe to the client's consumer, each module once:
//! 1. `process/driver.rs` reads the chunk from the pipe (or PTY) into a
//!    buffer that keeps room for a binary frame's head, and the session's
//!    encoder (`rpc/notifications.rs`, which `process/events.rs`'s
//!    `EventSink` holds) makes its wire message: the `process/output` text,
//!    or, on a WebSocket connection that asked for binary output in
//!    `initialize`, one binary frame whose head is written into that room
//!    (`exec_protocol::write_process_output_head`), the chunk not copied.
//! 2. The driver logs the chunk with its seq in the retained output
//!    (`process/output.rs`, through `process/managed.rs`; a frame and its
//!    logged chunk share one buffer) and queues the message on the
//!    session's event queue once the process is announced, holding back
//!    further reads while the queue is full. `session.rs` owns that queue;
//!    the attached connection holds its receiving end.
//! 3. `connection.rs` (`Outgoing`) takes the message, after any response
//!    queued before it.
//! 4. A message encoded for an earlier connection's grant (it waited while
//!    the session was detached) is re-encoded for this one's
//!    (`rpc::fit_grant`): a [`wire_message`] either way.
//! 5. `transport/mod.rs`'s writer loop hands the message to the sink of
//!    `transport/ws.rs` or `transport/stdio.rs` (or `in_process.rs`), which
//!    writes the frame or line.
//! 6. In the Rust SDK (`exec-client`): `transport/websocket.rs` or
//!    `transport/stdio.rs` reads the text (capped by `transport/limit.rs`);
//!    `router/incoming.rs` parses it in one pass; `router/route.rs` hands it
//!    to the process's bounded channel; `process/sequence.rs` puts it in seq
//!    order (filling gaps from `process/read`); `process/child.rs` gives the
//!    bytes to the consumer.

mod blocking_pool;
mod config;
mod connection;
mod environment;
mod error;
pub mod fs;
pub mod guardian;
pub mod heap;
mod http;
pub mod in_process;
mod path_uri;
pub mod process;
mod rpc;
mod session;
pub mod shutdown;
mod sync;
pub mod transport;
mod wire_message;

pub use config::ServerConfig;
pub use error::*;
pub use process::TOKEN_ENV_VARIABLE;
pub use wire_message::WireMessage;
