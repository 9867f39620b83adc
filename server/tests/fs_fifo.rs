//! A FIFO cannot freeze the server (issue 13, finding 1), against the real
//! binary: fs calls naming a FIFO are answered at once and never consume its
//! queued bytes, and 600 of them at once leave `timeoutMs`, terminate and
//! SIGTERM working.

use std::fs::OpenOptions;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::time::Duration;

use exec_testkit::{ServerLauncher, WireClient, scratch_dir};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

/// How long any answer may take here: a stuck call shows as a timeout
/// instead of as the harness's general patience.
const QUICK: Duration = Duration::from_secs(5);

/// The fs calls spread over this many connections, since each connection
/// has at most 64 requests in flight.
const CONNECTIONS: usize = 10;

/// The fs calls each connection sends.
const CALLS_PER_CONNECTION: usize = 60;

async fn client(url: &str) -> WireClient {
    WireClient::initialized_websocket(url, QUICK).await
}

fn make_fifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("a FIFO");
}

fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// (`data.kind`, `data.path`) of an error response; nulls for a result.
fn error_data(response: &Value) -> (Value, Value) {
    let data = &response["error"]["data"];
    (data["kind"].clone(), data["path"].clone())
}

#[tokio::test]
async fn fifo_targets_are_refused_at_once_and_keep_their_bytes() {
    let server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let mut client = client(&server.url).await;
    let directory = scratch_dir();
    let fifo = directory.path().join("fifo");
    make_fifo(&fifo);
    let file = directory.path().join("file");
    std::fs::write(&file, b"contents").expect("a file");
    let copy = directory.path().join("copy");
    let refused = (json!("invalidPath"), json!(path_text(&fifo)));

    // No process has the FIFO open: before the fix, opening it for writing
    // blocked forever.
    let calls = [
        (
            "fs/writeFile",
            json!({"path": path_text(&fifo), "dataBase64": "eA=="}),
        ),
        (
            "fs/writeFile",
            json!({"path": path_text(&fifo), "dataBase64": "eA==", "append": true, "mode": 384}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": path_text(&file), "destinationPath": path_text(&fifo)}),
        ),
        (
            "fs/copy",
            json!({"sourcePath": path_text(&fifo), "destinationPath": path_text(&copy)}),
        ),
        ("fs/readFile", json!({"path": path_text(&fifo)})),
    ];
    for (method, params) in &calls {
        let response = client.request(method, params.clone()).await;
        assert_eq!(error_data(&response), refused, "{method} {params}");
    }

    // With a writer and queued bytes: before the fix, fs/readFile consumed
    // the bytes and then failed, and they were lost to the FIFO's reader.
    let consumer = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(&fifo)
        .expect("the consumer's end");
    let mut writer = OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("the writer's end");
    writer.write_all(b"queued").expect("bytes queued");
    for (method, params) in &calls {
        let response = client.request(method, params.clone()).await;
        assert_eq!(error_data(&response), refused, "with a writer: {method}");
    }
    let mut bytes = [0; 64];
    let read = (&consumer).read(&mut bytes).expect("the queued bytes");
    assert_eq!(&bytes[..read], b"queued");
    assert!(!copy.exists(), "no copy of a FIFO was made");
}

#[tokio::test]
async fn six_hundred_fifo_calls_leave_process_control_and_shutdown_working() {
    let mut server = ServerLauncher::new()
        .start_websocket()
        .await
        .expect("the server starts");
    let directory = scratch_dir();
    let fifo = directory.path().join("fifo");
    make_fifo(&fifo);
    let write = json!({"path": path_text(&fifo), "dataBase64": "eA=="});

    let mut control = client(&server.url).await;
    let sleeper = |process_id: &str| {
        json!({"processId": process_id, "argv": ["sleep", "60"], "cwd": "/",
               "env": {"PATH": "/usr/bin:/bin"}, "tty": false})
    };
    let mut timed = sleeper("timed");
    timed["timeoutMs"] = json!(1000);
    control.call("process/start", timed).await;
    control.call("process/start", sleeper("victim")).await;

    let mut flooders = Vec::new();
    let mut pending = Vec::new();
    for _ in 0..CONNECTIONS {
        let mut flooder = client(&server.url).await;
        let ids = send_writes(&mut flooder, &write).await;
        // The connection reads in order, so this answer means the server
        // has taken every fs call before it.
        flooder.call("process/list", json!({})).await;
        pending.push(ids);
        flooders.push(flooder);
    }

    // Before the fix, the fs calls held every thread of tokio's blocking
    // pool, and terminate and the timeout (which kill on that pool) hung.
    control
        .call("process/terminate", json!({"processId": "victim"}))
        .await;
    let exited = control.notification("process/exited", "victim").await;
    assert_eq!(exited["params"]["reason"], json!("killed"));
    let exited = control.notification("process/exited", "timed").await;
    assert_eq!(exited["params"]["reason"], json!("timedOut"));

    // Every fs call is answered, with the FIFO refused or, past the pool's
    // queue, the limit.
    for (flooder, ids) in flooders.iter_mut().zip(pending) {
        for id in ids {
            let response = flooder.response(id).await;
            let kind = response["error"]["data"]["kind"].clone();
            assert!(
                kind == json!("invalidPath") || kind == json!("limitExceeded"),
                "{response}"
            );
        }
    }

    // SIGTERM with 600 more calls in flight: the server exits in time.
    for flooder in &mut flooders {
        send_writes(flooder, &write).await;
    }
    server.terminate();
    let status = server
        .process
        .wait_for(QUICK)
        .await
        .expect("the server exits within 5 s of SIGTERM");
    assert!(status.success(), "{status}");
}

/// Sends [`CALLS_PER_CONNECTION`] `fs/writeFile` requests without waiting;
/// returns their ids.
async fn send_writes(client: &mut WireClient, params: &Value) -> Vec<i64> {
    let mut ids = Vec::with_capacity(CALLS_PER_CONNECTION);
    for _ in 0..CALLS_PER_CONNECTION {
        ids.push(client.send_request("fs/writeFile", params.clone()).await);
    }
    ids
}
