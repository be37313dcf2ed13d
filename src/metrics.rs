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
    pub writeback_abandoned: IntCounter,
    pub mirror_fetches: IntCounterVec,
    pub errors: IntCounterVec,
    pub video_read_bytes: IntCounterVec,
    pub video_read_ranges: IntCounterVec,
    pub video_snapshot_seconds: HistogramVec,
    process: ProcessMetrics,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // Metric definitions are static; a failure here is a programming error.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

/// One metric's definition: its name, help and labels.
struct Def {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
}

const fn def(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Def {
    Def { name, help, labels }
}

// Every metric, one definition each (the table the registry is built from).
const REQUESTS: Def = def(
    "pixmirror_requests_total",
    "Image requests by X-Cache-Status and response code",
    &["cache_status", "code"],
);
const REQUEST_SECONDS: Def = def(
    "pixmirror_request_duration_seconds",
    "Time to produce a response (until headers), by X-Cache-Status and code",
    &["cache_status", "code"],
);
const PROCESSED: Def = def(
    "pixmirror_processed_total",
    "images processed (libvips runs that produced an output)",
    &[],
);
const PROCESS_SECONDS: Def = def(
    "pixmirror_process_duration_seconds",
    "CPU-bound libvips run time, by output format",
    &["format"],
);
const STAGE_SECONDS: Def = def("pixmirror_stage_duration_seconds", "Time in each stage: store_get, store_head, store_put, store_delete, store_list, mirror_fetch, pool_wait", &["stage"]);
const SOURCE_BYTES: Def = def(
    "pixmirror_source_bytes_total",
    "Bytes of originals read in, by source (store or mirror)",
    &["source"],
);
const RESPONSE_BYTES: Def = def(
    "pixmirror_response_bytes_total",
    "Response body bytes sent, by X-Cache-Status",
    &["cache_status"],
);
const L1_LOOKUPS: Def = def(
    "pixmirror_l1_lookups_total",
    "In-memory cache lookups, by result (hit or miss)",
    &["result"],
);
const WRITEBACK_RETRIES: Def = def(
    "pixmirror_writeback_retries_total",
    "Write-back attempts after a failed one",
    &[],
);
const WRITEBACK_FAILURES: Def = def(
    "pixmirror_writeback_failures_total",
    "Derivatives not written after every attempt failed",
    &[],
);
const WRITEBACK_ABANDONED: Def = def(
    "pixmirror_writeback_abandoned_total",
    "Write-backs abandoned because they came after the shutdown drain",
    &[],
);
const MIRROR_FETCHES: Def = def("pixmirror_mirror_fetches_total", "Mirror origin fetches, by rule (its index in mirror.rules) and outcome (ok, or the error code)", &["rule", "outcome"]);
const ERRORS: Def = def(
    "pixmirror_errors_total",
    "Error responses, by category (client, upstream, overload, timeout, internal) and SPEC code",
    &["category", "code"],
);
const VIDEO_READ_BYTES: Def = def(
    "pixmirror_video_read_bytes_total",
    "Bytes of videos read for snapshots (ranged reads), by source (store or mirror)",
    &["source"],
);
const VIDEO_READ_RANGES: Def = def(
    "pixmirror_video_read_ranges_total",
    "Ranged reads of videos for snapshots, by source (store or mirror)",
    &["source"],
);
const VIDEO_SNAPSHOT_SECONDS: Def = def(
    "pixmirror_video_snapshot_duration_seconds",
    "Time of one snapshot in the pool (ranged reads, decode, encode), by result (ok or failed)",
    &["result"],
);
const SOURCE_FETCHES: Def = def(
    "pixmirror_source_fetches_total",
    "Originals read, by source (store or mirror)",
    &["source"],
);
const STORE_WRITES: Def = def(
    "pixmirror_store_writes_total",
    "Derivative write attempts to the bucket, by result (ok or error)",
    &["result"],
);
const STORE_REQUESTS: Def = def("pixmirror_store_requests_total", "Requests to the bucket, by operation (GET, HEAD, PUT, DELETE, LIST) and result (ok, not_found, denied, timeout, throttled, changed, error): the billed S3 requests", &["op", "result"]);
const COALESCED: Def = def(
    "pixmirror_coalesced_total",
    "Requests that joined work already in flight instead of doing it again",
    &[],
);
const L1_BYTES: Def = def(
    "pixmirror_l1_bytes",
    "Bytes held by the in-memory cache",
    &[],
);
const L1_ITEMS: Def = def("pixmirror_l1_items", "Entries in the in-memory cache", &[]);
const WRITEBACK_QUEUE_DEPTH: Def = def(
    "pixmirror_writeback_queue_depth",
    "Derivative write-backs queued or in progress",
    &[],
);
const WRITEBACK_INLINE: Def = def(
    "pixmirror_writeback_inline_total",
    "Write-backs done inline because the queue was full (or closing)",
    &[],
);
const BUSY: Def = def(
    "pixmirror_busy_total",
    "Requests refused with 503 Busy",
    &[],
);
const POOL_IN_USE: Def = def("pixmirror_pool_in_use", "libvips slots in use", &[]);
const POOL_WAITING: Def = def(
    "pixmirror_pool_waiting",
    "Requests waiting for a libvips slot",
    &[],
);
const POOL_WORKERS: Def = def(
    "pixmirror_pool_workers",
    "libvips slots (process.workers, resolved): pool_in_use / pool_workers is saturation",
    &[],
);
const MEMORY_RESERVED: Def = def(
    "pixmirror_memory_reserved_bytes",
    "Bytes reserved from process.memory_budget by requests in flight",
    &[],
);
const MEMORY_BUDGET: Def = def(
    "pixmirror_memory_budget_bytes",
    "process.memory_budget, resolved",
    &[],
);
const WRITEBACK_ADMISSION: Def = def(
    "pixmirror_writeback_admission_total",
    "Derivatives considered for the bucket, by verdict (derivatives.admit, max_per_original)",
    &["result"],
);
const PROCESS_RESIDENT: Def = def(
    "pixmirror_process_resident_memory_bytes",
    "Resident memory size in bytes",
    &[],
);
const PROCESS_CPU: Def = def(
    "pixmirror_process_cpu_seconds_total",
    "Total user and system CPU time spent in seconds",
    &[],
);
const PROCESS_FDS: Def = def(
    "pixmirror_process_open_fds",
    "Number of open file descriptors",
    &[],
);
const PROCESS_THREADS: Def = def("pixmirror_process_threads", "Number of OS threads", &[]);

/// Builds each kind of metric from its definition and registers it.
struct Reg(Registry);

impl Reg {
    fn add<C: prometheus::core::Collector + Clone + 'static>(&self, c: C) -> C {
        must(self.0.register(Box::new(c.clone())));
        c
    }
    fn counter(&self, d: &Def) -> IntCounter {
        self.add(must(IntCounter::new(d.name, d.help)))
    }
    fn float_counter(&self, d: &Def) -> Counter {
        self.add(must(Counter::new(d.name, d.help)))
    }
    fn gauge(&self, d: &Def) -> IntGauge {
        self.add(must(IntGauge::new(d.name, d.help)))
    }
    fn counters(&self, d: &Def) -> IntCounterVec {
        self.add(must(IntCounterVec::new(
            Opts::new(d.name, d.help),
            d.labels,
        )))
    }
    fn histograms(&self, d: &Def) -> HistogramVec {
        let opts = HistogramOpts::new(d.name, d.help).buckets(STAGE_BUCKETS.to_vec());
        self.add(must(HistogramVec::new(opts, d.labels)))
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Reg(Registry::new());
        let m = Metrics {
            requests: r.counters(&REQUESTS),
            request_seconds: r.histograms(&REQUEST_SECONDS),
            processed: r.counter(&PROCESSED),
            process_seconds: r.histograms(&PROCESS_SECONDS),
            source_fetches: r.counters(&SOURCE_FETCHES),
            store_writes: r.counters(&STORE_WRITES),
            store_requests: r.counters(&STORE_REQUESTS),
            coalesced: r.counter(&COALESCED),
            l1_bytes: r.gauge(&L1_BYTES),
            l1_items: r.gauge(&L1_ITEMS),
            writeback_queue_depth: r.gauge(&WRITEBACK_QUEUE_DEPTH),
            writeback_inline: r.counter(&WRITEBACK_INLINE),
            busy: r.counter(&BUSY),
            pool_in_use: r.gauge(&POOL_IN_USE),
            pool_waiting: r.gauge(&POOL_WAITING),
            pool_workers: r.gauge(&POOL_WORKERS),
            memory_reserved: r.gauge(&MEMORY_RESERVED),
            memory_budget: r.gauge(&MEMORY_BUDGET),
            writeback_admission: r.counters(&WRITEBACK_ADMISSION),
            stage_seconds: r.histograms(&STAGE_SECONDS),
            source_bytes: r.counters(&SOURCE_BYTES),
            response_bytes: r.counters(&RESPONSE_BYTES),
            l1_lookups: r.counters(&L1_LOOKUPS),
            writeback_retries: r.counter(&WRITEBACK_RETRIES),
            writeback_failures: r.counter(&WRITEBACK_FAILURES),
            writeback_abandoned: r.counter(&WRITEBACK_ABANDONED),
            mirror_fetches: r.counters(&MIRROR_FETCHES),
            errors: r.counters(&ERRORS),
            video_read_bytes: r.counters(&VIDEO_READ_BYTES),
            video_read_ranges: r.counters(&VIDEO_READ_RANGES),
            video_snapshot_seconds: r.histograms(&VIDEO_SNAPSHOT_SECONDS),
            process: ProcessMetrics {
                resident: r.gauge(&PROCESS_RESIDENT),
                cpu: r.float_counter(&PROCESS_CPU),
                fds: r.gauge(&PROCESS_FDS),
                threads: r.gauge(&PROCESS_THREADS),
            },
            registry: r.0,
        };
        m.show_labelled_series();
        m
    }

    /// Make the labelled series visible from the start.
    fn show_labelled_series(&self) {
        for s in ["store", "mirror"] {
            self.source_fetches.with_label_values(&[s]);
            self.source_bytes.with_label_values(&[s]);
            self.video_read_bytes.with_label_values(&[s]);
            self.video_read_ranges.with_label_values(&[s]);
        }
        for r in ["hit", "miss"] {
            self.l1_lookups.with_label_values(&[r]);
        }
        for r in ["ok", "error"] {
            self.store_writes.with_label_values(&[r]);
        }
        for op in ["GET", "HEAD", "PUT", "DELETE", "LIST"] {
            self.store_requests.with_label_values(&[op, "ok"]);
        }
    }

    /// One ranged read of a video for a snapshot, from `source`.
    pub fn count_video_read(&self, source: &str, bytes: u64) {
        self.video_read_bytes
            .with_label_values(&[source])
            .inc_by(bytes);
        self.video_read_ranges.with_label_values(&[source]).inc();
    }

    /// Record the time spent in `stage` since `start`.
    pub fn stage(&self, stage: &str, start: std::time::Instant) {
        self.stage_seconds
            .with_label_values(&[stage])
            .observe(start.elapsed().as_secs_f64());
    }

    /// Requests made to the bucket with operation `op`, every result the
    /// counter holds (read from its own series, so a new result label counts).
    pub fn store_requests_of(&self, op: &str) -> u64 {
        use prometheus::core::Collector;
        self.store_requests
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "op" && l.value() == op)
            })
            .map(|m| m.get_counter().get_value() as u64)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21, item 7: a result label nobody listed still counts (the sum
    /// was over a hard-coded copy of the labels, so a new one read as 0).
    #[test]
    fn store_requests_of_counts_every_result_label() {
        let m = Metrics::new();
        m.store_requests.with_label_values(&["GET", "ok"]).inc();
        m.store_requests
            .with_label_values(&["GET", "a_new_result"])
            .inc_by(2);
        m.store_requests
            .with_label_values(&["HEAD", "a_new_result"])
            .inc();
        assert_eq!(m.store_requests_of("GET"), 3);
        assert_eq!(m.store_requests_of("HEAD"), 1);
        assert_eq!(m.store_requests_of("PUT"), 0);
    }

    /// Metrics are registered under their definitions' names (a labelled
    /// one shows once it has a series).
    #[test]
    fn metrics_are_exposed_under_their_names() {
        let text = Metrics::new().render();
        for d in [
            &PROCESSED,
            &STORE_REQUESTS,
            &L1_LOOKUPS,
            &PROCESS_THREADS,
            &BUSY,
        ] {
            assert!(text.contains(&format!("# TYPE {} ", d.name)), "{}", d.name);
        }
    }
}
