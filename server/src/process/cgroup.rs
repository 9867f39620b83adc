//! cgroup v2 containment: every managed process runs in a cgroup of its own,
//! and killing its tree is one write of `1` to that cgroup's `cgroup.kill`
//! (Linux 5.14+), which SIGKILLs every process in it and in the cgroups
//! below it, including those forked while the kill runs. A process cannot
//! leave its cgroup by changing its environment, process group, session or
//! parent; only a write to another cgroup's `cgroup.procs` moves it, which
//! needs write access to the cgroup filesystem.
//!
//! The hierarchy, below the cgroup the server itself runs in:
//! `exec-server.<server id>/t<table>/p<process serial>` (a cgroup reused
//! from a closed process keeps that process's serial, see `cgroup_spares`;
//! the id of the tree markers: the pid and 32 random bits, unique across
//! PID namespaces). A table's
//! directory is killed when its session ends (leftovers of processes that
//! already closed included), the server's directory when the server shuts
//! down or dies (the guardian process does it then, see `guardian.rs`).
//! Directories are removed once empty, and the server's own directory when
//! it shuts down or dies (by its guardian). A server never touches another
//! server's directory: from outside, an idle live server (or one in another
//! PID namespace) looks the same as a dead one, so only a server killed
//! together with its guardian leaves an (empty) directory behind.
//!
//! A child is born in its cgroup (`clone3` with `CLONE_INTO_CGROUP`, Linux
//! 5.7+, given the cgroup's directory the server opened before the clone);
//! where `clone3` is refused it joins between its clone and its exec by
//! writing `0` ("the writing process") to the cgroup's `cgroup.procs`
//! (see `spawn`). Either way it runs no instruction of the program outside it.

use std::fs;
use std::io::{self, Write as _};
use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The prefix of the name of a server's own cgroup directory.
const SERVER_DIRECTORY_PREFIX: &str = "exec-server.";

/// The server's cgroup directory, once [`init`] found cgroup v2 usable.
static SERVER_DIRECTORY: OnceLock<PathBuf> = OnceLock::new();

/// Sets up the server's cgroup directory below the cgroup this process runs
/// in, and removes those of servers that died. Returns why cgroup v2 cannot
/// be used here (no cgroup v2 mount, not writable, no `cgroup.kill`) as a
/// sentence; calling it again returns the first outcome.
pub(crate) fn init() -> Result<(), String> {
    static OUTCOME: OnceLock<Result<(), String>> = OnceLock::new();
    OUTCOME
        .get_or_init(|| {
            let directory = create_server_directory()?;
            // Cannot fail: only this initialization sets it.
            let _ = SERVER_DIRECTORY.set(directory);
            Ok(())
        })
        .clone()
}

/// The server's cgroup directory, when cgroup v2 containment is active.
pub(crate) fn server_directory() -> Option<&'static Path> {
    SERVER_DIRECTORY.get().map(PathBuf::as_path)
}

/// The cgroup directory of the table numbered `table` (not created).
pub(crate) fn table_directory(table: u64) -> Option<PathBuf> {
    server_directory().map(|server| server.join(format!("t{table}")))
}

/// A managed process's cgroup, created before its spawn.
#[derive(Debug)]
pub(crate) struct ProcessCgroup {
    /// The cgroup's directory.
    pub directory: PathBuf,
    /// The directory itself, open (read-only, close-on-exec), for the
    /// child to be cloned into or to join through its `cgroup.procs`.
    handle: OwnedFd,
}

impl ProcessCgroup {
    /// Creates the cgroup of process `serial` of table `table` (and the
    /// table's, the first time). `None` when cgroup containment is off.
    /// Errors: the directory cannot be created (for example the cgroup limit
    /// `cgroup.max.descendants` was reached) or opened.
    pub(crate) fn create(table: u64, serial: u64) -> io::Result<Option<Self>> {
        let Some(table_directory) = table_directory(table) else {
            return Ok(None);
        };
        let directory = table_directory.join(format!("p{serial}"));
        fs::create_dir_all(&directory)?;
        Self::open(directory.clone())
            .inspect_err(|_| {
                let _ = fs::remove_dir(&directory);
            })
            .map(Some)
    }

    /// The existing cgroup `directory`, opened. Errors: the open's (ENOENT
    /// when the cgroup is gone).
    pub(crate) fn open(directory: PathBuf) -> io::Result<Self> {
        // std opens close-on-exec.
        let handle = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY)
            .open(&directory)?;
        Ok(Self {
            directory,
            handle: handle.into(),
        })
    }

    /// The cgroup's directory, open (close-on-exec): what `clone3`'s
    /// `CLONE_INTO_CGROUP` takes, and where a child that could not be
    /// cloned into it finds the `cgroup.procs` to join through.
    pub(crate) fn handle(&self) -> BorrowedFd<'_> {
        self.handle.as_fd()
    }
}

