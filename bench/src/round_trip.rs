//! Figure 2, the round trip of a tiny request: `fs/getMetadata` of `/`,
//! p50 and p99 after a warm-up, over WebSocket and stdio; baselines: a bare
//! tokio-tungstenite echo of a frame the size of that request (a helper
//! process serves it), and a line ping-pong over a pair of pipes with a
//! helper process (blocking reads and writes on both sides: the machine's
//! limit). A third baseline, the floor of any tokio program on stdio: the
//! same ping-pong with tokio on both sides (the driver's task writing and
//! reading the helper's pipes through the reactor, the helper echoing from
//! a task of its runtime). The samples are taken in turns, a quarter at a
//! time, so that a change of load hits them all alike.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use exec_client::ErrorKind;
use exec_client::ExecClient;
use exec_client::protocol::{AbsolutePath, FsGetMetadataParams, ProcessRead, ProcessReadParams};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt as _, BufReader as AsyncBufReader};
use tokio_tungstenite::tungstenite::Message;

use crate::Bench;
use crate::report::{Better, Figure, Target};
use crate::servers::{Binaries, StdioServer, WsServer, start_helper};
use crate::stats::Latency;

/// The samples are taken in this many turns per measurement.
const TURNS: usize = 4;

/// The text of the request the SDK sends, with an id of as many digits as
/// the measured calls have: the baselines echo a frame (a line) of its size.
pub fn request_text(calls: usize) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{calls},\"method\":\"fs/getMetadata\",\"params\":{{\"path\":\"/\"}}}}"
    )
}

/// Measures figure 2.
///
/// # Errors
/// When a server, a helper or a call fails.
pub async fn run(bench: &Bench) -> Result<Vec<Figure>> {
    let sizes = &bench.sizes;
    let payload = request_text(sizes.round_trips + sizes.warmup);
    let per_turn = sizes.round_trips.div_ceil(TURNS);

    let ws = WsServer::start(&bench.binaries.server, 64).await?;
    let ws_client = ws.connect().await?;
    let (stdio, stdio_client) = StdioServer::start(&bench.binaries.server, 64).await?;
    let mut echo = WsEcho::start(&bench.binaries).await?;
    let pipe = PipeEcho::start(&bench.binaries)?;
    let mut tokio_pipe = TokioPipeEcho::start(&bench.binaries)?;

    calls(&ws_client, sizes.warmup).await?;
    calls(&stdio_client, sizes.warmup).await?;
    echo.round_trips(&payload, sizes.warmup).await?;
    let (mut pipe, _) = pipe.round_trips_blocking(&payload, sizes.warmup).await?;
    tokio_pipe.round_trips(&payload, sizes.warmup).await?;

    inline_calls(&ws_client, sizes.warmup).await?;
    inline_calls(&stdio_client, sizes.warmup).await?;

    let mut samples: [Vec<Duration>; 7] = Default::default();
    for _ in 0..TURNS {
        samples[0].extend(echo.round_trips(&payload, per_turn).await?);
        samples[1].extend(calls(&ws_client, per_turn).await?);
        let (returned, taken) = pipe.round_trips_blocking(&payload, per_turn).await?;
        pipe = returned;
        samples[2].extend(taken);
        samples[3].extend(calls(&stdio_client, per_turn).await?);
        samples[4].extend(inline_calls(&ws_client, per_turn).await?);
        samples[5].extend(inline_calls(&stdio_client, per_turn).await?);
        samples[6].extend(tokio_pipe.round_trips(&payload, per_turn).await?);
    }
    ws_client.close().await?;
    ws.stop().await?;
    stdio.stop(stdio_client).await?;
    echo.stop().await?;
    pipe.stop()?;
    tokio_pipe.stop().await?;

    let [echo, ws, pipe, stdio, ws_inline, stdio_inline, tokio_pipe] =
        samples.map(|samples| Latency::of(&samples));
    let note = format!(
        "{} calls after {} warm-up; the baselines echo {} bytes",
        per_turn * TURNS,
        sizes.warmup,
        payload.len()
    );
    let figure = |id: &str, name: &str, ours: f64, baseline: f64, baseline_name: &str, target| {
        Figure::new(
            id,
            name,
            "µs",
            Better::Lower,
            ours,
            baseline,
            baseline_name,
            target,
        )
        .with_note(note.clone())
    };
    Ok(vec![
        figure(
            "round_trip_ws_p50",
            "round trip p50, WebSocket",
            ws.p50,
            echo.p50,
            "tungstenite echo",
            Some(Target::RatioAtMost(1.3)),
        ),
        figure(
            "round_trip_ws_p99",
            "round trip p99, WebSocket",
            ws.p99,
            echo.p99,
            "tungstenite echo",
            None,
        ),
        figure(
            "round_trip_stdio_p50",
            "round trip p50, stdio",
            stdio.p50,
            pipe.p50,
            "pipe ping-pong",
            Some(Target::RatioAtMost(3.0)),
        ),
        figure(
            "round_trip_stdio_tokio_floor_p50",
            "round trip p50, stdio, against a tokio program's floor",
            stdio.p50,
            tokio_pipe.p50,
            "tokio pipe echo",
            None,
        ),
        figure(
            "round_trip_stdio_p99",
            "round trip p99, stdio",
            stdio.p99,
            pipe.p99,
            "pipe ping-pong",
            None,
        ),
        // The protocol's own path, without the fs pool's two thread hand-offs
        // that `fs/getMetadata` takes: an error answered on the reader.
        figure(
            "round_trip_ws_inline_p50",
            "round trip p50, WebSocket, answered inline (process/read of an unknown id)",
            ws_inline.p50,
            echo.p50,
            "tungstenite echo",
            None,
        ),
        figure(
            "round_trip_stdio_inline_p50",
            "round trip p50, stdio, answered inline (process/read of an unknown id)",
            stdio_inline.p50,
            pipe.p50,
            "pipe ping-pong",
            None,
        ),
    ])
}

