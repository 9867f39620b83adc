//! `cargo xtask fuzz [--seconds N] [--input PATH]`: runs the libFuzzer
//! target `connection` (`fuzz/fuzz_targets/connection.rs`: one whole stdio
//! connection per input, through the server's parser and dispatch) for a
//! bounded time, and fails when it finds a crash.
//!
//! It installs what it needs: a nightly toolchain (through rustup) and
//! `cargo-fuzz` (through `cargo install`). The corpus is seeded from the
//! conformance cases (`tests/cases`), each case written as the byte stream
//! its client would send. The target starts processes and writes files
//! when an input says so, so it runs in `fuzz/sandbox.sh` inside new mount,
//! PID, network, IPC and UTS namespaces (root only): the machine read-only,
//! no devices but harmless ones, no capabilities.
//!
//! Everything lives under `<target dir>/fuzz/`: cargo-fuzz's own target
//! directory (the instrumented build), and beside its build directories
//! `seeds/connection` (rewritten every run), `corpus/connection` (what the
//! fuzzer learned, kept between runs), `artifacts/connection` (crashing
//! inputs), and `scratch` (the inputs' files, a tmpfs in the sandbox).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

mod seeds;

/// The fuzz target `cargo xtask fuzz` runs.
const TARGET: &str = "connection";

/// How long one input may run before libFuzzer calls it a hang, in seconds.
/// An input's connection ends at its EOF; processes it started are killed.
const INPUT_TIMEOUT_SECONDS: u64 = 30;

/// What `cargo xtask fuzz` was asked for.
pub struct Options {
    /// How long to fuzz, in seconds.
    pub seconds: u64,
    /// Run this one input (a crash to reproduce) instead of fuzzing.
    pub input: Option<PathBuf>,
}

/// The directories of a fuzz run, all under `<target dir>/fuzz`.
struct Layout {
    /// Where cargo-fuzz builds (its own target directory, the base of the others).
    build: PathBuf,
    /// The seeds from the conformance cases.
    seeds: PathBuf,
    /// The fuzzer's corpus, kept between runs.
    corpus: PathBuf,
    /// Crashing inputs.
    artifacts: PathBuf,
    /// The mount point of the inputs' tmpfs (the seeds' `${tmp}`).
    scratch: PathBuf,
}

impl Layout {
    /// Creates the directories (canonical paths: the sandbox compares them
    /// with the mount table).
    fn create(root: &Path) -> Result<Self> {
        let base = crate::target_dir(root).join("fuzz");
        let make = |path: PathBuf| -> Result<PathBuf> {
            fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
            fs::canonicalize(&path).with_context(|| format!("resolving {}", path.display()))
        };
        Ok(Self {
            build: make(base.clone())?,
            seeds: make(base.join("seeds").join(TARGET))?,
            corpus: make(base.join("corpus").join(TARGET))?,
            artifacts: make(base.join("artifacts").join(TARGET))?,
            scratch: make(base.join("scratch"))?,
        })
    }

    /// The instrumented target binary.
    fn binary(&self) -> PathBuf {
        self.build
            .join("x86_64-unknown-linux-gnu")
            .join("release")
            .join(TARGET)
    }
}

/// Installs what is missing, builds the target, and fuzzes for
/// `options.seconds` (or runs `options.input` once) in the sandbox.
///
/// # Errors
/// When an install, the build or the sandbox fails, and when the fuzzer
/// found a crash (its input is named, with the command that reproduces it).
pub fn run(root: &Path, options: Options) -> Result<()> {
    if !is_root() {
        bail!("the fuzz sandbox needs root (it makes mount and PID namespaces with unshare)");
    }
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let layout = Layout::create(root)?;
    let seeds = seeds::write(root, &layout.seeds, &layout.scratch)?;
    eprintln!(
        "==> {seeds} seeds from tests/cases in {}",
        layout.seeds.display()
    );
    build(root, &layout)?;

    let mut libfuzzer_args = vec![
        format!("-timeout={INPUT_TIMEOUT_SECONDS}"),
        format!("-artifact_prefix={}/", layout.artifacts.display()),
        "-print_final_stats=1".to_owned(),
    ];
    match &options.input {
        Some(input) => {
            let input = fs::canonicalize(input)
                .with_context(|| format!("resolving {}", input.display()))?;
            libfuzzer_args.push(input.display().to_string());
        }
        None => {
            libfuzzer_args.push(format!("-max_total_time={}", options.seconds));
            libfuzzer_args.push(layout.corpus.display().to_string());
            libfuzzer_args.push(layout.seeds.display().to_string());
        }
    }
    let before = list(&layout.artifacts)?;
    let status = sandboxed(root, &layout, &libfuzzer_args)
        .status()
        .context("starting unshare (util-linux)")?;
    let found: Vec<_> = list(&layout.artifacts)?
        .difference(&before)
        .cloned()
        .collect();
    if !found.is_empty() {
        let shown: Vec<_> = found
            .iter()
            .map(|path| path.display().to_string())
            .collect();
        bail!(
            "the fuzzer found {} crashing input(s): {}\nreproduce: cargo xtask fuzz --input {}",
            found.len(),
            shown.join(", "),
            shown[0]
        );
    }
    if !status.success() {
        match &options.input {
            Some(input) => bail!("{} crashes the fuzz target ({status})", input.display()),
            None => bail!("the fuzz target failed ({status}) and left no input behind"),
        }
    }
    if options.input.is_none() {
        eprintln!("==> no crash; the corpus is in {}", layout.corpus.display());
    } else {
        eprintln!("==> no crash");
    }
    Ok(())
}

