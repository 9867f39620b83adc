//! `exec-bench`: the benchmark driver behind `cargo xtask bench`. It starts
//! the real `exec-server` (over WebSocket and over stdio), drives it with the
//! Rust SDK, and measures the machine's baselines in the same run, so that
//! every figure is reported as ours, baseline and their ratio: a ratio
//! survives a noisy machine better than an absolute number.
//!
//! ```text
//! exec-bench [--quick] [--json PATH] [--server PATH]
//! ```
//!
//! Prints one table on stdout and writes the same as JSON (default
//! `target/bench/results.json`). Exits 1 when a section failed (its error is
//! in the table and the JSON), 0 otherwise; missed targets are reported, not
//! failed.
//!
//! # Layout
//! - `throughput`: figure 1, output MB/s through pipe and PTY processes.
//! - `round_trip`: figure 2, `fs/getMetadata` round trips.
//! - `spawn_rate`: figure 3, starts of `/bin/true` per second.
//! - `pty_echo`: figure 4, 6 bytes through `cat` on a raw PTY.
//! - `memory`: figure 5, RSS per idle process, many connections at once.
//! - `ssh`: figure 6, ssh beside ours when `EXEC_BENCH_SSH` is set.
//! - `cli`: figure 8, the `exec-server exec` command line, a fresh process
//!   per command (and through ssh beside it in figure 6).
//! - `servers`: `exec-server` started by the workspace's harness
//!   (`exec_testkit`), this binary's helpers, and RSS.
//! - `helpers`: `exec-bench helper ...`, the baselines' other ends.
//! - `local_pty`: a program on a PTY of this process, for the baselines.
//! - `stats`, `report`: percentiles; the table and its JSON.

mod cli;
mod helpers;
mod local_pty;
mod memory;
mod pty_echo;
mod report;
mod resume;
mod round_trip;
mod servers;
mod spawn_rate;
mod ssh;
mod stats;
mod throughput;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::report::{Figure, Machine, Report, SectionError, SectionTiming, Skipped};
use crate::servers::Binaries;

/// Benchmarks exec-server against the machine's limits, in one run.
#[derive(Parser)]
#[command(name = "exec-bench")]
struct Cli {
    /// Everything at tiny sizes (well under a minute), to check that it runs.
    #[arg(long)]
    quick: bool,
    /// Where to write the results as JSON.
    #[arg(long, value_name = "PATH", default_value = "target/bench/results.json")]
    json: PathBuf,
    /// The `exec-server` binary; default: `EXEC_SERVER_BIN`, else the one
    /// next to this binary.
    #[arg(long, value_name = "PATH")]
    server: Option<PathBuf>,
    /// Bytes per output throughput run instead of the mode's size (1 GB, or
    /// 2 MB with --quick), e.g. where PTY output is too slow for 1 GB.
    #[arg(long, value_name = "BYTES")]
    output_bytes: Option<u64>,
    /// Run only these sections (repeatable; default: all), e.g. to profile one.
    #[arg(long, value_enum, value_name = "SECTION")]
    only: Vec<Section>,
    #[command(subcommand)]
    helper: Option<HelperCommand>,
}

/// The parts of a run, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Section {
    /// Figure 1.
    Throughput,
    /// Figure 2.
    RoundTrip,
    /// Figure 3.
    SpawnRate,
    /// Figure 4.
    PtyEcho,
    /// Figure 5, memory per idle process.
    Memory,
    /// Figure 5, many connections at once.
    Connections,
    /// Figure 6.
    Ssh,
    /// Figure 7, output through a connection cut every 64 MiB.
    Resume,
    /// Figure 8, the `exec` command line.
    Cli,
}

#[derive(Subcommand)]
enum HelperCommand {
    /// Runs a baseline's other end (used by the driver itself).
    #[command(hide = true)]
    Helper {
        /// Which one.
        #[arg(value_enum)]
        which: helpers::Helper,
    },
}

