//! The in-memory tier: L1 (moka, weighted by bytes, keyed by site and key),
//! and the entry it holds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

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
    /// The purge sequence (`Purges::current`) when the work that made it
    /// started: an entry older than a purge of its original is not served.
    pub made: u64,
}

impl Entry {
    /// An original: its own ETag is the one later hits revalidate against.
    pub fn original(
        bytes: Bytes,
        content_type: String,
        etag: String,
        last_modified: Option<SystemTime>,
        in_bucket: bool,
        made: u64,
    ) -> Arc<Entry> {
        Arc::new(Entry {
            bytes,
            content_type,
            source_etag: etag.clone(),
            etag,
            last_modified,
            source_in_bucket: in_bucket,
            made,
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
