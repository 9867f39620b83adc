//! Figure 6, ssh beside ours, when `EXEC_BENCH_SSH=user@host` names an ssh
//! login that works without a password prompt (`BatchMode=yes`; cipher
//! `aes128-gcm@openssh.com`, as in the ssh figure):
//!
//! - output: `ssh -T HOST head -c N /dev/zero` into a pipe, timed from its
//!   first byte (so the connection's setup is not counted), against ours
//!   over WebSocket;
//! - round trip: a line the size of the round-trip request, ping-ponged
//!   through `ssh -T HOST cat`, p50 against ours over WebSocket;
//! - PTY echo: 6 bytes through `cat` on a raw remote PTY
//!   (`ssh -tt HOST 'stty raw -echo; ...; exec cat'`), p50 against ours over
//!   WebSocket;
//! - the main job (figure 8 beside ssh): `ssh HOST true` over a
//!   ControlMaster connection (the setting an agent running many commands
//!   uses), p50 against `exec-server exec --url ... -- true`; and
//!   `ssh HOST head -c N /dev/zero` into a pipe timed from start to exit,
//!   against `exec-server exec --url ... -- head -c N /dev/zero`.
//!
//! Each ratio is ours / ssh.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::Sizes;
use crate::report::{Better, Figure};
use crate::round_trip::request_text;
use crate::stats::{Latency, median};

/// The environment variable naming the ssh destination.
pub const SSH_ENV: &str = "EXEC_BENCH_SSH";

/// Measures figure 6 against `destination`; `ours` are the figures measured
/// so far (rows whose counterpart is missing are left out).
///
/// # Errors
/// When ssh fails.
pub fn run(destination: &str, sizes: &Sizes, ours: &[Figure]) -> Result<Vec<Figure>> {
    let find = |id: &str| {
        ours.iter()
            .find(|figure| figure.id == id)
            .map(|figure| figure.ours)
    };
    let mut figures = Vec::new();
    let baseline_name = format!("ssh {destination}");

    let mut runs = Vec::new();
    for _ in 0..sizes.output_repeats {
        runs.push(output(destination, sizes.output_bytes)?);
    }
    if let Some(ours) = find("output_pipe_ws") {
        figures.push(
            Figure::new(
                "ssh_output_pipe",
                "ssh: output, pipe process",
                "MB/s",
                Better::Higher,
                ours,
                median(&runs),
                &baseline_name,
                None,
            )
            .with_note("ours over WebSocket; ssh timed from its first byte"),
        );
    }

    let line = format!("{}\n", request_text(sizes.round_trips + sizes.warmup));
    let samples = ping_pong(
        &["-T", destination, "cat"],
        None,
        line.as_bytes(),
        sizes.warmup,
        sizes.round_trips,
    )?;
    if let Some(ours) = find("round_trip_ws_p50") {
        figures.push(
            Figure::new(
                "ssh_round_trip_p50",
                "ssh: round trip p50",
                "µs",
                Better::Lower,
                ours,
                Latency::of(&samples).p50,
                &baseline_name,
                None,
            )
            .with_note("ours over WebSocket; ssh: a line through `cat`"),
        );
    }

    let samples = ping_pong(
        &["-tt", destination, "stty raw -echo && printf R && exec cat"],
        Some(b'R'),
        b"hello!",
        sizes.warmup,
        sizes.pty_echoes,
    )?;
    if let Some(ours) = find("pty_echo_ws_p50") {
        figures.push(
            Figure::new(
                "ssh_pty_echo_p50",
                "ssh: PTY echo p50",
                "µs",
                Better::Lower,
                ours,
                Latency::of(&samples).p50,
                &baseline_name,
                None,
            )
            .with_note("ours over WebSocket"),
        );
    }

    let master = control_master();
    let mut samples = Vec::with_capacity(sizes.cli_runs);
    for round in 0..sizes.cli_runs + sizes.cli_runs / 10 + 1 {
        let started = Instant::now();
        let status = std::process::Command::new("ssh")
            .args(["-o", "BatchMode=yes"])
            .args(&master)
            .args([destination, "true"])
            .stdin(Stdio::null())
            .status()
            .context("starting ssh")?;
        let elapsed = started.elapsed();
        ensure!(status.success(), "ssh {destination} true failed: {status}");
        if round > sizes.cli_runs / 10 {
            samples.push(elapsed);
        }
    }
    if let Some(ours) = find("cli_true_url_p50") {
        figures.push(
            Figure::new(
                "ssh_cli_true_p50",
                "ssh: `true`, a fresh command",
                "ms",
                Better::Lower,
                ours,
                Latency::of(&samples).p50 / 1e3,
                &format!("{baseline_name} (ControlMaster)"),
                None,
            )
            .with_note("ours: exec --url -- true"),
        );
    }
    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(whole_output(destination, &master, sizes.output_bytes)?);
    }
    if let Some(ours) = find("cli_output_url") {
        figures.push(
            Figure::new(
                "ssh_cli_output",
                "ssh: head -c N into a pipe, start to exit",
                "MB/s",
                Better::Higher,
                ours,
                median(&runs),
                &format!("{baseline_name} (ControlMaster)"),
                None,
            )
            .with_note("ours: exec --url -- head -c N"),
        );
    }
    Ok(figures)
}

