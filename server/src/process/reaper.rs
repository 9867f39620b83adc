//! The child subreaper and the orphan reaper: which zombie children of this
//! process the reaper may collect, and which belong to someone else.
//!
//! - [`init_reaper`]: makes this process the child subreaper (so orphaned
//!   descendants of managed processes are re-parented here) and starts the
//!   orphan reaper thread, which reaps them on every SIGCHLD.
//! - [`spawn_tracked`] / [`child_reaped`]: the set of managed children,
//!   which the orphan reaper must leave alone because their waiters
//!   (`child_wait`) reap them and want their exit status.
//! - [`reap_events`] / [`request_rescan`]: what tree killing waits on and asks for.
//!
//! # The invariant between spawns and the reaper
//! The orphan reaper never reaps a managed child: whenever it scans, every
//! managed child whose exit status a waiter waits for is in
//! [`MANAGED_CHILDREN`]. A scan happens only while [`SPAWNING`] is held for
//! writing, and a spawn holds it for reading from before the clone until the
//! child's pid is in [`MANAGED_CHILDREN`]; so a scan sees either no trace of
//! a spawn in progress or its registered pid.
//! Spawns hold the read side, so they do not wait for one another, only for
//! a scan (a few reads of `/proc`); the reaper waits out the spawns in
//! progress, which is harmless on its own thread (std's `RwLock` on Linux
//! makes new readers wait behind a waiting writer, so a stream of spawns
//! does not starve it). [`MANAGED_CHILDREN`] itself is locked only for an
//! insert, a removal, a look-up or a scan, never across a spawn. A pid
//! leaves the set once its child was reaped (its pid may then be reused).
//! A scan is skipped when a look at the zombie children
//! (`orphan_scan_needed`) shows it could reap nothing, but not for longer
//! than a second of looks that each found a managed zombie in the way.

use std::collections::BTreeSet;
use std::io;
use std::sync::{LazyLock, Mutex, RwLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal as NixSignal;
use nix::sys::wait::{Id, WaitPidFlag, waitid, waitpid};
use nix::unistd::{Pid, getpgrp, getpid};
use tokio::sync::{Notify, watch};

use super::procfs::{self, ProcStat};
use crate::sync::{lock, read, write};

/// Pids of the children this module spawned and that their waiters have
/// not reaped yet. The orphan reaper never waits for them.
static MANAGED_CHILDREN: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

/// Held for reading by each spawn until its pid is in [`MANAGED_CHILDREN`],
/// and for writing by each orphan scan (see the module documentation).
static SPAWNING: RwLock<()> = RwLock::new(());

/// Counts reaping events (a managed child reaped, an orphan scan done), so a
/// kill round can wait for the next one instead of sleeping a fixed time.
static REAP_EVENTS: LazyLock<watch::Sender<u64>> = LazyLock::new(|| watch::Sender::new(0));

/// Asks the orphan reaper to scan now, beyond the SIGCHLDs it waits for.
static RESCAN: Notify = Notify::const_new();

/// How long the looks of [`reap_orphans`] may keep finding a managed zombie
/// in the way before the orphan reaper scans anyway.
const HIDDEN_ZOMBIE_RESCAN: Duration = Duration::from_secs(1);

/// Whether the orphan reaper thread runs.
static REAPER_STARTED: Mutex<bool> = Mutex::new(false);

/// Runs `spawn` (which returns the child and its pid) so that the orphan
/// reaper cannot scan before the pid is recorded as a managed child; other
/// spawns run meanwhile. Errors: those of `spawn`.
pub(crate) fn spawn_tracked<T>(
    spawn: impl FnOnce() -> io::Result<(T, u32)>,
) -> io::Result<(T, u32)> {
    let _spawning = read(&SPAWNING);
    let (child, pid) = spawn()?;
    lock(&MANAGED_CHILDREN).insert(pid as i32);
    Ok((child, pid))
}

/// Records that a managed child was reaped: its pid may now be reused, and a
/// kill round waiting for it may look again.
pub(crate) fn child_reaped(pid: u32) {
    lock(&MANAGED_CHILDREN).remove(&(pid as i32));
    REAP_EVENTS.send_modify(|count| *count = count.wrapping_add(1));
    // A zombie orphan with this pid (reused right after the reap) could
    // only have been skipped while the pid was on the list; a scan now
    // catches it, when there is anything a scan could reap at all.
    if orphan_scan_needed() {
        RESCAN.notify_one();
    }
}

/// Whether a scan for orphans could find one to reap: true unless this
/// process has no zombie child at all, or the one zombie the kernel shows
/// (`waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT | __WALL)`, which reaps
/// nothing) is a managed child.
///
/// Skipping the scan then is safe because of what follows either answer:
/// - No zombie child: there is nothing to reap now, and a child that dies
///   later sends SIGCHLD, which the reaper waits for (a SIGCHLD arriving
///   during a scan or this check is kept by the signal stream and wakes the
///   next round).
/// - A managed zombie: its waiter reaps it and then calls [`child_reaped`],
///   which makes this check again with that pid off the list; so another
///   zombie hidden behind it is found then (by induction over the managed
///   zombies, each of which is reaped and checked after once). Its pid on
///   the list is that child's alone until its waiter reaped it: no other
///   process can have it before.
///
/// A zombie whose owner is someone else (a child in the server's own
/// process group) only makes a scan happen that leaves it alone, as before.
fn orphan_scan_needed() -> bool {
    zombie_children() == ZombieChildren::Other
}

/// What the kernel shows of this process's zombie children: one of them,
/// or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ZombieChildren {
    /// No zombie child (or no child at all).
    None,
    /// The zombie shown is a managed child.
    Managed,
    /// The zombie shown is another child (or the look failed).
    Other,
}

