//! Starting a child without `fork`: `clone(CLONE_VM | CLONE_VFORK)` (or
//! `clone3`, see there) on a stack of its own, as glibc's `posix_spawn`
//! does, with the setup the server needs done in the child before its exec
//! (stdio, a process group or a session on the terminal, the working
//! directory, signal dispositions and mask; where `clone3` is refused,
//! joining the containment cgroup too).
//!
//! Why not std's `Command`: any `pre_exec` hook (joining the cgroup, the
//! PTY's `setsid` and `TIOCSCTTY`) makes std `fork` the whole server, which
//! copies its page tables, makes every runtime worker fault on copy-on-write
//! afterwards, and has the child tear the copy down again at its exec; that
//! made a spawn three times as costly as `posix_spawn`'s shared-memory
//! clone. Here the child borrows the server's memory until it execs, the
//! calling thread waiting meanwhile (CLONE_VFORK), so nothing is copied.
//!
//! # What makes the shared memory safe
//! - Everything the child reads is prepared before the clone
//!   ([`ExecImage`], the descriptors), and it writes only to its own stack
//!   and the two failure fields of its [`child::ChildPlan`].
//! - The child runs only raw async-signal-safe calls (see `child`): no
//!   allocation and no lock, which another thread could hold forever from
//!   the child's point of view.
//! - All signals are blocked in the calling thread around the clone, so the
//!   child starts with them blocked and no handler of the server can run on
//!   its stack in the server's memory; the child sets handled signals back
//!   to their defaults before it unblocks them (for itself only: it is
//!   cloned without CLONE_SIGHAND) just before the exec.
//! - The calling thread is suspended until the child exec'd or exited, so
//!   the plan, the image and the stack outlive their use.
//!
//! Where the kernel allows, the child is cloned with `clone3` (see there):
//! straight into its cgroup when contained, and with the server's signal
//! handlers already reset; elsewhere with `clone`, and it joins its cgroup
//! and resets the handlers itself before its exec.
//!
//! A failure before the exec (a missing working directory, a refused cgroup
//! join, an exec error) is stored by the child in the plan, which the
//! parent reads once the clone returns; it then reaps the child (which
//! `_exit`ed) itself, so no zombie is left, and returns the error.

mod child;
mod clone3;
mod image;
mod stack;

use std::io;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::libc;
use rustix::process::Pid;

pub(crate) use child::Leader;
pub(crate) use image::ExecImage;

use child::{ChildPlan, Step};
use stack::ChildStack;

/// How one child is set up before it runs its program.
pub(crate) struct ChildSetup<'a> {
    /// What it execs, and where.
    pub image: &'a ExecImage,
    /// Its stdin, stdout and stderr (the same descriptor may appear more
    /// than once, as a PTY's slave does).
    pub stdio: [BorrowedFd<'a>; 3],
    /// How it leaves the server's process group.
    pub leader: Leader,
    /// The directory of the cgroup it runs in, when contained: it is
    /// cloned into it, or where the kernel refuses `clone3`, joins it
    /// through its `cgroup.procs` before its exec.
    pub cgroup: Option<BorrowedFd<'a>>,
}

/// Starts a child as `setup` says and returns its pid once it exec'd.
/// Blocking (for as long as the child takes to reach its exec). The caller
/// waits for the child, or else it stays a zombie.
///
/// Errors: the clone's (EAGAIN, ENOMEM), or what failed in the child before
/// its exec, with the kernel's errno: the program (ENOENT, EACCES,
/// ENOEXEC...), the working directory (`working directory ...: ...`), the
/// cgroup join (`cannot join the process's cgroup: ...`), installing stdio,
/// or leading a process group or a session on the terminal.
pub(crate) fn spawn(setup: &ChildSetup<'_>) -> io::Result<Pid> {
    spawn_with(setup, clone3::available())
}

