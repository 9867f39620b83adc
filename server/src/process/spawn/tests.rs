//! Tests of [`spawn`] against real children: the ENOEXEC fallback, failures
//! before the exec (reported with their step, the child reaped), and the
//! state a child starts in (signal mask and dispositions, process group).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::{AsFd as _, OwnedFd};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::ExitStatus;

use pretty_assertions::assert_eq;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{WaitOptions, waitpid};

use super::*;

/// What a child printed (stdout and stderr) and how it ended.
#[derive(Debug)]
struct Ran {
    pid: i32,
    output: String,
    status: ExitStatus,
}

/// Runs `argv` (`argv[0]` the program's path) in `cwd` with `PATH` only,
/// leading its own process group, stdin `/dev/null`, stdout and stderr one
/// pipe; in the cgroup open as `cgroup` when given. Errors: `spawn`'s.
fn run(argv: &[&str], cwd: &Path, cgroup: Option<&OwnedFd>) -> io::Result<Ran> {
    run_with(argv, cwd, cgroup, clone3::available())
}

/// [`run`], trying `clone3` only when `use_clone3` (else the child is cloned
/// as where the kernel refuses `clone3`).
fn run_with(
    argv: &[&str],
    cwd: &Path,
    cgroup: Option<&OwnedFd>,
    use_clone3: bool,
) -> io::Result<Ran> {
    let env = BTreeMap::from([(OsString::from("PATH"), OsString::from("/usr/bin:/bin"))]);
    let image = ExecImage::new(
        Path::new(argv[0]),
        argv[0],
        argv[1..].iter().copied(),
        &env,
        cwd,
    )?;
    let stdin = OwnedFd::from(File::open("/dev/null")?);
    let (read, write) = pipe_with(PipeFlags::CLOEXEC)?;
    let setup = ChildSetup {
        image: &image,
        stdio: [stdin.as_fd(), write.as_fd(), write.as_fd()],
        leader: Leader::ProcessGroup,
        cgroup: cgroup.map(OwnedFd::as_fd),
    };
    // Tracked as the server's children are, so that the orphan reaper
    // (which other tests of this binary start) never reaps it first.
    let spawned = crate::process::reaper::spawn_tracked(|| {
        let pid = spawn_with(&setup, use_clone3)?;
        Ok((pid, pid.as_raw_pid().unsigned_abs()))
    });
    drop(write);
    let (pid, _) = spawned?;
    let mut output = String::new();
    // Waited for even when the read fails, so that no child is left behind
    // on the reaper's list of managed children.
    let read = File::from(read).read_to_string(&mut output);
    let waited = waitpid(Some(pid), WaitOptions::empty());
    crate::process::reaper::child_reaped(pid.as_raw_pid().unsigned_abs());
    read?;
    let (_, status) = waited?.expect("a status");
    Ok(Ran {
        pid: pid.as_raw_pid(),
        output,
        status: ExitStatus::from_raw(status.as_raw()),
    })
}

/// Runs `spawn_in_thread` on a thread named `name` (at most 15 bytes, the
/// length of a Linux thread name), whose name a child cloned there keeps
/// until it execs; returns its result and the zombie children of this
/// process with that name afterwards (there must be none: a failed spawn
/// reaps its child).
fn in_named_thread<T: Send + 'static>(
    name: &str,
    spawn_in_thread: impl FnOnce() -> T + Send + 'static,
) -> (T, Vec<i32>) {
    assert!(name.len() <= 15, "{name} is too long for a thread name");
    let result = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(spawn_in_thread)
        .expect("a thread")
        .join()
        .expect("the thread did not panic");
    let mut zombies = Vec::new();
    for task in std::fs::read_dir("/proc/self/task")
        .expect("tasks")
        .flatten()
    {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim_end() == name {
                zombies.push(pid.parse().expect("a pid"));
            }
        }
    }
    (result, zombies)
}

/// The field of `/proc/<pid>/status` named `name`, as a hexadecimal mask.
fn status_mask(status: &str, name: &str) -> u64 {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"));
    u64::from_str_radix(line.trim(), 16).expect("a hexadecimal mask")
}

#[test]
fn a_script_without_a_shebang_runs_under_sh() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let script = directory.path().join("script");
    std::fs::write(&script, "echo \"from the script: $1\"\n").expect("the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let ran = run(
        &[script.to_str().expect("a UTF-8 path"), "an argument"],
        directory.path(),
        None,
    )
    .expect("the shell runs the script");
    assert_eq!(ran.output, "from the script: an argument\n");
    assert_eq!(ran.status.code(), Some(0));
}

