//! The stages of one request, in order, over its [`Ctx`]: the first that
//! answers ends the list (see the module doc of `service`).

use std::sync::Arc;

use super::app::App;
use super::ctx::{etag_matches, CacheStatus, Ctx, ImageRequest, Reply};
use super::render::derived_etag;
use crate::error::Result;

impl App {
    /// Serve one validated request: the stages in order, the first answer wins.
    pub async fn serve(self: &Arc<Self>, req: ImageRequest) -> Result<Reply> {
        let ctx = Arc::new(Ctx::new(req, &self.cfg.derivatives.separator));
        let mut reply = self.stages(&ctx).await?;
        reply.process = ctx.derived.as_ref().map(|d| d.canonical.clone());
        Ok(reply)
    }

    /// The stages in order; the first that answers ends the list.
    async fn stages(self: &Arc<Self>, ctx: &Arc<Ctx>) -> Result<Reply> {
        let ctx = ctx.clone();
        if let Some(reply) = self.l1(&ctx).await {
            return Ok(reply);
        }
        if let Some(reply) = self.not_modified(&ctx).await {
            return Ok(reply);
        }
        match ctx.derived {
            None => self.original(&ctx).await,
            Some(_) => self.derivative(&ctx).await,
        }
    }

    /// Stage `l1`: this instance's memory, if what it holds is still fresh.
    async fn l1(&self, ctx: &Ctx) -> Option<Reply> {
        let key = ctx.cache_key();
        let item = self.l1.get(key).await?;
        // Made before a purge of its original: never served (the purge's own
        // drop of L1 may have raced with the insert).
        if self.purges.purged_since(&ctx.req.key, item.made) {
            self.l1.remove(key).await;
            return None;
        }
        if self.fresh.is_fresh(&ctx.req.key, &item).await {
            if let Some(d) = &ctx.derived {
                if self.admission.note_request(&d.key) {
                    let ticket = self.purges.ticket(&ctx.req.key);
                    self.write_back(ctx, d, &item, ticket, true).await;
                }
            }
            return Some(Reply::from_item(&item, CacheStatus::Memory, ctx.req.vary));
        }
        self.l1.remove(key).await;
        None
    }

    /// Stage `not_modified`: a conditional request whose ETag follows from the
    /// original's (known, or one HEAD) is answered 304 with nothing fetched or
    /// processed. Any doubt (no original in the bucket, a failing store) goes on.
    async fn not_modified(&self, ctx: &Ctx) -> Option<Reply> {
        let inm = ctx.req.if_none_match.as_deref()?;
        let source_etag = self.fresh.current(&ctx.req.key).await.ok()??;
        let etag = match &ctx.derived {
            Some(d) => derived_etag(&source_etag, &d.canonical),
            None => source_etag,
        };
        etag_matches(inm, &etag).then(|| Reply::not_modified(etag, ctx.req.vary))
    }
}
