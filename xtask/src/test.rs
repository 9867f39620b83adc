//! `cargo xtask test`: every check CI runs, in order, stopping at the first failure.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{codegen, conformance};

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
    // The Rust tests (through `exec_testkit`) and the TypeScript SDK's tests
    // run the real server binary, and none of them builds it: build it once
    // here, so no test depends on what `cargo test` happened to build first.
    step(root, &cargo, &["build", "-p", "exec-server"])?;
    // SDK test runs go through the validating proxy (see `conformance`).
    let conformance = conformance::sdk_env(root)?;
    step_with_env(root, &cargo, &["test", "--workspace"], &conformance.vars())?;

    // The TypeScript SDK's tests run against the server binary built above.
    let server_binary = crate::target_dir(root).join("debug").join("exec-server");
    let sdk_ts = root.join("sdk-ts");
    step(&sdk_ts, "npm", &["ci", "--no-audit", "--no-fund"])?;
    // The build type-checks all of `src/`, the generated types included;
    // the tests' build type-checks the tests, the type-level ones too.
    step(&sdk_ts, "npm", &["run", "build"])?;
    let [proxy, violations] = conformance.vars();
    step_with_env(
        &sdk_ts,
        "npm",
        &["test"],
        &[
            ("EXEC_SERVER_BIN", server_binary.as_os_str()),
            proxy,
            violations,
        ],
    )?;
    conformance::check_violations(&conformance.violations)?;
    eprintln!("==> all checks passed");
    Ok(())
}

/// Runs one command in `dir`, failing when it exits non-zero.
fn step(dir: &Path, program: &str, args: &[&str]) -> Result<()> {
    step_with_env(dir, program, args, &[])
}

/// Runs one command in `dir` with extra environment variables, failing when
/// it exits non-zero.
fn step_with_env(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<()> {
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
        .envs(env.iter().copied())
        .current_dir(dir)
        .status()
        .with_context(|| format!("starting `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}
