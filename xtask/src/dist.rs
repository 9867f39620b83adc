//! `cargo xtask dist`: the static `exec-server` binary users copy into any
//! sandbox image.
//!
//! It builds `exec-server` in release mode for `x86_64-unknown-linux-musl`
//! (adding the target with rustup when it is missing), stripped, proves the
//! result needs no loader and no shared library (`elf`), runs it
//! (`--version`, `exec -- true`, `exec -- sh -c 'echo hi'`), and copies it to
//! `TARGET_DIR/dist/exec-server`, a folder holding nothing else, so the
//! image build (`image`) can use it as its whole build context.

mod elf;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, bail, ensure};

/// The Rust target of the static binary: musl links statically by default.
pub const TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds, checks and copies the static binary; returns the path of the copy
/// (`TARGET_DIR/dist/exec-server`).
///
/// # Errors
/// When rustup cannot add the target, the build fails (with a hint about
/// `musl-tools` when C code needs `musl-gcc` and it is missing), the binary
/// is not static, or one of its runs fails or prints the wrong thing.
pub fn run(root: &Path) -> Result<PathBuf> {
    ensure_target_installed()?;
    let built = build(root)?;
    check_static(&built)?;
    check_runs(&built)?;
    let dist = crate::target_dir(root).join("dist");
    std::fs::create_dir_all(&dist).with_context(|| format!("creating {}", dist.display()))?;
    let copy = dist.join("exec-server");
    std::fs::copy(&built, &copy)
        .with_context(|| format!("copying {} to {}", built.display(), copy.display()))?;
    let bytes = std::fs::metadata(&copy)
        .with_context(|| format!("reading the size of {}", copy.display()))?
        .len();
    eprintln!(
        "==> static exec-server for {TARGET}: {} ({bytes} bytes, {:.1} MiB)",
        copy.display(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    Ok(copy)
}

/// Adds the musl target with rustup when the toolchain lacks it.
fn ensure_target_installed() -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .context("listing the installed targets (is rustup on PATH?)")?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|line| line.trim() == TARGET)
    {
        return Ok(());
    }
    eprintln!("==> rustup target add {TARGET}");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("starting rustup")?;
    ensure!(
        status.success(),
        "`rustup target add {TARGET}` failed ({status})"
    );
    Ok(())
}

/// Builds the release binary for [`TARGET`] and returns its path.
fn build(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let musl_gcc = find_on_path("musl-gcc");
    let mut command = Command::new(&cargo);
    command
        .args(["build", "--release", "--target", TARGET])
        .args(["-p", "exec-server", "--bin", "exec-server"])
        // Symbols are a third of the binary and nobody debugs a copy inside
        // a sandbox image; the profile setting keeps the build tool-free
        // (no `strip` needed) and leaves the workspace's release profile alone.
        .env("CARGO_PROFILE_RELEASE_STRIP", "symbols")
        .current_dir(root);
    // C code built for the target (ring's, under TLS) compiles against musl's
    // headers when its compiler wrapper is there; the cc crate would
    // otherwise fall back to the host's gcc and glibc's headers.
    if let Some(musl_gcc) = &musl_gcc {
        command.env("CC_x86_64_unknown_linux_musl", musl_gcc);
    }
    eprintln!("==> cargo build --release --target {TARGET} -p exec-server --bin exec-server");
    let status = command.status().context("starting cargo build")?;
    if !status.success() {
        let hint = if musl_gcc.is_none() {
            " (C code for musl may need `musl-gcc`: apt-get install musl-tools)"
        } else {
            ""
        };
        bail!("the {TARGET} build failed ({status}){hint}");
    }
    Ok(crate::target_dir(root)
        .join(TARGET)
        .join("release")
        .join("exec-server"))
}

/// Fails unless the binary has no interpreter and needs no shared library.
fn check_static(binary: &Path) -> Result<()> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let linkage = elf::linkage(&bytes).with_context(|| format!("reading {}", binary.display()))?;
    ensure!(
        linkage.is_static(),
        "{} is not static: interpreter {:?}, {} shared libraries needed",
        binary.display(),
        linkage.interpreter,
        linkage.needed_libraries
    );
    // `file` says the same in words; it is shown when present, never required.
    match capture(Command::new("file").arg("--brief").arg(binary)) {
        Ok(output) => eprintln!(
            "==> static (no interpreter, no DT_NEEDED); file: {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ),
        Err(_) => eprintln!("==> static (no interpreter, no DT_NEEDED)"),
    }
    Ok(())
}

/// Runs the binary the way a user first would: its version, and programs
/// through a local server over stdio (the binary starting itself).
fn check_runs(binary: &Path) -> Result<()> {
    let version = capture(Command::new(binary).arg("--version"))?;
    let version = String::from_utf8_lossy(&version.stdout);
    ensure!(
        version.starts_with("exec-server "),
        "`exec-server --version` printed {version:?}"
    );
    eprintln!("==> {}", version.trim());
    capture(Command::new(binary).args(["exec", "--", "true"]))?;
    let echoed = capture(Command::new(binary).args(["exec", "--", "sh", "-c", "echo hi"]))?;
    ensure!(
        echoed.stdout == b"hi\n",
        "`exec -- sh -c 'echo hi'` printed {:?}",
        String::from_utf8_lossy(&echoed.stdout)
    );
    eprintln!("==> `exec -- true` and `exec -- sh -c 'echo hi'` ran through the static binary");
    Ok(())
}

/// Runs a command to its end, failing with its stderr when it exits non-zero.
fn capture(command: &mut Command) -> Result<Output> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("starting {shown}"))?;
    ensure!(
        output.status.success(),
        "{shown} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(output)
}

/// The first executable file called `name` in a directory of `PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}
