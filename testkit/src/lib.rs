//! The one Rust harness that starts the real exec-server for the workspace's
//! tests (`server/tests`, `sdk-rust/tests`, the conformance suite in
//! `tests/`) and for the benchmark (`bench/`).
//!
//! The server is reached over one of three [`Transport`]s: the real
//! `exec-server serve --listen stdio://` child, the real binary on
//! `ws://127.0.0.1:0`, or a server connection in this process
//! (`exec_server::in_process::transport`). Over each, a test gets either a
//! [`RawConnection`] (JSON texts as they are on the wire, for wire-level
//! tests) and the [`WireClient`] built on it, or an `exec_client::ExecClient`
//! ([`connect_client`]). Scenario tests run over several transports with
//! [`transport_tests!`].
//!
//! No test builds anything: the binary comes from `EXEC_SERVER_BIN`, from
//! `CARGO_BIN_EXE_exec-server` when the test runner sets it, or from the
//! target profile directory of the running test ([`locate_server_binary`]),
//! and a missing one fails with a message naming `cargo build -p exec-server`.
//!
//! # Layout
//! - `binary`: where the `exec-server` binary is ([`server_binary`]).
//! - `certificates`: [`TestCertificates`], a CA and a server certificate
//!   made for each TLS test.
//! - `error`: [`HarnessError`], every way starting or talking to a server fails.
//! - `transport`: [`Transport`], the three ways to reach a server.
//! - `stderr`: [`StderrLog`], a child's stderr kept and echoed line by line.
//! - `server_process`: [`ServerProcess`], a started child: SIGTERM on drop,
//!   its listening line, waiting with a timeout.
//! - `launcher`: [`ServerLauncher`], how to start a server (binary, limits,
//!   arguments, token), and [`StdioServer`].
//! - `ws_server`: [`WsServer`], a server on a WebSocket port, optionally
//!   behind the validating `conformance-proxy`.
//! - `raw`: [`RawConnection`], raw texts and frames over any transport.
//! - `wire_client`: [`WireClient`], a JSON-RPC test client on a raw connection.
//! - `client`: [`connect_client`], an `ExecClient` over any transport.
//! - `cut_proxy`: [`CutProxy`], a TCP proxy that resets connections after
//!   so many bytes or on demand, for reconnect tests.
//! - `http_server`: [`HttpTestServer`], a small local HTTP/1.1 server for
//!   the tests of `http/request`.
//! - `procfs`: whether a pid is alive, and waiting until it is gone.
//! - `fixtures`: the `PATH` of the server's processes, a scratch directory.
//! - `scenarios`: [`transport_tests!`] and [`block_on`].

mod binary;
mod certificates;
mod client;
mod cut_proxy;
mod error;
mod fixtures;
mod http_server;
mod launcher;
mod procfs;
mod raw;
mod scenarios;
mod server_process;
mod stderr;
mod transport;
mod wire_client;
mod ws_server;

pub use binary::{CARGO_BIN_EXE_ENV, locate_server_binary, profile_dir, server_binary};
pub use certificates::TestCertificates;
pub use client::{RunningServer, connect_client, pending_long_poll};
pub use cut_proxy::CutProxy;
pub use error::HarnessError;
pub use fixtures::{CHILD_PATH, scratch_dir};
pub use http_server::{HttpTestServer, pattern_byte};
pub use launcher::{ServerLauncher, StdioServer};
pub use procfs::{process_alive, wait_gone};
pub use raw::{Outgoing, RawConnection, RawSender, Received};
pub use scenarios::block_on;
pub use server_process::{PATIENCE, ServerProcess};
pub use stderr::StderrLog;
pub use transport::Transport;
pub use wire_client::{WireClient, decode, output_of};
pub use ws_server::{CONFORMANCE_PROXY_ENV, WsServer};