#[test]
fn a_missing_program_fails_with_its_errno_and_leaves_no_zombie() {
    let (error, zombies) = in_named_thread("spawn-missing", || {
        run(&["/no/such/program"], Path::new("/"), None).err()
    });
    let error = error.expect("no such program");
    assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{error}");
    assert_eq!(zombies, Vec::<i32>::new());
}

#[test]
fn a_file_that_is_not_executable_fails_with_eacces_and_leaves_no_zombie() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let file = directory.path().join("not-executable");
    std::fs::write(&file, "echo never\n").expect("the file");
    let path = file.to_str().expect("a UTF-8 path").to_owned();
    let (error, zombies) = in_named_thread("spawn-noexec", move || {
        run(&[&path], Path::new("/"), None).err()
    });
    let error = error.expect("not executable");
    assert_eq!(error.raw_os_error(), Some(libc::EACCES), "{error}");
    assert_eq!(zombies, Vec::<i32>::new());
}

#[test]
fn a_working_directory_removed_before_the_spawn_fails_in_the_child_and_leaves_no_zombie() {
    let directory = tempfile::tempdir().expect("a temporary directory");
    let gone = directory.path().join("gone");
    std::fs::create_dir(&gone).expect("the directory");
    std::fs::remove_dir(&gone).expect("removed");
    let (error, zombies) = in_named_thread("spawn-cwd-gone", move || {
        run(&["/bin/true"], &gone, None).err()
    });
    let error = error.expect("no working directory");
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
    assert!(
        error.to_string().starts_with("working directory "),
        "{error}"
    );
    assert_eq!(zombies, Vec::<i32>::new());
}

/// A directory that is no cgroup (so `clone3` refuses it, EBADF, and the
/// child joins the old way) holding a `cgroup.procs` that refuses every
/// write (ENOSPC), as a refused join does: a link to `/dev/full`.
fn refusing_cgroup() -> (tempfile::TempDir, OwnedFd) {
    let directory = tempfile::tempdir().expect("a directory");
    std::os::unix::fs::symlink("/dev/full", directory.path().join("cgroup.procs"))
        .expect("the link");
    let handle = OwnedFd::from(File::open(directory.path()).expect("the directory"));
    (directory, handle)
}

/// Runs `/bin/true` in the cgroup open as `cgroup`, from a thread named
/// `thread`; the cgroup must refuse it. Returns the error, once it is seen
/// to name the join and to leave no zombie.
fn refused_join(thread: &str, cgroup: OwnedFd) -> io::Error {
    let (error, zombies) = in_named_thread(thread, move || {
        run(&["/bin/true"], Path::new("/"), Some(&cgroup)).err()
    });
    let error = error.expect("the join fails");
    assert!(
        error
            .to_string()
            .starts_with("cannot join the process's cgroup: "),
        "{error}"
    );
    assert_eq!(zombies, Vec::<i32>::new());
    error
}

#[test]
fn a_refused_cgroup_join_fails_the_spawn_with_its_step_and_leaves_no_zombie() {
    let (_directory, cgroup) = refusing_cgroup();
    let error = refused_join("spawn-cgroup", cgroup);
    assert_eq!(error.kind(), io::ErrorKind::StorageFull, "{error}");
}

#[test]
fn a_contained_child_runs_in_its_cgroup_cloned_into_it_or_joining_it() {
    // Needs a cgroup v2 this test may create cgroups below (as root, say).
    let Ok(own) = crate::process::cgroup::own_cgroup_directory() else {
        return;
    };
    let directory = own.join(format!("spawn-test-{}", std::process::id()));
    if std::fs::create_dir(&directory).is_err() {
        return;
    }
    let _removed = RemovedCgroup(directory.clone());
    let handle = OwnedFd::from(File::open(&directory).expect("the cgroup"));
    let name = directory
        .file_name()
        .and_then(|name| name.to_str())
        .expect("a name")
        .to_owned();
    for use_clone3 in [true, false] {
        let ran = run_with(
            &["/bin/cat", "/proc/self/cgroup"],
            Path::new("/"),
            Some(&handle),
            use_clone3,
        );
        let ran = ran.expect("cat runs");
        assert!(ran.status.success(), "{ran:?}");
        let cgroup = ran
            .output
            .lines()
            .find_map(|line| line.strip_prefix("0::"))
            .unwrap_or_default()
            .to_owned();
        assert!(
            cgroup.ends_with(&format!("/{name}")),
            "use_clone3 {use_clone3}: the child ran in {cgroup:?}"
        );
    }
}

