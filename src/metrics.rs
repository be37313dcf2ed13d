//! Every `pixmirror_*` metric, in one place. One registry per server instance
//! (so tests running several servers in one process count separately).

use prometheus::{
    Counter, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_seconds: HistogramVec,
    pub processed: IntCounter,
    pub process_seconds: HistogramVec,
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
    pub pool_workers: IntGauge,
    pub memory_reserved: IntGauge,
    pub writeback_admission: IntCounterVec,
    pub memory_budget: IntGauge,
    pub stage_seconds: HistogramVec,
    pub source_bytes: IntCounterVec,
    pub response_bytes: IntCounterVec,
    pub l1_lookups: IntCounterVec,
    pub writeback_retries: IntCounter,
    pub writeback_failures: IntCounter,
    pub mirror_fetches: IntCounterVec,
    pub errors: IntCounterVec,
    process: ProcessMetrics,
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
                "Time to produce a response (until headers), by X-Cache-Status and code",
            )
            .buckets(STAGE_BUCKETS.to_vec()),
            &["cache_status", "code"],
        ));
        let processed = must(IntCounter::new(
            "pixmirror_processed_total",
            "images processed (libvips runs that produced an output)",
        ));
        let process_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "pixmirror_process_duration_seconds",
                "CPU-bound libvips run time, by output format",
            )
            .buckets(STAGE_BUCKETS.to_vec()),
            &["format"],
        ));
        let stage_seconds = must(HistogramVec::new(
            HistogramOpts::new(
                "pixmirror_stage_duration_seconds",
                "Time in each stage: store_get, store_head, store_put, store_delete, store_list, mirror_fetch, pool_wait",
            )
            .buckets(STAGE_BUCKETS.to_vec()),
            &["stage"],
        ));
        let source_bytes = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_source_bytes_total",
                "Bytes of originals read in, by source (store or mirror)",
            ),
            &["source"],
        ));
        let response_bytes = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_response_bytes_total",
                "Response body bytes sent, by X-Cache-Status",
            ),
            &["cache_status"],
        ));
        let l1_lookups = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_l1_lookups_total",
                "In-memory cache lookups, by result (hit or miss)",
            ),
            &["result"],
        ));
        let writeback_retries = must(IntCounter::new(
            "pixmirror_writeback_retries_total",
            "Write-back attempts after a failed one",
        ));
        let writeback_failures = must(IntCounter::new(
            "pixmirror_writeback_failures_total",
            "Derivatives not written after every attempt failed",
        ));
        let mirror_fetches = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_mirror_fetches_total",
                "Mirror origin fetches, by rule (its index in mirror.rules) and outcome (ok, or the error code)",
            ),
            &["rule", "outcome"],
        ));
        let errors = must(IntCounterVec::new(
            Opts::new(
                "pixmirror_errors_total",
                "Error responses, by category (client, upstream, overload, timeout, internal) and SPEC code",
            ),
            &["category", "code"],
        ));
        let process = ProcessMetrics::new();
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
        let pool_workers = must(IntGauge::new(
            "pixmirror_pool_workers",
            "libvips slots (process.workers, resolved): pool_in_use / pool_workers is saturation",
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
            Box::new(pool_workers.clone()),
            Box::new(stage_seconds.clone()),
            Box::new(source_bytes.clone()),
            Box::new(response_bytes.clone()),
            Box::new(l1_lookups.clone()),
            Box::new(writeback_retries.clone()),
            Box::new(writeback_failures.clone()),
            Box::new(mirror_fetches.clone()),
            Box::new(errors.clone()),
            Box::new(process.resident.clone()),
            Box::new(process.cpu.clone()),
            Box::new(process.fds.clone()),
            Box::new(process.threads.clone()),
        ] {
            must(registry.register(c));
        }
        // Make the labelled series visible from the start.
        for s in ["store", "mirror"] {
            source_fetches.with_label_values(&[s]);
            source_bytes.with_label_values(&[s]);
        }
        for r in ["hit", "miss"] {
            l1_lookups.with_label_values(&[r]);
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
            pool_workers,
            memory_reserved,
            memory_budget,
            writeback_admission,
            stage_seconds,
            source_bytes,
            response_bytes,
            l1_lookups,
            writeback_retries,
            writeback_failures,
            mirror_fetches,
            errors,
            process,
        }
    }

    /// Record the time spent in `stage` since `start`.
    pub fn stage(&self, stage: &str, start: std::time::Instant) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(start.elapsed().as_secs_f64());
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
        self.process.update();
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

/// Seconds, from a memory hit's store check to a large libvips run.
const STAGE_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process metrics Prometheus clients export as `process_*`, named
/// `pixmirror_process_*` (SPEC: every metric name starts with `pixmirror_`);
/// read from /proc at each scrape, absent elsewhere.
struct ProcessMetrics {
    resident: IntGauge,
    cpu: Counter,
    fds: IntGauge,
    threads: IntGauge,
}

impl ProcessMetrics {
    fn new() -> ProcessMetrics {
        ProcessMetrics {
            resident: must(IntGauge::new(
                "pixmirror_process_resident_memory_bytes",
                "Resident memory size in bytes",
            )),
            cpu: must(Counter::new(
                "pixmirror_process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds",
            )),
            fds: must(IntGauge::new(
                "pixmirror_process_open_fds",
                "Number of open file descriptors",
            )),
            threads: must(IntGauge::new(
                "pixmirror_process_threads",
                "Number of OS threads",
            )),
        }
    }

    fn update(&self) {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // SAFETY: sysconf has no preconditions.
        let (tick, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
                libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
            )
        };
        // man 5 proc: utime 14, stime 15, num_threads 20, rss 24 (1-based,
        // counting pid and comm); `rest` starts at field 3.
        let cpu = (num(11) + num(12)) as f64 / tick;
        self.cpu.inc_by((cpu - self.cpu.get()).max(0.0));
        self.threads.set(num(17) as i64);
        self.resident.set((num(21) * page) as i64);
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            self.fds.set(dir.count() as i64);
        }
    }
}