/// [`spawn`], trying `clone3` only when `use_clone3` (else the child is
/// cloned as where `clone3` is refused).
fn spawn_with(setup: &ChildSetup<'_>, use_clone3: bool) -> io::Result<Pid> {
    // A descriptor numbered 0, 1 or 2 could be overwritten by installing
    // another as stdio before it is used: such ones are copied above 2.
    let [stdin, stdout, stderr] = setup.stdio;
    let lifted = [
        lift_above_stdio(stdin)?,
        lift_above_stdio(stdout)?,
        lift_above_stdio(stderr)?,
    ];
    let stdio = lifted.each_ref().map(Lifted::as_raw);
    let mut plan = ChildPlan {
        program: setup.image.program(),
        argv: setup.image.argv(),
        envp: setup.image.envp(),
        shell: setup.image.shell(),
        shell_argv: setup.image.shell_argv(),
        cwd: setup.image.cwd(),
        stdio,
        leader: setup.leader,
        cgroup_procs: -1,
        handlers_cleared: false,
        failed_step: AtomicI32::new(0),
        errno: AtomicI32::new(0),
    };
    let stack = ChildStack::take()?;
    let pid = clone_new_child(&mut plan, &stack, setup.cgroup, use_clone3);
    // Whatever the clone's outcome, no child runs on the stack any more.
    stack.keep();
    let pid = pid?;
    let errno = plan.errno.load(Ordering::Relaxed);
    if errno == 0 {
        return Ok(pid);
    }
    reap_failed_child(pid);
    let error = io::Error::from_raw_os_error(errno);
    Err(
        match Step::from_raw(plan.failed_step.load(Ordering::Relaxed)) {
            Step::Exec => error,
            Step::Cwd => io::Error::new(
                error.kind(),
                format!("working directory {}: {error}", setup.image.cwd_display()),
            ),
            Step::Cgroup => io::Error::new(
                error.kind(),
                format!("cannot join the process's cgroup: {error}"),
            ),
            Step::Stdio => io::Error::new(
                error.kind(),
                format!("cannot install the child's stdio: {error}"),
            ),
            Step::Leader => io::Error::new(
                error.kind(),
                match setup.leader {
                    Leader::ProcessGroup => format!("cannot make a process group: {error}"),
                    Leader::SessionOnStdin => {
                        format!("cannot lead a session on the terminal: {error}")
                    }
                },
            ),
        },
    )
}

/// Clones the child that runs `plan` on `stack` (in the cgroup open as
/// `cgroup`, when given) with `clone3` when `use_clone3` and the kernel
/// takes it; otherwise with [`clone_child`], the child then joining the
/// cgroup through its `cgroup.procs`, opened here. Returns its pid once it
/// exec'd or exited. Errors: the clone's; `cannot join the process's
/// cgroup: ...` when the `cgroup.procs` cannot be opened (no child was made
/// then).
#[allow(unsafe_code)]
fn clone_new_child(
    plan: &mut ChildPlan,
    stack: &ChildStack,
    cgroup: Option<BorrowedFd<'_>>,
    use_clone3: bool,
) -> io::Result<Pid> {
    if use_clone3 {
        plan.handlers_cleared = true;
        let cloned = {
            let _blocked = SignalsBlocked::new()?;
            // SAFETY: as in `clone_child`: `child::run` is made for this
            // clone and gets `plan`, which lives and is left alone by this
            // (suspended) thread until the child exec'd or exited; the
            // stack is this thread's own; every signal is blocked.
            unsafe { clone3::clone(cgroup, stack, child::run, std::ptr::from_mut(plan).cast()) }
        };
        match cloned {
            Ok(pid) => return Ok(pid),
            // No child was made: the old way, which fails on its own terms
            // when the cgroup itself refuses the child.
            Err(error) => clone3::note_failure(&error),
        }
        plan.handlers_cleared = false;
    }
    let Some(cgroup) = cgroup else {
        return clone_child(plan, stack);
    };
    let procs = rustix::fs::openat(
        cgroup,
        "cgroup.procs",
        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|errno| {
        let error = io::Error::from(errno);
        io::Error::new(
            error.kind(),
            format!("cannot join the process's cgroup: {error}"),
        )
    })?;
    let procs = lift_above_stdio(procs.as_fd())?;
    plan.cgroup_procs = procs.as_raw();
    clone_child(plan, stack)
}

