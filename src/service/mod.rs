//! The request path: one request is a [`Ctx`] that passes through named stages,
//! in this order, until one of them answers. Knows every other module; no hyper
//! types.
//!
//! ```text
//! serve:       l1 → not_modified → original | derivative
//! original:    locate (bucket, else mirror) → reply (stream, or buffer into L1)
//! derivative:  flight(derivative key) {
//!                bucket_derivative (GET it ∥ check the original)
//!                → source (L1, else flight(key) { locate: bucket, else mirror })
//!                → marks (each watermark image as a source)
//!                → process (pool) → publish (L1, write-back)
//!              } → reply
//! ```
//!
//! One place loads an original (`source::locate`), one place decides freshness
//! (`fresh::Freshness`), one place runs libvips (`render::process`).

pub mod admit;
mod fresh;
pub mod purge;
mod render;
pub mod sites;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::budget::Budget;
use crate::cache::{Coalescer, Entry, Purges, SiteId, L1};
use crate::config::Config;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::mirror::{Fetched, Mirror};
use crate::pool::Pool;
use crate::process::engine::pipeline::Options;
use crate::process::Plan;
use crate::storage::counted::Counted;
use crate::storage::{ByteStream, DynStore, ObjectMeta};
use crate::writeback::WriteBack;
use fresh::Freshness;
pub use render::derived_etag;
use render::Rendered;
use source::Source;

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
    /// The request asked for `format,auto`: every answer carries `Vary: Accept`.
    pub vary_accept: bool,
    /// HEAD: the body is not needed (originals are not downloaded).
    pub head: bool,
    /// `If-None-Match`, when sent.
    pub if_none_match: Option<String>,
    /// The query without the process parameter (for mirror `pass_query`).
    pub query: Option<String>,
    /// The client's headers (for mirror `headers.pass`).
    pub headers: http::HeaderMap,
    /// Asked for by a named style (`style/<name>`): `derivatives.admit = "styles"`.
    pub from_style: bool,
}

/// What a derivative request asks for, derived once from the plan.
#[derive(Debug)]
pub struct Derived {
    pub plan: Plan,
    /// The canonical process string (concrete format, never `auto`).
    pub canonical: String,
    /// Where the derivative is stored, and its L1 key.
    pub key: String,
}

impl Derived {
    /// Can the bucket hold it? Not when the original's own key is so long that
    /// even the hashed derivative key passes S3's limit: then it lives in L1 only.
    pub fn storable(&self) -> bool {
        self.key.len() <= crate::process::plan::MAX_KEY_BYTES
    }
}

/// One request as it passes through the stages.
#[derive(Debug)]
pub struct Ctx {
    pub req: ImageRequest,
    /// None for a request of the original.
    pub derived: Option<Derived>,
}

impl Ctx {
    /// The plan moves into `derived` (the one copy the stages read).
    pub fn new(mut req: ImageRequest, separator: &str) -> Ctx {
        let derived = req.plan.take().map(|plan| Derived {
            canonical: plan.canonical(),
            key: plan.derivative_key(&req.key, separator),
            plan,
        });
        Ctx { req, derived }
    }

    /// The key of what this request answers with: the derivative's, or the original's.
    pub fn cache_key(&self) -> &str {
        self.derived.as_ref().map_or(&self.req.key, |d| &d.key)
    }
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
    /// The canonical process string answered (`X-Pixmirror-Process`): what a
    /// snapped or normalised request was served as.
    pub process: Option<String>,
}

impl Reply {
    fn from_item(item: &Arc<Entry>, status: CacheStatus, vary_accept: bool) -> Reply {
        Reply {
            body: ReplyBody::Full(item.bytes.clone()),
            len: item.bytes.len() as u64,
            content_type: item.content_type.clone(),
            etag: item.etag.clone(),
            last_modified: item.last_modified,
            cache_status: status,
            vary_accept,
            process: None,
        }
    }

    fn from_meta(meta: ObjectMeta, body: ReplyBody, status: CacheStatus, vary: bool) -> Reply {
        Reply {
            body,
            len: meta.size,
            content_type: meta.content_type_or_default(),
            etag: meta.etag,
            last_modified: meta.last_modified,
            cache_status: status,
            vary_accept: vary,
            process: None,
        }
    }

    /// Headers only: `http::response` answers it with 304 (the ETag matches).
    fn not_modified(etag: String, vary_accept: bool) -> Reply {
        Reply {
            body: ReplyBody::Empty,
            len: 0,
            content_type: String::new(),
            etag,
            last_modified: None,
            cache_status: CacheStatus::Store,
            vary_accept,
            process: None,
        }
    }
}

/// Does `If-None-Match` match this ETag (weak comparison, lists and `*`)?
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_string();
    let etag = strip(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == etag)
}

