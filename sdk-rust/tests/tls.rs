//! The client over `wss://` against the real `exec-server serve --tls-cert
//! --tls-key`, with a CA made by rcgen: output arrives byte-exact while a
//! proxy cuts the TCP connection under TLS (each resume is a new TLS
//! handshake, verified against the same CA file), and the two ways TLS
//! setup fails are told apart (an untrusted certificate, an unusable CA file).

use std::time::Duration;

use exec_client::{ClientError, ConnectOptions, ConnectionState, ExecClient, ProcessEvent};
use exec_testkit::{CHILD_PATH, CutProxy, ServerLauncher, TestCertificates, WsServer};
use pretty_assertions::assert_eq;
use sha2::{Digest, Sha256};

/// How long one awaited event may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(60);

/// About 2 MB of distinct lines, so a lost, repeated or reordered chunk
/// changes the digest.
const STREAM: &str = "seq 1 300000";

/// A server speaking TLS with `certificates`.
async fn tls_server(certificates: &TestCertificates) -> WsServer {
    ServerLauncher::new()
        .args(certificates.serve_args())
        .start_websocket()
        .await
        .expect("the server starts")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test]
async fn output_arrives_byte_exact_over_wss_through_cuts_and_resumes() {
    let certificates = TestCertificates::generate();
    let server = tls_server(&certificates).await;
    let upstream = server
        .url
        .strip_prefix("wss://")
        .expect("a wss:// URL")
        .parse()
        .expect("IP:PORT");
    let proxy = CutProxy::start(upstream, Some(256 * 1024))
        .await
        .expect("the proxy starts");
    let url = format!("wss://{}", proxy.address());
    let client =
        ExecClient::connect_websocket(&url, ConnectOptions::new("tls").ca_file(certificates.ca()))
            .await
            .expect("connect over TLS");

    let expected = std::process::Command::new("sh")
        .args(["-c", STREAM])
        .output()
        .expect("the stream runs locally")
        .stdout;
    let mut child = client
        .command("sh")
        .args(["-c", STREAM])
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .expect("spawn");
    let mut digest = Sha256::new();
    let mut received = 0;
    let mut status = None;
    while let Some(event) = tokio::time::timeout(PATIENCE, child.next_event())
        .await
        .expect("the next event comes in time")
        .expect("the stream rides through the cuts")
    {
        match event {
            ProcessEvent::Output(chunk) => {
                received += chunk.bytes.len();
                digest.update(&chunk.bytes);
            }
            ProcessEvent::Exited(exited) => status = Some(exited),
            other => panic!("nothing is lost while the session acknowledges output: {other:?}"),
        }
    }
    assert_eq!(received, expected.len());
    assert_eq!(hex(&digest.finalize()), hex(&Sha256::digest(&expected)));
    assert!(status.expect("an exit").success(), "{status:?}");
    assert!(proxy.cuts() > 0, "the proxy cut the connection");
    // Each cut was followed by a new connection (a new TLS handshake).
    let mut state = client.connection_state();
    tokio::time::timeout(
        PATIENCE,
        state.wait_for(|state| *state == ConnectionState::Connected),
    )
    .await
    .expect("connected again in time")
    .expect("the client lives");
    assert!(proxy.connections() > proxy.cuts());
    client.close().await.expect("close");
}

#[tokio::test]
async fn an_untrusted_certificate_and_an_unusable_ca_file_are_told_apart() {
    let certificates = TestCertificates::generate();
    let server = tls_server(&certificates).await;
    let options = || ConnectOptions::new("tls").reconnect(false);

    let untrusted =
        ExecClient::connect_websocket(&server.url, options().ca_file(certificates.other_ca()))
            .await
            .expect_err("the other CA did not sign the server's certificate");
    assert!(
        matches!(untrusted, ClientError::Connect { .. }),
        "{untrusted:?}"
    );
    assert!(
        untrusted.to_string().contains("certificate is not trusted"),
        "{untrusted}"
    );

    let missing = certificates.directory().join("missing.pem");
    let unusable = ExecClient::connect_websocket(&server.url, options().ca_file(&missing))
        .await
        .expect_err("no CA file");
    assert!(matches!(unusable, ClientError::Tls { .. }), "{unusable:?}");
    assert!(unusable.to_string().contains("missing.pem"), "{unusable}");

    let trusted = ExecClient::connect_websocket(&server.url, options().ca_file(certificates.ca()))
        .await
        .expect("the right CA");
    let output = trusted
        .command("echo")
        .arg("trusted")
        .env("PATH", CHILD_PATH)
        .output()
        .await
        .expect("output");
    assert_eq!(output.stdout, b"trusted\n");
    trusted.close().await.expect("close");
}
