//! A metadata lookup runs on the reader's thread only while every mount is
//! local (`server/src/fs/local_mounts.rs`), against the real binary in a
//! mount namespace of its own: with local filesystems only, `fs/getMetadata`
//! and `fs/canonicalize` start no fs pool thread; once a filesystem of
//! another type is mounted (the kernel reports the change), the next lookup
//! goes to the pool, whose thread then shows in `/proc`.
//!
//! Needs `unshare(1)`, `nsenter(1)` and the right to make a mount namespace
//! (root with CAP_SYS_ADMIN); where that is refused, the test says so and
//! passes without running, as the pids-limit test does without cgroups.

use std::process::Command;
use std::time::Duration;

use exec_testkit::{ServerLauncher, WireClient};
use pretty_assertions::assert_eq;
use serde_json::json;

/// How long any answer may take here.
const QUICK: Duration = Duration::from_secs(5);

/// The name the fs pool gives its threads (`fs/pool.rs`).
const FS_THREAD: &str = "exec-server-fs";

/// Types this test counts as local without looking further; anything else
/// already mounted is lazily unmounted in the server's private namespace
/// before the test begins, so the starting table is all local wherever it
/// runs.
const KNOWN_LOCAL: &[&str] = &[
    "cgroup", "cgroup2", "devpts", "devtmpfs", "ext4", "mqueue", "overlay", "proc", "sysfs",
    "tmpfs", "xfs", "btrfs",
];

/// Runs a command to its end: its stdout, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|error| format!("{program}: {error}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {args:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Runs a command inside the mount namespace of `pid`.
fn in_namespace_of(pid: u32, args: &[&str]) -> Result<String, String> {
    let target = pid.to_string();
    let mut full = vec!["--target", &target, "--mount", "--"];
    full.extend_from_slice(args);
    run("nsenter", &full)
}

/// How many of the server's threads are fs pool threads.
fn fs_threads(pid: u32) -> usize {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's threads");
    tasks
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim() == FS_THREAD)
        })
        .count()
}

/// The mount points whose type is not in [`KNOWN_LOCAL`], deepest first
/// (so a mount under another goes first).
fn unknown_mounts(pid: u32) -> Vec<String> {
    let table = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).expect("mountinfo");
    let mut points: Vec<String> = table
        .lines()
        .filter_map(|line| {
            let (head, tail) = line.split_once(" - ")?;
            let fs_type = tail.split_whitespace().next()?;
            let point = head.split_whitespace().nth(4)?;
            (!KNOWN_LOCAL.contains(&fs_type)).then(|| point.to_owned())
        })
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.matches('/').count()));
    points
}

#[tokio::test]
async fn metadata_lookups_use_the_pool_only_once_a_non_local_filesystem_is_mounted() {
    if let Err(reason) = run("unshare", &["--mount", "--propagation", "private", "true"]) {
        eprintln!("SKIPPED: no mount namespace can be made here ({reason})");
        return;
    }
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let wrapper = scratch.path().join("in-own-mount-namespace");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec unshare --mount --propagation private {} \"$@\"\n",
            exec_testkit::server_binary().display()
        ),
    )
    .expect("the wrapper script");
    run("chmod", &["+x", &wrapper.display().to_string()]).expect("chmod");
    let mount_point = scratch.path().join("mounted");
    std::fs::create_dir(&mount_point).expect("the mount point");

    let mut server = ServerLauncher::new()
        .binary(&wrapper)
        .start_websocket()
        .await
        .expect("the server starts");
    let pid = server.process.pid().expect("the server's pid");
    for point in unknown_mounts(pid) {
        in_namespace_of(pid, &["umount", "--lazy", &point]).expect("an unknown mount goes");
    }
    assert_eq!(unknown_mounts(pid), Vec::<String>::new());

    let mut client = WireClient::initialized_websocket(&server.url, QUICK).await;

    let root = json!({"path": "/"});
    let described = client.call("fs/getMetadata", root.clone()).await;
    assert_eq!(described["isDirectory"], json!(true), "{described}");
    let canonical = client.call("fs/canonicalize", root.clone()).await;
    assert_eq!(canonical["path"], json!("/"), "{canonical}");
    assert_eq!(
        fs_threads(pid),
        0,
        "with local mounts only, no lookup went to the fs pool"
    );

    let point = mount_point.display().to_string();
    in_namespace_of(pid, &["mount", "-t", "binfmt_misc", "none", &point])
        .expect("a binfmt_misc mount in the server's namespace");
    let described = client.call("fs/getMetadata", root).await;
    assert_eq!(described["isDirectory"], json!(true), "{described}");
    assert_eq!(
        fs_threads(pid),
        1,
        "after the mount the lookup went to the fs pool"
    );

    server.terminate();
    server
        .process
        .wait_for(QUICK)
        .await
        .expect("the server exits");
}
