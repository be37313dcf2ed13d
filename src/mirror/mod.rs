//! Mirror back-to-origin (OSS 镜像回源): when the bucket says "not found", the
//! first matching rule fetches the original from its origin(s) — HTTP(S) URL
//! templates tried in turn, or another S3 bucket — checks it (status, content
//! type, size, Content-MD5) and hands it back, spooled to disk past
//! `cache.max_item_bytes` so memory stays bounded.
//!
//! Origins come only from config. Where redirects may go, which addresses may be
//! connected to and where a rule's headers may be sent: `guard`.

pub mod guard;
pub mod rules;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use crate::config::{Config, MirrorRule};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::process::Format;
use crate::storage::{ByteStream, DynStore, StoreError};

/// An original fetched from an origin.
pub struct Fetched {
    pub body: Spool,
    pub size: u64,
    pub content_type: String,
    /// Origin ETag, else the MD5 of the content (quoted).
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// The rule's `store`: save it in the bucket.
    pub store: bool,
}

/// Where a fetched original is held: in memory, or spooled to a file.
pub enum Spool {
    Memory(Bytes),
    /// Spooled to a temporary file (deleted when the last holder drops it).
    File(Arc<tempfile::NamedTempFile>),
}

impl Spool {
    /// The whole content in memory (for processing; the caller bounds the size).
    pub async fn bytes(&self) -> Result<Bytes> {
        match self {
            Spool::Memory(b) => Ok(b.clone()),
            Spool::File(f) => tokio::fs::read(f.path())
                .await
                .map(Bytes::from)
                .map_err(|e| Error::Internal(format!("reading the spooled original: {e}"))),
        }
    }

    pub async fn stream(&self) -> Result<ByteStream> {
        match self {
            Spool::Memory(b) => {
                let b = b.clone();
                Ok(Box::pin(futures_util::stream::once(async move { Ok(b) })))
            }
            Spool::File(f) => {
                let file = tokio::fs::File::open(f.path())
                    .await
                    .map_err(|e| Error::Internal(format!("reading the spooled original: {e}")))?;
                Ok(Box::pin(tokio_util::io::ReaderStream::with_capacity(
                    file,
                    64 * 1024,
                )))
            }
        }
    }
}

/// Why one attempt at one origin failed.
enum Failure {
    /// 404/410: no retry, no next origin.
    NotFound,
    /// 5xx, timeout, connection failure: retry, then the next origin.
    Retry(Error),
    /// Anything else: give up now.
    Fatal(Error),
}

/// A body read whole: in memory or in a temporary file, with its MD5 and first bytes.
struct Spooled {
    body: Spool,
    size: u64,
    md5: [u8; 16],
    /// The first 32 bytes, to sniff the format.
    head: Vec<u8>,
}

type HttpClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<guard::GuardedResolver>>, Empty<Bytes>>;

pub struct Mirror {
    rules: Vec<MirrorRule>,
    s3: Vec<Option<DynStore>>,
    /// For the configured origin's host: resolved and connected as configured.
    origin_client: HttpClient,
    /// For every other host (redirects): the address guard applies.
    client: HttpClient,
    negative: moka::future::Cache<String, ()>,
    /// The server's: `pixmirror_mirror_fetches_total`, the `mirror_fetch` stage.
    metrics: Arc<Metrics>,
    allow_private: bool,
    max_bytes: u64,
    spill_at: u64,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    // pixmirror does not decompress: ask for the identity encoding.
    "accept-encoding",
];

const MAX_REDIRECTS: usize = 10;

