//! The request path, as named stages. Knows every other module; no hyper types.
//!
//! original:   l1_lookup → store_read (stream, or buffer + l1_fill when small)
//! derivative: l1_lookup → coalesce(derivative key) { stored_derivative →
//!             load_source (coalesced on the original key) → process →
//!             publish (l1_fill) → write_back } → reply

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::cache::{Coalescer, Entry, Item, L1};
use crate::config::{Config, WriteMode};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::mirror::{self, Fetched, Mirror};
use crate::pool::Pool;
use crate::process::pipeline::{self, Options};
use crate::process::Plan;
use crate::storage::{
    read_limited, too_large, ByteStream, DynStore, Object, PutObject, StoreError,
};
use crate::writeback::{Job, WriteBack};

/// User metadata recorded on stored derivatives.
pub const META_SOURCE_ETAG: &str = "pixmirror-source-etag";
pub const META_SOURCE_MODIFIED: &str = "pixmirror-source-modified";
pub const META_CANONICAL: &str = "pixmirror-canonical";

/// `X-Cache-Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Memory,
    Store,
    Processed,
    Mirrored,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Memory => "memory",
            CacheStatus::Store => "store",
            CacheStatus::Processed => "processed",
            CacheStatus::Mirrored => "mirrored",
        }
    }
}

/// A parsed, validated image request. Nothing has been fetched yet.
#[derive(Clone, Debug)]
pub struct ImageRequest {
    pub key: String,
    /// None: the original as stored. `format,auto` already resolved.
    pub plan: Option<Plan>,
    pub vary_accept: bool,
    /// HEAD: the body is not needed (originals are not downloaded).
    pub head: bool,
    /// The query without the process parameter (for mirror `pass_query`).
    pub query: Option<String>,
    /// The client's headers (for mirror `headers.pass`).
    pub headers: http::HeaderMap,
}

pub enum ReplyBody {
    Full(Bytes),
    Stream(ByteStream),
    Empty,
}

pub struct Reply {
    pub body: ReplyBody,
    pub len: u64,
    pub content_type: String,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub cache_status: CacheStatus,
    pub vary_accept: bool,
}

impl Reply {
    fn from_item(item: &Item, status: CacheStatus, vary_accept: bool) -> Reply {
        Reply {
            body: ReplyBody::Full(item.bytes.clone()),
            len: item.bytes.len() as u64,
            content_type: item.content_type.clone(),
            etag: item.etag.clone(),
            last_modified: item.last_modified,
            cache_status: status,
            vary_accept,
        }
    }
}

/// An original read whole into memory (for processing, or small enough for L1).
#[derive(Clone)]
pub struct Source {
    pub item: Item,
    /// `store`, `memory` or `mirrored`.
    pub status: CacheStatus,
    /// The original is in the bucket (false: a mirror rule with `store = false`).
    pub persisted: bool,
}

pub struct App {
    pub cfg: Arc<Config>,
    pub store: DynStore,
    pub metrics: Arc<Metrics>,
    pub l1: L1,
    pub writeback: Arc<WriteBack>,
    renditions: Arc<Coalescer<(Item, CacheStatus)>>,
    sources: Arc<Coalescer<Source>>,
    mirrors: Arc<Coalescer<Arc<Fetched>>>,
    heads: Arc<Coalescer<Option<String>>>,
    mirror: Option<Mirror>,
    pool: Pool,
    process_opts: Options,
}

/// An original read whole from the store, at most `limit` bytes.
async fn read_original(obj: Object, limit: u64) -> Result<Item> {
    let bytes = read_limited(obj.body, limit, obj.meta.size as usize).await?;
    let content_type = obj.meta.content_type_or_default();
    Ok(Entry::original(
        bytes,
        content_type,
        obj.meta.etag,
        obj.meta.last_modified,
    ))
}

/// The ETag of a derivative: stable across instances and tiers.
pub fn derived_etag(source_etag: &str, canonical: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{source_etag}\n{canonical}").as_bytes());
    format!("\"{}\"", &hex::encode(d)[..32])
}

