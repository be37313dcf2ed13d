//! The bucket: one trait, two backends (`fs` for a local folder, `s3` for any
//! S3-compatible store). Backends tell not-found, access-denied and other
//! failures apart; bodies are streams so originals are never buffered whole.

pub mod counted;
pub mod fs;
pub mod open;
#[cfg(feature = "s3")]
pub mod s3;

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::Stream;

use crate::error::Error;

/// Failures a backend reports; never "missing" for a denied read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The store did not answer within `storage.timeout` (504).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The store asked us to slow down (S3 `SlowDown`, 503) and the SDK's
    /// retries with backoff did not get through.
    #[error("throttled: {0}")]
    Throttled(String),
    /// A read that named the object's ETag found another version (S3
    /// `PreconditionFailed`, 412): the object was replaced while it was read.
    #[error("the object changed while it was read")]
    Changed,
    #[error("store error: {0}")]
    Other(String),
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::NotFound => Error::no_such_key(),
            StoreError::AccessDenied(_) => Error::AccessDenied("the store denied access".into()),
            StoreError::InvalidKey(m) => Error::InvalidArgument(m),
            StoreError::Timeout(_) => Error::Timeout("the store did not answer in time".into()),
            StoreError::Throttled(_) => {
                Error::Busy("the store is throttling requests; retry shortly".into())
            }
            StoreError::Changed => {
                Error::Busy("the object changed while it was read; retry shortly".into())
            }
            // The detail was logged where the request failed (`storage::counted`).
            StoreError::Other(_) => Error::StoreError("the store failed".into()),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectMeta {
    pub size: u64,
    /// Quoted, as in HTTP.
    pub etag: String,
    pub last_modified: Option<SystemTime>,
    pub content_type: Option<String>,
    /// User metadata (S3 `x-amz-meta-*`), lower-case keys.
    pub metadata: BTreeMap<String, String>,
}

impl ObjectMeta {
    /// The stored content type, or `application/octet-stream`.
    pub fn content_type_or_default(&self) -> String {
        self.content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into())
    }
}

pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

pub struct Object {
    pub meta: ObjectMeta,
    pub body: ByteStream,
}

/// What is written: bytes, their type and user metadata.
#[derive(Clone, Debug)]
pub struct PutObject {
    pub bytes: Bytes,
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What the store says about an object it has just written (S3: the PUT's
/// answer), so that no HEAD is needed after a PUT.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Written {
    /// Quoted, as a later HEAD would report it; None when the store gave none.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// `etag` if a read may name it (S3 `If-Match` compares strongly): not
/// empty, not weak (`W/"..."`).
pub fn strong_etag(etag: &str) -> Option<&str> {
    Some(etag).filter(|e| !e.is_empty() && !e.starts_with("W/"))
}

pub trait Store: Send + Sync {
    fn head<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<ObjectMeta>>;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<Object>>;
    /// `len` bytes of the object from `offset` (fewer only at its end): a
    /// ranged read (S3 `Range`, a file seek), for video snapshots. With
    /// `etag`, only from the version that carries it (S3 `If-Match`); another
    /// version is [`StoreError::Changed`], so the ranges of one read never
    /// mix two versions.
    fn get_range<'a>(
        &'a self,
        key: &'a str,
        offset: u64,
        len: u64,
        etag: Option<&'a str>,
    ) -> BoxFuture<'a, StoreResult<Bytes>>;
    /// Atomic: readers see the old object or the whole new one, never a part.
    fn put<'a>(&'a self, key: &'a str, obj: PutObject) -> BoxFuture<'a, StoreResult<Written>>;
    /// Like `put`, from a file (large mirrored originals are never held in memory).
    fn put_file<'a>(
        &'a self,
        key: &'a str,
        path: &'a std::path::Path,
        content_type: String,
        metadata: BTreeMap<String, String>,
    ) -> BoxFuture<'a, StoreResult<Written>>;
    fn delete<'a>(&'a self, key: &'a str) -> BoxFuture<'a, StoreResult<()>>;
    /// Every key starting with `prefix`.
    fn list<'a>(&'a self, prefix: &'a str) -> BoxFuture<'a, StoreResult<Vec<String>>>;
    /// Is the store reachable (for `/readyz`)?
    fn ready(&self) -> BoxFuture<'_, StoreResult<()>>;
}

pub type DynStore = Arc<dyn Store>;

/// Read a whole body, failing past `limit` bytes (413). A body that comes as
/// one chunk (the fs store's small objects) is returned as it is, not copied.
pub async fn read_limited(mut body: ByteStream, limit: u64, hint: usize) -> Result<Bytes, Error> {
    use futures_util::StreamExt;
    let mut first: Option<Bytes> = None;
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| {
            tracing::warn!(error = %e, "reading a body failed");
            Error::StoreError("reading the object failed".into())
        })?;
        let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
        if held as u64 + chunk.len() as u64 > limit {
            return Err(too_large(limit));
        }
        if held == 0 && first.is_none() {
            first = Some(chunk);
            continue;
        }
        if let Some(f) = first.take() {
            buf.reserve(hint.min(limit as usize).max(f.len() + chunk.len()));
            buf.extend_from_slice(&f);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

pub fn too_large(limit: u64) -> Error {
    Error::SourceTooLarge(format!(
        "the source is larger than process.max_source_bytes ({limit} bytes)"
    ))
}

/// Content type from a key's extension, for stores that keep none.
pub fn guess_content_type(key: &str) -> &'static str {
    let ext = key
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "gif" => "image/gif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "heic" | "heif" => "image/heic",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "txt" => "text/plain",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: Vec<&'static [u8]>) -> ByteStream {
        Box::pin(futures_util::stream::iter(
            chunks.into_iter().map(|c| Ok(Bytes::from_static(c))),
        ))
    }

    #[tokio::test]
    async fn one_chunk_is_returned_without_a_copy() {
        static DATA: &[u8] = b"one whole object";
        let out = read_limited(stream(vec![DATA]), 100, 0)
            .await
            .expect("read");
        assert_eq!(out.as_ptr(), DATA.as_ptr(), "the same bytes, not a copy");
        assert_eq!(out.as_ref(), DATA);
    }

    #[tokio::test]
    async fn chunks_are_joined_in_order() {
        let parts: Vec<&'static [u8]> = vec![b"", b"ab", b"", b"cde", b"f"];
        let out = read_limited(stream(parts), 6, 3).await.expect("read");
        assert_eq!(out.as_ref(), b"abcdef");
    }

    #[tokio::test]
    async fn the_limit_holds_for_one_chunk_and_for_many() {
        let one = read_limited(stream(vec![b"abcdefg"]), 6, 0).await;
        assert!(matches!(one, Err(Error::SourceTooLarge(_))));
        let many = read_limited(stream(vec![b"abc", b"def", b"g"]), 6, 0).await;
        assert!(matches!(many, Err(Error::SourceTooLarge(_))));
        let exact = read_limited(stream(vec![b"abc", b"def"]), 6, 0).await;
        assert_eq!(exact.expect("read").as_ref(), b"abcdef");
    }
}
