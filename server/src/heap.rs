//! The C heap's settings for the server's traffic (glibc's malloc; the
//! static musl binary allocates with mimalloc instead, see `main.rs`).
//!
//! Output crosses the server in chunks of up to 64 KiB, each allocated when
//! its read returns and freed once its frame was sent and the process's log
//! let it go, often on another thread. glibc gives the top of a heap back to
//! the kernel whenever more than 128 KiB of it is free (`M_TRIM_THRESHOLD`'s
//! default), so under that traffic it returned pages and faulted them in
//! again, zeroed, all the time: 3 GB of output through a WebSocket cost the
//! server 174,000-184,000 page faults and 3.0-3.2 s of CPU (a scratch SDK
//! client, `/proc/<pid>/stat`). The server keeps up to
//! [`TRIM_THRESHOLD_BYTES`] free at the top of each heap instead: about
//! 2,000 faults (most of them its start-up) and 2.4 s for the same output.

/// Free bytes the top of a heap may hold before malloc gives them back to
/// the kernel (glibc's `M_TRIM_THRESHOLD`; its default is 128 KiB).
pub const TRIM_THRESHOLD_BYTES: i32 = 8 * 1024 * 1024;

/// Applies the settings; call it in `main` before any thread starts.
/// Setting the trim threshold also fixes glibc's mmap threshold at
/// its default, 128 KiB (it no longer grows with the blocks freed), so a
/// block that large still goes straight back to the kernel when freed.
/// Does nothing with another C library.
#[allow(unsafe_code)]
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes malloc's parameters; it takes the
        // arena's lock itself and is called before any other thread runs.
        let applied =
            unsafe { nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) };
        if applied != 1 {
            tracing::debug!("mallopt(M_TRIM_THRESHOLD) was refused");
        }
    }
}