/// `count` calls of `process/read` on a process id that does not exist,
/// each timed: the server answers them on the connection's reader (an
/// `unknownProcess` error), so they time the protocol path alone.
async fn inline_calls(client: &ExecClient, count: usize) -> Result<Vec<Duration>> {
    let params = ProcessReadParams {
        after_seq: None,
        max_bytes: None,
        process_id: "round-trip-no-such-process".parse()?,
        wait_ms: None,
    };
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let answer = client.call::<ProcessRead>(params.clone()).await;
        samples.push(started.elapsed());
        match answer {
            Err(error) if error.kind() == Some(ErrorKind::UnknownProcess) => {}
            other => bail!("process/read of an unknown id answered {other:?}"),
        }
    }
    Ok(samples)
}

/// `count` calls of `fs/getMetadata` on `/`, each timed.
async fn calls(client: &ExecClient, count: usize) -> Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let params = FsGetMetadataParams {
            sandbox: None,
            follow_symlinks: None,
            path: AbsolutePath(String::from("/")),
        };
        let started = Instant::now();
        let metadata = client.fs_get_metadata(params).await?;
        samples.push(started.elapsed());
        ensure!(metadata.is_directory, "`/` is not a directory?");
    }
    Ok(samples)
}

/// The WebSocket baseline: a client of the `ws-echo` helper.
pub(crate) struct WsEcho {
    /// The helper, killed on drop.
    helper: tokio::process::Child,
    /// The connection, used from this task alone (no reader or writer task).
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl WsEcho {
    /// Starts the helper and connects to it (with `TCP_NODELAY`, as the SDK does).
    pub(crate) async fn start(binaries: &Binaries) -> Result<Self> {
        let mut helper = start_helper(binaries, &["ws-echo"])?;
        let stdout = helper.stdout.take().context("the helper's stdout")?;
        let url = AsyncBufReader::new(stdout)
            .lines()
            .next_line()
            .await?
            .context("the ws-echo helper said nothing")?;
        let (socket, _) = tokio_tungstenite::connect_async_with_config(&url, None, true)
            .await
            .with_context(|| format!("connecting to the echo at {url}"))?;
        Ok(Self { helper, socket })
    }

    /// `count` echoes of `payload` as a text frame, each timed.
    pub(crate) async fn round_trips(
        &mut self,
        payload: &str,
        count: usize,
    ) -> Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let started = Instant::now();
            self.socket.send(Message::text(payload)).await?;
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Text(text))) => {
                        ensure!(text.len() == payload.len(), "the echo changed the frame");
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error.into()),
                    None => bail!("the echo closed the connection"),
                }
            }
            samples.push(started.elapsed());
        }
        Ok(samples)
    }

    /// Closes the connection and the helper.
    pub(crate) async fn stop(mut self) -> Result<()> {
        let _ = self.socket.close(None).await;
        self.helper.kill().await?;
        Ok(())
    }
}

