//! The two methods that create paths: `fs/writeFile` (a file's bytes, with
//! an exact `mode` for a file it creates) and `fs/createDirectory`.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use exec_protocol::{
    FsCreateDirectoryParams, FsCreateDirectoryResponse, FsWriteFileParams, FsWriteFileResponse,
};

use super::paths::{
    NONBLOCKING_OPEN, client_path, fs_error, named_in, open_error, refuse_special_file,
    regular_file,
};
use super::sandbox::refuse_unapplied;
use super::{MAX_MODE, run_blocking};
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// What `recursive: null` of fs/createDirectory means: Codex's default for
/// its `Option<bool>` (`mkdir -p`), which Codex's clients send as `null`.
/// An absent `recursive` is false, this protocol's v1 default (the generated
/// type reads it as `Some(false)`).
const CODEX_CREATE_DIRECTORY_RECURSIVE: bool = true;

/// How often fs/writeFile with an explicit `mode` retries when the file
/// appears or disappears between its "create new" and "open existing"
/// attempts; only a path that another process keeps flipping needs more.
const WRITE_OPEN_ATTEMPTS: usize = 3;

/// `fs/writeFile`: writes bytes to a file, creating it or replacing its
/// contents, or appending with `append`.
///
/// `createParents` creates missing parent directories first (like
/// `mkdir -p`). `mode` sets the permission bits of a file this call creates,
/// exactly as given (the server's umask does not apply, since the client
/// cannot see it); an existing file keeps its permissions. Without `mode` a
/// new file gets `0o666` less the server's umask.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); invalid params (-32602, no `data.kind`) for a `mode`
/// above `0o7777`;
/// `invalidPath` for a relative path; `notFound` for a missing parent without
/// `createParents`; `invalidPath` for a FIFO, socket or device (nothing is
/// written to it, and a FIFO without a reader does not block the call);
/// `isADirectory`, `notADirectory`, `permissionDenied`, `alreadyExists` (a
/// parent to create is a file) or `io` from the OS; `limitExceeded` or `io`
/// from the fs pool (`run_blocking`).
pub async fn write_file(params: FsWriteFileParams) -> Result<FsWriteFileResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path, form } = client_path(&params.path)?;
    if let Some(mode) = params.mode
        && mode > MAX_MODE
    {
        return Err(ServerError::InvalidParams {
            message: format!("mode {mode:#o} is out of range: the largest is {MAX_MODE:#o}"),
        });
    }
    let data = params.data_base64.into_inner();
    let append = params.append.unwrap_or(false);
    let create_parents = params.create_parents.unwrap_or(false);
    let mode = params.mode;
    let named = path.clone();
    run_blocking(&named, move || {
        write_file_blocking(&path, &data, append, create_parents, mode)
    })
    .await
    .map_err(|error| named_in(form, error))
}

/// `fs/createDirectory`: creates a directory; with `recursive`, also its
/// missing parents, and succeeds when it already is a directory (like
/// `mkdir -p`). An absent `recursive` is false; `null` is true, Codex's
/// default ([`CODEX_CREATE_DIRECTORY_RECURSIVE`]).
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path; `alreadyExists` when
/// the path exists
/// (without `recursive`) or is not a directory (with it); `notFound` for a
/// missing parent without `recursive`; `notADirectory`, `permissionDenied`
/// or `io` from the OS.
pub async fn create_directory(
    params: FsCreateDirectoryParams,
) -> Result<FsCreateDirectoryResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path, form } = client_path(&params.path)?;
    let recursive = params.recursive.unwrap_or(CODEX_CREATE_DIRECTORY_RECURSIVE);
    let named = path.clone();
    run_blocking(&named, move || {
        let result = if recursive {
            fs::create_dir_all(&path)
        } else {
            fs::create_dir(&path)
        };
        result.map_err(|error| fs_error(&path, error))?;
        Ok(FsCreateDirectoryResponse {})
    })
    .await
    .map_err(|error| named_in(form, error))
}