impl App {
    pub fn new(cfg: Config, store: DynStore, mirror: Option<Mirror>) -> Arc<App> {
        let metrics = Arc::new(Metrics::new());
        let cfg = Arc::new(cfg);
        let pool = Pool::new(
            cfg.workers(),
            cfg.process.queue,
            cfg.process.timeout.0,
            metrics.clone(),
        );
        let writeback = WriteBack::new(
            store.clone(),
            metrics.clone(),
            cfg.derivatives.queue,
            cfg.derivatives.write_attempts,
        );
        Arc::new(App {
            l1: L1::new(
                cfg.cache.memory_bytes.0,
                cfg.cache.ttl.0,
                cfg.cache.max_item_bytes.0,
            ),
            process_opts: Options::from_config(&cfg.process),
            renditions: Coalescer::counting(metrics.coalesced.clone()),
            sources: Coalescer::counting(metrics.coalesced.clone()),
            mirrors: Coalescer::counting(metrics.coalesced.clone()),
            heads: Arc::default(),
            mirror,
            pool,
            writeback,
            metrics,
            store,
            cfg,
        })
    }

    /// Serve one validated request.
    pub async fn serve(self: &Arc<Self>, req: ImageRequest) -> Result<Reply> {
        match req.plan.clone() {
            None => self.original(&req).await,
            Some(plan) => self.derivative(&req, plan).await,
        }
    }

    // ---- stages -------------------------------------------------------