/// Whether this process runs as root (mount namespaces need it).
fn is_root() -> bool {
    // The effective uid is on the `Uid:` line of /proc/self/status, second field.
    fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

/// A `cargo` command with the nightly toolchain, free of the variables the
/// outer (stable) `cargo xtask` set, which would pick its tools instead.
fn nightly_cargo(root: &Path) -> Command {
    let mut command = Command::new("cargo");
    command
        .arg("+nightly")
        .current_dir(root)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    command
}

/// Installs a nightly toolchain through rustup unless one is there.
fn ensure_nightly() -> Result<()> {
    let present = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if present {
        return Ok(());
    }
    eprintln!("==> rustup toolchain install nightly --profile minimal");
    let status = Command::new("rustup")
        .args(["toolchain", "install", "nightly", "--profile", "minimal"])
        .status()
        .context("starting rustup (cargo-fuzz needs a nightly toolchain)")?;
    if !status.success() {
        bail!("installing the nightly toolchain failed ({status})");
    }
    Ok(())
}

/// Installs cargo-fuzz unless `cargo fuzz` already runs.
fn ensure_cargo_fuzz() -> Result<()> {
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|output| output.status.success());
    if present {
        return Ok(());
    }
    eprintln!("==> cargo install cargo-fuzz --locked");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(cargo)
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("starting cargo install")?;
    if !status.success() {
        bail!("installing cargo-fuzz failed ({status})");
    }
    Ok(())
}

/// Builds the target with libFuzzer's instrumentation. No sanitizer: the
/// server has no unsafe code of its own, and without ASan the target runs
/// several times faster; 16 codegen units keep the build short.
fn build(root: &Path, layout: &Layout) -> Result<()> {
    let mut command = nightly_cargo(root);
    command
        .args(["fuzz", "build", "--fuzz-dir"])
        .arg(root.join("fuzz"))
        .args([
            "--sanitizer",
            "none",
            "--codegen-units",
            "16",
            "--target-dir",
        ])
        .arg(&layout.build)
        .arg(TARGET);
    eprintln!("==> cargo +nightly fuzz build --sanitizer none {TARGET}");
    let status = command.status().context("starting cargo +nightly fuzz")?;
    if !status.success() {
        bail!("building the fuzz target failed ({status})");
    }
    Ok(())
}

/// The target under `fuzz/sandbox.sh`, in namespaces of its own.
fn sandboxed(root: &Path, layout: &Layout, libfuzzer_args: &[String]) -> Command {
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--net",
            "--ipc",
            "--uts",
            "--",
            "sh",
        ])
        .arg(root.join("fuzz").join("sandbox.sh"))
        .arg(&layout.scratch)
        .arg(&layout.corpus)
        .arg(&layout.artifacts)
        .arg("--")
        .arg(layout.binary())
        .args(libfuzzer_args)
        .current_dir(root);
    eprintln!("==> {TARGET} {} (sandboxed)", libfuzzer_args.join(" "));
    command
}

/// The files in `directory`.
fn list(directory: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for entry in
        fs::read_dir(directory).with_context(|| format!("listing {}", directory.display()))?
    {
        files.insert(entry?.path());
    }
    Ok(files)
}
