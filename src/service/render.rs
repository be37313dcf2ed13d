//! Derivatives: the shared work behind one derivative key. A stored copy that
//! is still fresh, else the source processed by libvips, then published (L1,
//! write-back to the bucket).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::admit::Verdict;
use super::app::{App, Rendered, Source};
use super::ctx::{derivative_metadata, CacheStatus, Ctx, Derived, ImageRequest, Reply};
use super::ctx::{META_CANONICAL, META_SOURCE_ETAG, META_SOURCE_MODIFIED};
use super::fresh::Check;
use crate::cache::{Entry, Ticket};
use crate::config::WriteMode;
use crate::error::{Error, Result};
use crate::process::codec::jpeg;
use crate::process::engine::pipeline::{self, Marks};
use crate::storage::{read_limited, Object, PutObject, StoreError};
use crate::writeback::Job;

/// The ETag of a derivative: stable across instances and tiers.
pub fn derived_etag(source_etag: &str, canonical: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("{source_etag}\n{canonical}").as_bytes());
    format!("\"{}\"", &hex::encode(d)[..32])
}

fn derived(ctx: &Ctx) -> Result<&Derived> {
    ctx.derived
        .as_ref()
        .ok_or_else(|| Error::Internal("a derivative stage got a request without a plan".into()))
}

/// The memory a run of `plan` on `src` holds at its peak (see
/// `budget::processing_bytes`), from the header's dimensions read in pure Rust,
/// plus a progressive JPEG's coefficients, which the decoder holds whole
/// even at 1/8 (`codec::jpeg::coefficient_bytes`: 61 MB for 20 MP at 4:2:0).
/// A header that cannot be read costs nothing here: libvips refuses it (422).
fn processing_bytes(src: &[u8], plan: &crate::process::Plan) -> u64 {
    let Ok(size) = imagesize::blob_size(src) else {
        return 0;
    };
    let from = (size.width as u32, size.height as u32);
    let frames = pipeline::kept_frames_of(src, plan);
    let coefficients = jpeg::coefficient_bytes(src).unwrap_or(0);
    pipeline::pixel_estimate(plan, from, frames).map_or(0, |(decoded, out)| {
        crate::budget::processing_bytes(decoded, out) + coefficients
    })
}

