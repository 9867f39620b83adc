//! Killing whole process trees, and reaping what is left of them.
//!
//! - [`Tree`]: the operating-system side of one managed process: its pid
//!   (which is also its process group id, and for a PTY its session id), its
//!   tree marker, whether it was reaped, and the descendants seen so far.
//! - [`kill_trees`]: SIGKILLs trees, in rounds until none of their processes is
//!   alive (see the `process` module documentation for how members are found).
//! - [`spawn_tracked`] / [`child_reaped`]: the set of managed children, which the
//!   orphan reaper must leave alone because tokio or a waiter thread reaps them.
//! - [`init_reaper`]: makes this process the child subreaper and starts the
//!   orphan reaper thread.
//! - The registry of live managed processes, for [`super::kill_all`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal as NixSignal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::{Pid, getpgrp, getpid};
use tokio::sync::{Notify, watch};

use super::managed::ManagedProcess;
use super::procfs::{self, ProcStat};

/// Kill rounds before giving up on processes that do not die (a process stuck
/// in uninterruptible sleep, `D`, cannot be killed until it wakes).
const MAX_KILL_ROUNDS: usize = 50;

/// How long a kill round waits for a reaping event before looking again; a
/// SIGKILLed process usually dies well within it, and any reap ends the wait early.
const KILL_ROUND_WAIT: Duration = Duration::from_millis(20);

/// Locks a mutex whose data stays consistent even if a holder panicked (every
/// critical section here leaves it valid at each step).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Pids of the children this module spawned and that tokio or a waiter thread
/// has not reaped yet. The orphan reaper never waits for them, and holding
/// this lock across a spawn keeps it from seeing a new child before it is here.
static MANAGED_CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Counts reaping events (a managed child reaped, an orphan scan done), so a
/// kill round can wait for the next one instead of sleeping a fixed time.
static REAP_EVENTS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::Sender::new(0));

/// Asks the orphan reaper to scan now, beyond the SIGCHLDs it waits for.
static RESCAN: Notify = Notify::const_new();

/// Whether the orphan reaper thread runs.
static REAPER_STARTED: Mutex<bool> = Mutex::new(false);

/// Live managed processes of all connections by serial, for `kill_all`.
static LIVE: LazyLock<Mutex<HashMap<u64, Weak<ManagedProcess>>>> = LazyLock::new(Default::default);

/// Runs `spawn` (which returns the child and its pid) while the orphan
/// reaper is locked out, and records the pid as a managed child.
pub(crate) fn spawn_tracked<T>(
    spawn: impl FnOnce() -> io::Result<(T, u32)>,
) -> io::Result<(T, u32)> {
    let mut children = lock(&MANAGED_CHILDREN);
    let (child, pid) = spawn()?;
    children.insert(pid as i32);
    Ok((child, pid))
}

/// Records that a managed child was reaped: its pid may now be reused, and a
/// kill round waiting for it may look again.
pub(crate) fn child_reaped(pid: u32) {
    lock(&MANAGED_CHILDREN).remove(&(pid as i32));
    REAP_EVENTS.send_modify(|count| *count = count.wrapping_add(1));
    // A zombie orphan with this pid could only have been skipped while the
    // pid was on the list; a scan now catches it.
    RESCAN.notify_one();
}

/// Gives up on a managed child that cannot be waited for normally (an error
/// after the spawn): kills its group and leaves the zombie to the orphan reaper.
pub(crate) fn abandon_child(pid: u32) {
    let _ = killpg(Pid::from_raw(pid as i32), NixSignal::SIGKILL);
    lock(&MANAGED_CHILDREN).remove(&(pid as i32));
    RESCAN.notify_one();
}

/// Makes this process the child subreaper and starts the orphan reaper; see
/// [`super::init_reaper`].
pub(crate) fn init_reaper() -> io::Result<()> {
    nix::sys::prctl::set_child_subreaper(true).map_err(io::Error::from)?;
    let mut started = lock(&REAPER_STARTED);
    if *started {
        return Ok(());
    }
    let (ready_sender, ready) = std::sync::mpsc::channel::<io::Result<()>>();
    std::thread::Builder::new()
        .name(String::from("exec-server-reaper"))
        .spawn(move || run_reaper(ready_sender))?;
    ready
        .recv()
        .map_err(|_| io::Error::other("the orphan reaper thread ended before it started"))??;
    *started = true;
    Ok(())
}

/// The orphan reaper thread: it owns a small runtime of its own, so it does not
/// depend on which runtime called `init_reaper` (tests start many).
fn run_reaper(ready: std::sync::mpsc::Sender<io::Result<()>>) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let mut sigchld = match signal(SignalKind::child()) {
            Ok(sigchld) => sigchld,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        let _still_ignored = restore_ignored_signals_for_children();
        let _ = ready.send(Ok(()));
        loop {
            reap_orphans();
            REAP_EVENTS.send_modify(|count| *count = count.wrapping_add(1));
            tokio::select! {
                _ = sigchld.recv() => {}
                () = RESCAN.notified() => {}
            }
        }
    });
}

/// The signals a client can send with `process/signal` that can be ignored.
const CLIENT_SIGNALS: [NixSignal; 6] = [
    NixSignal::SIGHUP,
    NixSignal::SIGINT,
    NixSignal::SIGQUIT,
    NixSignal::SIGUSR1,
    NixSignal::SIGUSR2,
    NixSignal::SIGTERM,
];

