//! The client against the real `exec-server serve --listen ws://127.0.0.1:0`:
//! the WebSocket transport, the connection token, and what a pending call
//! gets when the server goes away.

use std::time::Duration;

use exec_client::protocol::{FsReadFileParams, FsWriteFileParams, ProcessListParams};
use exec_client::{ClientError, ConnectOptions, ExecClient};
use pretty_assertions::assert_eq;

use exec_testkit::{ServerLauncher, WsServer, pending_long_poll, scratch_dir};

/// `exec-server serve --listen ws://127.0.0.1:0`, behind the validating
/// proxy when `cargo xtask test` names it, requiring `token` when given.
async fn start_server(token: Option<&str>) -> WsServer {
    let launcher = ServerLauncher::new().behind_conformance_proxy();
    let launcher = match token {
        Some(token) => launcher.token(token),
        None => launcher,
    };
    launcher.start_websocket().await.expect("the server starts")
}

#[tokio::test]
async fn processes_and_files_over_websocket() {
    let server = start_server(None).await;
    let client = ExecClient::connect_websocket(&server.url, ConnectOptions::new("websocket"))
        .await
        .expect("connect");
    assert_eq!(
        client.initialize_response().protocol_version,
        "exec-server.v1"
    );
    assert_eq!(client.local_server_pid(), None);

    let output = client
        .command("/bin/sh")
        .args(["-c", "printf 'over the wire'; exit 5"])
        .output()
        .await
        .expect("output");
    assert_eq!(
        (output.stdout.as_slice(), output.status.exit_code),
        (&b"over the wire"[..], 5)
    );

    let scratch = scratch_dir();
    let path = format!("{}/ws.bin", scratch.path().display());
    let bytes: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    client
        .fs_write_file(FsWriteFileParams {
            sandbox: None,
            append: None,
            create_parents: None,
            data_base64: bytes.clone().into(),
            mode: None,
            path: path.clone().into(),
        })
        .await
        .expect("write");
    let read = client
        .fs_read_file(FsReadFileParams {
            sandbox: None,
            max_bytes: None,
            offset: None,
            path: path.into(),
        })
        .await
        .expect("read");
    assert_eq!(read.data_base64.into_inner(), bytes);

    client.clone().close().await.expect("close");
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("closed");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
}

#[tokio::test]
async fn output_is_the_same_with_and_without_binary_frames() {
    let server = start_server(None).await;
    // Both streams, NUL and 0xFF, several chunks, and a PTY.
    let script = "seq 1 40000; printf '\\000\\377' >&2; seq 1 30000 >&2; exit 3";
    let mut outputs = Vec::new();
    for binary_output in [true, false] {
        let options = ConnectOptions::new("binary-output").binary_output(binary_output);
        let client = ExecClient::connect_websocket(&server.url, options)
            .await
            .expect("connect");
        assert_eq!(
            client.initialize_response().binary_output,
            Some(binary_output),
            "granted as asked over WebSocket"
        );
        let piped = client
            .command("/bin/sh")
            .args(["-c", script])
            .output()
            .await
            .expect("output");
        let terminal = client
            .command("/bin/sh")
            .args(["-c", "printf 'on a terminal'"])
            .pty(24, 80)
            .output()
            .await
            .expect("pty output");
        outputs.push((
            piped.stdout,
            piped.stderr,
            piped.status.exit_code,
            terminal.stdout,
        ));
        client.close().await.expect("close");
    }
    assert_eq!(outputs[0], outputs[1]);
    let (stdout, stderr, code, terminal) = &outputs[0];
    assert_eq!(stdout.len(), 228_894, "seq 1 40000");
    assert!(stderr.starts_with(b"\x00\xff1\n"), "{:?}", &stderr[..8]);
    assert_eq!(*code, 3);
    assert_eq!(String::from_utf8_lossy(terminal), "on a terminal");
}

#[tokio::test]
async fn the_token_is_sent_as_a_bearer_header() {
    let server = start_server(Some("s3cret-token")).await;
    let error = ExecClient::connect_websocket(&server.url, ConnectOptions::new("no token"))
        .await
        .expect_err("no token");
    assert!(
        matches!(&error, ClientError::Connect { url, .. } if url == &server.url),
        "{error:?}"
    );
    assert!(error.to_string().contains("401"), "{error}");
    let error =
        ExecClient::connect_websocket(&server.url, ConnectOptions::new("wrong").token("wrong"))
            .await
            .expect_err("wrong token");
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
    let client = ExecClient::connect_websocket(
        &server.url,
        ConnectOptions::new("right").token("s3cret-token"),
    )
    .await
    .expect("the right token");
    client
        .process_list(ProcessListParams {})
        .await
        .expect("served");
}

#[tokio::test]
async fn a_pending_call_fails_with_transport_closed_when_the_server_goes_away() {
    let mut server = start_server(None).await;
    // Without reconnect, as in v1: the end of the connection is the end of
    // the client (`resume.rs` covers what reconnect does instead).
    let client = ExecClient::connect_websocket(
        &server.url,
        ConnectOptions::new("goes away").reconnect(false),
    )
    .await
    .expect("connect");
    let child = client
        .command("/bin/sleep")
        .arg("30")
        .spawn()
        .await
        .expect("spawn");
    // Nothing answers this before its minute is up, not even the process
    // being killed.
    let pending = pending_long_poll(&client, child.process_id()).await;
    server.terminate();
    let error = tokio::time::timeout(Duration::from_secs(30), pending)
        .await
        .expect("the call ends when the connection does")
        .expect("task")
        .expect_err("the connection closed under it");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
    let error = client
        .process_list(ProcessListParams {})
        .await
        .expect_err("closed");
    assert!(matches!(error, ClientError::TransportClosed), "{error:?}");
    assert!(server.wait().await.expect("the server exits").success());
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    // Bind a port and close it again, so nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("ws://127.0.0.1:{port}");
    let error = ExecClient::connect_websocket(&url, ConnectOptions::default())
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, ClientError::Connect { .. }), "{error:?}");
}
