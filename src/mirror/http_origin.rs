//! HTTP(S) origins: one GET to a rule's URL, redirects followed within what
//! `guard` allows, the rule's headers forwarded only to the origin itself,
//! the body spooled and validated.

use std::time::Duration;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::Empty;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::guard;
use super::retry::{mirror_failed, Failure};
use super::spool::{spool, validate, Fetched, Limits, OriginMeta};
use crate::config::MirrorRule;
use crate::error::Error;
use crate::storage::ByteStream;

type HttpClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<guard::GuardedResolver>>, Empty<Bytes>>;

/// The clients that reach HTTP(S) origins.
pub struct HttpOrigins {
    /// For the configured origin's host: resolved and connected as configured.
    origin_client: HttpClient,
    /// For every other host (redirects): the address guard applies.
    client: HttpClient,
    allow_private: bool,
    limits: Limits,
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

type Response = http::Response<hyper::body::Incoming>;

impl HttpOrigins {
    pub fn new(allow_private: bool, limits: Limits) -> Result<HttpOrigins, String> {
        Ok(HttpOrigins {
            origin_client: http_client(true)?,
            client: http_client(allow_private)?,
            allow_private,
            limits,
        })
    }

    /// One attempt at `url`: redirects followed, the answer's status sorted
    /// into found, not found, retry or give up.
    pub async fn fetch(
        &self,
        url: &str,
        rule: &MirrorRule,
        client_headers: &HeaderMap,
    ) -> Result<Fetched, Failure> {
        let origin: Uri = url
            .parse()
            .map_err(|_| Failure::Fatal(mirror_failed("the origin URL is invalid")))?;
        let resp = self.follow(&origin, rule, client_headers, None).await?;
        check_status(&resp)?;
        self.read(resp, rule).await
    }

    /// One ranged GET of `url`: `len` bytes from `offset` (redirects and the
    /// guard as for a fetch). The origin must answer 206 with a
    /// `Content-Range`; a 200 (ranges not served) is refused, never read.
    pub async fn fetch_range(
        &self,
        url: &str,
        rule: &MirrorRule,
        client_headers: &HeaderMap,
        (offset, len): (u64, u64),
    ) -> Result<Ranged, Failure> {
        let origin: Uri = url
            .parse()
            .map_err(|_| Failure::Fatal(mirror_failed("the origin URL is invalid")))?;
        let last = offset + len.max(1) - 1;
        let range = HeaderValue::try_from(format!("bytes={offset}-{last}"))
            .map_err(|e| Failure::Fatal(Error::Internal(e.to_string())))?;
        let resp = self
            .follow(&origin, rule, client_headers, Some(range))
            .await?;
        check_status(&resp)?;
        let h = resp.headers();
        let text =
            |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let total = text(header::CONTENT_RANGE).and_then(|v| content_range_total(&v));
        let (206, Some(total)) = (resp.status().as_u16(), total) else {
            return Err(Failure::NoRanges);
        };
        let meta = OriginMeta {
            content_type: text(header::CONTENT_TYPE),
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED)
                .and_then(|s| httpdate::parse_http_date(&s).ok()),
            content_md5: None,
        };
        let body: ByteStream = Box::pin(
            http_body_util::BodyStream::new(resp.into_body())
                .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
                .map_err(std::io::Error::other),
        );
        let bytes = crate::storage::read_limited(body, len, len as usize)
            .await
            .map_err(|_| Failure::Retry(mirror_failed("reading a range of the origin failed")))?;
        Ok(Ranged { bytes, total, meta })
    }