/// Looks at one zombie child, reaping nothing (`waitid(P_ALL, WEXITED |
/// WNOHANG | WNOWAIT | __WALL)`).
fn zombie_children() -> ZombieChildren {
    let flags =
        WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL;
    match waitid(Id::All, flags) {
        Ok(status) => match status.pid() {
            None => ZombieChildren::None,
            Some(pid) if lock(&MANAGED_CHILDREN).contains(&pid.as_raw()) => ZombieChildren::Managed,
            Some(_) => ZombieChildren::Other,
        },
        // ECHILD: no child at all. Another error: scan, as before.
        Err(Errno::ECHILD) => ZombieChildren::None,
        Err(_) => ZombieChildren::Other,
    }
}

/// A receiver that changes on every reaping event (a managed child reaped, an
/// orphan scan done), for a kill round to wait on instead of a fixed sleep.
pub(crate) fn reap_events() -> watch::Receiver<u64> {
    REAP_EVENTS.subscribe()
}

/// Asks the orphan reaper to scan now, for orphans that just died.
pub(crate) fn request_rescan() {
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
        // Since when every look found a managed zombie in the way.
        let mut hidden_since: Option<tokio::time::Instant> = None;
        loop {
            let forced = hidden_since.is_some_and(|since| since.elapsed() >= HIDDEN_ZOMBIE_RESCAN);
            hidden_since = if reap_orphans(forced) {
                hidden_since.or_else(|| Some(tokio::time::Instant::now()))
            } else {
                None
            };
            REAP_EVENTS.send_modify(|count| *count = count.wrapping_add(1));
            let rescan_at = hidden_since.map(|since| since + HIDDEN_ZOMBIE_RESCAN);
            tokio::select! {
                _ = sigchld.recv() => {}
                () = RESCAN.notified() => {}
                () = tokio::time::sleep_until(rescan_at.unwrap_or_else(tokio::time::Instant::now)),
                    if rescan_at.is_some() => {}
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
    let ignored = ignored_signals();
    CLIENT_SIGNALS
        .iter()
        .filter(|signal| ignored & signal_bit(**signal) != 0)
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

/// Whether this process ignores `signal` (as a shell leaves SIGINT and
/// SIGQUIT for a background job, and `nohup` SIGHUP); false when
/// `/proc/self/status` cannot be read. Called before [`init_reaper`], it
/// tells what the process inherited.
pub fn is_ignored(signal: NixSignal) -> bool {
    ignored_signals() & signal_bit(signal) != 0
}

/// The `SigIgn` mask of `/proc/self/status` (0 when unreadable).
fn ignored_signals() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("SigIgn:"))
                .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// `signal`'s bit in a `/proc` signal mask.
fn signal_bit(signal: NixSignal) -> u64 {
    1 << (signal as i32 - 1)
}

/// Whether [`reap_orphans`] skips its scan, after a look at the zombie
/// children unless `forced`: `Some(true)` when the zombie shown is a
/// managed child, `Some(false)` when there is none, `None` to scan.
fn scan_skipped(forced: bool) -> Option<bool> {
    if forced {
        return None;
    }
    match zombie_children() {
        ZombieChildren::None => Some(false),
        ZombieChildren::Managed => Some(true),
        ZombieChildren::Other => None,
    }
}

/// Reaps the zombie children of this process that it did not spawn through
/// this module: orphans of managed trees, re-parented here because this
/// process is their subreaper.
///
/// A zombie in this process's own process group is left alone: every managed
/// tree starts in a group of its own, while children started elsewhere in the
/// server (or by other tests in a test binary) usually stay in the server's
/// group, and their owners wait for them.
///
/// `forced` scans without looking first. Returns whether the scan was
/// skipped because the zombie the kernel showed is a managed child (see
/// [`orphan_scan_needed`]): when every look finds one for
/// [`HIDDEN_ZOMBIE_RESCAN`], the reaper scans anyway. A managed child's
/// waiter normally reaps it within moments and looks again
/// ([`child_reaped`]); the forced scan covers a waiter that never runs (its
/// runtime was dropped, as a test's is), whose zombie would otherwise hide
/// every orphan behind it for good, and costs a steady stream of starts
/// (whose zombies are often the one shown) one scan a second.
fn reap_orphans(forced: bool) -> bool {
    if let Some(hidden) = scan_skipped(forced) {
        return hidden;
    }
    let _no_spawn_in_progress = write(&SPAWNING);
    // Looked at again with no spawn in progress: the zombie may have been a
    // child whose spawn had not recorded its pid yet (a `/bin/true` can exit
    // before its spawning thread runs again on a busy machine). Now every
    // finished spawn's pid is recorded, and skipping stays safe for the
    // reasons `orphan_scan_needed` gives; the scan reads `/proc` for every
    // thread, which under a stream of spawns cost more than the spawns'
    // own bookkeeping.
    if let Some(hidden) = scan_skipped(forced) {
        return hidden;
    }
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
    false
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[tokio::test]
    async fn an_orphan_behind_a_managed_zombie_whose_waiter_never_runs_is_reaped() {
        init_reaper().expect("subreaper");
        let mut rounds = reap_events();
        // A managed child whose waiter never comes (as when a test's runtime
        // is dropped): its zombie stays, on the managed list, and is older
        // than the orphan, so the kernel shows it first.
        let (_, managed) = spawn_tracked(|| {
            let child = std::process::Command::new("/bin/true")
                .process_group(0)
                .spawn()?;
            let pid = child.id();
            Ok((child, pid))
        })
        .expect("true starts");
        // Waited for and taken off the list on every way out of the test,
        // a panic included.
        let managed = ManagedZombie(managed);
        // A child that nobody waits for, in a group of its own, as an orphan
        // of a managed tree is.
        let orphan = std::process::Command::new("/bin/true")
            .process_group(0)
            .spawn()
            .expect("true starts")
            .id();
        let reaped = tokio::time::timeout(Duration::from_secs(20), async {
            while procfs::read_stat(orphan as i32).is_some() {
                if rounds.changed().await.is_err() {
                    return;
                }
            }
        })
        .await;
        drop(managed);
        assert!(reaped.is_ok(), "the orphan {orphan} is still a zombie");
        assert_eq!(procfs::read_stat(orphan as i32), None);
    }

    /// A managed child of a test, waited for and taken off the managed list
    /// when dropped.
    struct ManagedZombie(u32);

    impl Drop for ManagedZombie {
        fn drop(&mut self) {
            let _ = waitpid(Pid::from_raw(self.0 as i32), None);
            child_reaped(self.0);
        }
    }
}
