//! Spare cgroups: the emptied cgroup of a closed process, kept for the next
//! start of the same table instead of removed, so that a start finds a
//! cgroup ready where it would otherwise create one (a cgroup's `mkdir`
//! allocates its kernel state and creates its control files, about a fifth
//! of a spawn's cost in the server) and the `rmdir` at the end of the
//! retention time has nothing left to remove. cgroup v2 cannot rename a
//! cgroup, so a reused one keeps the name of the process that first had it.
//!
//! # Why a spare is safe to reuse
//! - It is taken back only when it is still there (a kill of the tree
//!   removes the cgroup it emptied) and no live process is in it
//!   (`cgroup.events` says `populated 0`). Nothing joins a cgroup but a
//!   child the server spawns into it (joining needs write access to the
//!   cgroup filesystem), so it stays empty while spare.
//! - A start that takes it writes `0` to its `cgroup.freeze` first: a
//!   process with write access to the cgroup filesystem could have left
//!   the cgroup frozen, which would stop the next child as it is cloned
//!   into it or joins it (and the start, which waits for its exec, with it).
//! - The closed process's tree lends its cgroup (`Tree::lend_cgroup`), after
//!   which no kill of that tree and no removal at the end of its retention
//!   touches the directory: its tree was empty when lent and nothing can
//!   join it, so there is nothing to kill. The lending is refused while any
//!   kill of trees is in progress (in any table: the count is the server's),
//!   since that kill may have read the path before the lending and must not
//!   reach a later process that reuses it.
//! - Spares are kept per table (cgroups of one table share its parent) and
//!   at most [`MAX_SPARES`] of them, as paths: a spare holds no descriptor.
//!   A table that shut down keeps none; its shutdown removes its directory
//!   with whatever spares are in it.
//!
//! Not reset on reuse: the cgroup's cumulative `cpu.stat`, which nothing
//! reads (the server enables no controllers below the table's cgroup, so
//! there is no limit or charge to carry over), and anything a process with
//! write access to the cgroup filesystem changed in it besides
//! `cgroup.freeze` (such a process can leave its cgroup anyway). The
//! kernels containment runs on (5.14 and later, for `cgroup.kill`) all have
//! `cgroup.freeze`.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::cgroup::{self, ProcessCgroup};
use super::tree::Tree;
use crate::sync::lock;

/// The most spare cgroups a table keeps; more emptied cgroups are removed
/// as before (at the end of their process's retention time).
const MAX_SPARES: usize = 64;

/// One table's spare cgroups.
#[derive(Debug, Default)]
pub(crate) struct SpareCgroups {
    /// Directories of empty cgroups lent by closed processes.
    spares: Mutex<Vec<PathBuf>>,
}

impl SpareCgroups {
    /// The cgroup for process `serial` of table `table`: a spare when there
    /// is one, else a new one (see [`ProcessCgroup::create`]). `None` when
    /// cgroup containment is off. Errors: those of [`ProcessCgroup::create`].
    pub(crate) fn take(&self, table: u64, serial: u64) -> io::Result<Option<ProcessCgroup>> {
        loop {
            let Some(spare) = lock(&self.spares).pop() else {
                break;
            };
            // Gone (the table's shutdown removed it meanwhile): the next.
            match std::fs::write(spare.join("cgroup.freeze"), "0")
                .and_then(|()| ProcessCgroup::open(spare))
            {
                Ok(cgroup) => return Ok(Some(cgroup)),
                Err(error) => tracing::debug!(%error, "a spare cgroup is gone"),
            }
        }
        ProcessCgroup::create(table, serial)
    }

    /// Keeps the cgroup of `tree`, whose process closed, as a spare when it
    /// is empty (see the module documentation), `tree` could lend it and
    /// there is room; otherwise leaves it to its tree (removed at the end
    /// of the retention time, or killed with the tree).
    pub(crate) fn give_back(&self, tree: &Tree) {
        let Some(directory) = tree.cgroup().map(Path::to_path_buf) else {
            return;
        };
        // Empty (`populated 0`; not gone, not unreadable). Nothing can join
        // it meanwhile, so empty stays empty.
        if lock(&self.spares).len() >= MAX_SPARES
            || !matches!(cgroup::populated(&directory), Ok(Some(false)))
            || !tree.lend_cgroup()
        {
            return;
        }
        // A kill that began before the check and ended before the lending
        // may have removed it since; once lent, no kill of the tree touches it.
        if !directory.exists() {
            return;
        }
        let mut spares = lock(&self.spares);
        if spares.len() < MAX_SPARES {
            spares.push(directory);
        } else {
            // Lent but no room after all: nothing else removes it now.
            drop(spares);
            cgroup::remove(&directory);
        }
    }
}