impl Mirror {
    pub async fn new(cfg: &Config, metrics: Arc<Metrics>) -> Result<Mirror, String> {
        let mut s3 = Vec::new();
        for r in &cfg.mirror.rules {
            s3.push(match &r.origin_s3 {
                Some(c) => Some(crate::storage::open::s3_store(c, r.timeout.0).await?),
                None => None,
            });
        }
        let origin_client = http_client(true)?;
        let client = http_client(cfg.mirror.allow_private_networks)?;
        let negative = moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(cfg.mirror.negative_ttl.0.max(Duration::from_millis(1)))
            .build();
        Ok(Mirror {
            rules: cfg.mirror.rules.clone(),
            s3,
            origin_client,
            client,
            negative,
            allow_private: cfg.mirror.allow_private_networks,
            max_bytes: cfg.process.max_source_bytes.0,
            spill_at: cfg.cache.max_item_bytes.0,
            metrics,
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
        if let Err(why) = rules::check_origin_key(key) {
            return Err(Error::invalid(format!(
                "this key cannot be fetched from the mirror origin: it contains {why}"
            )));
        }
        if self.negative.contains_key(key) {
            self.count(idx, "negative_cached", None);
            return Err(Error::no_such_key());
        }
        let started = std::time::Instant::now();
        let okey = rules::origin_key(rule, key);
        let query = if rule.pass_query { query } else { None };
        let result = match &self.s3[idx] {
            Some(store) => {
                self.with_retries(rule, || self.fetch_s3(store, &okey, rule))
                    .await
            }
            None => {
                let urls: Vec<String> = rule
                    .origin
                    .iter()
                    .chain(rule.origins.iter().flatten())
                    .cloned()
                    .collect();
                let mut last = None;
                let mut out = None;
                for tpl in urls {
                    let url = rules::origin_url(&tpl, &okey, query);
                    match self
                        .with_retries(rule, || self.fetch_http(&url, rule, headers))
                        .await
                    {
                        Err(Failure::Retry(e)) => last = Some(e),
                        other => {
                            out = Some(other);
                            break;
                        }
                    }
                }
                out.unwrap_or_else(|| {
                    Err(Failure::Retry(
                        last.unwrap_or_else(|| mirror_failed("no origin answered")),
                    ))
                })
            }
        };
        let result = match result {
            Ok(f) => Ok(f),
            Err(Failure::NotFound) => {
                self.negative.insert(key.to_string(), ()).await;
                self.count(idx, "not_found", Some(started));
                return Err(Error::no_such_key());
            }
            Err(Failure::Retry(e)) | Err(Failure::Fatal(e)) => Err(e),
        };
        self.count(
            idx,
            result.as_ref().map_or_else(Error::code, |_| "ok"),
            Some(started),
        );
        result
    }

    /// One origin: first try plus `retries`, with backoff, each under `timeout`.
    async fn with_retries<'a, F, Fut>(
        &'a self,
        rule: &'a MirrorRule,
        attempt: F,
    ) -> Result<Fetched, Failure>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Fetched, Failure>>,
    {
        let mut delay = Duration::from_millis(100);
        let mut last = Failure::Retry(mirror_failed("origin failed"));
        for n in 0..=rule.retries {
            if n > 0 {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            match tokio::time::timeout(rule.timeout.0, attempt()).await {
                Ok(Err(Failure::Retry(e))) => last = Failure::Retry(e),
                Ok(other) => return other,
                Err(_) => {
                    last = Failure::Retry(Error::Timeout("the mirror origin timed out".into()))
                }
            }
        }
        Err(last)
    }

    async fn fetch_s3(
        &self,
        store: &DynStore,
        okey: &str,
        rule: &MirrorRule,
    ) -> Result<Fetched, Failure> {
        let obj = match store.get(okey).await {
            Ok(o) => o,
            Err(StoreError::NotFound) => return Err(Failure::NotFound),
            Err(StoreError::AccessDenied(_)) => {
                return Err(Failure::Fatal(mirror_failed(
                    "the origin bucket denied access",
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "mirror S3 origin failed");
                return Err(Failure::Retry(mirror_failed("the origin bucket failed")));
            }
        };
        if obj.meta.size > self.max_bytes {
            return Err(Failure::Fatal(crate::storage::too_large(self.max_bytes)));
        }
        let spooled = self.spool(obj.body).await?;
        let md5 = etag_md5(&obj.meta.etag);
        self.validate(
            spooled,
            obj.meta.content_type,
            Some(obj.meta.etag),
            obj.meta.last_modified,
            md5.as_deref(),
            rule,
        )
    }

    async fn fetch_http(
        &self,
        url: &str,
        rule: &MirrorRule,
        client_headers: &HeaderMap,
    ) -> Result<Fetched, Failure> {
        let mut uri: Uri = url
            .parse()
            .map_err(|_| Failure::Fatal(mirror_failed("the origin URL is invalid")))?;
        let origin = uri.clone();
        let mut hops = 0;
        loop {
            let resp = self.send(&origin, &uri, rule, client_headers).await?;
            let status = resp.status();
            if status.is_redirection() && rule.follow_redirects {
                let loc = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                hops += 1;
                if hops > MAX_REDIRECTS {
                    return Err(Failure::Fatal(mirror_failed(
                        "the origin redirected more than 10 times",
                    )));
                }
                let next = resolve(&uri, loc).ok_or_else(|| {
                    Failure::Fatal(mirror_failed("the origin sent a bad redirect"))
                })?;
                if let Err(why) = guard::check_redirect(&origin, &uri, &next, &rule.allowed_hosts) {
                    tracing::warn!(%why, "mirror redirect refused");
                    return Err(Failure::Fatal(mirror_failed(
                        "the origin redirected where the rule does not allow",
                    )));
                }
                uri = next;
                continue;
            }
            if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::GONE {
                return Err(Failure::NotFound);
            }
            if status.is_server_error() {
                return Err(Failure::Retry(mirror_failed(&format!(
                    "the origin returned {}",
                    status.as_u16()
                ))));
            }
            if !status.is_success() {
                return Err(Failure::Fatal(mirror_failed(&format!(
                    "the origin returned {}",
                    status.as_u16()
                ))));
            }
            let h = resp.headers().clone();
            let text =
                |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
            if let Some(len) = text(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) {
                if len > self.max_bytes {
                    return Err(Failure::Fatal(crate::storage::too_large(self.max_bytes)));
                }
            }
            let body: ByteStream = Box::pin(
                http_body_util::BodyStream::new(resp.into_body())
                    .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
                    .map_err(std::io::Error::other),
            );
            let spooled = self.spool(body).await?;
            let modified =
                text(header::LAST_MODIFIED).and_then(|s| httpdate::parse_http_date(&s).ok());
            let md5 = text(HeaderName::from_static("content-md5"));
            return self.validate(
                spooled,
                text(header::CONTENT_TYPE),
                text(header::ETAG),
                modified,
                md5.as_deref(),
                rule,
            );
        }
    }

    /// One GET to `uri`: the address guard for IP literals (names are checked
    /// by the connector's resolver), and the rule's headers only when `uri` is
    /// the origin's own scheme, host and port.
    async fn send(
        &self,
        origin: &Uri,
        uri: &Uri,
        rule: &MirrorRule,
        client_headers: &HeaderMap,
    ) -> Result<http::Response<hyper::body::Incoming>, Failure> {
        let refused = || {
            Failure::Fatal(mirror_failed(
                "the origin's address is not public and mirror.allow_private_networks is off",
            ))
        };
        let trusted = guard::same_host(origin, uri);
        if let Err(e) = guard::check_literal(uri, self.allow_private || trusted) {
            tracing::warn!(error = %e, "mirror origin refused");
            return Err(refused());
        }
        let headers = forward_headers(rule, client_headers, guard::same_origin(origin, uri));
        let mut req = http::Request::builder().method("GET").uri(uri.clone());
        if let Some(h) = req.headers_mut() {
            h.extend(headers);
        }
        let req = req
            .body(Empty::new())
            .map_err(|e| Failure::Fatal(Error::Internal(e.to_string())))?;
        let client = if trusted {
            &self.origin_client
        } else {
            &self.client
        };
        client.request(req).await.map_err(|e| {
            let host = uri.host().unwrap_or("");
            if guard::is_refusal(&e) {
                tracing::warn!(error = %e, %host, "mirror origin refused");
                return refused();
            }
            tracing::warn!(error = %e, %host, "mirror origin unreachable");
            Failure::Retry(mirror_failed("the origin is unreachable"))
        })
    }

    /// Read a body with the size limit and an MD5, in memory up to
    /// `cache.max_item_bytes`, then in a temporary file.
    async fn spool(&self, mut body: ByteStream) -> Result<Spooled, Failure> {
        let io = |e: std::io::Error| {
            tracing::warn!(error = %e, "reading a mirror origin failed");
            Failure::Retry(mirror_failed("reading the origin failed"))
        };
        let mut md5 = Md5::new();
        let mut mem = BytesMut::new();
        let mut file: Option<(tempfile::NamedTempFile, tokio::fs::File)> = None;
        let mut size = 0u64;
        let mut head = Vec::with_capacity(32);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(io)?;
            size += chunk.len() as u64;
            if head.len() < 32 {
                head.extend_from_slice(&chunk[..chunk.len().min(32 - head.len())]);
            }
            if size > self.max_bytes {
                return Err(Failure::Fatal(crate::storage::too_large(self.max_bytes)));
            }
            md5.update(&chunk);
            match &mut file {
                Some((_, f)) => f.write_all(&chunk).await.map_err(io)?,
                None if size > self.spill_at => {
                    // Creating and opening the file are blocking calls: off
                    // the async workers. (The MD5 of a chunk stays inline: a
                    // 64 KiB chunk hashes in about 0.1 ms, less than a hop to
                    // the blocking pool would cost.)
                    let (tmp, std_file) = tokio::task::spawn_blocking(|| {
                        let tmp = tempfile::NamedTempFile::new()?;
                        let f = tmp.reopen()?;
                        Ok::<_, std::io::Error>((tmp, f))
                    })
                    .await
                    .map_err(|e| io(std::io::Error::other(e)))?
                    .map_err(io)?;
                    let mut f = tokio::fs::File::from_std(std_file);
                    f.write_all(&mem).await.map_err(io)?;
                    f.write_all(&chunk).await.map_err(io)?;
                    mem = BytesMut::new();
                    file = Some((tmp, f));
                }
                None => mem.extend_from_slice(&chunk),
            }
        }
        let body = match file {
            Some((tmp, mut f)) => {
                f.flush().await.map_err(io)?;
                Spool::File(Arc::new(tmp))
            }
            None => Spool::Memory(mem.freeze()),
        };
        Ok(Spooled {
            body,
            size,
            md5: md5.finalize().into(),
            head,
        })
    }

    /// Validate a complete body (Content-MD5, content type) into what the fetch answers.
    fn validate(
        &self,
        Spooled {
            body,
            size,
            md5,
            head,
        }: Spooled,
        content_type: Option<String>,
        etag: Option<String>,
        last_modified: Option<SystemTime>,
        content_md5: Option<&str>,
        rule: &MirrorRule,
    ) -> Result<Fetched, Failure> {
        use base64::Engine;
        if rule.check_md5 {
            if let Some(want) = content_md5 {
                let got = base64::engine::general_purpose::STANDARD.encode(md5);
                if want.trim() != got {
                    return Err(Failure::Fatal(mirror_failed(
                        "the origin's Content-MD5 does not match the content; nothing stored",
                    )));
                }
            }
        }
        let sniffed = Format::sniff(&head).map(|f| f.content_type().to_string());
        let ct = match content_type {
            Some(ct)
                if !ct.is_empty()
                    && !ct.starts_with("application/octet-stream")
                    && !ct.starts_with("binary/") =>
            {
                ct
            }
            _ => sniffed.unwrap_or_else(|| "application/octet-stream".into()),
        };
        if !rules::content_type_allowed(&rule.content_types, &ct) {
            return Err(Failure::Fatal(mirror_failed(&format!(
                "the origin sent content type {ct}, which the rule does not allow"
            ))));
        }
        let etag = etag
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("\"{}\"", hex::encode(md5)));
        Ok(Fetched {
            body,
            size,
            content_type: ct,
            etag,
            last_modified,
            store: rule.store,
        })
    }
}

fn mirror_failed(msg: &str) -> Error {
    Error::MirrorFailed(msg.to_string())
}

/// The HTTP(S) client of the mirror; `allow_private` off puts the address
/// guard into its resolver.
fn http_client(allow_private: bool) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new_with_resolver(guard::GuardedResolver { allow_private });
    http.enforce_http(false);
    // No Nagle wait behind the origin's delayed ACK.
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(5)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::aws_lc_rs::default_provider())
        .map_err(|e| format!("tls: {e}"))?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// The headers of a request to an origin: the client's that the rule passes
/// (`pass`, `*` for all), minus `remove`, never hop-by-hop or `Host`, then the
/// rule's own (`set`). Away from the origin (`to_origin == false`, a redirect
/// to an allowed host) neither the rule's headers nor credentials go along.
fn forward_headers(rule: &MirrorRule, client: &HeaderMap, to_origin: bool) -> HeaderMap {
    const CREDENTIALS: &[&str] = &["authorization", "cookie"];
    let mut out = HeaderMap::new();
    let all = rule.headers.pass.iter().any(|p| p == "*");
    for (name, value) in client {
        let n = name.as_str();
        if !to_origin && CREDENTIALS.contains(&n) {
            continue;
        }
        let passed = all || rule.headers.pass.iter().any(|p| p.eq_ignore_ascii_case(n));
        let removed = rule
            .headers
            .remove
            .iter()
            .any(|r| r.eq_ignore_ascii_case(n));
        if passed && !removed && !HOP_BY_HOP.contains(&n) {
            out.append(name.clone(), value.clone());
        }
    }
    for (k, v) in rule.headers.set.iter().filter(|_| to_origin) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::try_from(k.as_str()),
            HeaderValue::try_from(v.as_str()),
        ) {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                out.insert(name, value);
            }
        }
    }
    if !out.contains_key(header::USER_AGENT) {
        out.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("pixmirror/", env!("CARGO_PKG_VERSION"))),
        );
    }
    out
}

