//! The server-wide side of processes: what the server does once at start
//! (the child subreaper and orphan reaper, cgroup containment) and at the
//! end (killing every tree), and what its guardian process runs after the
//! server died.

use super::{ExitReason, cgroup, identity, reaper, registry, threads, tree};

/// Once at server start, inside the tokio runtime: makes this process the
/// child subreaper (`PR_SET_CHILD_SUBREAPER`), so orphaned descendants of
/// managed processes are re-parented to it, and starts the orphan reaper
/// thread, which on every SIGCHLD reaps the zombie children that this module
/// did not spawn and that are outside the server's own process group (so
/// exit statuses of tokio's children and of PTY children, and of children the
/// server starts elsewhere in its own group, are never stolen). It also gives
/// signals the server inherited as ignored (SIGINT and SIGQUIT when a shell
/// started it in the background, SIGHUP under `nohup`) a do-nothing handler,
/// so that children start with their default action and `process/signal`
/// works on them; and, inside a tokio runtime, it starts the thread that
/// kills process trees (see `threads`). Calling it again only renews the
/// subreaper flag.
///
/// Errors: the `prctl` failed (not Linux, or refused), or the reaper thread
/// or its SIGCHLD handler could not start.
pub fn init_reaper() -> std::io::Result<()> {
    reaper::init_reaper()?;
    // The kill thread starts now, while the OS still gives threads.
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(threads::warm_up());
    }
    Ok(())
}

/// Once at server start, after [`init_reaper`]: turns on cgroup containment
/// (see `cgroup.rs`): every process started from now on runs in a cgroup v2
/// of its own below `exec-server.<pid>` in this process's cgroup, and
/// killing a tree kills its cgroup. Without it trees are found by walking
/// `/proc`; `initialize` reports which is in force.
///
/// Errors: why cgroup v2 cannot be used here (no cgroup2 mount, no write
/// access, a kernel without `cgroup.kill`), as a sentence.
pub fn init_cgroup_containment() -> Result<(), String> {
    cgroup::init()
}

/// The cgroup directory holding every managed process of this server, when
/// cgroup containment is on (after [`init_reaper`]).
pub fn cgroup_directory() -> Option<&'static std::path::Path> {
    cgroup::server_directory()
}

/// This server's id, the prefix of its tree markers: its pid and 32 random
/// bits (`<pid>.<8 hex digits>`), unique across PID namespaces.
pub fn server_id() -> &'static str {
    identity::server_id()
}

/// For the guardian, after the server `server_id` died: kills its cgroup
/// `cgroup` (when it had one) and every process carrying its tree marker,
/// in rounds until none is left, then removes the cgroup directories.
/// Blocking.
pub fn kill_dead_server_trees(server_id: &str, cgroup: Option<&std::path::Path>) {
    tree::kill_swept_blocking(&tree::Sweep {
        marker_prefix: format!("{server_id}/"),
        cgroup: cgroup.map(std::path::Path::to_path_buf),
    });
    if let Some(directory) = cgroup {
        cgroup::remove(directory);
    }
}

/// What the guardian does after a server that released it (see
/// `guardian::release`) ended: that server's shutdown already killed every
/// tree and swept `/proc`, so only its cgroup is killed (one write, which
/// also catches anything forked since) and removed; the `/proc` sweep,
/// which reads every process's environment, is skipped.
pub fn remove_released_server_cgroup(cgroup: Option<&std::path::Path>) {
    if let Some(directory) = cgroup {
        tree::kill_cgroup_blocking(directory);
        cgroup::remove(directory);
    }
}

/// Server shutdown (SIGTERM/SIGINT): kills every managed process tree of every
/// table (exit reason `killed`), and every leftover process carrying this
/// server's tree marker, then waits until the children are reaped.
pub async fn kill_all() {
    let processes = registry::live_processes();
    for process in &processes {
        process.request_kill(ExitReason::Killed);
    }
    let trees = processes
        .iter()
        .map(|process| process.tree.clone())
        .collect();
    let sweep = tree::Sweep {
        marker_prefix: registry::server_marker_prefix(),
        cgroup: cgroup::server_directory().map(std::path::Path::to_path_buf),
    };
    tree::kill_trees(trees, Some(sweep)).await;
    for process in &processes {
        process.tree.wait_reaped().await;
    }
}