impl App {
    /// Stage `derivative`: one shared render per derivative key.
    pub(super) async fn derivative(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<Reply> {
        let (this, c) = (self.clone(), ctx.clone());
        let (r, _) = self
            .flights
            .renders
            .run(ctx.cache_key(), move || this.render(c))
            .await;
        let (item, status) = match r {
            // COS `ignore-error/1`: the original instead of a refusal.
            Err(e) if derived(ctx)?.plan.ignore_error && e.caused_by_request() => {
                return self.original(ctx).await;
            }
            r => r?,
        };
        Ok(Reply::from_item(&item, status, ctx.req.vary))
    }

    /// The shared work: bucket → source → process → publish.
    async fn render(self: Arc<Self>, ctx: Arc<Ctx>) -> Result<Rendered> {
        let d = derived(&ctx)?;
        // A purge of the original from now on keeps this render's result out
        // of L1 and the bucket (its callers still get it).
        let ticket = self.purges.ticket(&ctx.req.key);
        if let Some(item) = self
            .bucket_derivative(&ctx.req.key, d, ticket.seq())
            .await?
        {
            self.remember(&d.key, &item, &ticket).await;
            return Ok((item, CacheStatus::Store));
        }
        if d.plan.snapshot.is_some() {
            let item = self.snapshot(&ctx, d, ticket.seq()).await?;
            self.publish(&ctx, d, &item, ticket).await;
            return Ok((item, CacheStatus::Processed));
        }
        let source = self.source(&ctx).await?;
        let marks = self.marks(&ctx, d).await?;
        let item = self.process(d, &source, marks, ticket.seq()).await?;
        self.publish(&ctx, d, &item, ticket).await;
        let status = match source.status {
            CacheStatus::Mirrored => CacheStatus::Mirrored,
            _ => CacheStatus::Processed,
        };
        Ok((item, status))
    }

    /// Stage `bucket_derivative`: the stored derivative, read while the original
    /// is checked (both at once), served if it was made from the current original.
    /// `made`: the render's start, stamped on what it reads (`Entry::made`).
    async fn bucket_derivative(
        &self,
        key: &str,
        d: &Derived,
        made: u64,
    ) -> Result<Option<Arc<Entry>>> {
        if !self.stores(d) {
            return Ok(None);
        }
        let (obj, check) = tokio::join!(self.store.get(&d.key), self.fresh.check(key));
        let obj = match obj {
            Ok(o) => o,
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.read_derivative(obj, &check, made).await
    }

    /// A stored derivative's bytes and headers, if `check` allows what it records.
    async fn read_derivative(
        &self,
        obj: Object,
        check: &Check,
        made: u64,
    ) -> Result<Option<Arc<Entry>>> {
        let meta = &obj.meta.metadata;
        let source_etag = meta.get(META_SOURCE_ETAG).cloned().unwrap_or_default();
        if source_etag.is_empty() || !check.allows(&source_etag) {
            return Ok(None);
        }
        let canonical = meta.get(META_CANONICAL).cloned().unwrap_or_default();
        let last_modified = meta
            .get(META_SOURCE_MODIFIED)
            .and_then(|s| httpdate::parse_http_date(s).ok());
        let content_type = obj.meta.content_type_or_default();
        let limit = self.cfg.process.max_source_bytes.0;
        let bytes = read_limited(obj.body, limit, obj.meta.size as usize).await?;
        Ok(Some(Arc::new(Entry {
            bytes,
            content_type,
            etag: derived_etag(&source_etag, &canonical),
            last_modified,
            source_etag,
            source_in_bucket: true,
            made,
        })))
    }

    /// Stage `marks`: the watermark images the plan names, each loaded as an
    /// original is (L1, else one shared read: bucket, then mirror). A missing
    /// one is the request's fault: 400.
    async fn marks(self: &Arc<Self>, ctx: &Ctx, d: &Derived) -> Result<(Marks, Vec<Source>)> {
        let mut marks = Marks::new();
        let mut held = Vec::new();
        for key in d.plan.mark_keys() {
            let req = ImageRequest {
                key: key.to_string(),
                plan: None,
                ..ctx.req.clone()
            };
            let child = Arc::new(Ctx { req, derived: None });
            let src = match self.source(&child).await {
                Err(Error::NoSuchKey(_)) => {
                    return Err(Error::invalid(
                        "watermark: the watermark image does not exist",
                    ))
                }
                r => r?,
            };
            marks.insert(key.to_string(), src.item.bytes.clone());
            held.push(src);
        }
        Ok((marks, held))
    }

    /// Stage `process`: libvips on the bounded blocking pool.
    async fn process(
        &self,
        d: &Derived,
        source: &Source,
        (marks, _held): (Marks, Vec<Source>),
        made: u64,
    ) -> Result<Arc<Entry>> {
        let _mem = self
            .budget
            .reserve(
                processing_bytes(&source.item.bytes, &d.plan),
                "processing this image",
            )
            .await?;
        let (src, plan) = (source.item.bytes.clone(), d.plan.clone());
        let mut opts = self.process_opts.clone();
        let metrics = self.metrics.clone();
        let out = self
            .pool
            .run(move |deadline| {
                opts.deadline = Some(deadline);
                let start = Instant::now();
                let r = pipeline::run_with(&src, &plan, &opts, &marks);
                if r.is_ok() {
                    metrics.processed.inc();
                }
                // By output format ("webp", "json" for reports); "failed" runs apart.
                let format = r.as_ref().map_or("failed", |o| {
                    o.content_type.rsplit('/').next().unwrap_or("other")
                });
                metrics
                    .process_seconds
                    .with_label_values(&[format])
                    .observe(start.elapsed().as_secs_f64());
                r
            })
            .await?;
        let s = &source.item;
        Ok(Arc::new(Entry {
            bytes: Bytes::from(out.bytes),
            content_type: out.content_type.to_string(),
            etag: derived_etag(&s.source_etag, &d.canonical),
            last_modified: s.last_modified,
            source_etag: s.source_etag.clone(),
            source_in_bucket: s.source_in_bucket,
            made,
        }))
    }

    /// Are derivatives like `d` kept in the bucket? (`derivatives.store`, and a
    /// key the bucket accepts.)
    fn stores(&self, d: &Derived) -> bool {
        self.cfg.derivatives.store && d.storable()
    }

    /// Stage `publish`: into L1 (before the flight ends, so there is no gap),
    /// then written back to the bucket if admitted; neither when the original
    /// was purged since the render started (checked again before each write
    /// attempt).
    async fn publish(&self, ctx: &Ctx, d: &Derived, item: &Arc<Entry>, ticket: Ticket) {
        if !self.remember(&d.key, item, &ticket).await {
            return;
        }
        let reached = self.admission.note_request(&d.key);
        self.write_back(ctx, d, item, ticket, reached).await;
    }

    /// Put a derivative into L1 unless its original was purged since `ticket`
    /// was taken; answers whether it did. A purge that lands between this
    /// check and the insert is caught where every L1 hit is decided: the `l1`
    /// stage serves no entry made before a purge of its original.
    async fn remember(&self, key: &str, item: &Arc<Entry>, ticket: &Ticket) -> bool {
        if !ticket.still_valid() {
            return false;
        }
        self.l1.insert(key.to_string(), item.clone()).await;
        true
    }

    /// Write a derivative back if the bucket should hold it: stores derivatives
    /// like it, its original is in the bucket (else it could never be checked),
    /// and `service::admit` admits it. Also from an L1 hit that made a
    /// `repeat` derivative admissible.
    pub(super) async fn write_back(
        &self,
        ctx: &Ctx,
        d: &Derived,
        item: &Arc<Entry>,
        ticket: Ticket,
        repeat_reached: bool,
    ) {
        if !(self.stores(d) && item.source_in_bucket) {
            return;
        }
        let verdict = self
            .admission
            .decide(
                &self.store,
                &ctx.req.key,
                &d.key,
                ctx.req.from_style,
                &d.canonical,
                repeat_reached,
            )
            .await;
        self.metrics
            .writeback_admission
            .with_label_values(&[verdict.label()])
            .inc();
        if verdict != Verdict::Admitted {
            return;
        }
        let job = Job {
            ticket: Some(ticket),
            key: d.key.clone(),
            obj: PutObject {
                bytes: item.bytes.clone(),
                content_type: item.content_type.clone(),
                metadata: derivative_metadata(item, &d.canonical),
            },
        };
        match self.cfg.derivatives.write {
            WriteMode::Sync => self.writeback.write_now(job).await,
            WriteMode::Async => self.writeback.submit(job).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG's header up to its first scan: SOF `marker`, 6028x3391, 4:2:0.
    fn header(marker: u8) -> Vec<u8> {
        let mut d = vec![
            0xFF, 0xD8, 0xFF, marker, 0, 17, 8, 0x0D, 0x3F, 0x17, 0x8C, 3,
        ];
        d.extend_from_slice(&[1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        d.extend_from_slice(&[0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 0, 0]);
        d
    }

    #[test]
    fn a_progressive_jpeg_reserves_its_coefficients() {
        let plan = crate::process::lang::parse_process("image/resize,w_300", &Default::default())
            .expect("plan");
        let (progressive, baseline) = (header(0xC2), header(0xC0));
        let base = processing_bytes(&baseline, &plan);
        assert!(base > 0, "the header is read");
        assert_eq!(
            processing_bytes(&progressive, &plan) - base,
            (754 * 424 + 2 * 377 * 212) * 128
        );
    }
}
