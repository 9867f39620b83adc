//! The `fs/*` methods: read, write, list, inspect, remove, copy and rename
//! paths on the server's machine (protocol.md, "Filesystem").
//!
//! Each handler checks its paths first (absolute, no NUL byte), then does all
//! of its filesystem work in one `spawn_blocking` task, so the runtime's
//! worker threads never wait on a disk and a multi-step operation (copy a
//! tree, check then rename) runs as one unit. An OS error becomes
//! [`ServerError::Fs`] naming the path the OS complained about, which gives
//! the client `data.kind` and `data.path`.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use exec_protocol::{
    AbsolutePath, DirectoryEntry, FsCopyParams, FsCopyResponse, FsCreateDirectoryParams,
    FsCreateDirectoryResponse, FsGetMetadataParams, FsGetMetadataResponse, FsReadDirectoryParams,
    FsReadDirectoryResponse, FsReadFileParams, FsReadFileResponse, FsRemoveParams,
    FsRemoveResponse, FsRenameParams, FsRenameResponse, FsWriteFileParams, FsWriteFileResponse,
};
use nix::errno::Errno;

use crate::error::{ServerError, require_absolute};

/// The most bytes one fs/readFile returns (16 MiB), so a response stays under the message limit; larger files are read in pages with `offset`.
pub const MAX_READ_BYTES: u64 = 16 * 1024 * 1024;

/// The largest `mode` fs/writeFile accepts: the permission bits plus
/// set-user-ID, set-group-ID and sticky (`0o7777`). The schema says the same
/// (`maximum: 4095`), but the generated type is a plain `u32`, so the check
/// lives here.
const MAX_MODE: u32 = 0o7777;

/// How often fs/writeFile with an explicit `mode` retries when the file
/// appears or disappears between its "create new" and "open existing"
/// attempts; only a path that another process keeps flipping needs more.
const WRITE_OPEN_ATTEMPTS: usize = 3;

/// `fs/readFile`: reads up to `maxBytes` bytes (default and cap
/// [`MAX_READ_BYTES`]) from byte `offset` (default 0) of a file.
///
/// Returns the bytes, the file's total size in bytes and whether the read
/// reached the end of the file (learned by asking for one byte more than the
/// page, so it is right for files whose size `stat` does not know, like those
/// in `/proc`). An offset past the end gives no bytes and `eof: true`.
///
/// # Errors
/// `invalidPath` for a relative path; `isADirectory` for a directory;
/// `notFound`, `permissionDenied`, `notADirectory` or `io` from the OS.
pub async fn read_file(params: FsReadFileParams) -> Result<FsReadFileResponse, ServerError> {
    let path = absolute(&params.path)?;
    let offset = params.offset.unwrap_or(0);
    let max_bytes = params
        .max_bytes
        .map_or(MAX_READ_BYTES, |max_bytes| max_bytes.min(MAX_READ_BYTES));
    run_blocking(move || read_file_blocking(&path, offset, max_bytes)).await
}

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
/// Invalid params (-32602, no `data.kind`) for a `mode` above `0o7777`;
/// `invalidPath` for a relative path; `notFound` for a missing parent without
/// `createParents`; `isADirectory`, `notADirectory`, `permissionDenied`,
/// `alreadyExists` (a parent to create is a file) or `io` from the OS.
pub async fn write_file(params: FsWriteFileParams) -> Result<FsWriteFileResponse, ServerError> {
    let path = absolute(&params.path)?;
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
    run_blocking(move || write_file_blocking(&path, &data, append, create_parents, mode)).await
}

/// `fs/createDirectory`: creates a directory; with `recursive`, also its
/// missing parents, and succeeds when it already is a directory (like
/// `mkdir -p`).
///
/// # Errors
/// `invalidPath` for a relative path; `alreadyExists` when the path exists
/// (without `recursive`) or is not a directory (with it); `notFound` for a
/// missing parent without `recursive`; `notADirectory`, `permissionDenied`
/// or `io` from the OS.
pub async fn create_directory(
    params: FsCreateDirectoryParams,
) -> Result<FsCreateDirectoryResponse, ServerError> {
    let path = absolute(&params.path)?;
    let recursive = params.recursive.unwrap_or(false);
    run_blocking(move || {
        let result = if recursive {
            fs::create_dir_all(&path)
        } else {
            fs::create_dir(&path)
        };
        result.map_err(|error| fs_error(&path, error))?;
        Ok(FsCreateDirectoryResponse {})
    })
    .await
}

/// `fs/getMetadata`: describes a path: its type, size in bytes, `st_mode`,
/// and birth and modification times in milliseconds since the Unix epoch.
///
/// `followSymlinks` (default true) describes a symlink's target; with false
/// the link itself, and only then can `isSymlink` be true. `createdAtMs` is
/// null where the platform or filesystem has no birth time (on Linux it comes
/// from `statx`).
///
/// # Errors
/// `invalidPath` for a relative path; `notFound` (also for a dangling link
/// when following), `permissionDenied`, `notADirectory` or `io` from the OS.
pub async fn get_metadata(
    params: FsGetMetadataParams,
) -> Result<FsGetMetadataResponse, ServerError> {
    let path = absolute(&params.path)?;
    let follow_symlinks = params.follow_symlinks.unwrap_or(true);
    run_blocking(move || {
        let metadata = if follow_symlinks {
            fs::metadata(&path)
        } else {
            fs::symlink_metadata(&path)
        }
        .map_err(|error| fs_error(&path, error))?;
        Ok(FsGetMetadataResponse {
            created_at_ms: metadata.created().ok().and_then(unix_milliseconds),
            is_directory: metadata.is_dir(),
            is_file: metadata.is_file(),
            is_symlink: metadata.file_type().is_symlink(),
            mode: metadata.mode(),
            modified_at_ms: metadata.modified().ok().and_then(unix_milliseconds),
            size: metadata.len(),
        })
    })
    .await
}

