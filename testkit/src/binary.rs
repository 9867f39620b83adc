//! Where the `exec-server` binary is. Nothing here builds it: a nested
//! `cargo build` inside a test would fight the outer cargo for the target
//! directory's lock and rebuild with other flags. `cargo test --workspace`
//! (and so `cargo xtask test`) builds it, because the `exec-server` package
//! has integration tests.

use std::path::PathBuf;

use crate::error::HarnessError;

/// The variable naming the binary cargo built for `exec-server`'s own
/// integration tests. Cargo 1.95 sets it only while compiling them (for
/// `env!`); test runners that also set it at run time (cargo-nextest, newer
/// cargo) are honoured. Without it the lookup ends in the profile directory,
/// which is where that very binary is.
pub const CARGO_BIN_EXE_ENV: &str = "CARGO_BIN_EXE_exec-server";

/// The `exec-server` binary, from the first of:
/// 1. `EXEC_SERVER_BIN` ([`exec_client::SERVER_BINARY_ENV`]) when set and not empty;
/// 2. `CARGO_BIN_EXE_exec-server` when set at run time ([`CARGO_BIN_EXE_ENV`]);
/// 3. `exec-server` in the target profile directory of the running
///    executable ([`profile_dir`]: `target/debug/deps/TEST` gives
///    `target/debug/exec-server`).
///
/// # Errors
/// [`HarnessError::MissingBinary`] when the file is not there (its message
/// says to run `cargo build -p exec-server`), [`HarnessError::CurrentExe`]
/// when the running executable's path is unknown.
pub fn locate_server_binary() -> Result<PathBuf, HarnessError> {
    let named = [exec_client::SERVER_BINARY_ENV, CARGO_BIN_EXE_ENV]
        .into_iter()
        .find_map(|name| std::env::var_os(name).filter(|value| !value.is_empty()));
    let path = match named {
        Some(path) => PathBuf::from(path),
        None => profile_dir()?.join(format!("exec-server{}", std::env::consts::EXE_SUFFIX)),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(HarnessError::MissingBinary { path })
    }
}

/// [`locate_server_binary`] for tests.
///
/// # Panics
/// When there is no binary, with the message of [`HarnessError::MissingBinary`].
pub fn server_binary() -> PathBuf {
    locate_server_binary().unwrap_or_else(|error| panic!("{error}"))
}

/// The directory cargo builds this profile into (`target/debug`): the parent
/// of the running test's `deps` directory, or the directory of a binary
/// that runs from the profile directory itself (`target/release/exec-bench`).
///
/// # Errors
/// [`HarnessError::CurrentExe`] when the running executable's path is unknown.
pub fn profile_dir() -> Result<PathBuf, HarnessError> {
    let executable = std::env::current_exe().map_err(HarnessError::CurrentExe)?;
    let Some(directory) = executable.parent() else {
        return Err(HarnessError::CurrentExe(std::io::Error::other(format!(
            "{} has no directory",
            executable.display()
        ))));
    };
    let profile = match directory.file_name() {
        // Tests and examples run from `deps` and `examples` below the profile.
        Some(name) if name == "deps" || name == "examples" => directory.parent(),
        _ => None,
    };
    Ok(profile.unwrap_or(directory).to_path_buf())
}
