//! One whole stdio connection per input: the input is the byte stream a
//! client writes (one JSON-RPC message per line), served by the server's
//! real stdio transport, message parser, lifecycle and method dispatch
//! (`exec_server::transport::stdio::serve`) until it ends at the input's
//! EOF, the connection's processes killed.
//!
//! A crash is a panic anywhere in the server (libFuzzer's panic hook aborts,
//! also for panics on spawned tasks), a connection that does not end, or a
//! broken rule of what the server wrote back:
//! - every line it writes is one JSON object with `"jsonrpc": "2.0"`;
//! - it never sends more responses than the client sent messages.
//!
//! The target starts real processes and touches real files when the input
//! says so: `cargo xtask fuzz` runs it in a sandbox (a read-only view of
//! the machine in its own mount and PID namespaces), never run it bare.

#![no_main]

use std::sync::{Arc, LazyLock};

use exec_server::ServerConfig;
use exec_server::shutdown::ShutdownSignal;
use exec_server::transport::stdio;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tokio::io::AsyncReadExt as _;
use tokio::runtime::Runtime;

/// The server's written bytes held before it waits for the reader, in bytes.
const PIPE_CAPACITY: usize = 64 * 1024;

/// One runtime for all inputs: building one per input would dominate the
/// time of an input. Multi-threaded like the real server's, so the
/// server's tasks interleave as they do in production.
static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    // The target runs as the sandbox's PID 1: reap orphans the way `serve`
    // does, so its processes' descendants do not pile up as zombies.
    if let Err(error) = exec_server::process::init_reaper() {
        eprintln!("the orphan reaper did not start: {error}");
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime")
});

/// The settings every input's connection gets: the defaults, with fewer
/// processes so that one input cannot start hundreds.
static CONFIG: LazyLock<Arc<ServerConfig>> = LazyLock::new(|| {
    let mut config = ServerConfig::default();
    config.process.max_processes = 8;
    Arc::new(config)
});

fuzz_target!(|input: &[u8]| {
    let written = RUNTIME.block_on(serve(input));
    check_replies(input, &written);
});

/// Serves `input` as one connection's byte stream and returns what the
/// server wrote. A panic of the connection's task is re-raised here.
async fn serve(input: &[u8]) -> Vec<u8> {
    let (server_end, mut client_end) = tokio::io::duplex(PIPE_CAPACITY);
    let owned_input = input.to_vec();
    let connection = tokio::spawn(async move {
        stdio::serve(
            CONFIG.clone(),
            owned_input.as_slice(),
            server_end,
            ShutdownSignal::never(),
        )
        .await;
    });
    let mut written = Vec::new();
    // Read until the server closes its end; the connection's writer ends
    // once everything queued is out.
    if let Err(error) = client_end.read_to_end(&mut written).await {
        panic!("reading what the server wrote failed: {error}");
    }
    if let Err(error) = connection.await {
        match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("the connection task did not finish: {error}"),
        }
    }
    written
}

/// Checks the rules of the server's output (see the module doc).
fn check_replies(input: &[u8], written: &[u8]) {
    let sent = input
        .split(|&byte| byte == b'\n')
        .filter(|line| !line.trim_ascii().is_empty())
        .count();
    let mut responses = 0;
    for line in written.split(|&byte| byte == b'\n') {
        if line.is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_slice(line) {
            Ok(message) => message,
            Err(error) => panic!(
                "the server wrote a line that is not JSON ({error}): {}",
                String::from_utf8_lossy(line)
            ),
        };
        assert_eq!(
            message.get("jsonrpc"),
            Some(&Value::from("2.0")),
            "a server message without \"jsonrpc\": \"2.0\": {message}"
        );
        if message.get("method").is_none() {
            responses += 1;
        }
    }
    assert!(
        responses <= sent,
        "{responses} responses to {sent} messages"
    );
}
