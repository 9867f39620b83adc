//! Figure 4, PTY echo: 6 bytes written to `cat` on a raw-mode PTY until
//! they come back, p50 and p99 after a warm-up, over WebSocket and stdio;
//! baseline: the same with `cat` on a raw-mode PTY of this process, its
//! master written and read directly (blocking).
//!
//! Through the server, a round trip is timed from the `process/write`
//! request until the echoed bytes arrived in `process/output` (the write's
//! response is awaited too before the next round, untimed when it comes
//! later).
//!
//! A remote echo also crosses the transport and back, which the local
//! baseline does not: one more row compares the WebSocket echo with the
//! floor of any remote terminal, the local raw PTY's echo plus a bare
//! tokio-tungstenite echo of a frame the size of the `process/write`
//! request, both measured here.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use exec_client::{ExecClient, RemoteChild};

use crate::Bench;
use crate::local_pty::LocalPty;
use crate::report::{Better, Figure, Target};
use crate::round_trip::WsEcho;
use crate::servers::{CHILD_PATH, StdioServer, WsServer};
use crate::stats::Latency;

/// What is typed each round.
const MESSAGE: &[u8; 6] = b"hello!";

/// The remote program: raw mode, then a marker that says so, then `cat`.
const RAW_CAT: &str = "stty raw -echo && printf R && exec cat";

/// Measures figure 4.
///
/// # Errors
/// When a server, the baseline or an echo fails.
pub async fn run(bench: &Bench) -> Result<Vec<Figure>> {
    let (warmup, count) = (bench.sizes.warmup, bench.sizes.pty_echoes);
    let baseline = tokio::task::spawn_blocking(move || local_echoes(warmup, count)).await??;

    let mut echo = WsEcho::start(&bench.binaries).await?;
    let frame = write_request_text();
    echo.round_trips(&frame, warmup).await?;
    let transport = echo.round_trips(&frame, count).await?;
    echo.stop().await?;

    let ws = WsServer::start(&bench.binaries.server, 64).await?;
    let ws_client = ws.connect().await?;
    let over_ws = remote_echoes(&ws_client, warmup, count).await?;
    ws_client.close().await?;
    ws.stop().await?;

    let (stdio, stdio_client) = StdioServer::start(&bench.binaries.server, 64).await?;
    let over_stdio = remote_echoes(&stdio_client, warmup, count).await?;
    stdio.stop(stdio_client).await?;

    let [baseline, ws, stdio, transport] =
        [baseline, over_ws, over_stdio, transport].map(|samples| Latency::of(&samples));
    let note = format!("{count} echoes of 6 bytes after {warmup} warm-up");
    let figure = |id: &str, name: &str, ours: f64, baseline: f64, target| {
        Figure::new(
            id,
            name,
            "µs",
            Better::Lower,
            ours,
            baseline,
            "local raw PTY",
            target,
        )
        .with_note(note.clone())
    };
    Ok(vec![
        figure(
            "pty_echo_ws_p50",
            "PTY echo p50, WebSocket",
            ws.p50,
            baseline.p50,
            Some(Target::RatioAtMost(1.6)),
        ),
        figure(
            "pty_echo_ws_p99",
            "PTY echo p99, WebSocket",
            ws.p99,
            baseline.p99,
            None,
        ),
        Figure::new(
            "pty_echo_ws_floor_p50",
            "PTY echo p50, WebSocket, against a remote terminal's floor",
            "µs",
            Better::Lower,
            ws.p50,
            baseline.p50 + transport.p50,
            "local raw PTY + tungstenite echo",
            None,
        )
        .with_note(format!(
            "{note}; the tungstenite echo of {} bytes took {:.1} µs at p50",
            frame.len(),
            transport.p50
        )),
        figure(
            "pty_echo_stdio_p50",
            "PTY echo p50, stdio",
            stdio.p50,
            baseline.p50,
            Some(Target::RatioAtMost(1.6)),
        ),
        figure(
            "pty_echo_stdio_p99",
            "PTY echo p99, stdio",
            stdio.p99,
            baseline.p99,
            None,
        ),
    ])
}

/// A request like the SDK's `process/write` of [`MESSAGE`], for the bare
/// echo to carry: the frame a remote echo's first half sends.
fn write_request_text() -> String {
    String::from(
        r#"{"jsonrpc":"2.0","id":22000,"method":"process/write","params":{"chunk":"aGVsbG8h","processId":"proc-1"}}"#,
    )
}

/// Echoes through `cat` on a server PTY; the timed samples after `warmup`.
async fn remote_echoes(client: &ExecClient, warmup: usize, count: usize) -> Result<Vec<Duration>> {
    let mut child = client
        .command("sh")
        .args(["-c", RAW_CAT])
        .env("PATH", CHILD_PATH)
        .pty(24, 80)
        .spawn()
        .await
        .context("starting cat on a PTY")?;
    // Nothing is typed before the terminal is raw, so nothing is echoed twice.
    let ready = read_exactly(&mut child, 1).await?;
    ensure!(ready == b"R", "expected the marker, got {ready:?}");
    let handle = child.handle();
    let mut samples = Vec::with_capacity(count);
    for round in 0..warmup + count {
        let started = Instant::now();
        let (written, echoed) = tokio::join!(handle.write(MESSAGE), async {
            let bytes = read_exactly(&mut child, MESSAGE.len()).await;
            (bytes, Instant::now())
        });
        written?;
        let (bytes, arrived) = echoed;
        ensure!(bytes? == MESSAGE, "cat echoed something else");
        if round >= warmup {
            samples.push(arrived - started);
        }
    }
    child.terminate().await?;
    while child.next_event().await?.is_some() {}
    Ok(samples)
}

/// The next `count` bytes of output.
async fn read_exactly(child: &mut RemoteChild, count: usize) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(count);
    while bytes.len() < count {
        match child.next_output().await? {
            Some(chunk) => bytes.extend_from_slice(&chunk.bytes),
            None => bail!("the process ended after {} bytes", bytes.len()),
        }
    }
    ensure!(
        bytes.len() == count,
        "got {} bytes, expected {count}",
        bytes.len()
    );
    Ok(bytes)
}

/// Echoes through `cat` on a local raw PTY; the timed samples after `warmup`.
fn local_echoes(warmup: usize, count: usize) -> Result<Vec<Duration>> {
    let mut pty = LocalPty::spawn("cat", &[], true)?;
    let mut samples = Vec::with_capacity(count);
    let mut echoed = [0u8; MESSAGE.len()];
    for round in 0..warmup + count {
        let started = Instant::now();
        pty.master.write_all(MESSAGE)?;
        pty.master.read_exact(&mut echoed)?;
        let elapsed = started.elapsed();
        ensure!(&echoed == MESSAGE, "cat echoed something else");
        if round >= warmup {
            samples.push(elapsed);
        }
    }
    pty.finish()?;
    Ok(samples)
}
