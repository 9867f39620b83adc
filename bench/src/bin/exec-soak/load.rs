//! The mixed load of a soak: four workers, each a loop until the deadline,
//! each through the Rust SDK against the one server.
//! - `output`: pipe and PTY processes with output checked byte for byte,
//!   through a proxy that cuts the connection every [`CUT_EVERY`] bytes, so
//!   that the SDK reconnects and resumes its session again and again.
//! - `files`: every `fs/*` method on a scratch directory, data checked.
//! - `kills`: processes ended by terminate, by SIGKILL (a tree of three),
//!   by their timeout, and by the end of their stdin.
//! - `churn`: a new connection per round with running processes, closed
//!   cleanly (its session ends at once) or dropped (its session waits for
//!   the session TTL, then ends with its processes).
//!
//! A failed operation is counted and reported and its worker goes on (with
//! a fresh connection); the soak fails when any operation failed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use exec_client::{ConnectOptions, ExecClient, ExitReason, Signal};
use exec_testkit::CHILD_PATH;
use serde_json::{Value, json};

/// The proxy in front of the `output` worker resets its connection after
/// forwarding this many bytes to the client.
pub const CUT_EVERY: u64 = 128 * 1024;

/// Failures kept word for word for the report (the rest are only counted).
const FAILURES_KEPT: usize = 20;

/// What the workers share: the deadline and the counts.
pub struct Load {
    /// When the workers stop starting new rounds.
    stop_at: Instant,
    /// Operations completed, all workers together.
    operations: AtomicU64,
    /// Operations that failed.
    failure_count: AtomicU64,
    /// The first failures, as `worker: error`.
    failures: Mutex<Vec<String>>,
}

