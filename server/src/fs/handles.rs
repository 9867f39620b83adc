//! `fs/open`, `fs/readBlock` and `fs/close`: regular files opened once and
//! read in blocks at any offset, as Codex's file handles are
//! (`codex-rs/exec-server/src/file_handle.rs`).
//!
//! Handles belong to one connection ([`FileHandles`] lives in its method
//! context) and are closed when it ends, whatever became of its session:
//! a resumed session starts with none. At most
//! [`MAX_FILE_HANDLES_PER_CONNECTION`] are open at once. The table's lock
//! is held only to look up, insert or remove; opening and reading run
//! outside it, on the fs pool. A read holds its file, so a handle closed
//! during a read is closed on the client's side at once and on the OS's
//! when the read ends.
//!
//! Rules, from Codex: any id (the empty one too) may name a handle, but not
//! one already open; `len` is 1 to [`MAX_READ_BLOCK_BYTES`]; `eof` is true
//! when fewer than `len` bytes came back; a read that fails closes its
//! handle; an unknown handle is `notFound`; closing an unknown handle is
//! not an error.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use exec_protocol::{
    FsCloseParams, FsCloseResponse, FsOpenParams, FsOpenResponse, FsReadBlockParams,
    FsReadBlockResponse,
};

use super::paths::{client_path, fs_error, named_in, open_for_reading};
use super::run_blocking;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::ClientPath;
use crate::sync::lock;

/// The most file handles one connection may have open at once (Codex's
/// `MAX_OPEN_FILES`); one more `fs/open` gets `limitExceeded`.
pub const MAX_FILE_HANDLES_PER_CONNECTION: usize = 128;

/// The most bytes one `fs/readBlock` may ask for (1 MiB, Codex's
/// `FILE_READ_CHUNK_SIZE`).
pub const MAX_READ_BLOCK_BYTES: u64 = 1024 * 1024;

/// One connection's open file handles, by the ids its client chose.
#[derive(Default)]
pub(crate) struct FileHandles {
    /// The open handles; shared with the reads in flight through their `Arc`.
    open: Mutex<HashMap<String, Arc<OpenFile>>>,
}

/// An open regular file.
struct OpenFile {
    /// Read with positional reads only, so concurrent reads of one handle
    /// never disturb each other.
    file: File,
    /// The path it was opened by, for errors and the pool's reports.
    path: PathBuf,
}

impl FileHandles {
    /// `fs/open`: opens the regular file at `path` (an absolute path or
    /// `file://` URI) for reading, as the handle `handleId`.
    ///
    /// # Errors
    /// `sandboxUnavailable` for a `sandbox` asking for confinement;
    /// `invalidParams` when `handleId` is already open; `limitExceeded` at
    /// [`MAX_FILE_HANDLES_PER_CONNECTION`]; `invalidPath` for a path that is
    /// not absolute or a FIFO, socket or device; `isADirectory`, `notFound`,
    /// `permissionDenied` or `io` from the OS; `limitExceeded` or `io` from
    /// the fs pool.
    pub(crate) async fn open(&self, params: FsOpenParams) -> Result<FsOpenResponse, ServerError> {
        refuse_unapplied(params.sandbox.as_ref())?;
        let ClientPath { path, form } = client_path(&params.path)?;
        // Checked before the open so that a refused request costs no file
        // descriptor, and again when inserting, since another open may
        // have taken the id or the last slot meanwhile.
        check_available(&lock(&self.open), &params.handle_id)?;
        let opening = path.clone();
        let opened = run_blocking(&path, move || {
            let (file, _) = open_for_reading(&opening)?;
            Ok(OpenFile {
                file,
                path: opening,
            })
        })
        .await
        .map_err(|error| named_in(form, error))?;
        let mut open = lock(&self.open);
        check_available(&open, &params.handle_id)?;
        if let Entry::Vacant(slot) = open.entry(params.handle_id.clone()) {
            slot.insert(Arc::new(opened));
        }
        Ok(FsOpenResponse {
            handle_id: params.handle_id,
        })
    }

