//! `fs/remove`: a file, a symlink, an empty directory, or a whole tree.

use std::fs;
use std::io;
use std::path::Path;

use exec_protocol::{FsRemoveParams, FsRemoveResponse};

use super::paths::{client_path, fs_error, named_in};
use super::run_blocking;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// What `recursive: null` and `force: null` of fs/remove mean: Codex's
/// default for its `Option<bool>` fields (`rm -rf`), which Codex's clients
/// send as `null`. Absent, both are false, this protocol's v1 default (the
/// generated type reads an absent field as `Some(false)`).
const CODEX_REMOVE_DEFAULT: bool = true;

/// `fs/remove`: removes a file, a symlink (never what it points to) or an
/// empty directory; with `recursive`, a directory and everything in it.
///
/// With `force`, a missing path is not an error. Absent, `recursive` and
/// `force` are false; `null` is true, Codex's default
/// ([`CODEX_REMOVE_DEFAULT`]).
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path; `directoryNotEmpty`
/// for a non-empty
/// directory without `recursive`; `notFound` without `force`;
/// `permissionDenied`, `notADirectory` or `io` from the OS. A failure inside a
/// recursive removal names the top path, since the OS call that walks the
/// tree does not say which entry failed.
pub async fn remove(params: FsRemoveParams) -> Result<FsRemoveResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path, form } = client_path(&params.path)?;
    let recursive = params.recursive.unwrap_or(CODEX_REMOVE_DEFAULT);
    let force = params.force.unwrap_or(CODEX_REMOVE_DEFAULT);
    let named = path.clone();
    run_blocking(&named, move || remove_blocking(&path, recursive, force))
        .await
        .map_err(|error| named_in(form, error))
}

