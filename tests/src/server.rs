//! The server under test: the settings a case needs, and the launcher
//! (`exec_testkit::ServerLauncher`) that starts the `exec-server` binary, or
//! the one `EXEC_CONFORMANCE_SERVER` names, with them.

use std::path::PathBuf;

use exec_testkit::ServerLauncher;
use serde::Deserialize;

/// Environment variable naming another server binary to test; it must take
/// `exec-server`'s `serve` arguments.
pub const SERVER_ENV: &str = "EXEC_CONFORMANCE_SERVER";

/// Server settings a case needs, named after the `initialize` result's
/// `limits` so that any implementation can map them to its own options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSettings {
    /// `limits.maxProcessesPerConnection` (`--max-processes`).
    pub max_processes_per_connection: Option<u64>,
    /// `limits.retainedOutputBytesPerProcess` (`--retained-output-bytes`).
    pub retained_output_bytes_per_process: Option<u64>,
}

impl ServerSettings {
    /// A launcher of the server under test with these settings: the binary
    /// `EXEC_CONFORMANCE_SERVER` names when set, else the harness's
    /// (`exec_testkit::locate_server_binary`, which never builds it).
    pub fn launcher(&self) -> ServerLauncher {
        let mut launcher = ServerLauncher::new();
        if let Some(binary) = std::env::var_os(SERVER_ENV).filter(|path| !path.is_empty()) {
            launcher = launcher.binary(PathBuf::from(binary));
        }
        if let Some(count) = self.max_processes_per_connection {
            launcher = launcher.max_processes(saturating_usize(count));
        }
        if let Some(bytes) = self.retained_output_bytes_per_process {
            launcher = launcher.retained_output_bytes(saturating_usize(bytes));
        }
        launcher
    }
}

/// `value` as a `usize`, or `usize::MAX` when it does not fit.
fn saturating_usize(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}
