//! One look at the server from outside, through `/proc`: its resident
//! memory, open fds, threads, zombie children and live descendants.

use std::collections::HashMap;
use std::fs;

use anyhow::{Context, Result};

/// The hidden first argument of an exec-server guardian
/// (`exec_server::guardian::GUARDIAN_COMMAND`; this crate does not depend
/// on the server).
const GUARDIAN_COMMAND: &str = "__exec-guardian";

/// The server's resources at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    /// Seconds since the load started (negative: before it).
    pub at_seconds: i64,
    /// Resident memory (`VmRSS`), in KiB.
    pub rss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// Children of the server that exited and were not reaped.
    pub zombies: u64,
    /// Live (not zombie) processes below the server, at any depth.
    pub descendants: u64,
    /// Operations the load completed so far.
    pub operations: u64,
}

/// The server `pid`'s resources now.
///
/// # Errors
/// When the server is gone (its `/proc` entries cannot be read).
pub fn take(pid: u32, at_seconds: i64, operations: u64) -> Result<Sample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status (has the server exited?)"))?;
    let field = |name: &str| -> Result<u64> {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .with_context(|| format!("no {name} in /proc/{pid}/status"))
    };
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))
        .with_context(|| format!("listing /proc/{pid}/fd"))?
        .count() as u64;
    let (zombies, descendants) = tree_of(pid);
    Ok(Sample {
        at_seconds,
        rss_kib: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
        zombies,
        descendants,
        operations,
    })
}

/// The zombie children of `root` and its live descendants, from one scan of
/// `/proc` (processes that come and go meanwhile are missed or counted,
/// which a series of samples evens out).
fn tree_of(root: u32) -> (u64, u64) {
    let mut parents: HashMap<u32, (u32, bool)> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return (0, 0);
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse().ok())
        else {
            continue;
        };
        if let Some((parent, zombie)) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parent_and_state)
        {
            // The server's guardian lives as long as the server; it is no
            // leftover of the load.
            if parent == root && !zombie && is_guardian(pid) {
                continue;
            }
            parents.insert(pid, (parent, zombie));
        }
    }
    let mut zombies = 0;
    let mut descendants = 0;
    for &(parent, zombie) in parents.values() {
        if zombie {
            zombies += u64::from(parent == root);
            continue;
        }
        // Walk up to init; the depth bound guards against a pid reused
        // during the scan forming a cycle.
        let mut ancestor = parent;
        for _ in 0..256 {
            if ancestor == root {
                descendants += 1;
                break;
            }
            match parents.get(&ancestor) {
                Some(&(next, _)) if ancestor > 1 && next != ancestor => ancestor = next,
                _ => break,
            }
        }
    }
    (zombies, descendants)
}

/// Whether `pid` is an exec-server guardian (`exec-server __exec-guardian
/// ...`, see `exec_server::guardian`).
fn is_guardian(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|argv| argv.split(|byte| *byte == 0).nth(1) == Some(GUARDIAN_COMMAND.as_bytes()))
}

/// The parent pid and whether the process is a zombie, from a
/// `/proc/<pid>/stat` line (`pid (comm) state ppid ...`, where comm may
/// hold spaces and parentheses, so the fields after the last `)` count).
fn parent_and_state(stat: &str) -> Option<(u32, bool)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((parent, state == "Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_with_odd_names_parse() {
        assert_eq!(
            parent_and_state("42 (a (b) c) Z 7 42 42 0"),
            Some((7, true))
        );
        assert_eq!(parent_and_state("1 (init) S 0 1 1"), Some((0, false)));
        assert_eq!(parent_and_state("garbage"), None);
    }

    #[test]
    fn this_process_can_be_sampled() {
        let sample = take(std::process::id(), 0, 0).expect("a sample of this process");
        assert!(sample.rss_kib > 0 && sample.fds > 0 && sample.threads > 0);
    }
}
