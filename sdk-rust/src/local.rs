//! Starting `exec-server serve --listen stdio://` as a child process for
//! [`ExecClient::spawn_local`](crate::ExecClient::spawn_local): where the
//! binary is looked for, and how it is started.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use crate::error::ClientError;
use crate::transport::limit::IncomingLimit;
use crate::transport::link::Link;
use crate::transport::stdio::limited_stdio_transport;

/// The environment variable naming the `exec-server` binary to run.
pub const SERVER_BINARY_ENV: &str = "EXEC_SERVER_BIN";

/// The binary to run, in order of preference: `explicit`, the value of
/// [`SERVER_BINARY_ENV`] (`from_env`), an `exec-server` in the directory of
/// `current_exe` or in its parent (so tests in `target/debug/deps` and
/// examples in `target/debug/examples` find `target/debug/exec-server`),
/// else the bare name, which the OS looks up on `PATH`.
pub(crate) fn locate_server_binary(
    explicit: Option<&Path>,
    from_env: Option<OsString>,
    current_exe: Option<&Path>,
) -> PathBuf {
    if let Some(explicit) = explicit {
        return explicit.to_path_buf();
    }
    if let Some(from_env) = from_env.filter(|value| !value.is_empty()) {
        return PathBuf::from(from_env);
    }
    let name = format!("exec-server{}", std::env::consts::EXE_SUFFIX);
    let directory = current_exe.and_then(Path::parent);
    let parent = directory.and_then(Path::parent);
    directory
        .into_iter()
        .chain(parent)
        .map(|directory| directory.join(&name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Starts `program serve --listen stdio://` with piped stdin and stdout
/// (its stderr, where it logs, is inherited) and returns it with a stdio
/// transport over the pipes whose reader enforces `limit`.
///
/// # Errors
/// [`ClientError::Spawn`] when the program cannot be started.
pub(crate) fn start_server(
    program: &Path,
    limit: Arc<IncomingLimit>,
) -> Result<(tokio::process::Child, Link), ClientError> {
    let spawn_error = |source| ClientError::Spawn {
        program: program.to_path_buf(),
        source,
    };
    let mut child = tokio::process::Command::new(program)
        .args(["serve", "--listen", "stdio://"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(spawn_error)?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        // Both were requested as pipes just above; this only keeps the code total.
        let _ = child.start_kill();
        return Err(spawn_error(std::io::Error::other(
            "the child's stdio pipes are missing",
        )));
    };
    Ok((child, limited_stdio_transport(stdout, stdin, limit)))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn the_binary_is_found_in_order_of_preference() {
        let target = tempfile::tempdir().expect("tempdir");
        let debug = target.path().join("debug");
        let deps = debug.join("deps");
        std::fs::create_dir_all(&deps).expect("mkdir");
        let test_exe = deps.join("some-test");
        let name = format!("exec-server{}", std::env::consts::EXE_SUFFIX);

        // Nothing next to the executable: the bare name, for PATH.
        assert_eq!(
            locate_server_binary(None, None, Some(&test_exe)),
            PathBuf::from(&name)
        );
        // In the parent directory (target/debug next to target/debug/deps).
        std::fs::write(debug.join(&name), b"").expect("write");
        assert_eq!(
            locate_server_binary(None, None, Some(&test_exe)),
            debug.join(&name)
        );
        // Right next to the executable wins over the parent.
        std::fs::write(deps.join(&name), b"").expect("write");
        assert_eq!(
            locate_server_binary(None, None, Some(&test_exe)),
            deps.join(&name)
        );
        // The environment variable wins over both, unless it is empty.
        assert_eq!(
            locate_server_binary(None, Some("/from/env".into()), Some(&test_exe)),
            PathBuf::from("/from/env")
        );
        assert_eq!(
            locate_server_binary(None, Some("".into()), Some(&test_exe)),
            deps.join(&name)
        );
        // The explicit option wins over everything.
        assert_eq!(
            locate_server_binary(
                Some(Path::new("/explicit")),
                Some("/from/env".into()),
                Some(&test_exe)
            ),
            PathBuf::from("/explicit")
        );
    }
}
