//! Derivative write-back: a bounded queue drained by a worker with retries and
//! backoff. A full queue means the caller writes inline (never dropped); on
//! shutdown the queue is closed and drained within a deadline, and a write
//! that comes after the drain (a render that outlived the requests) is
//! abandoned, never written: nothing writes once shutdown has drained.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex as AsyncMutex};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::storage::{DynStore, PutObject};

pub struct Job {
    pub key: String,
    pub obj: PutObject,
    /// Written only while this holds (the original was not purged since the
    /// render started); `None` for writes that always go.
    pub ticket: Option<crate::cache::Ticket>,
}

pub struct WriteBack {
    tx: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    worker: AsyncMutex<Option<JoinHandle<()>>>,
    store: DynStore,
    metrics: Arc<Metrics>,
    attempts: u32,
    /// Drained for shutdown: later writes are abandoned.
    closed: AtomicBool,
}

/// Put with retries and exponential backoff; counts every attempt.
pub async fn put_with_retries(
    store: &DynStore,
    metrics: &Metrics,
    job: &Job,
    attempts: u32,
) -> bool {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=attempts {
        if attempt > 1 {
            metrics.writeback_retries.inc();
        }
        if job.ticket.as_ref().is_some_and(|t| !t.still_valid()) {
            tracing::debug!(key = %job.key, "write-back dropped: the original was purged");
            return false;
        }
        match store.put(&job.key, job.obj.clone()).await {
            Ok(_) => {
                metrics.store_writes.with_label_values(&["ok"]).inc();
                return true;
            }
            Err(e) => {
                metrics.store_writes.with_label_values(&["error"]).inc();
                tracing::warn!(key = %job.key, attempt, error = %e, "derivative write-back failed");
                if attempt < attempts {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
    metrics.writeback_failures.inc();
    false
}

impl WriteBack {
    pub fn new(
        store: DynStore,
        metrics: Arc<Metrics>,
        capacity: usize,
        attempts: u32,
    ) -> Arc<WriteBack> {
        let (tx, mut rx) = mpsc::channel::<Job>(capacity.max(1));
        let wb = Arc::new(WriteBack {
            tx: std::sync::Mutex::new(Some(tx)),
            worker: AsyncMutex::new(None),
            store: store.clone(),
            metrics: metrics.clone(),
            attempts,
            closed: AtomicBool::new(false),
        });
        let worker = tokio::spawn(async move {
            // Up to 4 writes in flight at once.
            let sem = Arc::new(tokio::sync::Semaphore::new(4));
            let mut tasks = tokio::task::JoinSet::new();
            while let Some(job) = rx.recv().await {
                let Ok(permit) = sem.clone().acquire_owned().await else {
                    break;
                };
                let (store, metrics) = (store.clone(), metrics.clone());
                tasks.spawn(async move {
                    put_with_retries(&store, &metrics, &job, attempts).await;
                    metrics.writeback_queue_depth.dec();
                    drop(permit);
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        });
        if let Ok(mut w) = wb.worker.try_lock() {
            *w = Some(worker);
        }
        wb
    }

    /// After the drain: the write is abandoned (counted, logged).
    fn abandoned(&self, job: &Job) -> bool {
        if !self.closed.load(Ordering::SeqCst) {
            return false;
        }
        self.abandon(job);
        true
    }

    fn abandon(&self, job: &Job) {
        self.metrics.writeback_abandoned.inc();
        tracing::warn!(key = %job.key, "write-back after the shutdown drain: abandoned");
    }

    /// Queue a write; when the queue is full, write now.
    pub async fn submit(&self, job: Job) {
        if self.abandoned(&job) {
            return;
        }
        let tx = crate::lock::lock(&self.tx).clone();
        let job = match tx {
            Some(tx) => {
                self.metrics.writeback_queue_depth.inc();
                match tx.try_send(job) {
                    Ok(()) => return,
                    Err(mpsc::error::TrySendError::Full(j))
                    | Err(mpsc::error::TrySendError::Closed(j)) => {
                        self.metrics.writeback_queue_depth.dec();
                        self.metrics.writeback_inline.inc();
                        j
                    }
                }
            }
            // The queue is gone only once drained (a submit that passed the
            // check just before the drain): abandoned too, never written.
            None => return self.abandon(&job),
        };
        put_with_retries(&self.store, &self.metrics, &job, self.attempts).await;
    }

    /// Write now, before responding (`derivatives.write = "sync"`).
    pub async fn write_now(&self, job: Job) {
        if self.abandoned(&job) {
            return;
        }
        put_with_retries(&self.store, &self.metrics, &job, self.attempts).await;
    }

    /// Close the queue and wait (up to `timeout`) until every queued write has landed.
    pub async fn drain(&self, timeout: Duration) -> bool {
        self.closed.store(true, Ordering::SeqCst);
        crate::lock::lock(&self.tx).take();
        let handle = self.worker.lock().await.take();
        match handle {
            Some(h) => tokio::time::timeout(timeout, h).await.is_ok(),
            None => true,
        }
    }
}
