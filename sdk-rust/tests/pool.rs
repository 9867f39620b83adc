//! [`ExecPool`] against real servers: 100 `exec-server serve --listen
//! ws://127.0.0.1:0` processes driven through one pool (5 processes each,
//! output checked, 0 errors, the client's memory per connection printed);
//! a dropped connection resumed by the SDK while the pool's health follows;
//! a connection closed for good replaced on the next use; removing an
//! endpoint; and the bound on connects in flight.

use std::time::SystemTime;

use exec_client::{ClientError, ConnectOptions, EndpointHealth, EndpointState, ExecPool};
use exec_testkit::{CHILD_PATH, CutProxy, PATIENCE, ServerLauncher, WsServer};
use futures_util::future::join_all;
use pretty_assertions::assert_eq;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

/// How many servers the large test drives.
const SERVERS: usize = 100;

/// How many processes it runs on each.
const PROCESSES_PER_SERVER: usize = 5;

/// The resident set of this process, in KiB (`VmRSS` of `/proc/self/status`).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Waits for the first health of `changes` that `wanted` accepts.
async fn health_where(
    changes: &mut watch::Receiver<EndpointHealth>,
    wanted: impl Fn(&EndpointHealth) -> bool,
) -> EndpointHealth {
    tokio::time::timeout(PATIENCE, changes.wait_for(|health| wanted(health)))
        .await
        .expect("the health comes in time")
        .expect("the endpoint is alive")
        .clone()
}

/// Runs `echo WORD` on endpoint `name` and returns its stdout.
async fn echo(pool: &ExecPool, name: &str, word: &str) -> Result<String, ClientError> {
    let output = pool
        .command(name, "echo")
        .await?
        .arg(word)
        .env("PATH", CHILD_PATH)
        .output()
        .await?;
    if !output.status.success() {
        return Err(ClientError::Protocol(format!(
            "echo on {name} ended with {:?}",
            output.status
        )));
    }
    String::from_utf8(output.stdout)
        .map_err(|error| ClientError::Protocol(format!("echo wrote non-UTF-8: {error}")))
}

#[tokio::test]
async fn a_hundred_servers_run_five_processes_each_through_one_pool() {
    let launcher = ServerLauncher::new();
    // The servers start at once: one after the other would take most of the
    // time budget on a loaded machine.
    let servers: Vec<WsServer> = join_all((0..SERVERS).map(|_| launcher.start_websocket()))
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("every server starts");

    let pool = ExecPool::new();
    for (index, server) in servers.iter().enumerate() {
        pool.add(
            format!("server-{index:03}"),
            server.url.clone(),
            ConnectOptions::new("pool-test"),
        )
        .expect("a new name");
    }
    assert!(
        pool.health_all()
            .iter()
            .all(|(_, health)| health.state == EndpointState::Idle),
        "nothing is dialled before the first use"
    );
    let resident_before = resident_kib();

    // First every connection alone (opened by a ping), then the processes,
    // so the figure per connection is not mixed with the processes' buffers.
    let pings = join_all(pool.names().iter().map(|name| pool.ping(name))).await;
    let ping_errors: Vec<String> = pings
        .iter()
        .filter_map(|ping| ping.as_ref().err().map(ToString::to_string))
        .collect();
    assert_eq!(ping_errors, Vec::<String>::new());
    let resident_connected = resident_kib();

    let runs = pool.names().into_iter().flat_map(|name| {
        (0..PROCESSES_PER_SERVER).map(move |process| (name.clone(), format!("{name}-{process}")))
    });
    let outcomes = join_all(runs.map(|(name, word)| {
        let pool = pool.clone();
        async move {
            let outcome = echo(&pool, &name, &word).await;
            (word, outcome)
        }
    }))
    .await;
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|(word, outcome)| match outcome {
            Ok(stdout) if *stdout == format!("{word}\n") => None,
            Ok(stdout) => Some(format!("{word}: wrote {stdout:?}")),
            Err(error) => Some(format!("{word}: {error}")),
        })
        .collect();
    assert_eq!(outcomes.len(), SERVERS * PROCESSES_PER_SERVER);
    assert_eq!(errors, Vec::<String>::new());

    let resident_after = resident_kib();
    let per_connection = |resident: u64| resident.saturating_sub(resident_before) / SERVERS as u64;
    println!(
        "pool memory (VmRSS of the test process): {resident_before} KiB with {SERVERS} servers \
         started and none connected; {resident_connected} KiB with {SERVERS} connections open \
         ({} KiB per connection); {resident_after} KiB after {} processes on them ({} KiB per \
         connection)",
        per_connection(resident_connected),
        SERVERS * PROCESSES_PER_SERVER,
        per_connection(resident_after),
    );

    let health = pool.health_all();
    assert_eq!(health.len(), SERVERS);
    for (name, health) in &health {
        assert_eq!(
            (
                &health.state,
                health.connections_opened,
                &health.last_failure
            ),
            (&EndpointState::Connected, 1, &None),
            "{name}: one connection, opened once, never failed"
        );
    }
    for ((name, health), ping) in health.iter().zip(&pings) {
        assert_eq!(
            health.last_round_trip,
            ping.as_ref().ok().copied(),
            "{name}: the ping's round trip is recorded"
        );
    }

    pool.close().await.expect("every connection closes");
    assert_eq!(pool.names(), Vec::<String>::new());
    let statuses = join_all(servers.into_iter().map(WsServer::stop)).await;
    for status in statuses {
        assert!(status.expect("the server stops").success());
    }
}

