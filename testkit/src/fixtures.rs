//! Small things the scenarios share that are not the server: the `PATH`
//! its processes get, and a scratch directory.

/// `PATH` for the processes the server starts, whose environment is empty
/// unless the request sets or inherits one.
pub const CHILD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// A fresh directory on this machine (where the server runs too), removed
/// when dropped.
///
/// # Panics
/// When no temporary directory can be made.
pub fn scratch_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}
