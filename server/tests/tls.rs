//! TLS on both sides and the readiness probe, with the real binary:
//! `exec-server exec --url wss://` against `serve --tls-cert --tls-key`
//! with a CA made by rcgen (by `--ca-file` and by `EXEC_SERVER_CA_FILE`);
//! an untrusted certificate, a `ws://` client to a TLS listener and a
//! `wss://` client to a plain one failing with one clear line; bad
//! certificate files refused at start; `GET /readyz` answered 200 over
//! `ws://` and `wss://` without a token while other paths get 404 and the
//! upgrade still needs its token; a TLS handshake in progress taking its
//! place under `--max-handshakes`.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use exec_testkit::{ServerLauncher, TestCertificates, WsServer, server_binary};
use pretty_assertions::assert_eq;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// How long one run of the binary may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// A token long enough for any listener.
const TOKEN: &str = "a-token-of-enough-length-0123456789";

/// What a run of the binary gave.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

/// Runs `exec-server ARGS...` to its end, with `env` added and no token or
/// CA file inherited.
async fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = tokio::process::Command::new(server_binary());
    command
        .args(args)
        .env_remove("EXEC_SERVER_TOKEN")
        .env_remove("EXEC_SERVER_CA_FILE")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(PATIENCE, command.output())
        .await
        .expect("the run ends in time")
        .expect("the binary runs");
    Run {
        status: output.status.code().expect("an exit code, not a signal"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 on stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 on stderr"),
    }
}

/// Runs `exec --url URL --ca-file CA -- true`, which must fail, and
/// returns its one error line (see [`one_error_line`]).
async fn exec_true_refused(url: &str, ca: &std::path::Path) -> String {
    let ca = ca.to_str().expect("a UTF-8 path");
    let refused = run(&["exec", "--url", url, "--ca-file", ca, "--", "true"], &[]).await;
    one_error_line(&refused).to_owned()
}

