//! Children cloned with `clone3`: born in their cgroup (`CLONE_INTO_CGROUP`,
//! Linux 5.7+, given the cgroup's open directory) and with the server's
//! signal handlers already reset to the default (`CLONE_CLEAR_SIGHAND`,
//! Linux 5.5+).
//!
//! Why the cgroup: the alternative, a child that writes itself into its
//! cgroup's `cgroup.procs` between its clone and its exec, makes the kernel
//! migrate it, and the migration takes the system-wide
//! `cgroup_threadgroup_rwsem` for writing: every fork and exit on the
//! machine waits for it, and starts running at once wait for one another.
//! A child cloned into the cgroup takes that lock only for reading, like
//! any fork. Measured on the 2-core development VM, 8 threads each cloning
//! `/bin/true` (`CLONE_VFORK`): 5,400 to 5,600 starts a second without a
//! cgroup, 4,100 to 5,100 with each child joining its cgroup itself, and
//! `clone3` into a cgroup at the same rate as `clone3` into none.
//!
//! Why the handlers: otherwise the child asks the kernel for each of the 64
//! signals' disposition (and resets the handled ones) before its exec, as
//! glibc's `posix_spawn` does, while the thread that spawns it waits.
//!
//! glibc has no `clone3` wrapper that runs a function on a stack of the
//! caller's, as `clone` does, so the system call and the child's first
//! instructions (call the entry point, `exit` with what it returns) are
//! written here in assembly, for x86_64 only. Elsewhere [`clone`] answers
//! ENOSYS and the caller clones the old way.
//!
//! Where the kernel refuses `clone3` itself (ENOSYS before Linux 5.3; E2BIG
//! for `clone_args` longer than it knows, before 5.7; EINVAL for a flag it
//! does not know), or a seccomp filter does (Docker's default profile
//! answers ENOSYS so that glibc falls back; others answer EPERM),
//! [`note_failure`] turns it off for the rest of the process's life, so
//! each later start does not try again first. Containment itself needs
//! Linux 5.14 (`cgroup.kill`), so with it on, in practice only a seccomp
//! filter turns `clone3` off. Any other failure (EBUSY or ENODEV from the
//! cgroup, EAGAIN) makes that one start clone the old way, which fails on
//! its own terms when the cause is not `clone3`'s.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::libc;
use rustix::process::Pid;

use super::stack::ChildStack;

/// The entry point a cloned child runs on its own stack; it never returns
/// (it execs or `_exit`s), and what it would return becomes its exit status.
pub(super) type ChildEntry = extern "C" fn(*mut libc::c_void) -> libc::c_int;

/// `CLONE_CLEAR_SIGHAND` (`linux/sched.h`): every signal the parent
/// handles is at its default in the child (ignored ones stay ignored).
const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// `CLONE_INTO_CGROUP` (`linux/sched.h`): `CloneArgs::cgroup` is the
/// directory of the cgroup v2 the child starts in.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Set once the kernel (or a seccomp filter) refused `clone3` as such.
static REFUSED: AtomicBool = AtomicBool::new(false);

/// Whether [`clone`] is worth trying: not refused before, and built
/// for an architecture it has the assembly for.
pub(super) fn available() -> bool {
    cfg!(target_arch = "x86_64") && !REFUSED.load(Ordering::Relaxed)
}

/// Records why [`clone`] failed: an error that says the system call
/// or its flag is refused here (ENOSYS, EINVAL, E2BIG, EPERM) turns it off
/// for good. Any other (EBUSY, EBADF, EAGAIN...) concerns this start only.
pub(super) fn note_failure(error: &io::Error) {
    if matches!(
        error.raw_os_error(),
        Some(libc::ENOSYS | libc::EINVAL | libc::E2BIG | libc::EPERM)
    ) && !REFUSED.swap(true, Ordering::Relaxed)
    {
        tracing::info!(%error, "clone3 is refused here; children are cloned with clone");
    }
}

