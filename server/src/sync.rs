//! Lock helpers shared by the crate.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, recovering the data if a thread panicked while holding
/// it: every critical section in this crate leaves its data consistent
/// between statements, so a panic elsewhere must not poison the server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
