//! What every `fs/*` operation does with a path: read the one the client
//! sent (an absolute path or a `file://` URI, through `crate::path_uri`),
//! name it in an OS error in the form the client used, and open it as a
//! regular file without ever blocking on a FIFO or opening a device.
//!
//! # Opening a regular file
//! Three steps, each closing a hole the one before leaves:
//! 1. `stat` the path and refuse a FIFO, socket or device before opening it,
//!    since opening one can block or have effects of its own (a tape
//!    rewinds, a watchdog arms).
//! 2. Open with `O_NONBLOCK` (and `O_NOCTTY`), so that a FIFO swapped in
//!    after the `stat` cannot block the open: without a peer, a FIFO opened
//!    for writing fails with `ENXIO`, one opened for reading opens at once.
//!    A regular file ignores the flag, except that a file leased by another
//!    process answers `EWOULDBLOCK` instead of blocking for the lease break.
//! 3. `fstat` the opened file and refuse anything but a regular file, before
//!    any byte is read or written (so a FIFO's queued bytes stay queued),
//!    then clear `O_NONBLOCK`, so reads and writes of the regular file are
//!    the plain blocking ones.

use std::fs::{self, File, FileType, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use exec_protocol::AbsolutePath;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::error::ServerError;
use crate::path_uri::{self, ClientPath, PathForm};

/// Reads a path from the client (an absolute path or a `file://` URI, see
/// `crate::path_uri`) into an owned local path, which can move into a
/// blocking task, and the form it came in, for [`named_in`].
///
/// Errors: `invalidPath` for a relative path, a URI that is not a local
/// `file:` URI, a NUL byte (which no system call can take) or a path longer
/// than the system allows.
pub(super) fn client_path(path: &AbsolutePath) -> Result<ClientPath, ServerError> {
    path_uri::parse(path.as_str())
}

/// [`client_path`] without the form, for an operation whose errors need not
/// follow it. Errors: as [`client_path`].
pub(super) fn absolute(path: &AbsolutePath) -> Result<PathBuf, ServerError> {
    client_path(path).map(|client_path| client_path.path)
}

/// Wraps an OS error about `path`, so the client sees which path failed.
pub(super) fn fs_error(path: &Path, error: io::Error) -> ServerError {
    ServerError::fs(path.display().to_string(), error)
}

/// `error` with the local path it names (an OS error, or a path found
/// unusable on disk) written in `form`, so a client that sent `file://` URIs
/// gets one back in `data.path`. A path the client's text was refused for
/// is already as the client wrote it and is left alone.
pub(super) fn named_in(form: PathForm, error: ServerError) -> ServerError {
    let render = |path: String| form.render(Path::new(&path));
    match (form, error) {
        (PathForm::Native, error) => error,
        (PathForm::FileUri, ServerError::Fs { path, source }) => ServerError::Fs {
            path: render(path),
            source,
        },
        (PathForm::FileUri, ServerError::InvalidPath { path, reason }) if path.starts_with('/') => {
            ServerError::InvalidPath {
                path: render(path),
                reason,
            }
        }
        (PathForm::FileUri, error) => error,
    }
}

/// The flags every open of a file to read or write adds: no blocking on a
/// FIFO without a peer, and no controlling terminal from a TTY.
pub(super) const NONBLOCKING_OPEN: i32 = nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY;

/// Step 1 of opening a regular file (see the module documentation): refuses
/// a path whose target is a FIFO, socket or device without opening it. A
/// path that cannot be `stat`ed is left to the open, which reports why.
pub(super) fn refuse_special_file(path: &Path) -> Result<(), ServerError> {
    match fs::metadata(path) {
        Ok(metadata) => match special_file_kind(metadata.file_type()) {
            Some(kind) => Err(not_a_regular_file(path, kind)),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// The error for an open (step 2) that failed: `ENXIO`, which is what a
/// FIFO without a reader and a socket answer, is told as "not a regular
/// file" when the path now is one.
pub(super) fn open_error(path: &Path, error: io::Error) -> ServerError {
    if error.raw_os_error() == Some(Errno::ENXIO as i32)
        && let Ok(metadata) = fs::metadata(path)
        && let Some(kind) = special_file_kind(metadata.file_type())
    {
        return not_a_regular_file(path, kind);
    }
    fs_error(path, error)
}

/// Step 3 of opening a regular file: keeps `file` only when it is a regular
/// file (a directory is `isADirectory`, anything else `invalidPath`), and
/// makes its reads and writes blocking again.
pub(super) fn regular_file(path: &Path, file: File) -> Result<(File, fs::Metadata), ServerError> {
    let fail = |error: io::Error| fs_error(path, error);
    let metadata = file.metadata().map_err(fail)?;
    let file_type = metadata.file_type();
    // Linux lets a directory be opened for reading and fails only at read(2);
    // checking the open file says so plainly and without a race.
    if file_type.is_dir() {
        return Err(fail(Errno::EISDIR.into()));
    }
    if !file_type.is_file() {
        let kind = special_file_kind(file_type).unwrap_or("special file");
        return Err(not_a_regular_file(path, kind));
    }
    let flags = fcntl(&file, FcntlArg::F_GETFL).map_err(|errno| fail(errno.into()))?;
    let blocking = OFlag::from_bits_retain(flags) & !OFlag::O_NONBLOCK;
    fcntl(&file, FcntlArg::F_SETFL(blocking)).map_err(|errno| fail(errno.into()))?;
    Ok((file, metadata))
}

/// Opens a regular file for reading, in the three steps of the module
/// documentation; returns it with its metadata.
pub(super) fn open_for_reading(path: &Path) -> Result<(File, fs::Metadata), ServerError> {
    refuse_special_file(path)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(NONBLOCKING_OPEN)
        .open(path)
        .map_err(|error| open_error(path, error))?;
    regular_file(path, file)
}

/// What a FIFO, socket or device is called in an error; `None` for a
/// regular file, a directory or a symlink.
fn special_file_kind(file_type: FileType) -> Option<&'static str> {
    if file_type.is_fifo() {
        Some("FIFO")
    } else if file_type.is_socket() {
        Some("socket")
    } else if file_type.is_char_device() {
        Some("character device")
    } else if file_type.is_block_device() {
        Some("block device")
    } else {
        None
    }
}

/// The `invalidPath` error for a FIFO, socket or device.
fn not_a_regular_file(path: &Path, kind: &str) -> ServerError {
    ServerError::invalid_path(
        path.display().to_string(),
        format!("not a regular file but a {kind}: fs calls read and write regular files only"),
    )
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use exec_protocol::ErrorKind;

    use crate::fs::test_support::{
        ErrorSummary, TestResult, fs_summary, invalid_path_summary, outcome,
    };

    #[test]
    fn absolute_accepts_only_absolute_paths_and_file_uris_without_nul() {
        let cases: [(&str, Result<PathBuf, ErrorSummary>); 10] = [
            ("/tmp/file", Ok(PathBuf::from("/tmp/file"))),
            ("/", Ok(PathBuf::from("/"))),
            ("file:///tmp/a%20b", Ok(PathBuf::from("/tmp/a b"))),
            ("file://localhost/tmp", Ok(PathBuf::from("/tmp"))),
            (
                "file://server/x",
                Err(invalid_path_summary("file://server/x")),
            ),
            (
                "file:///tmp/a%00b",
                Err(invalid_path_summary("file:///tmp/a%00b")),
            ),
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

    #[test]
    fn errors_name_paths_in_the_form_of_the_request() {
        let missing = || fs_error(Path::new("/tmp/a b"), io::ErrorKind::NotFound.into());
        let summary_of = |form, error| outcome::<()>(Err(named_in(form, error)));
        assert_eq!(
            summary_of(PathForm::Native, missing()),
            Err(fs_summary(ErrorKind::NotFound, Path::new("/tmp/a b")))
        );
        assert_eq!(
            summary_of(PathForm::FileUri, missing()),
            Err((
                crate::error::NOT_FOUND,
                Some(ErrorKind::NotFound),
                Some(String::from("file:///tmp/a%20b"))
            ))
        );
        // A found-unusable path is rendered; the client's own refused text
        // is echoed as it was sent.
        let unusable = not_a_regular_file(Path::new("/dev/null"), "character device");
        assert_eq!(
            summary_of(PathForm::FileUri, unusable),
            Err(invalid_path_summary("file:///dev/null"))
        );
        let refused = ServerError::invalid_path("file://server/x", "not local");
        assert_eq!(
            summary_of(PathForm::FileUri, refused),
            Err(invalid_path_summary("file://server/x"))
        );
    }

    #[test]
    fn only_a_regular_file_is_kept_and_made_blocking() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"x")?;
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let dev_null = Path::new("/dev/null");
        let open = |path: &Path| {
            OpenOptions::new()
                .read(true)
                .custom_flags(NONBLOCKING_OPEN)
                .open(path)
        };
        // What step 3 does with what a racing swap could leave at a path.
        let cases: [(&Path, Result<(), ErrorSummary>); 4] = [
            (&file, Ok(())),
            (&fifo, Err(fs_summary(ErrorKind::InvalidPath, &fifo))),
            (dev_null, Err(fs_summary(ErrorKind::InvalidPath, dev_null))),
            (
                directory.path(),
                Err(fs_summary(ErrorKind::IsADirectory, directory.path())),
            ),
        ];
        for (path, expected) in cases {
            let kept = outcome(regular_file(path, open(path)?));
            let kept = kept.map(|(file, _)| {
                let flags = fcntl(&file, FcntlArg::F_GETFL).unwrap_or(-1);
                assert_eq!(flags & nix::libc::O_NONBLOCK, 0, "O_NONBLOCK is cleared");
            });
            assert_eq!(kept, expected, "{}", path.display());
        }

        // Step 1 refuses both special files before opening them.
        for path in [&fifo, dev_null] {
            assert_eq!(
                outcome(refuse_special_file(path)),
                Err(fs_summary(ErrorKind::InvalidPath, path))
            );
        }
        // A FIFO without a reader fails a non-blocking open for writing with
        // ENXIO, told as what it is.
        let enxio = OpenOptions::new()
            .write(true)
            .custom_flags(NONBLOCKING_OPEN)
            .open(&fifo)
            .err()
            .map(|error| outcome::<()>(Err(open_error(&fifo, error))));
        assert_eq!(enxio, Some(Err(fs_summary(ErrorKind::InvalidPath, &fifo))));
        Ok(())
    }
}
