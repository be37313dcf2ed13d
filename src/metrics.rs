//! Every `pixmirror_*` metric, in one place. One registry per server instance
//! (so tests running several servers in one process count separately).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub processed: IntCounter,
    pub process_seconds: Histogram,
    pub source_fetches: IntCounterVec,
    pub store_writes: IntCounterVec,
    pub store_requests: IntCounterVec,
    pub coalesced: IntCounter,
    pub l1_bytes: IntGauge,
    pub l1_items: IntGauge,
    pub writeback_queue_depth: IntGauge,
    pub writeback_inline: IntCounter,
    pub busy: IntCounter,
    pub pool_in_use: IntGauge,
    pub pool_waiting: IntGauge,
    pub memory_reserved: IntGauge,
    pub writeback_admission: IntCounterVec,
    pub memory_budget: IntGauge,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are static; a failure here is a programming error.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_requests_total",
                "Image requests by X-Cache-Status and response code",
            ),
            &["cache_status", "code"],
        ));
        let request_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "pixmirror_request_duration_seconds",
                "Time to produce a response (until headers)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["cache_status"],
        ));
        let processed = must(IntCounter::new(
            "pixmirror_processed_total",
            "images processed (libvips runs that produced an output)",
        ));
        let process_seconds = must(Histogram::with_opts(
            HistogramOpts::new(
                "pixmirror_process_duration_seconds",
                "CPU-bound libvips run time",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        ));
        let source_fetches = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_source_fetches_total",
                "Originals read, by source (store or mirror)",
            ),
            &["source"],
        ));
        let store_writes = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_store_writes_total",
                "Derivative write attempts to the bucket, by result (ok or error)",
            ),
            &["result"],
        ));
        let store_requests = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_store_requests_total",
                "Requests to the bucket, by operation (GET, HEAD, PUT, DELETE, LIST) and result (ok, not_found, denied, error): the billed S3 requests",
            ),
            &["op", "result"],
        ));
        let coalesced = must(IntCounter::new(
            "pixmirror_coalesced_total",
            "Requests that joined work already in flight instead of doing it again",
        ));
        let l1_bytes = must(IntGauge::new(
            "pixmirror_l1_bytes",
            "Bytes held by the in-memory cache",
        ));
        let l1_items = must(IntGauge::new(
            "pixmirror_l1_items",
            "Entries in the in-memory cache",
        ));
        let writeback_queue_depth = must(IntGauge::new(
            "pixmirror_writeback_queue_depth",
            "Derivative write-backs queued or in progress",
        ));
        let writeback_inline = must(IntCounter::new(
            "pixmirror_writeback_inline_total",
            "Write-backs done inline because the queue was full (or closing)",
        ));
        let busy = must(IntCounter::new(
            "pixmirror_busy_total",
            "Requests refused with 503 Busy",
        ));
        let pool_in_use = must(IntGauge::new(
            "pixmirror_pool_in_use",
            "libvips slots in use",
        ));
        let pool_waiting = must(IntGauge::new(
            "pixmirror_pool_waiting",
            "Requests waiting for a libvips slot",
        ));
        let memory_reserved = must(IntGauge::new(
            "pixmirror_memory_reserved_bytes",
            "Bytes reserved from process.memory_budget by requests in flight",
        ));
        let memory_budget = must(IntGauge::new(
            "pixmirror_memory_budget_bytes",
            "process.memory_budget, resolved",
        ));
        let writeback_admission = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_writeback_admission_total",
                "Derivatives considered for the bucket, by verdict (derivatives.admit, max_per_original)",
            ),
            &["result"],
        ));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(writeback_admission.clone()),
            Box::new(memory_reserved.clone()),
            Box::new(memory_budget.clone()),
            Box::new(request_seconds.clone()),
            Box::new(processed.clone()),
            Box::new(process_seconds.clone()),
            Box::new(source_fetches.clone()),
            Box::new(store_writes.clone()),
            Box::new(store_requests.clone()),
            Box::new(coalesced.clone()),
            Box::new(l1_bytes.clone()),
            Box::new(l1_items.clone()),
            Box::new(writeback_queue_depth.clone()),
            Box::new(writeback_inline.clone()),
            Box::new(busy.clone()),
            Box::new(pool_in_use.clone()),
            Box::new(pool_waiting.clone()),
        ] {
            must(registry.register(c));
        }
        // Make the labelled series visible from the start.
        for s in ["store", "mirror"] {
            source_fetches.with_label_values(&[s]);
        }
        for r in ["ok", "error"] {
            store_writes.with_label_values(&[r]);
        }
        for op in ["GET", "HEAD", "PUT", "DELETE", "LIST"] {
            store_requests.with_label_values(&[op, "ok"]);
        }
        Metrics {
            registry,
            requests,
            request_seconds,
            processed,
            process_seconds,
            source_fetches,
            store_writes,
            store_requests,
            coalesced,
            l1_bytes,
            l1_items,
            writeback_queue_depth,
            writeback_inline,
            busy,
            pool_in_use,
            pool_waiting,
            memory_reserved,
            memory_budget,
            writeback_admission,
        }
    }

    /// Requests made to the bucket with operation `op` (every result).
    pub fn store_requests_of(&self, op: &str) -> u64 {
        ["ok", "not_found", "denied", "throttled", "timeout", "error"]
            .iter()
            .map(|r| self.store_requests.with_label_values(&[op, r]).get())
            .sum()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
