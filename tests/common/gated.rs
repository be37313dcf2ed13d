//! A real store wrapped so that a test controls *when* its reads and writes
//! happen (and can make reads fail): timing control only, every call that
//! passes goes to the real store.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use pixmirror::storage::{
    DynStore, Object, ObjectMeta, PutObject, Store, StoreError, StoreResult, Written,
};
use tokio::sync::Semaphore;

pub struct GatedStore {
    inner: DynStore,
    /// Permits for `put`/`put_file` (starts closed).
    pub puts: Arc<Semaphore>,
    /// Permits for `get` when gated.
    pub gets: Arc<Semaphore>,
    gate_gets: AtomicBool,
    fail_gets: AtomicBool,
    get_calls: AtomicU64,
    waiting_gets: AtomicU64,
    deletes: AtomicU64,
    /// The delete (counted from 1) that fails; 0: none.
    failing_delete: AtomicU64,
    ranges: AtomicU64,
    /// After this many ranged reads, the object read is replaced with these
    /// bytes (once), as a writer racing the reader would.
    replace_after: std::sync::Mutex<Option<(u64, PutObject)>>,
}

impl GatedStore {
    pub fn new(inner: DynStore) -> GatedStore {
        GatedStore {
            inner,
            puts: Arc::new(Semaphore::new(0)),
            gets: Arc::new(Semaphore::new(0)),
            gate_gets: AtomicBool::new(false),
            fail_gets: AtomicBool::new(false),
            get_calls: AtomicU64::new(0),
            waiting_gets: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
            failing_delete: AtomicU64::new(0),
            ranges: AtomicU64::new(0),
            replace_after: std::sync::Mutex::new(None),
        }
    }
    /// Replace the object being read once `ranges` ranged reads answered.
    pub fn replace_after_ranges(&self, ranges: u64, with: PutObject) {
        self.ranges.store(0, Ordering::SeqCst);
        *self.replace_after.lock().unwrap_or_else(|e| e.into_inner()) = Some((ranges, with));
    }
    /// Reads wait at the gate (`gets`), writes pass.
    pub fn reads_held(inner: DynStore) -> Arc<GatedStore> {
        let g = GatedStore::new(inner);
        g.gate_gets(true);
        g.puts.add_permits(Semaphore::MAX_PERMITS / 2);
        Arc::new(g)
    }
    pub fn gate_gets(&self, on: bool) {
        self.gate_gets.store(on, Ordering::SeqCst);
    }
    pub fn fail_gets(&self, on: bool) {
        self.fail_gets.store(on, Ordering::SeqCst);
    }
    /// The `n`-th delete from now on (counted from 1) fails; the others pass.
    pub fn fail_delete(&self, n: u64) {
        self.deletes.store(0, Ordering::SeqCst);
        self.failing_delete.store(n, Ordering::SeqCst);
    }
    pub fn get_calls(&self) -> u64 {
        self.get_calls.load(Ordering::SeqCst)
    }
    /// Wait until `n` gets are held at the gate.
    pub async fn wait_for_waiting_gets(&self, n: u64) {
        for _ in 0..5000 {
            if self.waiting_gets.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("no get reached the gate in 5 s");
    }
}

impl GatedStore {
    async fn pass_put_gate(&self) -> StoreResult<tokio::sync::SemaphorePermit<'_>> {
        self.puts
            .acquire()
            .await
            .map_err(|e| StoreError::Other(e.to_string()))
    }
}

impl Store for GatedStore {
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<ObjectMeta>> {
        self.inner.head(key)
    }
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Object>> {
        Box::pin(async move {
            self.get_calls.fetch_add(1, Ordering::SeqCst);
            if self.gate_gets.load(Ordering::SeqCst) {
                self.waiting_gets.fetch_add(1, Ordering::SeqCst);
                let permit = self.gets.acquire().await;
                self.waiting_gets.fetch_sub(1, Ordering::SeqCst);
                drop(permit);
            }
            if self.fail_gets.load(Ordering::SeqCst) {
                return Err(StoreError::Other("injected read failure".into()));
            }
            self.inner.get(key).await
        })
    }
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        etag: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<bytes::Bytes>> {
        Box::pin(async move {
            self.get_calls.fetch_add(1, Ordering::SeqCst);
            if self.fail_gets.load(Ordering::SeqCst) {
                return Err(StoreError::Other("injected read failure".into()));
            }
            let done = self.ranges.fetch_add(1, Ordering::SeqCst);
            let replace = {
                let mut r = self.replace_after.lock().unwrap_or_else(|e| e.into_inner());
                match r.as_ref() {
                    Some((at, _)) if *at == done => r.take().map(|(_, obj)| obj),
                    _ => None,
                }
            };
            if let Some(obj) = replace {
                self.inner.put(key, obj).await?;
            }
            self.inner.get_range(key, offset, len, etag).await
        })
    }
    fn put<'a>(&'a self, key: &'a str, obj: PutObject) -> BoxFuture<'a, StoreResult<Written>> {
        Box::pin(async move {
            let _p = self
                .puts
                .acquire()
                .await
                .map_err(|e| StoreError::Other(e.to_string()))?;
            self.inner.put(key, obj).await
        })
    }
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
        content_type: String,
        metadata: std::collections::BTreeMap<String, String>,
    ) -> BoxFuture<'a, StoreResult<Written>> {
        Box::pin(async move {
            let _p = self
                .puts
                .acquire()
                .await
                .map_err(|e| StoreError::Other(e.to_string()))?;
            self.inner.put_file(key, path, content_type, metadata).await
        })
    }
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>> {
        Box::pin(async move {
            let n = self.deletes.fetch_add(1, Ordering::SeqCst) + 1;
            if n == self.failing_delete.load(Ordering::SeqCst) {
                return Err(StoreError::Other("injected delete failure".into()));
            }
            self.inner.delete(key).await
        })
    }
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>> {
        self.inner.list(prefix)
    }
    fn ready(&self) -> BoxFuture<'_, StoreResult<()>> {
        self.inner.ready()
    }
}
