//! The client resuming its session through a proxy that cuts the TCP
//! connection (a reset, no close frame), against the real
//! `exec-server serve --listen ws://127.0.0.1:0`: 100 MB of output received
//! byte-exact across many cuts, the typed error of a call that cannot be
//! repeated, a `process/start` in flight sent again and run once, close
//! code 4000 when another connection takes the session, giving up when the
//! server cannot be reached, and v1's behaviour with reconnect disabled.

use std::path::Path;
use std::time::Duration;

use exec_client::protocol::ProcessListParams;
use exec_client::{
    ClientError, ClosedReason, ConnectOptions, ConnectionState, ExecClient, ProcessEvent,
    RemoteChild,
};
use exec_testkit::{
    CHILD_PATH, CutProxy, ServerLauncher, WireClient, WsServer, pending_long_poll, scratch_dir,
};
use pretty_assertions::assert_eq;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

/// How long one awaited event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// The output of the large stream: `seq 1 12345679` is 100,000,008 bytes of
/// distinct lines, so a lost, repeated or reordered chunk changes its digest.
const LARGE_STREAM: &str = "seq 1 12345679";

/// The server on a WebSocket port (session TTL as `serve` defaults it, 30 s,
/// unless `args` say otherwise), behind the validating proxy when `cargo
/// xtask test` provides it (so every frame of a resume is checked against
/// the schema), and a cutting proxy in front of that.
async fn server_behind_proxy(args: &[&str], cut_every: Option<u64>) -> (WsServer, CutProxy) {
    let server = ServerLauncher::new()
        .args(args.iter().copied())
        .behind_conformance_proxy()
        .start_websocket()
        .await
        .expect("the server starts");
    let proxy = CutProxy::in_front_of(&server.url, cut_every)
        .await
        .expect("the proxy starts");
    (server, proxy)
}

/// Waits for the first state `wanted` accepts and returns it.
async fn state_where(
    states: &mut watch::Receiver<ConnectionState>,
    wanted: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    tokio::time::timeout(PATIENCE, states.wait_for(|state| wanted(state)))
        .await
        .expect("the state comes in time")
        .expect("the client is alive")
        .clone()
}

/// Waits until the client closed for `reason`, then checks that it is
/// final: `child`'s stream ended and a new call fails, both with
/// `TransportClosed`.
async fn closed_for_good(
    client: &ExecClient,
    child: &mut RemoteChild,
    states: &mut watch::Receiver<ConnectionState>,
    reason: ClosedReason,
) {
    assert_eq!(
        state_where(states, |state| matches!(state, ConnectionState::Closed(_))).await,
        ConnectionState::Closed(reason)
    );
    let error = child.next_event().await.expect_err("the stream ended");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("closed");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
}

