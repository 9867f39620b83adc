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
use serde_json::Value;

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
    let seeds = write_seeds(root, &layout.seeds, &layout.scratch)?;
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
        bail!("the fuzz target failed ({status}) and left no input behind");
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

/// Writes one seed per conformance case into `seeds`: the lines its client
/// sends (the handshake first when the case has one), with `${tmp}` as
/// `scratch`. Returns how many.
fn write_seeds(root: &Path, seeds: &Path, scratch: &Path) -> Result<usize> {
    let cases = root.join("tests").join("cases");
    let mut files = Vec::new();
    collect_json(&cases, &mut files)?;
    let scratch = scratch.display().to_string();
    for file in &files {
        let text =
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let case: Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let stream = seed_of(&case, &scratch);
        let name = file
            .strip_prefix(&cases)
            .unwrap_or(file)
            .with_extension("")
            .display()
            .to_string()
            .replace('/', "-");
        fs::write(seeds.join(name), stream).context("writing a seed")?;
    }
    Ok(files.len())
}

/// Every `.json` file under `directory`, recursively.
fn collect_json(directory: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    for entry in
        fs::read_dir(directory).with_context(|| format!("listing {}", directory.display()))?
    {
        let path = entry?.path();
        if path.is_dir() {
            collect_json(&path, files)?;
        } else if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(())
}

/// The byte stream a case's client sends over stdio. Captured variables
/// (a pid) become 1: a seed only needs to be close to a real session.
fn seed_of(case: &Value, scratch: &str) -> String {
    let mut lines = Vec::new();
    if case["handshake"] != Value::Bool(false) {
        lines.push(
            r#"{"jsonrpc":"2.0","id":"handshake","method":"initialize","params":{"clientName":"fuzz"}}"#
                .to_owned(),
        );
        lines.push(r#"{"jsonrpc":"2.0","method":"initialized"}"#.to_owned());
    }
    for step in case["steps"].as_array().into_iter().flatten() {
        if let Some(message) = step.get("send") {
            lines.push(substitute(message, scratch).to_string());
        }
        if let Some(raw) = step.get("sendRaw").and_then(Value::as_str) {
            lines.push(variables(raw, scratch));
        }
    }
    let mut stream = lines.join("\n");
    stream.push('\n');
    stream
}

/// A `send` value with the corpus's placeholders replaced (see `tests/README.md`).
fn substitute(value: &Value, scratch: &str) -> Value {
    match value {
        Value::String(text) => {
            if let Some(plain) = text.strip_prefix("$base64:") {
                Value::String(base64(variables(plain, scratch).as_bytes()))
            } else if text.starts_with("${") && text.ends_with('}') && text != "${tmp}" {
                Value::from(1)
            } else {
                Value::String(variables(
                    text.strip_prefix('$')
                        .filter(|rest| rest.starts_with('$'))
                        .unwrap_or(text),
                    scratch,
                ))
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| substitute(item, scratch)).collect())
        }
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, member)| (name.clone(), substitute(member, scratch)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `text` with `${tmp}` as `scratch`, other `${NAME}`s as 1, and `$${` as `${`.
fn variables(text: &str, scratch: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        if rest[..start].ends_with('$') {
            out.push_str(&rest[..start - 1]);
            out.push_str("${");
            rest = &rest[start + 2..];
            continue;
        }
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        out.push_str(if &after[..end] == "tmp" { scratch } else { "1" });
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// Standard padded base64 of `bytes`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let group = chunk
            .iter()
            .enumerate()
            .fold(0u32, |group, (index, &byte)| {
                group | u32::from(byte) << (16 - 8 * index)
            });
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[(group >> (18 - 6 * index)) as usize & 63],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_standard_and_padded() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"x"), "eA==");
        assert_eq!(base64(b"hi"), "aGk=");
        assert_eq!(base64(b"hello\n"), "aGVsbG8K");
    }

    #[test]
    fn placeholders_become_values() {
        let message = serde_json::json!({
            "path": "${tmp}/f",
            "data": "$base64:x",
            "pid": "${pid}",
            "script": "echo $${HOME}",
            "dollar": "$$5",
        });
        assert_eq!(
            substitute(&message, "/scratch"),
            serde_json::json!({
                "path": "/scratch/f",
                "data": "eA==",
                "pid": 1,
                "script": "echo ${HOME}",
                "dollar": "$5",
            })
        );
    }
}
