//! The WebSocket listener: frames, pings, and the upgrade's origin and token checks.

use exec_testkit::{Outgoing, Received, ServerLauncher, WireClient, WsServer, server_binary};
use pretty_assertions::assert_eq;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A server on a free loopback port, started by `launcher`.
async fn start(launcher: ServerLauncher) -> WsServer {
    launcher.start_websocket().await.expect("the server starts")
}

async fn upgrade_status(url: &str, headers: &[(&str, &str)]) -> Option<u16> {
    let mut request = url.into_client_request().expect("a request");
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
            .expect("a header name");
        // Appended, so a name given twice is sent twice.
        request
            .headers_mut()
            .append(name, value.parse().expect("a header value"));
    }
    status_of(request).await
}

/// The HTTP status that refuses the upgrade `request`, `None` when it succeeds.
async fn status_of(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Option<u16> {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(error) => panic!("unexpected failure: {error}"),
    }
}

#[tokio::test]
async fn binary_frames_and_pings_are_served() {
    let server = start(ServerLauncher::new()).await;
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    let request = json!({"jsonrpc": "2.0", "id": 5, "method": "process/list"}).to_string();
    client.send(Outgoing::Binary(request.into_bytes())).await;
    assert_eq!(
        client.recv().await,
        json!({"jsonrpc": "2.0", "id": 5, "result": {"processes": []}})
    );
    client.send(Outgoing::Ping(b"hi".to_vec())).await;
    assert_eq!(client.recv_raw().await, Received::Pong(b"hi".to_vec()));
    client.send(Outgoing::Binary(b"\xff\xfe".to_vec())).await;
    assert_eq!(client.recv().await["error"]["code"], -32700);
}

#[tokio::test]
async fn a_bad_client_does_not_disturb_another() {
    let server = start(ServerLauncher::new()).await;
    let mut good = WireClient::websocket(&server.url).await;
    good.handshake().await;
    let mut bad = WireClient::websocket(&server.url).await;
    bad.send_text("{{{{").await;
    assert_eq!(bad.recv().await["error"]["code"], -32700);
    assert_eq!(
        good.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}

#[tokio::test]
async fn browser_origins_are_refused_unless_allowed() {
    let server = start(ServerLauncher::new().args(["--allow-origin", "https://ide.example"])).await;
    let url = server.url.clone();
    assert_eq!(
        upgrade_status(&url, &[("origin", "https://evil.example")]).await,
        Some(403)
    );
    assert_eq!(
        upgrade_status(&url, &[("origin", "https://ide.example")]).await,
        None
    );
    assert_eq!(upgrade_status(&url, &[]).await, None);
}

#[tokio::test]
async fn the_token_is_required_when_set() {
    let server = start(ServerLauncher::new().token("s3cret")).await;
    let url = server.url.clone();
    assert_eq!(upgrade_status(&url, &[]).await, Some(401));
    assert_eq!(
        upgrade_status(&url, &[("authorization", "Bearer wrong")]).await,
        Some(401)
    );
    assert_eq!(
        upgrade_status(&url, &[("authorization", "Bearer s3cret")]).await,
        None
    );
}

#[tokio::test]
async fn non_loopback_without_a_token_refuses_to_start() {
    let output = tokio::process::Command::new(server_binary())
        .args(["serve", "--listen", "ws://0.0.0.0:0"])
        .env_remove("EXEC_SERVER_TOKEN")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("without a token"));
}

#[tokio::test]
async fn a_header_given_twice_is_refused() {
    let server = start(
        ServerLauncher::new()
            .token("s3cret")
            .args(["--allow-origin", "https://ide.example"]),
    )
    .await;
    let url = server.url.clone();
    let right = ("authorization", "Bearer s3cret");
    let wrong = ("authorization", "Bearer wrong");
    for headers in [[right, wrong], [wrong, right], [right, right]] {
        assert_eq!(
            upgrade_status(&url, &headers).await,
            Some(400),
            "{headers:?}"
        );
    }
    let origin = ("origin", "https://ide.example");
    assert_eq!(
        upgrade_status(&url, &[right, origin, ("origin", "https://evil.example")]).await,
        Some(400)
    );
    assert_eq!(upgrade_status(&url, &[right, origin]).await, None);
}

