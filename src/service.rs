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
use crate::error::Result;
use crate::metrics::Metrics;
use crate::pool::Pool;
use crate::process::pipeline::{self, Options};
use crate::process::Plan;
use crate::storage::{read_limited, too_large, ByteStream, DynStore, PutObject, StoreError};
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
pub type Source = (Item, CacheStatus);

pub struct App {
    pub cfg: Arc<Config>,
    pub store: DynStore,
    pub metrics: Arc<Metrics>,
    pub l1: L1,
    pub writeback: Arc<WriteBack>,
    renditions: Arc<Coalescer<(Item, CacheStatus)>>,
    sources: Arc<Coalescer<Source>>,
    pool: Pool,
    process_opts: Options,
}

/// The ETag of a derivative: stable across instances and tiers.
pub fn derived_etag(source_etag: &str, canonical: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{source_etag}\n{canonical}").as_bytes());
    format!("\"{}\"", &hex::encode(d)[..32])
}

impl App {
    pub fn new(cfg: Config, store: DynStore) -> Arc<App> {
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
            renditions: Arc::default(),
            sources: Arc::default(),
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
    async fn still_fresh(&self, key: &str, item: &Item) -> Result<bool> {
        if !self.cfg.derivatives.revalidate {
            return Ok(true);
        }
        match self.store.head(key).await {
            Ok(m) => Ok(m.etag == item.source_etag),
            Err(StoreError::NotFound) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn l1_lookup(&self, lookup_key: &str, key: &str) -> Result<Option<Item>> {
        match self.l1.get(lookup_key).await {
            Some(item) if self.still_fresh(key, &item).await? => Ok(Some(item)),
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
            let m = self.store.head(&req.key).await?;
            return Ok(Reply {
                body: ReplyBody::Empty,
                len: m.size,
                content_type: m
                    .content_type
                    .unwrap_or_else(|| "application/octet-stream".into()),
                etag: m.etag,
                last_modified: m.last_modified,
                cache_status: CacheStatus::Store,
                vary_accept: false,
            });
        }
        let obj = self.store.get(&req.key).await?;
        self.metrics
            .source_fetches
            .with_label_values(&["store"])
            .inc();
        let meta = obj.meta;
        let content_type = meta
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into());
        if self.l1.fits(meta.size) {
            // Small: keep it in memory for the next request (and for derivatives).
            let bytes = read_limited(
                obj.body,
                self.cfg.cache.max_item_bytes.0,
                meta.size as usize,
            )
            .await?;
            let item = Arc::new(Entry {
                bytes,
                content_type,
                etag: meta.etag.clone(),
                last_modified: meta.last_modified,
                source_etag: meta.etag,
            });
            self.l1.insert(req.key.clone(), item.clone()).await;
            return Ok(Reply::from_item(&item, CacheStatus::Store, false));
        }
        Ok(Reply {
            body: ReplyBody::Stream(obj.body),
            len: meta.size,
            content_type,
            etag: meta.etag,
            last_modified: meta.last_modified,
            cache_status: CacheStatus::Store,
            vary_accept: false,
        })
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
        let (key, dk) = (req.key.clone(), dkey.clone());
        let (r, joined) = self
            .renditions
            .run(
                &dkey,
                move || async move { this.render(key, plan, dk).await },
            )
            .await;
        if joined {
            self.metrics.coalesced.inc();
        }
        let (item, status) = r?;
        Ok(Reply::from_item(&item, status, req.vary_accept))
    }

    /// The shared work of one derivative: stored copy, else source + process.
    async fn render(
        self: Arc<Self>,
        key: String,
        plan: Plan,
        dkey: String,
    ) -> Result<(Item, CacheStatus)> {
        if self.cfg.derivatives.store {
            if let Some(item) = self.stored_derivative(&key, &dkey).await? {
                self.l1.insert(dkey, item.clone()).await;
                return Ok((item, CacheStatus::Store));
            }
        }
        let (src, src_status) = self.load_source(&key).await?;
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
        if self.cfg.derivatives.store {
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
        let probe = Entry {
            bytes: Bytes::new(),
            content_type: String::new(),
            etag: String::new(),
            last_modified,
            source_etag: source_etag.clone(),
        };
        if source_etag.is_empty() || !self.still_fresh(key, &Arc::new(probe)).await? {
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
            content_type: obj
                .meta
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            etag: derived_etag(&source_etag, &canonical),
            last_modified,
            source_etag,
        })))
    }

    /// The original, whole in memory: L1, else one coalesced read of the store.
    async fn load_source(self: &Arc<Self>, key: &str) -> Result<Source> {
        if let Some(item) = self.l1_lookup(key, key).await? {
            return Ok((item, CacheStatus::Memory));
        }
        let this = self.clone();
        let k = key.to_string();
        let (r, joined) = self
            .sources
            .run(key, move || async move { this.fetch_source(k).await })
            .await;
        if joined {
            self.metrics.coalesced.inc();
        }
        r
    }

    async fn fetch_source(self: Arc<Self>, key: String) -> Result<Source> {
        let limit = self.cfg.process.max_source_bytes.0;
        let obj = self.store.get(&key).await?;
        if obj.meta.size > limit {
            return Err(too_large(limit));
        }
        self.metrics
            .source_fetches
            .with_label_values(&["store"])
            .inc();
        let bytes = read_limited(obj.body, limit, obj.meta.size as usize).await?;
        let item = Arc::new(Entry {
            bytes,
            content_type: obj
                .meta
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            etag: obj.meta.etag.clone(),
            last_modified: obj.meta.last_modified,
            source_etag: obj.meta.etag,
        });
        self.l1.insert(key, item.clone()).await;
        Ok((item, CacheStatus::Store))
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
