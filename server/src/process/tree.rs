//! Killing whole process trees: [`Tree`], the operating-system side of one
//! managed process, and [`kill_trees`], which kills a tree's cgroup when it
//! has one (see `cgroup`) and otherwise walks `/proc` for its members and
//! SIGKILLs them in rounds until none is alive (see the `process` module
//! documentation for which processes belong to a tree).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::unistd::{Pid, getpid};
use tokio::sync::watch;

use super::procfs::{self, ProcStat};
use super::{cgroup, reaper, threads};
use crate::sync::lock;

/// Kill rounds before giving up on processes that do not die (a process stuck
/// in uninterruptible sleep, `D`, cannot be killed until it wakes).
const MAX_KILL_ROUNDS: usize = 50;

/// How long a kill round waits for a reaping event before looking again; a
/// SIGKILLed process usually dies well within it, and any reap ends the wait early.
const KILL_ROUND_WAIT: Duration = Duration::from_millis(20);

/// How many [`kill_trees`] are running; a tree lends its cgroup only when
/// none is (see [`Tree::lend_cgroup`]).
static KILLS_IN_PROGRESS: AtomicUsize = AtomicUsize::new(0);

/// Counts one [`kill_trees`] in [`KILLS_IN_PROGRESS`] while it lives.
pub(super) struct KillInProgress;

