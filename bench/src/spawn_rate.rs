//! Figure 3, the spawn rate: `process/start` of `/bin/true` until its
//! `process/closed`, over WebSocket, one at a time and with 8 in flight;
//! baseline: `std::process::Command::new("/bin/true").status()` in a loop
//! (and on 8 threads), which on Linux with glibc is `posix_spawn` plus
//! `waitpid`: std takes the `posix_spawn` path when no `pre_exec`, uid, gid
//! or similar is set. Each measurement is taken in turns, a quarter of the
//! starts at a time, the baseline's and ours alternating, so that a change
//! of the machine's speed hits both alike (on the development VM the
//! baseline alone moved by half between runs a minute apart).

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use exec_client::{ExecClient, ProcessEvent};

use crate::Bench;
use crate::report::{Better, Figure, Target};
use crate::servers::WsServer;

/// Starts at once in the concurrent measurement.
pub const IN_FLIGHT: usize = 8;

/// Each measurement is taken in this many turns.
const TURNS: usize = 4;

/// Measures figure 3.
///
/// # Errors
/// When the server fails or a `/bin/true` does not succeed.
pub async fn run(bench: &Bench) -> Result<Vec<Figure>> {
    let count = bench.sizes.spawns;
    // Closed processes stay listed for the retention time (30 s): make room.
    let server = WsServer::start(&bench.binaries.server, count * 3 + 64).await?;
    let client = server.connect().await?;
    // Warm-up: the first starts page in code on both sides.
    remote_spawns(&client, (count / 10).max(1), 1).await?;
    tokio::task::spawn_blocking(move || local_spawns((count / 10).max(1), 1)).await??;

    let (baseline_sequential, sequential) = in_turns(&client, count, 1).await?;
    let (baseline_concurrent, concurrent) = in_turns(&client, count, IN_FLIGHT).await?;
    client.close().await?;
    server.stop().await?;

    let note = format!(
        "{} starts of /bin/true, in {TURNS} turns alternating with the baseline's",
        count.div_ceil(TURNS) * TURNS
    );
    let figure =
        |id: &str, name: &str, ours: f64, baseline: f64, baseline_name: &str, target: f64| {
            Figure::new(
                id,
                name,
                "1/s",
                Better::Higher,
                ours,
                baseline,
                baseline_name,
                Some(Target::RatioAtLeast(target)),
            )
            .with_note(note.clone())
        };
    Ok(vec![
        figure(
            "spawn_sequential",
            "spawn rate, 1 at a time, WebSocket",
            sequential,
            baseline_sequential,
            "posix_spawn+waitpid",
            0.7,
        ),
        figure(
            "spawn_8_in_flight",
            "spawn rate, 8 in flight, WebSocket",
            concurrent,
            baseline_concurrent,
            "posix_spawn+waitpid, 8 threads",
            // Issue 14's target.
            0.8,
        ),
    ])
}

/// Starts `/bin/true` `count` times here and `count` times through the
/// server, `in_flight` at once, in [`TURNS`] alternating turns; returns the
/// starts per second of each (here, then through the server).
async fn in_turns(client: &ExecClient, count: usize, in_flight: usize) -> Result<(f64, f64)> {
    let per_turn = count.div_ceil(TURNS);
    let (mut local, mut remote) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..TURNS {
        local += tokio::task::spawn_blocking(move || local_spawns(per_turn, in_flight)).await??;
        remote += remote_spawns(client, per_turn, in_flight).await?;
    }
    let starts = (per_turn * TURNS) as f64;
    Ok((starts / local.as_secs_f64(), starts / remote.as_secs_f64()))
}

/// Starts `/bin/true` `count` times through the server, `in_flight` at
/// once, each until its `process/closed`; returns how long that took.
async fn remote_spawns(client: &ExecClient, count: usize, in_flight: usize) -> Result<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let client = client.clone();
            let next = next.clone();
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < count {
                    run_true(&client).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(started.elapsed())
}

/// One `/bin/true` through the server, until its stream ends.
async fn run_true(client: &ExecClient) -> Result<()> {
    let mut child = client
        .command("/bin/true")
        .spawn()
        .await
        .context("starting /bin/true")?;
    let mut exit = None;
    while let Some(event) = child.next_event().await? {
        if let ProcessEvent::Exited(status) = event {
            exit = Some(status);
        }
    }
    ensure!(
        exit.is_some_and(|status| status.success()),
        "/bin/true did not succeed: {exit:?}"
    );
    Ok(())
}

/// Starts `/bin/true` `count` times here, on `threads` threads; returns
/// how long that took.
fn local_spawns(count: usize, threads: usize) -> Result<Duration> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    while next.fetch_add(1, Ordering::Relaxed) < count {
                        let status = std::process::Command::new("/bin/true")
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status()?;
                        ensure!(status.success(), "/bin/true failed: {status}");
                    }
                    anyhow::Ok(())
                })
            })
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(result) => result?,
                Err(_) => anyhow::bail!("a spawning thread panicked"),
            }
        }
        anyhow::Ok(())
    })?;
    Ok(started.elapsed())
}