/// The options that share one ssh connection between the commands of a
/// run (kept open 60 s after the last).
fn control_master() -> Vec<String> {
    let path = std::env::temp_dir().join(format!("exec-bench-ssh-{}", std::process::id()));
    vec![
        String::from("-o"),
        String::from("ControlMaster=auto"),
        String::from("-o"),
        format!("ControlPath={}", path.display()),
        String::from("-o"),
        String::from("ControlPersist=60"),
    ]
}

/// `ssh HOST head -c N /dev/zero` into a local pipe, in MB/s from start to
/// exit, as `exec-server exec` is timed.
fn whole_output(destination: &str, master: &[String], bytes: u64) -> Result<f64> {
    let mut command = std::process::Command::new("ssh");
    command
        .args(["-o", "BatchMode=yes", "-c", "aes128-gcm@openssh.com"])
        .args(master)
        .args([destination, &format!("head -c {bytes} /dev/zero")])
        .stdin(Stdio::null());
    crate::cli::output(&mut command, bytes)
}

/// `ssh` with `args`, in batch mode, with piped stdin and stdout.
fn ssh(args: &[&str]) -> Result<(Child, ChildStdin, ChildStdout)> {
    let mut child = std::process::Command::new("ssh")
        // The cipher the ssh figure (548 MB/s) was measured with.
        .args(["-o", "BatchMode=yes", "-c", "aes128-gcm@openssh.com"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting ssh")?;
    let stdin = child.stdin.take().context("ssh's stdin")?;
    let stdout = child.stdout.take().context("ssh's stdout")?;
    Ok((child, stdin, stdout))
}

/// The remote `head` into a local pipe, in MB/s from the first byte.
fn output(destination: &str, bytes: u64) -> Result<f64> {
    let (mut child, stdin, mut stdout) =
        ssh(&["-T", destination, &format!("head -c {bytes} /dev/zero")])?;
    drop(stdin);
    let mut buffer = vec![0u8; 64 * 1024];
    let first = stdout.read(&mut buffer)?;
    let started = Instant::now();
    let mut received = first as u64;
    loop {
        match stdout.read(&mut buffer)? {
            0 => break,
            length => received += length as u64,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = child.wait()?;
    ensure!(status.success(), "ssh failed: {status}");
    ensure!(
        received == bytes,
        "received {received} of {bytes} bytes over ssh"
    );
    Ok((bytes - first as u64) as f64 / 1e6 / seconds)
}

/// Ping-pongs `message` through a remote `cat`: after `marker` arrived
/// (when given), `warmup` untimed and `count` timed rounds.
fn ping_pong(
    args: &[&str],
    marker: Option<u8>,
    message: &[u8],
    warmup: usize,
    count: usize,
) -> Result<Vec<Duration>> {
    let (mut child, mut stdin, stdout) = ssh(args)?;
    let mut stdout = BufReader::new(stdout);
    if let Some(marker) = marker {
        let mut seen = Vec::new();
        stdout.read_until(marker, &mut seen)?;
        ensure!(seen.last() == Some(&marker), "ssh ended before the marker");
    }
    let mut echoed = vec![0u8; message.len()];
    let mut samples = Vec::with_capacity(count);
    for round in 0..warmup + count {
        let started = Instant::now();
        stdin.write_all(message)?;
        stdin.flush()?;
        stdout.read_exact(&mut echoed)?;
        let elapsed = started.elapsed();
        ensure!(echoed == message, "the remote cat echoed something else");
        if round >= warmup {
            samples.push(elapsed);
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    Ok(samples)
}
