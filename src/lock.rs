//! One way to take a `Mutex`.

use std::sync::{Mutex, MutexGuard};

/// Take a lock whether or not a panicking holder poisoned it: every map and
/// slot guarded this way stays consistent between statements.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
