//! Originals: where one comes from (`locate`: the bucket, and only on "not
//! found" the mirror origin), serving one as it is (`original`), and holding one
//! whole in memory for processing (`source`).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::app::{App, Source};
use super::ctx::{CacheStatus, Ctx, Reply, ReplyBody};
use crate::cache::Entry;
use crate::error::{Error, Result};
use crate::mirror::{self, Fetched};
use crate::storage::{read_limited, too_large, Object, PutObject, StoreError, StoreResult};

/// Where an original was found.
pub enum Found<T> {
    /// In the bucket: what the store call returned.
    Bucket(T),
    /// Fetched from a mirror origin (and stored when the rule says so).
    Mirror(Arc<Fetched>),
}

impl App {
    /// The one place that decides where an original comes from: `read` is the
    /// bucket's answer (a HEAD or a GET); on "not found", and only then, the
    /// mirror origin (one coalesced fetch per key).
    pub(super) async fn locate<T, F, Fut>(
        self: &Arc<Self>,
        ctx: &Arc<Ctx>,
        read: F,
    ) -> Result<Found<T>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        match read().await {
            Ok(t) => Ok(Found::Bucket(t)),
            Err(e) => self.missing(ctx, e, read).await,
        }
    }

    /// The rest of [`App::locate`] once the bucket has answered `e`: on "not
    /// found", and only then, the mirror origin (one coalesced fetch per key).
    pub(super) async fn missing<T, F, Fut>(
        self: &Arc<Self>,
        ctx: &Arc<Ctx>,
        e: StoreError,
        read: F,
    ) -> Result<Found<T>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = StoreResult<T>>,
    {
        match e {
            StoreError::NotFound if self.mirror.is_some() => {
                let (this, c) = (self.clone(), ctx.clone());
                let (r, _) = self
                    .flights
                    .mirrors
                    .run(&ctx.req.key, move || this.fetch_mirror(c))
                    .await;
                match r? {
                    Some(f) => Ok(Found::Mirror(f)),
                    // A flight that ended after our read stored it: read it now.
                    None => Ok(Found::Bucket(read().await?)),
                }
            }
            e => Err(e.into()),
        }
    }

    /// A video under a mirror rule that does not store, opened at its origin
    /// for ranged reads (`None`: no such rule; `locate` decides). Only for a
    /// key the bucket has just said it does not hold.
    pub(super) async fn open_ranged(&self, ctx: &Ctx) -> Result<Option<mirror::RangedSource>> {
        let Some(m) = &self.mirror else {
            return Ok(None);
        };
        let (key, query) = (&ctx.req.key, ctx.req.query.as_deref());
        m.open_ranged(key, query, &ctx.req.headers).await
    }

    /// `len` bytes from `offset` of a video opened by [`App::open_ranged`].
    pub(super) async fn read_ranged(
        &self,
        src: &mirror::RangedSource,
        headers: &http::HeaderMap,
        offset: u64,
        len: u64,
    ) -> Result<bytes::Bytes> {
        let m = self.mirror.as_ref().ok_or_else(Error::no_such_key)?;
        m.read_range(src, headers, offset, len).await
    }

    /// Stage `original`: the object as stored (streamed, or buffered into L1
    /// when small), or from the mirror.
    pub(super) async fn original(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<Reply> {
        let (key, vary) = (&ctx.req.key, ctx.req.vary);
        if ctx.req.head {
            return match self.locate(ctx, || self.store.head(key)).await? {
                Found::Bucket(meta) => Ok(Reply::from_meta(
                    meta,
                    ReplyBody::Empty,
                    CacheStatus::Store,
                    vary,
                )),
                Found::Mirror(f) => self.mirrored_reply(ctx, &f).await,
            };
        }
        let obj = match self.locate(ctx, || self.store.get(key)).await? {
            Found::Bucket(obj) => obj,
            Found::Mirror(f) => return self.mirrored_reply(ctx, &f).await,
        };
        if self.l1.fits(obj.meta.size) {
            let item = self
                .read_stored(key, obj, self.cfg.cache.max_item_bytes.0)
                .await?;
            return Ok(Reply::from_item(&item, CacheStatus::Store, vary));
        }
        self.note_bucket_read(key, &obj.meta.etag);
        let body = ReplyBody::Stream(obj.body);
        Ok(Reply::from_meta(obj.meta, body, CacheStatus::Store, vary))
    }

    /// An original fetched from a mirror origin, as the response.
    async fn mirrored_reply(&self, ctx: &Ctx, f: &Fetched) -> Result<Reply> {
        if let (mirror::Spool::Memory(bytes), true) = (&f.body, f.store && self.l1.fits(f.size)) {
            let item = Entry::original(
                bytes.clone(),
                f.content_type.clone(),
                f.etag.clone(),
                f.last_modified,
                true,
                self.purges.current(),
            );
            self.l1.insert(ctx.req.key.clone(), item).await;
        }
        Ok(Reply {
            body: if ctx.req.head {
                ReplyBody::Empty
            } else {
                ReplyBody::Stream(f.body.stream().await?)
            },
            len: f.size,
            content_type: f.content_type.clone(),
            etag: f.etag.clone(),
            last_modified: f.last_modified,
            cache_status: CacheStatus::Mirrored,
            vary: ctx.req.vary,
            process: None,
        })
    }

    /// Stage `source`: the original whole in memory: L1, else one shared read.
    pub(super) async fn source(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<Source> {
        let key = &ctx.req.key;
        if let Some(item) = self.l1.get(key).await {
            if self.fresh.is_fresh(key, &item).await {
                let status = CacheStatus::Memory;
                return Ok(Source {
                    item,
                    status,
                    _mem: None,
                });
            }
        }
        let (this, c) = (self.clone(), ctx.clone());
        let (r, _) = self
            .flights
            .sources
            .run(key, move || this.read_source(c))
            .await;
        r
    }

    /// The shared read of an original for processing, at most `process.max_source_bytes`.
    async fn read_source(self: Arc<Self>, ctx: Arc<Ctx>) -> Result<Source> {
        let key = &ctx.req.key;
        let limit = self.cfg.process.max_source_bytes.0;
        match self.locate(&ctx, || self.store.get(key)).await? {
            Found::Bucket(obj) if obj.meta.size > limit => Err(too_large(limit)),
            Found::Bucket(obj) => {
                // Admitted before the body is read.
                let mem = self.budget.reserve(obj.meta.size, "the source").await?;
                Ok(Source {
                    item: self.read_stored(key, obj, limit).await?,
                    status: CacheStatus::Store,
                    _mem: Some(Arc::new(mem)),
                })
            }
            // A video fetched for a snapshot may be larger than an image may be.
            Found::Mirror(f) if f.size > limit => Err(too_large(limit)),
            Found::Mirror(f) => {
                let mem = self.budget.reserve(f.size, "the source").await?;
                let bytes = f.body.bytes().await?;
                let (ct, etag) = (f.content_type.clone(), f.etag.clone());
                let item = Entry::original(
                    bytes,
                    ct,
                    etag,
                    f.last_modified,
                    f.store,
                    self.purges.current(),
                );
                if f.store {
                    self.l1.insert(key.clone(), item.clone()).await;
                }
                let status = CacheStatus::Mirrored;
                Ok(Source {
                    item,
                    status,
                    _mem: Some(Arc::new(mem)),
                })
            }
        }
    }

    /// Read an original from the bucket whole (at most `limit` bytes) and keep
    /// it in L1; the bucket has just told its ETag.
    async fn read_stored(&self, key: &str, obj: Object, limit: u64) -> Result<Arc<Entry>> {
        self.note_bucket_read(key, &obj.meta.etag);
        let bytes = read_limited(obj.body, limit, obj.meta.size as usize).await?;
        self.metrics
            .source_bytes
            .with_label_values(&["store"])
            .inc_by(bytes.len() as u64);
        let ct = obj.meta.content_type_or_default();
        let (etag, modified) = (obj.meta.etag, obj.meta.last_modified);
        let item = Entry::original(bytes, ct, etag, modified, true, self.purges.current());
        self.l1.insert(key.to_string(), item.clone()).await;
        Ok(item)
    }

    /// An original read from the bucket: its ETag is now known (freshness), and counted.
    fn note_bucket_read(&self, key: &str, etag: &str) {
        self.fresh.remember(key, etag);
        self.metrics
            .source_fetches
            .with_label_values(&["store"])
            .inc();
    }

    /// The shared fetch of a missing original from its mirror origin; stored in
    /// the bucket when the rule says so.
    /// `None`: the bucket holds it now (stored by a flight that ended between
    /// the caller's read and this one), so the origin is not asked again.
    async fn fetch_mirror(self: Arc<Self>, ctx: Arc<Ctx>) -> Result<Option<Arc<Fetched>>> {
        let m = self.mirror.as_ref().ok_or_else(Error::no_such_key)?;
        let key = &ctx.req.key;
        match self.store.head(key).await {
            Ok(_) => return Ok(None),
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        // A fetch spools up to `cache.max_item_bytes` in memory (then to disk):
        // distinct keys fetched at once are bounded by the budget.
        let spool = self
            .cfg
            .cache
            .max_item_bytes
            .0
            .min(self.cfg.process.max_source_bytes.0);
        let _mem = self.budget.reserve(spool, "a mirror fetch").await?;
        let mut f = m
            .fetch(key, ctx.req.query.as_deref(), &ctx.req.headers)
            .await?;
        self.metrics
            .source_fetches
            .with_label_values(&["mirror"])
            .inc();
        self.metrics
            .source_bytes
            .with_label_values(&["mirror"])
            .inc_by(f.size);
        if f.store {
            self.store_mirrored(key, &mut f).await;
        }
        Ok(Some(Arc::new(f)))
    }

    /// Put a mirrored original into the bucket. Its ETag becomes the bucket's,
    /// taken from the PUT's answer, so later checks match without a HEAD.
    async fn store_mirrored(&self, key: &str, f: &mut Fetched) {
        let ct = f.content_type.clone();
        let put = match &f.body {
            mirror::Spool::Memory(b) => {
                let obj = PutObject {
                    bytes: b.clone(),
                    content_type: ct,
                    metadata: BTreeMap::new(),
                };
                self.store.put(key, obj).await
            }
            mirror::Spool::File(tmp) => {
                let path = tmp.path();
                self.store.put_file(key, path, ct, BTreeMap::new()).await
            }
        };
        let written = match put {
            Ok(w) => w,
            Err(e) => {
                self.metrics
                    .store_writes
                    .with_label_values(&["error"])
                    .inc();
                tracing::warn!(key, error = %e, "storing a mirrored original failed");
                f.store = false;
                return;
            }
        };
        self.metrics.store_writes.with_label_values(&["ok"]).inc();
        f.last_modified = written.last_modified.or(f.last_modified);
        match written.etag {
            Some(etag) => f.etag = etag,
            // A store that does not answer a PUT with its ETag: ask once.
            None => {
                if let Ok(meta) = self.store.head(key).await {
                    f.etag = meta.etag;
                }
            }
        }
        self.fresh.remember(key, &f.etag);
    }
}