/// A server started in the background by a shell ignores SIGINT and SIGQUIT
/// (and under `nohup` SIGHUP), and an ignored signal stays ignored across
/// `exec`: a pipe child would then shrug off `process/signal interrupt`.
/// Installing a handler (which does nothing but record the signal, so the
/// server still effectively ignores it) makes `exec` reset the signal to its
/// default in every child. Only signals found ignored in
/// `/proc/self/status` are touched; the streams are returned so their
/// handlers are plainly in use.
fn restore_ignored_signals_for_children() -> Vec<tokio::signal::unix::Signal> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Vec::new();
    };
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .unwrap_or(0);
    CLIENT_SIGNALS
        .iter()
        .filter(|signal| ignored & (1 << (**signal as i32 - 1)) != 0)
        .filter_map(|signal| {
            let kind = tokio::signal::unix::SignalKind::from_raw(*signal as i32);
            tokio::signal::unix::signal(kind)
                .inspect_err(
                    |error| tracing::warn!(?signal, %error, "cannot restore an ignored signal"),
                )
                .ok()
        })
        .collect()
}

/// Reaps the zombie children of this process that it did not spawn through
/// this module: orphans of managed trees, re-parented here because this
/// process is their subreaper.
///
/// A zombie in this process's own process group is left alone: every managed
/// tree starts in a group of its own, while children started elsewhere in the
/// server (or by other tests in a test binary) usually stay in the server's
/// group, and their owners wait for them.
fn reap_orphans() {
    let children = lock(&MANAGED_CHILDREN);
    let me = getpid().as_raw();
    let own_group = getpgrp().as_raw();
    let candidates: Vec<ProcStat> = match procfs::own_children() {
        Some(pids) => pids.into_iter().filter_map(procfs::read_stat).collect(),
        None => procfs::snapshot()
            .into_iter()
            .filter(|stat| stat.ppid == me)
            .collect(),
    };
    for stat in candidates {
        if stat.ppid != me
            || !stat.is_dead()
            || stat.pgrp == own_group
            || children.contains(&stat.pid)
        {
            continue;
        }
        match waitpid(Pid::from_raw(stat.pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(status) => tracing::debug!(pid = stat.pid, ?status, "reaped an orphan"),
            Err(Errno::ECHILD) => {}
            Err(error) => tracing::warn!(pid = stat.pid, %error, "cannot reap an orphan"),
        }
    }
}

/// The operating-system side of one managed process, as tree killing sees it.
#[derive(Debug)]
pub(crate) struct Tree {
    /// The child's pid; also its process group id (and session id on a PTY).
    root: i32,
    /// The value of the tree marker variable its processes inherit.
    marker: String,
    /// Whether the child was reaped; from then on its pid may be reused, so it
    /// is neither signalled nor trusted as a group or session id.
    reaped: watch::Sender<bool>,
    /// Descendants seen by earlier walks, by pid with their start times, so
    /// they are still found after they left the group and lost their parent.
    members: Mutex<HashMap<i32, u64>>,
}

impl Tree {
    /// The tree of the child `root` whose processes carry `marker`.
    pub(crate) fn new(root: u32, marker: String) -> Self {
        Self {
            root: root as i32,
            marker,
            reaped: watch::Sender::new(false),
            members: Mutex::new(HashMap::new()),
        }
    }

    /// The child's pid.
    pub(crate) fn root(&self) -> u32 {
        self.root as u32
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

/// Kills `trees` and, when `sweep_prefix` is given, every process whose marker
/// starts with it (with descendants): SIGKILL to each tree's process group
/// and to every process found, in rounds until none of them is alive.
///
/// There are at least two rounds: a process that is in the middle of an
/// `exec` shows an empty environment for an instant, so one walk alone could
/// miss its marker, and one that forked just before the first round's
/// signals is only found by the next walk.
pub(crate) async fn kill_trees(trees: Vec<Arc<Tree>>, sweep_prefix: Option<String>) {
    let trees = Arc::new(trees);
    let sweep_prefix = Arc::new(sweep_prefix);
    for round in 0..MAX_KILL_ROUNDS {
        let mut events = REAP_EVENTS.subscribe();
        let walk = {
            let trees = trees.clone();
            let sweep_prefix = sweep_prefix.clone();
            tokio::task::spawn_blocking(move || kill_round(&trees, sweep_prefix.as_deref()))
        };
        let alive = match walk.await {
            Ok(alive) => alive,
            Err(error) => {
                tracing::error!(%error, "a kill round failed");
                return;
            }
        };
        if alive == 0 && round > 0 {
            // Orphans that died in the last rounds are zombies of this
            // process now; the reaper collects them.
            RESCAN.notify_one();
            return;
        }
        // Waiting on an event and not a fixed sleep: the reap of a killed
        // child or adopted orphan wakes this early.
        let _ = tokio::time::timeout(KILL_ROUND_WAIT, events.changed()).await;
    }
    RESCAN.notify_one();
    tracing::warn!("some processes of killed trees are still alive after {MAX_KILL_ROUNDS} rounds");
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

/// Registers a live managed process for `kill_all`.
pub(crate) fn register_live(serial: u64, process: &Arc<ManagedProcess>) {
    lock(&LIVE).insert(serial, Arc::downgrade(process));
}

/// Removes a process from the `kill_all` registry (it closed).
pub(crate) fn unregister_live(serial: u64) {
    lock(&LIVE).remove(&serial);
}

/// Every registered live managed process.
pub(crate) fn live_processes() -> Vec<Arc<ManagedProcess>> {
    lock(&LIVE).values().filter_map(Weak::upgrade).collect()
}

/// The marker prefix shared by every process this server started.
pub(crate) fn server_marker_prefix() -> String {
    format!("{}/", std::process::id())
}
