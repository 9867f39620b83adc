//! `fs/readFile`: one page of a file's bytes.

use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::path::Path;

use exec_protocol::{FsReadFileParams, FsReadFileResponse};

use super::paths::{client_path, fs_error, named_in, open_for_reading};
use super::run_blocking;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// The most bytes one fs/readFile returns (16 MiB), so a response stays
/// under the message limit; larger files are read in pages with `offset`.
pub const MAX_READ_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `fs/readFile`: reads up to `maxBytes` bytes (default and cap
/// [`MAX_READ_FILE_BYTES`]) from byte `offset` (default 0) of a file.
///
/// Returns the bytes, the file's total size in bytes and whether the read
/// reached the end of the file (learned by asking for one byte more than the
/// page, so it is right for files whose size `stat` does not know, like those
/// in `/proc`). An offset past the end gives no bytes and `eof: true`.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path and for a FIFO, socket
/// or device (never
/// read, so a FIFO's queued bytes stay for its next reader);
/// `isADirectory` for a directory; `notFound`, `permissionDenied`,
/// `notADirectory` or `io` from the OS; `limitExceeded` or `io` from the fs
/// pool (`run_blocking`).
pub async fn read_file(params: FsReadFileParams) -> Result<FsReadFileResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path, form } = client_path(&params.path)?;
    let offset = params.offset.unwrap_or(0);
    let max_bytes = params.max_bytes.map_or(MAX_READ_FILE_BYTES, |max_bytes| {
        max_bytes.min(MAX_READ_FILE_BYTES)
    });
    let named = path.clone();
    run_blocking(&named, move || read_file_blocking(&path, offset, max_bytes))
        .await
        .map_err(|error| named_in(form, error))
}

fn read_file_blocking(
    path: &Path,
    offset: u64,
    max_bytes: u64,
) -> Result<FsReadFileResponse, ServerError> {
    let fail = |error: io::Error| fs_error(path, error);
    let (mut file, metadata) = open_for_reading(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset)).map_err(fail)?;
    }
    let expected = metadata.len().saturating_sub(offset).min(max_bytes);
    let mut data = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).saturating_add(1));
    // One byte past the page tells whether the file goes on, which the size
    // alone cannot say for a file that grows or reports size 0 (`/proc`).
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(fail)?;
    let page_length = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let eof = data.len() <= page_length;
    data.truncate(page_length);
    Ok(FsReadFileResponse {
        data_base64: data.into(),
        eof,
        size: metadata.len(),
    })
}

#[cfg(test)]
mod tests {
    use std::fs::{self, File, Permissions};
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    use std::time::Duration;