/// `fs/readDirectory`: lists a directory's entries without `.` and `..`,
/// sorted by `fileName` in byte order, each typed without following symlinks.
///
/// A name that is not valid UTF-8 is sent with U+FFFD in place of the bad
/// bytes, because `fileName` is a JSON string. An entry removed while the
/// listing runs is left out.
///
/// # Errors
/// `invalidPath` for a relative path; `notADirectory` for a file; `notFound`,
/// `permissionDenied` or `io` from the OS.
pub async fn read_directory(
    params: FsReadDirectoryParams,
) -> Result<FsReadDirectoryResponse, ServerError> {
    let path = absolute(&params.path)?;
    run_blocking(move || read_directory_blocking(&path)).await
}

/// `fs/remove`: removes a file, a symlink (never what it points to) or an
/// empty directory; with `recursive`, a directory and everything in it.
///
/// With `force`, a missing path is not an error.
///
/// # Errors
/// `invalidPath` for a relative path; `directoryNotEmpty` for a non-empty
/// directory without `recursive`; `notFound` without `force`;
/// `permissionDenied`, `notADirectory` or `io` from the OS. A failure inside a
/// recursive removal names the top path, since the OS call that walks the
/// tree does not say which entry failed.
pub async fn remove(params: FsRemoveParams) -> Result<FsRemoveResponse, ServerError> {
    let path = absolute(&params.path)?;
    let recursive = params.recursive.unwrap_or(false);
    let force = params.force.unwrap_or(false);
    run_blocking(move || remove_blocking(&path, recursive, force)).await
}

/// `fs/copy`: copies a file to `destinationPath`, replacing an existing file
/// there (like `cp`), or with `recursive` a directory tree.
///
/// A symlink named as the source is followed. In a tree, files and
/// directories are copied with their permission bits, and symlinks are
/// recreated as symlinks with the same target (like `cp -R`). A directory is
/// copied to a new path: its destination must not exist yet, so two trees
/// are never merged by accident.
///
/// # Errors
/// `invalidPath` for a relative path; `isADirectory` (naming the source) for
/// a directory without `recursive`; invalid params (-32602, no `data.kind`)
/// for copying a directory into itself, a file onto itself, or a source that
/// is neither a regular file, a directory nor a symlink (a FIFO, socket or
/// device); otherwise the OS error naming the path it concerns: `notFound`
/// for a missing source or destination parent, `alreadyExists` for an
/// existing directory destination, `isADirectory` for a file copied onto a
/// directory, `permissionDenied`, `notADirectory` or `io`.
pub async fn copy(params: FsCopyParams) -> Result<FsCopyResponse, ServerError> {
    let source = absolute(&params.source_path)?;
    let destination = absolute(&params.destination_path)?;
    let recursive = params.recursive.unwrap_or(false);
    run_blocking(move || copy_blocking(&source, &destination, recursive)).await
}

/// `fs/rename`: moves a path within one filesystem (`rename(2)`).
///
/// Without `overwrite` (the default) an existing destination is an error; on
/// Linux with glibc the kernel checks that atomically (`renameat2` with
/// `RENAME_NOREPLACE`), elsewhere and on filesystems without that flag the
/// server checks first, which a concurrent writer can race. With `overwrite`
/// the destination is replaced as `rename(2)` does (a directory only by a
/// directory, and only when empty).
///
/// # Errors
/// `invalidPath` for a relative path; `alreadyExists` (naming the
/// destination) when it exists without `overwrite`; invalid params (-32602,
/// no `data.kind`) for moving a directory into itself; otherwise the OS error
/// naming the path it concerns: `notFound` for a missing source (the source)
/// or destination parent (the destination), `directoryNotEmpty`,
/// `isADirectory`, `notADirectory`, `permissionDenied`, or `io` (also when
/// the paths are on different filesystems).
pub async fn rename(params: FsRenameParams) -> Result<FsRenameResponse, ServerError> {
    let source = absolute(&params.source_path)?;
    let destination = absolute(&params.destination_path)?;
    let overwrite = params.overwrite.unwrap_or(false);
    run_blocking(move || rename_blocking(&source, &destination, overwrite)).await
}

/// Checks a path from the client and makes it owned, so it can move into a
/// blocking task.
fn absolute(path: &AbsolutePath) -> Result<PathBuf, ServerError> {
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

/// Runs filesystem work on tokio's blocking pool, so that a slow disk never
/// stalls the tasks serving connections.
async fn run_blocking<T, F>(work: F) -> Result<T, ServerError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ServerError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServerError::Internal(format!("the filesystem task failed: {error}")))?
}

/// Wraps an OS error about `path`, so the client sees which path failed.
fn fs_error(path: &Path, error: io::Error) -> ServerError {
    ServerError::fs(path.display().to_string(), error)
}