/// A fresh server and a cutting proxy in front of it (cutting on demand).
async fn server_behind_proxy() -> (WsServer, CutProxy) {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let proxy = CutProxy::in_front_of(&server.url, None)
        .await
        .expect("the proxy starts");
    (server, proxy)
}

#[tokio::test]
async fn a_dropped_connection_is_resumed_by_the_sdk_and_the_health_follows_it() {
    let (server, proxy) = server_behind_proxy().await;
    let pool = ExecPool::new();
    pool.add("cut", proxy.url(), ConnectOptions::new("pool-test"))
        .expect("a new name");
    let mut changes = pool.health_changes("cut").expect("the endpoint");
    assert_eq!(
        echo(&pool, "cut", "before").await.expect("echo"),
        "before\n"
    );
    assert_eq!(changes.borrow_and_update().state, EndpointState::Connected);
    let client = pool.client("cut").await.expect("the open connection");

    // While the proxy holds back the server's side, no resume can finish,
    // so the pool shows the endpoint reconnecting until the hold ends.
    proxy.hold_server_to_client(true);
    assert_eq!(proxy.cut_all(), 1);
    let reconnecting = health_where(&mut changes, |health| {
        matches!(health.state, EndpointState::Reconnecting { .. })
    })
    .await;
    assert_eq!(reconnecting.connections_opened, 1);
    proxy.hold_server_to_client(false);
    let resumed = health_where(&mut changes, |health| {
        health.state == EndpointState::Connected
    })
    .await;
    assert_eq!(
        (resumed.connections_opened, resumed.last_failure),
        (1, None),
        "resumed on the same session, not reopened"
    );
    assert_eq!(echo(&pool, "cut", "after").await.expect("echo"), "after\n");

    assert_eq!(pool.remove("cut").await.expect("the close"), true);
    let mut states = client.connection_state();
    tokio::time::timeout(
        PATIENCE,
        states.wait_for(|state| matches!(state, exec_client::ConnectionState::Closed(_))),
    )
    .await
    .expect("closed in time")
    .expect("the client is alive");
    match pool.client("cut").await {
        Err(ClientError::UnknownEndpoint { name }) => assert_eq!(name, "cut"),
        other => panic!("expected an unknown endpoint, got {other:?}"),
    }
    assert_eq!(pool.remove("cut").await.expect("nothing to close"), false);
    assert!(server.stop().await.expect("the server stops").success());
}

