//! The bounded blocking pool for libvips: `workers` slots, `queue` waiters,
//! `503 Busy` beyond. CPU work never runs on the async workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::metrics::Metrics;

pub struct Pool {
    slots: Arc<Semaphore>,
    /// Runs in progress, and when memory was last given back (ms since start).
    active: Arc<AtomicUsize>,
    trimmed: Arc<std::sync::atomic::AtomicU64>,
    started: Instant,
    waiting: AtomicUsize,
    queue: usize,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl Pool {
    pub fn new(workers: usize, queue: usize, timeout: Duration, metrics: Arc<Metrics>) -> Pool {
        tune_allocator();
        metrics.pool_workers.set(workers.max(1) as i64);
        Pool {
            slots: Arc::new(Semaphore::new(workers.max(1))),
            active: Arc::new(AtomicUsize::new(0)),
            trimmed: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            started: Instant::now(),
            waiting: AtomicUsize::new(0),
            queue,
            timeout,
            metrics,
        }
    }

    /// No free slot: wait in the bounded queue, or refuse with `Busy` when it is full.
    async fn wait_for_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            self.metrics.busy.inc();
            return Err(Error::Busy(
                "too many images waiting to be processed; retry shortly".into(),
            ));
        }
        self.metrics.pool_waiting.inc();
        let permit = tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        self.metrics.pool_waiting.dec();
        match permit {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(Error::Internal("the processing pool is closed".into())),
            Err(_) => Err(Error::Timeout(
                "waited too long for a processing slot".into(),
            )),
        }
    }

    /// Run `f` on a blocking thread once a slot is free. `f` receives the
    /// deadline by which it should stop (checked between pipeline steps).
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Instant) -> Result<T> + Send + 'static,
    {
        let deadline = Instant::now() + self.timeout;
        let waited = Instant::now();
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => self.wait_for_slot().await?,
        };
        self.metrics.stage("pool_wait", waited);
        let metrics = self.metrics.clone();
        metrics.pool_in_use.inc();
        let (active, trimmed, started) = (self.active.clone(), self.trimmed.clone(), self.started);
        active.fetch_add(1, Ordering::SeqCst);
        let handle = tokio::task::spawn_blocking(move || {
            let r = f(deadline);
            drop(permit);
            if active.fetch_sub(1, Ordering::SeqCst) == 1 {
                give_back_memory(&trimmed, started);
            }
            r
        });
        let r = handle.await;
        metrics.pool_in_use.dec();
        match r {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "processing task panicked");
                Err(Error::Internal("processing failed unexpectedly".into()))
            }
        }
    }
}

/// The allocator for large decodes, set once before the first run: blocks up
/// to 32 MiB (glibc's highest mmap threshold) come from the arenas, and an
/// arena's free top goes back to the system only past 64 MiB, so a buffer
/// freed by one run serves the next. By default glibc maps each such block
/// afresh and the kernel faults in and zeroes every page of it, every time:
/// a progressive JPEG's coefficient arrays (10 to 40 MB for 20 MP, even at
/// 1/8) cost a third of that render's CPU that way (README "Operating it").
/// `give_back_memory` still returns it all when the pool goes idle. An
/// operator's own `GLIBC_TUNABLES` for malloc wins.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc."));
            if !tuned {
                // SAFETY: mallopt changes allocator parameters; it takes no pointers.
                unsafe {
                    libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
                    libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
                }
            }
        });
    }
}

const MMAP_THRESHOLD: i32 = 32 << 20;
const TRIM_THRESHOLD: i32 = 64 << 20;

/// When the last run ends (the pool is idle), hand the memory libvips and the
/// allocator keep cached back to the system, at most once a second: glibc keeps
/// freed pixel buffers in its arenas, so after a burst RSS would stay at its peak.
fn give_back_memory(trimmed: &std::sync::atomic::AtomicU64, started: Instant) {
    let now = started.elapsed().as_millis() as u64;
    let last = trimmed.load(Ordering::SeqCst);
    if now.saturating_sub(last) < 1000
        || trimmed
            .compare_exchange(last, now.max(1), Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    /// This thread's minor page faults so far.
    fn faults() -> i64 {
        // SAFETY: getrusage fills the struct we pass.
        unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_THREAD, &mut u);
            u.ru_minflt
        }
    }

    /// A 24 MiB buffer touched, freed, then allocated and touched again:
    /// with the allocator tuned the second one reuses the first's pages
    /// (glibc's default maps it afresh: 6144 faults).
    #[test]
    fn a_large_buffer_is_reused_without_page_faults() {
        super::tune_allocator();
        std::thread::spawn(|| {
            let touch = || {
                let mut v = vec![1u8; 24 << 20];
                v[12345] = 2;
                std::hint::black_box(&v);
            };
            touch();
            let before = faults();
            touch();
            let after = faults();
            assert!(after - before < 64, "{} page faults", after - before);
        })
        .join()
        .expect("thread");
    }
}
