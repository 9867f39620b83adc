//! PTY input and output through the reactor, against the real binary: a
//! child that never reads its terminal holds back only the writes to
//! itself, and a PTY process costs the server no thread of its own.

use exec_testkit::{ServerLauncher, WireClient, decode};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// Bytes written to a child that never reads: far more than a terminal's
/// input queue holds (a few KiB in the line discipline plus 64 KiB of flip
/// buffers), so the write must wait for the child.
const UNREAD_INPUT_BYTES: usize = 1024 * 1024;

/// PTY processes running at once while the server's threads are counted.
const PTY_PROCESSES: usize = 50;

fn pty_start_params(process_id: &str, script: &str) -> Value {
    json!({
        "processId": process_id,
        "argv": ["/bin/sh", "-c", script],
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "tty": true
    })
}

/// The threads (tasks) of process `pid`, from `/proc/<pid>/task`.
fn thread_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

/// Waits for the first response among `ids` and returns its id and result.
async fn first_answer(client: &mut WireClient, ids: &[i64]) -> (i64, Value) {
    let answer = client
        .recv_matching(|message| ids.iter().any(|id| message["id"] == json!(id)))
        .await;
    let id = answer["id"].as_i64().expect("a numeric id");
    (id, answer["result"].clone())
}

#[tokio::test]
async fn a_pty_child_that_never_reads_holds_back_only_its_own_writes() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;

    // Raw and without echo, so the terminal neither discards input (as a
    // canonical line that overflows) nor echoes it: the input queue fills.
    client
        .call(
            "process/start",
            pty_start_params("deaf", "stty raw -echo && echo ready && exec sleep 600"),
        )
        .await;
    let ready = client.notification("process/output", "deaf").await;
    assert!(String::from_utf8_lossy(&decode(&ready["params"]["chunk"])).contains("ready"));
    client
        .call("process/start", pty_start_params("echo", "exec cat"))
        .await;

    let chunk = base64_simd::STANDARD.encode_to_string(vec![b'x'; UNREAD_INPUT_BYTES]);
    let stuck = client
        .send_request(
            "process/write",
            json!({"processId": "deaf", "chunk": chunk}),
        )
        .await;

    // Each of these is answered while the write to `deaf` still waits: its
    // answer never comes first.
    let other_write = client
        .send_request(
            "process/write",
            json!({"processId": "echo", "chunk": base64_simd::STANDARD.encode_to_string(b"ping\n")}),
        )
        .await;
    assert_eq!(
        first_answer(&mut client, &[stuck, other_write]).await,
        (other_write, json!({"status": "accepted"}))
    );
    let mut echoed = Vec::new();
    while !String::from_utf8_lossy(&echoed).contains("ping\r\nping\r\n") {
        let output = client.notification("process/output", "echo").await;
        echoed.extend(decode(&output["params"]["chunk"]));
    }

    let read = client
        .send_request(
            "process/read",
            json!({"processId": "deaf", "afterSeq": 0, "maxBytes": 1024}),
        )
        .await;
    let (answered, result) = first_answer(&mut client, &[stuck, read]).await;
    assert_eq!(answered, read);
    assert_eq!(result["exited"], false, "{result}");

    let metadata = client
        .send_request("fs/getMetadata", json!({"path": "/"}))
        .await;
    let (answered, result) = first_answer(&mut client, &[stuck, metadata]).await;
    assert_eq!(answered, metadata);
    assert_eq!(result["isDirectory"], true, "{result}");

    // Terminating the child is answered, and the write it never read ends
    // as a write to a closed terminal does. The two answers race (the kill
    // that ends the write comes before terminate's tree walk is done), so
    // their order is not asserted.
    let terminate = client
        .send_request("process/terminate", json!({"processId": "deaf"}))
        .await;
    assert_eq!(
        client.response(terminate).await["result"],
        json!({"running": true})
    );
    assert_eq!(
        client.response(stuck).await["result"],
        json!({"status": "stdinClosed"})
    );
    let exited = client.notification("process/exited", "deaf").await;
    assert_eq!(exited["params"]["reason"], "killed", "{exited}");

    // The other process still works.
    let again = client
        .call(
            "process/write",
            json!({"processId": "echo", "chunk": base64_simd::STANDARD.encode_to_string(b"\x04")}),
        )
        .await;
    assert_eq!(again, json!({"status": "accepted"}));
    let exited = client.notification("process/exited", "echo").await;
    assert_eq!(exited["params"]["exitCode"], 0, "{exited}");
}

#[tokio::test]
async fn a_pty_process_costs_the_server_no_thread() {
    let server = ServerLauncher::new()
        .max_processes(PTY_PROCESSES + 1)
        .start_websocket()
        .await
        .expect("the server starts");
    let pid = server.process.pid().expect("the server's pid");
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    // Warm up (the start pool's thread, the runtime's workers), then count.
    client
        .call("process/start", pty_start_params("warm", "exec cat"))
        .await;
    let before = thread_count(pid);
    // One after the other, so the starts share one thread of the start pool.
    for index in 0..PTY_PROCESSES {
        client
            .call(
                "process/start",
                pty_start_params(&format!("p{index}"), "echo up; exec cat"),
            )
            .await;
    }
    // Every one of them is running and has its terminal read: each said "up".
    for index in 0..PTY_PROCESSES {
        client
            .notification("process/output", &format!("p{index}"))
            .await;
    }
    let listing = client.call("process/list", json!({})).await;
    let running = listing["processes"].as_array().map_or(0, |processes| {
        processes
            .iter()
            .filter(|process| process["running"] == true)
            .count()
    });
    assert_eq!(running, PTY_PROCESSES + 1, "{listing}");
    let after = thread_count(pid);
    // A thread per process (or two, as before) would add at least 50; allow
    // a few for pools that grow on their own.
    assert!(
        after < before + 8,
        "{PTY_PROCESSES} PTY processes took threads: {before} before, {after} after"
    );
}
