//! `fs/copy`: one file, or a directory tree copied iteratively, refusing to
//! copy a directory into itself or a file onto itself.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::Path;

use exec_protocol::{FsCopyParams, FsCopyResponse};
use nix::errno::Errno;

use super::paths::{
    NONBLOCKING_OPEN, absolute, client_path, fs_error, named_in, open_error, open_for_reading,
    refuse_special_file, regular_file,
};
use super::sandbox::refuse_unapplied;
use super::{MAX_MODE, run_blocking};
use crate::error::ServerError;
use crate::path_uri::ClientPath;

/// `fs/copy`: copies a file to `destinationPath`, replacing an existing file
/// there (like `cp`), or with `recursive` a directory tree.
///
/// A symlink named as the source is followed. In a tree, files and
/// directories are copied with their permission bits, and symlinks are
/// recreated as symlinks with the same target (like `cp -R`). A directory is
/// copied to a new path: its destination must not exist yet, so two trees
/// are never merged by accident.
///
/// Either path may be an absolute path or a `file://` URI; an error about
/// either names it in the form of `sourcePath`.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement
/// (`fs/sandbox.rs`); `invalidPath` for a relative path; `isADirectory` (naming
/// the source) for
/// a directory without `recursive`; `invalidPath` for copying a directory
/// into itself or a file onto itself, and for a source or destination that
/// is a FIFO, socket or device (no byte is read from or written to one, and
/// a destination that already is one is not even opened); otherwise the OS
/// error naming the path it concerns: `notFound` for a missing source or
/// destination parent, `alreadyExists` for an existing directory
/// destination, `isADirectory` for a file copied onto a directory,
/// `permissionDenied`, `notADirectory` or `io`; `limitExceeded` or `io` from
/// the fs pool (`run_blocking`).
pub async fn copy(params: FsCopyParams) -> Result<FsCopyResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let ClientPath { path: source, form } = client_path(&params.source_path)?;
    let destination = absolute(&params.destination_path)?;
    let recursive = params.recursive.unwrap_or(false);
    let named = source.clone();
    run_blocking(&named, move || {
        copy_blocking(&source, &destination, recursive)
    })
    .await
    .map_err(|error| named_in(form, error))
}

fn copy_blocking(
    source: &Path,
    destination: &Path,
    recursive: bool,
) -> Result<FsCopyResponse, ServerError> {
    // The source the client named is followed, as `cp` follows a symlink
    // named on its command line.
    let metadata = fs::metadata(source).map_err(|error| fs_error(source, error))?;
    if metadata.is_dir() {
        if !recursive {
            return Err(fs_error(source, Errno::EISDIR.into()));
        }
        refuse_copy_into_itself(source, destination)?;
        copy_tree(source, destination)?;
    } else if metadata.is_file() {
        refuse_copy_onto_itself(source, destination, &metadata)?;
        copy_file(source, destination, &metadata)?;
    } else {
        return Err(unsupported_file_type(source));
    }
    Ok(FsCopyResponse {})
}

/// The error for a FIFO, socket or device: copying one would read a stream
/// or a device rather than copy a file.
fn unsupported_file_type(path: &Path) -> ServerError {
    ServerError::invalid_path(
        path.display().to_string(),
        "cannot copy it: it is neither a regular file, a directory nor a symlink",
    )
}

