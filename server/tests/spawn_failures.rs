//! A `process/start` whose child fails between its clone and its exec (a
//! program that does not exist or cannot run, on pipes and on a PTY) is
//! answered `spawnFailed` and leaves nothing behind in the real binary: no
//! zombie child of the server, and (with cgroup containment) no process
//! cgroup; the same connection then starts processes as before.

mod common;

use std::path::{Path, PathBuf};

use exec_testkit::{ServerLauncher, Transport, WireClient, scratch_dir};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use common::cgroup::server_cgroup_directory;

/// The children of `pid` that are zombies (state `Z`), by pid.
fn zombie_children(pid: u32) -> Vec<String> {
    let mut zombies = Vec::new();
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's tasks");
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for child in children.split_whitespace() {
            let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let state = stat
                .rsplit_once(") ")
                .map(|(_, rest)| rest.starts_with('Z'));
            if state == Some(true) {
                zombies.push(stat);
            }
        }
    }
    zombies
}

/// The process cgroups (`t<table>/p<serial>`) below the cgroup of the
/// server `pid`, when it has one.
fn process_cgroups(pid: u32) -> Vec<PathBuf> {
    let Some(server) = server_cgroup_directory(pid) else {
        return Vec::new();
    };
    let subdirectories = |directory: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(directory)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
                    .map(|entry| entry.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    subdirectories(&server)
        .iter()
        .flat_map(|table| subdirectories(table))
        .collect()
}

fn start_params(process_id: &str, program: &str, tty: bool) -> Value {
    json!({
        "processId": process_id,
        "argv": [program, "an argument"],
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "tty": tty,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_fails_before_the_exec_is_spawn_failed_and_leaves_no_zombie_or_cgroup() {
    let mut client = WireClient::start(Transport::Stdio, &ServerLauncher::new()).await;
    let initialized = client.handshake().await;
    let pid = client
        .server_mut()
        .and_then(|server| server.pid())
        .expect("a server process");
    if initialized["containment"]["mechanism"] == json!("cgroup") {
        // Otherwise the cgroup check below would look at nothing.
        assert!(server_cgroup_directory(pid).is_some(), "{initialized}");
    }
    let dir = scratch_dir();
    let not_executable = dir.path().join("not-executable");
    std::fs::write(&not_executable, "echo never\n").expect("the file");
    let not_executable = not_executable.to_str().expect("a UTF-8 path").to_owned();

    let failing = [
        ("missing", "/no/such/program", false),
        ("missing-on-a-pty", "/no/such/program", true),
        ("not-executable", not_executable.as_str(), false),
        ("not-executable-on-a-pty", not_executable.as_str(), true),
    ];
    for (process_id, program, tty) in failing {
        let response = client
            .request("process/start", start_params(process_id, program, tty))
            .await;
        assert_eq!(
            response["error"]["data"]["kind"],
            json!("spawnFailed"),
            "{process_id}: {response}"
        );
        // The failed child was reaped (and its cgroup removed) before the
        // answer.
        assert_eq!(zombie_children(pid), Vec::<String>::new(), "{process_id}");
        assert_eq!(process_cgroups(pid), Vec::<PathBuf>::new(), "{process_id}");
    }

    client
        .call("process/start", start_params("works", "/bin/echo", false))
        .await;
    let events = client.events_until_closed("works").await;
    assert_eq!(exec_testkit::output_of(&events, "stdout"), "an argument\n");
}
