//! [`ChildStack`]: the stack a cloned child runs on until it execs, mapped
//! with a guard page below it, so an overflow faults instead of writing over
//! the server's memory (the child shares it until it execs).
//!
//! Each thread that spawns keeps its stack for the next spawn
//! ([`ChildStack::take`], [`ChildStack::keep`]): unmapping memory of a
//! multi-threaded process makes the kernel flush the TLB of every CPU the
//! process runs on, which showed in a profile of starts. A stack is reused
//! only by its own thread and only after the clone that used it returned,
//! when no child runs on it any more.

use std::cell::Cell;

use std::io;
use std::ptr::{self, NonNull};

use nix::libc;

/// Usable bytes of a child's stack: the child makes a few system calls
/// through libc with small frames and allocates nothing, so this is far
/// more than it needs (glibc's `posix_spawn` maps about as much).
const STACK_BYTES: usize = 64 * 1024;

/// A private anonymous mapping: a guard page (no access) at its low end,
/// then [`STACK_BYTES`] readable and writable. Unmapped when dropped.
pub(super) struct ChildStack {
    /// The start of the mapping (the guard page).
    base: NonNull<libc::c_void>,
    /// The mapping's length in bytes, guard included.
    length: usize,
}

thread_local! {
    /// The stack this thread's last spawn used, for its next one.
    static KEPT: Cell<Option<ChildStack>> = const { Cell::new(None) };
}

impl ChildStack {
    /// The stack this thread kept from its last spawn, or a new one.
    /// Errors: the kernel's refusal to map one (ENOMEM).
    pub(super) fn take() -> io::Result<Self> {
        match KEPT.try_with(Cell::take) {
            Ok(Some(stack)) => Ok(stack),
            Ok(None) | Err(_) => Self::new(),
        }
    }

    /// Keeps this stack for this thread's next spawn; the caller's clone
    /// must have returned (its child exec'd or exited).
    pub(super) fn keep(self) {
        // A thread being torn down drops the stack instead, unmapping it.
        let _ = KEPT.try_with(|kept| kept.set(Some(self)));
    }

    /// Maps a new stack. Errors: the kernel's refusal (ENOMEM).
    #[allow(unsafe_code)]
    fn new() -> io::Result<Self> {
        let guard = page_size();
        let length = guard + STACK_BYTES.next_multiple_of(guard);
        // SAFETY: an anonymous private mapping at an address the kernel
        // chooses touches no existing memory; the result is checked below.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                length,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let Some(base) = NonNull::new(base) else {
            return Err(io::Error::other("mmap returned a null stack"));
        };
        let stack = Self { base, length };
        // SAFETY: the first page lies inside the mapping just made, which
        // nothing else uses yet.
        if unsafe { libc::mprotect(base.as_ptr(), guard, libc::PROT_NONE) } != 0 {
            // Dropping `stack` unmaps it.
            return Err(io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The whole mapping, as `clone3` takes a stack: its lowest address
    /// and its length in bytes (the guard page at the low end included; the
    /// child starts at the top).
    pub(super) fn bounds(&self) -> (*mut libc::c_void, usize) {
        (self.base.as_ptr(), self.length)
    }

    /// The stack's top (stacks grow down on every Linux architecture this
    /// builds for): the end of the mapping, page-aligned and so aligned as
    /// every ABI wants.
    pub(super) fn top(&self) -> *mut libc::c_void {
        self.base
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(self.length)
            .cast()
    }
}

impl Drop for ChildStack {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping is this value's own, and no child runs on it
        // any more: the clone returns only once its child exec'd (getting
        // memory of its own) or exited (CLONE_VFORK), and a stack is only
        // dropped after that (or never used).
        unsafe {
            libc::munmap(self.base.as_ptr(), self.length);
        }
    }
}

/// The size of a page, in bytes (4096 when the system does not say).
fn page_size() -> usize {
    // `sysconf` reads a value the kernel gave at exec (the auxiliary vector).
    #[allow(unsafe_code)]
    // SAFETY: `sysconf` has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|size| size.is_power_of_two())
        .unwrap_or(4096)
}
