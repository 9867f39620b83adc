//! `fs/walk`: a directory tree listed breadth-first within the client's
//! limits, with Codex's rules (`codex-rs/file-system`, `WalkOptions` and its
//! walk over directory reads):
//!
//! - The root is not an entry. A root that is not a directory, or that is
//!   a symlink while `followDirectorySymlinks` is false, gives an empty
//!   result; a root that cannot be inspected at all is an error.
//! - Each directory's entries are sorted by name (bytewise); subdirectories
//!   are traversed in the order they were found, breadth-first.
//! - Only directories and regular files are listed. A symlink is skipped
//!   unless `followDirectorySymlinks` is true and it points to a directory,
//!   which is then listed (at the link's path) and traversed; a symlink to
//!   a file is never listed. When following, each directory is traversed
//!   once, by its canonical path, so a link cycle ends.
//! - A directory that cannot be read, or an entry that cannot be inspected,
//!   goes to `errors` and the walk goes on.
//! - `maxEntries` counts entries examined (listed or not); at the next one
//!   the walk stops with `truncated`. A directory found once
//!   `maxDirectories` are traversed is listed but not traversed, and sets
//!   `truncated`. `maxDepth` 0 lists the root's children only.
//! - The result is bounded: once its paths and messages would pass
//!   [`MAX_WALK_RESULT_BYTES`] the walk stops with `truncated`, so a result
//!   always fits a message.

use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};

use exec_protocol::{
    AbsolutePath, FsWalkParams, FsWalkResponse, WalkEntry, WalkEntryKind, WalkError, WalkOptions,
};

use super::paths::{client_path, fs_error, named_in};
use super::run_blocking;
use super::sandbox::refuse_unapplied;
use crate::error::ServerError;
use crate::path_uri::PathForm;

/// The largest `maxDepth` accepted (Codex's limit).
pub const MAX_WALK_DEPTH: u64 = 64;
/// The largest `maxDirectories` accepted (Codex's limit).
pub const MAX_WALK_DIRECTORIES: u64 = 10_000;
/// The largest `maxEntries` accepted (Codex's limit).
pub const MAX_WALK_ENTRIES: u64 = 50_000;
/// Bytes of paths and messages one walk result may carry (4 MiB, Codex's
/// budget), each entry or error counted with [`ITEM_OVERHEAD_BYTES`] more
/// for its JSON.
pub const MAX_WALK_RESULT_BYTES: usize = 4 * 1024 * 1024;
/// What one entry or error adds to the result besides its path and message.
const ITEM_OVERHEAD_BYTES: usize = 64;

/// `fs/walk`: lists the tree below `path` (see the module documentation
/// for the rules), its paths written in the form the request used.
///
/// # Errors
/// `sandboxUnavailable` for a `sandbox` asking for confinement;
/// `invalidParams` for a limit of 0 or above its maximum;
/// `invalidPath` for a path that is neither absolute nor a local `file:`
/// URI; `notFound`, `permissionDenied`, `notADirectory` or `io` when the
/// root cannot be inspected; `limitExceeded` or `io` from the fs pool.
pub async fn walk(params: FsWalkParams) -> Result<FsWalkResponse, ServerError> {
    refuse_unapplied(params.sandbox.as_ref())?;
    let limits = Limits::checked(&params.options)?;
    let requested = client_path(&params.path)?;
    let (root, form) = (requested.path.clone(), requested.form);
    run_blocking(&requested.path, move || Walk::new(form, limits).run(&root))
        .await
        .map_err(|error| named_in(form, error))
}

/// The client's options, checked and in the types the walk counts with.
#[derive(Clone, Copy, Debug)]
struct Limits {
    max_depth: u64,
    max_directories: u64,
    max_entries: u64,
    follow_directory_symlinks: bool,
    prune_hidden_directories: bool,
}

