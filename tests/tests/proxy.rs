//! The `conformance-proxy` binary in front of a real `exec-server`: it passes
//! the upstream's refusal of a missing token through, forwards the client's
//! token, carries corpus cases both ways unchanged, records exactly the
//! violations the client side finds as JSON lines, closes the client when the
//! server goes away, and exits 0 on SIGTERM.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use conformance::{
    NamedCase, ProtocolSchema, RecordingConnection, ServerSettings, Session, Tally, corpus_dir,
    load_corpus, run_case_on,
};
use exec_testkit::ServerProcess;
use serde_json::Value;
use tokio::process::Command;

/// Cases that need no special server settings and together send frames both
/// ways, including invalid ones.
const CASES: [&str; 6] = [
    "envelope/parse-error",
    "envelope/unknown-method",
    "envelope/params-do-not-parse",
    "fs/readFile/whole-and-range",
    "process/read/long-poll",
    "process/start/pipe",
];

const TOKEN: &str = "proxy-test-token";

/// Starts the proxy in front of `upstream`, recording into `violations`.
async fn start_proxy(upstream: &str, violations: &Path) -> (ServerProcess, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_conformance-proxy"));
    command
        .args(["--upstream", upstream, "--listen", "ws://127.0.0.1:0"])
        .arg("--violations")
        .arg(violations)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    let proxy = ServerProcess::spawn(command, "conformance-proxy").expect("the proxy starts");
    let url = proxy
        .listening_url("conformance-proxy listening on ")
        .await
        .expect("the proxy prints its address");
    (proxy, url)
}

fn violation_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each violation is a JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_forwards_validates_and_records() {
    let schema = Arc::new(ProtocolSchema::embedded());
    let server = ServerSettings::default()
        .launcher()
        .token(TOKEN)
        .start_websocket()
        .await
        .expect("the server starts");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let violations = scratch.path().join("violations.jsonl");
    let (mut proxy, url) = start_proxy(&server.url, &violations).await;

    // The upstream's 401 reaches a client without the token.
    let error = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect_err("no token, no upgrade");
    assert!(error.to_string().contains("401"), "{error}");

    // Corpus cases through the proxy, validated on the client side too.
    let cases: Vec<NamedCase> = load_corpus(&corpus_dir())
        .expect("the corpus loads")
        .into_iter()
        .filter(|case| CASES.contains(&case.name.as_str()))
        .collect();
    assert_eq!(cases.len(), CASES.len());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut failures = Vec::new();
    for case in &cases {
        let context = format!("{} (proxy)", case.name);
        let connection = RecordingConnection::websocket(
            schema.clone(),
            tally.clone(),
            &context,
            &url,
            Some(TOKEN),
        )
        .await
        .expect("the token is forwarded upstream");
        failures.extend(run_case_on(Session::attach(connection, &context), case).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let counts = tally.lock().unwrap_or_else(PoisonError::into_inner).clone();
    assert!(counts.expected_violations >= 3, "{counts:?}");

    // The proxy saw the same frames and found the same violations: those of
    // the frames the cases send invalid on purpose, and no others. It writes
    // a frame's violations before forwarding the frame, and each of those
    // frames was answered, so the lines are all there.
    let recorded = violation_lines(&violations);
    assert_eq!(
        recorded.len() as u64,
        counts.expected_violations,
        "{recorded:#?}"
    );
    for record in &recorded {
        assert_eq!(record["direction"], "clientToServer", "{record}");
        assert!(record["connection"].is_u64(), "{record}");
        assert!(
            record["rule"].is_string() && record["frame"].is_string(),
            "{record}"
        );
    }
    let rules: Vec<&str> = recorded
        .iter()
        .filter_map(|record| record["rule"].as_str())
        .collect();
    assert!(
        rules.contains(&"json") && rules.contains(&"unknownMethod"),
        "{rules:?}"
    );

    // When the server goes away, the client's connection ends.
    let connection = RecordingConnection::websocket(
        schema.clone(),
        tally.clone(),
        "server goes away",
        &url,
        Some(TOKEN),
    )
    .await
    .expect("connects");
    let mut session = Session::attach(connection, "server goes away");
    session
        .handshake()
        .await
        .expect("handshake through the proxy");
    let status = server.stop().await.expect("the server stops");
    assert!(status.success(), "{status}");
    let failures = session.finish().await;
    assert!(failures.is_empty(), "{failures:?}");

    proxy.terminate();
    let status = proxy
        .wait_for(Duration::from_secs(20))
        .await
        .expect("the proxy exits after SIGTERM");
    assert!(status.success(), "the proxy exited with {status}");
}
