//! Figure 7, output through a dropped connection: `cat` of a pseudo-random
//! file through a pipe process over WebSocket, with a TCP proxy in front of
//! the server that resets the connection every 64 MiB it forwards to the
//! client; the Rust SDK resumes the session and replays what was in flight.
//! Every run's bytes are checked with SHA-256 against the file's. Baseline:
//! the same through the same proxy without cuts, in the same run; the runs
//! take turns so that a change of load hits both alike.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use exec_client::ExecClient;
use exec_testkit::CutProxy;
use sha2::{Digest as _, Sha256};

use crate::Bench;
use crate::report::{Better, Figure};
use crate::servers::{CHILD_PATH, WsServer, client_options};
use crate::stats::median;
use crate::throughput::consume;

/// Megabytes (10^6 bytes) per second.
fn megabytes_per_second(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds
}

/// Measures figure 7.
///
/// # Errors
/// When the server, the proxy or the client fails, or a byte is missing,
/// extra or wrong.
pub async fn run(bench: &Bench) -> Result<Vec<Figure>> {
    let bytes = bench.sizes.resume_bytes;
    let cut_every = bench.sizes.resume_cut_every;
    let scratch = tempfile::tempdir().context("a scratch directory")?;
    let path = scratch.path().join("output.bin");
    let expected = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || write_pseudo_random(&path, bytes)).await??
    };
    let path = path.to_str().context("a UTF-8 scratch path")?.to_owned();

    let ws = WsServer::start(&bench.binaries.server, 1024).await?;
    let uncut = CutProxy::in_front_of(ws.url(), None)
        .await
        .context("starting the proxy")?;
    let cut = CutProxy::in_front_of(ws.url(), Some(cut_every))
        .await
        .context("starting the cutting proxy")?;
    let uncut_client = connect(&uncut.url()).await?;
    let cut_client = connect(&cut.url()).await?;

    let mut samples: [Vec<f64>; 2] = Default::default();
    for _ in 0..bench.sizes.output_repeats {
        samples[0].push(cat(&uncut_client, &path, bytes, &expected).await?);
        samples[1].push(cat(&cut_client, &path, bytes, &expected).await?);
    }
    let cuts = cut.cuts();
    ensure!(uncut.cuts() == 0, "the uncut proxy cut");
    ensure!(cuts > 0, "the cutting proxy never cut");
    uncut_client.close().await?;
    cut_client.close().await?;
    ws.stop().await?;

    let [uncut_speed, cut_speed] = samples.map(|runs| median(&runs));
    Ok(vec![
        Figure::new(
            "output_cut_ws",
            &format!(
                "output through a connection cut every {} MiB, WebSocket, SHA-256 checked",
                cut_every >> 20
            ),
            "MB/s",
            Better::Higher,
            cut_speed,
            uncut_speed,
            "the same, uncut",
            None,
        )
        .with_note(format!(
            "{} MiB, cut every {} MiB ({cuts} cuts in all), median of {}",
            bytes >> 20,
            cut_every >> 20,
            bench.sizes.output_repeats
        )),
    ])
}

/// A client that resumes its session when the proxy cuts it (the SDK's default).
async fn connect(url: &str) -> Result<ExecClient> {
    ExecClient::connect_websocket(url, client_options())
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// `cat path` through the server, in MB/s from the start request to
/// `process/closed`; fails unless exactly the file's bytes came, in order.
async fn cat(client: &ExecClient, path: &str, bytes: u64, expected: &[u8; 32]) -> Result<f64> {
    let started = Instant::now();
    let child = client
        .command("cat")
        .arg(path)
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .context("starting cat")?;
    let mut hasher = Sha256::new();
    let mut received = 0u64;
    consume(child, "cat", |bytes| {
        received += bytes.len() as u64;
        hasher.update(bytes);
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    ensure!(received == bytes, "received {received} of {bytes} bytes");
    ensure!(
        hasher.finalize().as_slice() == expected,
        "the bytes differ from the file's (SHA-256)"
    );
    Ok(megabytes_per_second(bytes, seconds))
}

/// Writes `bytes` pseudo-random bytes (splitmix64, fixed seed) to `path`;
/// returns their SHA-256. Random rather than zeros, so that a chunk
/// delivered twice, dropped or out of order changes the hash.
fn write_pseudo_random(path: &std::path::Path, bytes: u64) -> Result<[u8; 32]> {
    const BLOCK: usize = 1 << 20;
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut hasher = Sha256::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; BLOCK];
    let mut left = bytes;
    while left > 0 {
        for word in block.chunks_exact_mut(8) {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut mixed = state;
            mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            word.copy_from_slice(&(mixed ^ (mixed >> 31)).to_le_bytes());
        }
        let take = usize::try_from(left.min(BLOCK as u64)).unwrap_or(BLOCK);
        file.write_all(&block[..take])?;
        hasher.update(&block[..take]);
        left -= take as u64;
    }
    file.flush()?;
    Ok(hasher.finalize().into())
}
