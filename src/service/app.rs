//! One site's application: its configuration, store, caches, flights and the
//! shared pool and budget ([`App`]), and what every site of a process shares
//! ([`Shared`]). The stages, the render and the source read are `impl App`
//! blocks in their own files.

use std::sync::Arc;

use super::admit;
use super::ctx::CacheStatus;
use super::fresh::Freshness;
use crate::budget::{Budget, Reservation};
use crate::cache::{Coalescer, Entry, Purges, SiteId, L1};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::mirror::{Fetched, Mirror};
use crate::pool::Pool;
use crate::process::engine::pipeline::Options;
use crate::storage::counted::Counted;
use crate::storage::DynStore;
use crate::writeback::WriteBack;

/// A render's result: the derivative and where it came from.
pub type Rendered = (Arc<Entry>, CacheStatus);

/// An original whole in memory, for processing.
#[derive(Clone)]
pub struct Source {
    pub item: Arc<Entry>,
    /// `store`, `memory` or `mirrored`.
    pub status: CacheStatus,
    /// Its bytes, held from the memory budget until the last render using it
    /// is done (`None` for an L1 hit: L1 has its own bound).
    pub _mem: Option<Arc<Reservation>>,
}

/// Shared work in flight, one single-flight table per kind: renders of a
/// derivative, reads of an original, fetches from a mirror origin.
pub(super) struct Flights {
    pub(super) renders: Arc<Coalescer<Rendered>>,
    pub(super) sources: Arc<Coalescer<Source>>,
    pub(super) mirrors: Arc<Coalescer<Option<Arc<Fetched>>>>,
}

pub struct App {
    pub cfg: Arc<Config>,
    /// The bucket, every request counted (`pixmirror_store_requests_total`).
    pub store: DynStore,
    pub metrics: Arc<Metrics>,
    pub l1: L1,
    pub writeback: Arc<WriteBack>,
    pub(super) fresh: Freshness,
    pub(super) flights: Flights,
    pub(super) purges: Arc<Purges>,
    pub(super) admission: admit::Admission,
    pub(super) mirror: Option<Mirror>,
    pub(super) pool: Arc<Pool>,
    pub(super) budget: Arc<Budget>,
    pub(super) process_opts: Options,
}

/// What every site of one process shares: the metrics registry, the libvips
/// pool, the memory budget and the L1 memory (each site sees its own keys).
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub(super) pool: Arc<Pool>,
    pub(super) budget: Arc<Budget>,
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
            // Remembered as long as an entry made before the purge can live.
            purges: Purges::new(wait.max(cfg.cache.ttl.0)),
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
}

/// The engine's options from `[process]`: made here, where the
/// configuration meets the engine, which does not read it.
impl Options {
    pub fn from_config(c: &crate::config::ProcessConfig) -> Options {
        Options {
            max_source_pixels: c.max_source_pixels,
            max_output_pixels: c.max_output_pixels,
            max_frames: c.max_frames,
            jpeg_quality: c.jpeg_quality,
            webp_quality: c.webp_quality,
            avif_quality: c.avif_quality,
            avif_effort: c.avif_effort,
            webp_effort: c.webp_effort,
            webp_large_source_effort: c.webp_large_source_effort,
            jpeg_scan_skip: c.jpeg_scan_skip,
            deadline: None,
        }
    }
}
