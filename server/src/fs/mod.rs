//! The `fs/*` methods: read, write, list, inspect, remove, copy and rename
//! paths on the server's machine (protocol.md, "Filesystem").
//!
//! Each handler refuses a `sandbox` it cannot apply and reads its paths
//! first (an absolute path or a `file://` URI, see `crate::path_uri`; no NUL
//! byte), then does all
//! of its filesystem work as one job on the fs pool (a metadata lookup on
//! the reader's thread when no mount can hang it, see `local_mounts`) (`pool`: bounded threads
//! of its own, a deadline on each call), so the runtime's worker threads
//! never wait on a disk, a stuck disk never delays process control or
//! shutdown, and a multi-step operation (copy a tree, check then rename)
//! runs as one unit. An OS error becomes
//! [`ServerError::Fs`](crate::ServerError::Fs) naming the path the OS
//! complained about, in the form of the request's path (`paths::named_in`),
//! which gives the client `data.kind` and `data.path`; `notFound` comes with
//! code -32004, Codex's.
//!
//! Only regular files are read or written (fs/readFile, fs/writeFile,
//! fs/copy): a FIFO, socket or device is refused with `invalidPath`, before
//! it is opened where possible and always before any byte moves, so a FIFO
//! never blocks a call and its queued bytes are never consumed.
//!
//! # Layout
//! - `mod.rs` (this file): the methods' `pub use`, and `MAX_MODE` (the
//!   permission bits a file may be given).
//! - `pool`: `run_blocking`, the one way onto the fs pool, with its limits
//!   ([`FS_MAX_THREADS`], [`FS_QUEUE_CAPACITY`], [`FS_CALL_DEADLINE`]), and
//!   `run_metadata`, which does a metadata lookup (`fs/getMetadata`,
//!   `fs/canonicalize`) on the calling thread instead when
//!   `local_mounts` says every mount is local.
//! - `local_mounts`: whether every filesystem in the mount namespace answers
//!   lookups from memory or a local disk (no network, FUSE or automount),
//!   re-read when the kernel reports a change of the mount table.
//! - `paths`: what every operation does with a path: reading the client's
//!   path (absolute or `file://`, no NUL byte), naming the path in an OS
//!   error ([`ServerError::Fs`](crate::ServerError::Fs)) in the client's
//!   form, and opening a regular file without blocking on a FIFO or opening
//!   a device.
//! - `sandbox`: refusing Codex's `sandbox` field when it asks for
//!   confinement (`sandboxUnavailable`), as `process/start` does.
//! - `read`: `fs/readFile`, one page of a file, at most
//!   [`MAX_READ_FILE_BYTES`].
//! - `write`: the two methods that create paths: `fs/writeFile` (with `mode`
//!   applied to new files only) and `fs/createDirectory`.
//! - `metadata`: `fs/getMetadata`, with times in milliseconds since the Unix
//!   epoch.
//! - `list`: `fs/readDirectory`, entries sorted by name and typed without
//!   following symlinks.
//! - `remove`: `fs/remove`, which never follows a symlink.
//! - `copy`: `fs/copy`: one file, or an iterative tree copy, refusing to copy
//!   a directory into itself or a file onto itself.
//! - `rename`: `fs/rename`: `renameat2` with `RENAME_NOREPLACE`, its checked
//!   fallback, and which of the two paths an error names.
//! - `canonicalize`: `fs/canonicalize`, realpath(3) answered in the
//!   request's path form.
//! - `walk`: `fs/walk`, a bounded breadth-first listing with Codex's
//!   symlink and limit rules.
//! - `handles`: `fs/open`, `fs/readBlock`, `fs/close`: a connection's table
//!   of open files, read in blocks.
//! - `sandbox`: refusing a `sandbox` that asks for confinement.
//! - `test_support` (tests only): the temporary files, params builders and
//!   error summaries the tests of every file share.
//!
//! Imports flow one way: the operation files use only this file, `pool`,
//! `paths` and `sandbox`, never each other (only `copy`'s tests call `read_directory`, to
//! compare listings), and `pool`, `paths`, `sandbox` and `test_support` use
//! no operation file.

mod canonicalize;
mod copy;
mod handles;
mod list;
mod local_mounts;
mod metadata;
mod paths;
mod pool;
mod read;
mod remove;
mod rename;
mod sandbox;
#[cfg(test)]
mod test_support;
mod walk;
mod write;

pub use canonicalize::canonicalize;
pub use copy::copy;
pub(crate) use handles::FileHandles;
pub use handles::{MAX_FILE_HANDLES_PER_CONNECTION, MAX_READ_BLOCK_BYTES};
pub use list::read_directory;
pub use metadata::get_metadata;
pub use pool::{FS_CALL_DEADLINE, FS_MAX_THREADS, FS_QUEUE_CAPACITY};
pub use read::{MAX_READ_FILE_BYTES, read_file};
pub use remove::remove;
pub use rename::rename;
pub use walk::{
    MAX_WALK_DEPTH, MAX_WALK_DIRECTORIES, MAX_WALK_ENTRIES, MAX_WALK_RESULT_BYTES, walk,
};
pub use write::{create_directory, write_file};

use pool::{run_blocking, run_metadata};

/// The largest `mode` fs/writeFile accepts: the permission bits plus
/// set-user-ID, set-group-ID and sticky (`0o7777`). The schema says the same
/// (`maximum: 4095`), but the generated type is a plain `u32`, so the check
/// lives here. fs/copy masks a source's `st_mode` with it too.
const MAX_MODE: u32 = 0o7777;
