//! A thread the OS refuses does not panic the server (issue 13, finding 2),
//! against the real binary: under a pids limit that leaves it no room for
//! another thread, fs calls and process starts are answered with a typed
//! error, terminate still kills, the server keeps serving, and once the
//! limit is lifted fs calls and starts work again.
//!
//! The limit is a pids cgroup the test creates (cgroup v1 `pids`, or cgroup
//! v2 where its `pids` controller is enabled). `RLIMIT_NPROC` would not do:
//! it does not apply to root, as which these tests usually run. Where no
//! pids cgroup can be created, the test says so and passes without running.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use exec_testkit::{ServerLauncher, WireClient};
use pretty_assertions::assert_eq;
use serde_json::json;

/// How long any answer may take here.
const QUICK: Duration = Duration::from_secs(5);

/// Where a pids cgroup may be made: cgroup v1's `pids` hierarchy, then the
/// cgroup v2 hierarchies (the unified one under v1, or v2 alone).
const CGROUP_ROOTS: [&str; 3] = [
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup",
];

/// A pids cgroup made for this test, removed on drop (after the processes
/// in it are gone).
struct PidsCgroup {
    /// Its directory.
    directory: PathBuf,
}

impl PidsCgroup {
    /// A new pids cgroup, or why none can be made here.
    fn create() -> Result<Self, String> {
        let mut reasons = Vec::new();
        for root in CGROUP_ROOTS {
            let directory = Path::new(root).join(format!(
                "exec-server-fs-thread-limit-{}",
                std::process::id()
            ));
            match fs::create_dir(&directory) {
                Ok(()) if directory.join("pids.max").exists() => return Ok(Self { directory }),
                Ok(()) => {
                    let _ = fs::remove_dir(&directory);
                    reasons.push(format!("{root}: no pids controller"));
                }
                Err(error) => reasons.push(format!("{root}: {error}")),
            }
        }
        Err(reasons.join("; "))
    }

    fn write(&self, file: &str, value: &str) {
        let path = self.directory.join(file);
        fs::write(&path, value).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    }

    fn current(&self) -> String {
        let path = self.directory.join("pids.current");
        fs::read_to_string(&path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .trim()
            .to_owned()
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.directory.join("pids.max"), "max");
        // A server still exiting (after a failed assertion) moves back to
        // the parent, so that the directory can go.
        if let (Some(parent), Ok(procs)) = (
            self.directory.parent(),
            fs::read_to_string(self.directory.join("cgroup.procs")),
        ) {
            for pid in procs.lines() {
                let _ = fs::write(parent.join("cgroup.procs"), pid);
            }
        }
        let _ = fs::remove_dir(&self.directory);
    }
}

#[tokio::test]
async fn fs_calls_under_a_pids_limit_fail_cleanly_and_the_server_keeps_serving() {
    let cgroup = match PidsCgroup::create() {
        Ok(cgroup) => cgroup,
        Err(reasons) => {
            eprintln!("SKIPPED: no pids cgroup can be created here ({reasons})");
            return;
        }
    };
    let mut server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let pid = server.process.pid().expect("the server's pid");
    let mut client = WireClient::initialized_websocket(&server.url, QUICK).await;

    // A process started before the limit, for terminate to kill under it.
    let sleeper = client
        .call(
            "process/start",
            json!({"processId": "sleeper", "argv": ["sleep", "300"], "cwd": "/",
                   "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
        )
        .await;
    let sleeper_pid = sleeper["pid"].as_i64().expect("the sleeper's pid");
    client
        .call(
            "process/start",
            json!({"processId": "terminal", "argv": ["cat"], "cwd": "/",
                   "env": {"PATH": "/usr/bin:/bin"}, "tty": true}),
        )
        .await;

    // The server may keep the threads it has, and start none.
    cgroup.write("cgroup.procs", &pid.to_string());
    let threads = cgroup.current();
    cgroup.write("pids.max", &threads);

    // A listing, which always runs on the fs pool (a metadata lookup may
    // run on the reader's thread, see fs/local_mounts.rs).
    let listing = json!({"path": "/"});
    for attempt in 0..3 {
        // Before the fix, this panicked ("OS can't spawn worker thread") and
        // the request was never answered.
        let response = client.request("fs/readDirectory", listing.clone()).await;
        let error = &response["error"];
        assert_eq!(
            (error["data"]["kind"].clone(), error["data"]["path"].clone()),
            (json!("io"), json!("/")),
            "attempt {attempt}: {response}"
        );
        let message = error["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("cannot start a thread"),
            "the message says why: {message}"
        );
    }
    // Requests that need no new thread are still served.
    let listed = client.call("process/list", json!({})).await;
    assert_eq!(
        listed["processes"][0]["processId"],
        json!("sleeper"),
        "{listed}"
    );
    // A start gets a typed error (no thread, or no process: the fork is
    // refused too), never a lost request.
    let refused = client
        .request(
            "process/start",
            json!({"processId": "refused", "argv": ["true"], "cwd": "/",
                   "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
        )
        .await;
    let kind = refused["error"]["data"]["kind"].clone();
    assert!(
        kind == json!("spawnFailed") || kind == json!("limitExceeded"),
        "{refused}"
    );
    // A PTY write blocks on a thread of its own: it is written, or refused
    // with a typed error, never lost.
    let written = client
        .request(
            "process/write",
            json!({"processId": "terminal", "chunk": "aGkK"}),
        )
        .await;
    let written_kind = written["error"]["data"]["kind"].clone();
    assert!(
        written["result"]["status"] == json!("accepted")
            || written_kind == json!("io")
            || written_kind == json!("limitExceeded"),
        "{written}"
    );
    // Process control keeps working: terminate kills the tree.
    let terminated = client
        .call("process/terminate", json!({"processId": "sleeper"}))
        .await;
    assert_eq!(terminated, json!({"running": true}));
    assert!(
        exec_testkit::wait_gone(sleeper_pid).await,
        "the sleeper survived terminate under the limit"
    );

    cgroup.write("pids.max", "max");
    let listed = client.call("fs/readDirectory", listing).await;
    assert!(
        listed["entries"].as_array().is_some_and(|entries| entries
            .iter()
            .any(|entry| entry["fileName"] == json!("proc"))),
        "{listed}"
    );
    let started = client
        .call(
            "process/start",
            json!({"processId": "echo", "argv": ["echo", "hi"], "cwd": "/",
                   "env": {"PATH": "/usr/bin:/bin"}, "tty": false}),
        )
        .await;
    assert_eq!(started["processId"], json!("echo"));
    let exited = client.notification("process/exited", "echo").await;
    assert_eq!(exited["params"]["exitCode"], json!(0));

    server.terminate();
    let status = server
        .process
        .wait_for(QUICK)
        .await
        .expect("the server exits");
    assert!(status.success(), "{status}");
    drop(cgroup);
}
