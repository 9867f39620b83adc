//! Connection admission on the real binary: half-open upgrades are closed
//! by the handshake deadline, upgrades beyond the cap wait in the kernel's
//! backlog instead of holding sockets in the server, and at the open-file
//! limit the accept loop neither spins nor floods its log.

mod common;

use std::time::Duration;

use common::{UPGRADE_REQUEST, cpu_ticks, open_fds};
use exec_testkit::{PATIENCE, ServerLauncher, ServerProcess, WireClient, WsServer, server_binary};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Half of an upgrade request: the client stalls after it.
const HALF_AN_UPGRADE: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";

/// A fresh server on a free loopback port, and its pid.
async fn start(launcher: ServerLauncher) -> (WsServer, u32) {
    let server = launcher.start_websocket().await.expect("the server starts");
    let pid = server.process.pid().expect("a running server");
    (server, pid)
}

/// `count` connections to `address` that each send half an upgrade.
async fn half_open(address: &str, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(address).await.expect("connects");
        socket.write_all(HALF_AN_UPGRADE).await.expect("writes");
        sockets.push(socket);
    }
    sockets
}

/// Waits until the server closes `socket` (EOF or a reset); false when it
/// is still open after `patience`.
async fn closed_within(mut socket: TcpStream, patience: Duration) -> bool {
    let mut buffer = [0_u8; 1024];
    let until_closed = async {
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(patience, until_closed).await.is_ok()
}

/// 1,000 sockets that send half an upgrade and stall are all closed by the
/// 10 s handshake deadline (the cap is raised so that all are in their
/// upgrade at once).
#[tokio::test]
async fn half_open_upgrades_are_closed_by_the_deadline() {
    let (server, _pid) = start(ServerLauncher::new().args(["--max-handshakes", "1100"])).await;
    let address = server.server_url.trim_start_matches("ws://").to_owned();
    let sockets = half_open(&address, 1000).await;
    let closings = sockets
        .into_iter()
        .map(|socket| tokio::spawn(closed_within(socket, Duration::from_secs(40))));
    let mut closed = 0;
    for closing in closings {
        closed += usize::from(closing.await.expect("the task"));
    }
    assert_eq!(closed, 1000);
    // The server is none the worse for it.
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    assert_eq!(
        client.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}

/// With `--max-handshakes 4`, 50 stalled upgrades hold 4 sockets in the
/// server, not 50: the rest wait in the kernel's backlog. Once the stalled
/// clients go, a real client gets through.
#[tokio::test]
async fn upgrades_beyond_the_cap_wait_in_the_backlog() {
    let (server, pid) = start(ServerLauncher::new().args(["--max-handshakes", "4"])).await;
    let address = server.server_url.trim_start_matches("ws://").to_owned();
    let baseline = open_fds(pid);
    let stalled = half_open(&address, 50).await;
    // The server accepts the first 4 (the fifth accept waits for a place);
    // wait for those, then check that no more come in.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while open_fds(pid) < baseline + 4 && tokio::time::Instant::now() < deadline {
        // `/proc` has no event for a new fd: look every 10 ms.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = open_fds(pid) - baseline;
    assert!(
        held <= 6,
        "the server holds {held} more fds with 50 stalled upgrades"
    );
    drop(stalled);
    let mut client = tokio::time::timeout(PATIENCE, async {
        let mut client = WireClient::websocket(&server.url).await;
        client.handshake().await;
        client
    })
    .await
    .expect("a client gets through once the stalled ones are gone");
    assert_eq!(
        client.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}

/// The server started with at most `limit` open files (`ulimit -n`).
fn with_file_limit(limit: u32) -> ServerProcess {
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
        .arg(server_binary())
        .args([
            "serve",
            "--listen",
            "ws://127.0.0.1:0",
            "--max-handshakes",
            "1000",
        ])
        .env_remove("EXEC_SERVER_TOKEN")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    ServerProcess::spawn(command, "exec-server").expect("the server starts")
}

/// At the open-file limit, `accept` fails with EMFILE for as long as
/// clients wait in the backlog: the loop backs off instead of retrying at
/// once, so over a few seconds it uses little CPU and logs a few lines (it
/// once spun a core and logged 12.5 million lines in 30 s).
#[tokio::test]
async fn at_the_file_limit_the_accept_loop_neither_spins_nor_floods_the_log() {
    let server = with_file_limit(64);
    let url = server
        .listening_url("exec-server listening on ")
        .await
        .expect("listening");
    let pid = server.pid().expect("running");
    let address = url.trim_start_matches("ws://").to_owned();
    // Complete upgrades hold their sockets: more of them than the server
    // has files for.
    let mut clients = Vec::new();
    for _ in 0..150 {
        let mut socket = TcpStream::connect(&address).await.expect("connects");
        socket.write_all(UPGRADE_REQUEST).await.expect("writes");
        clients.push(socket);
    }
    // The log has no event for a line in its middle: look every 20 ms.
    let first_failure = tokio::time::timeout(PATIENCE, async {
        while !server
            .stderr()
            .text()
            .contains("accepting a connection failed")
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        first_failure.is_ok(),
        "no accept failure logged: {}",
        server.stderr().text()
    );
    let lines_before = server.stderr().text().lines().count();
    let ticks_before = cpu_ticks(pid);
    // The measurement itself: CPU time and log lines over three seconds.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ticks = cpu_ticks(pid) - ticks_before;
    let lines = server.stderr().text().lines().count() - lines_before;
    // Clock ticks are 1/100 s: 30 is 10% of a core over the three seconds.
    assert!(ticks < 30, "the server used {ticks} ticks of CPU in 3 s");
    assert!(lines <= 5, "the server logged {lines} lines in 3 s");
    drop(clients);
}
