//! What the cloned child runs between the clone and the exec, on its own
//! stack but in the server's memory (CLONE_VM): raw system calls only.
//!
//! The child shares every page of the server, including the heap and the
//! locks of every other thread, and the thread it was cloned from is
//! suspended until the exec or the exit (CLONE_VFORK). So the child
//! allocates nothing, takes no lock, cannot panic (no indexing, no
//! `unwrap`, no formatting) and touches no Rust std I/O: it reads the
//! [`ChildPlan`] prepared before the clone, makes async-signal-safe libc
//! calls (each a plain system call on glibc and musl), and on failure
//! stores its errno in the plan for the parent and `_exit`s.

use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;

/// The exit status of a child that failed before its exec (as a shell
/// reports a command it cannot run); the parent reaps it unseen.
const FAILED_BEFORE_EXEC: c_int = 127;

/// How the child leaves the server's process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leader {
    /// `setpgid(0, 0)`: a process group of its own (pipe processes), so a
    /// signal to the group reaches its children too.
    ProcessGroup,
    /// `setsid()` then `ioctl(0, TIOCSCTTY, 0)`: a session of its own with
    /// its stdin (a PTY's slave) as controlling terminal, for SIGWINCH on a
    /// resize, SIGINT on ^C and job control.
    SessionOnStdin,
}

/// The step of the child's setup that failed, which the parent names in
/// its error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// Installing stdin, stdout and stderr.
    Stdio = 1,
    /// Leading a process group or a session on the terminal.
    Leader = 2,
    /// Joining the containment cgroup.
    Cgroup = 3,
    /// Changing to the working directory.
    Cwd = 4,
    /// Running the program (or the shell for it).
    Exec = 5,
}

impl Step {
    /// The step stored as `raw` by [`ChildPlan::fail`].
    pub(super) fn from_raw(raw: i32) -> Self {
        match raw {
            1 => Self::Stdio,
            2 => Self::Leader,
            3 => Self::Cgroup,
            4 => Self::Cwd,
            _ => Self::Exec,
        }
    }
}

/// Everything the child needs, as raw values built before the clone, and
/// where it reports a failure. The parent keeps it (and what its pointers
/// point to) alive and untouched until the clone returns.
pub(super) struct ChildPlan {
    /// The program's path.
    pub program: *const c_char,
    /// Its NULL-terminated argument vector.
    pub argv: *const *const c_char,
    /// Its NULL-terminated environment.
    pub envp: *const *const c_char,
    /// `/bin/sh`, for a program without a known format (ENOEXEC).
    pub shell: *const c_char,
    /// The shell's NULL-terminated argument vector for that case.
    pub shell_argv: *const *const c_char,
    /// The working directory.
    pub cwd: *const c_char,
    /// The descriptors that become 0, 1 and 2; each above 2, so installing
    /// one never closes another that is still to be installed.
    pub stdio: [c_int; 3],
    /// How the child leaves the server's process group.
    pub leader: Leader,
    /// The containment cgroup's `cgroup.procs` open for writing, or -1.
    pub cgroup_procs: c_int,
    /// Whether the child was cloned with its handled signals already at
    /// their default (`CLONE_CLEAR_SIGHAND`), so only SIGPIPE is left.
    pub handlers_cleared: bool,
    /// The [`Step`] that failed, 0 while none did.
    pub failed_step: AtomicI32,
    /// The errno of the failure, 0 while none happened.
    pub errno: AtomicI32,
}

impl ChildPlan {
    /// Records the failure of `step` with the current errno and ends the
    /// child.
    fn fail(&self, step: Step) -> ! {
        let errno = errno();
        self.failed_step.store(step as i32, Ordering::Relaxed);
        // Never 0, so the parent always sees that something failed.
        self.errno.store(
            if errno == 0 { libc::EINVAL } else { errno },
            Ordering::Relaxed,
        );
        // SAFETY: `_exit` ends the child without running anything of the
        // server's (no atexit handlers, no stdio flush).
        #[allow(unsafe_code)]
        unsafe {
            libc::_exit(FAILED_BEFORE_EXEC)
        }
    }
}