/// How much each measurement does.
#[derive(Debug, Clone, Serialize)]
pub struct Sizes {
    /// Bytes each output throughput run moves.
    pub output_bytes: u64,
    /// Runs per throughput figure (the median is reported).
    pub output_repeats: usize,
    /// Timed round trips per figure (also the timed ssh round trips).
    pub round_trips: usize,
    /// Untimed calls or echoes before the timed ones.
    pub warmup: usize,
    /// Starts of `/bin/true` per spawn-rate figure.
    pub spawns: usize,
    /// Timed PTY echoes per figure.
    pub pty_echoes: usize,
    /// Idle processes whose memory is measured.
    pub idle_processes: usize,
    /// Idle processes started before the memory is first read.
    pub idle_warmup: usize,
    /// Connections open at once.
    pub connections: usize,
    /// Processes running on each of them.
    pub processes_per_connection: usize,
    /// Bytes each run of figure 7 moves through the cutting proxy.
    pub resume_bytes: u64,
    /// Bytes the proxy forwards to the client between two cuts.
    pub resume_cut_every: u64,
    /// Runs of `exec-server exec -- true` per figure-8 latency (also the
    /// runs of `ssh HOST true` in figure 6).
    pub cli_runs: usize,
}

impl Sizes {
    /// The sizes of issue 7.
    fn full() -> Self {
        Self {
            output_bytes: 1_000_000_000,
            output_repeats: 3,
            round_trips: 20_000,
            warmup: 2_000,
            spawns: 2_000,
            pty_echoes: 20_000,
            idle_processes: 1_000,
            idle_warmup: 100,
            connections: 100,
            processes_per_connection: 10,
            resume_bytes: 1 << 30,
            resume_cut_every: 64 << 20,
            cli_runs: 200,
        }
    }

    /// Tiny sizes: every code path, in seconds (even in a debug build).
    fn quick() -> Self {
        Self {
            output_bytes: 2_000_000,
            output_repeats: 1,
            round_trips: 200,
            warmup: 20,
            spawns: 20,
            pty_echoes: 100,
            idle_processes: 40,
            idle_warmup: 8,
            connections: 5,
            processes_per_connection: 4,
            resume_bytes: 8 << 20,
            resume_cut_every: 1 << 20,
            cli_runs: 10,
        }
    }
}

