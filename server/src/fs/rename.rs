//! `fs/rename`: a move within one filesystem that replaces an existing
//! destination only when asked (`renameat2` with `RENAME_NOREPLACE`, or a
//! checked fallback), and whose errors name the path at fault.

use std::fs;
use std::io;
use std::path::Path;

use exec_protocol::{FsRenameParams, FsRenameResponse};
use nix::errno::Errno;

use super::paths::{absolute, client_path, fs_error, named_in};
use super::run_blocking;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// `fs/rename`: moves a path within one filesystem (`rename(2)`).
///
/// Without `overwrite` (the default) an existing destination is an error; on
/// Linux with glibc the kernel checks that atomically (`renameat2` with
/// `RENAME_NOREPLACE`), elsewhere and on filesystems without that flag the
/// server checks first, which a concurrent writer can race. With `overwrite`
/// the destination is replaced as `rename(2)` does (a directory only by a
/// directory, and only when empty).
///
/// Either path may be an absolute path or a `file://` URI; an error about
/// either names it in the form of `sourcePath`.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path; `alreadyExists`
/// (naming the
/// destination) when it exists without `overwrite`; invalid params (-32602,
/// no `data.kind`) for moving a directory into itself; otherwise the OS error
/// naming the path it concerns: `notFound` for a missing source (the source)
/// or destination parent (the destination), `directoryNotEmpty`,
/// `isADirectory`, `notADirectory`, `permissionDenied`, or `io` (also when
/// the paths are on different filesystems).
pub async fn rename(params: FsRenameParams) -> Result<FsRenameResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path: source, form } = client_path(&params.source_path)?;
    let destination = absolute(&params.destination_path)?;
    let overwrite = params.overwrite.unwrap_or(false);
    let named = source.clone();
    run_blocking(&named, move || {
        rename_blocking(&source, &destination, overwrite)
    })
    .await
    .map_err(|error| named_in(form, error))
}

fn rename_blocking(
    source: &Path,
    destination: &Path,
    overwrite: bool,
) -> Result<FsRenameResponse, ServerError> {
    let result = if overwrite {
        fs::rename(source, destination)
    } else {
        rename_no_replace(source, destination)
    };
    match result {
        Ok(()) => Ok(FsRenameResponse {}),
        // EINVAL from rename(2) means the request itself cannot be done
        // (a directory into its own subtree), not that the server failed.
        Err(error) if error.raw_os_error() == Some(Errno::EINVAL as i32) => {
            Err(ServerError::invalid_path(
                destination.display().to_string(),
                format!(
                    "`{}` cannot be moved here: a directory cannot be moved into itself ({error})",
                    source.display()
                ),
            ))
        }
        Err(error) => Err(fs_error(
            rename_error_path(source, destination, &error),
            error,
        )),
    }
}

/// Renames without replacing an existing destination, atomically: the kernel
/// refuses with EEXIST if the destination exists at the moment of the rename.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn rename_no_replace(source: &Path, destination: &Path) -> io::Result<()> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};

    match renameat2(
        AT_FDCWD,
        source,
        AT_FDCWD,
        destination,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => Ok(()),
        // A filesystem without RENAME_NOREPLACE answers EINVAL, a kernel older
        // than 3.15 ENOSYS; the checked fallback still works there (and
        // repeats a genuine EINVAL, such as a move into its own subtree).
        Err(Errno::EINVAL | Errno::ENOSYS) => rename_if_absent(source, destination),
        Err(errno) => Err(errno.into()),
    }
}

/// Renames without replacing an existing destination where the kernel cannot
/// enforce it.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn rename_no_replace(source: &Path, destination: &Path) -> io::Result<()> {
    rename_if_absent(source, destination)
}

