//! Figure 5, memory and scale.
//!
//! - Resident memory per idle managed process: the server's `VmRSS` (from
//!   `/proc/PID/status`) after a warm-up batch of `sleep`s is running, and
//!   again once the measured batch runs too; the growth divided by the
//!   batch. Baseline: the same growth in the `hold-sleeps` helper, a bare
//!   tokio program that keeps each `sleep` as a `tokio::process::Child` with
//!   piped stdout and stderr and one task reading them: about the least a
//!   program that follows a child's output and exit can spend.
//! - Connections: many WebSocket connections at once, each starting several
//!   `sleep`s, all running at the same time; every connection then lists
//!   its processes. Ours is the count seen running, the baseline the count
//!   asked for; any error fails the section.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use exec_client::protocol::ProcessListParams;
use exec_client::{ExecClient, RemoteChild};
use futures_util::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::Bench;
use crate::report::{Better, Figure, Target};
use crate::servers::{Binaries, CHILD_PATH, WsServer, rss_kib, start_helper};

/// How long the idle processes would sleep: they are killed long before.
const SLEEP_SECONDS: &str = "600";

/// Measures the memory per idle managed process.
///
/// # Errors
/// When the server or the helper fails, or a process does not start.
pub async fn per_process(bench: &Bench) -> Result<Vec<Figure>> {
    let (warm, idle) = (bench.sizes.idle_warmup, bench.sizes.idle_processes);
    let server = WsServer::start(&bench.binaries.server, warm + idle + 16).await?;
    let client = server.connect().await?;
    let mut children = start_sleeps(&client, warm).await?;
    expect_running(&client, warm).await?;
    let before = server.rss_kib()?;
    children.extend(start_sleeps(&client, idle).await?);
    expect_running(&client, warm + idle).await?;
    let after = server.rss_kib()?;
    drop(children);
    client.close().await?;
    server.stop().await?;
    let ours = after.saturating_sub(before) as f64 / idle as f64;

    let (base_before, base_after) = held_sleeps(&bench.binaries, warm, idle).await?;
    let baseline = base_after.saturating_sub(base_before) as f64 / idle as f64;
    Ok(vec![
        Figure::new(
            "memory_per_idle_process",
            "server RSS per idle process",
            "KiB",
            Better::Lower,
            ours,
            baseline,
            "bare tokio child holder",
            Some(Target::OursAtMost(16.0)),
        )
        .with_note(format!(
            "{idle} idle `sleep`s on pipes after {warm} warm-up; server VmRSS {before} -> {after} KiB, \
             holder {base_before} -> {base_after} KiB"
        )),
    ])
}

/// Measures many connections with several processes each, all at once.
///
/// # Errors
/// When anything fails: a connection, a start, a process not running.
pub async fn connections(bench: &Bench) -> Result<Vec<Figure>> {
    let (connections, per_connection) = (
        bench.sizes.connections,
        bench.sizes.processes_per_connection,
    );
    let wanted = connections * per_connection;
    let server = WsServer::start(&bench.binaries.server, per_connection + 16).await?;
    let started = Instant::now();
    let opened = join_all((0..connections).map(|_| async {
        let client = server.connect().await?;
        let children = join_all((0..per_connection).map(|_| start_sleep(&client))).await;
        let children = children.into_iter().collect::<Result<Vec<_>>>()?;
        anyhow::Ok((client, children))
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let mut errors = Vec::new();
    let mut sessions = Vec::new();
    for outcome in opened {
        match outcome {
            Ok(session) => sessions.push(session),
            Err(error) => errors.push(format!("{error:#}")),
        }
    }
    let listed = join_all(sessions.iter().map(|(client, _)| running(client))).await;
    let mut seen = 0usize;
    for outcome in listed {
        match outcome {
            Ok(count) => seen += count,
            Err(error) => errors.push(format!("{error:#}")),
        }
    }
    let rss = server.rss_kib()?;
    let closing = sessions.into_iter().map(|(client, children)| async move {
        drop(children);
        client.close().await
    });
    for closed in join_all(closing).await {
        if let Err(error) = closed {
            errors.push(format!("{error:#}"));
        }
    }
    server.stop().await?;
    if let Some(first) = errors.first() {
        bail!(
            "{} errors with {connections} connections x {per_connection} processes; the first: {first}",
            errors.len()
        );
    }
    Ok(vec![
        Figure::new(
            "connections_processes",
            &format!("{connections} connections x {per_connection} processes, running"),
            "count",
            Better::Higher,
            seen as f64,
            wanted as f64,
            "processes asked for",
            Some(Target::Equal),
        )
        .with_note(format!(
            "0 errors; all connected and started in {seconds:.2} s; server VmRSS then {:.1} MiB",
            rss as f64 / 1024.0
        )),
    ])
}

/// One idle `sleep` on pipes.
async fn start_sleep(client: &ExecClient) -> Result<RemoteChild> {
    client
        .command("sleep")
        .arg(SLEEP_SECONDS)
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .context("starting sleep")
}

/// `count` idle `sleep`s, started one after the other (so that no burst of
/// requests in flight is counted as memory per process).
async fn start_sleeps(client: &ExecClient, count: usize) -> Result<Vec<RemoteChild>> {
    let mut children = Vec::with_capacity(count);
    for _ in 0..count {
        children.push(start_sleep(client).await?);
    }
    Ok(children)
}

/// How many of the connection's processes run, per `process/list`.
async fn running(client: &ExecClient) -> Result<usize> {
    let list = client.process_list(ProcessListParams {}).await?;
    Ok(list
        .processes
        .iter()
        .filter(|process| process.running)
        .count())
}

/// Fails unless exactly `count` processes of the connection run.
async fn expect_running(client: &ExecClient, count: usize) -> Result<()> {
    let seen = running(client).await?;
    ensure!(seen == count, "{seen} processes run, expected {count}");
    Ok(())
}

/// The baseline: the `hold-sleeps` helper's `VmRSS` in KiB with `warm`
/// sleeps, then with `warm + idle`.
async fn held_sleeps(binaries: &Binaries, warm: usize, idle: usize) -> Result<(u64, u64)> {
    let mut helper = start_helper(binaries, &["hold-sleeps"])?;
    let pid = helper.id().context("the helper's pid")?;
    let mut stdin = helper.stdin.take().context("the helper's stdin")?;
    let mut lines = BufReader::new(helper.stdout.take().context("the helper's stdout")?).lines();
    let mut hold = async |count: usize| -> Result<u64> {
        stdin.write_all(format!("{count}\n").as_bytes()).await?;
        stdin.flush().await?;
        let answer = lines.next_line().await?.context("the helper ended")?;
        ensure!(answer == "ok", "the helper said {answer:?}");
        rss_kib(pid)
    };
    let before = hold(warm).await?;
    let after = hold(idle).await?;
    drop(stdin);
    let status = helper.wait().await?;
    ensure!(status.success(), "the hold-sleeps helper failed: {status}");
    Ok((before, after))
}