#[tokio::test]
async fn non_loopback_with_a_short_token_refuses_to_start() {
    let output = tokio::process::Command::new(server_binary())
        .args(["serve", "--listen", "ws://0.0.0.0:0"])
        .env("EXEC_SERVER_TOKEN", "x")
        .output()
        .await
        .expect("runs");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("it must have at least 16"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The status of an upgrade sent with `Host: host` in place of the URL's.
async fn upgrade_status_with_host(url: &str, host: &str) -> Option<u16> {
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        tokio_tungstenite::tungstenite::http::header::HOST,
        host.parse().expect("a header value"),
    );
    status_of(request).await
}

/// On a loopback listener, only loopback `Host` names (or allowed ones) may
/// connect: a rebound DNS name that now points at 127.0.0.1 gets 403.
#[tokio::test]
async fn a_loopback_listener_refuses_foreign_host_names() {
    let server = start(ServerLauncher::new().args(["--allow-host", "sandbox.internal"])).await;
    let url = server.server_url.clone();
    let port = url.rsplit(':').next().expect("a port").to_owned();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        format!("ide.localhost:{port}"),
        format!("[::1]:{port}"),
        format!("sandbox.internal:{port}"),
    ] {
        assert_eq!(upgrade_status_with_host(&url, &host).await, None, "{host}");
    }
    for host in [
        format!("attacker.example:{port}"),
        String::from("attacker.example"),
        format!("localhost.attacker.example:{port}"),
        format!("10.0.0.5:{port}"),
    ] {
        assert_eq!(
            upgrade_status_with_host(&url, &host).await,
            Some(403),
            "{host}"
        );
    }
    // Two `Host` headers (written by hand: clients send one): which one a
    // proxy in front checked is unknowable.
    let address = url.trim_start_matches("ws://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nHost: attacker.example\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .expect("writes");
    let mut response = vec![0_u8; 64];
    let read = tokio::io::AsyncReadExt::read(&mut stream, &mut response)
        .await
        .expect("reads");
    let status_line = String::from_utf8_lossy(&response[..read]).into_owned();
    assert!(status_line.starts_with("HTTP/1.1 400"), "{status_line}");
}

/// A raw WebSocket connection after its upgrade: the stream, ready for frames.
async fn raw_upgraded(address: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .expect("writes");
    // Read the 101 response up to its blank line, and nothing after it.
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        let mut byte = [0_u8; 1];
        stream.read_exact(&mut byte).await.expect("the response");
        response.push(byte[0]);
    }
    assert!(response.starts_with(b"HTTP/1.1 101"));
    stream
}

/// The close code of the close frame the server answers `frame` with.
async fn close_code_for(address: &str, frame: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = raw_upgraded(address).await;
    stream.write_all(frame).await.expect("writes");
    let mut header = [0_u8; 4];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut header),
    )
    .await
    .expect("a close frame in time")
    .expect("a close frame");
    assert_eq!(header[0], 0x88, "a close frame: {header:?}");
    u16::from_be_bytes([header[2], header[3]])
}

/// Framing errors close the connection with the close code RFC 6455 gives them.
#[tokio::test]
async fn framing_errors_close_with_their_close_code() {
    let server = start(ServerLauncher::new()).await;
    let address = server.server_url.trim_start_matches("ws://").to_owned();
    // A client frame without a mask: a protocol error, 1002.
    assert_eq!(close_code_for(&address, b"\x81\x02hi").await, 1002);
    // A masked text frame whose payload is not UTF-8: 1007.
    let mask = [1_u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x82];
    frame.extend(mask);
    frame.extend(
        [0xff_u8, 0xfe]
            .iter()
            .zip(mask)
            .map(|(byte, key)| byte ^ key),
    );
    assert_eq!(close_code_for(&address, &frame).await, 1007);
}
