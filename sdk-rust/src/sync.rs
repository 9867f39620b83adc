//! [`lock`]: the crate's one way to take a mutex.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks a mutex, going on with the data if a panicking thread poisoned it:
/// every critical section of this crate leaves its data consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