/// `struct clone_args` (`linux/sched.h`), up to `cgroup` (its second
/// version, 88 bytes): every field a `u64`.
#[repr(C)]
struct CloneArgs {
    /// `CLONE_*` flags.
    flags: u64,
    /// Where to store a pidfd (`CLONE_PIDFD`).
    pidfd: u64,
    /// Where to store the child's tid in the child (`CLONE_CHILD_SETTID`).
    child_tid: u64,
    /// Where to store the child's tid in the parent (`CLONE_PARENT_SETTID`).
    parent_tid: u64,
    /// The signal the parent gets when the child ends.
    exit_signal: u64,
    /// The lowest address of the child's stack.
    stack: u64,
    /// The stack's size in bytes (the child starts at `stack + stack_size`).
    stack_size: u64,
    /// The child's thread pointer (`CLONE_SETTLS`).
    tls: u64,
    /// Pids to give the child (`set_tid`).
    set_tid: u64,
    /// How many `set_tid` holds.
    set_tid_size: u64,
    /// The cgroup v2 directory (`CLONE_INTO_CGROUP`).
    cgroup: u64,
}

/// Clones a child that runs `entry(arg)` on `stack`, as
/// `clone(CLONE_VM | CLONE_VFORK | SIGCHLD)` does (the caller suspended
/// until the child exec'd or exited), with the handled signals at their
/// default, and in the cgroup open as `cgroup` when given; returns its pid.
/// Errors: `clone3`'s (see the module doc), ENOSYS on an architecture
/// without the assembly.
///
/// # Safety
/// As `libc::clone` with those flags: `entry` must be safe to run on
/// `stack` in this process's memory with `arg`, which must stay valid until
/// this returns; the caller blocks every signal around the call.
#[allow(unsafe_code)]
pub(super) unsafe fn clone(
    cgroup: Option<BorrowedFd<'_>>,
    stack: &ChildStack,
    entry: ChildEntry,
    arg: *mut libc::c_void,
) -> io::Result<Pid> {
    let (base, length) = stack.bounds();
    let into_cgroup = if cgroup.is_some() {
        CLONE_INTO_CGROUP
    } else {
        0
    };
    let args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK) as u64 | CLONE_CLEAR_SIGHAND | into_cgroup,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: base as u64,
        stack_size: length as u64,
        tls: 0,
        set_tid: 0,
        set_tid_size: 0,
        // A descriptor is never negative.
        cgroup: cgroup.map_or(0, |cgroup| cgroup.as_raw_fd() as u64),
    };
    // SAFETY: as this function's own contract; `args` lives on this stack
    // until the system call returned.
    let result = unsafe { raw_clone3(&args, entry, arg) };
    if result < 0 {
        return Err(io::Error::from_raw_os_error(
            i32::try_from(-result).unwrap_or(libc::EINVAL),
        ));
    }
    i32::try_from(result)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| io::Error::other("clone3 returned no pid in the parent"))
}

/// The `clone3` system call; in the child, on its new stack (whose top the
/// kernel loaded into `rsp`, page-aligned and so 16-byte aligned for the
/// call), `entry(arg)` and then `exit` with what it returned: the child
/// never comes back into Rust code, whose frames live on the parent's
/// stack. Returns the pid, or a negated errno.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
unsafe fn raw_clone3(args: &CloneArgs, entry: ChildEntry, arg: *mut libc::c_void) -> i64 {
    let result: i64;
    // SAFETY: the caller's (see `clone_into`). The parent's side changes
    // only rax (the result) and what `syscall` itself clobbers (rcx, r11).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            // The child: no frame to return to.
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "mov edi, eax",
            "mov eax, {exit}",
            "syscall",
            "ud2",
            "2:",
            exit = const libc::SYS_exit,
            inlateout("rax") libc::SYS_clone3 => result,
            in("rdi") std::ptr::from_ref(args),
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// No assembly for this architecture: ENOSYS, so the caller clones the old way.
#[cfg(not(target_arch = "x86_64"))]
#[allow(unsafe_code)]
unsafe fn raw_clone3(_args: &CloneArgs, _entry: ChildEntry, _arg: *mut libc::c_void) -> i64 {
    -i64::from(libc::ENOSYS)
}
