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
