//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::codegen;

/// Runs the whole test suite of the workspace at `root`.
pub fn run(root: &Path) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    step(root, &cargo, &["fmt", "--all", "--check"])?;
    step(
        root,
        &cargo,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    eprintln!("==> cargo xtask codegen --check");
    codegen::run(root, codegen::Mode::Check)?;
    step(root, &cargo, &["test", "--workspace"])?;

    let sdk_ts = root.join("sdk-ts");
    step(&sdk_ts, "npm", &["ci", "--no-audit", "--no-fund"])?;
    step(&sdk_ts, "npm", &["run", "typecheck"])?;
    eprintln!("==> all checks passed");
    Ok(())
}

/// Runs one command in `dir`, failing when it exits non-zero.
fn step(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    let shown = format!(
        "{} {}",
        Path::new(program)
            .file_name()
            .map_or(program.into(), |n| n.to_string_lossy()),
        args.join(" ")
    );
    eprintln!("==> {shown}");
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}