    /// `fs/readBlock`: up to `len` bytes at `offset` of an open handle.
    ///
    /// # Errors
    /// `invalidParams` for a `len` of 0 or over [`MAX_READ_BLOCK_BYTES`],
    /// or a range past the largest file offset; `notFound` for a handle
    /// that is not open; `io` (or another kind from the OS) when the read
    /// fails, which closes the handle; `limitExceeded` from the fs pool
    /// (the handle stays open, since the read never started).
    pub(crate) async fn read_block(
        &self,
        params: FsReadBlockParams,
    ) -> Result<FsReadBlockResponse, ServerError> {
        let FsReadBlockParams {
            handle_id,
            len,
            offset,
        } = params;
        if !(1..=MAX_READ_BLOCK_BYTES).contains(&len) {
            return Err(ServerError::InvalidParams {
                message: format!("`len` is {len}; it must be 1 to {MAX_READ_BLOCK_BYTES}"),
            });
        }
        // pread(2) takes a signed offset: a range past it is the client's
        // mistake, refused without closing the handle.
        if offset
            .checked_add(len)
            .is_none_or(|end| end > i64::MAX as u64)
        {
            return Err(ServerError::InvalidParams {
                message: format!(
                    "`offset` {offset} plus `len` {len} is past the largest file offset"
                ),
            });
        }
        let handle = lock(&self.open).get(&handle_id).cloned().ok_or_else(|| {
            ServerError::UnknownHandle {
                handle_id: handle_id.clone(),
            }
        })?;
        let reading = Arc::clone(&handle);
        let length = usize::try_from(len).unwrap_or(usize::MAX);
        let result = run_blocking(&handle.path, move || {
            read_at(&reading.file, offset, length).map_err(|error| fs_error(&reading.path, error))
        })
        .await;
        if let Err(error) = &result
            && !matches!(error, ServerError::LimitExceeded { .. })
        {
            self.remove_if_same(&handle_id, &handle);
        }
        let data = result?;
        Ok(FsReadBlockResponse {
            eof: (data.len() as u64) < len,
            chunk: data.into(),
        })
    }

    /// `fs/close`: closes a handle; an unknown one is already closed.
    pub(crate) fn close(&self, params: &FsCloseParams) -> FsCloseResponse {
        lock(&self.open).remove(&params.handle_id);
        FsCloseResponse {}
    }

    /// Closes every handle (the connection ended). Reads in flight keep
    /// their file until they end.
    pub(crate) fn close_all(&self) {
        lock(&self.open).clear();
    }

    /// Removes `handle_id` if it still names `handle` (not a handle opened
    /// under the same id after a close).
    fn remove_if_same(&self, handle_id: &str, handle: &Arc<OpenFile>) {
        let mut open = lock(&self.open);
        if open
            .get(handle_id)
            .is_some_and(|current| Arc::ptr_eq(current, handle))
        {
            open.remove(handle_id);
        }
    }
}

/// Errors: `invalidParams` when `handle_id` is open, `limitExceeded`
/// when [`MAX_FILE_HANDLES_PER_CONNECTION`] are.
fn check_available(
    open: &HashMap<String, Arc<OpenFile>>,
    handle_id: &str,
) -> Result<(), ServerError> {
    if open.contains_key(handle_id) {
        return Err(ServerError::InvalidParams {
            message: format!(
                "file handle `{}` is already open",
                crate::error::echo(handle_id)
            ),
        });
    }
    if open.len() >= MAX_FILE_HANDLES_PER_CONNECTION {
        return Err(ServerError::LimitExceeded {
            what: "open file handles on this connection",
            limit: MAX_FILE_HANDLES_PER_CONNECTION as u64,
        });
    }
    Ok(())
}