/// Renames only when the destination does not exist. This is check-then-act:
/// a destination created by another process between the check and the rename
/// is replaced. `rename_no_replace` avoids the race where the kernel allows.
fn rename_if_absent(source: &Path, destination: &Path) -> io::Result<()> {
    // A missing source is reported before an existing destination, as the
    // kernel does.
    fs::symlink_metadata(source)?;
    match fs::symlink_metadata(destination) {
        Ok(_) => Err(Errno::EEXIST.into()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => fs::rename(source, destination),
        Err(error) => Err(error),
    }
}

/// Picks the path a failed rename is about. rename(2) reports one errno for
/// two paths, so the source is probed: if it cannot be looked up, or its
/// directory cannot be written, the error is the source's; otherwise it is
/// the destination's (it exists, is a non-empty directory, its parent is
/// missing, or it is on another filesystem).
fn rename_error_path<'a>(source: &'a Path, destination: &'a Path, error: &io::Error) -> &'a Path {
    let source_is_at_fault = match error.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => {
            fs::symlink_metadata(source).is_err()
        }
        io::ErrorKind::PermissionDenied => {
            fs::symlink_metadata(source).is_err()
                || source.parent().is_some_and(|parent| {
                    nix::unistd::access(
                        parent,
                        nix::unistd::AccessFlags::W_OK | nix::unistd::AccessFlags::X_OK,
                    )
                    .is_err()
                })
        }
        _ => false,
    };
    if source_is_at_fault {
        source
    } else {
        destination
    }
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use exec_protocol::{AbsolutePath, ErrorKind};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, fs_summary, invalid_path_summary, is_root, outcome, rename_params,
    };

    #[tokio::test]
    async fn rename_moves_and_replaces_only_when_asked() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("source");
        fs::write(&source, b"source")?;
        let existing = directory.path().join("existing");
        fs::write(&existing, b"existing")?;
        // A dangling symlink counts as an existing destination.
        let dangling = directory.path().join("dangling");
        symlink(directory.path().join("nowhere"), &dangling)?;

        let refused = [
            (&existing, None, "an existing destination"),
            (&dangling, Some(false), "a dangling link destination"),
        ];
        for (destination, overwrite, what) in refused {
            assert_eq!(
                outcome(rename(rename_params(&source, destination, overwrite)).await),
                Err(fs_summary(ErrorKind::AlreadyExists, destination)),
                "{what}"
            );
        }
        assert_eq!(
            (fs::read(&source)?, fs::read(&existing)?),
            (b"source".to_vec(), b"existing".to_vec()),
            "a refused rename changes nothing"
        );

        let moved = directory.path().join("moved");
        // Each move runs on what the one before it left.
        let moves = [
            (&source, &moved, None, "to a new path"),
            (
                &moved,
                &existing,
                Some(true),
                "onto an existing file with overwrite",
            ),
        ];
        for (from, to, overwrite, what) in moves {
            assert_eq!(
                rename(rename_params(from, to, overwrite)).await?,
                FsRenameResponse {},
                "{what}"
            );
            assert_eq!(
                (from.exists(), fs::read(to)?),
                (false, b"source".to_vec()),
                "{what}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn rename_errors_name_the_path_at_fault() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let missing = directory.path().join("missing");
        let anywhere = directory.path().join("anywhere");
        let no_parent = directory.path().join("no/parent");
        let full = directory.path().join("full");
        fs::create_dir(&full)?;
        fs::write(full.join("inside"), b"")?;
        let other = directory.path().join("other");
        fs::create_dir(&other)?;
        let mut cases: Vec<(FsRenameParams, &str, ErrorSummary)> = vec![
            (
                rename_params(&missing, &anywhere, None),
                "a missing source",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
            (
                rename_params(&missing, &anywhere, Some(true)),
                "a missing source with overwrite",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
            (
                rename_params(&missing, &file, None),
                "a missing source wins over an existing destination",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
            (
                rename_params(&file, &no_parent, None),
                "a missing destination parent",
                fs_summary(ErrorKind::NotFound, &no_parent),
            ),
            (
                rename_params(&other, &full, Some(true)),
                "a non-empty directory destination",
                fs_summary(ErrorKind::DirectoryNotEmpty, &full),
            ),
            (
                rename_params(&file, &other, Some(true)),
                "a file onto a directory",
                fs_summary(ErrorKind::IsADirectory, &other),
            ),
            (
                rename_params(&other, &file, Some(true)),
                "a directory onto a file",
                fs_summary(ErrorKind::NotADirectory, &file),
            ),
            (
                rename_params(&other, &other.join("child"), None),
                "a directory into itself",
                fs_summary(ErrorKind::InvalidPath, &other.join("child")),
            ),
            (
                FsRenameParams {
                    destination_path: AbsolutePath("x".into()),
                    ..rename_params(&file, &other, None)
                },
                "a relative destination",
                invalid_path_summary("x"),
            ),
        ];
        let locked = directory.path().join("locked");
        let provoke_permission_denied = !is_root();
        if provoke_permission_denied {
            fs::create_dir(&locked)?;
            let inside = locked.join("file");
            fs::write(&inside, b"")?;
            fs::set_permissions(&locked, Permissions::from_mode(0o555))?;
            cases.push((
                rename_params(&inside, &directory.path().join("out"), None),
                "a source in a read-only directory",
                fs_summary(ErrorKind::PermissionDenied, &inside),
            ));
            cases.push((
                rename_params(&file, &locked.join("in"), None),
                "a destination in a read-only directory",
                fs_summary(ErrorKind::PermissionDenied, &locked.join("in")),
            ));
        }
        for (params, what, expected) in cases {
            assert_eq!(outcome(rename(params).await), Err(expected), "{what}");
        }
        if provoke_permission_denied {
            fs::set_permissions(&locked, Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    /// The checked fallback that platforms without `RENAME_NOREPLACE` use.
    #[test]
    fn rename_if_absent_refuses_an_existing_destination() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("source");
        let destination = directory.path().join("destination");
        fs::write(&source, b"source")?;
        fs::write(&destination, b"destination")?;
        let missing = directory.path().join("missing");
        let refused = [
            (
                &source,
                io::ErrorKind::AlreadyExists,
                "an existing destination",
            ),
            (&missing, io::ErrorKind::NotFound, "a missing source"),
        ];
        for (from, kind, what) in refused {
            assert_eq!(
                rename_if_absent(from, &destination).map_err(|error| error.kind()),
                Err(kind),
                "{what}"
            );
        }
        fs::remove_file(&destination)?;
        rename_if_absent(&source, &destination)?;
        assert_eq!(
            (source.exists(), fs::read(&destination)?),
            (false, b"source".to_vec())
        );
        Ok(())
    }
}