/// SIGKILLs every process in the cgroup `directory` and below. A cgroup that
/// is already gone is no error. Errors: the write to `cgroup.kill` failed.
pub(crate) fn kill(directory: &Path) -> io::Result<()> {
    // A cgroup removed before the open, or between the open and the write
    // (the kernel then answers ENOENT or, for one being torn down, ENODEV),
    // holds nothing left to kill.
    let killed = fs::OpenOptions::new()
        .write(true)
        .open(directory.join("cgroup.kill"))
        .and_then(|mut file| file.write_all(b"1"));
    match killed {
        Err(error)
            if error.kind() == io::ErrorKind::NotFound
                || error.raw_os_error() == Some(nix::libc::ENODEV) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Whether any live process is in the cgroup `directory` or below (zombies
/// do not count). A cgroup that is gone is empty; one that cannot be read
/// (no descriptor left) counts as populated, so a kill is not taken as done
/// before it was seen to be.
pub(crate) fn is_populated(directory: &Path) -> bool {
    match populated(directory) {
        Ok(populated) => populated == Some(true),
        Err(error) => error.kind() != io::ErrorKind::NotFound,
    }
}

/// The `populated` line of the cgroup `directory`'s `cgroup.events`: whether
/// a live process is in it or below (`None` when the file has no such
/// line). Errors: the read's (ENOENT when the cgroup is gone).
pub(crate) fn populated(directory: &Path) -> io::Result<Option<bool>> {
    let events = fs::read_to_string(directory.join("cgroup.events"))?;
    Ok(events
        .lines()
        .find_map(|line| match line.strip_prefix("populated ")?.trim() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }))
}

/// Removes the cgroup `directory` and the cgroups below it, deepest first.
/// A cgroup that still has processes stays (the kernel refuses with EBUSY),
/// and so do its ancestors.
pub(crate) fn remove(directory: &Path) {
    if let Ok(entries) = fs::read_dir(directory) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove(&entry.path());
            }
        }
    }
    match fs::remove_dir(directory) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => tracing::debug!(%error, directory = %directory.display(), "cgroup kept"),
    }
}

/// Finds where this process's cgroup v2 is mounted, creates
/// `exec-server.<pid>` in it and checks it can kill. Errors: why not.
fn create_server_directory() -> Result<PathBuf, String> {
    let own = own_cgroup_directory()?;
    let directory = own.join(format!(
        "{SERVER_DIRECTORY_PREFIX}{}",
        super::identity::server_id()
    ));
    fs::create_dir(&directory)
        .map_err(|error| format!("cannot create the cgroup {}: {error}", directory.display()))?;
    let refuse = |reason: String| {
        let _ = fs::remove_dir(&directory);
        Err(reason)
    };
    if !directory.join("cgroup.kill").exists() {
        return refuse(String::from(
            "the kernel has no cgroup.kill (Linux 5.14 or later is needed)",
        ));
    }
    // A child moves from the server's cgroup to its own: both `cgroup.procs`
    // must be writable (a delegated subtree may allow only one).
    for procs in [own.join("cgroup.procs"), directory.join("cgroup.procs")] {
        if let Err(error) = nix::unistd::access(&procs, nix::unistd::AccessFlags::W_OK) {
            return refuse(format!("cannot write {}: {error}", procs.display()));
        }
    }
    Ok(directory)
}

/// The directory of the cgroup v2 this process runs in: the `0::PATH` line
/// of `/proc/self/cgroup` below the cgroup2 mount of `/proc/self/mountinfo`.
pub(super) fn own_cgroup_directory() -> Result<PathBuf, String> {
    let cgroups = fs::read_to_string("/proc/self/cgroup")
        .map_err(|error| format!("cannot read /proc/self/cgroup: {error}"))?;
    let own = cgroups
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| String::from("this process is in no cgroup v2 hierarchy"))?;
    let mounts = fs::read_to_string("/proc/self/mountinfo")
        .map_err(|error| format!("cannot read /proc/self/mountinfo: {error}"))?;
    let mount =
        cgroup2_mount(&mounts).ok_or_else(|| String::from("no cgroup2 filesystem is mounted"))?;
    let directory = mount.join(own.trim_start_matches('/'));
    if !directory.is_dir() {
        return Err(format!(
            "this process's cgroup {} is not visible in the mount",
            directory.display()
        ));
    }
    Ok(directory)
}

/// The mount point of the first cgroup2 filesystem in a `mountinfo` text
/// whose root is the namespace's root (`/`), so that `/proc/self/cgroup`'s
/// paths are relative to it.
fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        // Fields: id, parent, major:minor, root, mount point, options,
        // optional fields..., "-", filesystem type, source, super options.
        let (before, after) = line.split_once(" - ")?;
        if after.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mut fields = before.split_whitespace();
        let root = fields.nth(3)?;
        let mount_point = fields.next()?;
        (root == "/").then(|| PathBuf::from(unescape_mount_path(mount_point)))
    })
}

/// Undoes the octal escapes (`\040` for a space) of a mountinfo path.
fn unescape_mount_path(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes
            .get(index + 1..index + 4)
            .filter(|digits| bytes[index] == b'\\' && digits.iter().all(u8::is_ascii_digit))
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                index += 4;
            }
            None => {
                out.push(bytes[index]);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_with_the_namespace_root() {
        let mountinfo = "\
25 30 0:22 / /sys rw - sysfs sysfs rw
35 25 0:30 /sub /sys/fs/cgroup/elsewhere rw - cgroup2 cgroup2 rw
36 25 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
37 25 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup2_mount("37 25 0:32 / /x rw - cgroup cgroup rw\n"),
            None
        );
    }

    #[test]
    fn a_cgroup_that_is_gone_needs_no_kill() {
        let gone = Path::new("/sys/fs/cgroup/exec-server-test-no-such-cgroup");
        assert!(kill(gone).is_ok());
        assert!(!is_populated(gone));
    }

    #[test]
    fn unescapes_mount_paths() {
        assert_eq!(unescape_mount_path(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape_mount_path(r"/mnt/\x"), r"/mnt/\x");
        assert_eq!(unescape_mount_path(r"/mnt/\04"), r"/mnt/\04");
    }
}
