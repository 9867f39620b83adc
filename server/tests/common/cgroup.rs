//! Where the cgroups of a server started by a test live: its
//! `exec-server.<pid>.<random>` directory beside the test's own cgroup v2.

use std::path::PathBuf;

/// The directory of this test process's cgroup v2 (a server it starts
/// runs there too): the `0::` line of `/proc/self/cgroup` below the cgroup2
/// mount.
pub fn own_cgroup_v2_directory() -> Option<PathBuf> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let own = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    Some(cgroup_v2_mount()?.join(own.trim_start_matches('/')))
}

/// Where the cgroup v2 hierarchy is mounted (with its root at `/`): the
/// directory a `0::PATH` line of `/proc/PID/cgroup` is relative to.
pub fn cgroup_v2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mounts.lines().find_map(|line| {
        let (before, after) = line.split_once(" - ")?;
        let fields: Vec<&str> = before.split_whitespace().collect();
        (after.starts_with("cgroup2 ") && fields.get(3) == Some(&"/"))
            .then(|| fields.get(4).map(PathBuf::from))
            .flatten()
    })
}

/// Where the server `pid` keeps its cgroups: `exec-server.<pid>.<random>`
/// beside the cgroup of this test process (the server inherits it).
pub fn server_cgroup_directory(pid: u32) -> Option<PathBuf> {
    let prefix = format!("exec-server.{pid}.");
    std::fs::read_dir(own_cgroup_v2_directory()?)
        .ok()?
        .flatten()
        .find(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|name| name.starts_with(&prefix))
        })
        .map(|entry| entry.path())
}

/// Whether this test process could create a cgroup v2 with `cgroup.kill`,
/// as a server it starts will try to; probed once per test binary.
pub fn cgroup_v2_is_writable() -> bool {
    static WRITABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WRITABLE.get_or_init(|| {
        let Some(own) = own_cgroup_v2_directory() else {
            return false;
        };
        let probe = own.join(format!("containment-probe-{}", std::process::id()));
        let usable = std::fs::create_dir(&probe).is_ok() && probe.join("cgroup.kill").exists();
        let _ = std::fs::remove_dir(&probe);
        usable
    })
}
