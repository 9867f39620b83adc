//! `fs/readDirectory`: a directory's entries, sorted by name.

use std::fs;
use std::io;
use std::path::Path;

use exec_protocol::{DirectoryEntry, FsReadDirectoryParams, FsReadDirectoryResponse};

use super::paths::{client_path, fs_error, named_in};
use super::run_blocking;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// `fs/readDirectory`: lists a directory's entries without `.` and `..`,
/// sorted by `fileName` in byte order. `isDirectory` and `isFile` follow
/// symlinks, as Codex's `read_directory` types its entries (`stat`), so a
/// link to a directory is a directory to a Codex client; `isSymlink` says
/// whether the entry itself is a link. A dangling link is listed with
/// neither type (Codex leaves it out; listing it loses nothing).
///
/// A name that is not valid UTF-8 is sent with U+FFFD in place of the bad
/// bytes, because `fileName` is a JSON string. An entry removed while the
/// listing runs is left out.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path; `notADirectory` for a
/// file; `notFound`,
/// `permissionDenied` or `io` from the OS.
pub async fn read_directory(
    params: FsReadDirectoryParams,
) -> Result<FsReadDirectoryResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path, form } = client_path(&params.path)?;
    let named = path.clone();
    run_blocking(&named, move || read_directory_blocking(&path))
        .await
        .map_err(|error| named_in(form, error))
}

fn read_directory_blocking(path: &Path) -> Result<FsReadDirectoryResponse, ServerError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(path).map_err(|error| fs_error(path, error))? {
        let entry = entry.map_err(|error| fs_error(path, error))?;
        // `file_type` does not follow symlinks; it only touches the disk when
        // the directory listing lacks the type, and then an entry removed
        // meanwhile is simply no longer part of the listing.
        let file_type = match entry.file_type() {
            Ok(file_type) => file_type,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(fs_error(&entry.path(), error)),
        };
        // A link is typed by what it points to; a dangling or unreadable
        // one by nothing.
        let target_type = if file_type.is_symlink() {
            fs::metadata(entry.path())
                .ok()
                .map(|metadata| metadata.file_type())
        } else {
            Some(file_type)
        };
        entries.push(DirectoryEntry {
            file_name: entry.file_name().to_string_lossy().into_owned(),
            is_directory: target_type.is_some_and(|target| target.is_dir()),
            is_file: target_type.is_some_and(|target| target.is_file()),
            is_symlink: file_type.is_symlink(),
        });
    }
    // `String`'s order is byte order; a stable sort keeps two names that
    // became equal through lossy conversion in the order the OS gave them.
    entries.sort_by(|left, right| left.file_name.cmp(&right.file_name));
    Ok(FsReadDirectoryResponse { entries })
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    use std::path::PathBuf;

    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, directory_params, fs_summary, is_root, outcome,
    };

    #[tokio::test]
    async fn read_directory_lists_sorted_entries_typed_through_links() -> TestResult {
        let directory = tempfile::tempdir()?;
        fs::write(directory.path().join("b.txt"), b"")?;
        fs::create_dir(directory.path().join("a-dir"))?;
        fs::write(directory.path().join("Z-upper"), b"")?;
        symlink(
            directory.path().join("a-dir"),
            directory.path().join("link-to-dir"),
        )?;
        symlink(
            directory.path().join("b.txt"),
            directory.path().join("link-to-file"),
        )?;
        symlink(
            directory.path().join("missing"),
            directory.path().join("link-dangling"),
        )?;

        let entry = |file_name: &str, is_directory, is_file, is_symlink| DirectoryEntry {
            file_name: file_name.to_owned(),
            is_directory,
            is_file,
            is_symlink,
        };
        let cases = [
            (
                directory.path().to_path_buf(),
                vec![
                    // Byte order: uppercase sorts before lowercase.
                    entry("Z-upper", false, true, false),
                    entry("a-dir", true, false, false),
                    entry("b.txt", false, true, false),
                    entry("link-dangling", false, false, true),
                    entry("link-to-dir", true, false, true),
                    entry("link-to-file", false, true, true),
                ],
            ),
            (directory.path().join("a-dir"), vec![]),
        ];
        for (path, entries) in cases {
            assert_eq!(
                read_directory(directory_params(&path)).await?,
                FsReadDirectoryResponse { entries },
                "{}",
                path.display()
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn read_directory_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let missing = directory.path().join("missing");
        let mut cases: Vec<(PathBuf, &str, ErrorSummary)> = vec![
            (
                file.clone(),
                "a file",
                fs_summary(ErrorKind::NotADirectory, &file),
            ),
            (
                missing.clone(),
                "a missing path",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
        ];
        let closed = directory.path().join("closed");
        let provoke_permission_denied = !is_root();
        if provoke_permission_denied {
            fs::create_dir(&closed)?;
            fs::set_permissions(&closed, Permissions::from_mode(0o000))?;
            cases.push((
                closed.clone(),
                "an unreadable directory",
                fs_summary(ErrorKind::PermissionDenied, &closed),
            ));
        }
        for (path, what, expected) in cases {
            assert_eq!(
                outcome(read_directory(directory_params(&path)).await),
                Err(expected),
                "{what}"
            );
        }
        if provoke_permission_denied {
            fs::set_permissions(&closed, Permissions::from_mode(0o700))?;
        }
        Ok(())
    }
}
