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
use crate::cache::Entry;
use crate::error::{Error, Result};
use crate::mirror::{Fetched, Spool};
use crate::process::plan::Snapshot;
use crate::process::video::{self, Fetch, RangeReader, Snapped};
use crate::storage::ObjectMeta;

/// Where a video is read from.
#[derive(Clone)]
enum Video {
    /// The bucket: ranged GETs.
    Bucket(ObjectMeta),
    /// A mirror fetch the rule does not store, spooled (to disk past
    /// `cache.max_item_bytes`): ranges of the spool.
    Spool(Arc<Fetched>),
}

impl Video {
    fn size(&self) -> u64 {
        match self {
            Video::Bucket(m) => m.size,
            Video::Spool(f) => f.size,
        }
    }
}

/// `len` bytes from `offset` of a spooled mirror fetch.
fn read_spool(spool: &Spool, offset: u64, len: u64) -> Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    match spool {
        Spool::Memory(b) => {
            let start = (offset as usize).min(b.len());
            let end = (offset.saturating_add(len) as usize).min(b.len());
            Ok(b[start..end].to_vec())
        }
        Spool::File(f) => {
            let failed =
                |e: std::io::Error| Error::Internal(format!("reading the spooled video: {e}"));
            let mut file = std::fs::File::open(f.path()).map_err(failed)?;
            file.seek(SeekFrom::Start(offset)).map_err(failed)?;
            let mut out = Vec::with_capacity(len as usize);
            file.take(len).read_to_end(&mut out).map_err(failed)?;
            Ok(out)
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
        let r = self.snap_in_pool(&ctx.req.key, &video, snap).await;
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
        let meta = match self.locate(ctx, || self.store.head(key)).await? {
            Found::Bucket(meta) => meta,
            Found::Mirror(f) if f.store => self.store.head(key).await?,
            Found::Mirror(f) => return Ok(Video::Spool(f)),
        };
        self.fresh.remember(key, &meta.etag);
        Ok(Video::Bucket(meta))
    }

    /// One snapshot on a pool slot: ranged reads through the counted store
    /// (the slot's thread waits for each), the frame's memory from the budget.
    async fn snap_in_pool(&self, key: &str, video: &Video, snap: Snapshot) -> Result<Snapped> {
        let (store, budget) = (self.store.clone(), self.budget.clone());
        let metrics = self.metrics.clone();
        let (key, video) = (key.to_string(), video.clone());
        let limit = self.cfg.video.max_read_bytes.0;
        let mut opts = self.process_opts.clone();
        let rt = tokio::runtime::Handle::current();
        let snapped = self
            .pool
            .run(move |deadline| {
                opts.deadline = Some(deadline);
                let fetch: Fetch = match &video {
                    Video::Bucket(_) => Box::new(|offset, len| {
                        let bytes = rt.block_on(store.get_range(&key, offset, len))?;
                        metrics.count_video_read("store", bytes.len() as u64);
                        Ok(bytes.to_vec())
                    }),
                    Video::Spool(f) => Box::new(|offset, len| {
                        let bytes = read_spool(&f.body, offset, len)?;
                        metrics.count_video_read("mirror", bytes.len() as u64);
                        Ok(bytes)
                    }),
                };
                let reader = RangeReader::new(video.size(), limit, Some(deadline), fetch);
                let mut held = Vec::new();
                let mut reserve = |bytes| {
                    held.push(rt.block_on(budget.reserve(bytes, "the video's frames"))?);
                    Ok(())
                };
                video::snapshot(reader, &snap, &opts, &mut reserve)
            })
            .await;
        snapped
    }
}
