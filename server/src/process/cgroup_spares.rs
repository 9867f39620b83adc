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
//!   removes the cgroup it emptied), no live process is in it
//!   (`cgroup.events` says `populated 0`) and its process was reaped. Nothing joins a cgroup
//!   but a child the server spawns into it (joining needs write access to
//!   the cgroup filesystem), so it stays empty while spare.
//! - The closed process's tree lends its cgroup (`Tree::lend_cgroup`), after
//!   which no kill of that tree and no removal at the end of its retention
//!   touches the directory: its tree was empty when lent and nothing can
//!   join it, so there is nothing to kill. The lending is refused while any
//!   kill of trees is in progress, since that kill may have read the path
//!   before the lending and must not reach a later process that reuses it.
//! - Spares are kept per table and at most [`MAX_SPARES`] of them; the
//!   table's shutdown removes its directory with whatever spares are in it.
//!
//! Not reset on reuse: the cgroup's cumulative `cpu.stat`, which nothing
//! reads (the server enables no controllers below the table's cgroup, so
//! there is no limit or charge to carry over).

use std::io;
use std::path::Path;
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
    /// Empty cgroups lent by closed processes, their `cgroup.procs` open.
    spares: Mutex<Vec<ProcessCgroup>>,
}

impl SpareCgroups {
    /// The cgroup for process `serial` of table `table`: a spare when there
    /// is one, else a new one (see [`ProcessCgroup::create`]). `None` when
    /// cgroup containment is off. Errors: those of [`ProcessCgroup::create`].
    pub(crate) fn take(&self, table: u64, serial: u64) -> io::Result<Option<ProcessCgroup>> {
        if let Some(spare) = lock(&self.spares).pop() {
            return Ok(Some(spare));
        }
        ProcessCgroup::create(table, serial)
    }

    /// Keeps `cgroup`, the cgroup of `tree`'s process, which closed and was
    /// reaped, as a spare when no live process is left in it, `tree` could
    /// lend it and there is room; otherwise leaves it to its tree (removed
    /// at the end of the retention time, or killed with the tree).
    pub(crate) fn give_back(&self, cgroup: ProcessCgroup, tree: &Tree) {
        // Empty and still there first: a kill of the tree (`process/terminate`)
        // removes the cgroup once it emptied it, and a process left in it
        // (a daemon) keeps it. Nothing can join it meanwhile.
        if lock(&self.spares).len() >= MAX_SPARES
            || !is_empty(&cgroup.directory)
            || !tree.lend_cgroup()
        {
            return;
        }
        // A kill that began before the check and ended before the lending
        // may have removed it since; once lent, no kill of the tree touches it.
        if !cgroup.directory.exists() {
            return;
        }
        let mut spares = lock(&self.spares);
        if spares.len() < MAX_SPARES {
            spares.push(cgroup);
        } else {
            // Lent but no room after all: nothing else removes it now.
            drop(spares);
            cgroup::remove(&cgroup.directory);
        }
    }
}

/// Whether the cgroup `directory` exists and holds no live process
/// (`populated 0` in its `cgroup.events`); false when it is gone or cannot
/// be read.
fn is_empty(directory: &Path) -> bool {
    std::fs::read_to_string(directory.join("cgroup.events")).is_ok_and(|events| {
        events
            .lines()
            .any(|line| line.split_whitespace().eq(["populated", "0"]))
    })
}
