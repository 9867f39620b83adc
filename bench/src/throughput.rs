//! Figure 1, output throughput: `head -c N /dev/zero` through a pipe process
//! and through a PTY process, over WebSocket and over stdio, bytes counted at
//! the client after decoding; baselines: the same command into a plain pipe
//! and into a PTY read directly. Each figure is the median of the repeats,
//! and the repeats take turns (baseline, WebSocket, stdio) so that a change
//! of load hits all of them alike.

use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use exec_client::{ExecClient, ProcessEvent, RemoteChild};

use crate::Bench;
use crate::local_pty::LocalPty;
use crate::report::{Better, Figure, Target};
use crate::servers::{CHILD_PATH, StdioServer, WsServer};
use crate::stats::median;

/// Bytes read at once by the baselines: what the server reads at once too.
const READ_BYTES: usize = 64 * 1024;

/// Megabytes (10^6 bytes) per second.
fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Measures figure 1.
///
/// # Errors
/// When a server or a baseline fails, or bytes go missing.
pub async fn run(bench: &Bench) -> Result<Vec<Figure>> {
    let bytes = bench.sizes.output_bytes;
    let ws = WsServer::start(&bench.binaries.server, 1024).await?;
    let ws_client = ws.connect().await?;
    let (stdio, stdio_client) = StdioServer::start(&bench.binaries.server, 1024).await?;

    let mut samples: [Vec<f64>; 6] = Default::default();
    for _ in 0..bench.sizes.output_repeats {
        samples[0].push(tokio::task::spawn_blocking(move || pipe_baseline(bytes)).await??);
        samples[1].push(remote_output(&ws_client, false, bytes).await?);
        samples[2].push(remote_output(&stdio_client, false, bytes).await?);
        samples[3].push(tokio::task::spawn_blocking(move || pty_baseline(bytes)).await??);
        samples[4].push(remote_output(&ws_client, true, bytes).await?);
        samples[5].push(remote_output(&stdio_client, true, bytes).await?);
    }
    ws_client.close().await?;
    ws.stop().await?;
    stdio.stop(stdio_client).await?;

    let [pipe, pipe_ws, pipe_stdio, pty, pty_ws, pty_stdio] = samples.map(|runs| median(&runs));
    let note = format!(
        "{} MB, median of {}",
        bytes as f64 / 1e6,
        bench.sizes.output_repeats
    );
    let figure = |id: &str, name: &str, ours: f64, baseline: f64, baseline_name: &str, target| {
        Figure::new(
            id,
            name,
            "MB/s",
            Better::Higher,
            ours,
            baseline,
            baseline_name,
            target,
        )
        .with_note(note.clone())
    };
    Ok(vec![
        figure(
            "output_pipe_ws",
            "output, pipe process, WebSocket",
            pipe_ws,
            pipe,
            "plain pipe",
            Some(Target::RatioAtLeast(0.65)),
        ),
        figure(
            "output_pipe_stdio",
            "output, pipe process, stdio",
            pipe_stdio,
            pipe,
            "plain pipe",
            None,
        ),
        figure(
            "output_pty_ws",
            "output, PTY process, WebSocket",
            pty_ws,
            pty,
            "PTY read directly",
            Some(Target::OursAtLeast(140.0)),
        ),
        figure(
            "output_pty_stdio",
            "output, PTY process, stdio",
            pty_stdio,
            pty,
            "PTY read directly",
            Some(Target::OursAtLeast(140.0)),
        ),
    ])
}

/// `head -c bytes /dev/zero` through the server, in MB/s from the start
/// request to `process/closed`, counting decoded bytes at the client.
async fn remote_output(client: &ExecClient, tty: bool, bytes: u64) -> Result<f64> {
    let mut command = client
        .command("head")
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .env("PATH", CHILD_PATH);
    if tty {
        command = command.pty(24, 80);
    }
    let started = Instant::now();
    let child = command.spawn().await.context("starting head")?;
    let mut received = 0u64;
    consume(child, "head", |bytes| received += bytes.len() as u64).await?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(
        received == bytes,
        "received {received} of {bytes} bytes (tty: {tty})"
    );
    Ok(megabytes_per_second(bytes, seconds))
}

/// Hands each chunk of `child`'s output to `on_output` until it closed;
/// fails unless it exited with code 0 and no output was lost.
pub async fn consume(
    mut child: RemoteChild,
    program: &str,
    mut on_output: impl FnMut(&[u8]),
) -> Result<()> {
    let mut exit = None;
    while let Some(event) = child.next_event().await? {
        match event {
            ProcessEvent::Output(chunk) => on_output(&chunk.bytes),
            ProcessEvent::Exited(status) => exit = Some(status),
            ProcessEvent::OutputLost { bytes } => bail!("the client lost {bytes} bytes"),
            _ => {}
        }
    }
    ensure!(
        exit.is_some_and(|status| status.success()),
        "{program} did not succeed: {exit:?}"
    );
    Ok(())
}

/// The same command into a pipe of this process, in MB/s.
fn pipe_baseline(bytes: u64) -> Result<f64> {
    let started = Instant::now();
    let mut child = std::process::Command::new("head")
        .args(["-c", &bytes.to_string(), "/dev/zero"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting head")?;
    let mut stdout = child.stdout.take().context("head's stdout")?;
    let mut buffer = vec![0u8; READ_BYTES];
    let mut received = 0u64;
    loop {
        match stdout.read(&mut buffer)? {
            0 => break,
            length => received += length as u64,
        }
    }
    let status = child.wait()?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(status.success(), "head failed: {status}");
    ensure!(received == bytes, "received {received} of {bytes} bytes");
    Ok(megabytes_per_second(bytes, seconds))
}

/// The same command on a PTY of this process (default settings, as the
/// server's PTYs have), its master read directly, in MB/s.
fn pty_baseline(bytes: u64) -> Result<f64> {
    let started = Instant::now();
    let mut pty = LocalPty::spawn("head", &["-c", &bytes.to_string(), "/dev/zero"], false)?;
    let mut buffer = vec![0u8; READ_BYTES];
    let received = pty.read_to_end_counting(&mut buffer)?;
    let status = pty.finish()?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(status.success(), "head failed: {status}");
    ensure!(received == bytes, "received {received} of {bytes} bytes");
    Ok(megabytes_per_second(bytes, seconds))
}