/// Converts a timestamp to whole milliseconds since the Unix epoch, rounded
/// down (so 1.5 ms before the epoch is -2); `None` when it does not fit an
/// `i64`.
fn unix_milliseconds(time: SystemTime) -> Option<i64> {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).ok(),
        Err(before) => {
            let before = before.duration();
            let partial_millisecond = before.subsec_nanos() % 1_000_000 != 0;
            let millis = i64::try_from(before.as_millis()).ok()?;
            millis
                .checked_add(i64::from(partial_millisecond))
                .map(|millis| -millis)
        }
    }
}

/// Opens a file for reading without blocking on a FIFO that has no writer:
/// `O_NONBLOCK` makes such an open return at once (a regular file ignores the
/// flag), so a client naming a FIFO cannot pin a blocking thread forever.
fn open_for_reading(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
}

fn read_file_blocking(
    path: &Path,
    offset: u64,
    max_bytes: u64,
) -> Result<FsReadFileResponse, ServerError> {
    let fail = |error: io::Error| fs_error(path, error);
    let mut file = open_for_reading(path).map_err(fail)?;
    let metadata = file.metadata().map_err(fail)?;
    // Linux lets a directory be opened for reading and fails only at read(2);
    // checking the open file says so plainly and without a race.
    if metadata.is_dir() {
        return Err(fail(Errno::EISDIR.into()));
    }
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
    let mut file = open_for_writing(path, append, mode).map_err(|error| fs_error(path, error))?;
    file.write_all(data)
        .map_err(|error| fs_error(path, error))?;
    Ok(FsWriteFileResponse {})
}

