//! Memory the server holds for what clients send, measured on the real
//! binary as the peak resident size (`VmHWM`) of a fresh server per test:
//! a huge request costs about its own size once or twice, never a multiple,
//! and partially received messages share one server-wide budget.
//!
//! The bounds are generous (a loaded machine, a debug build), and still far
//! below what the server peaked at before: 498 MB for the 60 MB path, 407 MB
//! for the 40 MB write, 419 MB for five stalled 60 MB frames.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Ending, ending, mib, peak_memory, raw_upgraded, text_frame_header};
use exec_testkit::{Outgoing, Received, ServerLauncher, WireClient, WsServer, scratch_dir};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;

/// A fresh server on a free loopback port, and its pid.
async fn start(launcher: ServerLauncher) -> (WsServer, u32) {
    let server = launcher.start_websocket().await.expect("the server starts");
    let pid = server.process.pid().expect("a running server");
    (server, pid)
}

/// A request for `fs/getMetadata` of a 60 MB path is answered with an
/// error of a few KiB, and the server peaks well under what it did (498 MB).
#[tokio::test]
async fn a_huge_path_costs_little_more_than_itself() {
    let (server, pid) = start(ServerLauncher::new()).await;
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    let path = format!("/{}", "a".repeat(60_000_000));
    let request =
        json!({"jsonrpc": "2.0", "id": 7, "method": "fs/getMetadata", "params": {"path": path}});
    client.send_text(&request.to_string()).await;
    drop((request, path));
    let Received::Text(reply) = client.recv_raw().await else {
        panic!("a text reply");
    };
    assert!(reply.len() < 16 * 1024, "a reply of {} bytes", reply.len());
    let reply: Value = serde_json::from_str(&reply).expect("json");
    assert_eq!(reply["id"], 7);
    assert_eq!(reply["error"]["data"]["kind"], "invalidPath", "{reply}");
    let peak = peak_memory(pid);
    eprintln!("the server peaked at {} MiB", peak / mib(1));
    assert!(peak < mib(220), "the server peaked at {peak} bytes");
}

/// A 40 MB `fs/writeFile` is written whole, and the server peaks well under
/// what it did (407 MB).
#[tokio::test]
async fn a_huge_write_costs_little_more_than_itself() {
    let (server, pid) = start(ServerLauncher::new()).await;
    let scratch = scratch_dir();
    let target = scratch.path().join("big");
    let data = vec![b'x'; 40_000_000];
    let encoded = base64_of(&data);
    drop(data);
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    let request = json!({"jsonrpc": "2.0", "id": 8, "method": "fs/writeFile",
        "params": {"path": target, "dataBase64": encoded}});
    drop(encoded);
    client.send_text(&request.to_string()).await;
    drop(request);
    assert_eq!(
        client.recv().await,
        json!({"jsonrpc": "2.0", "id": 8, "result": {}})
    );
    assert_eq!(
        std::fs::metadata(&target).expect("written").len(),
        40_000_000
    );
    let peak = peak_memory(pid);
    eprintln!("the server peaked at {} MiB", peak / mib(1));
    assert!(peak < mib(190), "the server peaked at {peak} bytes");
}

/// Standard padded base64 of `data`.
fn base64_of(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let word = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for index in 0..4 {
            if index <= chunk.len() {
                text.push(char::from(
                    ALPHABET[(word >> (18 - 6 * index) & 63) as usize],
                ));
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// Five clients that each send 60 MB of a frame and stall share a server-wide
/// budget of 100 MB (`--max-partial-message-bytes`): those whose message
/// would overdraw it are closed with 1013 ("try again later"), the server's
/// peak stays near the budget (it was 419 MB), and another client is served
/// throughout.
#[tokio::test]
async fn stalled_partial_frames_share_one_budget() {
    const FRAME_BYTES: u64 = 60_000_000;
    let (server, pid) =
        start(ServerLauncher::new().args(["--max-partial-message-bytes", "100000000"])).await;
    let address = server.server_url.trim_start_matches("ws://").to_owned();
    let mut bystander = WireClient::websocket(&server.url).await;
    bystander.handshake().await;
    let payload = Arc::new(vec![b' '; usize::try_from(FRAME_BYTES - 1).expect("fits")]);
    let mut readers = Vec::new();
    let mut writers = Vec::new();
    for _ in 0..5 {
        let stream = raw_upgraded(&address).await;
        let (reader, mut writer) = stream.into_split();
        readers.push(reader);
        let payload = payload.clone();
        writers.push(tokio::spawn(async move {
            // A write fails once the server closed the connection.
            let _ = writer.write_all(&text_frame_header(FRAME_BYTES)).await;
            let _ = writer.write_all(&payload).await;
            writer
        }));
    }
    // Each writer is done once all but the last byte of its frame were taken
    // by the kernel (nearly all read by the server), or the server closed it.
    let mut kept_writers = Vec::new();
    for writer in writers {
        kept_writers.push(writer.await.expect("the writer task"));
    }
    let peak = peak_memory(pid);
    eprintln!("the server peaked at {} MiB", peak / mib(1));
    let mut endings = Vec::new();
    for reader in &mut readers {
        endings.push(ending(reader, Duration::from_millis(500)).await);
    }
    let refused = endings
        .iter()
        .filter(|ending| **ending == Ending::CloseCode(1013))
        .count();
    // At most one 60 MB message fits in 100 MB.
    assert!(refused >= 4, "endings: {endings:?}");
    assert!(peak < mib(240), "the server peaked at {peak} bytes");
    assert_eq!(
        bystander.call("process/list", json!({})).await,
        json!({"processes": []})
    );
    drop(kept_writers);
}

/// Control frames are not partial messages: a client that pings a lot
/// (here 200 pings of 100 bytes against a budget of 10,000 bytes) keeps
/// being served.
#[tokio::test]
async fn pings_do_not_use_up_the_budget() {
    let (server, _pid) =
        start(ServerLauncher::new().args(["--max-partial-message-bytes", "10000"])).await;
    let mut client = WireClient::websocket(&server.url).await;
    client.handshake().await;
    for _ in 0..200 {
        client.send(Outgoing::Ping(vec![b'p'; 100])).await;
        assert_eq!(client.recv_raw().await, Received::Pong(vec![b'p'; 100]));
    }
    assert_eq!(
        client.call("process/list", json!({})).await,
        json!({"processes": []})
    );
}