impl KillInProgress {
    /// Counts a kill that starts now.
    pub(super) fn begin() -> Self {
        KILLS_IN_PROGRESS.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for KillInProgress {
    fn drop(&mut self) {
        KILLS_IN_PROGRESS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The operating-system side of one managed process, as tree killing sees it.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The child's pid; also its process group id (and session id on a PTY).
    root: i32,
    /// The value of the tree marker variable its processes inherit.
    marker: String,
    /// The cgroup the child was started in, when cgroup containment is on.
    cgroup: Option<PathBuf>,
    /// Whether the cgroup was lent to a later process (see `cgroup_spares`):
    /// the tree is then empty, and neither killed nor its cgroup removed.
    cgroup_lent: AtomicBool,
    /// Whether the child was reaped; from then on its pid may be reused, so it
    /// is neither signalled nor trusted as a group or session id.
    reaped: watch::Sender<bool>,
    /// Descendants seen by earlier walks, by pid with their start times, so
    /// they are still found after they left the group and lost their parent.
    members: Mutex<HashMap<i32, u64>>,
}

impl Tree {
    /// The tree of the child `root` whose processes carry `marker` and, when
    /// given, were started in the cgroup `cgroup`.
    pub(crate) fn new(root: u32, marker: String, cgroup: Option<PathBuf>) -> Self {
        Self {
            root: root as i32,
            marker,
            cgroup,
            cgroup_lent: AtomicBool::new(false),
            reaped: watch::Sender::new(false),
            members: Mutex::new(HashMap::new()),
        }
    }

    /// The child's pid.
    pub(crate) fn root(&self) -> u32 {
        self.root as u32
    }

    /// The cgroup the tree runs in, when it has one and did not lend it.
    pub(crate) fn cgroup(&self) -> Option<&Path> {
        if self.cgroup_lent.load(Ordering::SeqCst) {
            return None;
        }
        self.cgroup.as_deref()
    }

    /// Lends the tree's cgroup to a later process, which the caller may do
    /// only once the child was reaped and the cgroup found empty: from then
    /// on no kill takes this tree (it is empty, and nothing can join the
    /// cgroup) and its cgroup is not removed with it. Refused (false) while
    /// a [`kill_trees`] runs, which may have read the cgroup's path before:
    /// its writes to `cgroup.kill` must not reach the later process.
    ///
    /// The two sides pair up through sequentially consistent operations: a
    /// kill counts itself and then reads the flag, a lending sets the flag
    /// and then reads the count, so at least one of them sees the other. A
    /// kill that starts between the two may see the flag of a lending that
    /// is then refused and pass over the tree: harmless, since the tree was
    /// found empty before the lending (only its cgroup's removal is left to
    /// the end of its retention).
    pub(crate) fn lend_cgroup(&self) -> bool {
        if self.cgroup.is_none() {
            return false;
        }
        self.cgroup_lent.store(true, Ordering::SeqCst);
        if KILLS_IN_PROGRESS.load(Ordering::SeqCst) == 0 {
            return true;
        }
        self.cgroup_lent.store(false, Ordering::SeqCst);
        false
    }

    /// Whether the tree lent its cgroup (see [`Self::lend_cgroup`]).
    fn lent_cgroup(&self) -> bool {
        self.cgroup_lent.load(Ordering::SeqCst)
    }

    /// Whether the child was reaped.
    pub(crate) fn is_reaped(&self) -> bool {
        *self.reaped.borrow()
    }

    /// Records that the child was reaped, waking [`Self::wait_reaped`].
    pub(crate) fn mark_reaped(&self) {
        self.reaped.send_replace(true);
    }

    /// Waits until the child was reaped.
    pub(crate) async fn wait_reaped(&self) {
        let mut reaped = self.reaped.subscribe();
        // The sender lives in `self`, so the wait cannot fail while it runs.
        let _ = reaped.wait_for(|reaped| *reaped).await;
    }

    /// Sends `signal` to the child's process group, unless the child was reaped.
    pub(crate) fn signal_group(&self, signal: NixSignal) -> nix::Result<()> {
        if self.is_reaped() {
            return Ok(());
        }
        match killpg(Pid::from_raw(self.root), signal) {
            Err(Errno::ESRCH) => Ok(()),
            other => other,
        }
    }
}

/// What one kill round found: the processes of the trees, with the markers
/// read on the way so that each environment is read at most once a round.
struct Walk<'a> {
    /// All processes, by pid.
    by_pid: HashMap<i32, &'a ProcStat>,
    /// Children by parent pid.
    children: HashMap<i32, Vec<i32>>,
    /// Tree markers read so far, by pid (`None`: no marker or unreadable).
    markers: HashMap<i32, Option<String>>,
}

impl<'a> Walk<'a> {
    fn new(stats: &'a [ProcStat]) -> Self {
        Self {
            by_pid: stats.iter().map(|stat| (stat.pid, stat)).collect(),
            children: procfs::children_by_parent(stats),
            markers: HashMap::new(),
        }
    }

    /// Whether `pid`'s marker starts with `prefix` (markers end with `/`, so a
    /// prefix names a process, a connection or the whole server).
    fn has_marker(&mut self, pid: i32, prefix: &str) -> bool {
        self.markers
            .entry(pid)
            .or_insert_with(|| procfs::tree_marker(pid))
            .as_deref()
            .is_some_and(|marker| marker.starts_with(prefix))
    }

    /// Every process carrying a marker that starts with `prefix`.
    fn marked(&mut self, prefix: &str) -> Vec<i32> {
        let pids: Vec<i32> = self.by_pid.keys().copied().collect();
        pids.into_iter()
            .filter(|pid| self.has_marker(*pid, prefix))
            .collect()
    }

    /// `roots` and all their descendants by parent links.
    fn descendants(&self, roots: Vec<i32>) -> HashSet<i32> {
        let mut found = HashSet::new();
        let mut pending = roots;
        while let Some(pid) = pending.pop() {
            if !found.insert(pid) {
                continue;
            }
            if let Some(children) = self.children.get(&pid) {
                pending.extend(children.iter().copied());
            }
        }
        found
    }

    /// The processes of `tree`: its child and process group or session while
    /// the child is unreaped (afterwards only members that carry its marker),
    /// the members remembered from earlier walks, every process carrying its
    /// marker, and all their descendants.
    fn tree_members(&mut self, tree: &Tree) -> HashSet<i32> {
        let reaped = tree.is_reaped();
        let mut roots = Vec::new();
        if !reaped {
            roots.push(tree.root);
        }
        let grouped: Vec<i32> = self
            .by_pid
            .values()
            .filter(|stat| stat.pgrp == tree.root || stat.session == tree.root)
            .map(|stat| stat.pid)
            .collect();
        for pid in grouped {
            if !reaped || self.has_marker(pid, &tree.marker) {
                roots.push(pid);
            }
        }
        for (pid, start_time) in lock(&tree.members).iter() {
            if self
                .by_pid
                .get(pid)
                .is_some_and(|stat| stat.start_time == *start_time)
            {
                roots.push(*pid);
            }
        }
        roots.extend(self.marked(&tree.marker));
        self.descendants(roots)
    }
}

/// Beyond the trees themselves, what else a kill takes: everything of one
/// table (its session ended) or of the whole server (shutdown), including
/// leftovers of processes that already left their table.
#[derive(Debug, Clone)]
pub(crate) struct Sweep {
    /// Every process whose tree marker starts with this (and its descendants).
    pub marker_prefix: String,
    /// The cgroup holding all of them, when cgroup containment is on.
    pub cgroup: Option<PathBuf>,
}

/// Kills `trees` and, with `sweep`, everything it names.
///
/// When every tree (and the sweep) has a cgroup, that is one write to each
/// cgroup's `cgroup.kill`, repeated until no live process is left in them
/// (a kill takes processes forked meanwhile too, and an escape from a cgroup
/// needs write access to the cgroup filesystem). Otherwise SIGKILL goes to
/// each tree's process group and to every process a `/proc` walk finds, in
/// rounds until none of them is alive.
///
/// There are at least two walking rounds: a process that is in the middle of an
/// `exec` shows an empty environment for an instant, so one walk alone could
/// miss its marker, and one that forked just before the first round's
/// signals is only found by the next walk.
pub(crate) async fn kill_trees(mut trees: Vec<Arc<Tree>>, sweep: Option<Sweep>) {
    let _counted = KillInProgress::begin();
    // A tree that lent its cgroup is empty, and its cgroup is another's now.
    trees.retain(|tree| !tree.lent_cgroup());
    if let Some(directories) = cgroups_of(&trees, sweep.as_ref()) {
        if kill_cgroups(&directories).await {
            return;
        }
        tracing::warn!("killing by cgroup failed; walking /proc instead");
    } else {
        // Some trees have no cgroup; those that have one (and the sweep's)
        // are killed whole before the walks, which then find only the rest.
        let directories: Vec<&Path> = trees
            .iter()
            .filter_map(|tree| tree.cgroup.as_deref())
            .chain(sweep.as_ref().and_then(|sweep| sweep.cgroup.as_deref()))
            .collect();
        kill_cgroups_once(&directories);
    }
    let trees = Arc::new(trees);
    let sweep_prefix = Arc::new(sweep.map(|sweep| sweep.marker_prefix));
    for round in 0..MAX_KILL_ROUNDS {
        let mut events = reaper::reap_events();
        let alive = {
            let trees = trees.clone();
            let sweep_prefix = sweep_prefix.clone();
            threads::run_kill_round(move || kill_round(&trees, sweep_prefix.as_deref())).await
        };
        // A round that did not finish counts as one that found processes.
        if alive == Some(0) && round > 0 {
            // Orphans that died in the last rounds are zombies of this
            // process now; the reaper collects them.
            reaper::request_rescan();
            return;
        }
        // Waiting on an event and not a fixed sleep: the reap of a killed
        // child or adopted orphan wakes this early.
        let _ = tokio::time::timeout(KILL_ROUND_WAIT, events.changed()).await;
    }
    reaper::request_rescan();
    tracing::warn!("some processes of killed trees are still alive after {MAX_KILL_ROUNDS} rounds");
}

/// The cgroups to kill for `trees` and `sweep`, when all of them have one.
fn cgroups_of(trees: &[Arc<Tree>], sweep: Option<&Sweep>) -> Option<Vec<PathBuf>> {
    let mut directories: Vec<PathBuf> = trees
        .iter()
        .map(|tree| tree.cgroup.clone())
        .collect::<Option<_>>()?;
    if let Some(sweep) = sweep {
        directories.push(sweep.cgroup.clone()?);
    }
    Some(directories)
}

/// Kills the cgroups `directories` until none holds a live process; false
/// when a kill failed or processes outlived every round.
async fn kill_cgroups(directories: &[PathBuf]) -> bool {
    let paths: Vec<&Path> = directories.iter().map(PathBuf::as_path).collect();
    for _ in 0..MAX_KILL_ROUNDS {
        let mut events = reaper::reap_events();
        let Some(populated) = kill_cgroups_once(&paths) else {
            return false;
        };
        if !populated {
            // The killed processes are zombies now: the managed children are
            // reaped by their waiters, adopted orphans by the reaper. The
            // empty cgroups go (a process still in its table keeps only
            // the path; nothing joins a cgroup but its own child).
            reaper::request_rescan();
            for directory in directories {
                cgroup::remove(directory);
            }
            return true;
        }
        // A reap wakes this early; processes die within microseconds of the
        // kill unless they are in uninterruptible sleep.
        let _ = tokio::time::timeout(KILL_ROUND_WAIT, events.changed()).await;
    }
    reaper::request_rescan();
    false
}

/// One kill of each cgroup of `directories` (every one is tried; a failure
/// is logged). Returns `None` when a kill failed, else whether any of them
/// still holds a live process.
fn kill_cgroups_once(directories: &[&Path]) -> Option<bool> {
    let mut failed = false;
    for directory in directories {
        if let Err(error) = cgroup::kill(directory) {
            tracing::warn!(%error, directory = %directory.display(), "cannot kill a cgroup");
            failed = true;
        }
    }
    if failed {
        return None;
    }
    Some(
        directories
            .iter()
            .any(|directory| cgroup::is_populated(directory)),
    )
}

/// Kills everything `sweep` names from a process that is not the server
/// (the guardian): its cgroup, then `/proc` walks for its marker, in rounds
/// until a walk finds nothing alive. Blocking; gives up after
/// [`MAX_KILL_ROUNDS`] rounds.
pub(crate) fn kill_swept_blocking(sweep: &Sweep) {
    if let Some(directory) = &sweep.cgroup {
        kill_cgroup_blocking(directory);
    }
    for round in 0..MAX_KILL_ROUNDS {
        if kill_round(&[], Some(&sweep.marker_prefix)) == 0 && round > 0 {
            return;
        }
        std::thread::sleep(KILL_ROUND_WAIT);
    }
}

/// Kills everything in the cgroup `directory` and below, blocking (a few
/// rounds of `cgroup.kill` until it is unpopulated).
pub(crate) fn kill_cgroup_blocking(directory: &Path) {
    for _ in 0..MAX_KILL_ROUNDS {
        if kill_cgroups_once(&[directory]) != Some(true) {
            break;
        }
        std::thread::sleep(KILL_ROUND_WAIT);
    }
}

/// One round of [`kill_trees`]; returns how many live processes got SIGKILL.
///
/// The round first stops everything it finds (SIGSTOP) and then walks again:
/// a stopped process can neither fork nor die, so the second walk sees the
/// parent links intact, including children forked just before the stop.
/// Killing right away instead would re-parent a victim's children to the
/// subreaper before the walk could follow their parent links.
fn kill_round(trees: &[Arc<Tree>], sweep_prefix: Option<&str>) -> usize {
    let first = find_live_members(trees, sweep_prefix);
    signal_everything(trees, first.keys(), NixSignal::SIGSTOP);
    let mut doomed = find_live_members(trees, sweep_prefix);
    for (pid, start_time) in first {
        // A process of the first walk the second one missed is killed too,
        // unless its pid now names another process.
        if !doomed.contains_key(&pid)
            && procfs::read_stat(pid)
                .is_some_and(|stat| stat.start_time == start_time && !stat.is_dead())
        {
            doomed.insert(pid, start_time);
        }
    }
    signal_everything(trees, doomed.keys(), NixSignal::SIGKILL);
    doomed.len()
}

/// Sends `signal` to the process group of each tree and to each of `pids`.
fn signal_everything<'a>(
    trees: &[Arc<Tree>],
    pids: impl Iterator<Item = &'a i32>,
    signal: NixSignal,
) {
    for tree in trees {
        log_signal_error(tree.root, "process group", tree.signal_group(signal));
    }
    for pid in pids {
        log_signal_error(*pid, "process", kill(Pid::from_raw(*pid), signal));
    }
}

/// Walks `/proc` for the live processes of `trees` (remembering them in each
/// tree) and, with `sweep_prefix`, of every process whose marker starts with
/// it; returns them by pid with their start times. Never this process or init.
fn find_live_members(trees: &[Arc<Tree>], sweep_prefix: Option<&str>) -> HashMap<i32, u64> {
    let stats = procfs::snapshot();
    let mut walk = Walk::new(&stats);
    let mut members = HashSet::new();
    for tree in trees {
        let found = walk.tree_members(tree);
        let mut remembered = lock(&tree.members);
        for pid in &found {
            if let Some(stat) = walk.by_pid.get(pid) {
                remembered.insert(*pid, stat.start_time);
            }
        }
        members.extend(found);
    }
    if let Some(prefix) = sweep_prefix {
        let marked = walk.marked(prefix);
        members.extend(walk.descendants(marked));
    }
    let me = getpid().as_raw();
    members
        .into_iter()
        .filter(|pid| *pid > 1 && *pid != me)
        .filter_map(|pid| {
            walk.by_pid
                .get(&pid)
                .filter(|stat| !stat.is_dead())
                .map(|stat| (pid, stat.start_time))
        })
        .collect()
}

/// Logs a failed signal; a process that is already gone is no failure.
fn log_signal_error(pid: i32, what: &str, result: nix::Result<()>) {
    match result {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, %error, "cannot signal a {what} of a tree"),
    }
}