/// Opens `path` for writing, creating it if missing. With `mode`, a file this
/// call creates gets exactly those permission bits; an existing file keeps
/// its own.
fn open_for_writing(path: &Path, append: bool, mode: Option<u32>) -> io::Result<File> {
    let mut existing = OpenOptions::new();
    existing.write(true);
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
        entries.push(DirectoryEntry {
            file_name: entry.file_name().to_string_lossy().into_owned(),
            is_directory: file_type.is_dir(),
            is_file: file_type.is_file(),
            is_symlink: file_type.is_symlink(),
        });
    }
    // `String`'s order is byte order; a stable sort keeps two names that
    // became equal through lossy conversion in the order the OS gave them.
    entries.sort_by(|left, right| left.file_name.cmp(&right.file_name));
    Ok(FsReadDirectoryResponse { entries })
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
    let mut reader = open_for_reading(source).map_err(|error| fs_error(source, error))?;
    let permissions = source_metadata.permissions();
    let mut writer = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(permissions.mode() & MAX_MODE)
        .open(destination)
        .map_err(|error| fs_error(destination, error))?;
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
    use std::os::unix::fs::symlink;
    use std::time::Duration;

    use exec_protocol::{Base64Bytes, ErrorKind};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::error::INVALID_PARAMS;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    /// What a client learns from an error besides the message: the code,
    /// `data.kind` and `data.path`.
    fn summary(error: &ServerError) -> (i32, Option<ErrorKind>, Option<String>) {
        let object = error.to_error_object();
        (
            object.code,
            error.kind(),
            object.data.and_then(|data| data.path),
        )
    }

    /// The summary of a filesystem error about `path` with the given kind.
    fn fs_summary(kind: ErrorKind, path: &Path) -> (i32, Option<ErrorKind>, Option<String>) {
        (INVALID_PARAMS, Some(kind), Some(path.display().to_string()))
    }

    /// Whether the tests run with the power to ignore permission bits (root,
    /// or `CAP_DAC_OVERRIDE`), where EACCES cannot be provoked with `chmod`.
    /// It is probed rather than read from the euid, since a capability
    /// matters and not the uid (and nix's `geteuid` needs its `user` feature).
    fn is_root() -> bool {
        let probe = || -> io::Result<bool> {
            let directory = tempfile::tempdir()?;
            let locked = directory.path().join("locked");
            File::create(&locked)?.set_permissions(Permissions::from_mode(0o000))?;
            Ok(File::open(&locked).is_ok())
        };
        probe().unwrap_or(true)
    }

    fn absolute_path(path: &Path) -> AbsolutePath {
        AbsolutePath(path.display().to_string())
    }

    fn read_params(path: &Path, offset: Option<u64>, max_bytes: Option<u64>) -> FsReadFileParams {
        FsReadFileParams {
            max_bytes,
            offset,
            path: absolute_path(path),
        }
    }

    fn write_params(path: &Path, data: &[u8]) -> FsWriteFileParams {
        FsWriteFileParams {
            append: None,
            create_parents: None,
            data_base64: Base64Bytes::from(data),
            mode: None,
            path: absolute_path(path),
        }
    }

    fn metadata_params(path: &Path, follow_symlinks: Option<bool>) -> FsGetMetadataParams {
        FsGetMetadataParams {
            follow_symlinks,
            path: absolute_path(path),
        }
    }

    fn remove_params(path: &Path, recursive: bool, force: bool) -> FsRemoveParams {
        FsRemoveParams {
            force: Some(force),
            path: absolute_path(path),
            recursive: Some(recursive),
        }
    }

    fn copy_params(source: &Path, destination: &Path, recursive: bool) -> FsCopyParams {
        FsCopyParams {
            destination_path: absolute_path(destination),
            recursive: Some(recursive),
            source_path: absolute_path(source),
        }
    }

    fn rename_params(source: &Path, destination: &Path, overwrite: Option<bool>) -> FsRenameParams {
        FsRenameParams {
            destination_path: absolute_path(destination),
            overwrite,
            source_path: absolute_path(source),
        }
    }

    fn permission_bits(path: &Path) -> io::Result<u32> {
        Ok(fs::symlink_metadata(path)?.mode() & 0o7777)
    }

    async fn listing(path: &Path) -> Result<FsReadDirectoryResponse, ServerError> {
        read_directory(FsReadDirectoryParams {
            path: absolute_path(path),
        })
        .await
    }

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
        let path = directory.path().join("digits");
        fs::write(&path, b"0123456789")?;
        let cases: [(Option<u64>, Option<u64>, FsReadFileResponse); 7] = [
            (None, Some(4), page(b"0123", false, 10)),
            (Some(4), Some(4), page(b"4567", false, 10)),
            (Some(8), Some(4), page(b"89", true, 10)),
            // A page that ends exactly at the end of the file knows it.
            (Some(6), Some(4), page(b"6789", true, 10)),
            (Some(3), None, page(b"3456789", true, 10)),
            (Some(20), Some(4), page(b"", true, 10)),
            (Some(2), Some(0), page(b"", false, 10)),
        ];
        for (offset, max_bytes, expected) in cases {
            assert_eq!(
                read_file(read_params(&path, offset, max_bytes)).await?,
                expected,
                "offset {offset:?}, maxBytes {max_bytes:?}"
            );
        }
        let empty = directory.path().join("empty");
        fs::write(&empty, b"")?;
        assert_eq!(
            read_file(read_params(&empty, None, Some(0))).await?,
            page(b"", true, 0)
        );
        Ok(())
    }

    #[tokio::test]
    async fn read_file_caps_a_page_at_max_read_bytes() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("big");
        let size = MAX_READ_BYTES + 10;
        File::create(&path)?.set_len(size)?;
        let response = read_file(read_params(&path, None, Some(u64::MAX))).await?;
        assert_eq!(
            (
                response.data_base64.len() as u64,
                response.eof,
                response.size
            ),
            (MAX_READ_BYTES, false, size)
        );
        let rest = read_file(read_params(&path, Some(MAX_READ_BYTES), None)).await?;
        assert_eq!(rest, page(&[0; 10], true, size));
        Ok(())
    }

    #[tokio::test]
    async fn read_file_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("missing");
        let error = read_file(read_params(&missing, None, None))
            .await
            .expect_err("a missing file");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &missing));

        let error = read_file(read_params(directory.path(), None, None))
            .await
            .expect_err("a directory");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::IsADirectory, directory.path())
        );

        let file = directory.path().join("file");
        fs::write(&file, b"x")?;
        let below_file = file.join("child");
        let error = read_file(read_params(&below_file, None, None))
            .await
            .expect_err("a path below a file");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::NotADirectory, &below_file)
        );

        let relative = FsReadFileParams {
            max_bytes: None,
            offset: None,
            path: AbsolutePath("relative/path".into()),
        };
        let error = read_file(relative).await.expect_err("a relative path");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("relative/path".to_owned())
            )
        );

        let with_nul = FsReadFileParams {
            max_bytes: None,
            offset: None,
            path: AbsolutePath("/tmp/a\0b".into()),
        };
        let error = read_file(with_nul)
            .await
            .expect_err("a path with a NUL byte");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("/tmp/a\0b".to_owned())
            )
        );

        // Root bypasses permission bits, so EACCES cannot be provoked this way
        // when the tests run as root (as in many containers).
        if !is_root() {
            fs::set_permissions(&file, Permissions::from_mode(0o000))?;
            let error = read_file(read_params(&file, None, None))
                .await
                .expect_err("an unreadable file");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, &file)
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn read_file_does_not_hang_on_a_fifo_without_writer() -> TestResult {
        let directory = tempfile::tempdir()?;
        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            read_file(read_params(&fifo, None, None)),
        )
        .await??;
        assert_eq!(response, page(b"", true, 0));
        Ok(())
    }

    #[tokio::test]
    async fn write_file_creates_truncates_and_appends() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("file.txt");
        assert_eq!(
            write_file(write_params(&path, b"first version")).await?,
            FsWriteFileResponse {}
        );
        assert_eq!(fs::read(&path)?, b"first version");

        write_file(write_params(&path, b"second")).await?;
        assert_eq!(fs::read(&path)?, b"second");

        write_file(FsWriteFileParams {
            append: Some(true),
            ..write_params(&path, b" and more")
        })
        .await?;
        assert_eq!(fs::read(&path)?, b"second and more");

        let appended_new = directory.path().join("appended-new");
        write_file(FsWriteFileParams {
            append: Some(true),
            ..write_params(&appended_new, b"new")
        })
        .await?;
        assert_eq!(fs::read(&appended_new)?, b"new");
        Ok(())
    }

    #[tokio::test]
    async fn write_file_creates_parents_only_when_asked() -> TestResult {
        let directory = tempfile::tempdir()?;
        let nested = directory.path().join("a/b/c.txt");
        let error = write_file(write_params(&nested, b"x"))
            .await
            .expect_err("a missing parent");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &nested));

        write_file(FsWriteFileParams {
            create_parents: Some(true),
            ..write_params(&nested, b"x")
        })
        .await?;
        assert_eq!(fs::read(&nested)?, b"x");

        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let below_file = file.join("child/data");
        let error = write_file(FsWriteFileParams {
            create_parents: Some(true),
            ..write_params(&below_file, b"x")
        })
        .await
        .expect_err("a parent below a file");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::NotADirectory, &file.join("child"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn write_file_applies_mode_to_new_files_only() -> TestResult {
        let directory = tempfile::tempdir()?;
        let private = directory.path().join("private");
        write_file(FsWriteFileParams {
            mode: Some(0o640),
            ..write_params(&private, b"x")
        })
        .await?;
        assert_eq!(permission_bits(&private)?, 0o640);

        // Bits the umask (usually 0o022) would clear are kept: the client
        // asked for them.
        let open = directory.path().join("open");
        write_file(FsWriteFileParams {
            mode: Some(0o777),
            ..write_params(&open, b"x")
        })
        .await?;
        assert_eq!(permission_bits(&open)?, 0o777);

        // An existing file keeps its bits and gets the new contents.
        write_file(FsWriteFileParams {
            mode: Some(0o600),
            ..write_params(&open, b"y")
        })
        .await?;
        assert_eq!(
            (permission_bits(&open)?, fs::read(&open)?),
            (0o777, b"y".to_vec())
        );

        // Without a mode, a new file gets what any other file created by this
        // process gets: 0o666 less the umask.
        let default = directory.path().join("default");
        let reference = directory.path().join("reference");
        write_file(write_params(&default, b"x")).await?;
        File::create(&reference)?;
        assert_eq!(permission_bits(&default)?, permission_bits(&reference)?);

        let too_large = directory.path().join("too-large");
        let error = write_file(FsWriteFileParams {
            mode: Some(0o10000),
            ..write_params(&too_large, b"x")
        })
        .await
        .expect_err("a mode above 0o7777");
        assert_eq!(summary(&error), (INVALID_PARAMS, None, None));
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
        let error = write_file(write_params(directory.path(), b"x"))
            .await
            .expect_err("a directory");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::IsADirectory, directory.path())
        );

        let error = write_file(FsWriteFileParams {
            path: AbsolutePath("file".into()),
            ..write_params(directory.path(), b"x")
        })
        .await
        .expect_err("a relative path");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("file".to_owned())
            )
        );

        if !is_root() {
            let read_only = directory.path().join("read-only");
            fs::create_dir(&read_only)?;
            fs::set_permissions(&read_only, Permissions::from_mode(0o555))?;
            let inside = read_only.join("file");
            let error = write_file(write_params(&inside, b"x"))
                .await
                .expect_err("a read-only directory");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, &inside)
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn create_directory_plain_and_recursive() -> TestResult {
        let directory = tempfile::tempdir()?;
        let single = directory.path().join("single");
        let params = |path: &Path, recursive| FsCreateDirectoryParams {
            path: absolute_path(path),
            recursive,
        };
        assert_eq!(
            create_directory(params(&single, None)).await?,
            FsCreateDirectoryResponse {}
        );
        assert!(single.is_dir());

        let error = create_directory(params(&single, Some(false)))
            .await
            .expect_err("an existing directory");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::AlreadyExists, &single)
        );

        let nested = directory.path().join("a/b/c");
        let error = create_directory(params(&nested, None))
            .await
            .expect_err("a missing parent");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &nested));

        create_directory(params(&nested, Some(true))).await?;
        assert!(nested.is_dir());
        // Like `mkdir -p`, an existing directory is fine.
        create_directory(params(&nested, Some(true))).await?;

        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let error = create_directory(params(&file, Some(true)))
            .await
            .expect_err("an existing file");
        assert_eq!(summary(&error), fs_summary(ErrorKind::AlreadyExists, &file));

        let below_file = file.join("child");
        let error = create_directory(params(&below_file, Some(true)))
            .await
            .expect_err("a parent that is a file");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::NotADirectory, &below_file)
        );

        let error = create_directory(FsCreateDirectoryParams {
            path: AbsolutePath("".into()),
            recursive: None,
        })
        .await
        .expect_err("an empty path");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some(String::new())
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn get_metadata_of_a_file() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("file");
        fs::write(&path, b"12345")?;
        fs::set_permissions(&path, Permissions::from_mode(0o640))?;
        let modified = UNIX_EPOCH + Duration::from_millis(1_234_567_890_123);
        File::options()
            .write(true)
            .open(&path)?
            .set_modified(modified)?;

        let response = get_metadata(metadata_params(&path, None)).await?;
        // The birth time is whatever the filesystem recorded (or nothing), so
        // it is checked for plausibility and then taken as is.
        let now_ms = unix_milliseconds(SystemTime::now()).ok_or("the clock is out of range")?;
        if let Some(created_at_ms) = response.created_at_ms {
            assert!(
                (now_ms - 60_000..=now_ms + 60_000).contains(&created_at_ms),
                "created {created_at_ms}, now {now_ms}"
            );
        }
        assert_eq!(
            response,
            FsGetMetadataResponse {
                created_at_ms: response.created_at_ms,
                is_directory: false,
                is_file: true,
                is_symlink: false,
                mode: 0o100640,
                modified_at_ms: Some(1_234_567_890_123),
                size: 5,
            }
        );
        Ok(())
    }

    #[tokio::test]
    async fn get_metadata_follows_symlinks_unless_told_not_to() -> TestResult {
        let directory = tempfile::tempdir()?;
        let target = directory.path().join("target");
        fs::create_dir(&target)?;
        let link = directory.path().join("link");
        symlink(&target, &link)?;

        let followed = get_metadata(metadata_params(&link, None)).await?;
        assert_eq!(
            (
                followed.is_directory,
                followed.is_file,
                followed.is_symlink,
                followed.mode & 0o170000
            ),
            (true, false, false, 0o040000)
        );
        let not_followed = get_metadata(metadata_params(&link, Some(false))).await?;
        assert_eq!(
            (
                not_followed.is_directory,
                not_followed.is_file,
                not_followed.is_symlink,
                not_followed.mode & 0o170000
            ),
            (false, false, true, 0o120000)
        );
        assert_eq!(
            not_followed.size,
            target.as_os_str().len() as u64,
            "a link's size is its target's length"
        );

        let dangling = directory.path().join("dangling");
        symlink(directory.path().join("nowhere"), &dangling)?;
        let error = get_metadata(metadata_params(&dangling, Some(true)))
            .await
            .expect_err("a dangling link");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &dangling));
        assert!(
            get_metadata(metadata_params(&dangling, Some(false)))
                .await?
                .is_symlink
        );
        Ok(())
    }

    #[tokio::test]
    async fn get_metadata_rounds_times_before_the_epoch_down() -> TestResult {
        let directory = tempfile::tempdir()?;
        let path = directory.path().join("old");
        fs::write(&path, b"")?;
        let before_epoch = UNIX_EPOCH - Duration::from_nanos(1_500_500_000);
        File::options()
            .write(true)
            .open(&path)?
            .set_modified(before_epoch)?;
        assert_eq!(
            get_metadata(metadata_params(&path, None))
                .await?
                .modified_at_ms,
            Some(-1_501)
        );
        assert_eq!(
            unix_milliseconds(UNIX_EPOCH - Duration::from_millis(2)),
            Some(-2)
        );
        Ok(())
    }

    #[tokio::test]
    async fn get_metadata_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let missing = directory.path().join("missing");
        let error = get_metadata(metadata_params(&missing, None))
            .await
            .expect_err("a missing path");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &missing));
        let error = get_metadata(FsGetMetadataParams {
            follow_symlinks: None,
            path: AbsolutePath("./x".into()),
        })
        .await
        .expect_err("a relative path");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("./x".to_owned())
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn read_directory_lists_sorted_entries_without_following_links() -> TestResult {
        let directory = tempfile::tempdir()?;
        fs::write(directory.path().join("b.txt"), b"")?;
        fs::create_dir(directory.path().join("a-dir"))?;
        fs::write(directory.path().join("Z-upper"), b"")?;
        symlink(
            directory.path().join("a-dir"),
            directory.path().join("link-to-dir"),
        )?;

        let response = read_directory(FsReadDirectoryParams {
            path: absolute_path(directory.path()),
        })
        .await?;
        let entry = |file_name: &str, is_directory, is_file, is_symlink| DirectoryEntry {
            file_name: file_name.to_owned(),
            is_directory,
            is_file,
            is_symlink,
        };
        assert_eq!(
            response,
            FsReadDirectoryResponse {
                entries: vec![
                    // Byte order: uppercase sorts before lowercase.
                    entry("Z-upper", false, true, false),
                    entry("a-dir", true, false, false),
                    entry("b.txt", false, true, false),
                    entry("link-to-dir", false, false, true),
                ]
            }
        );

        let empty = directory.path().join("a-dir");
        assert_eq!(
            read_directory(FsReadDirectoryParams {
                path: absolute_path(&empty)
            })
            .await?,
            FsReadDirectoryResponse { entries: vec![] }
        );
        Ok(())
    }

    #[tokio::test]
    async fn read_directory_errors() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let error = read_directory(FsReadDirectoryParams {
            path: absolute_path(&file),
        })
        .await
        .expect_err("a file");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotADirectory, &file));

        let missing = directory.path().join("missing");
        let error = read_directory(FsReadDirectoryParams {
            path: absolute_path(&missing),
        })
        .await
        .expect_err("a missing path");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &missing));

        if !is_root() {
            let closed = directory.path().join("closed");
            fs::create_dir(&closed)?;
            fs::set_permissions(&closed, Permissions::from_mode(0o000))?;
            let error = read_directory(FsReadDirectoryParams {
                path: absolute_path(&closed),
            })
            .await
            .expect_err("an unreadable directory");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, &closed)
            );
            fs::set_permissions(&closed, Permissions::from_mode(0o700))?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn remove_files_links_and_directories() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        assert_eq!(
            remove(remove_params(&file, false, false)).await?,
            FsRemoveResponse {}
        );
        assert!(!file.exists());

        // Removing a link to a directory removes the link, not the directory
        // or its contents, even with `recursive`.
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

        let empty = directory.path().join("empty");
        fs::create_dir(&empty)?;
        remove(remove_params(&empty, false, false)).await?;
        assert!(!empty.exists());

        let error = remove(remove_params(&target, false, false))
            .await
            .expect_err("a non-empty directory");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::DirectoryNotEmpty, &target)
        );

        fs::create_dir_all(target.join("deep/deeper"))?;
        fs::write(target.join("deep/deeper/file"), b"")?;
        remove(remove_params(&target, true, false)).await?;
        assert!(!target.exists());

        let error = remove(remove_params(&target, false, false))
            .await
            .expect_err("a missing path");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &target));
        remove(remove_params(&target, true, true)).await?;

        let error = remove(FsRemoveParams {
            force: Some(true),
            path: AbsolutePath("gone".into()),
            recursive: None,
        })
        .await
        .expect_err("a relative path, even with force");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("gone".to_owned())
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn remove_reports_permission_denied() -> TestResult {
        // procfs refuses to unlink its files with EPERM even for root, which
        // makes this the one permission error the tests can provoke as root.
        let proc_file = Path::new("/proc/self/status");
        if proc_file.exists() {
            let error = remove(remove_params(proc_file, false, false))
                .await
                .expect_err("a procfs file");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, proc_file)
            );
        }
        if !is_root() {
            let directory = tempfile::tempdir()?;
            let locked = directory.path().join("locked");
            fs::create_dir(&locked)?;
            let file = locked.join("file");
            fs::write(&file, b"")?;
            fs::set_permissions(&locked, Permissions::from_mode(0o555))?;
            let error = remove(remove_params(&file, false, false))
                .await
                .expect_err("a file in a read-only directory");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, &file)
            );
            fs::set_permissions(&locked, Permissions::from_mode(0o755))?;
        }
        Ok(())
    }

    #[tokio::test]
    async fn copy_a_file_with_its_permissions_over_an_existing_file() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("source");
        fs::write(&source, b"contents")?;
        fs::set_permissions(&source, Permissions::from_mode(0o750))?;
        let destination = directory.path().join("destination");
        fs::write(&destination, b"old and longer contents")?;

        assert_eq!(
            copy(copy_params(&source, &destination, false)).await?,
            FsCopyResponse {}
        );
        assert_eq!(
            (fs::read(&destination)?, permission_bits(&destination)?),
            (b"contents".to_vec(), 0o750)
        );

        // A symlink named as the source is followed.
        let link = directory.path().join("link");
        symlink(&source, &link)?;
        let through_link = directory.path().join("through-link");
        copy(copy_params(&link, &through_link, false)).await?;
        assert_eq!(
            (
                through_link.symlink_metadata()?.is_file(),
                fs::read(&through_link)?
            ),
            (true, b"contents".to_vec())
        );
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

        assert_eq!(fs::read(destination.join("top.txt"))?, b"top");
        assert_eq!(
            (
                fs::read(destination.join("sub/deeper/script.sh"))?,
                permission_bits(&destination.join("sub/deeper/script.sh"))?
            ),
            (b"#!/bin/sh\n".to_vec(), 0o755)
        );
        assert_eq!(
            fs::read_link(destination.join("sub/relative-link"))?,
            PathBuf::from("../top.txt")
        );
        assert_eq!(
            fs::read_link(destination.join("dangling-link"))?,
            PathBuf::from("/nonexistent/target")
        );
        assert_eq!(permission_bits(&destination.join("sub"))?, 0o555);
        assert_eq!(permission_bits(&destination)?, permission_bits(&source)?);
        assert_eq!(listing(&destination).await?, listing(&source).await?);
        assert_eq!(
            listing(&destination.join("sub")).await?,
            listing(&source.join("sub")).await?
        );

        // The copy of a directory goes to a new path; an existing one is not
        // merged into.
        let error = copy(copy_params(&source, &destination, true))
            .await
            .expect_err("an existing destination");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::AlreadyExists, &destination)
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
        let error = copy(copy_params(&source_directory, &elsewhere, false))
            .await
            .expect_err("a directory without recursive");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::IsADirectory, &source_directory)
        );

        // Through a symlink, the destination is inside the source as well.
        let alias = directory.path().join("alias");
        symlink(&source_directory, &alias)?;
        for inside in [
            source_directory.join("child"),
            source_directory.clone(),
            alias.join("child"),
        ] {
            let error = copy(copy_params(&source_directory, &inside, true))
                .await
                .expect_err("a copy into itself");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::InvalidPath, &inside),
                "into {}",
                inside.display()
            );
        }
        assert_eq!(
            fs::read_dir(&source_directory)?.count(),
            0,
            "nothing is created inside the source"
        );

        let error = copy(copy_params(&file, &file, false))
            .await
            .expect_err("a file onto itself");
        assert_eq!(summary(&error), fs_summary(ErrorKind::InvalidPath, &file));
        let hard_link = directory.path().join("hard-link");
        fs::hard_link(&file, &hard_link)?;
        let error = copy(copy_params(&file, &hard_link, false))
            .await
            .expect_err("a file onto a hard link to it");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::InvalidPath, &hard_link)
        );
        assert_eq!(fs::read(&file)?, b"contents", "the source survives");

        let missing = directory.path().join("missing");
        let error = copy(copy_params(&missing, &elsewhere, false))
            .await
            .expect_err("a missing source");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &missing));

        let no_parent = directory.path().join("no/parent");
        let error = copy(copy_params(&file, &no_parent, false))
            .await
            .expect_err("a missing destination parent");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &no_parent));

        let error = copy(copy_params(&file, &source_directory, false))
            .await
            .expect_err("a file onto a directory");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::IsADirectory, &source_directory)
        );

        let fifo = directory.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
        let error = copy(copy_params(&fifo, &elsewhere, false))
            .await
            .expect_err("a FIFO");
        assert_eq!(summary(&error), fs_summary(ErrorKind::InvalidPath, &fifo));

        let relative = FsCopyParams {
            source_path: AbsolutePath("file".into()),
            ..copy_params(&file, &elsewhere, false)
        };
        let error = copy(relative).await.expect_err("a relative source");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("file".to_owned())
            )
        );
        let relative = FsCopyParams {
            destination_path: AbsolutePath("copy".into()),
            ..copy_params(&file, &elsewhere, false)
        };
        let error = copy(relative).await.expect_err("a relative destination");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("copy".to_owned())
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn rename_moves_and_replaces_only_when_asked() -> TestResult {
        let directory = tempfile::tempdir()?;
        let source = directory.path().join("source");
        fs::write(&source, b"source")?;
        let moved = directory.path().join("moved");
        assert_eq!(
            rename(rename_params(&source, &moved, None)).await?,
            FsRenameResponse {}
        );
        assert_eq!(
            (source.exists(), fs::read(&moved)?),
            (false, b"source".to_vec())
        );

        let existing = directory.path().join("existing");
        fs::write(&existing, b"existing")?;
        let error = rename(rename_params(&moved, &existing, None))
            .await
            .expect_err("an existing destination");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::AlreadyExists, &existing)
        );
        assert_eq!(
            (fs::read(&moved)?, fs::read(&existing)?),
            (b"source".to_vec(), b"existing".to_vec())
        );

        rename(rename_params(&moved, &existing, Some(true))).await?;
        assert_eq!(
            (moved.exists(), fs::read(&existing)?),
            (false, b"source".to_vec())
        );

        // A dangling symlink counts as an existing destination.
        let dangling = directory.path().join("dangling");
        symlink(directory.path().join("nowhere"), &dangling)?;
        let error = rename(rename_params(&existing, &dangling, Some(false)))
            .await
            .expect_err("a dangling link destination");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::AlreadyExists, &dangling)
        );
        Ok(())
    }

    #[tokio::test]
    async fn rename_errors_name_the_path_at_fault() -> TestResult {
        let directory = tempfile::tempdir()?;
        let file = directory.path().join("file");
        fs::write(&file, b"")?;
        let missing = directory.path().join("missing");
        for overwrite in [None, Some(true)] {
            let error = rename(rename_params(
                &missing,
                &directory.path().join("anywhere"),
                overwrite,
            ))
            .await
            .expect_err("a missing source");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::NotFound, &missing),
                "overwrite {overwrite:?}"
            );
        }
        // A missing source wins over an existing destination.
        let error = rename(rename_params(&missing, &file, None))
            .await
            .expect_err("a missing source");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &missing));

        let no_parent = directory.path().join("no/parent");
        let error = rename(rename_params(&file, &no_parent, None))
            .await
            .expect_err("a missing destination parent");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotFound, &no_parent));

        let full = directory.path().join("full");
        fs::create_dir(&full)?;
        fs::write(full.join("inside"), b"")?;
        let other = directory.path().join("other");
        fs::create_dir(&other)?;
        let error = rename(rename_params(&other, &full, Some(true)))
            .await
            .expect_err("a non-empty directory destination");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::DirectoryNotEmpty, &full)
        );

        let error = rename(rename_params(&file, &other, Some(true)))
            .await
            .expect_err("a file onto a directory");
        assert_eq!(summary(&error), fs_summary(ErrorKind::IsADirectory, &other));

        let error = rename(rename_params(&other, &file, Some(true)))
            .await
            .expect_err("a directory onto a file");
        assert_eq!(summary(&error), fs_summary(ErrorKind::NotADirectory, &file));

        let error = rename(rename_params(&other, &other.join("child"), None))
            .await
            .expect_err("a directory into itself");
        assert_eq!(
            summary(&error),
            fs_summary(ErrorKind::InvalidPath, &other.join("child"))
        );

        let relative = FsRenameParams {
            destination_path: AbsolutePath("x".into()),
            ..rename_params(&file, &other, None)
        };
        let error = rename(relative).await.expect_err("a relative destination");
        assert_eq!(
            summary(&error),
            (
                INVALID_PARAMS,
                Some(ErrorKind::InvalidPath),
                Some("x".to_owned())
            )
        );

        if !is_root() {
            let locked = directory.path().join("locked");
            fs::create_dir(&locked)?;
            let inside = locked.join("file");
            fs::write(&inside, b"")?;
            fs::set_permissions(&locked, Permissions::from_mode(0o555))?;
            let error = rename(rename_params(&inside, &directory.path().join("out"), None))
                .await
                .expect_err("a source in a read-only directory");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, &inside)
            );
            let error = rename(rename_params(&file, &locked.join("in"), None))
                .await
                .expect_err("a destination in a read-only directory");
            assert_eq!(
                summary(&error),
                fs_summary(ErrorKind::PermissionDenied, &locked.join("in"))
            );
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
        let error = rename_if_absent(&source, &destination).expect_err("an existing destination");
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        let error = rename_if_absent(&directory.path().join("missing"), &destination)
            .expect_err("a missing source");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        fs::remove_file(&destination)?;
        rename_if_absent(&source, &destination)?;
        assert_eq!(
            (source.exists(), fs::read(&destination)?),
            (false, b"source".to_vec())
        );
        Ok(())
    }
}