fn write_file_blocking(
    path: &Path,
    data: &[u8],
    append: bool,
    create_parents: bool,
    mode: Option<u32>,
) -> Result<FsWriteFileResponse, ServerError> {
    if create_parents && let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|error| fs_error(parent, error))?;
    }
    refuse_special_file(path)?;
    let file = open_for_writing(path, append, mode).map_err(|error| open_error(path, error))?;
    let (mut file, _) = regular_file(path, file)?;
    file.write_all(data)
        .map_err(|error| fs_error(path, error))?;
    Ok(FsWriteFileResponse {})
}

/// Opens `path` for writing, creating it if missing, without blocking on a
/// FIFO ([`NONBLOCKING_OPEN`]; the caller checks the file's type). With
/// `mode`, a file this call creates gets exactly those permission bits; an
/// existing file keeps its own.
fn open_for_writing(path: &Path, append: bool, mode: Option<u32>) -> io::Result<File> {
    let mut existing = OpenOptions::new();
    existing.write(true).custom_flags(NONBLOCKING_OPEN);
    if append {
        existing.append(true);
    } else {
        existing.truncate(true);
    }
    let Some(mode) = mode else {
        return existing.create(true).open(path);
    };
    // Only an exclusive create tells whether this call made the file, and so
    // whether `mode` applies; when the file exists, it is opened as it is.
    for _ in 0..WRITE_OPEN_ATTEMPTS {
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(NONBLOCKING_OPEN)
            .mode(mode)
            .open(path)
        {
            Ok(file) => {
                // The kernel masked `mode` with the umask at creation; the
                // client asked for these exact bits.
                file.set_permissions(Permissions::from_mode(mode))?;
                return Ok(file);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(error),
        }
        match existing.open(path) {
            Ok(file) => return Ok(file),
            // The file vanished between the two opens: try creating it again.
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    // A dangling symlink lands here too: the exclusive create refuses the
    // link, the plain open finds no target. Creating through the link, as a
    // write without `mode` would, is the last resort; the umask then applies.
    existing.create(true).mode(mode).open(path)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::unix::fs::{FileTypeExt as _, symlink};
    use std::time::Duration;

    use exec_protocol::{AbsolutePath, ErrorKind};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::error::INVALID_PARAMS;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, absolute_path, fs_summary, invalid_path_summary, is_root,
        outcome, permission_bits, write_params,
    };

    #[tokio::test]
    async fn write_file_creates_truncates_and_appends() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("file.txt");
        let appended_new = directory.path().join("appended-new");
        // Each step runs on what the steps before it left.
        let steps: [(&Path, bool, &[u8], &[u8]); 4] = [
            (&path, false, b"first version", b"first version"),
            (&path, false, b"second", b"second"),
            (&path, true, b" and more", b"second and more"),
            (&appended_new, true, b"new", b"new"),
        ];
        for (path, append, data, contents) in steps {
            let params = FsWriteFileParams {
                append: append.then_some(true),
                ..write_params(path, data)
            };
            assert_eq!(write_file(params).await?, FsWriteFileResponse {});
            assert_eq!(
                fs::read(path)?,
                contents,
                "{}, append {append}",
                path.display()
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn write_file_creates_parents_only_when_asked() -> TestResult {
        let directory = tempfile::tempdir()?;
        let nested = directory.path().join("a/b/c.txt");
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let below_file = file.join("child/data");
        let cases: [(&Path, Option<bool>, &str, ErrorSummary); 2] = [
            (
                &nested,
                None,
                "a missing parent",
                fs_summary(ErrorKind::NotFound, &nested),
            ),
            (
                &below_file,
                Some(true),
                "a parent below a file",
                fs_summary(ErrorKind::NotADirectory, &file.join("child")),
            ),
        ];
        for (path, create_parents, what, expected) in cases {
            let params = FsWriteFileParams {
                create_parents,
                ..write_params(path, b"x")
            };
            assert_eq!(outcome(write_file(params).await), Err(expected), "{what}");
        }

        write_file(FsWriteFileParams {
            create_parents: Some(true),
            ..write_params(&nested, b"x")
        })
        .await?;
        assert_eq!(fs::read(&nested)?, b"x");
        Ok(())
    }

    #[tokio::test]
    async fn write_file_applies_mode_to_new_files_only() -> TestResult {
        let directory = tempfile::tempdir()?;
        let private = directory.path().join("private");
        let open = directory.path().join("open");
        // Each step runs on what the steps before it left.
        let steps = [
            (&private, 0o640, b"x", 0o640, b"x"),
            // Bits the umask (usually 0o022) would clear are kept: the client
            // asked for them.
            (&open, 0o777, b"x", 0o777, b"x"),
            // An existing file keeps its bits and gets the new contents.
            (&open, 0o600, b"y", 0o777, b"y"),
        ];
        for (path, mode, data, bits, contents) in steps {
            write_file(FsWriteFileParams {
                mode: Some(mode),
                ..write_params(path, data)
            })
            .await?;
            assert_eq!(
                (permission_bits(path)?, fs::read(path)?),
                (bits, contents.to_vec()),
                "{} written with mode {mode:#o}",
                path.display()
            );
        }

        // Without a mode, a new file gets what any other file created by this
        // process gets: 0o666 less the umask.
        let default = directory.path().join("default");
        let reference = directory.path().join("reference");
        write_file(write_params(&default, b"x")).await?;
        File::create(&reference)?;
        assert_eq!(permission_bits(&default)?, permission_bits(&reference)?);

        let too_large = directory.path().join("too-large");
        let params = FsWriteFileParams {
            mode: Some(0o10000),
            ..write_params(&too_large, b"x")
        };
        assert_eq!(
            outcome(write_file(params).await),
            Err((INVALID_PARAMS, Some(ErrorKind::InvalidParams), None)),
            "a mode above 0o7777"
        );
        assert!(
            !too_large.exists(),
            "nothing is written for a rejected mode"
        );
        Ok(())
    }

    #[tokio::test]
    async fn write_file_through_a_dangling_symlink_with_mode_creates_the_target() -> TestResult {
        let directory = tempfile::tempdir()?;
        let target = directory.path().join("target");
        let link = directory.path().join("link");
        symlink(&target, &link)?;
        write_file(FsWriteFileParams {
            mode: Some(0o600),
            ..write_params(&link, b"x")
        })
        .await?;
        assert_eq!(fs::read(&target)?, b"x");
        Ok(())
    }

    #[tokio::test]
    async fn write_file_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let mut cases: Vec<(AbsolutePath, &str, ErrorSummary)> = vec![
            (
                absolute_path(directory.path()),
                "a directory",
                fs_summary(ErrorKind::IsADirectory, directory.path()),
            ),
            (
                AbsolutePath("file".into()),
                "a relative path",
                invalid_path_summary("file"),
            ),
        ];
        if !is_root() {
            let read_only = directory.path().join("read-only");
            fs::create_dir(&read_only)?;
            fs::set_permissions(&read_only, Permissions::from_mode(0o555))?;
            let inside = read_only.join("file");
            cases.push((
                absolute_path(&inside),
                "a read-only directory",
                fs_summary(ErrorKind::PermissionDenied, &inside),
            ));
        }
        for (path, what, expected) in cases {
            let params = FsWriteFileParams {
                path,
                ..write_params(directory.path(), b"x")
            };
            assert_eq!(outcome(write_file(params).await), Err(expected), "{what}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn write_file_refuses_a_fifo_at_once_with_or_without_a_reader() -> TestResult {
        let directory = tempfile::tempdir()?;
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let refused = fs_summary(ErrorKind::InvalidPath, &fifo);
        let write = |mode: Option<u32>| {
            tokio::time::timeout(
                Duration::from_secs(10),
                write_file(FsWriteFileParams {
                    mode,
                    ..write_params(&fifo, b"x")
                }),
            )
        };
        for mode in [None, Some(0o600)] {
            assert_eq!(
                outcome(write(mode).await?),
                Err(refused.clone()),
                "no reader, mode {mode:?}"
            );
        }
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)?;
        assert_eq!(outcome(write(None).await?), Err(refused), "with a reader");
        let mut bytes = [0; 8];
        // No writer is open (the server never opened it): end of file.
        assert_eq!(
            (&reader).read(&mut bytes).map_err(|error| error.kind()),
            Ok(0),
            "nothing reached the reader"
        );
        assert!(fs::symlink_metadata(&fifo)?.file_type().is_fifo());
        Ok(())
    }

    #[tokio::test]
    async fn create_directory_defaults_absent_to_false_and_null_to_true() -> TestResult {
        let directory = tempfile::tempdir()?;
        let nested = directory.path().join("a/b");
        let path = nested.display().to_string();
        let absent: FsCreateDirectoryParams = serde_json::from_value(json!({"path": path}))?;
        assert_eq!(absent.recursive, Some(false), "absent is our v1 default");
        assert_eq!(
            outcome(create_directory(absent).await),
            Err(fs_summary(ErrorKind::NotFound, &nested)),
            "absent: a missing parent is an error"
        );
        // What Codex's clients send: `null`, which is `mkdir -p` for them.
        let codex: FsCreateDirectoryParams =
            serde_json::from_value(json!({"path": path, "recursive": null, "sandbox": null}))?;
        assert_eq!(
            outcome(create_directory(codex).await),
            Ok(FsCreateDirectoryResponse {})
        );
        assert!(nested.is_dir());
        Ok(())
    }

    #[tokio::test]
    async fn create_directory_plain_and_recursive() -> TestResult {
        let directory = tempfile::tempdir()?;
        let single = directory.path().join("single");
        let nested = directory.path().join("a/b/c");
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let below_file = file.join("child");
        // Each step runs on what the steps before it left; a step that
        // succeeds leaves a directory at its path.
        let steps = [
            // `Some(false)` is what an absent `recursive` reads as (see
            // `create_directory_defaults_absent_to_false_and_null_to_true`).
            (
                absolute_path(&single),
                Some(false),
                "a new directory",
                Ok(FsCreateDirectoryResponse {}),
            ),
            (
                absolute_path(&single),
                Some(false),
                "an existing directory",
                Err(fs_summary(ErrorKind::AlreadyExists, &single)),
            ),
            (
                absolute_path(&nested),
                Some(false),
                "a missing parent",
                Err(fs_summary(ErrorKind::NotFound, &nested)),
            ),
            (
                absolute_path(&nested),
                Some(true),
                "missing parents with recursive",
                Ok(FsCreateDirectoryResponse {}),
            ),
            // Like `mkdir -p`, an existing directory is fine.
            (
                absolute_path(&nested),
                Some(true),
                "an existing directory with recursive",
                Ok(FsCreateDirectoryResponse {}),
            ),
            (
                absolute_path(&file),
                Some(true),
                "an existing file",
                Err(fs_summary(ErrorKind::AlreadyExists, &file)),
            ),
            (
                absolute_path(&below_file),
                Some(true),
                "a parent that is a file",
                Err(fs_summary(ErrorKind::NotADirectory, &below_file)),
            ),
            (
                AbsolutePath("".into()),
                None,
                "an empty path",
                Err(invalid_path_summary("")),
            ),
        ];
        for (path, recursive, what, expected) in steps {
            let succeeds = expected.is_ok();
            let params = FsCreateDirectoryParams {
                sandbox: None,
                path: path.clone(),
                recursive,
            };
            assert_eq!(outcome(create_directory(params).await), expected, "{what}");
            if succeeds {
                assert!(Path::new(path.as_str()).is_dir(), "{what}");
            }
        }
        Ok(())
    }
}
