//! What every `fs/*` operation does with a path: check the one the client
//! sent, name it in an OS error, and open it for reading safely.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use exec_protocol::AbsolutePath;

use crate::error::{ServerError, require_absolute};

/// Checks a path from the client and makes it owned, so it can move into a
/// blocking task.
pub(super) fn absolute(path: &AbsolutePath) -> Result<PathBuf, ServerError> {
    let checked = require_absolute(path)?;
    // The OS cannot take a path with a NUL byte; catching it here gives the
    // client a clear invalid-params error instead of a generic `io` one.
    if path.contains('\0') {
        return Err(ServerError::invalid_path(
            path.as_str(),
            "contains a NUL byte",
        ));
    }
    Ok(checked.to_path_buf())
}

/// Wraps an OS error about `path`, so the client sees which path failed.
pub(super) fn fs_error(path: &Path, error: io::Error) -> ServerError {
    ServerError::fs(path.display().to_string(), error)
}

/// Opens a file for reading without blocking on a FIFO that has no writer:
/// `O_NONBLOCK` makes such an open return at once (a regular file ignores the
/// flag), so a client naming a FIFO cannot pin a blocking thread forever.
pub(super) fn open_for_reading(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::{ErrorSummary, invalid_path_summary, outcome};

    #[test]
    fn absolute_accepts_only_absolute_paths_without_nul() {
        let cases: [(&str, Result<PathBuf, ErrorSummary>); 6] = [
            ("/tmp/file", Ok(PathBuf::from("/tmp/file"))),
            ("/", Ok(PathBuf::from("/"))),
            ("relative/path", Err(invalid_path_summary("relative/path"))),
            ("./x", Err(invalid_path_summary("./x"))),
            ("", Err(invalid_path_summary(""))),
            ("/tmp/a\0b", Err(invalid_path_summary("/tmp/a\0b"))),
        ];
        for (path, expected) in cases {
            assert_eq!(
                outcome(absolute(&AbsolutePath(path.to_owned()))),
                expected,
                "{path:?}"
            );
        }
    }
}
