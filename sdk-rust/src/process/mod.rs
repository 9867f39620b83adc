//! The process API, modelled on `tokio::process`: a [`Command`] is built and
//! spawned into a [`RemoteChild`], whose output arrives in order and
//! complete, and whose [`ProcessHandle`] controls the process from any task.
//!
//! # Layout
//! Imports flow one way: `command` uses `child`, `child` uses `handle` and
//! `sequence`, and every file may use `output`.
//! - `command`: [`Command`], the builder that turns into `process/start`
//!   params and spawns.
//! - `child`: [`RemoteChild`], a started process: its events in sequence
//!   order, its exit, and everything at once as an [`Output`].
//! - `handle`: [`ProcessHandle`], the clonable controls: write, close stdin,
//!   resize, signal, terminate.
//! - `sequence`: per process, puts events back in order and fills gaps from
//!   `process/read`, so output is lossless unless the server says otherwise.
//! - `output`: what a process reports: [`OutputBytes`], [`ProcessEvent`],
//!   [`RemoteExitStatus`], [`Output`].

mod child;
mod command;
mod handle;
// The router names these two directly (not through this file's re-exports),
// so its imports do not loop back through `child`, which uses the router.
pub(crate) mod output;
pub(crate) mod sequence;

use exec_protocol::TerminalSize;

use crate::error::ClientError;

pub use child::RemoteChild;
pub use command::Command;
pub use handle::ProcessHandle;
pub use output::{Output, OutputBytes, ProcessEvent, RemoteExitStatus};

/// A terminal of `rows` by `cols` character cells, for `process/start` and
/// `process/resize`.
///
/// # Errors
/// [`ClientError::InvalidInput`] when either is 0 (each must be 1 to 65535).
fn terminal_size(rows: u16, cols: u16) -> Result<TerminalSize, ClientError> {
    TerminalSize::new(rows, cols).ok_or_else(|| {
        ClientError::InvalidInput(format!(
            "a terminal of {rows} rows by {cols} columns: both must be at least 1"
        ))
    })
}
