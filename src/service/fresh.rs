//! The one place that decides freshness: is something made from an original
//! still made from the original the bucket holds now?
//!
//! - `derivatives.revalidate = false`: everything cached is fresh until evicted.
//! - Else the original's current ETag is compared with the one recorded on the
//!   cached item. The ETag is known without a request when the bucket told it
//!   (HEAD, GET or PUT) less than `derivatives.revalidate_after` ago; otherwise
//!   one HEAD, shared by concurrent checks of the same original.
//! - A check that fails (store down, timeout) serves the cached copy and logs
//!   (stale-if-error): a store outage never turns cached answers into errors.
//! - Items made from an original that is not in the bucket (a mirror rule with
//!   `store = false`) cannot be checked there; `cache.ttl` bounds them.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Coalescer, Entry};
use crate::config::DerivativesConfig;
use crate::error::Result;
use crate::storage::{DynStore, StoreError};

/// Recently seen ETags of originals kept at most (entries, not bytes).
const RECENT_CAPACITY: u64 = 100_000;

/// What the bucket says about an original, for comparing with a recorded ETag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Revalidation is off: trust what is cached.
    Off,
    /// The original's current ETag.
    Current(String),
    /// The original is not in the bucket (any more).
    Missing,
    /// The bucket could not be asked; the failure has been logged.
    Failed,
}

impl Check {
    /// May an item made from the original with ETag `source_etag` be served?
    pub fn allows(&self, source_etag: &str) -> bool {
        match self {
            Check::Off | Check::Failed => true,
            Check::Current(etag) => etag == source_etag,
            Check::Missing => false,
        }
    }
}

pub struct Freshness {
    revalidate: bool,
    /// original key → its ETag as last told by the bucket; entries live
    /// `revalidate_after`. None when that is 0 (ask every time).
    recent: Option<moka::sync::Cache<String, String>>,
    heads: Arc<Coalescer<Option<String>>>,
    store: DynStore,
}

impl Freshness {
    /// `wait` bounds how long a caller waits for a HEAD another started
    /// (`Config::shared_work_limit`, as for every shared piece of work).
    pub fn new(cfg: &DerivativesConfig, store: DynStore, wait: Duration) -> Freshness {
        let after: Duration = cfg.revalidate_after.0;
        let recent = (cfg.revalidate && !after.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(RECENT_CAPACITY)
                .time_to_live(after)
                .build()
        });
        Freshness {
            revalidate: cfg.revalidate,
            recent,
            heads: Coalescer::bounded(wait),
            store,
        }
    }

    /// Record what the bucket just said about an original (a GET or a PUT).
    pub fn remember(&self, key: &str, etag: &str) {
        if let Some(r) = &self.recent {
            r.insert(key.to_string(), etag.to_string());
        }
    }

    /// The original's current ETag: remembered, else one HEAD (coalesced while
    /// in flight, so no answer is older than the request that asked).
    /// `Ok(None)`: not in the bucket.
    pub async fn current(&self, key: &str) -> Result<Option<String>> {
        if let Some(etag) = self.recent.as_ref().and_then(|r| r.get(key)) {
            return Ok(Some(etag));
        }
        let store = self.store.clone();
        let k = key.to_string();
        let (etag, _) = self
            .heads
            .run(key, move || async move {
                match store.head(&k).await {
                    Ok(m) => Ok(Some(m.etag)),
                    Err(StoreError::NotFound) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            })
            .await;
        if let Ok(Some(e)) = &etag {
            self.remember(key, e);
        }
        etag
    }

    /// Check the original `key` against the bucket (when revalidation is on).
    pub async fn check(&self, key: &str) -> Check {
        if !self.revalidate {
            return Check::Off;
        }
        match self.current(key).await {
            Ok(Some(etag)) => Check::Current(etag),
            Ok(None) => Check::Missing,
            Err(e) => {
                tracing::warn!(key, error = %e, "revalidation failed; serving the cached copy");
                Check::Failed
            }
        }
    }

    /// Is a cached item (an original or a derivative of `key`) still fresh?
    pub async fn is_fresh(&self, key: &str, item: &Entry) -> bool {
        if !item.source_in_bucket {
            return true;
        }
        self.check(key).await.allows(&item.source_etag)
    }
}
