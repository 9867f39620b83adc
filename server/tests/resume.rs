//! Resumable sessions over WebSocket against the real binary: a connection
//! that drops (a TCP reset, no close frame) or closes leaves its session
//! detached, a new connection resumes it with `initialize
//! {resumeSessionId}`, and replays what it missed with `process/read`.
//!
//! Tests whose connections end cleanly run behind the validating
//! conformance proxy when `cargo xtask test` provides it, so their frames
//! are checked against the schema; the ones that reset a TCP connection
//! talk to the server directly, so the server itself sees the reset.

use std::collections::VecDeque;
use std::time::Duration;

use exec_testkit::{ServerLauncher, decode, process_alive, wait_gone};
use futures_util::{SinkExt as _, StreamExt as _};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any one message may take to come.
const PATIENCE: Duration = Duration::from_secs(20);

fn start_params(process_id: &str, script: &str) -> Value {
    json!({
        "processId": process_id,
        "argv": ["/bin/sh", "-c", script],
        "cwd": "/",
        "env": {"PATH": "/usr/bin:/bin"},
        "tty": false
    })
}

/// What came from the server.
#[derive(Debug)]
enum Incoming {
    /// A JSON-RPC message.
    Message(Value),
    /// The connection ended, with the server's close frame when it sent one.
    Closed(Option<CloseFrame>),
}

/// A bare WebSocket client whose TCP connection a test can reset.
struct Peer {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: i64,
    /// Notifications that came while a response was awaited.
    notifications: VecDeque<Value>,
}

impl Peer {
    async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("the upgrade succeeds");
        Self {
            socket,
            next_id: 1,
            notifications: VecDeque::new(),
        }
    }

    /// Sends a message; false when the connection is gone.
    async fn send(&mut self, message: Value) -> bool {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .is_ok()
    }

    async fn next(&mut self) -> Incoming {
        loop {
            let message = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a message within the patience");
            match message {
                Some(Ok(Message::Text(text))) => {
                    return Incoming::Message(serde_json::from_str(&text).expect("JSON"));
                }
                Some(Ok(Message::Close(frame))) => return Incoming::Closed(frame),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Incoming::Closed(None),
            }
        }
    }

    /// Sends a request and returns its response, or how the connection ended.
    async fn request(&mut self, method: &str, params: Value) -> Incoming {
        let id = self.next_id;
        self.next_id += 1;
        // A failed send leaves what the server sent before it closed, the
        // close frame included, to be read.
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            match self.next().await {
                Incoming::Message(message) if message["id"] == id => {
                    return Incoming::Message(message);
                }
                Incoming::Message(message) => self.notifications.push_back(message),
                closed @ Incoming::Closed(_) => return closed,
            }
        }
    }

    /// A request's `result`; panics on an error or a closed connection.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        match self.request(method, params).await {
            Incoming::Message(response) => {
                assert!(response.get("error").is_none(), "{method}: {response}");
                response["result"].clone()
            }
            Incoming::Closed(frame) => panic!("{method}: the connection closed: {frame:?}"),
        }
    }

    async fn notify(&mut self, method: &str, params: Value) {
        let sent = self
            .send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
        assert!(sent, "the server reads");
    }

    /// `initialize` with `params`, then `initialized`; the result.
    async fn initialize(&mut self, params: Value) -> Value {
        let result = self.call("initialize", params).await;
        self.notify("initialized", json!({})).await;
        result
    }

    /// The next notification.
    async fn notification(&mut self) -> Value {
        if let Some(notification) = self.notifications.pop_front() {
            return notification;
        }
        match self.next().await {
            Incoming::Message(message) => message,
            Incoming::Closed(frame) => panic!("the connection closed: {frame:?}"),
        }
    }

    /// Drops the connection the way a network does: a TCP reset, no close frame.
    fn reset(self) {
        if let MaybeTlsStream::Plain(stream) = self.socket.get_ref() {
            // A zero linger makes the close send a reset at once (it never blocks).
            socket2::SockRef::from(stream)
                .set_linger(Some(Duration::ZERO))
                .expect("SO_LINGER");
        }
    }

    /// Closes the connection cleanly and waits until the server closed its
    /// side, which it does once it detached the session.
    async fn close(mut self) {
        self.socket
            .close(None)
            .await
            .expect("the close frame goes out");
        while let Some(Ok(_)) = self.socket.next().await {}
    }
}

