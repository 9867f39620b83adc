//! [`HarnessError`]: every way finding, starting or talking to a server
//! under test fails, with what was being done.

use std::path::PathBuf;
use std::time::Duration;

use crate::transport::Transport;

/// Why the harness could not do what it was asked. Tests usually `expect`
/// these; the benchmark reports them in its table.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// No `exec-server` binary where the lookup ended (see
    /// [`locate_server_binary`](crate::locate_server_binary)).
    #[error(
        "no exec-server binary at {}: build it first with `cargo build -p exec-server` \
         (`cargo test --workspace` and `cargo xtask test` do), or name one in EXEC_SERVER_BIN",
        path.display()
    )]
    MissingBinary {
        /// Where the binary was expected.
        path: PathBuf,
    },
    /// The path of the running executable is unknown.
    #[error("the path of the running executable: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// A child process could not be started.
    #[error("starting {}: {source}", program.display())]
    Spawn {
        /// The program that was run.
        program: PathBuf,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// A child's stderr ended before it printed the line announcing its address.
    #[error("{name} exited before printing `{prefix}URL`; its stderr was:\n{stderr}")]
    NotListening {
        /// The child, as named in its stderr echo (`exec-server`).
        name: String,
        /// The start of the line that was awaited.
        prefix: String,
        /// Everything it wrote on stderr.
        stderr: String,
    },
    /// Something awaited did not happen within its patience.
    #[error("{what} took longer than {patience:?}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long it was given.
        patience: Duration,
    },
    /// Waiting for a child to exit failed.
    #[error("waiting for {name}: {source}")]
    Wait {
        /// The child.
        name: String,
        /// The error of `wait`.
        source: std::io::Error,
    },
    /// A WebSocket connection or its upgrade failed.
    #[error("connecting to {url}: {source}")]
    Connect {
        /// The URL connected to.
        url: String,
        /// The error (an HTTP refusal carries the status).
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The connection is closed: nothing more can be sent.
    #[error("the connection is closed")]
    Closed,
    /// The transport has no such thing (a ping over stdio, `serve` arguments
    /// in-process).
    #[error("{transport} cannot carry {what}")]
    Unsupported {
        /// The transport asked.
        transport: Transport,
        /// What it cannot carry.
        what: String,
    },
    /// An `ExecClient` could not connect or initialize.
    #[error("connecting an ExecClient over {transport}: {source}")]
    Client {
        /// The transport it connected over.
        transport: Transport,
        /// The client's error.
        source: exec_client::ClientError,
    },
}