/// Clones the child that runs `plan` on `stack`, with every signal blocked
/// in this thread meanwhile; returns its pid once it exec'd or exited.
/// Errors: the clone's.
#[allow(unsafe_code)]
fn clone_child(plan: &ChildPlan, stack: &ChildStack) -> io::Result<Pid> {
    let _blocked = SignalsBlocked::new()?;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD;
    // SAFETY: `child::run` is the entry point for exactly this clone: it
    // gets a pointer to `plan`, which lives (and is not touched by this
    // thread, which the kernel suspends: CLONE_VFORK) until the child
    // exec'd or exited; `stack` is a mapping of its own with a guard page,
    // unused by anyone else; every signal is blocked, so nothing of the
    // server runs on that stack. Without CLONE_SIGHAND the child's
    // signal dispositions are its own copy.
    let pid = unsafe {
        libc::clone(
            child::run,
            stack.top(),
            flags,
            std::ptr::from_ref(plan).cast_mut().cast(),
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Pid::from_raw(pid).ok_or_else(|| io::Error::other("clone returned pid 0 in the parent"))
}

/// Waits for a child that failed before its exec (it `_exit`ed already, or
/// is about to): the caller never registered it, so it would stay a zombie.
fn reap_failed_child(pid: Pid) {
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Err(rustix::io::Errno::INTR) => {}
            Ok(_) | Err(_) => return,
        }
    }
}

/// A descriptor for the child, above 2: borrowed when it already was, a
/// close-on-exec copy otherwise.
enum Lifted<'a> {
    /// Already above 2.
    Borrowed(BorrowedFd<'a>),
    /// A copy above 2, closed when dropped (after the clone returned).
    Copied(OwnedFd),
}

impl Lifted<'_> {
    /// Its number.
    fn as_raw(&self) -> i32 {
        match self {
            Self::Borrowed(fd) => fd.as_raw_fd(),
            Self::Copied(fd) => fd.as_raw_fd(),
        }
    }
}

/// `fd` as a descriptor above 2. Errors: the copy failed (EMFILE).
fn lift_above_stdio(fd: BorrowedFd<'_>) -> io::Result<Lifted<'_>> {
    if fd.as_raw_fd() > 2 {
        return Ok(Lifted::Borrowed(fd));
    }
    let copy = rustix::io::fcntl_dupfd_cloexec(fd.as_fd(), 3)?;
    Ok(Lifted::Copied(copy))
}

/// Every signal blocked in the calling thread; the previous mask comes back
/// when dropped.
struct SignalsBlocked {
    /// The mask before, as the kernel keeps it.
    previous: KernelSignalSet,
}

/// A signal mask as the kernel's `rt_sigprocmask` takes it: one bit per
/// signal 1 to 64 (`_NSIG` is 64 on every architecture this builds for).
type KernelSignalSet = u64;

impl SignalsBlocked {
    /// Blocks every signal, glibc's two internal ones included (which
    /// `pthread_sigmask` would leave unblocked), as glibc's `posix_spawn`
    /// does: nothing may run a handler of the server in the child. Errors:
    /// `rt_sigprocmask`'s.
    fn new() -> io::Result<Self> {
        let mut previous: KernelSignalSet = 0;
        set_signal_mask(!0, Some(&mut previous))?;
        Ok(Self { previous })
    }
}

impl Drop for SignalsBlocked {
    fn drop(&mut self) {
        // Restoring a mask the kernel itself returned cannot fail.
        let _ = set_signal_mask(self.previous, None);
    }
}

/// Sets the calling thread's signal mask to `mask` with the raw system
/// call (the kernel ignores SIGKILL and SIGSTOP in it); the mask before goes
/// to `previous`. Errors: the kernel's (EFAULT, EINVAL), which valid
/// arguments never get.
#[allow(unsafe_code)]
fn set_signal_mask(
    mask: KernelSignalSet,
    previous: Option<&mut KernelSignalSet>,
) -> io::Result<()> {
    let previous = previous.map_or(std::ptr::null_mut(), std::ptr::from_mut);
    // SAFETY: `rt_sigprocmask` reads 8 bytes from `mask` (on this stack)
    // and writes 8 bytes to `previous` when it is not null (a live `u64`).
    let result = unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            std::ptr::from_ref(&mask),
            previous,
            std::mem::size_of::<KernelSignalSet>(),
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
