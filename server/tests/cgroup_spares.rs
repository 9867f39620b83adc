//! Spare cgroups against the real binary: the emptied cgroup of a closed
//! process serves the next start on its connection; one that still holds a
//! live descendant does not; and neither a kill of the closed process nor
//! its removal from the table reaches the process that took its cgroup
//! over. Each case says so and passes where the machine gives the tests no
//! writable cgroup v2 (the server then contains by `/proc` walks).

mod common;

use exec_testkit::{ServerLauncher, Transport, WireClient, output_of, process_alive, wait_gone};
use serde_json::{Value, json};

use common::cgroup::{cgroup_v2_is_writable, cgroup_v2_mount};

/// A server over stdio with `args`, handshaken; `None` (after saying so)
/// where this machine gives the tests no writable cgroup v2.
async fn client(args: &[&str]) -> Option<WireClient> {
    if !cgroup_v2_is_writable() {
        eprintln!("skipped: this machine gives the tests no writable cgroup v2");
        return None;
    }
    let launcher = ServerLauncher::new().args(args.iter().copied());
    let mut client = WireClient::start(Transport::Stdio, &launcher).await;
    let initialized = client.handshake().await;
    assert_eq!(
        initialized["containment"]["mechanism"],
        json!("cgroup"),
        "{initialized}"
    );
    Some(client)
}

/// Runs `script` under `sh -c` as `process_id` until it closes; returns
/// what it printed.
async fn run(client: &mut WireClient, process_id: &str, script: &str) -> String {
    client
        .call(
            "process/start",
            json!({"processId": process_id, "argv": ["sh", "-c", script], "cwd": "/", "env": {"PATH": PATH}, "tty": false}),
        )
        .await;
    let events = client.events_until_closed(process_id).await;
    output_of(&events, "stdout")
}

/// The children's `PATH`.
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The cgroup v2 path a process reports for itself (`0::PATH`).
const OWN_CGROUP: &str = "sed -n 's/^0:://p' /proc/self/cgroup";

