//! `exec-soak`: the driver behind `cargo xtask soak`. It starts the real
//! `exec-server` on WebSocket (with a short session TTL, so dropped
//! sessions end during the run), puts it under mixed load for minutes
//! (`load`), samples its resident memory, fds, threads, zombie children
//! and descendants from `/proc` every few seconds (`sample`), prints one
//! row per sample, and judges the run (`verdict`).
//!
//! ```text
//! exec-soak --server PATH [--minutes N | --seconds N] [--sample-seconds N]
//! ```
//!
//! Exits 0 when the server ran flat and every operation succeeded; 1 when
//! a resource grew (the last quarter's median over the first quarter's by
//! more than its margin), when processes or zombies outlived the load's
//! sessions, when the idle server kept fds it did not have before, when an
//! operation failed, or when the server did not stop cleanly.
//!
//! # Layout
//! - `load`: the four workers (output through a cutting proxy, files,
//!   kills, connection churn) and their counts.
//! - `sample`: one `/proc` look at the server.
//! - `verdict`: medians, margins and findings (pure, unit tested).

mod load;
mod sample;
mod verdict;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use exec_testkit::{CutProxy, ServerLauncher};

use crate::load::{CUT_EVERY, Load, Targets};
use crate::sample::Sample;

/// How long a dropped session stays resumable, in seconds: short, so that
/// sessions the churn drops end (with their processes) during the run.
const SESSION_TTL_SECONDS: u64 = 3;

/// How long the idle server may take, after the load, to end the last
/// dropped sessions and reap their processes.
const SETTLE: Duration = Duration::from_secs(SESSION_TTL_SECONDS + 15);

/// Puts the real exec-server under mixed load and fails when its resources grow.
#[derive(Parser)]
#[command(name = "exec-soak")]
struct Cli {
    /// The `exec-server` binary.
    #[arg(long, value_name = "PATH")]
    server: PathBuf,
    /// How long the load runs, in minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// How long the load runs, in seconds (instead of `--minutes`, for a quick check).
    #[arg(long)]
    seconds: Option<u64>,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 5)]
    sample_seconds: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: a Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One soak; `Ok(false)` when it did not run flat or an operation failed.
async fn run(cli: Cli) -> Result<bool> {
    let duration = Duration::from_secs(cli.seconds.unwrap_or(cli.minutes * 60));
    let period = Duration::from_secs(cli.sample_seconds.max(1));
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let server = ServerLauncher::new()
        .binary(&cli.server)
        .max_processes(64)
        .args(["--session-ttl", &SESSION_TTL_SECONDS.to_string()])
        .start_websocket()
        .await
        .with_context(|| format!("starting {} on WebSocket", cli.server.display()))?;
    let pid = server.process.pid().context("the server exited at once")?;
    let proxy = CutProxy::in_front_of(&server.url, Some(CUT_EVERY))
        .await
        .context("starting the cutting proxy")?;

    println!(
        "soak of {} (pid {pid}) for {duration:?}, a sample every {period:?}",
        cli.server.display()
    );
    println!(
        "{:>7} {:>9} {:>5} {:>7} {:>7} {:>6} {:>9}",
        "t (s)", "RSS MiB", "fds", "threads", "zombies", "procs", "ops"
    );
    let idle_before = sample::take(pid, 0, 0)?;
    print_row("idle", &idle_before);

    let load = Arc::new(Load::new(duration));
    let targets = Arc::new(Targets {
        direct: server.url.clone(),
        cutting: proxy.url(),
        scratch: scratch.path().join("files"),
    });
    let workers = tokio::spawn(load::run(load.clone(), targets));
    let started = Instant::now();
    let mut under_load = Vec::new();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    while started.elapsed() + period / 2 < duration {
        ticker.tick().await;
        let at = started.elapsed().as_secs() as i64;
        let sample = sample::take(pid, at, load.operations())?;
        print_row(&at.to_string(), &sample);
        under_load.push(sample);
    }
    workers.await.context("the load's task")?;

    let idle_after = settle(pid, &load).await?;
    print_row("idle", &idle_after);
    let (failure_count, failures) = load.failures();
    let status = server.stop().await.context("stopping the server")?;

    println!();
    println!(
        "{:<16} {:>14} {:>14} {:>14}",
        "under load", "first quarter", "last quarter", "limit"
    );
    for (name, first, last, limit) in verdict::quarter_medians(&under_load) {
        println!("{name:<16} {first:>14} {last:>14} {limit:>14}");
    }
    println!(
        "operations {}, failed {failure_count}; connection cuts (resumed) {}; server exit: {status}",
        load.operations(),
        proxy.cuts()
    );
    let mut findings = verdict::findings(&under_load, &idle_before, &idle_after);
    if failure_count > 0 {
        findings.push(format!("{failure_count} operations failed: {failures:#?}"));
    }
    if !status.success() {
        findings.push(format!("the server did not stop cleanly: {status}"));
    }
    if findings.is_empty() {
        println!("flat: no growth, no leftovers, no failures");
        return Ok(true);
    }
    for finding in &findings {
        println!("FAIL: {finding}");
    }
    Ok(false)
}

/// Waits (for at most [`SETTLE`]) until the idle server has no process
/// left below it and no zombie child, then samples it. Polls `/proc`: an
/// outside observer gets no event when another process's children go.
async fn settle(pid: u32, load: &Load) -> Result<Sample> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let sample = sample::take(pid, -1, load.operations())?;
        if (sample.descendants == 0 && sample.zombies == 0) || Instant::now() >= deadline {
            return Ok(sample);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn print_row(at: &str, sample: &Sample) {
    println!(
        "{at:>7} {:>9.1} {:>5} {:>7} {:>7} {:>6} {:>9}",
        sample.rss_kib as f64 / 1024.0,
        sample.fds,
        sample.threads,
        sample.zombies,
        sample.descendants,
        sample.operations
    );
}
