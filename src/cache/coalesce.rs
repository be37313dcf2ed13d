//! Coalescing of concurrent misses: one shared, spawned task per key.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{BoxFuture, Shared};
use futures_util::FutureExt;

use crate::error::{Error, Result};
use crate::lock::lock;

type SharedResult<T> = Shared<BoxFuture<'static, Result<T>>>;

/// Per-key single flight. The first caller's work runs in its own task, so a
/// client that goes away never cancels it; later callers await the same
/// result, error included (no retry storm).
pub struct Coalescer<T: Clone + Send + Sync + 'static> {
    /// Work in flight per key, with the id of the flight that put it there.
    inflight: Mutex<HashMap<String, (u64, SharedResult<T>)>>,
    next_id: std::sync::atomic::AtomicU64,
    /// Counts callers that joined work in flight (`pixmirror_coalesced_total`).
    joined: Option<prometheus::IntCounter>,
    /// The longest any caller waits for shared work (a safety net: the work's
    /// own store, origin and processing timeouts end it sooner).
    wait: Duration,
}

/// Takes the key out of the in-flight map when the leader's task ends, even by
/// a panic, so the next caller starts fresh work instead of a dead result.
struct Release<T: Clone + Send + Sync + 'static> {
    owner: Arc<Coalescer<T>>,
    key: String,
    id: u64,
}

impl<T: Clone + Send + Sync + 'static> Drop for Release<T> {
    fn drop(&mut self) {
        let mut map = lock(&self.owner.inflight);
        // Only our own flight: after `forget_prefix` a newer one may hold the key.
        if map.get(&self.key).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.key);
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Coalescer<T> {
    /// A coalescer that counts joins in `counter` (at the moment of joining)
    /// and lets a caller wait at most `wait`.
    pub fn counting(counter: prometheus::IntCounter, wait: Duration) -> Arc<Self> {
        Self::with(Some(counter), wait)
    }

    /// A coalescer that counts no joins (internal work such as a freshness
    /// HEAD, not a request's) and lets a caller wait at most `wait`.
    pub fn bounded(wait: Duration) -> Arc<Self> {
        Self::with(None, wait)
    }

    fn with(joined: Option<prometheus::IntCounter>, wait: Duration) -> Arc<Self> {
        Arc::new(Coalescer {
            inflight: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(0),
            joined,
            wait,
        })
    }

    /// Is work for `key` in flight? (Tests and diagnostics.)
    pub fn in_flight(&self, key: &str) -> bool {
        lock(&self.inflight).contains_key(key)
    }

    /// Let later callers of keys starting with `prefix` start new work instead
    /// of joining what is in flight (a purge). The work goes on for its callers.
    pub fn forget_prefix(&self, prefix: &str) {
        lock(&self.inflight).retain(|k, _| !k.starts_with(prefix));
    }

    /// Run `work()` once for `key` among concurrent callers. Returns the
    /// result and whether this caller joined work already in flight. A leader
    /// that panics gives every caller 500 and releases the key; a caller
    /// waits at most the coalescer's `wait` (504).
    pub async fn run<F, W>(self: &Arc<Self>, key: &str, work: W) -> (Result<T>, bool)
    where
        W: FnOnce() -> F,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let (fut, joined) = {
            let mut map = lock(&self.inflight);
            if let Some((_, f)) = map.get(key) {
                if let Some(c) = &self.joined {
                    c.inc();
                }
                (f.clone(), true)
            } else {
                let id = self
                    .next_id
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let release = Release {
                    owner: self.clone(),
                    key: key.to_string(),
                    id,
                };
                let fut = work();
                let handle = tokio::spawn(async move {
                    // Dropped when the task ends, by return or by panic. The
                    // result is published (L1) by `work` before this removal.
                    let _release = release;
                    fut.await
                });
                let shared = async move {
                    handle.await.unwrap_or_else(|e| {
                        tracing::error!(error = %e, "shared work panicked");
                        Err(Error::Internal("shared work failed unexpectedly".into()))
                    })
                }
                .boxed()
                .shared();
                map.insert(key.to_string(), (id, shared.clone()));
                (shared, false)
            }
        };
        match tokio::time::timeout(self.wait, fut).await {
            Ok(r) => (r, joined),
            Err(_) => (
                Err(Error::Timeout("waited too long for work in flight".into())),
                joined,
            ),
        }
    }
}