/// What `seq 1 COUNT` prints.
fn seq_output(count: u32) -> Vec<u8> {
    (1..=count)
        .map(|n| format!("{n}\n"))
        .collect::<String>()
        .into_bytes()
}

#[tokio::test]
async fn a_dropped_connection_resumes_and_replays_every_byte_once() {
    let server = ServerLauncher::new()
        .retained_output_bytes(64 * 1024)
        .start_websocket()
        .await
        .expect("the server starts");
    let mut first = Peer::connect(&server.url).await;
    let initialized = first
        .initialize(json!({"clientName": "first", "acknowledgeOutput": true}))
        .await;
    let session_id = initialized["sessionId"].clone();
    assert_eq!(session_id.as_str().map(str::len), Some(32), "{initialized}");
    assert_eq!(initialized["limits"]["sessionTtlMs"], 30_000);
    first
        .call("process/start", start_params("gen", "seq 1 300000"))
        .await;

    // Take (and acknowledge) part of the output, then stop acknowledging:
    // the server stops reading the child once 64 KiB are unacknowledged, so
    // the process is mid-stream when the connection drops.
    let mut received = Vec::new();
    let mut delivered = 0;
    while received.len() < 256 * 1024 {
        let output = first.notification().await;
        assert_eq!(output["method"], "process/output", "{output}");
        assert_eq!(
            output["params"]["seq"],
            delivered + 1,
            "seqs are contiguous"
        );
        delivered += 1;
        received.extend(decode(&output["params"]["chunk"]));
        first
            .notify("process/ack", json!({"processId": "gen", "seq": delivered}))
            .await;
    }
    first.reset();

    let mut second = Peer::connect(&server.url).await;
    let resumed = second
        .initialize(json!({
            "clientName": "second",
            "resumeSessionId": session_id,
            "acknowledgeOutput": true
        }))
        .await;
    assert_eq!(resumed["sessionId"], session_id);
    let mut cursor = delivered;
    let last_output_seq = loop {
        let read = second
            .call(
                "process/read",
                json!({"processId": "gen", "afterSeq": cursor, "waitMs": 5000}),
            )
            .await;
        assert_eq!(read["droppedBytes"], 0, "nothing was evicted: {read}");
        for chunk in read["chunks"].as_array().expect("chunks") {
            cursor += 1;
            assert_eq!(chunk["seq"], cursor, "seqs are contiguous");
            received.extend(decode(&chunk["chunk"]));
        }
        // `nextSeq` is the seq after the last one the read covered.
        let covered = read["nextSeq"].as_u64().expect("nextSeq") - 1;
        second
            .notify("process/ack", json!({"processId": "gen", "seq": covered}))
            .await;
        if read["closed"] == true {
            assert_eq!(
                (read["exited"].clone(), read["exitCode"].clone()),
                (json!(true), json!(0))
            );
            // The exit and the close follow the last chunk.
            assert_eq!(covered, cursor + 2);
            break cursor;
        }
        cursor = covered;
    };
    assert!(last_output_seq > delivered);
    assert!(received == seq_output(300_000), "every byte once, in order");
}