impl Limits {
    /// Errors: `invalidParams` naming the first limit out of its range.
    fn checked(options: &WalkOptions) -> Result<Self, ServerError> {
        let ranges = [
            ("maxDepth", options.max_depth, 0, MAX_WALK_DEPTH),
            (
                "maxDirectories",
                options.max_directories,
                1,
                MAX_WALK_DIRECTORIES,
            ),
            ("maxEntries", options.max_entries, 1, MAX_WALK_ENTRIES),
        ];
        for (name, value, least, most) in ranges {
            if !(least..=most).contains(&value) {
                return Err(ServerError::InvalidParams {
                    message: format!("`options.{name}` is {value}; it must be {least} to {most}"),
                });
            }
        }
        Ok(Self {
            max_depth: options.max_depth,
            max_directories: options.max_directories,
            max_entries: options.max_entries,
            follow_directory_symlinks: options.follow_directory_symlinks,
            prune_hidden_directories: options.prune_hidden_directories.unwrap_or(false),
        })
    }
}

/// The walk's state: what it found and what it has spent.
struct Walk {
    /// How the request wrote its path, for every path of the result.
    form: PathForm,
    limits: Limits,
    /// The result so far.
    outcome: FsWalkResponse,
    /// Bytes of the result so far, by [`MAX_WALK_RESULT_BYTES`]'s count.
    result_bytes: usize,
    /// Entries examined so far.
    entries_examined: u64,
    /// Directories traversed or queued so far, the root included.
    directories: u64,
    /// What each traversed or queued directory is (its canonical path when
    /// following symlinks), so none is traversed twice.
    visited: HashSet<PathBuf>,
}

/// Whether the walk goes on after a step.
enum Flow {
    Continue,
    Stop,
}

impl Walk {
    fn new(form: PathForm, limits: Limits) -> Self {
        Self {
            form,
            limits,
            outcome: FsWalkResponse {
                entries: Vec::new(),
                errors: Vec::new(),
                truncated: false,
            },
            result_bytes: 0,
            entries_examined: 0,
            directories: 1,
            visited: HashSet::new(),
        }
    }

    /// Walks from `root`. Errors: the OS error when the root cannot be
    /// inspected (or, when following symlinks, canonicalized).
    fn run(mut self, root: &Path) -> Result<FsWalkResponse, ServerError> {
        let fail = |error: io::Error| fs_error(root, error);
        let link = fs::symlink_metadata(root).map_err(fail)?;
        if link.file_type().is_symlink() && !self.limits.follow_directory_symlinks {
            return Ok(self.outcome);
        }
        if !fs::metadata(root).map_err(fail)?.is_dir() {
            return Ok(self.outcome);
        }
        let identity = if self.limits.follow_directory_symlinks {
            fs::canonicalize(root).map_err(fail)?
        } else {
            root.to_path_buf()
        };
        self.visited.insert(identity);
        let mut queue = VecDeque::from([(root.to_path_buf(), 0_u64)]);
        while let Some((directory, depth)) = queue.pop_front() {
            if let Flow::Stop = self.list(&directory, depth, &mut queue) {
                break;
            }
        }
        Ok(self.outcome)
    }

    /// Lists one directory at `depth` (the root is 0), queueing the
    /// subdirectories to traverse.
    fn list(&mut self, directory: &Path, depth: u64, queue: &mut VecDeque<(PathBuf, u64)>) -> Flow {
        // One more name than may still be examined tells whether the limit
        // cuts this directory short.
        let wanted = self.limits.max_entries - self.entries_examined + 1;
        let names = match first_names(directory, wanted) {
            Ok(names) => names,
            Err(error) => return self.error(directory, &error),
        };
        for name in names {
            if self.entries_examined == self.limits.max_entries {
                self.outcome.truncated = true;
                return Flow::Stop;
            }
            self.entries_examined += 1;
            let path = directory.join(&name);
            let kind = match self.kind_of(&path) {
                Ok(Some(kind)) => kind,
                Ok(None) => continue,
                Err(error) => match self.error(&path, &error) {
                    Flow::Continue => continue,
                    Flow::Stop => return Flow::Stop,
                },
            };
            let rendered = self.form.render(&path);
            if let Flow::Stop = self.reserve(rendered.len()) {
                return Flow::Stop;
            }
            self.outcome.entries.push(WalkEntry {
                kind,
                path: AbsolutePath(rendered),
            });
            let hidden = name.as_bytes().starts_with(b".");
            if kind != WalkEntryKind::Directory
                || depth >= self.limits.max_depth
                || (hidden && self.limits.prune_hidden_directories)
            {
                continue;
            }
            let identity = if self.limits.follow_directory_symlinks {
                match fs::canonicalize(&path) {
                    Ok(identity) => identity,
                    Err(error) => match self.error(&path, &error) {
                        Flow::Continue => continue,
                        Flow::Stop => return Flow::Stop,
                    },
                }
            } else {
                path.clone()
            };
            if !self.visited.insert(identity) {
                continue;
            }
            if self.directories == self.limits.max_directories {
                self.outcome.truncated = true;
            } else {
                self.directories += 1;
                queue.push_back((path, depth + 1));
            }
        }
        Flow::Continue
    }