/// A test's cgroup, removed when dropped (its children were all reaped).
struct RemovedCgroup(std::path::PathBuf);

impl Drop for RemovedCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_cgroup_without_cgroup_procs_fails_the_spawn_before_any_child() {
    let directory = tempfile::tempdir().expect("a directory");
    let cgroup = OwnedFd::from(File::open(directory.path()).expect("the directory"));
    let error = refused_join("spawn-no-procs", cgroup);
    assert_eq!(error.kind(), io::ErrorKind::NotFound, "{error}");
}

#[test]
fn a_child_starts_with_no_signal_blocked_handled_or_ignored_but_what_it_inherited() {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};

    // Rust programs ignore SIGPIPE; the test blocks SIGUSR1 and SIGTERM in
    // the spawning thread: none of it may reach the child.
    let ((ran, parent_status), _) = in_named_thread("spawn-signals", || {
        let mut blocked = SigSet::empty();
        blocked.add(Signal::SIGUSR1);
        blocked.add(Signal::SIGTERM);
        pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None).expect("blocked");
        let own = std::fs::read_to_string("/proc/thread-self/status").expect("own status");
        // With `clone3` (the kernel resets the handlers) and without.
        let ran = [true, false].map(|use_clone3| {
            run_with(
                &["/bin/cat", "/proc/self/status"],
                Path::new("/"),
                None,
                use_clone3,
            )
        });
        (ran, own)
    });
    let sigpipe = 1 << (libc::SIGPIPE - 1);
    assert_eq!(
        status_mask(&parent_status, "SigIgn:") & sigpipe,
        sigpipe,
        "the test ignores SIGPIPE"
    );
    // Rust's runtime handles SIGSEGV and SIGBUS (stack overflows).
    assert_ne!(
        status_mask(&parent_status, "SigCgt:"),
        0,
        "the test handles no signal"
    );
    // A kernel that has `clone3` took the one above: nothing turned it off.
    if cfg!(target_arch = "x86_64") && kernel_takes_clone3() {
        assert!(clone3::available(), "clone3 was turned off");
    }
    for ran in ran {
        let ran = ran.expect("cat runs");
        assert_eq!(status_mask(&ran.output, "SigBlk:"), 0, "{}", ran.output);
        assert_eq!(status_mask(&ran.output, "SigCgt:"), 0, "{}", ran.output);
        assert_eq!(
            status_mask(&ran.output, "SigIgn:"),
            status_mask(&parent_status, "SigIgn:") & !sigpipe,
            "{}",
            ran.output
        );
    }
}

/// Whether this kernel, and any seccomp filter, let `clone3` through with
/// the spawn's arguments: Linux 5.7 or later (5.3 and 5.4 refuse
/// `CLONE_CLEAR_SIGHAND` with EINVAL, 5.5 and 5.6 the `clone_args` that
/// carry a cgroup with E2BIG, either of which rightly turns `clone3` off),
/// and a call with no arguments gets EINVAL (too small) from the kernel
/// itself, not ENOSYS or EPERM (missing or filtered).
#[allow(unsafe_code)]
fn kernel_takes_clone3() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|number| number.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version < (5, 7) {
        return false;
    }
    // SAFETY: a size of 0 makes the kernel refuse before reading anything.
    let result = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0_usize) };
    result == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// The process group and session fields of a `/proc/PID/stat` line.
///
/// Read from /proc rather than `getsid`: in a PID namespace whose session
/// leader lives outside it (a CI container) `getsid` answers 0, and /proc
/// reports both processes as the same namespace sees them.
fn group_and_session(stat: &str) -> Vec<i32> {
    let after_name = stat.rsplit_once(')').expect("a stat line").1;
    after_name
        .split_whitespace()
        .skip(2)
        .take(2)
        .map(|field| field.parse().expect("a number"))
        .collect()
}

#[test]
fn a_pipe_child_leads_a_process_group_of_its_own_in_the_servers_session() {
    let ran = run(&["/bin/cat", "/proc/self/stat"], Path::new("/"), None).expect("cat runs");
    let own = std::fs::read_to_string("/proc/self/stat").expect("own stat");
    let own_session = group_and_session(&own)[1];
    assert_eq!(
        group_and_session(&ran.output),
        [ran.pid, own_session],
        "{}",
        ran.output
    );
}