#[tokio::test]
async fn a_connection_closed_for_good_fails_the_endpoint_and_the_next_use_opens_another() {
    let (server, proxy) = server_behind_proxy().await;
    let pool = ExecPool::new();
    // Without reconnect, a cut closes the connection for good.
    pool.add(
        "fragile",
        proxy.url(),
        ConnectOptions::new("pool-test").reconnect(false),
    )
    .expect("a new name");
    let first = pool.client("fragile").await.expect("connect");
    let first_session = first.initialize_response().session_id.clone();
    let mut changes = pool.health_changes("fragile").expect("the endpoint");
    let cut_at = SystemTime::now();
    assert_eq!(proxy.cut_all(), 1);
    let failed = health_where(&mut changes, |health| health.state == EndpointState::Failed).await;
    let failure = failed.last_failure.expect("the failure");
    assert_eq!(failure.error, "the connection was lost");
    assert!(failure.at >= cut_at, "{failure:?}");

    assert_eq!(
        echo(&pool, "fragile", "again").await.expect("echo"),
        "again\n"
    );
    let second = pool.client("fragile").await.expect("the new connection");
    assert_ne!(second.initialize_response().session_id, first_session);
    let health = pool.health("fragile").expect("the endpoint");
    assert_eq!(
        (health.state, health.connections_opened),
        (EndpointState::Connected, 2)
    );
    pool.close().await.expect("the close");
    assert!(server.stop().await.expect("the server stops").success());
}

#[tokio::test]
async fn connects_in_flight_are_bounded_and_failures_are_reported() {
    // A listener that accepts and never answers the upgrade: each connect
    // holds its slot until the test drops its socket.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}", listener.local_addr().expect("an address"));
    let (accepted_sender, mut accepted) = mpsc::unbounded_channel();
    let acceptor = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            if accepted_sender.send(socket).is_err() {
                return;
            }
        }
    });

    let pool = ExecPool::with_max_concurrent_connects(2);
    let names: Vec<String> = (0..5).map(|index| format!("silent-{index}")).collect();
    for name in &names {
        pool.add(
            name,
            &url,
            ConnectOptions::new("pool-test").connect_timeout(PATIENCE),
        )
        .expect("a new name");
    }
    match pool.add("silent-0", &url, ConnectOptions::new("pool-test")) {
        Err(ClientError::InvalidInput(message)) => assert!(message.contains("silent-0")),
        other => panic!("expected a refused duplicate, got {other:?}"),
    }
    let started = SystemTime::now();
    let connects: Vec<_> = names
        .iter()
        .map(|name| {
            let pool = pool.clone();
            let name = name.clone();
            tokio::spawn(async move { pool.client(&name).await })
        })
        .collect();

    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(accepted.recv().await.expect("a connection"));
    }
    for name in &names {
        let mut changes = pool.health_changes(name).expect("the endpoint");
        health_where(&mut changes, |health| health.state != EndpointState::Idle).await;
    }
    let mut states: Vec<EndpointState> = pool
        .health_all()
        .into_iter()
        .map(|(_, health)| health.state)
        .collect();
    states.sort_by_key(|state| format!("{state:?}"));
    assert_eq!(
        states,
        [
            EndpointState::Connecting,
            EndpointState::Connecting,
            EndpointState::Queued,
            EndpointState::Queued,
            EndpointState::Queued
        ]
    );

    // Each dropped socket fails its connect and frees its slot for the next.
    held.clear();
    for _ in 2..5 {
        drop(accepted.recv().await.expect("the next connection"));
    }
    for connect in connects {
        match connect.await.expect("the task") {
            Err(ClientError::Connect { url: dialled, .. }) => assert_eq!(dialled, url),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
    for (name, health) in pool.health_all() {
        assert_eq!(health.state, EndpointState::Failed, "{name}");
        let failure = health.last_failure.expect("the failure");
        assert!(
            failure.error.contains("cannot connect"),
            "{name}: {failure:?}"
        );
        assert!(failure.at >= started, "{name}: {failure:?}");
    }
    acceptor.abort();
    pool.close().await.expect("nothing to close");
}

#[tokio::test]
async fn an_unknown_endpoint_is_a_typed_error() {
    let pool = ExecPool::new();
    match pool.ping("nowhere").await {
        Err(ClientError::UnknownEndpoint { name }) => assert_eq!(name, "nowhere"),
        other => panic!("expected an unknown endpoint, got {other:?}"),
    }
    assert_eq!(pool.health("nowhere"), None);
}