/// The tokio pipe baseline: the `tokio-pipe-echo` helper, written and read
/// by the calling task through tokio's reactor.
struct TokioPipeEcho {
    /// The helper, killed on drop.
    helper: tokio::process::Child,
    /// Its stdin.
    to_helper: tokio::process::ChildStdin,
    /// Its stdout.
    from_helper: AsyncBufReader<tokio::process::ChildStdout>,
}

impl TokioPipeEcho {
    /// Starts the helper.
    fn start(binaries: &Binaries) -> Result<Self> {
        let mut helper = start_helper(binaries, &["tokio-pipe-echo"])?;
        let to_helper = helper.stdin.take().context("the helper's stdin")?;
        let from_helper = AsyncBufReader::new(helper.stdout.take().context("the helper's stdout")?);
        Ok(Self {
            helper,
            to_helper,
            from_helper,
        })
    }

    /// `count` line ping-pongs of `payload`, each timed.
    async fn round_trips(&mut self, payload: &str, count: usize) -> Result<Vec<Duration>> {
        let line = format!("{payload}\n");
        let mut samples = Vec::with_capacity(count);
        let mut answer = Vec::with_capacity(line.len());
        for _ in 0..count {
            answer.clear();
            let started = Instant::now();
            self.to_helper.write_all(line.as_bytes()).await?;
            self.from_helper.read_until(b'\n', &mut answer).await?;
            samples.push(started.elapsed());
            ensure!(
                answer == line.as_bytes(),
                "the tokio pipe echo changed the line"
            );
        }
        Ok(samples)
    }

    /// Closes the helper's stdin (it exits at EOF) and reaps it.
    async fn stop(self) -> Result<()> {
        let Self {
            mut helper,
            to_helper,
            from_helper,
        } = self;
        drop(to_helper);
        drop(from_helper);
        let status = helper.wait().await?;
        ensure!(status.success(), "the tokio pipe echo ended with {status}");
        Ok(())
    }
}

/// The pipe baseline: the `pipe-echo` helper, written and read with blocking
/// calls on a thread of its own.
struct PipeEcho {
    /// The helper.
    helper: std::process::Child,
    /// Its stdin.
    to_helper: std::process::ChildStdin,
    /// Its stdout.
    from_helper: BufReader<std::process::ChildStdout>,
}

impl PipeEcho {
    /// Starts the helper.
    fn start(binaries: &Binaries) -> Result<Self> {
        let mut helper = std::process::Command::new(&binaries.driver)
            .args(["helper", "pipe-echo"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the pipe-echo helper")?;
        let to_helper = helper.stdin.take().context("the helper's stdin")?;
        let from_helper = BufReader::new(helper.stdout.take().context("the helper's stdout")?);
        Ok(Self {
            helper,
            to_helper,
            from_helper,
        })
    }

    /// `count` line ping-pongs on a blocking thread; gives `self` back.
    async fn round_trips_blocking(
        self,
        payload: &str,
        count: usize,
    ) -> Result<(Self, Vec<Duration>)> {
        let line = format!("{payload}\n");
        tokio::task::spawn_blocking(move || {
            let mut echo = self;
            let samples = echo.round_trips(line.as_bytes(), count)?;
            Ok((echo, samples))
        })
        .await?
    }

    /// `count` ping-pongs of `line`, each timed.
    fn round_trips(&mut self, line: &[u8], count: usize) -> Result<Vec<Duration>> {
        let mut samples = Vec::with_capacity(count);
        let mut answer = Vec::with_capacity(line.len());
        for _ in 0..count {
            answer.clear();
            let started = Instant::now();
            self.to_helper.write_all(line)?;
            self.from_helper.read_until(b'\n', &mut answer)?;
            samples.push(started.elapsed());
            ensure!(answer == line, "the pipe echo changed the line");
        }
        Ok(samples)
    }

    /// Closes the helper's stdin (it exits at EOF) and reaps it.
    fn stop(self) -> Result<()> {
        let Self {
            mut helper,
            to_helper,
            from_helper,
        } = self;
        drop(to_helper);
        drop(from_helper);
        let status = helper.wait()?;
        ensure!(status.success(), "the pipe-echo helper failed: {status}");
        Ok(())
    }
}