impl Load {
    /// A load that runs for `duration` from now.
    pub fn new(duration: Duration) -> Self {
        Self {
            stop_at: Instant::now() + duration,
            operations: AtomicU64::new(0),
            failure_count: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }

    /// Operations completed so far.
    pub fn operations(&self) -> u64 {
        self.operations.load(Ordering::Relaxed)
    }

    /// Operations that failed, and the first of them word for word.
    pub fn failures(&self) -> (u64, Vec<String>) {
        let kept = match self.failures.lock() {
            Ok(failures) => failures.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        (self.failure_count.load(Ordering::Relaxed), kept)
    }

    fn running(&self) -> bool {
        Instant::now() < self.stop_at
    }

    fn done(&self) {
        self.operations.fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, worker: &str, error: &anyhow::Error) {
        self.failure_count.fetch_add(1, Ordering::Relaxed);
        let mut failures = match self.failures.lock() {
            Ok(failures) => failures,
            Err(poisoned) => poisoned.into_inner(),
        };
        if failures.len() < FAILURES_KEPT {
            failures.push(format!("{worker}: {error:#}"));
        }
    }
}

/// Where the workers connect, and their scratch directory.
pub struct Targets {
    /// The server's own `ws://` URL.
    pub direct: String,
    /// The cutting proxy's `ws://` URL, in front of the server.
    pub cutting: String,
    /// A directory for the `files` worker.
    pub scratch: PathBuf,
}

/// The workers that repeat rounds on one connection.
#[derive(Debug, Clone, Copy)]
enum Worker {
    /// Output through the cutting proxy.
    Output,
    /// The `fs/*` methods.
    Files,
    /// Processes ended every way.
    Kills,
}

impl Worker {
    fn name(self) -> &'static str {
        match self {
            Self::Output => "output",
            Self::Files => "files",
            Self::Kills => "kills",
        }
    }
}

/// Runs the four workers until `load`'s deadline; each closes its
/// connections before it returns.
pub async fn run(load: Arc<Load>, targets: Arc<Targets>) {
    let mut tasks = Vec::new();
    for kind in [Worker::Output, Worker::Files, Worker::Kills] {
        tasks.push(tokio::spawn(worker(load.clone(), kind, targets.clone())));
    }
    tasks.push(tokio::spawn(churn(load.clone(), targets.direct.clone())));
    for task in tasks {
        if let Err(error) = task.await {
            load.failed("driver", &anyhow::anyhow!("a worker task failed: {error}"));
        }
    }
}

/// Client options of every connection of the soak.
fn options() -> ConnectOptions {
    ConnectOptions::new("exec-soak").client_version(env!("CARGO_PKG_VERSION"))
}

async fn connect(url: &str) -> Result<ExecClient> {
    ExecClient::connect_websocket(url, options())
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Repeats `kind`'s round on one connection until the deadline; after a
/// failure, the next round gets a new connection.
async fn worker(load: Arc<Load>, kind: Worker, targets: Arc<Targets>) {
    let url = match kind {
        Worker::Output => &targets.cutting,
        Worker::Files | Worker::Kills => &targets.direct,
    };
    let mut client: Option<ExecClient> = None;
    let mut round = 0u64;
    while load.running() {
        round += 1;
        let current = match client.take() {
            Some(current) => current,
            None => match connect(url).await {
                Ok(fresh) => fresh,
                Err(error) => {
                    load.failed(kind.name(), &error);
                    // A pause before the next attempt, so that a server
                    // refusing connections is not hammered in a tight loop.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        let outcome = match kind {
            Worker::Output => output_round(&current, round, &load).await,
            Worker::Files => files_round(&current, round, &load, &targets.scratch).await,
            Worker::Kills => kills_round(&current, &load).await,
        };
        match outcome {
            Ok(()) => client = Some(current),
            Err(error) => {
                load.failed(kind.name(), &error);
                // A fresh connection for the next round; this one may be broken.
                let _ = current.close().await;
            }
        }
    }
    if let Some(client) = client {
        let _ = client.close().await;
    }
}

/// `seq 1 N` on a pipe and a script on a PTY, through the cutting proxy.
async fn output_round(client: &ExecClient, round: u64, load: &Load) -> Result<()> {
    let count = 15_000 + round % 1_000;
    let output = client
        .command("seq")
        .args(["1".to_owned(), count.to_string()])
        .env("PATH", CHILD_PATH)
        .output()
        .await
        .context("seq")?;
    let expected: usize = (1..=count).map(|number| number.to_string().len() + 1).sum();
    ensure!(output.status.success(), "seq ended {:?}", output.status);
    ensure!(
        output.stdout.len() == expected && output.dropped_bytes == 0,
        "seq wrote {} bytes ({} dropped), not {expected}",
        output.stdout.len(),
        output.dropped_bytes
    );
    ensure!(
        output.stdout.ends_with(format!("\n{count}\n").as_bytes()),
        "seq's output does not end with {count}"
    );
    load.done();

    let output = client
        .command("sh")
        .args(["-c", "echo pty-ok; exit 3"])
        .env("PATH", CHILD_PATH)
        .pty(24, 80)
        .output()
        .await
        .context("a PTY process")?;
    ensure!(
        output.status.code() == Some(3),
        "the PTY process ended {:?}",
        output.status
    );
    ensure!(
        String::from_utf8_lossy(&output.stdout).contains("pty-ok"),
        "the PTY process's output lacks its line"
    );
    load.done();
    Ok(())
}

/// A request by name, its result as JSON.
async fn call(client: &ExecClient, method: &str, params: Value) -> Result<Value> {
    let shown = params.to_string();
    client
        .request(method, params)
        .await
        .with_context(|| format!("{method} {shown:.200}"))
}

/// Pseudo-random text of `groups` base64 groups: valid standard base64
/// without padding, which the server reads back as the same text.
fn base64_text(seed: u64, groups: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..groups * 4)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % 64) as usize])
        })
        .collect()
}