    use exec_protocol::{AbsolutePath, Base64Bytes, ErrorKind};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, absolute_path, fs_summary, invalid_path_summary, is_root,
        outcome, read_params,
    };

    fn page(data: &[u8], eof: bool, size: u64) -> FsReadFileResponse {
        FsReadFileResponse {
            data_base64: Base64Bytes::from(data),
            eof,
            size,
        }
    }

    #[tokio::test]
    async fn read_file_returns_the_whole_file() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("hello.txt");
        fs::write(&path, b"hello\n")?;
        assert_eq!(
            read_file(read_params(&path, None, None)).await?,
            page(b"hello\n", true, 6)
        );
        Ok(())
    }

    #[tokio::test]
    async fn read_file_pages_with_offset_and_max_bytes() -> TestResult {
        let directory = tempfile::tempdir()?;
        let digits = directory.path().join("digits");
        fs::write(&digits, b"0123456789")?;
        let empty = directory.path().join("empty");
        fs::write(&empty, b"")?;
        let cases: [(&Path, Option<u64>, Option<u64>, FsReadFileResponse); 8] = [
            (&digits, None, Some(4), page(b"0123", false, 10)),
            (&digits, Some(4), Some(4), page(b"4567", false, 10)),
            (&digits, Some(8), Some(4), page(b"89", true, 10)),
            // A page that ends exactly at the end of the file knows it.
            (&digits, Some(6), Some(4), page(b"6789", true, 10)),
            (&digits, Some(3), None, page(b"3456789", true, 10)),
            (&digits, Some(20), Some(4), page(b"", true, 10)),
            (&digits, Some(2), Some(0), page(b"", false, 10)),
            (&empty, None, Some(0), page(b"", true, 0)),
        ];
        for (path, offset, max_bytes, expected) in cases {
            assert_eq!(
                read_file(read_params(path, offset, max_bytes)).await?,
                expected,
                "{}, offset {offset:?}, maxBytes {max_bytes:?}",
                path.display()
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn read_file_caps_a_page_at_max_read_file_bytes() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("big");
        let size = MAX_READ_FILE_BYTES + 10;
        File::create(&path)?.set_len(size)?;
        let response = read_file(read_params(&path, None, Some(u64::MAX))).await?;
        assert_eq!(
            (
                response.data_base64.len() as u64,
                response.eof,
                response.size
            ),
            (MAX_READ_FILE_BYTES, false, size)
        );
        let rest = read_file(read_params(&path, Some(MAX_READ_FILE_BYTES), None)).await?;
        assert_eq!(rest, page(&[0; 10], true, size));
        Ok(())
    }

    #[tokio::test]
    async fn read_file_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("missing");
        let file = directory.path().join("file");
        fs::write(&file, b"x")?;
        let below_file = file.join("child");
        let mut cases: Vec<(AbsolutePath, &str, ErrorSummary)> = vec![
            (
                absolute_path(&missing),
                "a missing file",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
            (
                absolute_path(directory.path()),
                "a directory",
                fs_summary(ErrorKind::IsADirectory, directory.path()),
            ),
            (
                absolute_path(&below_file),
                "a path below a file",
                fs_summary(ErrorKind::NotADirectory, &below_file),
            ),
            (
                AbsolutePath("relative/path".into()),
                "a relative path",
                invalid_path_summary("relative/path"),
            ),
            (
                AbsolutePath("/tmp/a\0b".into()),
                "a path with a NUL byte",
                invalid_path_summary("/tmp/a\0b"),
            ),
        ];
        // Root bypasses permission bits, so EACCES cannot be provoked this way
        // when the tests run as root (as in many containers).
        if !is_root() {
            fs::set_permissions(&file, Permissions::from_mode(0o000))?;
            cases.push((
                absolute_path(&file),
                "an unreadable file",
                fs_summary(ErrorKind::PermissionDenied, &file),
            ));
        }
        for (path, what, expected) in cases {
            let params = FsReadFileParams {
                sandbox: None,
                max_bytes: None,
                offset: None,
                path,
            };
            assert_eq!(outcome(read_file(params).await), Err(expected), "{what}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn read_file_refuses_a_fifo_at_once_and_leaves_its_bytes() -> TestResult {
        let directory = tempfile::tempdir()?;
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let refused = fs_summary(ErrorKind::InvalidPath, &fifo);
        let read = || {
            tokio::time::timeout(
                Duration::from_secs(10),
                read_file(read_params(&fifo, None, None)),
            )
        };
        assert_eq!(outcome(read().await?), Err(refused.clone()), "no writer");

        // A writer needs a reader to open; this one is the FIFO's real
        // consumer, which must find every byte queued.
        let consumer = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)?;
        let mut writer = fs::OpenOptions::new().write(true).open(&fifo)?;
        writer.write_all(b"queued")?;
        assert_eq!(outcome(read().await?), Err(refused), "with a writer");
        let mut bytes = Vec::new();
        let read_error = (&consumer).read_to_end(&mut bytes).err();
        // The writer is still open, so the consumer gets the bytes and then
        // "would block", not end of file.
        assert_eq!(
            (bytes, read_error.map(|error| error.kind())),
            (b"queued".to_vec(), Some(io::ErrorKind::WouldBlock))
        );
        Ok(())
    }
}
