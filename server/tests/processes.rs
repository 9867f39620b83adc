//! Processes end to end against the real binary (and, where the scenario
//! does not need a binary, the in-process mode): ordering and sequence
//! numbers on the wire, and no process left behind when a connection closes
//! or the server is told to stop.

use exec_testkit::{
    ServerLauncher, Transport, WireClient, decode, output_of, process_alive, wait_gone,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn start_params(process_id: &str, script: &str, tty: bool) -> Value {
    json!({
        "processId": process_id,
        "argv": ["/bin/sh", "-c", script],
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "tty": tty
    })
}

async fn pipe_process_flow(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let id = client
        .request(
            "process/start",
            start_params("p1", "echo out; echo err >&2; exit 3", false),
        )
        .await["id"]
        .clone();
    // The start response came before any notification about p1: recv()
    // returns messages in arrival order, and request() stored anything
    // earlier in the backlog, which must hold nothing about p1.
    let _ = id;
    let events = client.events_until_closed("p1").await;
    let seqs: Vec<u64> = events
        .iter()
        .map(|event| event["params"]["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "contiguous from 1"
    );
    assert_eq!(output_of(&events, "stdout"), "out\n");
    assert_eq!(output_of(&events, "stderr"), "err\n");
    let exited = events
        .iter()
        .find(|event| event["method"] == "process/exited")
        .expect("exited");
    assert_eq!(exited["params"]["exitCode"], 3);
    assert_eq!(exited["params"]["reason"], "exited");
    assert_eq!(exited["params"]["signal"], Value::Null);
    assert_eq!(
        events.last().map(|event| event["method"].clone()),
        Some(json!("process/closed"))
    );
}

async fn output_never_overtakes_the_start_response(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    for round in 0..20 {
        let process_id = format!("fast-{round}");
        client
            .send_text(
                &json!({"id": 1000 + round, "method": "process/start",
                        "params": start_params(&process_id, "echo now", false)})
                .to_string(),
            )
            .await;
        // The first message about this process must be its start response.
        let first = client
            .recv_matching(|message| {
                message["id"] == json!(1000 + round) || message["params"]["processId"] == process_id
            })
            .await;
        assert_eq!(
            first["id"],
            json!(1000 + round),
            "first message was {first}"
        );
        client.events_until_closed(&process_id).await;
    }
}

async fn pty_process_reads_input_and_resizes(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = start_params(
        "tty",
        "stty size; read line; echo got:$line; stty size",
        true,
    );
    params["size"] = json!({"rows": 30, "cols": 100});
    let started = client.call("process/start", params).await;
    assert!(started["pid"].as_u64().is_some_and(|pid| pid > 0));
    let first = client.notification("process/output", "tty").await;
    assert!(String::from_utf8_lossy(&decode(&first["params"]["chunk"])).contains("30 100"));
    client
        .call(
            "process/resize",
            json!({"processId": "tty", "rows": 40, "cols": 132}),
        )
        .await;
    let write = client
        .call(
            "process/write",
            json!({"processId": "tty", "chunk": "aGkK"}),
        )
        .await;
    assert_eq!(write, json!({"status": "accepted"}));
    let events = client.events_until_closed("tty").await;
    let output = output_of(&events, "pty");
    assert!(output.contains("got:hi"), "{output:?}");
    assert!(output.contains("40 132"), "{output:?}");
}

#[tokio::test]
async fn without_a_session_ttl_closing_the_connection_kills_its_processes() {
    let mut server = ServerLauncher::new()
        .args(["--session-ttl", "0"])
        .start_websocket()
        .await
        .expect("the server starts");
    let url = server.url.clone();
    let mut client = WireClient::websocket(&url).await;
    client.handshake().await;
    let started = client
        .call("process/start", start_params("sleeper", "sleep 60", false))
        .await;
    let pid = started["pid"].as_i64().expect("pid");
    assert!(process_alive(pid));
    client.close().await;
    assert!(wait_gone(pid).await, "the process outlived its connection");
    // The server itself keeps running for other clients.
    let mut other = WireClient::websocket(&url).await;
    other.handshake().await;
    assert_eq!(
        other.call("process/list", json!({})).await,
        json!({"processes": []})
    );
    server.process.kill().expect("kill the server");
}

#[tokio::test]
async fn sigterm_kills_every_process_tree_and_exits_zero() {
    let mut server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let url = server.url.clone();
    let mut client = WireClient::websocket(&url).await;
    client.handshake().await;
    // The grandchild leaves the process group with setsid and reports its pid.
    let script = "setsid sleep 60 & echo $!; wait";
    let started = client
        .call("process/start", start_params("tree", script, false))
        .await;
    let child = started["pid"].as_i64().expect("pid");
    let output = client.notification("process/output", "tree").await;
    let grandchild: i64 = String::from_utf8_lossy(&decode(&output["params"]["chunk"]))
        .trim()
        .parse()
        .expect("the grandchild pid");
    let server_pid = server.process.pid().expect("server pid") as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server_pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("signal the server");
    let status = server
        .process
        .wait_for(std::time::Duration::from_secs(5))
        .await
        .expect("the server exits within 5 s");
    assert!(status.success(), "exit status {status}");
    assert!(wait_gone(child).await, "the child survived shutdown");
    assert!(
        wait_gone(grandchild).await,
        "the setsid grandchild survived shutdown"
    );
}

async fn pty_process_without_path_in_its_environment_starts(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let params = json!({"processId": "nopath", "argv": ["sh", "-c", "echo ok"], "cwd": "/", "env": {}, "tty": true});
    client.call("process/start", params).await;
    let events = client.events_until_closed("nopath").await;
    assert!(output_of(&events, "pty").contains("ok"), "{events:?}");
}

async fn arg0_reaches_a_pty_process(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    let mut params = start_params("named", "tr '\\000' ' ' < /proc/$$/cmdline", true);
    params["arg0"] = json!("renamed-shell");
    client.call("process/start", params).await;
    let events = client.events_until_closed("named").await;
    let output = output_of(&events, "pty");
    assert!(output.starts_with("renamed-shell -c "), "{output:?}");
}

/// Codex reads `exitCode` as a plain `i32`: a death by a signal reports
/// 128 + N, with the signal named beside it, in the notification, in
/// `process/read` and in `process/list`.
async fn a_signal_death_reports_128_plus_the_signal(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    client
        .call(
            "process/start",
            start_params("self-kill", "kill -KILL $$", false),
        )
        .await;
    let events = client.events_until_closed("self-kill").await;
    let exited = events
        .iter()
        .find(|event| event["method"] == "process/exited")
        .expect("exited");
    assert_eq!(
        (
            exited["params"]["exitCode"].clone(),
            exited["params"]["signal"].clone(),
            exited["params"]["reason"].clone()
        ),
        (json!(137), json!("kill"), json!("signaled"))
    );
    let read = client
        .call("process/read", json!({"processId": "self-kill"}))
        .await;
    assert_eq!(
        (read["exitCode"].clone(), read["signal"].clone()),
        (json!(137), json!("kill"))
    );
    let list = client.call("process/list", json!({})).await;
    let info = &list["processes"][0];
    assert_eq!(
        (info["exitCode"].clone(), info["signal"].clone()),
        (json!(137), json!("kill"))
    );
}

/// `nextSeq` is Codex's: the seq after the last event a read covers, so a
/// read after the close answers the close's seq + 1 (Codex's recovery takes
/// `nextSeq - 1` as the last event and looks for the close there).
async fn a_read_after_the_close_answers_the_close_seq_plus_one(transport: Transport) {
    let mut client = WireClient::connect(transport).await;
    client.handshake().await;
    client
        .call("process/start", start_params("short", "echo hi", false))
        .await;
    let events = client.events_until_closed("short").await;
    let closed_seq = events
        .last()
        .filter(|event| event["method"] == "process/closed")
        .and_then(|event| event["params"]["seq"].as_u64())
        .expect("the close comes last");
    for after_seq in [
        Value::Null,
        json!(0),
        json!(closed_seq - 1),
        json!(closed_seq),
    ] {
        let read = client
            .call(
                "process/read",
                json!({"processId": "short", "afterSeq": after_seq}),
            )
            .await;
        assert_eq!(
            (
                read["nextSeq"].clone(),
                read["closed"].clone(),
                read["exitCode"].clone()
            ),
            (json!(closed_seq + 1), json!(true), json!(0)),
            "after {after_seq}"
        );
    }
}

exec_testkit::transport_tests! {
    a_signal_death_reports_128_plus_the_signal: [stdio, websocket],
    a_read_after_the_close_answers_the_close_seq_plus_one: [stdio, websocket],
    pipe_process_flow: [stdio, websocket, in_process],
    output_never_overtakes_the_start_response: [stdio, in_process],
    pty_process_reads_input_and_resizes: [stdio, in_process],
    pty_process_without_path_in_its_environment_starts: [stdio, in_process],
    arg0_reaches_a_pty_process: [stdio, in_process],
}

/// A stdio server whose stdin stays open still obeys SIGTERM, SIGINT and
/// SIGHUP: the shutdown tells its connection to finish (the reader no longer
/// blocks it), the process tree dies, and the server exits 0.
#[tokio::test]
async fn a_stdio_server_with_open_stdin_exits_on_sigterm_sigint_and_sighup() {
    for signal in [
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
        nix::sys::signal::Signal::SIGHUP,
    ] {
        stdio_server_exits_on(signal).await;
    }
}

async fn stdio_server_exits_on(signal: nix::sys::signal::Signal) {
    let mut client = WireClient::connect(Transport::Stdio).await;
    client.handshake().await;
    let started = client
        .call("process/start", start_params("sleeper", "sleep 60", false))
        .await;
    let child = started["pid"].as_i64().expect("pid");
    let server = client.server_mut().expect("a stdio server process");
    let server_pid = server.pid().expect("server pid") as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(server_pid), signal)
        .expect("signal the server");
    let status = server
        .wait_for(std::time::Duration::from_secs(5))
        .await
        .expect("the server exits within 5 s although its stdin is open");
    assert!(status.success(), "{signal}: exit status {status}");
    assert!(
        wait_gone(child).await,
        "{signal}: the child survived shutdown"
    );
}

/// Open file descriptors of process `pid`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[tokio::test]
async fn closed_processes_count_against_no_limit_and_hold_no_descriptors() {
    let server = ServerLauncher::new()
        .max_processes(2)
        .start_websocket()
        .await
        .expect("the server starts");
    let pid = server.process.pid().expect("the server's pid");
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    // Warm up (the first PTY opens what every later one shares), then count.
    client
        .call("process/start", start_params("warm", "true", true))
        .await;
    client.events_until_closed("warm").await;
    let before = open_fds(pid);
    // Ten times the limit of processes, one after the other, on pipes and
    // PTYs: every start succeeds once the previous process closed, though
    // each stays retained (readable) for its retention time.
    for round in 0..20 {
        let id = format!("p{round}");
        let started = client
            .request(
                "process/start",
                start_params(&id, "echo hi", round % 2 == 0),
            )
            .await;
        assert!(
            started["result"]["pid"].is_i64(),
            "round {round}: {started}"
        );
        client.events_until_closed(&id).await;
    }
    let read = client
        .call("process/read", json!({"processId": "p19", "afterSeq": 0}))
        .await;
    assert_eq!(read["closed"], true, "a closed process stays readable");
    assert!(
        open_fds(pid) <= before,
        "closed processes hold no descriptors: {} before, {} after",
        before,
        open_fds(pid)
    );
    // Running processes still count.
    for id in ["s1", "s2"] {
        client
            .call("process/start", start_params(id, "sleep 60", false))
            .await;
    }
    let refused = client
        .request("process/start", start_params("s3", "sleep 60", false))
        .await;
    assert_eq!(
        refused["error"]["data"]["kind"], "limitExceeded",
        "{refused}"
    );
    // At most `max_processes` closed ones are retained: the oldest went.
    let listing = client.call("process/list", json!({})).await;
    let listed = listing["processes"].as_array().map_or(0, Vec::len);
    assert_eq!(listed, 4, "two running and two retained: {listing}");
}
