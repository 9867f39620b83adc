//! Reading the process table of Linux's `/proc`: who is whose parent, which
//! process group and session each process is in, which processes are zombies,
//! and which process tree marker a process inherited.
//!
//! Every reader tolerates processes that vanish while they are being read: a
//! missing or unreadable entry is simply left out.

use std::collections::HashMap;
use std::fs;

/// The environment variable that marks every process a managed process starts
/// (see the module documentation of `process` for why and its limits).
pub(crate) const TREE_MARKER_VARIABLE: &str = "EXEC_SERVER_TREE";

/// The fields of `/proc/PID/stat` that tree killing and orphan reaping need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The process id.
    pub pid: i32,
    /// The parent's process id (after re-parenting, the subreaper or init).
    pub ppid: i32,
    /// The process group id.
    pub pgrp: i32,
    /// The session id.
    pub session: i32,
    /// The state letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub state: u8,
    /// Start time in clock ticks after boot; with the pid it names a process
    /// uniquely, so a remembered pid that was reused is not mistaken for it.
    pub start_time: u64,
}

impl ProcStat {
    /// Whether the process has already died (a zombie waits to be reaped);
    /// a dead process cannot fork, so it needs no signal.
    pub(crate) fn is_dead(&self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses the text of `/proc/PID/stat`. The command name is in parentheses and
/// may itself contain spaces and parentheses, so the fields are counted from
/// the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let mut fields = text.get(close + 1..)?.split_ascii_whitespace();
    // Fields after the name, counting from 0: state, ppid, pgrp, session,
    // tty_nr, tpgid, flags, minflt, cminflt, majflt, cmajflt, utime, stime,
    // cutime, cstime, priority, nice, num_threads, itrealvalue, starttime.
    let state = *fields.next()?.as_bytes().first()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    let start_time = fields.nth(15)?.parse().ok()?;
    Some(ProcStat {
        pid,
        ppid,
        pgrp,
        session,
        state,
        start_time,
    })
}

/// The stat of one process, or `None` when it is gone.
pub(crate) fn read_stat(pid: i32) -> Option<ProcStat> {
    parse_stat(&fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process of the system, as far as `/proc` shows them.
pub(crate) fn snapshot() -> Vec<ProcStat> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_stat)
        .collect()
}

/// The children of every process in `stats`, by parent pid.
pub(crate) fn children_by_parent(stats: &[ProcStat]) -> HashMap<i32, Vec<i32>> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for stat in stats {
        children.entry(stat.ppid).or_default().push(stat.pid);
    }
    children
}

/// The children of this process (of all its threads, since a re-parented
/// orphan is attached to one thread), or `None` when the kernel does not
/// provide `/proc/self/task/TID/children`.
pub(crate) fn own_children() -> Option<Vec<i32>> {
    if !std::path::Path::new("/proc/thread-self/children").exists() {
        return None;
    }
    let mut children = Vec::new();
    for entry in fs::read_dir("/proc/self/task").ok()?.flatten() {
        // A thread that ended meanwhile has no children to report.
        if let Ok(text) = fs::read_to_string(entry.path().join("children")) {
            children.extend(
                text.split_ascii_whitespace()
                    .filter_map(|pid| pid.parse::<i32>().ok()),
            );
        }
    }
    Some(children)
}

/// The value of [`TREE_MARKER_VARIABLE`] in the environment the process was
/// started with, or `None` when it has none or its environment cannot be read
/// (another user's process, a zombie).
pub(crate) fn tree_marker(pid: i32) -> Option<String> {
    let environ = fs::read(format!("/proc/{pid}/environ")).ok()?;
    find_marker(&environ).map(str::to_owned)
}

/// Finds [`TREE_MARKER_VARIABLE`]'s value in a NUL-separated environment block.
pub(crate) fn find_marker(environ: &[u8]) -> Option<&str> {
    environ.split(|byte| *byte == 0).find_map(|entry| {
        let value = entry
            .strip_prefix(TREE_MARKER_VARIABLE.as_bytes())?
            .strip_prefix(b"=")?;
        std::str::from_utf8(value).ok()
    })
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_has_spaces_and_parentheses() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                pid: 4242,
                ppid: 1,
                pgrp: 4242,
                session: 4242,
                state: b'S',
                start_time: 987654,
            })
        );
    }

    #[test]
    fn reads_this_process() {
        let me = read_stat(std::process::id() as i32).expect("own stat");
        assert_eq!(me.pid, std::process::id() as i32);
        assert!(!me.is_dead());
        assert!(snapshot().iter().any(|stat| stat.pid == me.pid));
    }

    #[test]
    fn finds_the_marker_in_an_environment_block() {
        let environ = b"PATH=/bin\0EXEC_SERVER_TREE=1/2/3/\0HOME=/root\0";
        assert_eq!(find_marker(environ), Some("1/2/3/"));
        assert_eq!(find_marker(b"EXEC_SERVER_TREEX=1\0"), None);
    }
}
