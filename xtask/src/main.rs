//! Project automation, run as `cargo xtask <command>`.
//!
//! # Layout
//! - `codegen`: generates the Rust and TypeScript protocol types and the
//!   method tables from `schema/exec-server.schema.json` (`--check` only compares).
//! - `test`: the one test command CI runs (formatting, lints, codegen check,
//!   every Rust test, and the TypeScript checks), with SDK traffic through
//!   the conformance proxy (`conformance`).
//! - `bench`: builds in release mode and runs the benchmark driver (`bench/`).
//! - `fuzz`: builds the cargo-fuzz target (`fuzz/`) and runs it in a
//!   sandbox for a bounded time, the corpus seeded from the conformance cases.
//! - `dist`: the static musl `exec-server` binary, checked to need nothing
//!   from the system and to run.
//! - `image`: the container images (`deploy/*Containerfile`) from that
//!   binary, with podman or docker.
//! - `soak`: runs the real server under mixed load for minutes, sampling
//!   its memory, fds, threads and zombie children, and fails when they grow.
//! - `tidy` (tests only): the workspace's file-length and import-circle
//!   rules, checked by `cargo test`.

mod bench;
mod codegen;
mod conformance;
mod dist;
mod fuzz;
mod image;
mod soak;
mod test;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

/// Project automation for exec-server.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Generate the Rust and TypeScript protocol code from the schema.
    Codegen {
        /// Write nothing; exit non-zero naming each generated file that is stale.
        #[arg(long)]
        check: bool,
    },
    /// Run every check CI runs: fmt, clippy, codegen --check, cargo test, the TypeScript checks.
    Test,
    /// Benchmark the release server against the machine's baselines; print a table, write JSON.
    Bench {
        /// Everything at tiny sizes, to check that it runs (under a minute).
        #[arg(long)]
        quick: bool,
        /// Where to write the JSON; default target/bench/results.json.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Fuzz the server's message parser and dispatch (cargo-fuzz, sandboxed); fail on a crash.
    Fuzz {
        /// How long to fuzz, in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Run this one input (a crash the fuzzer saved) instead of fuzzing.
        #[arg(long, value_name = "PATH")]
        input: Option<PathBuf>,
    },
    /// Build the static exec-server for x86_64-unknown-linux-musl, check it is static and runs.
    Dist,
    /// Build the container image from the static binary, with podman or docker.
    Image {
        /// Also build the installer image (busybox + the binary) used as the
        /// Kubernetes init container.
        #[arg(long)]
        installer: bool,
        /// The busybox image the installer starts from (a mirror or a local image).
        #[arg(long, value_name = "IMAGE", requires = "installer")]
        busybox_image: Option<String>,
    },
    /// Run the real server under mixed load; fail when its RSS, fds, threads or zombies grow.
    Soak {
        /// How long the load runs, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root()?;
    match cli.command {
        Task::Codegen { check } => {
            let mode = if check {
                codegen::Mode::Check
            } else {
                codegen::Mode::Write
            };
            codegen::run(&root, mode)
        }
        Task::Test => test::run(&root),
        Task::Bench { quick, json } => bench::run(&root, bench::Options { quick, json }),
        Task::Fuzz { seconds, input } => fuzz::run(&root, fuzz::Options { seconds, input }),
        Task::Dist => dist::run(&root).map(drop),
        Task::Image {
            installer,
            busybox_image,
        } => image::run(
            &root,
            image::Options {
                installer,
                busybox_image,
            },
        ),
        Task::Soak { minutes } => soak::run(&root, soak::Options { minutes }),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}

/// The target directory: `CARGO_TARGET_DIR` when set (relative to the
/// workspace root), else `target/` in the workspace.
/// Builds `arguments` (packages and binaries) with `cargo build --release`
/// in `root`, and returns the release directory the binaries are in.
///
/// # Errors
/// When cargo cannot start or the build fails.
fn build_release(root: &Path, arguments: &[&str]) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("==> cargo build --release {}", arguments.join(" "));
    let status = std::process::Command::new(&cargo)
        .args(["build", "--release"])
        .args(arguments)
        .current_dir(root)
        .status()
        .context("starting cargo build")?;
    if !status.success() {
        anyhow::bail!("the release build failed ({status})");
    }
    Ok(target_dir(root).join("release"))
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|value| !value.is_empty()) {
        Some(directory) => root.join(directory),
        None => root.join("target"),
    }
}
