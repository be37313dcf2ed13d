//! The request context that passes through the stages ([`Ctx`]: the request
//! and, for a plan, its derived keys) and the reply a stage answers with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::cache::Entry;
use crate::process::Plan;
use crate::storage::{ByteStream, ObjectMeta};

/// User metadata recorded on stored derivatives.
pub const META_SOURCE_ETAG: &str = "pixmirror-source-etag";
pub const META_SOURCE_MODIFIED: &str = "pixmirror-source-modified";
pub const META_CANONICAL: &str = "pixmirror-canonical";

/// `X-Cache-Status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    Memory,
    Store,
    Processed,
    Mirrored,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Memory => "memory",
            CacheStatus::Store => "store",
            CacheStatus::Processed => "processed",
            CacheStatus::Mirrored => "mirrored",
        }
    }
}

/// What an answer varies on besides its URL: `Accept` (the request asked
/// for `format,auto`) and the client hints that resolved its sizes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Vary {
    pub accept: bool,
    pub hints: crate::process::lang::hints::Hints,
}

/// A parsed, validated image request. Nothing has been fetched yet.
#[derive(Clone, Debug)]
pub struct ImageRequest {
    pub key: String,
    /// None: the original as stored. `format,auto` already resolved.
    pub plan: Option<Plan>,
    /// `Vary`: `Accept` for `format,auto`, and the client hints read.
    pub vary: Vary,
    /// HEAD: the body is not needed (originals are not downloaded).
    pub head: bool,
    /// `If-None-Match`, when sent.
    pub if_none_match: Option<String>,
    /// The query without the process parameter (for mirror `pass_query`).
    pub query: Option<String>,
    /// The client's headers (for mirror `headers.pass`).
    pub headers: http::HeaderMap,
    /// Asked for by a named style (`style/<name>`): `derivatives.admit = "styles"`.
    pub from_style: bool,
}

/// What a derivative request asks for, derived once from the plan.
#[derive(Debug)]
pub struct Derived {
    pub plan: Plan,
    /// The canonical process string (concrete format, never `auto`).
    pub canonical: String,
    /// Where the derivative is stored, and its L1 key.
    pub key: String,
}

impl Derived {
    /// Can the bucket hold it? Not when the original's own key is so long that
    /// even the hashed derivative key passes S3's limit: then it lives in L1 only.
    pub fn storable(&self) -> bool {
        self.key.len() <= crate::process::plan::MAX_KEY_BYTES
    }
}

/// One request as it passes through the stages.
#[derive(Debug)]
pub struct Ctx {
    pub req: ImageRequest,
    /// None for a request of the original.
    pub derived: Option<Derived>,
}

impl Ctx {
    /// The plan moves into `derived` (the one copy the stages read).
    pub fn new(mut req: ImageRequest, separator: &str) -> Ctx {
        let derived = req.plan.take().map(|plan| Derived {
            canonical: plan.canonical(),
            key: plan.derivative_key(&req.key, separator),
            plan,
        });
        Ctx { req, derived }
    }

    /// The key of what this request answers with: the derivative's, or the original's.
    pub fn cache_key(&self) -> &str {
        self.derived.as_ref().map_or(&self.req.key, |d| &d.key)
    }
}

pub enum ReplyBody {
    Full(Bytes),
    Stream(ByteStream),
    Empty,
}

pub struct Reply {
    pub body: ReplyBody,
    pub len: u64,
    pub content_type: String,
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub cache_status: CacheStatus,
    pub vary: Vary,
    /// The canonical process string answered (`X-Pixmirror-Process`): what a
    /// snapped or normalised request was served as.
    pub process: Option<String>,
}

impl Reply {
    pub fn from_item(item: &Arc<Entry>, status: CacheStatus, vary: Vary) -> Reply {
        Reply {
            body: ReplyBody::Full(item.bytes.clone()),
            len: item.bytes.len() as u64,
            content_type: item.content_type.clone(),
            etag: item.etag.clone(),
            last_modified: item.last_modified,
            cache_status: status,
            vary,
            process: None,
        }
    }

    pub fn from_meta(meta: ObjectMeta, body: ReplyBody, status: CacheStatus, vary: Vary) -> Reply {
        Reply {
            body,
            len: meta.size,
            content_type: meta.content_type_or_default(),
            etag: meta.etag,
            last_modified: meta.last_modified,
            cache_status: status,
            vary,
            process: None,
        }
    }

    /// Headers only: `http::response` answers it with 304 (the ETag matches).
    pub fn not_modified(etag: String, vary: Vary) -> Reply {
        Reply {
            body: ReplyBody::Empty,
            len: 0,
            content_type: String::new(),
            etag,
            last_modified: None,
            cache_status: CacheStatus::Store,
            vary,
            process: None,
        }
    }
}

/// Does `If-None-Match` match this ETag (weak comparison, lists and `*`)?
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    let strip = |s: &str| s.trim().trim_start_matches("W/").to_string();
    let etag = strip(etag);
    if_none_match
        .split(',')
        .any(|t| t.trim() == "*" || strip(t) == etag)
}

/// User metadata of a stored derivative.
pub fn derivative_metadata(item: &Arc<Entry>, canonical: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(META_SOURCE_ETAG.to_string(), item.source_etag.clone());
    m.insert(META_CANONICAL.to_string(), canonical.to_string());
    if let Some(t) = item.last_modified {
        m.insert(META_SOURCE_MODIFIED.to_string(), httpdate::fmt_http_date(t));
    }
    m
}