/// The one `exec-server: ` line of a failed `exec` (status 255).
fn one_error_line(run: &Run) -> &str {
    assert_eq!(run.status, 255, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {run:?}");
    assert!(lines[0].starts_with("exec-server: "), "{run:?}");
    lines[0]
}

/// A server speaking TLS with `certificates`, with `token` when given.
async fn tls_server(certificates: &TestCertificates, token: Option<&str>) -> WsServer {
    let launcher = ServerLauncher::new().args(certificates.serve_args());
    let launcher = match token {
        Some(token) => launcher.token(token),
        None => launcher,
    };
    launcher.start_websocket().await.expect("the server starts")
}

/// `IP:PORT` of a `ws://` or `wss://` URL.
fn address(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

#[tokio::test]
async fn exec_over_wss_works_with_the_custom_ca_by_flag_and_by_variable() {
    let certificates = TestCertificates::generate();
    let server = tls_server(&certificates, None).await;
    assert!(server.url.starts_with("wss://127.0.0.1:"), "{}", server.url);
    let ca = certificates.ca();
    let ca = ca.to_str().expect("a UTF-8 path");

    let by_flag = run(
        &[
            "exec",
            "--url",
            &server.url,
            "--ca-file",
            ca,
            "--",
            "sh",
            "-c",
            "echo hi; exit 3",
        ],
        &[],
    )
    .await;
    assert_eq!(
        (by_flag.status, by_flag.stdout.as_str()),
        (3, "hi\n"),
        "{by_flag:?}"
    );

    // By name (the certificate is for `localhost` too), with the CA from
    // the variable the SDK reads.
    let port = address(&server.url)
        .rsplit_once(':')
        .expect("a port")
        .1
        .to_owned();
    let by_name = format!("wss://localhost:{port}");
    let by_variable = run(
        &["exec", "--url", &by_name, "--", "echo", "by variable"],
        &[("EXEC_SERVER_CA_FILE", ca)],
    )
    .await;
    assert_eq!(
        (by_variable.status, by_variable.stdout.as_str()),
        (0, "by variable\n"),
        "{by_variable:?}"
    );
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_a_clear_error() {
    let certificates = TestCertificates::generate();
    let server = tls_server(&certificates, None).await;
    let other_ca = certificates.other_ca();
    let line = exec_true_refused(&server.url, &other_ca).await;
    assert!(
        line.contains("certificate is not trusted") && line.contains("UnknownIssuer"),
        "{line}"
    );

    // A CA file that holds no certificate is named as such.
    let not_a_ca = certificates.directory().join("empty.pem");
    std::fs::write(&not_a_ca, "nothing here\n").expect("writing a file");
    let line = exec_true_refused(&server.url, &not_a_ca).await;
    assert!(line.contains("holds no usable PEM certificate"), "{line}");
}

#[tokio::test]
async fn plain_and_tls_clients_on_the_wrong_listener_fail_cleanly() {
    let certificates = TestCertificates::generate();
    let ca = certificates.ca();
    let ca = ca.to_str().expect("a UTF-8 path");
    let tls = tls_server(&certificates, None).await;
    let plain_url = format!("ws://{}", address(&tls.url));
    let plain_to_tls = run(&["exec", "--url", &plain_url, "--", "true"], &[]).await;
    let line = one_error_line(&plain_to_tls);
    assert!(
        line.contains("400") && line.contains("this server speaks TLS"),
        "{line}"
    );
    // The listener goes on serving TLS clients.
    let after = run(
        &[
            "exec",
            "--url",
            &tls.url,
            "--ca-file",
            ca,
            "--",
            "echo",
            "still",
        ],
        &[],
    )
    .await;
    assert_eq!(
        (after.status, after.stdout.as_str()),
        (0, "still\n"),
        "{after:?}"
    );

    let plain = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let tls_url = format!("wss://{}", address(&plain.url));
    let tls_to_plain = run(
        &["exec", "--url", &tls_url, "--ca-file", ca, "--", "true"],
        &[],
    )
    .await;
    let line = one_error_line(&tls_to_plain);
    assert!(line.contains("during the TLS handshake"), "{line}");
}

#[tokio::test]
async fn bad_certificate_files_are_refused_at_start() {
    let certificates = TestCertificates::generate();
    let missing = certificates.directory().join("missing.pem");
    let certificate = certificates.server_certificate();
    let key = certificates.server_key();
    let path = |path: &Path| path.to_str().expect("a UTF-8 path").to_owned();
    let cases = [
        (
            [path(&missing), path(&key)],
            "cannot read the TLS certificate file",
        ),
        // A key file given as the certificate: no certificate in it.
        ([path(&key), path(&key)], "holds no PEM certificate"),
        // A certificate given as the key: no key in it.
        (
            [path(&certificate), path(&certificate)],
            "cannot read a private key from the TLS key file",
        ),
    ];
    for ([certificate, key], expected) in cases {
        let refused = run(
            &["serve", "--tls-cert", &certificate, "--tls-key", &key],
            &[],
        )
        .await;
        assert_eq!(refused.status, 1, "{refused:?}");
        assert!(refused.stderr.contains(expected), "{refused:?}");
        assert!(!refused.stderr.contains("listening"), "{refused:?}");
    }
    // Both or neither.
    let alone = run(&["serve", "--tls-cert", &path(&certificate)], &[]).await;
    assert_eq!(alone.status, 2, "{alone:?}");
    assert!(alone.stderr.contains("--tls-key"), "{alone:?}");
}

#[tokio::test]
async fn a_non_loopback_tls_listener_still_needs_a_token() {
    let certificates = TestCertificates::generate();
    let certificate = certificates.server_certificate();
    let key = certificates.server_key();
    let refused = run(
        &[
            "serve",
            "--listen",
            "wss://0.0.0.0:0",
            "--tls-cert",
            certificate.to_str().expect("a UTF-8 path"),
            "--tls-key",
            key.to_str().expect("a UTF-8 path"),
        ],
        &[],
    )
    .await;
    assert_eq!(refused.status, 1, "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("refusing to listen on non-loopback"),
        "{refused:?}"
    );
}

/// Sends `request` on `stream` and reads the whole answer (the server
/// closes after it).
async fn ask<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> String {
    stream
        .write_all(request.as_bytes())
        .await
        .expect("the request is sent");
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer))
        .await
        .expect("the answer comes in time")
        .expect("the answer is read");
    String::from_utf8(answer).expect("a UTF-8 answer")
}

/// A plain GET of `path` with a `Host` and a user agent, as a probe sends it.
fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: kube-probe/1.31\r\n\r\n")
}

