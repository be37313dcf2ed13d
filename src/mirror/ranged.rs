//! Ranged reads of an origin, for video snapshots under a rule that does not
//! store (`store = false`, OSS's proxy pass): the origin's object is opened
//! with one ranged GET (an origin bucket: a HEAD) and then read range by
//! range as the decoder asks, never fetched whole. Redirects, the address
//! guard, forwarded headers, retries and the rule's timeout are the fetch's.

use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderMap;

use super::http_origin::{HttpOrigins, Ranged};
use super::retry::{mirror_failed, with_retries, Failure};
use super::spool::OriginMeta;
use super::{rules, s3_origin};
use crate::config::MirrorRule;
use crate::error::{Error, Result};
use crate::storage::DynStore;

/// An origin's object opened for ranged reads.
pub struct RangedSource {
    idx: usize,
    target: Target,
    pub size: u64,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    /// The bytes the opening read (from 0), so they are not read again.
    pub head: Bytes,
}

pub(super) enum Target {
    Http(String),
    S3(String),
}

/// The first range read when an HTTP origin is opened: it tells the size,
/// the type and the ETag, and the index of an index-first MP4 is often in it.
const OPENING: u64 = 64 * 1024;

/// Open `okey` at the rule's origin: its origin bucket's HEAD, else its HTTP
/// origins in turn, each with a ranged GET of the first `OPENING` bytes.
/// The content type must be one the rule allows.
pub(super) async fn open(
    http: &HttpOrigins,
    s3: Option<&DynStore>,
    rule: &MirrorRule,
    okey: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Target, Ranged), Failure> {
    let (target, opened) = match s3 {
        Some(store) => {
            let m = with_retries(rule, || async {
                store.head(okey).await.map_err(s3_origin::failure)
            });
            (Target::S3(okey.to_string()), Ranged::of_meta(m.await?))
        }
        None => open_http(http, rule, okey, query, headers).await?,
    };
    let ct = opened
        .meta
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    if !rules::content_type_allowed(&rule.content_types, ct) {
        return Err(Failure::Fatal(mirror_failed(&format!(
            "the origin sent content type {ct}, which the rule does not allow"
        ))));
    }
    Ok((target, opened))
}

impl RangedSource {
    pub(super) fn new(idx: usize, target: Target, opened: Ranged) -> RangedSource {
        RangedSource {
            idx,
            target,
            size: opened.total,
            etag: opened.meta.etag.unwrap_or_default(),
            last_modified: opened.meta.last_modified,
            head: opened.bytes,
        }
    }

    /// The index of the rule it was opened by.
    pub(super) fn rule(&self) -> usize {
        self.idx
    }
}

/// `len` bytes from `offset` of an opened object. A size or ETag that
/// changed since it was opened fails the snapshot (502).
pub(super) async fn read(
    http: &HttpOrigins,
    s3: Option<&DynStore>,
    rule: &MirrorRule,
    src: &RangedSource,
    headers: &HeaderMap,
    (offset, len): (u64, u64),
) -> Result<Bytes> {
    let r = match (&src.target, s3) {
        (Target::S3(okey), Some(store)) => {
            with_retries(rule, || async {
                store
                    .get_range(okey, offset, len, crate::storage::strong_etag(&src.etag))
                    .await
                    .map_err(s3_origin::failure)
            })
            .await
        }
        (Target::Http(url), _) => {
            with_retries(rule, || http.fetch_range(url, rule, headers, (offset, len)))
                .await
                .and_then(|r| same_object(src, r))
        }
        (Target::S3(_), None) => Err(Failure::Fatal(Error::Internal("no origin bucket".into()))),
    };
    r.map_err(|f| match f {
        Failure::NotFound => mirror_failed("the origin's object went away during the snapshot"),
        Failure::NoRanges => mirror_failed("the origin stopped answering ranged requests"),
        Failure::Retry(e) | Failure::Fatal(e) => e,
    })
}

/// The rule's HTTP origins in turn, each opened with a ranged GET.
async fn open_http(
    http: &HttpOrigins,
    rule: &MirrorRule,
    okey: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(Target, Ranged), Failure> {
    let mut last = None;
    for tpl in rule.origin.iter().chain(rule.origins.iter().flatten()) {
        let url = rules::origin_url(tpl, okey, query);
        let r = with_retries(rule, || http.fetch_range(&url, rule, headers, (0, OPENING)));
        match r.await {
            Ok(r) => return Ok((Target::Http(url), r)),
            Err(Failure::Retry(e)) => last = Some(e),
            Err(other) => return Err(other),
        }
    }
    Err(Failure::Retry(
        last.unwrap_or_else(|| mirror_failed("no origin answered")),
    ))
}

impl Ranged {
    /// What an origin bucket's HEAD says, as an opening range without bytes.
    fn of_meta(m: crate::storage::ObjectMeta) -> Ranged {
        Ranged {
            bytes: Bytes::new(),
            total: m.size,
            meta: OriginMeta {
                content_type: m.content_type,
                etag: Some(m.etag).filter(|e| !e.is_empty()),
                last_modified: m.last_modified,
                content_md5: None,
            },
        }
    }
}

/// A range is of the object that was opened: the same size and ETag.
fn same_object(src: &RangedSource, r: Ranged) -> Result<Bytes, Failure> {
    let etag_changed = matches!(&r.meta.etag, Some(e) if !src.etag.is_empty() && *e != src.etag);
    if r.total != src.size || etag_changed {
        return Err(Failure::Fatal(mirror_failed(
            "the origin's object changed during the snapshot",
        )));
    }
    Ok(r.bytes)
}
