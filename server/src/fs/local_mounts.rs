//! Whether every filesystem mounted in the server's mount namespace is one
//! that answers a path lookup from memory or a local disk, so that a
//! metadata call (`stat`, `realpath`) cannot wait on a network, a FUSE
//! daemon or an automounter: then `pool::run_metadata` does it on the
//! thread that read the request instead of handing it to the fs pool and
//! back (two thread wake-ups, most of a round trip's time).
//!
//! The answer covers the whole namespace, not the path's own mount: a
//! symlink or `..` can lead a lookup anywhere, so one NFS, FUSE, 9p or
//! autofs mount anywhere sends every call to the pool, as before. The mount
//! table is read from `/proc/self/mountinfo` once and again after the
//! kernel says it changed: `poll(2)` on an open mountinfo file reports
//! `POLLPRI` once for every change since the last poll (proc(5), "/proc/pid/
//! mounts"), one cheap syscall per call. A mount made between that poll
//! and the lookup is not seen; the pool's deadline does not cover such a
//! call.

use std::fs::File;
use std::sync::{LazyLock, Mutex};

use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::sync::lock;

/// Where the kernel lists this process's mounts (proc(5)).
const MOUNTINFO: &str = "/proc/self/mountinfo";

/// The filesystem types whose lookups never leave the machine's memory and
/// local block devices. Anything else (nfs, cifs, 9p, virtiofs, fuse.*,
/// autofs, ceph, ...) counts as possibly slow without bound.
const LOCAL_TYPES: &[&str] = &[
    "bpf",
    "btrfs",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "erofs",
    "ext2",
    "ext3",
    "ext4",
    "f2fs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "vfat",
    "xfs",
];

/// The mount table's verdict and the file polled for its changes.
struct MountWatch {
    /// An open mountinfo whose `POLLPRI` says the table changed; `None`
    /// when it cannot be opened (then nothing is local).
    file: Option<File>,
    /// Whether every mount's type is in [`LOCAL_TYPES`], as last read.
    all_local: bool,
}

/// The server's one watch, opened on first use.
static WATCH: LazyLock<Mutex<MountWatch>> = LazyLock::new(|| {
    // Opened before the table is read: a change in between is then seen
    // by the first poll.
    let file = File::open(MOUNTINFO).ok();
    let all_local = file.is_some() && read_all_local();
    Mutex::new(MountWatch { file, all_local })
});

/// Whether a metadata lookup cannot wait on anything but memory and local
/// disks now: every mount in the namespace has a type in [`LOCAL_TYPES`].
/// False when the mount table cannot be read or polled.
pub(super) fn all_mounts_local() -> bool {
    let mut watch = lock(&WATCH);
    let Some(file) = &watch.file else {
        return false;
    };
    let mut fds = [PollFd::new(file, PollFlags::PRI)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let changed = match poll(&mut fds, Some(&now)) {
        Ok(0) => false,
        Ok(_) => true,
        Err(error) => {
            tracing::debug!(%error, "cannot poll the mount table; fs metadata calls use the pool");
            watch.file = None;
            watch.all_local = false;
            return false;
        }
    };
    if changed {
        watch.all_local = read_all_local();
    }
    watch.all_local
}

/// Reads the mount table: whether every mount's type is local.
fn read_all_local() -> bool {
    match std::fs::read_to_string(MOUNTINFO) {
        Ok(table) => table_all_local(&table),
        Err(error) => {
            tracing::debug!(%error, "cannot read the mount table; fs metadata calls use the pool");
            false
        }
    }
}

/// Whether every line of a mountinfo text names a type in [`LOCAL_TYPES`]:
/// the type is the field after the ` - ` separator (proc(5)). A line
/// without one counts as not local.
fn table_all_local(table: &str) -> bool {
    table.lines().all(|line| {
        line.split_once(" - ")
            .and_then(|(_, tail)| tail.split_whitespace().next())
            .is_some_and(|fs_type| LOCAL_TYPES.contains(&fs_type))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINER: &str = "\
1187 1009 0:110 / / rw,relatime master:522 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1188 1187 0:113 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
1189 1187 0:114 / /dev rw,nosuid - tmpfs tmpfs rw,size=65536k,mode=755
1190 1189 0:115 / /dev/pts rw,nosuid,noexec,relatime - devpts devpts rw,gid=5,mode=620
1194 1187 0:29 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw
1200 1187 254:1 /data /work rw,relatime - ext4 /dev/vda rw
";

    #[test]
    fn a_container_of_local_filesystems_is_all_local() {
        assert!(table_all_local(CONTAINER));
    }

    #[test]
    fn one_network_fuse_or_automount_anywhere_is_not() {
        for extra in [
            "1300 1187 0:50 / /mnt/share rw,relatime - nfs4 server:/export rw,vers=4.2",
            "1300 1187 0:51 / /home/me/drive rw,nosuid,nodev - fuse.sshfs me@host: rw",
            "1300 1187 0:52 / /proc/sys/fs/binfmt_misc rw,relatime - autofs systemd-1 rw",
            "1300 1187 0:53 / /workspace rw,relatime - 9p trans=virtio rw",
            "a line without the separator",
        ] {
            let table = format!("{CONTAINER}{extra}\n");
            assert!(!table_all_local(&table), "{extra}");
        }
    }
}