/// A TLS connection to `address` trusting `ca`.
async fn tls_connect(
    address: &str,
    ca: &Path,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(ca).expect("the CA"))
        .expect("the CA is usable");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(address).await.expect("connects");
    let name = ServerName::try_from("127.0.0.1").expect("a server name");
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake")
}

#[tokio::test]
async fn readyz_answers_200_over_ws_and_wss_without_a_token_other_paths_404() {
    let ready = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\
                 Connection: close\r\n\r\nok\n";
    let not_found = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n\
                     Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n";

    let plain = ServerLauncher::new()
        .token(TOKEN)
        .start_websocket()
        .await
        .expect("the server starts");
    let plain_address = address(&plain.url);
    let connect = || async { TcpStream::connect(plain_address).await.expect("connects") };
    assert_eq!(ask(connect().await, &get("/readyz")).await, ready);
    assert_eq!(ask(connect().await, &get("/")).await, not_found);
    assert_eq!(ask(connect().await, &get("/healthz")).await, not_found);
    // The upgrade still needs the token.
    let refused = run(&["exec", "--url", &plain.url, "--", "true"], &[]).await;
    assert!(one_error_line(&refused).contains("401"), "{refused:?}");

    let certificates = TestCertificates::generate();
    let tls = tls_server(&certificates, Some(TOKEN)).await;
    let tls_address = address(&tls.url);
    let ca = certificates.ca();
    assert_eq!(
        ask(tls_connect(tls_address, &ca).await, &get("/readyz")).await,
        ready
    );
    assert_eq!(
        ask(tls_connect(tls_address, &ca).await, &get("/other")).await,
        not_found
    );
    let ca = ca.to_str().expect("a UTF-8 path");
    let refused = run(
        &["exec", "--url", &tls.url, "--ca-file", ca, "--", "true"],
        &[],
    )
    .await;
    assert!(one_error_line(&refused).contains("401"), "{refused:?}");
    let accepted = run(
        &[
            "exec",
            "--url",
            &tls.url,
            "--ca-file",
            ca,
            "--",
            "echo",
            "in",
        ],
        &[("EXEC_SERVER_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(
        (accepted.status, accepted.stdout.as_str()),
        (0, "in\n"),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn a_tls_handshake_in_progress_holds_a_place_under_max_handshakes() {
    let certificates = TestCertificates::generate();
    let server = ServerLauncher::new()
        .args(certificates.serve_args())
        .args(["--max-handshakes", "1"])
        .start_websocket()
        .await
        .expect("the server starts");
    let address = address(&server.url).to_owned();
    // A client that connects and never starts its TLS handshake holds the
    // only place.
    let stalled = TcpStream::connect(&address).await.expect("connects");
    let ca = certificates.ca();
    let probe =
        tokio::spawn(async move { ask(tls_connect(&address, &ca).await, &get("/readyz")).await });
    // The probe waits in the listen backlog meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !probe.is_finished(),
        "answered while the only place was held"
    );
    drop(stalled);
    let answer = tokio::time::timeout(PATIENCE, probe)
        .await
        .expect("answered once the place is free")
        .expect("the probe task");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
}
