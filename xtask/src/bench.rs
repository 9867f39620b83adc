//! `cargo xtask bench [--quick] [--json PATH]`: builds the server and the
//! benchmark driver in release mode and runs the driver (crate `exec-bench`,
//! in `bench/`), which prints the table and writes it as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// What `cargo xtask bench` was asked for.
pub struct Options {
    /// Tiny sizes: checks that everything runs, in well under a minute.
    pub quick: bool,
    /// Where the JSON goes; default `target/bench/results.json` in the workspace.
    pub json: Option<PathBuf>,
}

/// Builds `exec-server` and `exec-bench` in release mode and runs the driver.
///
/// # Errors
/// When the build fails, or the driver does (a section that failed is
/// reported in its table and makes it exit non-zero).
pub fn run(root: &Path, options: Options) -> Result<()> {
    let release = crate::build_release(root, &["-p", "exec-server", "-p", "exec-bench"])?;
    let json = options
        .json
        .unwrap_or_else(|| crate::target_dir(root).join("bench").join("results.json"));
    let mut driver = Command::new(release.join("exec-bench"));
    driver
        .arg("--server")
        .arg(release.join("exec-server"))
        .arg("--json")
        .arg(&json);
    if options.quick {
        driver.arg("--quick");
    }
    eprintln!("==> {driver:?}");
    let status = driver.status().context("starting exec-bench")?;
    if !status.success() {
        bail!("exec-bench failed ({status})");
    }
    Ok(())
}
