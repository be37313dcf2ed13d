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
use crate::process::plan::Snapshot;
use crate::process::video::{self, Fetch, RangeReader, Snapped};
use crate::storage::ObjectMeta;

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
        let meta = self.locate_video(ctx).await?;
        let start = Instant::now();
        let r = self.snap_in_pool(&ctx.req.key, &meta, snap).await;
        let result = if r.is_ok() { "ok" } else { "failed" };
        self.metrics
            .video_snapshot_seconds
            .with_label_values(&[result])
            .observe(start.elapsed().as_secs_f64());
        let snapped = r?;
        self.metrics.processed.inc();
        Ok(Arc::new(Entry {
            bytes: Bytes::from(snapped.output.bytes),
            content_type: snapped.output.content_type.to_string(),
            etag: derived_etag(&meta.etag, &d.canonical),
            last_modified: meta.last_modified,
            source_etag: meta.etag,
            source_in_bucket: true,
            made,
        }))
    }

    /// The video's size and ETag: a HEAD of the bucket, else the mirror
    /// (which stores it), then the bucket's HEAD again.
    async fn locate_video(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<ObjectMeta> {
        let key = &ctx.req.key;
        let meta = match self.locate(ctx, || self.store.head(key)).await? {
            Found::Bucket(meta) => meta,
            Found::Mirror(f) if f.store => self.store.head(key).await?,
            Found::Mirror(_) => {
                return Err(Error::unprocessable(
                    "video/snapshot: the video must be stored in the bucket (a mirror rule with store = true)",
                ))
            }
        };
        self.fresh.remember(key, &meta.etag);
        Ok(meta)
    }

    /// One snapshot on a pool slot: ranged reads through the counted store
    /// (the slot's thread waits for each), the frame's memory from the budget.
    async fn snap_in_pool(&self, key: &str, meta: &ObjectMeta, snap: Snapshot) -> Result<Snapped> {
        let (store, budget) = (self.store.clone(), self.budget.clone());
        let metrics = self.metrics.clone();
        let (key, size) = (key.to_string(), meta.size);
        let limit = self.cfg.video.max_read_bytes.0;
        let mut opts = self.process_opts.clone();
        let rt = tokio::runtime::Handle::current();
        let snapped = self
            .pool
            .run(move |deadline| {
                opts.deadline = Some(deadline);
                let fetch: Fetch = Box::new(|offset, len| {
                    let bytes = rt.block_on(store.get_range(&key, offset, len))?;
                    metrics.count_video_read("store", bytes.len() as u64);
                    Ok(bytes.to_vec())
                });
                let reader = RangeReader::new(size, limit, Some(deadline), fetch);
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
