//! `cargo xtask image`: the container images, built from the static binary
//! of `cargo xtask dist` with podman or docker, whichever is present.
//!
//! - `deploy/Containerfile` makes `exec-server:VERSION`: `FROM scratch`, the
//!   binary alone, serving on `0.0.0.0:7000` as user 65532 with the token
//!   read from `/run/secrets/exec-server/token`.
//! - `deploy/installer.Containerfile` (with `--installer`) makes
//!   `exec-server-installer:VERSION`: busybox and the binary, whose one job
//!   is to copy the binary into a shared volume (the init container of
//!   `deploy/kubernetes/`).
//!
//! The build context is `TARGET_DIR/dist/`, which holds only the binary, so
//! nothing else of the workspace is sent to the engine. No Rust toolchain
//! runs inside a container: the binary is the one `dist` checked.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};

use crate::dist;

/// The name of the runtime image; its tag is the workspace version.
pub const IMAGE: &str = "exec-server";
/// The name of the init-container image; its tag is the workspace version.
pub const INSTALLER_IMAGE: &str = "exec-server-installer";

/// What `cargo xtask image` was asked for.
pub struct Options {
    /// Also build the installer image (it pulls its busybox base).
    pub installer: bool,
    /// The busybox image the installer starts from; the Containerfile's
    /// default when `None`.
    pub busybox_image: Option<String>,
}

/// Builds the static binary, then the image(s); checks that the runtime
/// image holds exactly that binary, and tries to run it.
///
/// # Errors
/// When neither podman nor docker (with a running engine) is present, when
/// `dist` fails, or when a build or the content check fails.
pub fn run(root: &Path, options: Options) -> Result<()> {
    let engine = find_engine()?;
    let binary = dist::run(root)?;
    let context = binary
        .parent()
        .context("the static binary's path has no parent folder")?;
    let version = env!("CARGO_PKG_VERSION");

    let runtime = format!("{IMAGE}:{version}");
    build(
        &engine,
        &root.join("deploy/Containerfile"),
        context,
        &runtime,
        &[],
    )?;
    check_holds_binary(&engine, &runtime, &binary, &crate::target_dir(root))?;
    try_run_version(&engine, &runtime);
    report_size(&engine, &runtime);

    if options.installer {
        let installer = format!("{INSTALLER_IMAGE}:{version}");
        let build_args: Vec<String> = options
            .busybox_image
            .iter()
            .map(|image| format!("BUSYBOX_IMAGE={image}"))
            .collect();
        build(
            &engine,
            &root.join("deploy/installer.Containerfile"),
            context,
            &installer,
            &build_args,
        )?;
        report_size(&engine, &installer);
    }
    Ok(())
}

/// Fails unless the image's `/exec-server` is byte for byte the binary
/// `dist` checked. It copies the file out of a created (never started)
/// container, so it works where containers cannot run.
fn check_holds_binary(engine: &str, image: &str, binary: &Path, target_dir: &Path) -> Result<()> {
    let created = engine_output(engine, &["create", image])?;
    let container = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    let check_dir = target_dir.join("image-check");
    std::fs::create_dir_all(&check_dir)
        .with_context(|| format!("creating {}", check_dir.display()))?;
    let copy = check_dir.join("exec-server");
    let copied = Command::new(engine)
        .arg("cp")
        .arg(format!("{container}:/exec-server"))
        .arg(&copy)
        .status();
    // The container is removed whatever the copy did.
    let removed = engine_output(engine, &["rm", &container]);
    ensure!(
        copied.is_ok_and(|status| status.success()),
        "copying /exec-server out of {image} failed"
    );
    removed?;
    let inside = std::fs::read(&copy).with_context(|| format!("reading {}", copy.display()))?;
    let checked = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    ensure!(
        inside == checked,
        "{image}'s /exec-server is not the binary `dist` checked"
    );
    eprintln!("==> {image} holds /exec-server, the binary `dist` checked");
    Ok(())
}

/// Starts the image's binary with `--version` in place of the entrypoint
/// (a scratch image has no shell). Some hosts cannot run containers at all
/// (a nested sandbox without the rlimits or cgroups the runtime sets), so a
/// failure here is reported, not fatal: `dist` ran this same binary.
fn try_run_version(engine: &str, image: &str) {
    match engine_output(
        engine,
        &[
            "run",
            "--rm",
            "--entrypoint",
            "/exec-server",
            image,
            "--version",
        ],
    ) {
        Ok(output) => eprintln!(
            "==> {image} runs: {}",
            String::from_utf8_lossy(&output.stdout).trim()
        ),
        Err(error) => eprintln!("==> warning: could not run a container on this host: {error:#}"),
    }
}

/// Runs `engine ARGS`, failing with its stderr when it exits non-zero.
fn engine_output(engine: &str, args: &[&str]) -> Result<std::process::Output> {
    let output = Command::new(engine)
        .args(args)
        .output()
        .with_context(|| format!("starting {engine} {}", args.join(" ")))?;
    ensure!(
        output.status.success(),
        "`{engine} {}` failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(output)
}

/// `podman` when it answers, else `docker` when its engine answers.
fn find_engine() -> Result<String> {
    for engine in ["podman", "docker"] {
        if dist::find_on_path(engine).is_none() {
            continue;
        }
        // `docker --version` answers without an engine; `info` needs one.
        let answers = Command::new(engine)
            .arg("info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if answers {
            return Ok(engine.to_owned());
        }
        eprintln!("==> {engine} is installed but `{engine} info` fails (no engine running?)");
    }
    bail!(
        "cargo xtask image needs podman or docker with a running engine, and neither answers; \
         install podman (e.g. `apt-get install podman`) or start Docker. \
         `cargo xtask dist` builds the static binary without either."
    )
}

/// Builds one image from `containerfile` with `context` as build context.
fn build(
    engine: &str,
    containerfile: &Path,
    context: &Path,
    tag: &str,
    build_args: &[String],
) -> Result<()> {
    let mut command = Command::new(engine);
    command.arg("build").arg("--file").arg(containerfile);
    for build_arg in build_args {
        command.args(["--build-arg", build_arg]);
    }
    command.args(["--tag", tag]).arg(context);
    eprintln!("==> {command:?}");
    let status = command
        .status()
        .with_context(|| format!("starting {engine} build"))?;
    ensure!(status.success(), "building {tag} failed ({status})");
    Ok(())
}

/// Prints the image's size as the engine reports it; a failure to ask is
/// only a missing line, not a failed build.
fn report_size(engine: &str, tag: &str) {
    let size = Command::new(engine)
        .args(["image", "inspect", "--format", "{{.Size}}", tag])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match size {
        Some(bytes) => eprintln!("==> image {tag}: {bytes} bytes"),
        None => eprintln!("==> image {tag} built (its size could not be read)"),
    }
}