/// Every `fs/*` method once on a directory of its own, then removes it.
async fn files_round(client: &ExecClient, round: u64, load: &Load, scratch: &Path) -> Result<()> {
    let base = scratch.join(format!("round-{}", round % 4));
    let path = |name: &str| -> Result<String> {
        base.join(name)
            .to_str()
            .map(str::to_owned)
            .context("a UTF-8 scratch path")
    };
    let data = base64_text(round, 1 + (round as usize * 7919) % 16_384);
    // What a failed round left behind must not fail the next ones.
    call(
        client,
        "fs/remove",
        json!({"path": path("")?, "recursive": true, "force": true}),
    )
    .await?;
    let file = path("deep/a/file")?;
    call(
        client,
        "fs/writeFile",
        json!({"path": file, "dataBase64": data, "createParents": true}),
    )
    .await?;
    load.done();
    let read = call(client, "fs/readFile", json!({"path": file})).await?;
    ensure!(
        read["dataBase64"] == json!(data),
        "fs/readFile returned other bytes"
    );
    load.done();
    let metadata = call(client, "fs/getMetadata", json!({"path": file})).await?;
    ensure!(
        metadata["size"] == json!(data.len() / 4 * 3),
        "fs/getMetadata: size {} for {} bytes",
        metadata["size"],
        data.len() / 4 * 3
    );
    load.done();
    call(
        client,
        "fs/copy",
        json!({"sourcePath": path("deep")?, "destinationPath": path("copy")?, "recursive": true}),
    )
    .await?;
    load.done();
    call(
        client,
        "fs/rename",
        json!({"sourcePath": path("copy")?, "destinationPath": path("moved")?}),
    )
    .await?;
    load.done();
    call(
        client,
        "fs/createDirectory",
        json!({"path": path("made/x/y")?, "recursive": true}),
    )
    .await?;
    load.done();
    let listed = call(client, "fs/readDirectory", json!({"path": path("")?})).await?;
    let names: Vec<_> = listed["entries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry["fileName"].as_str())
        .collect();
    ensure!(
        names == ["deep", "made", "moved"],
        "fs/readDirectory: {names:?}"
    );
    load.done();
    call(
        client,
        "fs/remove",
        json!({"path": path("")?, "recursive": true}),
    )
    .await?;
    load.done();
    Ok(())
}

/// Processes ended every way the protocol has, but the churn's.
async fn kills_round(client: &ExecClient, load: &Load) -> Result<()> {
    let mut sleeper = client
        .command("sleep")
        .arg("60")
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .context("sleep")?;
    ensure!(
        sleeper.terminate().await.context("terminate")?,
        "terminate found the sleep gone"
    );
    let status = sleeper
        .wait()
        .await
        .context("waiting for the terminated sleep")?;
    ensure!(
        status.reason != ExitReason::Exited,
        "the terminated sleep exited by itself"
    );
    load.done();

    let mut tree = client
        .command("sh")
        .args(["-c", "sleep 60 & sleep 60 & wait"])
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .context("a tree of sleeps")?;
    tree.signal(Signal::Kill).await.context("SIGKILL")?;
    let status = tree.wait().await.context("waiting for the killed tree")?;
    ensure!(
        status.signal == Some(Signal::Kill),
        "the killed tree ended {status:?}"
    );
    load.done();

    let status = client
        .command("sleep")
        .arg("60")
        .env("PATH", CHILD_PATH)
        .timeout(Duration::from_millis(100))
        .status()
        .await
        .context("a sleep with a timeout")?;
    ensure!(
        status.reason == ExitReason::TimedOut,
        "the timed sleep ended {status:?}"
    );
    load.done();

    let cat = client
        .command("cat")
        .env("PATH", CHILD_PATH)
        .pipe_stdin()
        .spawn()
        .await
        .context("cat")?;
    cat.write(b"through cat\n")
        .await
        .context("writing to cat")?;
    cat.close_stdin().await.context("closing cat's stdin")?;
    let output = cat.output().await.context("cat's output")?;
    ensure!(
        output.stdout == b"through cat\n" && output.status.success(),
        "cat: {output:?}"
    );
    load.done();
    Ok(())
}

/// Connections that come and go with processes running: closed, or dropped.
async fn churn(load: Arc<Load>, url: String) {
    let mut round = 0u64;
    while load.running() {
        round += 1;
        if let Err(error) = churn_round(&url, round).await {
            load.failed("churn", &error);
        } else {
            load.done();
        }
    }
}

async fn churn_round(url: &str, round: u64) -> Result<()> {
    let client = connect(url).await?;
    let _quiet = client
        .command("sleep")
        .arg("60")
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .context("sleep")?;
    let mut chatty = client
        .command("sh")
        .args(["-c", "while :; do echo chatty; sleep 0.05; done"])
        .env("PATH", CHILD_PATH)
        .spawn()
        .await
        .context("a chatty loop")?;
    chatty
        .next_output()
        .await
        .context("the chatty loop's output")?;
    if round.is_multiple_of(2) {
        client.close().await.context("closing")?;
    } else {
        // Dropped: the session stays for the TTL, its processes running.
        drop(chatty);
        drop(client);
    }
    Ok(())
}
