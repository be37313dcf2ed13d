//! A [`Store`] that counts every request it passes to the backend, by operation
//! and result (`pixmirror_store_requests_total`): what the bucket bills.

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use prometheus::{HistogramVec, IntCounterVec};

use super::{DynStore, Object, ObjectMeta, PutObject, Store, StoreError, StoreResult, Written};

pub struct Counted {
    inner: DynStore,
    requests: IntCounterVec,
    /// `pixmirror_stage_duration_seconds`, stage `store_<op>`.
    seconds: HistogramVec,
}

impl Counted {
    pub fn new(inner: DynStore, requests: IntCounterVec, seconds: HistogramVec) -> Counted {
        Counted {
            inner,
            requests,
            seconds,
        }
    }

    /// Count the request, and log the failures that become a 502/503/403 (their
    /// detail never reaches the client).
    fn count<T>(&self, op: &str, r: &StoreResult<T>) {
        let result = match r {
            Ok(_) => "ok",
            Err(StoreError::NotFound) => "not_found",
            Err(StoreError::InvalidKey(_)) => return, // refused before any request
            Err(e @ StoreError::AccessDenied(_)) => {
                tracing::warn!(op, error = %e, "store denied access");
                "denied"
            }
            Err(e @ StoreError::Timeout(_)) => {
                tracing::warn!(op, error = %e, "store timed out");
                "timeout"
            }
            Err(e @ StoreError::Throttled(_)) => {
                tracing::warn!(op, error = %e, "store throttled");
                "throttled"
            }
            Err(StoreError::Changed) => "changed",
            Err(e @ StoreError::Other(_)) => {
                tracing::warn!(op, error = %e, "store failure");
                "error"
            }
        };
        self.requests.with_label_values(&[op, result]).inc();
    }

    fn counted<'a, T: Send + 'a>(
        &'a self,
        op: &'static str,
        f: BoxFuture<'a, StoreResult<T>>,
    ) -> BoxFuture<'a, StoreResult<T>> {
        async move {
            let start = std::time::Instant::now();
            let r = f.await;
            self.count(op, &r);
            let stage = match op {
                "GET" => "store_get",
                "HEAD" => "store_head",
                "PUT" => "store_put",
                "DELETE" => "store_delete",
                _ => "store_list",
            };
            self.seconds
                .with_label_values(&[stage])
                .observe(start.elapsed().as_secs_f64());
            r
        }
        .boxed()
    }
}

impl Store for Counted {
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<ObjectMeta>> {
        self.counted("HEAD", self.inner.head(key))
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Object>> {
        self.counted("GET", self.inner.get(key))
    }
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        etag: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<bytes::Bytes>> {
        self.counted("GET", self.inner.get_range(key, offset, len, etag))
    }
    fn put<'a>(&'a self, key: &'a str, obj: PutObject) -> BoxFuture<'a, StoreResult<Written>> {
        self.counted("PUT", self.inner.put(key, obj))
    }
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
        content_type: String,
        metadata: BTreeMap<String, String>,
    ) -> BoxFuture<'a, StoreResult<Written>> {
        self.counted(
            "PUT",
            self.inner.put_file(key, path, content_type, metadata),
        )
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        self.counted("DELETE", self.inner.delete(key))
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.counted("LIST", self.inner.list(prefix))
    }
    fn ready(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.ready()
    }
}