/// What every section needs.
pub struct Bench {
    /// The binaries to run.
    pub binaries: Binaries,
    /// The sizes.
    pub sizes: Sizes,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(HelperCommand::Helper { which }) = cli.helper {
        return match helpers::run(which) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("exec-bench helper: {error:#}");
                ExitCode::FAILURE
            }
        };
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("exec-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(report) if report.errors.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("exec-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every section, prints the table and writes the JSON.
async fn run(cli: Cli) -> Result<Report> {
    let started = Instant::now();
    let driver = std::env::current_exe().context("locating this binary")?;
    let server = match cli.server {
        Some(server) => server,
        None => exec_testkit::locate_server_binary().context("no --server given")?,
    };
    anyhow::ensure!(
        server.is_file(),
        "no exec-server at {} (build it, or pass --server)",
        server.display()
    );
    let mut sizes = if cli.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(bytes) = cli.output_bytes {
        sizes.output_bytes = bytes;
    }
    let bench = Bench {
        binaries: Binaries { server, driver },
        sizes,
    };
    let load_average_at_start = load_average();
    eprintln!(
        "exec-bench: {} run, load average {load_average_at_start}",
        if cli.quick { "quick" } else { "full" }
    );

    let wanted = |section: Section| cli.only.is_empty() || cli.only.contains(&section);
    let mut results = Results::default();
    if wanted(Section::Throughput) {
        results.section("throughput", throughput::run(&bench)).await;
    }
    if wanted(Section::RoundTrip) {
        results.section("round trip", round_trip::run(&bench)).await;
    }
    if wanted(Section::SpawnRate) {
        results.section("spawn rate", spawn_rate::run(&bench)).await;
    }
    if wanted(Section::PtyEcho) {
        results.section("PTY echo", pty_echo::run(&bench)).await;
    }
    if wanted(Section::Memory) {
        results.section("memory", memory::per_process(&bench)).await;
    }
    if wanted(Section::Connections) {
        results
            .section("connections", memory::connections(&bench))
            .await;
    }
    if wanted(Section::Resume) {
        results.section("resume", resume::run(&bench)).await;
    }
    if wanted(Section::Cli) {
        results.section("command line", cli::run(&bench)).await;
    }
    let mut skipped = Vec::new();
    let destination = std::env::var(ssh::SSH_ENV)
        .ok()
        .filter(|value| !value.is_empty());
    if wanted(Section::Ssh) {
        match destination {
            Some(destination) => {
                let sizes = bench.sizes.clone();
                let ours = results.figures.clone();
                let measured =
                    tokio::task::spawn_blocking(move || ssh::run(&destination, &sizes, &ours));
                results.section("ssh", async { measured.await? }).await;
            }
            None => skipped.push(Skipped {
                section: String::from("ssh"),
                reason: format!("{} is not set", ssh::SSH_ENV),
            }),
        }
    }

    let report = Report {
        mode: String::from(if cli.quick { "quick" } else { "full" }),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(0, usize::from),
            model_name: cpu_model(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            load_average_at_start,
            load_average_at_end: load_average(),
        },
        sizes: serde_json::to_value(&bench.sizes)?,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        figures: results.figures,
        skipped,
        errors: results.errors,
        sections: results.sections,
    };
    print!("{}", report.table());
    println!(
        "machine: {} x {}, kernel {}; load average {} at the start, {} at the end; {:.0} s",
        report.machine.nproc,
        report.machine.model_name,
        report.machine.kernel,
        report.machine.load_average_at_start,
        report.machine.load_average_at_end,
        report.elapsed_seconds
    );
    write_json(&cli.json, &report)?;
    println!("results: {}", cli.json.display());
    Ok(report)
}

/// What the sections produced so far.
#[derive(Default)]
struct Results {
    /// The figures of the sections that succeeded.
    figures: Vec<Figure>,
    /// The sections that failed.
    errors: Vec<SectionError>,
    /// Every section that ran.
    sections: Vec<SectionTiming>,
}

impl Results {
    /// Runs one section, keeping its figures or its error (a failed section
    /// does not stop the others) and its timing.
    async fn section(&mut self, name: &str, measure: impl Future<Output = Result<Vec<Figure>>>) {
        let load_average_at_start = load_average();
        eprintln!("exec-bench: {name} (load average {load_average_at_start}) ...");
        let started = Instant::now();
        match measure.await {
            Ok(measured) => self.figures.extend(measured),
            Err(error) => {
                eprintln!("exec-bench: {name} failed: {error:#}");
                self.errors.push(SectionError {
                    section: name.to_owned(),
                    error: format!("{error:#}"),
                });
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        eprintln!("exec-bench: {name} took {seconds:.1} s");
        self.sections.push(SectionTiming {
            section: name.to_owned(),
            seconds,
            load_average_at_start,
        });
    }
}

/// Writes `report` as pretty JSON to `path`, creating its directory.
fn write_json(path: &Path, report: &Report) -> Result<()> {
    if let Some(directory) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        std::fs::create_dir_all(directory)
            .with_context(|| format!("creating {}", directory.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    read_trimmed("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first `model name` of `/proc/cpuinfo`.
fn cpu_model() -> String {
    read_trimmed("/proc/cpuinfo")
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, model)| model.trim().to_owned())
        .unwrap_or_default()
}

/// A file's text without surrounding whitespace, empty when unreadable.
fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}