/// The Content-MD5 (base64) an S3 ETag stands for: the hex MD5 of the content
/// for a single-part upload; `None` for multipart (`"<hex>-<parts>"`) or other forms.
fn etag_md5(etag: &str) -> Option<String> {
    use base64::Engine;
    let hex_md5 = etag.trim_start_matches("W/").trim_matches('"');
    if hex_md5.len() != 32 {
        return None;
    }
    let bytes = hex::decode(hex_md5).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// A `Location` resolved against the current URL.
fn resolve(base: &Uri, loc: &str) -> Option<Uri> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return loc.parse().ok();
    }
    let scheme = base.scheme_str()?;
    let auth = base.authority()?.as_str();
    if let Some(rest) = loc.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let path = if loc.starts_with('/') {
        loc.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        format!("{dir}/{loc}")
    };
    format!("{scheme}://{auth}{path}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve() {
        let base: Uri = "http://a.com/x/y.jpg".parse().expect("uri");
        assert_eq!(
            resolve(&base, "/z.jpg").map(|u| u.to_string()),
            Some("http://a.com/z.jpg".into())
        );
        assert_eq!(
            resolve(&base, "z.jpg").map(|u| u.to_string()),
            Some("http://a.com/x/z.jpg".into())
        );
        assert_eq!(
            resolve(&base, "https://b.com/q").map(|u| u.to_string()),
            Some("https://b.com/q".into())
        );
        assert_eq!(
            resolve(&base, "//c.com/q").map(|u| u.to_string()),
            Some("http://c.com/q".into())
        );
    }

    #[test]
    fn s3_etags_as_md5() {
        assert_eq!(
            etag_md5("\"d41d8cd98f00b204e9800998ecf8427e\"").as_deref(),
            Some("1B2M2Y8AsgTpgAmY7PhCfg==")
        );
        assert_eq!(etag_md5("\"d41d8cd98f00b204e9800998ecf8427e-3\""), None);
        assert_eq!(etag_md5("\"abc\""), None);
    }

    #[test]
    fn headers_forwarded() {
        let mut rule = MirrorRule::default();
        rule.headers.pass = vec!["Authorization".into(), "Cookie".into(), "Host".into()];
        rule.headers.remove = vec!["Cookie".into()];
        rule.headers.set.insert("X-Api-Key".into(), "k".into());
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("cookie", HeaderValue::from_static("s=1"));
        h.insert("host", HeaderValue::from_static("img.example.com"));
        h.insert("x-other", HeaderValue::from_static("o"));
        let out = forward_headers(&rule, &h, true);
        assert_eq!(
            out.get("authorization").map(|v| v.as_bytes()),
            Some(&b"Bearer t"[..])
        );
        assert!(out.get("cookie").is_none());
        assert!(out.get("host").is_none());
        assert!(out.get("x-other").is_none());
        assert_eq!(out.get("x-api-key").map(|v| v.as_bytes()), Some(&b"k"[..]));
        // Away from the origin: neither the rule's key nor credentials.
        let away = forward_headers(&rule, &h, false);
        assert!(away.get("x-api-key").is_none());
        assert!(away.get("authorization").is_none());
        assert!(away.get("user-agent").is_some());
    }
}