    /// Is a cached entry still made from the current original? One HEAD when
    /// `derivatives.revalidate` is on; always true when it is off.
    ///
    /// Concurrent checks of one original share one HEAD (coalesced while in
    /// flight only, so no answer is older than the request that asked).
    async fn still_fresh(&self, key: &str, source_etag: &str) -> Result<bool> {
        if !self.cfg.derivatives.revalidate {
            return Ok(true);
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
        Ok(etag?.is_some_and(|e| e == source_etag))
    }

    async fn l1_lookup(&self, lookup_key: &str, key: &str) -> Result<Option<Item>> {
        match self.l1.get(lookup_key).await {
            Some(item) if self.still_fresh(key, &item.source_etag).await? => Ok(Some(item)),
            Some(_) => {
                self.l1.remove(lookup_key).await;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn original(self: &Arc<Self>, req: &ImageRequest) -> Result<Reply> {
        if let Some(item) = self.l1_lookup(&req.key, &req.key).await? {
            return Ok(Reply::from_item(&item, CacheStatus::Memory, false));
        }
        if req.head {
            let m = match self.store.head(&req.key).await {
                Err(StoreError::NotFound) if self.mirror.is_some() => {
                    return self.original_from_mirror(req).await
                }
                other => other?,
            };
            return Ok(Reply {
                body: ReplyBody::Empty,
                len: m.size,
                content_type: m.content_type_or_default(),
                etag: m.etag,
                last_modified: m.last_modified,
                cache_status: CacheStatus::Store,
                vary_accept: false,
            });
        }
        let obj = match self.store.get(&req.key).await {
            Err(StoreError::NotFound) if self.mirror.is_some() => {
                return self.original_from_mirror(req).await
            }
            other => other?,
        };
        self.metrics
            .source_fetches
            .with_label_values(&["store"])
            .inc();
        if self.l1.fits(obj.meta.size) {
            // Small: keep it in memory for the next request (and for derivatives).
            let item = read_original(obj, self.cfg.cache.max_item_bytes.0).await?;
            self.l1.insert(req.key.clone(), item.clone()).await;
            return Ok(Reply::from_item(&item, CacheStatus::Store, false));
        }
        let meta = obj.meta;
        Ok(Reply {
            body: ReplyBody::Stream(obj.body),
            len: meta.size,
            content_type: meta.content_type_or_default(),
            etag: meta.etag,
            last_modified: meta.last_modified,
            cache_status: CacheStatus::Store,
            vary_accept: false,
        })
    }

    /// The original is not in the bucket: fetch it from the mirror origin.
    async fn original_from_mirror(self: &Arc<Self>, req: &ImageRequest) -> Result<Reply> {
        let f = self.mirrored(req).await?;
        if let (mirror::Body::Memory(bytes), true) = (&f.body, self.l1.fits(f.size)) {
            if f.store {
                let item = Entry::original(
                    bytes.clone(),
                    f.content_type.clone(),
                    f.etag.clone(),
                    f.last_modified,
                );
                self.l1.insert(req.key.clone(), item).await;
            }
        }
        Ok(Reply {
            body: if req.head {
                ReplyBody::Empty
            } else {
                ReplyBody::Stream(f.body.stream().await?)
            },
            len: f.size,
            content_type: f.content_type.clone(),
            etag: f.etag.clone(),
            last_modified: f.last_modified,
            cache_status: CacheStatus::Mirrored,
            vary_accept: false,
        })
    }

    /// One coalesced origin fetch per missing key; stored in the bucket when the rule says so.
    async fn mirrored(self: &Arc<Self>, req: &ImageRequest) -> Result<Arc<Fetched>> {
        if self.mirror.is_none() {
            return Err(Error::NoSuchKey("the specified key does not exist".into()));
        }
        let this = self.clone();
        let (key, query, headers) = (req.key.clone(), req.query.clone(), req.headers.clone());
        let (r, _) = self
            .mirrors
            .run(&req.key, move || async move {
                this.fetch_mirror(key, query, headers).await
            })
            .await;
        r
    }

    async fn fetch_mirror(
        self: Arc<Self>,
        key: String,
        query: Option<String>,
        headers: http::HeaderMap,
    ) -> Result<Arc<Fetched>> {
        let Some(m) = &self.mirror else {
            return Err(Error::NoSuchKey("the specified key does not exist".into()));
        };
        let mut f = m.fetch(&key, query.as_deref(), &headers).await?;
        self.metrics
            .source_fetches
            .with_label_values(&["mirror"])
            .inc();
        if f.store {
            let put = match &f.body {
                mirror::Body::Memory(b) => {
                    let obj = PutObject {
                        bytes: b.clone(),
                        content_type: f.content_type.clone(),
                        metadata: BTreeMap::new(),
                    };
                    self.store.put(&key, obj).await
                }
                mirror::Body::File(tmp) => {
                    self.store
                        .put_file(&key, tmp.path(), f.content_type.clone(), BTreeMap::new())
                        .await
                }
            };
            match put {
                Ok(()) => {
                    self.metrics.store_writes.with_label_values(&["ok"]).inc();
                    // The bucket's own ETag, so later revalidation matches.
                    if let Ok(meta) = self.store.head(&key).await {
                        f.etag = meta.etag;
                        f.last_modified = meta.last_modified.or(f.last_modified);
                    }
                }
                Err(e) => {
                    self.metrics
                        .store_writes
                        .with_label_values(&["error"])
                        .inc();
                    tracing::warn!(key = %key, error = %e, "storing a mirrored original failed");
                    f.store = false;
                }
            }
        }
        Ok(Arc::new(f))
    }

    async fn derivative(self: &Arc<Self>, req: &ImageRequest, plan: Plan) -> Result<Reply> {
        let dkey = plan.derivative_key(&req.key, &self.cfg.derivatives.separator);
        if let Some(item) = self.l1_lookup(&dkey, &req.key).await? {
            return Ok(Reply::from_item(
                &item,
                CacheStatus::Memory,
                req.vary_accept,
            ));
        }
        let this = self.clone();
        let (r2, dk) = (req.clone(), dkey.clone());
        let (r, _) = self
            .renditions
            .run(
                &dkey,
                move || async move { this.render(r2, plan, dk).await },
            )
            .await;
        let (item, status) = r?;
        Ok(Reply::from_item(&item, status, req.vary_accept))
    }

    /// The shared work of one derivative: stored copy, else source + process.
    async fn render(
        self: Arc<Self>,
        req: ImageRequest,
        plan: Plan,
        dkey: String,
    ) -> Result<(Item, CacheStatus)> {
        let key = req.key.clone();
        if self.cfg.derivatives.store {
            if let Some(item) = self.stored_derivative(&key, &dkey).await? {
                self.l1.insert(dkey, item.clone()).await;
                return Ok((item, CacheStatus::Store));
            }
        }
        let source = self.load_source(&req).await?;
        let src = source.item.clone();
        let src_status = source.status;
        let out = self.process(src.bytes.clone(), plan.clone()).await?;
        let canonical = plan.canonical();
        let item = Arc::new(Entry {
            bytes: Bytes::from(out.bytes),
            content_type: out.content_type.to_string(),
            etag: derived_etag(&src.source_etag, &canonical),
            last_modified: src.last_modified,
            source_etag: src.source_etag.clone(),
        });
        self.l1.insert(dkey.clone(), item.clone()).await;
        // A derivative of an original that is not in the bucket would never revalidate.
        if self.cfg.derivatives.store && source.persisted {
            self.write_back(dkey, &item, &canonical).await;
        }
        let status = if src_status == CacheStatus::Mirrored {
            CacheStatus::Mirrored
        } else {
            CacheStatus::Processed
        };
        Ok((item, status))
    }

    /// A derivative already in the bucket, if it is still made from the current original.
    async fn stored_derivative(&self, key: &str, dkey: &str) -> Result<Option<Item>> {
        let obj = match self.store.get(dkey).await {
            Ok(o) => o,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let source_etag = obj
            .meta
            .metadata
            .get(META_SOURCE_ETAG)
            .cloned()
            .unwrap_or_default();
        let canonical = obj
            .meta
            .metadata
            .get(META_CANONICAL)
            .cloned()
            .unwrap_or_default();
        let last_modified = obj
            .meta
            .metadata
            .get(META_SOURCE_MODIFIED)
            .and_then(|s| httpdate::parse_http_date(s).ok());
        if source_etag.is_empty() || !self.still_fresh(key, &source_etag).await? {
            return Ok(None);
        }
        let bytes = read_limited(
            obj.body,
            self.cfg.process.max_source_bytes.0,
            obj.meta.size as usize,
        )
        .await?;
        Ok(Some(Arc::new(Entry {
            bytes,
            content_type: obj.meta.content_type_or_default(),
            etag: derived_etag(&source_etag, &canonical),
            last_modified,
            source_etag,
        })))
    }

    /// The original, whole in memory: L1, else one coalesced read of the store.
    async fn load_source(self: &Arc<Self>, req: &ImageRequest) -> Result<Source> {
        let key = req.key.as_str();
        if let Some(item) = self.l1_lookup(key, key).await? {
            return Ok(Source {
                item,
                status: CacheStatus::Memory,
                persisted: true,
            });
        }
        let this = self.clone();
        let r2 = req.clone();
        let (r, _) = self
            .sources
            .run(key, move || async move { this.fetch_source(r2).await })
            .await;
        r
    }

    async fn fetch_source(self: Arc<Self>, req: ImageRequest) -> Result<Source> {
        let key = req.key.clone();
        let limit = self.cfg.process.max_source_bytes.0;
        let obj = match self.store.get(&key).await {
            Err(StoreError::NotFound) if self.mirror.is_some() => {
                let f = self.mirrored(&req).await?;
                let item = Entry::original(
                    f.body.bytes().await?,
                    f.content_type.clone(),
                    f.etag.clone(),
                    f.last_modified,
                );
                if f.store {
                    self.l1.insert(key, item.clone()).await;
                }
                return Ok(Source {
                    item,
                    status: CacheStatus::Mirrored,
                    persisted: f.store,
                });
            }
            other => other?,
        };
        if obj.meta.size > limit {
            return Err(too_large(limit));
        }
        self.metrics
            .source_fetches
            .with_label_values(&["store"])
            .inc();
        let item = read_original(obj, limit).await?;
        self.l1.insert(key, item.clone()).await;
        Ok(Source {
            item,
            status: CacheStatus::Store,
            persisted: true,
        })
    }

    /// libvips on the bounded blocking pool.
    async fn process(&self, src: Bytes, plan: Plan) -> Result<pipeline::Output> {
        let mut opts = self.process_opts.clone();
        let metrics = self.metrics.clone();
        self.pool
            .run(move |deadline| {
                opts.deadline = Some(deadline);
                let start = Instant::now();
                let r = pipeline::run(&src, &plan, &opts);
                metrics.processed.inc();
                metrics
                    .process_seconds
                    .observe(start.elapsed().as_secs_f64());
                r
            })
            .await
    }

    async fn write_back(&self, dkey: String, item: &Item, canonical: &str) {
        let mut metadata = BTreeMap::new();
        metadata.insert(META_SOURCE_ETAG.to_string(), item.source_etag.clone());
        metadata.insert(META_CANONICAL.to_string(), canonical.to_string());
        if let Some(t) = item.last_modified {
            metadata.insert(META_SOURCE_MODIFIED.to_string(), httpdate::fmt_http_date(t));
        }
        let job = Job {
            key: dkey,
            obj: PutObject {
                bytes: item.bytes.clone(),
                content_type: item.content_type.clone(),
                metadata,
            },
        };
        match self.cfg.derivatives.write {
            WriteMode::Sync => self.writeback.write_now(job).await,
            WriteMode::Async => self.writeback.submit(job).await,
        }
    }

    /// Delete every stored derivative of `key` and drop this instance's L1 entries for it.
    pub async fn purge(&self, key: &str) -> Result<usize> {
        let prefix = format!("{key}{}", self.cfg.derivatives.separator);
        let keys = self.store.list(&prefix).await?;
        for k in &keys {
            self.store.delete(k).await?;
        }
        self.l1.remove_key_and_prefix(key, &prefix);
        Ok(keys.len())
    }
}