/// The SHA-256 of what `script` writes, run here by `sh` (the server runs on
/// this machine, so it is the same program).
fn local_digest(script: &str) -> (String, u64) {
    let output = std::process::Command::new("sh")
        .args(["-c", script])
        .env("PATH", CHILD_PATH)
        .output()
        .expect("the script runs locally");
    assert!(output.status.success(), "{script} fails locally");
    (
        hex(&Sha256::digest(&output.stdout)),
        output.stdout.len() as u64,
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn a_hundred_megabytes_arrive_byte_exact_through_a_connection_cut_every_4_mib() {
    let (expected_digest, expected_bytes) = local_digest(LARGE_STREAM);
    let (_server, proxy) = server_behind_proxy(&[], Some(4 * 1024 * 1024)).await;
    let client = ExecClient::connect_websocket(&proxy.url(), ConnectOptions::new("resume"))
        .await
        .expect("connect");
    assert_eq!(client.initialize_response().limits.session_ttl_ms, 30_000);
    // Every state change, as the client reports it.
    let mut states = client.connection_state();
    let watcher = tokio::spawn(async move {
        let mut seen = vec![states.borrow_and_update().clone()];
        while !matches!(seen.last(), Some(ConnectionState::Closed(_)))
            && states.changed().await.is_ok()
        {
            seen.push(states.borrow_and_update().clone());
        }
        seen
    });

    let mut child = client
        .command("sh")
        .args(["-c", LARGE_STREAM])
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .expect("spawn");
    let mut digest = Sha256::new();
    let mut received: u64 = 0;
    let mut next_seq = 0;
    let mut status = None;
    while let Some(event) = tokio::time::timeout(PATIENCE, child.next_event())
        .await
        .expect("the next event comes in time")
        .expect("the stream rides through the cuts")
    {
        match event {
            ProcessEvent::Output(chunk) => {
                assert!(chunk.seq > next_seq, "seq {} after {next_seq}", chunk.seq);
                next_seq = chunk.seq;
                received += chunk.bytes.len() as u64;
                digest.update(&chunk.bytes);
            }
            ProcessEvent::Exited(exited) => status = Some(exited),
            other => panic!("nothing is lost while the session acknowledges output: {other:?}"),
        }
    }
    assert_eq!(received, expected_bytes);
    assert_eq!(hex(&digest.finalize()), expected_digest);
    assert!(status.expect("an exit").success(), "{status:?}");
    assert_eq!(child.dropped_bytes(), 0);
    // A cut may come right after the last bytes the process needed: wait
    // for the resume it started.
    let mut state = client.connection_state();
    tokio::time::timeout(
        Duration::from_secs(20),
        state.wait_for(|state| *state == ConnectionState::Connected),
    )
    .await
    .expect("connected again in time")
    .expect("the client lives");
    let cuts = proxy.cuts();
    assert!(cuts > 0, "the proxy cut the connection");
    // One connection per resume, and the session is attached again.
    assert!(
        proxy.connections() > cuts,
        "{} connections for {cuts} cuts",
        proxy.connections()
    );
    assert_eq!(
        *client.connection_state().borrow(),
        ConnectionState::Connected
    );

    client.clone().close().await.expect("close");
    let seen = watcher.await.expect("watcher");
    assert_eq!(seen.first(), Some(&ConnectionState::Connected));
    assert_eq!(
        seen.last(),
        Some(&ConnectionState::Closed(ClosedReason::ClientClosed))
    );
    assert!(
        seen.iter()
            .any(|state| matches!(state, ConnectionState::Reconnecting { .. })),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_pending_read_gets_connection_lost_and_the_session_goes_on() {
    let (_server, proxy) = server_behind_proxy(&[], None).await;
    // A first attempt half a second after the drop leaves time to make a
    // call while the client is reconnecting.
    let options = ConnectOptions::new("lost read")
        .reconnect_delays(Duration::from_millis(500), Duration::from_secs(2));
    let client = ExecClient::connect_websocket(&proxy.url(), options)
        .await
        .expect("connect");
    let mut states = client.connection_state();
    let child = client
        .command("sh")
        .args(["-c", "read line; printf 'got %s' \"$line\""])
        .env("PATH", CHILD_PATH)
        .pipe_stdin()
        .spawn()
        .await
        .expect("spawn");
    // Nothing answers this before its minute is up.
    let pending = pending_long_poll(&client, child.process_id()).await;
    assert_eq!(proxy.cut_all(), 1);
    let error = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("the call ends with the connection")
        .expect("task")
        .expect_err("the connection dropped under it");
    match &error {
        ClientError::ConnectionLost { method } => assert_eq!(method, "process/read"),
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    state_where(&mut states, |state| {
        matches!(state, ConnectionState::Reconnecting { .. })
    })
    .await;
    // A call made now waits for the resume, then is answered.
    let listed = tokio::time::timeout(PATIENCE, client.process_list(ProcessListParams {}))
        .await
        .expect("answered in time")
        .expect("answered once resumed");
    assert_eq!(listed.processes.len(), 1);
    assert_eq!(*states.borrow(), ConnectionState::Connected);

    // The process lived through the drop, and its stdin still works.
    child.write(b"after the cut\n").await.expect("write");
    let output = child.output().await.expect("output");
    assert_eq!(output.stdout, b"got after the cut");
    assert!(output.status.success());
    assert_eq!(proxy.cuts(), 1);
    assert_eq!(proxy.connections(), 2);
}

/// Makes a FIFO at `path`.
fn make_fifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[tokio::test]
async fn a_start_in_flight_at_a_cut_is_sent_again_and_runs_once() {
    let (_server, proxy) = server_behind_proxy(&[], None).await;
    let client = ExecClient::connect_websocket(&proxy.url(), ConnectOptions::new("start again"))
        .await
        .expect("connect");
    let scratch = scratch_dir();
    let log = scratch.path().join("starts.log");
    let fifo = scratch.path().join("started.fifo");
    make_fifo(&fifo);
    // The answer to the start will not reach the client.
    proxy.hold_server_to_client(true);
    let script = format!(
        "echo $$ >> '{}'; echo started > '{}'; exec sleep 60",
        log.display(),
        fifo.display()
    );
    let spawning = tokio::spawn({
        let command = client
            .command("sh")
            .args(["-c", &script])
            .env("PATH", CHILD_PATH)
            .process_id("once");
        async move { command.spawn().await }
    });
    // The process writes to the FIFO only once the server has started it,
    // and the server answers the start before that.
    let started = tokio::time::timeout(
        PATIENCE,
        tokio::task::spawn_blocking(move || std::fs::read_to_string(fifo)),
    )
    .await
    .expect("the process starts in time")
    .expect("reader task")
    .expect("reading the FIFO");
    assert_eq!(started, "started\n");
    assert_eq!(proxy.cut_all(), 1);
    proxy.hold_server_to_client(false);

    let child = tokio::time::timeout(PATIENCE, spawning)
        .await
        .expect("the start is answered after the resume")
        .expect("task")
        .expect("the start succeeds");
    let starts = std::fs::read_to_string(&log).expect("the log");
    assert_eq!(
        starts.lines().collect::<Vec<_>>(),
        [child.pid().to_string()],
        "one start, whose pid the client got"
    );
    let listed = client
        .process_list(ProcessListParams {})
        .await
        .expect("list");
    let pids: Vec<u32> = listed.processes.iter().map(|process| process.pid).collect();
    assert_eq!(pids, [child.pid()]);
    assert!(child.terminate().await.expect("terminate"));
    assert_eq!(proxy.cuts(), 1);
}

#[tokio::test]
async fn close_code_4000_from_another_connection_closes_without_reconnecting() {
    let (server, proxy) = server_behind_proxy(&[], None).await;
    let client = ExecClient::connect_websocket(&proxy.url(), ConnectOptions::new("first"))
        .await
        .expect("connect");
    let mut states = client.connection_state();
    let mut child = client
        .command("sleep")
        .arg("60")
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .expect("spawn");
    let session_id = client.initialize_response().session_id.clone();

    // Another client takes the session over, straight at the server.
    let mut other = WireClient::websocket(&server.server_url).await;
    let resumed = other
        .call(
            "initialize",
            json!({"clientName": "second", "resumeSessionId": session_id}),
        )
        .await;
    assert_eq!(resumed["sessionId"], json!(session_id));

    closed_for_good(
        &client,
        &mut child,
        &mut states,
        ClosedReason::ResumedElsewhere,
    )
    .await;
    // Closed is final: the client never dialled again.
    assert_eq!((proxy.connections(), proxy.cuts()), (1, 0));
    // The process belongs to the other connection now.
    other.notify("initialized", json!({})).await;
    let listed = other.call("process/list", json!({})).await;
    assert_eq!(listed["processes"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn without_reconnect_a_cut_closes_the_client_as_in_v1() {
    let (_server, proxy) = server_behind_proxy(&[], None).await;
    let client = ExecClient::connect_websocket(
        &proxy.url(),
        ConnectOptions::new("no reconnect").reconnect(false),
    )
    .await
    .expect("connect");
    let mut states = client.connection_state();
    let mut child = client
        .command("sleep")
        .arg("60")
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .expect("spawn");
    assert_eq!(proxy.cut_all(), 1);
    closed_for_good(
        &client,
        &mut child,
        &mut states,
        ClosedReason::ConnectionLost,
    )
    .await;
    assert_eq!(proxy.connections(), 1);
}

#[tokio::test]
async fn a_server_out_of_reach_for_the_whole_ttl_is_given_up_on() {
    let (_server, proxy) = server_behind_proxy(&["--session-ttl", "1"], None).await;
    let client = ExecClient::connect_websocket(&proxy.url(), ConnectOptions::new("gives up"))
        .await
        .expect("connect");
    assert_eq!(client.initialize_response().limits.session_ttl_ms, 1000);
    let mut states = client.connection_state();
    let mut child = client
        .command("sleep")
        .arg("60")
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .expect("spawn");
    // Dropping the proxy cuts the connection and stops listening.
    drop(proxy);
    let closed = state_where(&mut states, |state| {
        matches!(state, ConnectionState::Closed(_))
    })
    .await;
    assert!(
        matches!(closed, ConnectionState::Closed(ClosedReason::GaveUp { attempts }) if attempts > 0),
        "{closed:?}"
    );
    let error = child.next_event().await.expect_err("the stream ended");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
}
