//! What the tests of every `fs` file share: error summaries, the root probe,
//! params builders and permission bits. It uses no operation file, so any
//! operation's tests can use it without an import circle.

use std::fs::{self, File, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::Path;

use exec_protocol::{
    AbsolutePath, Base64Bytes, ErrorKind, FsCopyParams, FsGetMetadataParams, FsReadDirectoryParams,
    FsReadFileParams, FsRemoveParams, FsRenameParams, FsWriteFileParams,
};

use crate::error::{INVALID_PARAMS, NOT_FOUND, ServerError};

/// What a test returns: any error fails it with its message.
pub(super) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// What a client learns from an error besides the message: the code,
/// `data.kind` and `data.path`.
pub(super) type ErrorSummary = (i32, Option<ErrorKind>, Option<String>);

/// The summary of `error`.
pub(super) fn summary(error: &ServerError) -> ErrorSummary {
    let object = error.to_error_object();
    (
        object.code,
        Some(error.kind()),
        object.data.and_then(|data| data.path),
    )
}

/// A call's result as a client sees it: the response, or the error's
/// summary, so one `assert_eq!` checks both that a call failed and how.
pub(super) fn outcome<T>(result: Result<T, ServerError>) -> Result<T, ErrorSummary> {
    result.map_err(|error| summary(&error))
}

/// The summary of a filesystem error about `path` with the given kind: code
/// -32004 for `notFound` (Codex's code), -32602 for the others.
pub(super) fn fs_summary(kind: ErrorKind, path: &Path) -> ErrorSummary {
    let code = if kind == ErrorKind::NotFound {
        NOT_FOUND
    } else {
        INVALID_PARAMS
    };
    (code, Some(kind), Some(path.display().to_string()))
}

/// The summary of a path refused before any OS call (relative, or with a
/// NUL byte), which names the path exactly as the client sent it.
pub(super) fn invalid_path_summary(path: &str) -> ErrorSummary {
    (
        INVALID_PARAMS,
        Some(ErrorKind::InvalidPath),
        Some(path.to_owned()),
    )
}

/// Whether the tests run with the power to ignore permission bits (root,
/// or `CAP_DAC_OVERRIDE`), where EACCES cannot be provoked with `chmod`.
/// It is probed rather than read from the euid, since a capability
/// matters and not the uid (and nix's `geteuid` needs its `user` feature).
pub(super) fn is_root() -> bool {
    let probe = || -> io::Result<bool> {
        let directory = tempfile::tempdir()?;
        let locked = directory.path().join("locked");
        File::create(&locked)?.set_permissions(Permissions::from_mode(0o000))?;
        Ok(File::open(&locked).is_ok())
    };
    probe().unwrap_or(true)
}

/// The protocol form of a test's path.
pub(super) fn absolute_path(path: &Path) -> AbsolutePath {
    AbsolutePath(path.display().to_string())
}

/// The permission bits of `path` itself (a symlink is not followed).
pub(super) fn permission_bits(path: &Path) -> io::Result<u32> {
    Ok(fs::symlink_metadata(path)?.mode() & 0o7777)
}

/// fs/readFile params for a page of `path`.
pub(super) fn read_params(
    path: &Path,
    offset: Option<u64>,
    max_bytes: Option<u64>,
) -> FsReadFileParams {
    FsReadFileParams {
        sandbox: None,
        max_bytes,
        offset,
        path: absolute_path(path),
    }
}

/// fs/writeFile params that write `data` to `path` with every option unset.
pub(super) fn write_params(path: &Path, data: &[u8]) -> FsWriteFileParams {
    FsWriteFileParams {
        sandbox: None,
        append: None,
        create_parents: None,
        data_base64: Base64Bytes::from(data),
        mode: None,
        path: absolute_path(path),
    }
}

/// fs/getMetadata params for `path`.
pub(super) fn metadata_params(path: &Path, follow_symlinks: Option<bool>) -> FsGetMetadataParams {
    FsGetMetadataParams {
        sandbox: None,
        follow_symlinks,
        path: absolute_path(path),
    }
}

/// fs/readDirectory params for `path`.
pub(super) fn directory_params(path: &Path) -> FsReadDirectoryParams {
    FsReadDirectoryParams {
        sandbox: None,
        path: absolute_path(path),
    }
}

/// fs/remove params for `path`.
pub(super) fn remove_params(path: &Path, recursive: bool, force: bool) -> FsRemoveParams {
    FsRemoveParams {
        sandbox: None,
        force: Some(force),
        path: absolute_path(path),
        recursive: Some(recursive),
    }
}

/// fs/copy params from `source` to `destination`.
pub(super) fn copy_params(source: &Path, destination: &Path, recursive: bool) -> FsCopyParams {
    FsCopyParams {
        sandbox: None,
        destination_path: absolute_path(destination),
        recursive: Some(recursive),
        source_path: absolute_path(source),
    }
}

/// fs/rename params from `source` to `destination`.
pub(super) fn rename_params(
    source: &Path,
    destination: &Path,
    overwrite: Option<bool>,
) -> FsRenameParams {
    FsRenameParams {
        sandbox: None,
        destination_path: absolute_path(destination),
        overwrite,
        source_path: absolute_path(source),
    }
}