fn remove_blocking(
    path: &Path,
    recursive: bool,
    force: bool,
) -> Result<FsRemoveResponse, ServerError> {
    let missing_is_fine = |error: &io::Error| force && error.kind() == io::ErrorKind::NotFound;
    // `symlink_metadata` so that a symlink to a directory is removed as a
    // link, never by walking into what it points to.
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if missing_is_fine(&error) => return Ok(FsRemoveResponse {}),
        Err(error) => return Err(fs_error(path, error)),
    };
    let result = if !metadata.is_dir() {
        fs::remove_file(path)
    } else if recursive {
        fs::remove_dir_all(path)
    } else {
        fs::remove_dir(path)
    };
    match result {
        Ok(()) => Ok(FsRemoveResponse {}),
        // Someone else removed it first: with `force` that is the goal met.
        Err(error) if missing_is_fine(&error) => Ok(FsRemoveResponse {}),
        Err(error) => Err(fs_error(path, error)),
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use exec_protocol::{AbsolutePath, ErrorKind};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, fs_summary, invalid_path_summary, is_root, outcome, remove_params,
    };

    #[tokio::test]
    async fn remove_files_empty_directories_and_trees() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let empty = directory.path().join("empty");
        fs::create_dir(&empty)?;
        let tree = directory.path().join("tree");
        fs::create_dir_all(tree.join("deep/deeper"))?;
        fs::write(tree.join("deep/deeper/file"), b"")?;
        let cases = [
            (&file, false, "a file"),
            (&empty, false, "an empty directory"),
            (&tree, true, "a tree, with recursive"),
        ];
        for (path, recursive, what) in cases {
            assert_eq!(
                outcome(remove(remove_params(path, recursive, false)).await),
                Ok(FsRemoveResponse {}),
                "{what}"
            );
            assert!(!path.exists(), "{what} is gone");
        }
        Ok(())
    }

    #[tokio::test]
    async fn remove_defaults_absent_to_false_and_null_to_true() -> TestResult {
        let directory = tempfile::tempdir()?;
        let tree = directory.path().join("tree");
        fs::create_dir_all(tree.join("deep"))?;
        let path = tree.display().to_string();
        let absent: FsRemoveParams = serde_json::from_value(json!({"path": path}))?;
        assert_eq!(
            (absent.recursive, absent.force),
            (Some(false), Some(false)),
            "absent is our v1 default"
        );
        assert_eq!(
            outcome(remove(absent).await),
            Err(fs_summary(ErrorKind::DirectoryNotEmpty, &tree))
        );
        // What Codex's clients send: `null` for both, which is `rm -rf` for
        // them: the tree goes, and a second removal of it is no error.
        let codex = json!({"path": path, "recursive": null, "force": null, "sandbox": null});
        for attempt in ["the tree", "the tree again, now missing"] {
            let params: FsRemoveParams = serde_json::from_value(codex.clone())?;
            assert_eq!(
                outcome(remove(params).await),
                Ok(FsRemoveResponse {}),
                "{attempt}"
            );
        }
        assert!(!tree.exists());
        Ok(())
    }

    #[tokio::test]
    async fn remove_a_link_and_never_what_it_points_to() -> TestResult {
        // Removing a link to a directory removes the link, not the directory
        // or its contents, even with `recursive`.
        let directory = tempfile::tempdir()?;
        let target = directory.path().join("target");
        fs::create_dir(&target)?;
        fs::write(target.join("kept"), b"")?;
        let link = directory.path().join("link");
        symlink(&target, &link)?;
        remove(remove_params(&link, true, false)).await?;
        assert_eq!(
            (
                link.symlink_metadata().is_err(),
                target.join("kept").exists()
            ),
            (true, true)
        );
        Ok(())
    }

    #[tokio::test]
    async fn remove_errors_and_force() -> TestResult {
        let directory = tempfile::tempdir()?;
        let full = directory.path().join("full");
        fs::create_dir(&full)?;
        fs::write(full.join("kept"), b"")?;
        let missing = directory.path().join("missing");
        let cases: [(FsRemoveParams, &str, Result<FsRemoveResponse, ErrorSummary>); 4] = [
            (
                remove_params(&full, false, false),
                "a non-empty directory",
                Err(fs_summary(ErrorKind::DirectoryNotEmpty, &full)),
            ),
            (
                remove_params(&missing, false, false),
                "a missing path",
                Err(fs_summary(ErrorKind::NotFound, &missing)),
            ),
            (
                remove_params(&missing, true, true),
                "a missing path with force",
                Ok(FsRemoveResponse {}),
            ),
            (
                FsRemoveParams {
                    sandbox: None,
                    force: Some(true),
                    path: AbsolutePath("gone".into()),
                    recursive: None,
                },
                "a relative path, even with force",
                Err(invalid_path_summary("gone")),
            ),
        ];
        for (params, what, expected) in cases {
            assert_eq!(outcome(remove(params).await), expected, "{what}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn remove_reports_permission_denied() -> TestResult {
        let directory = tempfile::tempdir()?;
        let mut cases: Vec<(&Path, &str)> = Vec::new();
        // procfs refuses to unlink its files with EPERM even for root, which
        // makes this the one permission error the tests can provoke as root.
        let proc_file = Path::new("/proc/self/status");
        if proc_file.exists() {
            cases.push((proc_file, "a procfs file"));
        }
        let locked = directory.path().join("locked");
        let file = locked.join("file");
        let provoke_permission_denied = !is_root();
        if provoke_permission_denied {
            fs::create_dir(&locked)?;
            fs::write(&file, b"")?;
            fs::set_permissions(&locked, Permissions::from_mode(0o555))?;
            cases.push((&file, "a file in a read-only directory"));
        }
        for (path, what) in cases {
            assert_eq!(
                outcome(remove(remove_params(path, false, false)).await),
                Err(fs_summary(ErrorKind::PermissionDenied, path)),
                "{what}"
            );
        }
        if provoke_permission_denied {
            fs::set_permissions(&locked, Permissions::from_mode(0o755))?;
        }
        Ok(())
    }
}
