//! Video snapshots on the request path: the stage that takes the place of
//! `source` and `process` for a `video/snapshot` plan. The video is never
//! read whole: a HEAD locates it (the bucket, else the mirror), then the
//! pool slot's thread reads the ranges FFmpeg asks for (`process::video`)
//! through the counted store, under `video.max_read_bytes` and
//! `process.timeout`; the decoded frame's memory is reserved from the budget
//! before it is decoded.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::app::App;
use super::ctx::{Ctx, Derived};
use super::render::derived_etag;
use super::source::Found;
use crate::budget::Budget;
use crate::cache::Entry;
use crate::error::{Error, Result};
use crate::mirror::{Fetched, RangedSource};
use crate::process::plan::Snapshot;
use crate::process::video::{self, Fetch, RangeReader, Snapped};
use crate::storage::{ObjectMeta, StoreError};

/// Where a video is read from.
#[derive(Clone)]
enum Video {
    /// The bucket: ranged GETs.
    Bucket(ObjectMeta),
    /// A mirror fetch the rule does not store, spooled (to disk past
    /// `cache.max_item_bytes`): ranges of the spool.
    Spool(Arc<Fetched>),
    /// A rule that does not store, its origin answering ranges: ranged GETs
    /// of the origin (an origin bucket: ranged reads).
    Origin(Arc<RangedSource>),
}

impl Video {
    fn size(&self) -> u64 {
        match self {
            Video::Bucket(m) => m.size,
            Video::Spool(f) => f.size,
            Video::Origin(o) => o.size,
        }
    }
}

impl App {
    /// Stage `snapshot`: the video's frame at `t`, as the plan's image.
    pub(super) async fn snapshot(
        self: &Arc<Self>,
        ctx: &Arc<Ctx>,
        d: &Derived,
        made: u64,
    ) -> Result<Arc<Entry>> {
        let snap = d
            .plan
            .snapshot
            .ok_or_else(|| Error::Internal("a snapshot stage got a plan without one".into()))?;
        let video = self.locate_video(ctx).await?;
        let start = Instant::now();
        let r = self.snap_in_pool(ctx, &video, snap).await;
        let result = if r.is_ok() { "ok" } else { "failed" };
        self.metrics
            .video_snapshot_seconds
            .with_label_values(&[result])
            .observe(start.elapsed().as_secs_f64());
        let snapped = r?;
        self.metrics.processed.inc();
        let (etag, last_modified, in_bucket) = match &video {
            Video::Bucket(m) => (m.etag.clone(), m.last_modified, true),
            Video::Spool(f) => (f.etag.clone(), f.last_modified, false),
            Video::Origin(o) => (o.etag.clone(), o.last_modified, false),
        };
        Ok(Arc::new(Entry {
            bytes: Bytes::from(snapped.output.bytes),
            content_type: snapped.output.content_type.to_string(),
            etag: derived_etag(&etag, &d.canonical),
            last_modified,
            source_etag: etag,
            source_in_bucket: in_bucket,
            made,
        }))
    }

    /// Where the video is read from: the bucket (a HEAD gave its size and
    /// ETag; a mirror rule that stores what it fetched counts), else the
    /// spool of a mirror fetch that is not stored.
    async fn locate_video(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<Video> {
        let key = &ctx.req.key;
        let head = || self.store.head(key);
        let found = match head().await {
            Ok(meta) => Found::Bucket(meta),
            Err(StoreError::NotFound) if self.mirror.is_some() => {
                if let Some(src) = self.open_ranged(ctx).await? {
                    self.metrics
                        .count_video_read("mirror", src.head.len() as u64);
                    return Ok(Video::Origin(Arc::new(src)));
                }
                self.missing(ctx, StoreError::NotFound, head).await?
            }
            Err(e) => self.missing(ctx, e, head).await?,
        };
        let meta = match found {
            Found::Bucket(meta) => meta,
            Found::Mirror(f) if f.store => self.store.head(key).await?,
            Found::Mirror(f) => return Ok(Video::Spool(f)),
        };
        self.fresh.remember(key, &meta.etag);
        Ok(Video::Bucket(meta))
    }

    /// One snapshot on a pool slot: ranged reads (the slot's thread waits for
    /// each), the frame's memory from the budget.
    async fn snap_in_pool(
        self: &Arc<Self>,
        ctx: &Ctx,
        video: &Video,
        snap: Snapshot,
    ) -> Result<Snapped> {
        let (this, video) = (self.clone(), video.clone());
        let (key, headers) = (ctx.req.key.clone(), ctx.req.headers.clone());
        let limit = self.cfg.video.max_read_bytes.0;
        let mut opts = self.process_opts.clone();
        let rt = tokio::runtime::Handle::current();
        self.pool
            .run(move |deadline| {
                opts.deadline = Some(deadline);
                let fetch = this.fetcher(&rt, &video, &key, &headers);
                let mut reader = RangeReader::new(video.size(), limit, Some(deadline), fetch);
                if let Video::Origin(o) = &video {
                    reader.already_read(0, o.head.clone());
                }
                let (mut held, mut total) = (Vec::new(), 0u64);
                // The first reservation (the frame's copies and the usual
                // pictures) may wait for the budget; what the decoder asks for
                // beyond it is taken at once or refused (503), so snapshots
                // holding part of the budget never wait on each other. What
                // they add up to is checked whole: a video that can never fit
                // is a 422 at once.
                let mut reserve = |bytes: u64| {
                    total = total.saturating_add(Budget::charged(bytes));
                    let what = "the video's pictures";
                    this.budget.fits(total, what)?;
                    held.push(match held.is_empty() {
                        true => rt.block_on(this.budget.reserve(bytes, what))?,
                        false => this.budget.try_reserve(bytes, what)?,
                    });
                    Ok(())
                };
                video::snapshot(reader, &snap, &opts, &mut reserve)
            })
            .await
    }

    /// The ranged read of `video`, run from a pool slot's thread; every range
    /// counted in `pixmirror_video_read_bytes_total` by where it came from.
    fn fetcher<'a>(
        &'a self,
        rt: &'a tokio::runtime::Handle,
        video: &'a Video,
        key: &'a str,
        headers: &'a http::HeaderMap,
    ) -> Fetch<'a> {
        let count = move |source: &str, n: usize| self.metrics.count_video_read(source, n as u64);
        match video {
            Video::Bucket(meta) => Box::new(move |offset, len| {
                let etag = crate::storage::strong_etag(&meta.etag);
                let bytes = rt.block_on(self.store.get_range(key, offset, len, etag))?;
                count("store", bytes.len());
                Ok(bytes)
            }),
            Video::Spool(f) => Box::new(move |offset, len| {
                let bytes = f.body.read_range(offset, len)?;
                count("mirror", bytes.len());
                Ok(bytes)
            }),
            Video::Origin(o) => Box::new(move |offset, len| {
                let bytes = rt.block_on(self.read_ranged(o, headers, offset, len))?;
                count("mirror", bytes.len());
                Ok(bytes)
            }),
        }
    }
}