    /// What `path` is listed as: `None` for what is not listed (a symlink
    /// not followed or to a file, a FIFO, socket or device).
    fn kind_of(&self, path: &Path) -> io::Result<Option<WalkEntryKind>> {
        let mut metadata = fs::symlink_metadata(path)?;
        if metadata.file_type().is_symlink() {
            if !self.limits.follow_directory_symlinks {
                return Ok(None);
            }
            metadata = fs::metadata(path)?;
            if !metadata.is_dir() {
                return Ok(None);
            }
        }
        Ok(if metadata.is_dir() {
            Some(WalkEntryKind::Directory)
        } else if metadata.is_file() {
            Some(WalkEntryKind::File)
        } else {
            None
        })
    }

    /// Records that `path` could not be read or inspected.
    fn error(&mut self, path: &Path, error: &io::Error) -> Flow {
        let rendered = self.form.render(path);
        let message = error.to_string();
        if let Flow::Stop = self.reserve(rendered.len() + message.len()) {
            return Flow::Stop;
        }
        self.outcome.errors.push(WalkError {
            message,
            path: AbsolutePath(rendered),
        });
        Flow::Continue
    }

    /// Counts an item of `content_bytes` against [`MAX_WALK_RESULT_BYTES`];
    /// past it, the walk stops with `truncated`.
    fn reserve(&mut self, content_bytes: usize) -> Flow {
        let total = self
            .result_bytes
            .saturating_add(content_bytes)
            .saturating_add(ITEM_OVERHEAD_BYTES);
        if total > MAX_WALK_RESULT_BYTES {
            self.outcome.truncated = true;
            return Flow::Stop;
        }
        self.result_bytes = total;
        Flow::Continue
    }
}