/// Refuses a recursive copy whose destination lies inside its source, which
/// would copy the copy without end.
fn refuse_copy_into_itself(source: &Path, destination: &Path) -> Result<(), ServerError> {
    let canonical_source = fs::canonicalize(source).map_err(|error| fs_error(source, error))?;
    // The destination usually does not exist yet, so its parent is resolved
    // instead; when neither resolves, creating the destination fails anyway.
    let resolved_destination = fs::canonicalize(destination).ok().or_else(|| {
        let parent = fs::canonicalize(destination.parent()?).ok()?;
        Some(parent.join(destination.file_name()?))
    });
    match resolved_destination {
        Some(resolved) if resolved.starts_with(&canonical_source) => {
            Err(ServerError::invalid_path(
                destination.display().to_string(),
                format!(
                    "it is inside `{}`: a directory cannot be copied into itself",
                    source.display()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Refuses copying a file onto itself (the same path, a hard link or a
/// symlink to it): opening the destination would truncate the source.
fn refuse_copy_onto_itself(
    source: &Path,
    destination: &Path,
    source_metadata: &fs::Metadata,
) -> Result<(), ServerError> {
    match fs::metadata(destination) {
        Ok(destination_metadata)
            if destination_metadata.dev() == source_metadata.dev()
                && destination_metadata.ino() == source_metadata.ino() =>
        {
            Err(ServerError::invalid_path(
                destination.display().to_string(),
                format!(
                    "it is the same file as `{}`: a file cannot be copied onto itself",
                    source.display()
                ),
            ))
        }
        _ => Ok(()),
    }
}

/// Copies one regular file's bytes and permission bits, replacing the
/// destination's contents if it exists.
fn copy_file(
    source: &Path,
    destination: &Path,
    source_metadata: &fs::Metadata,
) -> Result<(), ServerError> {
    // The source was a regular file when it was looked at; opening it
    // checks again, in case it was swapped for a FIFO meanwhile.
    let (mut reader, _) = open_for_reading(source)?;
    let permissions = source_metadata.permissions();
    refuse_special_file(destination)?;
    let writer = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(NONBLOCKING_OPEN)
        .mode(permissions.mode() & MAX_MODE)
        .open(destination)
        .map_err(|error| open_error(destination, error))?;
    let (mut writer, _) = regular_file(destination, writer)?;
    // `io::copy` between files uses copy_file_range(2) on Linux (reflinks where
    // the filesystem has them). Its error does not say which side failed; it
    // is blamed on the destination, since a full disk or quota is by far the
    // likelier cause once both files are open.
    io::copy(&mut reader, &mut writer).map_err(|error| fs_error(destination, error))?;
    // The create above was masked by the umask and does not touch an existing
    // file's bits; the copy keeps the source's, like `cp -p` for the mode.
    writer
        .set_permissions(permissions)
        .map_err(|error| fs_error(destination, error))
}

/// Copies a directory tree that the caller has checked is not copied into
/// itself. The walk keeps its own stack rather than recursing, so a deep tree
/// cannot overflow the blocking thread's stack.
fn copy_tree(source: &Path, destination: &Path) -> Result<(), ServerError> {
    let mut pending = vec![(source.to_path_buf(), destination.to_path_buf())];
    // Directory permissions are applied after everything is copied, deepest
    // first, so a read-only source directory does not stop its copy from
    // being filled.
    let mut directory_permissions = Vec::new();
    while let Some((from, to)) = pending.pop() {
        let metadata = fs::metadata(&from).map_err(|error| fs_error(&from, error))?;
        // Owner-only while filling; the source's bits come at the end.
        DirBuilder::new()
            .mode(0o700)
            .create(&to)
            .map_err(|error| fs_error(&to, error))?;
        directory_permissions.push((to.clone(), metadata.permissions()));
        for entry in fs::read_dir(&from).map_err(|error| fs_error(&from, error))? {
            let entry = entry.map_err(|error| fs_error(&from, error))?;
            let entry_source = entry.path();
            let entry_destination = to.join(entry.file_name());
            // `DirEntry::metadata` does not follow symlinks, so a link inside
            // the tree is seen as a link.
            let entry_metadata = entry
                .metadata()
                .map_err(|error| fs_error(&entry_source, error))?;
            let file_type = entry_metadata.file_type();
            if file_type.is_symlink() {
                let target =
                    fs::read_link(&entry_source).map_err(|error| fs_error(&entry_source, error))?;
                std::os::unix::fs::symlink(&target, &entry_destination)
                    .map_err(|error| fs_error(&entry_destination, error))?;
            } else if file_type.is_dir() {
                pending.push((entry_source, entry_destination));
            } else if file_type.is_file() {
                copy_file(&entry_source, &entry_destination, &entry_metadata)?;
            } else {
                return Err(unsupported_file_type(&entry_source));
            }
        }
    }
    for (directory, permissions) in directory_permissions.into_iter().rev() {
        fs::set_permissions(&directory, permissions)
            .map_err(|error| fs_error(&directory, error))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::symlink;
    use std::path::PathBuf;

    use exec_protocol::{AbsolutePath, ErrorKind, FsReadDirectoryResponse};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::read_directory;
    use crate::fs::test_support::{
        ErrorSummary, TestResult, copy_params, directory_params, fs_summary, invalid_path_summary,
        outcome, permission_bits,
    };

    async fn listing(path: &Path) -> Result<FsReadDirectoryResponse, ServerError> {
        read_directory(directory_params(path)).await
    }

    #[tokio::test]
    async fn copy_a_file_with_its_permissions_over_an_existing_file() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("source");
        fs::write(&source, b"contents")?;
        fs::set_permissions(&source, Permissions::from_mode(0o750))?;
        let destination = directory.path().join("destination");
        fs::write(&destination, b"old and longer contents")?;
        let link = directory.path().join("link");
        symlink(&source, &link)?;
        let through_link = directory.path().join("through-link");

        let cases = [
            (&source, &destination, "over an existing file"),
            // A symlink named as the source is followed.
            (
                &link,
                &through_link,
                "through a symlink named as the source",
            ),
        ];
        for (from, to, what) in cases {
            assert_eq!(
                copy(copy_params(from, to, false)).await?,
                FsCopyResponse {},
                "{what}"
            );
            // (a regular file, its contents, its permission bits)
            assert_eq!(
                (
                    to.symlink_metadata()?.is_file(),
                    fs::read(to)?,
                    permission_bits(to)?
                ),
                (true, b"contents".to_vec(), 0o750),
                "{what}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn copy_a_tree_recursively() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("tree");
        fs::create_dir_all(source.join("sub/deeper"))?;
        fs::write(source.join("top.txt"), b"top")?;
        fs::write(source.join("sub/deeper/script.sh"), b"#!/bin/sh\n")?;
        fs::set_permissions(
            source.join("sub/deeper/script.sh"),
            Permissions::from_mode(0o755),
        )?;
        symlink("../top.txt", source.join("sub/relative-link"))?;
        symlink("/nonexistent/target", source.join("dangling-link"))?;
        // A read-only directory with contents: its copy must still be filled.
        fs::set_permissions(source.join("sub"), Permissions::from_mode(0o555))?;

        let destination = directory.path().join("copy");
        copy(copy_params(&source, &destination, true)).await?;

        let files: [(&str, &[u8]); 2] = [
            ("top.txt", b"top"),
            ("sub/deeper/script.sh", b"#!/bin/sh\n"),
        ];
        for (file, contents) in files {
            assert_eq!(fs::read(destination.join(file))?, contents, "{file}");
        }
        let links = [
            ("sub/relative-link", "../top.txt"),
            ("dangling-link", "/nonexistent/target"),
        ];
        for (link, target) in links {
            assert_eq!(
                fs::read_link(destination.join(link))?,
                PathBuf::from(target),
                "{link}"
            );
        }
        let permissions = [
            ("sub/deeper/script.sh", 0o755),
            ("sub", 0o555),
            ("", permission_bits(&source)?),
        ];
        for (path, bits) in permissions {
            assert_eq!(
                permission_bits(&destination.join(path))?,
                bits,
                "the bits of `{path}`"
            );
        }
        for directory in ["", "sub"] {
            assert_eq!(
                listing(&destination.join(directory)).await?,
                listing(&source.join(directory)).await?,
                "the listing of `{directory}`"
            );
        }

        // The copy of a directory goes to a new path; an existing one is not
        // merged into.
        assert_eq!(
            outcome(copy(copy_params(&source, &destination, true)).await),
            Err(fs_summary(ErrorKind::AlreadyExists, &destination)),
            "an existing destination"
        );

        // Let the temporary directory's cleanup remove the read-only copies.
        fs::set_permissions(source.join("sub"), Permissions::from_mode(0o755))?;
        fs::set_permissions(destination.join("sub"), Permissions::from_mode(0o755))?;
        Ok(())
    }

    #[tokio::test]
    async fn copy_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source_directory = directory.path().join("dir");
        fs::create_dir(&source_directory)?;
        let file = directory.path().join("file");
        fs::write(&file, b"contents")?;
        let elsewhere = directory.path().join("elsewhere");
        let alias = directory.path().join("alias");
        symlink(&source_directory, &alias)?;
        let hard_link = directory.path().join("hard-link");
        fs::hard_link(&file, &hard_link)?;
        let missing = directory.path().join("missing");
        let no_parent = directory.path().join("no/parent");
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;

        let into = |inside: &Path| {
            (
                copy_params(&source_directory, inside, true),
                "a copy into itself",
                fs_summary(ErrorKind::InvalidPath, inside),
            )
        };
        let cases: [(FsCopyParams, &str, ErrorSummary); 13] = [
            (
                copy_params(&source_directory, &elsewhere, false),
                "a directory without recursive",
                fs_summary(ErrorKind::IsADirectory, &source_directory),
            ),
            into(&source_directory.join("child")),
            into(&source_directory),
            // Through a symlink, the destination is inside the source as well.
            into(&alias.join("child")),
            (
                copy_params(&file, &file, false),
                "a file onto itself",
                fs_summary(ErrorKind::InvalidPath, &file),
            ),
            (
                copy_params(&file, &hard_link, false),
                "a file onto a hard link to it",
                fs_summary(ErrorKind::InvalidPath, &hard_link),
            ),
            (
                copy_params(&missing, &elsewhere, false),
                "a missing source",
                fs_summary(ErrorKind::NotFound, &missing),
            ),
            (
                copy_params(&file, &no_parent, false),
                "a missing destination parent",
                fs_summary(ErrorKind::NotFound, &no_parent),
            ),
            (
                copy_params(&file, &source_directory, false),
                "a file onto a directory",
                fs_summary(ErrorKind::IsADirectory, &source_directory),
            ),
            (
                copy_params(&fifo, &elsewhere, false),
                "a FIFO",
                fs_summary(ErrorKind::InvalidPath, &fifo),
            ),
            // Opening a FIFO without a reader for writing would block.
            (
                copy_params(&file, &fifo, false),
                "a file onto a FIFO",
                fs_summary(ErrorKind::InvalidPath, &fifo),
            ),
            (
                FsCopyParams {
                    source_path: AbsolutePath("file".into()),
                    ..copy_params(&file, &elsewhere, false)
                },
                "a relative source",
                invalid_path_summary("file"),
            ),
            (
                FsCopyParams {
                    destination_path: AbsolutePath("copy".into()),
                    ..copy_params(&file, &elsewhere, false)
                },
                "a relative destination",
                invalid_path_summary("copy"),
            ),
        ];
        for (params, what, expected) in cases {
            let destination = params.destination_path.clone();
            assert_eq!(
                outcome(copy(params).await),
                Err(expected),
                "{what}, to {destination}"
            );
        }
        assert_eq!(
            fs::read_dir(&source_directory)?.count(),
            0,
            "nothing is created inside the source"
        );
        assert_eq!(fs::read(&file)?, b"contents", "the source survives");
        Ok(())
    }
}