/// Reads up to `len` bytes of `file` at `offset`: fewer only at the end of
/// the file. Errors: the OS error of a read.
fn read_at(file: &File, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut data = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut data[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    data.truncate(filled);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use exec_protocol::{AbsolutePath, Base64Bytes, ErrorKind};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::TestResult;
    use crate::path_uri::file_uri;

    fn open_params(handle_id: &str, path: String) -> FsOpenParams {
        FsOpenParams {
            handle_id: handle_id.to_owned(),
            path: AbsolutePath(path),
            sandbox: None,
        }
    }

    fn block(handle_id: &str, offset: u64, len: u64) -> FsReadBlockParams {
        FsReadBlockParams {
            handle_id: handle_id.to_owned(),
            len,
            offset,
        }
    }

    fn chunk(data: &[u8], eof: bool) -> FsReadBlockResponse {
        FsReadBlockResponse {
            chunk: Base64Bytes::from(data),
            eof,
        }
    }

    fn kind<T: std::fmt::Debug>(result: Result<T, ServerError>) -> ErrorKind {
        result.expect_err("an error").kind()
    }

    #[tokio::test]
    async fn blocks_are_read_at_any_offset_and_eof_when_short() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("digits");
        fs::write(&path, b"0123456789")?;
        let handles = FileHandles::default();
        let opened = handles.open(open_params("h", file_uri(&path))).await?;
        assert_eq!(opened.handle_id, "h");
        let cases = [
            (0, 4, chunk(b"0123", false)),
            (8, 4, chunk(b"89", true)),
            // A block ending exactly at the end is not short; the next is.
            (6, 4, chunk(b"6789", false)),
            (10, 4, chunk(b"", true)),
            (100, 1, chunk(b"", true)),
            (2, 3, chunk(b"234", false)),
        ];
        for (offset, len, expected) in cases {
            assert_eq!(
                handles.read_block(block("h", offset, len)).await?,
                expected,
                "offset {offset}, len {len}"
            );
        }
        // The empty id is an id like any other, as in Codex.
        handles
            .open(open_params("", path.display().to_string()))
            .await?;
        assert_eq!(
            handles.read_block(block("", 0, 1)).await?,
            chunk(b"0", false)
        );
        Ok(())
    }

    #[tokio::test]
    async fn handle_rules() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("file");
        fs::write(&path, b"x")?;
        let native = path.display().to_string();
        let handles = FileHandles::default();
        handles.open(open_params("h", native.clone())).await?;
        assert_eq!(
            kind(handles.open(open_params("h", native.clone())).await),
            ErrorKind::InvalidParams,
            "an id already open"
        );
        for len in [0, MAX_READ_BLOCK_BYTES + 1] {
            assert_eq!(
                kind(handles.read_block(block("h", 0, len)).await),
                ErrorKind::InvalidParams,
                "len {len}"
            );
        }
        assert_eq!(
            kind(handles.read_block(block("h", u64::MAX, 1)).await),
            ErrorKind::InvalidParams,
            "past the largest offset"
        );
        // None of those refusals closed the handle.
        assert_eq!(
            handles.read_block(block("h", 0, 8)).await?,
            chunk(b"x", true)
        );
        assert_eq!(
            handles.close(&FsCloseParams {
                handle_id: "h".into()
            }),
            FsCloseResponse {}
        );
        let unknown = handles
            .read_block(block("h", 0, 1))
            .await
            .expect_err("closed");
        assert_eq!(
            (unknown.kind(), unknown.to_string()),
            (
                ErrorKind::NotFound,
                String::from("no open file handle `h` on this connection")
            )
        );
        // Closing what is not open is fine; the id can be opened again.
        handles.close(&FsCloseParams {
            handle_id: "h".into(),
        });
        handles.open(open_params("h", native)).await?;
        Ok(())
    }

    #[tokio::test]
    async fn open_refuses_what_is_not_a_regular_file() -> TestResult {
        let directory = tempfile::tempdir()?;
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let handles = FileHandles::default();
        let cases = [
            (
                directory.path().display().to_string(),
                ErrorKind::IsADirectory,
            ),
            (fifo.display().to_string(), ErrorKind::InvalidPath),
            (
                directory.path().join("missing").display().to_string(),
                ErrorKind::NotFound,
            ),
            (String::from("relative"), ErrorKind::InvalidPath),
        ];
        for (path, expected) in cases {
            assert_eq!(
                kind(handles.open(open_params("h", path.clone())).await),
                expected,
                "{path}"
            );
        }
        let sandboxed = FsOpenParams {
            sandbox: serde_json::from_value(
                serde_json::json!({"permissions": {"type": "managed"}}),
            )?,
            ..open_params("h", directory.path().display().to_string())
        };
        assert_eq!(
            kind(handles.open(sandboxed).await),
            ErrorKind::SandboxUnavailable
        );
        // No failed open left a handle behind.
        assert_eq!(
            kind(handles.read_block(block("h", 0, 1)).await),
            ErrorKind::NotFound
        );
        Ok(())
    }

    #[tokio::test]
    async fn handles_are_bounded_and_all_closed_at_once() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("file");
        fs::write(&path, b"x")?;
        let native = path.display().to_string();
        let handles = FileHandles::default();
        for index in 0..MAX_FILE_HANDLES_PER_CONNECTION {
            handles
                .open(open_params(&index.to_string(), native.clone()))
                .await?;
        }
        assert_eq!(
            kind(handles.open(open_params("one more", native.clone())).await),
            ErrorKind::LimitExceeded
        );
        handles.close_all();
        assert_eq!(
            kind(handles.read_block(block("0", 0, 1)).await),
            ErrorKind::NotFound
        );
        handles.open(open_params("one more", native)).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_failed_read_closes_its_handle() -> TestResult {
        // Linux lets /proc/self/mem be opened as a regular file and fails
        // reads of unmapped memory (offset 0) with EIO.
        let handles = FileHandles::default();
        handles
            .open(open_params("mem", String::from("/proc/self/mem")))
            .await?;
        let error = handles
            .read_block(block("mem", 0, 16))
            .await
            .expect_err("EIO");
        assert_eq!(error.kind(), ErrorKind::Io);
        assert_eq!(
            kind(handles.read_block(block("mem", 0, 16)).await),
            ErrorKind::NotFound
        );
        Ok(())
    }
}
