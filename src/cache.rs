//! The in-memory tier (L1, moka, weighted by bytes) and coalescing of
//! concurrent misses (one shared, spawned task per key).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::future::{BoxFuture, Shared};
use futures_util::FutureExt;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// A complete response body with what its headers need.
#[derive(Clone, Debug)]
pub struct Entry {
    pub bytes: Bytes,
    pub content_type: String,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// The ETag of the original this was made from (for revalidation).
    pub source_etag: String,
    /// That original is in the bucket (false: a mirror rule with `store = false`),
    /// so its ETag can be checked there.
    pub source_in_bucket: bool,
}

impl Entry {
    /// An original: its own ETag is the one later hits revalidate against.
    pub fn original(
        bytes: Bytes,
        content_type: String,
        etag: String,
        last_modified: Option<SystemTime>,
        in_bucket: bool,
    ) -> Arc<Entry> {
        Arc::new(Entry {
            bytes,
            content_type,
            source_etag: etag.clone(),
            etag,
            last_modified,
            source_in_bucket: in_bucket,
        })
    }
}

/// Which site an entry belongs to: [`SiteId::DEFAULT`] for the top-level
/// configuration, one id per `[[sites]]` entry (its index + 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SiteId(pub u32);

impl SiteId {
    pub const DEFAULT: SiteId = SiteId(0);
}

/// An L1 key: the site and the key, as two fields. No key of one site can
/// spell another's, whatever characters it holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SiteKey {
    pub site: SiteId,
    pub key: String,
}

/// The in-memory LRU. Several sites share one (one memory bound): each sees
/// it through [`L1::scoped`], whose keys are [`SiteKey`]s of that site.
pub struct L1 {
    cache: Option<moka::future::Cache<SiteKey, Arc<Entry>>>,
    max_item: u64,
    /// `pixmirror_l1_lookups_total{result}`.
    lookups: prometheus::IntCounterVec,
    /// The site whose keys this view reads and writes.
    site: SiteId,
}

impl L1 {
    pub fn new(
        capacity: u64,
        ttl: Duration,
        max_item: u64,
        lookups: prometheus::IntCounterVec,
    ) -> L1 {
        let cache = (capacity > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .weigher(|k: &SiteKey, v: &Arc<Entry>| {
                    let w = v.bytes.len() + k.key.len() + v.content_type.len() + v.etag.len() + 128;
                    u32::try_from(w).unwrap_or(u32::MAX)
                })
                .support_invalidation_closures()
                .build()
        });
        L1 {
            cache,
            max_item,
            lookups,
            site: SiteId::DEFAULT,
        }
    }

    /// The same cache seen by `site`: its keys cannot meet another site's.
    pub fn scoped(&self, site: SiteId) -> L1 {
        L1 {
            cache: self.cache.clone(),
            max_item: self.max_item,
            lookups: self.lookups.clone(),
            site,
        }
    }

    /// `key` as stored: this view's site and the key.
    fn k(&self, key: &str) -> SiteKey {
        SiteKey {
            site: self.site,
            key: key.to_string(),
        }
    }

    pub async fn get(&self, key: &str) -> Option<Arc<Entry>> {
        let found = self.cache.as_ref()?.get(&self.k(key)).await;
        let result = if found.is_some() { "hit" } else { "miss" };
        self.lookups.with_label_values(&[result]).inc();
        found
    }

    /// Keep `item` unless it is over `cache.max_item_bytes`.
    pub async fn insert(&self, key: String, item: Arc<Entry>) {
        if let Some(c) = &self.cache {
            if item.bytes.len() as u64 <= self.max_item {
                let key = SiteKey {
                    site: self.site,
                    key,
                };
                c.insert(key, item).await;
            }
        }
    }

    pub fn fits(&self, size: u64) -> bool {
        self.cache.is_some() && size <= self.max_item
    }

    pub async fn remove(&self, key: &str) {
        if let Some(c) = &self.cache {
            c.invalidate(&self.k(key)).await;
        }
    }

    /// Drop the original `key` and every entry starting with `prefix`.
    pub fn remove_key_and_prefix(&self, key: &str, prefix: &str) {
        if let Some(c) = &self.cache {
            let (site, key, prefix) = (self.site, key.to_string(), prefix.to_string());
            let _ = c.invalidate_entries_if(move |k, _| {
                k.site == site && (k.key == key || k.key.starts_with(&prefix))
            });
        }
    }

    pub async fn update_gauges(&self, m: &Metrics) {
        if let Some(c) = &self.cache {
            c.run_pending_tasks().await;
            m.l1_bytes.set(c.weighted_size() as i64);
            m.l1_items.set(c.entry_count() as i64);
        }
    }
}

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

/// Take a lock whether or not a panicking holder poisoned it: every map and
/// slot guarded this way stays consistent between statements.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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

/// The purges of originals, so that work which started before a purge does
/// not bring the purged derivatives back (into L1 or the bucket) when it ends.
/// Each purge takes the next number; work takes a [`Ticket`] when it starts.
pub struct Purges {
    seq: std::sync::atomic::AtomicU64,
    /// Original key → the number of its last purge, kept longer than any work lasts.
    last: moka::sync::Cache<String, u64>,
}

impl Purges {
    pub fn new(remember: Duration) -> Arc<Purges> {
        Arc::new(Purges {
            seq: std::sync::atomic::AtomicU64::new(0),
            last: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(remember.max(Duration::from_secs(1)))
                .build(),
        })
    }

    pub fn purge(&self, key: &str) {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.last.insert(key.to_string(), n);
    }

    /// Taken when work on derivatives of `key` starts.
    pub fn ticket(self: &Arc<Self>, key: &str) -> Ticket {
        Ticket {
            purges: self.clone(),
            key: key.to_string(),
            seq: self.seq.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}

/// Work's proof of when it started: still valid unless its original was purged since.
#[derive(Clone)]
pub struct Ticket {
    purges: Arc<Purges>,
    key: String,
    seq: u64,
}

impl Ticket {
    pub fn still_valid(&self) -> bool {
        self.purges
            .last
            .get(&self.key)
            .is_none_or(|n| n <= self.seq)
    }
}