#[tokio::test]
async fn an_exit_while_detached_is_readable_and_notified_on_resume() {
    let server = ServerLauncher::new()
        .behind_conformance_proxy()
        .start_websocket()
        .await
        .expect("the server starts");
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let go = scratch.path().join("go");
    let mut first = Peer::connect(&server.url).await;
    let session_id = first.initialize(json!({"clientName": "first"})).await["sessionId"].clone();
    let script = format!(
        "while [ ! -e {} ]; do sleep 0.01; done; echo bye; exit 7",
        go.display()
    );
    let pid = first
        .call("process/start", start_params("late", &script))
        .await["pid"]
        .as_i64()
        .expect("pid");
    first.close().await;
    // The session is detached: the process lives on and exits now.
    assert!(process_alive(pid), "the process outlived its connection");
    std::fs::write(&go, b"").expect("the go file");
    assert!(wait_gone(pid).await, "the process exits");

    let mut second = Peer::connect(&server.url).await;
    second
        .initialize(json!({"clientName": "second", "resumeSessionId": session_id}))
        .await;
    let read = second
        .call(
            "process/read",
            json!({"processId": "late", "afterSeq": 0, "waitMs": 5000}),
        )
        .await;
    assert_eq!(decode(&read["chunks"][0]["chunk"]), b"bye\n");
    // Reaped before the resume; a long poll covers the moment between the
    // reap and the log.
    let mut read = read;
    while read["closed"] != true {
        read = second
            .call(
                "process/read",
                json!({"processId": "late", "afterSeq": read["nextSeq"].as_u64().expect("nextSeq") - 1, "waitMs": 5000}),
            )
            .await;
    }
    assert_eq!(
        (read["exited"].clone(), read["exitCode"].clone()),
        (json!(true), json!(7))
    );
    // The notifications queued while detached go out on the new connection.
    let mut methods = Vec::new();
    while methods.last().map(String::as_str) != Some("process/closed") {
        let notification = second.notification().await;
        if notification["method"] == "process/exited" {
            assert_eq!(notification["params"]["exitCode"], 7);
        }
        methods.push(
            notification["method"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert_eq!(
        methods,
        ["process/output", "process/exited", "process/closed"]
    );
}

#[tokio::test]
async fn an_unknown_session_is_refused_and_the_connection_may_start_afresh() {
    let server = ServerLauncher::new()
        .behind_conformance_proxy()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut peer = Peer::connect(&server.url).await;
    let Incoming::Message(refused) = peer
        .request(
            "initialize",
            json!({"clientName": "c", "resumeSessionId": "00000000000000000000000000000000"}),
        )
        .await
    else {
        panic!("the connection closed");
    };
    assert_eq!(refused["error"]["code"], -32602, "{refused}");
    assert_eq!(refused["error"]["data"]["kind"], "unknownSession");
    let fresh = peer.initialize(json!({"clientName": "c"})).await;
    assert_ne!(fresh["sessionId"], "00000000000000000000000000000000");
    assert_eq!(
        peer.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}

/// Reads until a response to `process/list` or the connection's end.
async fn list_or_close(peer: &mut Peer) -> Incoming {
    peer.request("process/list", json!({})).await
}

#[tokio::test]
async fn of_two_connections_racing_to_resume_one_wins_and_the_others_are_told() {
    let server = ServerLauncher::new()
        .behind_conformance_proxy()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut first = Peer::connect(&server.url).await;
    let session_id = first.initialize(json!({"clientName": "first"})).await["sessionId"].clone();
    first
        .call("process/start", start_params("sleeper", "sleep 60"))
        .await;
    let mut second = Peer::connect(&server.url).await;
    let mut third = Peer::connect(&server.url).await;
    let resume = json!({"clientName": "racer", "resumeSessionId": session_id});
    let (second_answer, third_answer) = tokio::join!(
        second.request("initialize", resume.clone()),
        third.request("initialize", resume.clone()),
    );
    // Each resume supersedes whoever was attached; the first connection was.
    let Incoming::Closed(Some(frame)) = list_or_close(&mut first).await else {
        panic!("the first connection is closed with a close frame");
    };
    assert_eq!(u16::from(frame.code), 4000);
    assert_eq!(
        frame.reason.as_str(),
        "session resumed by another connection"
    );
    let mut winners = 0;
    for (peer, answer) in [(&mut second, second_answer), (&mut third, third_answer)] {
        let answered = matches!(&answer, Incoming::Message(response) if response["result"]["sessionId"] == session_id);
        if answered {
            peer.notify("initialized", json!({})).await;
        }
        match list_or_close(peer).await {
            Incoming::Message(listing) => {
                assert!(answered, "a usable connection had its initialize answered");
                assert_eq!(listing["result"]["processes"][0]["processId"], "sleeper");
                winners += 1;
            }
            Incoming::Closed(frame) => {
                let code = frame.map(|frame| u16::from(frame.code));
                assert_eq!(code, Some(4000), "the loser is told why");
            }
        }
    }
    assert_eq!(winners, 1, "exactly one connection holds the session");
}

#[tokio::test]
async fn a_retried_start_in_a_resumed_session_returns_the_original_process() {
    let server = ServerLauncher::new()
        .behind_conformance_proxy()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut first = Peer::connect(&server.url).await;
    let session_id = first.initialize(json!({"clientName": "first"})).await["sessionId"].clone();
    let params = start_params("once", "sleep 60");
    let started = first.call("process/start", params.clone()).await;
    // On the session's first connection a repeated start is refused (v1).
    let Incoming::Message(repeated) = first.request("process/start", params.clone()).await else {
        panic!("the connection closed");
    };
    assert_eq!(repeated["error"]["data"]["kind"], "processExists");
    first.reset();

    let mut second = Peer::connect(&server.url).await;
    second
        .initialize(json!({"clientName": "second", "resumeSessionId": session_id}))
        .await;
    let retried = second.call("process/start", params.clone()).await;
    assert_eq!(retried, started, "the same process, started once");
    let Incoming::Message(different) = second
        .request("process/start", start_params("once", "sleep 61"))
        .await
    else {
        panic!("the connection closed");
    };
    assert_eq!(different["error"]["data"]["kind"], "processExists");
    // Only the environment differs: not the same start either.
    let mut other_env = params.clone();
    other_env["env"]["EXEC_SERVER_TEST_EXTRA"] = json!("1");
    let Incoming::Message(different) = second.request("process/start", other_env).await else {
        panic!("the connection closed");
    };
    assert_eq!(different["error"]["data"]["kind"], "processExists");
    let listing = second.call("process/list", json!({})).await;
    assert_eq!(listing["processes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn when_the_ttl_runs_out_the_whole_tree_is_killed() {
    let server = ServerLauncher::new()
        .args(["--session-ttl", "1"])
        .start_websocket()
        .await
        .expect("the server starts");
    let mut first = Peer::connect(&server.url).await;
    let initialized = first.initialize(json!({"clientName": "first"})).await;
    assert_eq!(initialized["limits"]["sessionTtlMs"], 1000);
    let session_id = initialized["sessionId"].clone();
    // A grandchild in a session of its own, outside the leader's group.
    let leader = first
        .call(
            "process/start",
            start_params("tree", "setsid sleep 300 & echo $!; exec sleep 300"),
        )
        .await["pid"]
        .as_i64()
        .expect("pid");
    let output = first.notification().await;
    let grandchild: i64 = String::from_utf8_lossy(&decode(&output["params"]["chunk"]))
        .trim()
        .parse()
        .expect("the grandchild's pid");
    first.reset();
    assert!(
        process_alive(leader) && process_alive(grandchild),
        "alive while detached"
    );
    assert!(
        wait_gone(leader).await,
        "the leader is killed after the TTL"
    );
    assert!(wait_gone(grandchild).await, "the setsid grandchild too");

    let mut second = Peer::connect(&server.url).await;
    let Incoming::Message(expired) = second
        .request(
            "initialize",
            json!({"clientName": "late", "resumeSessionId": session_id}),
        )
        .await
    else {
        panic!("the connection closed");
    };
    assert_eq!(expired["error"]["data"]["kind"], "unknownSession");
}

/// The server probes idle connections (TCP keepalive), so a client that
/// vanished without a reset is noticed and its session detached, not kept
/// attached forever. Read off the kernel's socket table, `/proc/net/tcp`,
/// whose `tr` column is 2 while a keepalive timer runs.
#[tokio::test]
async fn idle_connections_are_probed_so_a_vanished_client_is_noticed() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut peer = Peer::connect(&server.url).await;
    peer.initialize(json!({"clientName": "idle"})).await;
    let port: u16 = server
        .server_url
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("a port");
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    let timers: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let established = *fields.get(3)? == "01";
            (established && u16::from_str_radix(local_port, 16).ok()? == port)
                .then(|| fields.get(5)?.split(':').next())
                .flatten()
        })
        .collect();
    assert_eq!(
        timers,
        ["02"],
        "the server's side of the connection has a keepalive timer"
    );
}
