//! The conformance step of `cargo xtask test`: SDK test runs go through the
//! validating WebSocket proxy (`conformance-proxy` of the `conformance`
//! crate), and any protocol violation it records fails the run.
//!
//! How `test::run` uses it:
//! 1. `let env = conformance::sdk_env(root)?;` builds the proxy and empties
//!    the violations file;
//! 2. the SDK test commands (`cargo test --workspace`, which includes
//!    `exec-client`'s tests, and the TypeScript SDK's tests) run with
//!    `command.envs(env.vars())`; their harnesses start the proxy in front
//!    of every WebSocket server they start;
//! 3. `conformance::check_violations(&env.violations)?;` fails when the
//!    proxies recorded anything.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Names the proxy binary; SDK test harnesses put the proxy in front of
/// their WebSocket servers when it is set.
pub const PROXY_ENV: &str = "EXEC_CONFORMANCE_PROXY";

/// Names the file each proxy appends its violations to, one JSON object per line.
pub const VIOLATIONS_ENV: &str = "EXEC_CONFORMANCE_VIOLATIONS";

/// What the SDK test runs need to go through the proxy.
#[derive(Debug, Clone)]
pub struct SdkEnv {
    /// The `conformance-proxy` binary.
    pub proxy: PathBuf,
    /// The (emptied) file the proxies record violations in.
    pub violations: PathBuf,
}

impl SdkEnv {
    /// The environment variables to set on the SDK test commands.
    pub fn vars(&self) -> [(&'static str, &OsStr); 2] {
        [
            (PROXY_ENV, self.proxy.as_os_str()),
            (VIOLATIONS_ENV, self.violations.as_os_str()),
        ]
    }
}

/// Builds `conformance-proxy` (`cargo build -p conformance --bin
/// conformance-proxy`, a no-op when `cargo test` already built it) and
/// empties `target/conformance/sdk-violations.jsonl`.
///
/// Errors: the build fails, or the violations file cannot be created.
pub fn sdk_env(root: &Path) -> Result<SdkEnv> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    eprintln!("==> cargo build -p conformance --bin conformance-proxy");
    let status = Command::new(&cargo)
        .args(["build", "-p", "conformance", "--bin", "conformance-proxy"])
        .current_dir(root)
        .status()
        .with_context(|| format!("starting `{cargo} build -p conformance`"))?;
    if !status.success() {
        bail!("`cargo build -p conformance --bin conformance-proxy` failed ({status})");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| root.join("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        root.join(target)
    };
    let proxy = target
        .join("debug")
        .join(format!("conformance-proxy{}", std::env::consts::EXE_SUFFIX));
    if !proxy.is_file() {
        bail!("the build left no proxy at {}", proxy.display());
    }
    let directory = target.join("conformance");
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    let violations = directory.join("sdk-violations.jsonl");
    std::fs::write(&violations, "")
        .with_context(|| format!("emptying {}", violations.display()))?;
    Ok(SdkEnv { proxy, violations })
}

/// Fails when the proxies recorded any violation in `path`, showing the first
/// ones (each line names the rule, the direction, what is wrong and the frame).
///
/// Errors: violations were recorded, or the file cannot be read.
pub fn check_violations(path: &Path) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // No proxy ran (no SDK test started a WebSocket server): nothing recorded.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        eprintln!("==> conformance: SDK traffic through the proxy had no violations");
        return Ok(());
    }
    const SHOWN: usize = 20;
    for line in lines.iter().take(SHOWN) {
        eprintln!("{line}");
    }
    if lines.len() > SHOWN {
        eprintln!("... and {} more", lines.len() - SHOWN);
    }
    bail!(
        "{} protocol violations in SDK traffic through conformance-proxy (all in {})",
        lines.len(),
        path.display()
    )
}
