//! `cargo xtask soak --minutes N`: builds the server and the soak driver
//! (`exec-soak`, in `bench/src/bin/exec-soak/`) in release mode and runs
//! the driver, which puts the real server under mixed load for N minutes,
//! samples its resources, prints the table and fails when they grow.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What `cargo xtask soak` was asked for.
pub struct Options {
    /// How long the load runs, in minutes.
    pub minutes: u64,
}

/// Builds `exec-server` and `exec-soak` in release mode and runs the driver.
///
/// # Errors
/// When the build fails, or the driver does (the load failed, or a
/// resource of the server grew).
pub fn run(root: &Path, options: Options) -> Result<()> {
    let release = crate::build_release(
        root,
        &[
            "-p",
            "exec-server",
            "-p",
            "exec-bench",
            "--bin",
            "exec-server",
            "--bin",
            "exec-soak",
        ],
    )?;
    let mut driver = Command::new(release.join("exec-soak"));
    driver
        .arg("--server")
        .arg(release.join("exec-server"))
        .arg("--minutes")
        .arg(options.minutes.to_string());
    eprintln!("==> {driver:?}");
    let status = driver.status().context("starting exec-soak")?;
    if !status.success() {
        bail!("the soak failed ({status})");
    }
    Ok(())
}