/// The entry point of the cloned child; `plan` is the [`ChildPlan`].
/// Never returns: it execs or `_exit`s.
///
/// # Safety
/// `plan` points to a live `ChildPlan` whose pointers are valid C strings
/// and NULL-terminated arrays, and the caller cloned with CLONE_VM and
/// CLONE_VFORK so that they stay valid until the exec.
#[allow(unsafe_code)]
pub(super) extern "C" fn run(plan: *mut libc::c_void) -> c_int {
    // SAFETY: the parent passes a pointer to its `ChildPlan`, which it keeps
    // alive and does not touch while this child runs (it is suspended).
    let plan = unsafe { &*plan.cast_const().cast::<ChildPlan>() };
    // SAFETY: each call below is an async-signal-safe libc function given
    // valid arguments: descriptors the parent opened, C strings and arrays
    // of the plan, structures on this stack.
    unsafe {
        if plan.handlers_cleared {
            reset_sigpipe();
        } else {
            reset_signal_dispositions();
        }
        for (target, source) in (0..).zip(plan.stdio) {
            if libc::dup2(source, target) < 0 {
                plan.fail(Step::Stdio);
            }
        }
        let led = match plan.leader {
            Leader::ProcessGroup => libc::setpgid(0, 0) == 0,
            Leader::SessionOnStdin => {
                libc::setsid() >= 0 && libc::ioctl(0, libc::TIOCSCTTY, 0) == 0
            }
        };
        if !led {
            plan.fail(Step::Leader);
        }
        if plan.cgroup_procs >= 0 && libc::write(plan.cgroup_procs, b"0".as_ptr().cast(), 1) != 1 {
            plan.fail(Step::Cgroup);
        }
        if libc::chdir(plan.cwd) != 0 {
            plan.fail(Step::Cwd);
        }
        // The signals arrive from here on, with the defaults just set (the
        // raw call: glibc's would keep its own two signals as they are).
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            std::ptr::from_ref(&empty),
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        );
        libc::execve(plan.program, plan.argv, plan.envp);
        if errno() == libc::ENOEXEC {
            libc::execve(plan.shell, plan.shell_argv, plan.envp);
        }
        plan.fail(Step::Exec)
    }
}

/// Sets SIGPIPE back to its default, for a child whose handled signals the
/// kernel reset already (see [`reset_signal_dispositions`]).
///
/// # Safety
/// As [`reset_signal_dispositions`].
#[allow(unsafe_code)]
unsafe fn reset_sigpipe() {
    // SAFETY: the call changes the child's own disposition.
    unsafe {
        libc::sigaction(libc::SIGPIPE, &default_action(), std::ptr::null_mut());
    }
}

/// A `sigaction` that sets a signal to its default (`SIG_DFL`, no mask).
#[allow(unsafe_code)]
fn default_action() -> libc::sigaction {
    // SAFETY: an all-zero `sigaction` is a valid value of the C struct;
    // `sigemptyset` writes the mask inside it.
    unsafe {
        let mut default: libc::sigaction = std::mem::zeroed();
        default.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut default.sa_mask);
        default
    }
}

/// Sets every signal the server handles back to its default, and SIGPIPE
/// (which Rust programs ignore) too, as std does in its children. Until the
/// exec, a handler of the server would run on this child's stack in the
/// server's memory; after it, a program expects SIGPIPE to kill it. Ignored
/// signals other than SIGPIPE stay ignored, as they do across `fork` and
/// `exec` (the reaper restores the ones a client may send, see `reaper`).
///
/// # Safety
/// Only for the cloned child: it changes the dispositions of the calling
/// process, which for the child (cloned without CLONE_SIGHAND) are its own.
#[allow(unsafe_code)]
unsafe fn reset_signal_dispositions() {
    // SAFETY: `sigaction` with a valid signal number and structures on this
    // stack; a number the system reserves (glibc's internal signals,
    // SIGKILL, SIGSTOP) is refused with EINVAL, which changes nothing.
    unsafe {
        let default = default_action();
        for signal in 1..signal_count() {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            let handled =
                current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN;
            if handled || signal == libc::SIGPIPE {
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}

/// One more than the highest signal number (`_NSIG`): 65 on Linux.
fn signal_count() -> c_int {
    libc::SIGRTMAX() + 1
}

/// The calling thread's errno (shared with the suspended parent thread in
/// the child, which is harmless: that thread reads no errno before it runs
/// again and makes its own calls).
fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}