/// Starts `sleep 600` as `process_id`; returns its pid and its cgroup path,
/// once that process is the only one in its cgroup.
async fn sleeper(client: &mut WireClient, process_id: &str) -> (i64, String) {
    let started = client
        .call(
            "process/start",
            json!({
                "processId": process_id,
                // Printed by the shell once `sed` is gone: then the cgroup
                // holds this one process alone.
                "argv": ["sh", "-c", format!("own=$({OWN_CGROUP}); echo \"$own\"; exec sleep 600")],
                "cwd": "/",
                "env": {"PATH": PATH},
                "tty": false,
            }),
        )
        .await;
    let pid = started["pid"].as_i64().expect("a pid");
    let line = client
        .recv_matching(|message: &Value| {
            message["method"] == "process/output" && message["params"]["processId"] == process_id
        })
        .await;
    let cgroup = output_of(&[line], "stdout");
    (pid, cgroup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_start_reuses_an_emptied_cgroup_but_not_one_a_descendant_holds() {
    let Some(mut client) = client(&[]).await else {
        return;
    };
    let first = run(&mut client, "first", OWN_CGROUP).await;
    assert!(first.contains("/p"), "not a process cgroup: {first:?}");
    let second = run(&mut client, "second", OWN_CGROUP).await;
    assert_eq!(second, first, "the emptied cgroup was not reused");

    // The leader exits and its output closes, but a descendant lives on in
    // the cgroup: the next start must get a cgroup of its own.
    let held = run(
        &mut client,
        "held",
        &format!("sleep 600 </dev/null >/dev/null 2>&1 & {OWN_CGROUP}"),
    )
    .await;
    assert_eq!(held, first, "the spare was not taken");
    let fresh = run(&mut client, "fresh", OWN_CGROUP).await;
    assert_ne!(fresh, held, "a cgroup with a live process in it was reused");
    client
        .call("process/terminate", json!({"processId": "held"}))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_closed_process_spares_the_one_that_reuses_its_cgroup() {
    let Some(mut client) = client(&[]).await else {
        return;
    };
    let closed = run(&mut client, "closed", OWN_CGROUP).await;
    let (pid, cgroup) = sleeper(&mut client, "sleeper").await;
    assert_eq!(cgroup, closed, "the emptied cgroup was not reused");

    let response = client
        .call("process/terminate", json!({"processId": "closed"}))
        .await;
    assert_eq!(response, json!({"running": false}));
    // The terminate is answered once its kill is done: had it written the
    // shared cgroup's `cgroup.kill`, the sleeper would be dead by now.
    assert!(
        process_alive(pid),
        "the kill of a closed process reached its cgroup's next process"
    );
    let listed = client.call("process/list", json!({})).await;
    let sleeper_running = listed["processes"]
        .as_array()
        .and_then(|processes| {
            processes
                .iter()
                .find(|process| process["processId"] == "sleeper")
        })
        .map(|process| process["running"].clone());
    assert_eq!(sleeper_running, Some(json!(true)), "{listed}");

    client
        .call("process/terminate", json!({"processId": "sleeper"}))
        .await;
    assert!(
        wait_gone(pid).await,
        "the sleeper outlived its own terminate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_a_closed_process_keeps_the_cgroup_it_lent() {
    // At most two closed processes are kept: each start after the second
    // evicts the oldest, whose cgroup is by then a spare or in use again.
    let Some(mut client) = client(&["--max-processes", "2"]).await else {
        return;
    };
    let first = run(&mut client, "p0", OWN_CGROUP).await;
    for index in 1..6 {
        let id = format!("p{index}");
        let cgroup = run(&mut client, &id, OWN_CGROUP).await;
        assert_eq!(
            cgroup, first,
            "{id} did not get the spare (an eviction removed it?)"
        );
    }
    let (pid, cgroup) = sleeper(&mut client, "sleeper").await;
    assert_eq!(cgroup, first);
    client
        .call("process/terminate", json!({"processId": "sleeper"}))
        .await;
    assert!(wait_gone(pid).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cgroup_removed_by_a_terminate_is_not_kept_for_the_next_start() {
    let Some(mut client) = client(&[]).await else {
        return;
    };
    // Each round: a running process is terminated (its kill removes the
    // cgroup it emptied, racing with the process's close), and the next
    // start must not be handed the removed cgroup.
    for round in 0..5 {
        let id = format!("sleeper{round}");
        let (pid, killed) = sleeper(&mut client, &id).await;
        client
            .call("process/terminate", json!({"processId": id}))
            .await;
        client.events_until_closed(&id).await;
        assert!(wait_gone(pid).await);
        let next = run(&mut client, &format!("next{round}"), OWN_CGROUP).await;
        assert_ne!(
            next, killed,
            "round {round}: a killed process's cgroup was reused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_thaws_a_spare_cgroup_left_frozen() {
    let Some(mut client) = client(&[]).await else {
        return;
    };
    // The test (root, like a process with write access to the cgroup
    // filesystem) freezes the process's cgroup and SIGKILLs the process,
    // which a frozen cgroup lets die: the process closes by itself, not
    // through a kill of its tree, leaving an empty cgroup that is frozen.
    let (pid, cgroup) = sleeper(&mut client, "frozen").await;
    let mount = cgroup_v2_mount().expect("a cgroup2 mount");
    let directory = mount.join(cgroup.trim().trim_start_matches('/'));
    std::fs::write(directory.join("cgroup.freeze"), "1").expect("freezing the cgroup");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid")),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("killing the sleeper");
    client.events_until_closed("frozen").await;

    // Whether or not the cgroup was kept (its `frozen` state may lag its
    // `cgroup.freeze`), this start must not stop at its join.
    let next = run(&mut client, "next", OWN_CGROUP).await;
    assert!(next.contains("/p"), "not a process cgroup: {next:?}");
}
