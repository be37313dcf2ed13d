//! Which derivatives are written back to the bucket (issue 13): the one place
//! that decides it, so public URLs cannot flood the bucket.
//!
//! - `derivatives.admit`: `always`; `repeat` (from the `admit_hits`-th request
//!   for a derivative, counted in a fixed-size frequency sketch whose memory
//!   does not grow with distinct URLs); `styles` (only requests by a named style).
//! - `derivatives.max_per_original`: past it, new derivatives of an original are
//!   served but not stored (warned once per original). The count starts from
//!   what the bucket holds (a listing, cached per original for a minute), so it
//!   holds across the fleet and restarts.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{Admit, DerivativesConfig};
use crate::lock::lock;
use crate::storage::DynStore;

/// Why a derivative is or is not written back (the metric's `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Admitted,
    /// `repeat`: not asked for often enough yet.
    Rare,
    /// `styles`: not a named style.
    NotAStyle,
    /// The original already has `max_per_original` stored derivatives.
    Capped,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Admitted => "admitted",
            Verdict::Rare => "rare",
            Verdict::NotAStyle => "not_a_style",
            Verdict::Capped => "capped",
        }
    }
}

/// A count-min sketch of request counts: `ROWS` rows of `WIDTH` one-byte
/// counters (256 KiB, whatever the number of distinct keys). All counters are
/// halved every `10 × WIDTH` additions, so old popularity fades (TinyLFU's reset).
pub struct Sketch {
    rows: Mutex<Vec<u8>>,
    added: AtomicUsize,
    hasher: std::collections::hash_map::RandomState,
}

const ROWS: usize = 4;
const WIDTH: usize = 1 << 16;

impl Default for Sketch {
    fn default() -> Self {
        Sketch {
            rows: Mutex::new(vec![0; ROWS * WIDTH]),
            added: AtomicUsize::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl Sketch {
    /// Count one more request for `key`; the estimate of its count so far.
    pub fn record(&self, key: &str) -> u32 {
        let hash = self.hasher.hash_one(key);
        let mut rows = lock(&self.rows);
        let mut estimate = u8::MAX;
        for r in 0..ROWS {
            // Four 16-bit slices of one 64-bit hash, one per row.
            let i = r * WIDTH + ((hash >> (r * 16)) as usize & (WIDTH - 1));
            rows[i] = rows[i].saturating_add(1);
            estimate = estimate.min(rows[i]);
        }
        if self.added.fetch_add(1, Ordering::Relaxed) + 1 >= 10 * WIDTH {
            self.added.store(0, Ordering::Relaxed);
            rows.iter_mut().for_each(|c| *c /= 2);
        }
        estimate as u32
    }

    /// Bytes the sketch holds (constant).
    pub fn bytes(&self) -> usize {
        lock(&self.rows).len()
    }
}

/// Stored derivatives of one original, as last listed plus those written since.
struct PerOriginal {
    count: AtomicUsize,
    warned: AtomicBool,
}

pub struct Admission {
    policy: Admit,
    /// The canonical plans of the configured styles (`auto` as every format):
    /// with `admit = "styles"` these are stored however the request spelled them.
    styled: std::collections::HashSet<String>,
    hits: u32,
    cap: usize,
    separator: String,
    pub sketch: Sketch,
    originals: moka::future::Cache<String, Arc<PerOriginal>>,
}

impl Admission {
    pub fn new(
        cfg: &DerivativesConfig,
        styles: &std::collections::BTreeMap<String, String>,
    ) -> Admission {
        Admission {
            policy: cfg.admit,
            styled: style_canonicals(styles),
            hits: cfg.admit_hits.max(1),
            cap: cfg.max_per_original,
            separator: cfg.separator.clone(),
            sketch: Sketch::default(),
            originals: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// A request for a derivative, counted for `repeat`. True when this very
    /// request makes it admissible (so an L1 hit can still get it stored).
    pub fn note_request(&self, derivative_key: &str) -> bool {
        self.policy == Admit::Repeat && self.sketch.record(derivative_key) == self.hits
    }

    /// Is `derivative_key` of `original` to be written back now? `hit_counted`:
    /// the request was already counted by [`note_request`](Self::note_request).
    pub async fn decide(
        &self,
        store: &DynStore,
        original: &str,
        derivative_key: &str,
        from_style: bool,
        canonical: &str,
        repeat_reached: bool,
    ) -> Verdict {
        match self.policy {
            Admit::Repeat if !repeat_reached => return Verdict::Rare,
            Admit::Styles if !(from_style || self.styled.contains(canonical)) => {
                return Verdict::NotAStyle
            }
            _ => {}
        }
        if self.cap == 0 {
            return Verdict::Admitted;
        }
        let entry = self.per_original(store, original).await;
        let n = entry.count.fetch_add(1, Ordering::SeqCst);
        if n >= self.cap {
            entry.count.fetch_sub(1, Ordering::SeqCst);
            if !entry.warned.swap(true, Ordering::SeqCst) {
                tracing::warn!(
                    original,
                    derivative_key,
                    cap = self.cap,
                    "derivatives.max_per_original reached: further derivatives are served, not stored"
                );
            }
            return Verdict::Capped;
        }
        Verdict::Admitted
    }

    async fn per_original(&self, store: &DynStore, original: &str) -> Arc<PerOriginal> {
        let prefix = format!("{original}{}", self.separator);
        self.originals
            .get_with(original.to_string(), async {
                // An unreadable listing counts as empty: the cap is a bound on
                // growth, not a reason to fail or to stop storing.
                let listed = store.list(&prefix).await.map(|v| v.len()).unwrap_or(0);
                Arc::new(PerOriginal {
                    count: AtomicUsize::new(listed),
                    warned: AtomicBool::new(false),
                })
            })
            .await
    }
}

/// Every canonical form the configured styles can take.
fn style_canonicals(
    styles: &std::collections::BTreeMap<String, String>,
) -> std::collections::HashSet<String> {
    use crate::process::{lang, Format, FormatSpec};
    let mut out = std::collections::HashSet::new();
    for value in styles.values() {
        let Ok(plan) = lang::parse_process(value, styles) else {
            continue;
        };
        if plan.format == Some(FormatSpec::Auto) {
            for f in Format::ALL {
                let mut p = plan.clone();
                p.format = Some(FormatSpec::Concrete(f));
                out.insert(p.canonical());
            }
        } else {
            out.insert(plan.canonical());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sketch_counts_and_stays_small() {
        let s = Sketch::default();
        let bytes = s.bytes();
        assert_eq!(s.record("a"), 1);
        assert_eq!(s.record("a"), 2);
        assert_eq!(s.record("b"), 1);
        // A million distinct keys later, the same memory.
        for i in 0..1_000_000 {
            s.record(&format!("k{i}"));
        }
        assert_eq!(s.bytes(), bytes);
        assert_eq!(bytes, ROWS * WIDTH);
    }
}
