//! What only the in-process mode (`exec_server::in_process`) has: a
//! configuration handed over directly, no local server process, and a host
//! process it must leave alone. The scenarios every transport shares run
//! in-process too: the wire-level ones in this directory (`envelope.rs`,
//! `methods.rs`, `processes.rs`, where `arg0` reaches a PTY process) and the
//! client ones in `sdk-rust/tests/local_server.rs`.

use exec_client::{ConnectOptions, ErrorKind, ExecClient};
use exec_server::ServerConfig;
use pretty_assertions::assert_eq;

async fn connect(test: &str) -> ExecClient {
    exec_server::in_process::connect(ConnectOptions::new(test))
        .await
        .expect("the in-process server answers initialize")
}

#[tokio::test]
async fn the_handshake_reports_the_configs_limits_and_no_local_server() {
    let client = connect("handshake").await;
    let info = client.initialize_response();
    let defaults = ServerConfig::default();
    assert_eq!(
        info.limits.retained_output_bytes_per_process,
        defaults.process.retained_output_bytes as u64
    );
    // No local server process: the server is this process.
    assert_eq!(client.local_server_pid(), None);
    client.close().await.expect("closes");
}

#[tokio::test]
async fn a_custom_config_applies_through_the_transport() {
    let mut config = ServerConfig::default();
    config.process.max_processes = 1;
    let transport = exec_server::in_process::transport(config.into());
    let client = ExecClient::connect_transport(transport, ConnectOptions::new("custom config"))
        .await
        .expect("connects");
    assert_eq!(
        client
            .initialize_response()
            .limits
            .max_processes_per_connection,
        1
    );
    let _sleeper = client
        .command("/bin/sleep")
        .arg("30")
        .spawn()
        .await
        .expect("the first process starts");
    let error = client
        .command("/bin/true")
        .spawn()
        .await
        .expect_err("one process per connection");
    assert_eq!(error.kind(), Some(ErrorKind::LimitExceeded));
    client.close().await.expect("closes");
}

/// Closing the client ends the connection, which kills its processes; and
/// the in-process mode leaves this process's subreaper flag alone.
#[tokio::test]
async fn closing_kills_the_processes_and_leaves_the_host_alone() {
    let client = connect("close").await;
    let sleeper = client
        .command("/bin/sleep")
        .arg("1000")
        .spawn()
        .await
        .expect("sleep starts");
    let pid = sleeper.pid();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(sleeper);
    client.close().await.expect("closes");
    // The connection's close waited until the child was reaped.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "sleep ({pid}) outlived its connection"
    );
    assert!(
        !nix::sys::prctl::get_child_subreaper().expect("prctl"),
        "the in-process mode made the host a subreaper"
    );
}