/// Shared work in flight, one single-flight table per kind: renders of a
/// derivative, reads of an original, fetches from a mirror origin.
struct Flights {
    renders: Arc<Coalescer<Rendered>>,
    sources: Arc<Coalescer<Source>>,
    mirrors: Arc<Coalescer<Option<Arc<Fetched>>>>,
}

pub struct App {
    pub cfg: Arc<Config>,
    /// The bucket, every request counted (`pixmirror_store_requests_total`).
    pub store: DynStore,
    pub metrics: Arc<Metrics>,
    pub l1: L1,
    pub writeback: Arc<WriteBack>,
    fresh: Freshness,
    flights: Flights,
    purges: Arc<Purges>,
    admission: admit::Admission,
    mirror: Option<Mirror>,
    pool: Arc<Pool>,
    budget: Arc<Budget>,
    process_opts: Options,
}

/// What every site of one process shares: the metrics registry, the libvips
/// pool, the memory budget and the L1 memory (each site sees its own keys).
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pool: Arc<Pool>,
    budget: Arc<Budget>,
    l1: L1,
}

impl Shared {
    /// Sized by the top-level configuration.
    pub fn new(cfg: &Config, metrics: Arc<Metrics>) -> Shared {
        let pool = Pool::new(
            cfg.workers(),
            cfg.process.queue,
            cfg.process.timeout.0,
            metrics.clone(),
        );
        let total = cfg
            .process
            .memory_budget
            .0
            .map_or_else(crate::budget::auto_budget, |b| b.0);
        let budget = Budget::new(
            total,
            cfg.process.timeout.0,
            metrics.memory_reserved.clone(),
        );
        metrics.memory_budget.set(budget.total() as i64);
        let l1 = L1::new(
            cfg.cache.memory_bytes.0,
            cfg.cache.ttl.0,
            cfg.cache.max_item_bytes.0,
            metrics.l1_lookups.clone(),
        );
        Shared {
            metrics,
            pool: Arc::new(pool),
            budget: Arc::new(budget),
            l1,
        }
    }
}

impl App {
    /// `metrics` is the server's registry, which `mirror` already counts into.
    pub fn new(
        cfg: Config,
        store: DynStore,
        mirror: Option<Mirror>,
        metrics: Arc<Metrics>,
    ) -> Arc<App> {
        let shared = Shared::new(&cfg, metrics);
        App::new_in(cfg, store, mirror, &shared, SiteId::DEFAULT)
    }

    /// One site's App over the process's `shared` resources; `site` types
    /// its L1 keys ([`SiteKey`](crate::cache::SiteKey): the site and the key).
    /// Its flights (coalescing) are maps of its own, so keys of two sites
    /// never meet there either.
    pub fn new_in(
        cfg: Config,
        store: DynStore,
        mirror: Option<Mirror>,
        shared: &Shared,
        site: SiteId,
    ) -> Arc<App> {
        let cfg = Arc::new(cfg);
        let metrics = shared.metrics.clone();
        let store: DynStore = Arc::new(Counted::new(
            store,
            metrics.store_requests.clone(),
            metrics.stage_seconds.clone(),
        ));
        let writeback = WriteBack::new(
            store.clone(),
            metrics.clone(),
            cfg.derivatives.queue,
            cfg.derivatives.write_attempts,
        );
        let joined = metrics.coalesced.clone();
        let wait = cfg.shared_work_limit();
        Arc::new(App {
            l1: shared.l1.scoped(site),
            fresh: Freshness::new(&cfg.derivatives, store.clone(), wait),
            purges: Purges::new(wait),
            admission: admit::Admission::new(&cfg.derivatives, &cfg.styles),
            flights: Flights {
                renders: Coalescer::counting(joined.clone(), wait),
                sources: Coalescer::counting(joined.clone(), wait),
                mirrors: Coalescer::counting(joined, wait),
            },
            process_opts: Options::from_config(&cfg.process),
            mirror,
            pool: shared.pool.clone(),
            budget: shared.budget.clone(),
            writeback,
            metrics,
            store,
            cfg,
        })
    }

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
        if self.fresh.is_fresh(&ctx.req.key, &item).await {
            if let Some(d) = &ctx.derived {
                if self.admission.note_request(&d.key) {
                    let ticket = self.purges.ticket(&ctx.req.key);
                    self.write_back(ctx, d, &item, ticket, true).await;
                }
            }
            return Some(Reply::from_item(
                &item,
                CacheStatus::Memory,
                ctx.req.vary_accept,
            ));
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
        etag_matches(inm, &etag).then(|| Reply::not_modified(etag, ctx.req.vary_accept))
    }
}

/// User metadata of a stored derivative.
fn derivative_metadata(item: &Arc<Entry>, canonical: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(META_SOURCE_ETAG.to_string(), item.source_etag.clone());
    m.insert(META_CANONICAL.to_string(), canonical.to_string());
    if let Some(t) = item.last_modified {
        m.insert(META_SOURCE_MODIFIED.to_string(), httpdate::fmt_http_date(t));
    }
    m
}
