//! `fs/open`, `fs/readBlock` and `fs/close` against the real binary: blocks
//! at any offset with Codex's `eof` rule, handles that belong to one
//! connection, bounded in number and closed when it ends.

use std::path::Path;
use std::time::Duration;

use exec_testkit::{RawConnection, ServerLauncher, WireClient, scratch_dir};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// How long any answer may take here.
const QUICK: Duration = Duration::from_secs(10);

async fn client(url: &str) -> WireClient {
    WireClient::initialized_websocket(url, QUICK).await
}

/// (`data.kind`, `data.path`) of an error response; nulls for a result.
fn error_data(response: &Value) -> (Value, Value) {
    let data = &response["error"]["data"];
    (data["kind"].clone(), data["path"].clone())
}

fn text(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test]
async fn blocks_read_at_offsets_then_the_handle_closes() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut client = client(&server.url).await;
    let directory = scratch_dir();
    let file = directory.path().join("digits");
    std::fs::write(&file, b"0123456789").expect("a file");

    // Codex sends `file://` URIs and `sandbox: null`.
    let opened = client
        .call(
            "fs/open",
            json!({"handleId": "h1", "path": format!("file://{}", text(&file)), "sandbox": null}),
        )
        .await;
    assert_eq!(opened, json!({"handleId": "h1"}));
    let mut blocks = Vec::new();
    for (offset, len) in [(0, 4), (4, 6), (10, 6), (8, 1_048_576)] {
        blocks.push(
            client
                .call(
                    "fs/readBlock",
                    json!({"handleId": "h1", "offset": offset, "len": len}),
                )
                .await,
        );
    }
    assert_eq!(
        blocks,
        vec![
            json!({"chunk": "MDEyMw==", "eof": false}),
            // Exactly to the end: not short, so not `eof` (Codex's rule).
            json!({"chunk": "NDU2Nzg5", "eof": false}),
            json!({"chunk": "", "eof": true}),
            json!({"chunk": "ODk=", "eof": true}),
        ]
    );
    for len in [0, 1_048_577] {
        let refused = client
            .request(
                "fs/readBlock",
                json!({"handleId": "h1", "offset": 0, "len": len}),
            )
            .await;
        assert_eq!(refused["error"]["code"], json!(-32602), "len {len}");
    }
    let again = client
        .request("fs/open", json!({"handleId": "h1", "path": text(&file)}))
        .await;
    assert_eq!(error_data(&again).0, json!("invalidParams"));

    assert_eq!(
        client.call("fs/close", json!({"handleId": "h1"})).await,
        json!({})
    );
    let closed = client
        .request(
            "fs/readBlock",
            json!({"handleId": "h1", "offset": 0, "len": 1}),
        )
        .await;
    assert_eq!(error_data(&closed), (json!("notFound"), Value::Null));
    // Closing what is not open is no error.
    assert_eq!(
        client.call("fs/close", json!({"handleId": "h1"})).await,
        json!({})
    );

    let sandboxed = client
        .request(
            "fs/open",
            json!({"handleId": "h2", "path": text(&file), "sandbox": {"permissions": {"type": "managed"}}}),
        )
        .await;
    assert_eq!(error_data(&sandboxed).0, json!("sandboxUnavailable"));
}

#[tokio::test]
async fn handles_belong_to_their_connection_and_are_bounded() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut first = client(&server.url).await;
    let mut second = client(&server.url).await;
    let directory = scratch_dir();
    let file = directory.path().join("file");
    std::fs::write(&file, b"x").expect("a file");
    let path = text(&file);

    first
        .call("fs/open", json!({"handleId": "shared", "path": path}))
        .await;
    let other = second
        .request(
            "fs/readBlock",
            json!({"handleId": "shared", "offset": 0, "len": 1}),
        )
        .await;
    assert_eq!(error_data(&other).0, json!("notFound"));
    second
        .call("fs/open", json!({"handleId": "shared", "path": path}))
        .await;

    let limits = second.call("fs/close", json!({"handleId": "shared"})).await;
    assert_eq!(limits, json!({}));
    let mut third = WireClient::new(
        RawConnection::websocket(&server.url, None)
            .await
            .expect("a connection")
            .with_patience(QUICK),
    );
    let initialized = third.handshake().await;
    let limit = initialized["limits"]["maxFileHandlesPerConnection"]
        .as_u64()
        .expect("the limit is reported");
    for index in 0..limit {
        third
            .call(
                "fs/open",
                json!({"handleId": index.to_string(), "path": path}),
            )
            .await;
    }
    let refused = third
        .request("fs/open", json!({"handleId": "one more", "path": path}))
        .await;
    assert_eq!(error_data(&refused).0, json!("limitExceeded"));
    // Another connection has its own allowance.
    second
        .call("fs/open", json!({"handleId": "one more", "path": path}))
        .await;
}

/// Whether the process `pid` has `path` open, by its `/proc/PID/fd` links.
fn has_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the server's fds")
        .filter_map(Result::ok)
        .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|target| target == path))
}

#[tokio::test]
async fn the_end_of_a_connection_closes_its_handles() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let pid = server.process.pid().expect("the server's pid");
    let directory = scratch_dir();
    let file = std::fs::canonicalize(directory.path())
        .expect("the scratch directory")
        .join("held-open");
    std::fs::write(&file, b"x").expect("a file");
    let mut client = client(&server.url).await;
    client
        .call("fs/open", json!({"handleId": "h", "path": text(&file)}))
        .await;
    assert!(has_open(pid, &file), "the handle holds the file open");
    client.close().await;
    // Nothing tells another process that a file descriptor was closed, so
    // `/proc` is looked at again after each short pause, within a deadline.
    let deadline = tokio::time::Instant::now() + QUICK;
    while has_open(pid, &file) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server still has the file open after the connection ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