/// The first `wanted` names in `directory` in bytewise order, sorted.
/// A directory may hold millions of names; only `wanted` (bounded by
/// [`MAX_WALK_ENTRIES`] + 1) are kept at a time, the largest dropped first.
/// Errors: the OS error of opening or reading it.
fn first_names(directory: &Path, wanted: u64) -> io::Result<Vec<OsString>> {
    let wanted = usize::try_from(wanted).unwrap_or(usize::MAX);
    let mut smallest: BinaryHeap<Vec<u8>> = BinaryHeap::new();
    for entry in fs::read_dir(directory)? {
        smallest.push(entry?.file_name().into_vec());
        if smallest.len() > wanted {
            smallest.pop();
        }
    }
    Ok(smallest
        .into_sorted_vec()
        .into_iter()
        .map(OsString::from_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::fs::Permissions;
    use std::os::unix::fs::{PermissionsExt as _, symlink};

    use exec_protocol::ErrorKind;
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fs::test_support::{TestResult, is_root};
    use crate::path_uri::file_uri;

    /// A walk's result as `(path below the root, kind)` pairs, truncated.
    type Listing = (Vec<(String, WalkEntryKind)>, bool);

    const DIRECTORY: WalkEntryKind = WalkEntryKind::Directory;
    const FILE: WalkEntryKind = WalkEntryKind::File;

    fn options(max_depth: u64, max_directories: u64, max_entries: u64) -> WalkOptions {
        WalkOptions {
            follow_directory_symlinks: false,
            max_depth,
            max_directories,
            max_entries,
            prune_hidden_directories: None,
        }
    }

    fn wide() -> WalkOptions {
        options(MAX_WALK_DEPTH, MAX_WALK_DIRECTORIES, MAX_WALK_ENTRIES)
    }

    async fn walk_at(root: &str, options: WalkOptions) -> Result<FsWalkResponse, ServerError> {
        walk(FsWalkParams {
            options,
            path: AbsolutePath(root.to_owned()),
            sandbox: None,
        })
        .await
    }

    /// Walks `root` (a native path) and lists what it found relative to it.
    async fn listing(root: &Path, options: WalkOptions) -> Result<Listing, ServerError> {
        let outcome = walk_at(&root.display().to_string(), options).await?;
        assert_eq!(outcome.errors, Vec::new(), "no errors expected");
        let prefix = format!("{}/", root.display());
        let entries = outcome
            .entries
            .into_iter()
            .map(|entry| {
                let relative = entry.path.0.strip_prefix(&prefix).map(str::to_owned);
                (relative.unwrap_or(entry.path.0), entry.kind)
            })
            .collect();
        Ok((entries, outcome.truncated))
    }

    fn expected(entries: &[(&str, WalkEntryKind)], truncated: bool) -> Listing {
        let entries = entries
            .iter()
            .map(|(path, kind)| ((*path).to_owned(), *kind))
            .collect();
        (entries, truncated)
    }

    /// `root/{.git/config, a/{.hidden/y, x.txt}, b.txt, fifo, link-dir -> a,
    /// link-file -> b.txt}`.
    fn tree(root: &Path) -> io::Result<()> {
        fs::create_dir_all(root.join(".git"))?;
        fs::write(root.join(".git/config"), b"")?;
        fs::create_dir_all(root.join("a/.hidden"))?;
        fs::write(root.join("a/.hidden/y"), b"")?;
        fs::write(root.join("a/x.txt"), b"")?;
        fs::write(root.join("b.txt"), b"")?;
        nix::unistd::mkfifo(
            &root.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )?;
        symlink(root.join("a"), root.join("link-dir"))?;
        symlink(root.join("b.txt"), root.join("link-file"))?;
        Ok(())
    }

    #[tokio::test]
    async fn walk_lists_breadth_first_sorted_without_symlinks_or_special_files() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = directory.path();
        tree(root)?;
        assert_eq!(
            listing(root, wide()).await?,
            expected(
                &[
                    (".git", DIRECTORY),
                    ("a", DIRECTORY),
                    ("b.txt", FILE),
                    (".git/config", FILE),
                    ("a/.hidden", DIRECTORY),
                    ("a/x.txt", FILE),
                    ("a/.hidden/y", FILE),
                ],
                false
            )
        );
        let pruned = WalkOptions {
            prune_hidden_directories: Some(true),
            ..wide()
        };
        assert_eq!(
            listing(root, pruned).await?,
            expected(
                &[
                    (".git", DIRECTORY),
                    ("a", DIRECTORY),
                    ("b.txt", FILE),
                    ("a/.hidden", DIRECTORY),
                    ("a/x.txt", FILE),
                ],
                false
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn walk_follows_directory_symlinks_once_each_and_never_file_symlinks() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = directory.path();
        tree(root)?;
        // A cycle back to the root: listed, never traversed again.
        symlink(root, root.join("a/loop"))?;
        let following = WalkOptions {
            follow_directory_symlinks: true,
            ..wide()
        };
        assert_eq!(
            listing(root, following).await?,
            expected(
                &[
                    (".git", DIRECTORY),
                    ("a", DIRECTORY),
                    ("b.txt", FILE),
                    // The same directory as `a`, which is traversed once.
                    ("link-dir", DIRECTORY),
                    (".git/config", FILE),
                    ("a/.hidden", DIRECTORY),
                    ("a/loop", DIRECTORY),
                    ("a/x.txt", FILE),
                    ("a/.hidden/y", FILE),
                ],
                false
            )
        );
        Ok(())
    }

    #[tokio::test]
    async fn walk_limits_set_truncated() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = directory.path();
        tree(root)?;
        let top = [(".git", DIRECTORY), ("a", DIRECTORY), ("b.txt", FILE)];
        // Depth 0: the root's children only, and nothing left out by a limit.
        assert_eq!(
            listing(root, options(0, 100, 100)).await?,
            expected(&top, false)
        );
        // Three entries examined, a fourth waiting.
        assert_eq!(
            listing(root, options(64, 100, 3)).await?,
            expected(&top, true)
        );
        // Two directories: the root and `.git`; `a` is listed, not traversed.
        assert_eq!(
            listing(root, options(64, 2, 100)).await?,
            expected(
                &[
                    (".git", DIRECTORY),
                    ("a", DIRECTORY),
                    ("b.txt", FILE),
                    (".git/config", FILE)
                ],
                true
            )
        );
        // Exactly as many entries as there are is not truncated.
        let flat = tempfile::tempdir()?;
        for name in ["1", "2"] {
            fs::write(flat.path().join(name), b"")?;
        }
        assert_eq!(
            listing(flat.path(), options(0, 1, 2)).await?,
            expected(&[("1", FILE), ("2", FILE)], false)
        );
        Ok(())
    }

    #[tokio::test]
    async fn walk_answers_in_the_request_form() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = directory.path().join("a dir");
        fs::create_dir_all(root.join("sub"))?;
        fs::write(root.join("sub/f#1"), b"")?;
        let outcome = walk_at(&file_uri(&root), wide()).await?;
        let paths: Vec<(String, WalkEntryKind)> = outcome
            .entries
            .into_iter()
            .map(|entry| (entry.path.0, entry.kind))
            .collect();
        assert_eq!(
            paths,
            vec![
                (file_uri(&root.join("sub")), DIRECTORY),
                (file_uri(&root.join("sub/f#1")), FILE),
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn walk_roots_that_are_not_directories_give_nothing() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = directory.path();
        tree(root)?;
        for (path, follow, expected_entries) in [
            (root.join("b.txt"), false, 0),
            (root.join("link-dir"), false, 0),
            (root.join("link-dir"), true, 3),
        ] {
            let options = WalkOptions {
                follow_directory_symlinks: follow,
                ..wide()
            };
            let outcome = walk_at(&path.display().to_string(), options).await?;
            assert_eq!(
                (
                    outcome.entries.len(),
                    outcome.errors.len(),
                    outcome.truncated
                ),
                (expected_entries, 0, false),
                "{}, following {follow}",
                path.display()
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn walk_refuses_bad_limits_and_missing_roots() -> TestResult {
        let directory = tempfile::tempdir()?;
        let root = directory.path().display().to_string();
        for bad in [
            options(65, 1, 1),
            options(0, 0, 1),
            options(0, 1, 0),
            options(0, 10_001, 1),
            options(0, 1, 50_001),
        ] {
            let error = walk_at(&root, bad.clone()).await.expect_err("refused");
            assert_eq!(error.kind(), ErrorKind::InvalidParams, "{bad:?}");
        }
        let missing = directory.path().join("missing");
        let error = walk_at(&missing.display().to_string(), wide())
            .await
            .expect_err("refused");
        assert_eq!(
            (
                error.kind(),
                error.to_error_object().data.and_then(|data| data.path)
            ),
            (ErrorKind::NotFound, Some(missing.display().to_string()))
        );
        let error = walk_at("relative", wide()).await.expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::InvalidPath);
        Ok(())
    }

    #[tokio::test]
    async fn walk_reports_unreadable_directories_and_goes_on() -> TestResult {
        // Root reads every directory, so there is nothing to provoke.
        if is_root() {
            return Ok(());
        }
        let directory = tempfile::tempdir()?;
        let root = directory.path();
        fs::create_dir(root.join("locked"))?;
        fs::write(root.join("open"), b"")?;
        fs::set_permissions(root.join("locked"), Permissions::from_mode(0o000))?;
        let outcome = walk_at(&root.display().to_string(), wide()).await;
        fs::set_permissions(root.join("locked"), Permissions::from_mode(0o700))?;
        let outcome = outcome?;
        assert_eq!(outcome.entries.len(), 2);
        let errors: Vec<String> = outcome
            .errors
            .into_iter()
            .map(|error| error.path.0)
            .collect();
        assert_eq!(errors, vec![root.join("locked").display().to_string()]);
        Ok(())
    }

    #[test]
    fn first_names_keeps_the_smallest_in_order() -> TestResult {
        let directory = tempfile::tempdir()?;
        for name in ["d", "b", "e", "a", "c"] {
            fs::write(directory.path().join(name), b"")?;
        }
        let names = |wanted| -> io::Result<Vec<String>> {
            Ok(first_names(directory.path(), wanted)?
                .into_iter()
                .map(|name| name.to_string_lossy().into_owned())
                .collect())
        };
        assert_eq!(names(3)?, ["a", "b", "c"]);
        assert_eq!(names(10)?, ["a", "b", "c", "d", "e"]);
        Ok(())
    }
}
