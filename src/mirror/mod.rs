//! Mirror back-to-origin (OSS 镜像回源): when the bucket says "not found", the
//! first matching rule fetches the original from its origin(s) — HTTP(S) URL
//! templates tried in turn, or another S3 bucket — checks it (status, content
//! type, size, Content-MD5) and hands it back, spooled to disk past
//! `cache.max_item_bytes` so memory stays bounded.
//!
//! Origins come only from config. Where redirects may go, which addresses may be
//! connected to and where a rule's headers may be sent: `guard`.

pub mod guard;
mod http_origin;
mod ranged;
mod retry;
pub mod rules;
mod s3_origin;
mod spool;

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;

use crate::config::{Config, MirrorRule};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::storage::DynStore;
use http_origin::HttpOrigins;
pub use ranged::RangedSource;
use retry::{mirror_failed, with_retries, Failure};
use spool::Limits;
pub use spool::{Fetched, Spool};

/// The mirror of one site: its rules, their origins, and the memory of
/// origin 404s (`mirror.negative_ttl`).
pub struct Mirror {
    rules: Vec<MirrorRule>,
    s3: Vec<Option<DynStore>>,
    http: HttpOrigins,
    negative: moka::future::Cache<String, ()>,
    /// The server's: `pixmirror_mirror_fetches_total`, the `mirror_fetch` stage.
    metrics: Arc<Metrics>,
    limits: Limits,
}

impl Mirror {
    pub async fn new(cfg: &Config, metrics: Arc<Metrics>) -> Result<Mirror, String> {
        let mut s3 = Vec::new();
        for r in &cfg.mirror.rules {
            s3.push(match &r.origin_s3 {
                Some(c) => Some(crate::storage::open::s3_store(c, r.timeout.0).await?),
                None => None,
            });
        }
        let limits = Limits {
            max_bytes: cfg.process.max_source_bytes.0,
            max_video_bytes: cfg.video.max_source_bytes.0,
            spill_at: cfg.cache.max_item_bytes.0,
        };
        let negative = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(cfg.mirror.negative_ttl.0.max(Duration::from_millis(1)))
            .build();
        Ok(Mirror {
            rules: cfg.mirror.rules.clone(),
            s3,
            http: HttpOrigins::new(cfg.mirror.allow_private_networks, limits)?,
            negative,
            metrics,
            limits,
        })
    }

    /// One fetch by rule `idx` and its outcome: "ok", "not_found" (the origin
    /// said so), "negative_cached" (remembered: the origin was not asked), or
    /// the error code.
    fn count(&self, idx: usize, outcome: &str, started: Option<std::time::Instant>) {
        self.metrics
            .mirror_fetches
            .with_label_values(&[&idx.to_string(), outcome])
            .inc();
        if let Some(t) = started {
            self.metrics.stage("mirror_fetch", t);
        }
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Fetch `key` through the first matching rule. `NoSuchKey` when no rule
    /// matches or the origin says 404 (remembered for `mirror.negative_ttl`).
    pub async fn fetch(
        &self,
        key: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Fetched> {
        let Some((idx, rule)) = rules::find(&self.rules, key) else {
            return Err(Error::no_such_key());
        };
        let okey = self.checked_origin_key(key, rule).await?;
        let started = std::time::Instant::now();
        let query = if rule.pass_query { query } else { None };
        let result = match &self.s3[idx] {
            Some(store) => {
                with_retries(rule, || s3_origin::fetch(store, &okey, rule, self.limits)).await
            }
            None => self.fetch_http(rule, &okey, query, headers).await,
        };
        match result {
            Ok(f) => {
                self.count(idx, "ok", Some(started));
                Ok(f)
            }
            Err(f) => Err(self.failed(idx, key, f, started).await),
        }
    }

    /// The origin's object for `key`, opened for ranged reads (video
    /// snapshots), when the matching rule does not store; `None` when no rule
    /// matches, the rule stores, or the origin answers ranges whole (then it
    /// is fetched whole, `fetch`).
    pub async fn open_ranged(
        &self,
        key: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Option<RangedSource>> {
        let Some((idx, rule)) = rules::find(&self.rules, key).filter(|(_, r)| !r.store) else {
            return Ok(None);
        };
        let okey = self.checked_origin_key(key, rule).await?;
        let started = std::time::Instant::now();
        let query = if rule.pass_query { query } else { None };
        let s3 = self.s3[idx].as_ref();
        match ranged::open(&self.http, s3, rule, &okey, query, headers).await {
            Ok((target, opened)) => {
                self.count(idx, "ok", Some(started));
                Ok(Some(RangedSource::new(idx, target, opened)))
            }
            Err(Failure::NoRanges) => Ok(None),
            Err(f) => Err(self.failed(idx, key, f, started).await),
        }
    }

    /// `len` bytes from `offset` of an object opened by `open_ranged`.
    pub async fn read_range(
        &self,
        src: &RangedSource,
        headers: &HeaderMap,
        offset: u64,
        len: u64,
    ) -> Result<bytes::Bytes> {
        let i = src.rule();
        let (s3, rule) = (self.s3[i].as_ref(), &self.rules[i]);
        ranged::read(&self.http, s3, rule, src, headers, (offset, len)).await
    }

    /// The key at the origin, once `key` is known fit to send there and not
    /// remembered as missing.
    async fn checked_origin_key(&self, key: &str, rule: &MirrorRule) -> Result<String> {
        if let Err(why) = rules::check_origin_key(key) {
            return Err(Error::invalid(format!(
                "this key cannot be fetched from the mirror origin: it contains {why}"
            )));
        }
        if self.negative.contains_key(key) {
            if let Some((idx, _)) = rules::find(&self.rules, key) {
                self.count(idx, "negative_cached", None);
            }
            return Err(Error::no_such_key());
        }
        Ok(rules::origin_key(rule, key))
    }

    /// A failed fetch's answer, counted; an origin 404 is remembered.
    async fn failed(
        &self,
        idx: usize,
        key: &str,
        f: Failure,
        started: std::time::Instant,
    ) -> Error {
        match f {
            Failure::NotFound => {
                self.negative.insert(key.to_string(), ()).await;
                self.count(idx, "not_found", Some(started));
                Error::no_such_key()
            }
            Failure::Retry(e) | Failure::Fatal(e) => {
                self.count(idx, e.code(), Some(started));
                e
            }
            Failure::NoRanges => {
                self.count(idx, "MirrorFailed", Some(started));
                mirror_failed("the origin does not answer ranged requests")
            }
        }
    }

    /// The rule's HTTP(S) origins in turn, each with its retries, until one
    /// answers (found, not found, or a failure not worth the next origin).
    async fn fetch_http(
        &self,
        rule: &MirrorRule,
        okey: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Result<Fetched, Failure> {
        let mut last = None;
        for tpl in rule.origin.iter().chain(rule.origins.iter().flatten()) {
            let url = rules::origin_url(tpl, okey, query);
            match with_retries(rule, || self.http.fetch(&url, rule, headers)).await {
                Err(Failure::Retry(e)) => last = Some(e),
                other => return other,
            }
        }
        Err(Failure::Retry(
            last.unwrap_or_else(|| mirror_failed("no origin answered")),
        ))
    }
}
