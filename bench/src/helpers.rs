//! `exec-bench helper ...`: the baselines' other ends, run as processes of
//! their own, as the server is.
//!
//! - `ws-echo`: a bare tokio-tungstenite server on `127.0.0.1:0` that sends
//!   every frame back; prints its `ws://` URL on stdout. Multi-threaded
//!   runtime, like the server.
//! - `pipe-echo`: copies each line of stdin to stdout with blocking calls,
//!   until EOF.
//! - `tokio-pipe-echo`: the same from a task of a multi-threaded tokio
//!   runtime, stdin and stdout read and written as non-blocking pipes
//!   through the reactor (as the server reads and writes its stdio).
//! - `hold-sleeps`: for each line `N` on stdin, starts `N` more `sleep`s as
//!   `tokio::process::Child`ren with piped stdout and stderr, each followed
//!   by one task, then answers `ok`; at EOF kills them all and exits.

use std::io::{BufRead, Write};
use std::process::Stdio;

use anyhow::{Context, Result};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::servers::CHILD_PATH;

/// Which helper to run.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Helper {
    /// A bare WebSocket echo server.
    WsEcho,
    /// A line echo over stdin and stdout.
    PipeEcho,
    /// A line echo over stdin and stdout, from a tokio task.
    TokioPipeEcho,
    /// Holds idle `sleep`s, as little as a tokio program can.
    HoldSleeps,
}

/// Runs `helper` until it is done.
///
/// # Errors
/// I/O errors of its streams.
pub fn run(helper: Helper) -> Result<()> {
    match helper {
        Helper::PipeEcho => pipe_echo(),
        Helper::TokioPipeEcho => tokio::runtime::Runtime::new()?.block_on(tokio_pipe_echo()),
        Helper::WsEcho => tokio::runtime::Runtime::new()?.block_on(ws_echo()),
        Helper::HoldSleeps => tokio::runtime::Runtime::new()?.block_on(hold_sleeps()),
    }
}

/// See the module doc.
fn pipe_echo() -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut output = stdout.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        output.write_all(&line)?;
        output.flush()?;
    }
}

/// See the module doc. Stdin and stdout must be pipes.
async fn tokio_pipe_echo() -> Result<()> {
    use std::os::fd::AsFd as _;
    use tokio::net::unix::pipe;

    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    // On a worker thread, as the server's connection task runs.
    tokio::spawn(async move {
        let mut input = BufReader::new(pipe::Receiver::from_owned_fd(stdin)?);
        let mut output = pipe::Sender::from_owned_fd(stdout)?;
        let mut line = Vec::new();
        loop {
            line.clear();
            if input.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
            output.write_all(&line).await?;
        }
    })
    .await?
}

/// See the module doc.
async fn ws_echo() -> Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("ws://{address}\n").as_bytes())
        .await?;
    stdout.flush().await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                return;
            };
            while let Some(Ok(message)) = socket.next().await {
                if (message.is_text() || message.is_binary()) && socket.send(message).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

/// See the module doc.
async fn hold_sleeps() -> Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut stdout = tokio::io::stdout();
    let mut followers = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let count: usize = line.trim().parse().context("a count of sleeps")?;
        for _ in 0..count {
            let mut child = tokio::process::Command::new("sleep")
                .arg("600")
                .env_clear()
                .env("PATH", CHILD_PATH)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .context("starting sleep")?;
            let mut out = child.stdout.take().context("stdout")?;
            let mut err = child.stderr.take().context("stderr")?;
            followers.push(tokio::spawn(async move {
                let mut out_buffer = [0u8; 1024];
                let mut err_buffer = [0u8; 1024];
                let (mut out_open, mut err_open) = (true, true);
                while out_open || err_open {
                    tokio::select! {
                        read = out.read(&mut out_buffer), if out_open => out_open = matches!(read, Ok(length) if length > 0),
                        read = err.read(&mut err_buffer), if err_open => err_open = matches!(read, Ok(length) if length > 0),
                    }
                }
                child.wait().await
            }));
        }
        stdout.write_all(b"ok\n").await?;
        stdout.flush().await?;
    }
    // Aborting a follower drops its child, which kills it.
    for follower in &followers {
        follower.abort();
    }
    for follower in followers {
        let _ = follower.await;
    }
    Ok(())
}