    /// GET `origin`, following its redirects (with `follow_redirects`) where
    /// `guard::check_redirect` allows, at most `MAX_REDIRECTS` hops.
    async fn follow(
        &self,
        origin: &Uri,
        rule: &MirrorRule,
        client_headers: &HeaderMap,
        range: Option<HeaderValue>,
    ) -> Result<Response, Failure> {
        let mut uri = origin.clone();
        let mut hops = 0;
        loop {
            let resp = self
                .send(origin, &uri, rule, client_headers, range.clone())
                .await?;
            if !(resp.status().is_redirection() && rule.follow_redirects) {
                return Ok(resp);
            }
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(Failure::Fatal(mirror_failed(
                    "the origin redirected more than 10 times",
                )));
            }
            let loc = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let next = resolve(&uri, loc)
                .ok_or_else(|| Failure::Fatal(mirror_failed("the origin sent a bad redirect")))?;
            if let Err(why) = guard::check_redirect(origin, &uri, &next, &rule.allowed_hosts) {
                tracing::warn!(%why, "mirror redirect refused");
                return Err(Failure::Fatal(mirror_failed(
                    "the origin redirected where the rule does not allow",
                )));
            }
            uri = next;
        }
    }

    /// A successful answer's body, spooled and validated.
    async fn read(&self, resp: Response, rule: &MirrorRule) -> Result<Fetched, Failure> {
        let h = resp.headers().clone();
        let text =
            |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        let ct = text(header::CONTENT_TYPE);
        let max = self.limits.max_for(ct.as_deref(), &[]);
        if let Some(len) = text(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) {
            if len > max {
                return Err(Failure::Fatal(crate::storage::too_large(max)));
            }
        }
        let body: ByteStream = Box::pin(
            http_body_util::BodyStream::new(resp.into_body())
                .try_filter_map(|f| async move { Ok(f.into_data().ok()) })
                .map_err(std::io::Error::other),
        );
        let spooled = spool(body, self.limits, ct.as_deref()).await?;
        let meta = OriginMeta {
            content_type: ct,
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED)
                .and_then(|s| httpdate::parse_http_date(&s).ok()),
            content_md5: text(HeaderName::from_static("content-md5")),
        };
        validate(spooled, meta, rule)
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
        range: Option<HeaderValue>,
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
        let mut headers = forward_headers(rule, client_headers, guard::same_origin(origin, uri));
        if let Some(r) = range {
            headers.insert(header::RANGE, r);
        }
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
}

/// A range of an origin's object: its bytes, the object's size and headers.
pub struct Ranged {
    pub bytes: Bytes,
    pub total: u64,
    pub meta: OriginMeta,
}

/// 404/410: not found; other failures: retried (5xx) or given up.
fn check_status(resp: &Response) -> Result<(), Failure> {
    let status = resp.status();
    if status == http::StatusCode::NOT_FOUND || status == http::StatusCode::GONE {
        return Err(Failure::NotFound);
    }
    if status.is_success() {
        return Ok(());
    }
    let e = mirror_failed(&format!("the origin returned {}", status.as_u16()));
    Err(match status.is_server_error() {
        true => Failure::Retry(e),
        false => Failure::Fatal(e),
    })
}

/// The size in `Content-Range: bytes 0-0/12345`.
fn content_range_total(v: &str) -> Option<u64> {
    let (unit, rest) = v.trim().split_once(' ')?;
    let (_, total) = rest.split_once('/')?;
    (unit == "bytes")
        .then(|| total.trim().parse().ok())
        .flatten()
}

/// The HTTP(S) client of the mirror; `allow_private` off puts the address
/// guard into its resolver.
fn http_client(allow_private: bool) -> Result<HttpClient, String> {
    let mut http = HttpConnector::new_with_resolver(guard::GuardedResolver::new(allow_private));
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
    fn content_ranges() {
        assert_eq!(content_range_total("bytes 0-0/12345"), Some(12345));
        assert_eq!(content_range_total("bytes 100-199/200"), Some(200));
        assert_eq!(content_range_total("bytes */200"), Some(200));
        assert_eq!(content_range_total("bytes 0-0/*"), None);
        assert_eq!(content_range_total("items 0-0/5"), None);
        assert_eq!(content_range_total(""), None);
    }

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
