//! A fetched original: read with the size limit and an MD5, in memory up to
//! `cache.max_item_bytes`, then spooled to a temporary file; then validated
//! (Content-MD5, content type) into what a fetch answers.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use super::retry::{mirror_failed, Failure};
use super::rules;
use crate::config::MirrorRule;
use crate::error::{Error, Result};
use crate::process::Format;
use crate::storage::ByteStream;

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

    /// Up to `len` bytes from `offset` (a video's ranged read). Blocking
    /// for a file: call it from a pool thread.
    pub fn read_range(&self, offset: u64, len: u64) -> Result<Bytes> {
        match self {
            Spool::Memory(b) => {
                let start = (offset as usize).min(b.len());
                let end = (offset.saturating_add(len) as usize).min(b.len());
                Ok(b.slice(start..end))
            }
            Spool::File(f) => std::fs::File::open(f.path())
                .and_then(|mut file| crate::storage::fs::read_range(&mut file, offset, len))
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

/// A body read whole: in memory or in a temporary file, with its MD5 and first bytes.
pub struct Spooled {
    body: Spool,
    size: u64,
    md5: [u8; 16],
    /// The first 32 bytes, to sniff the format.
    head: Vec<u8>,
}

/// What the origin said about a body, beside the body.
pub struct OriginMeta {
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
    /// Content-MD5 (base64), from the origin or its S3 ETag.
    pub content_md5: Option<String>,
}

/// The bytes a fetch may hold: `process.max_source_bytes` in all (a video:
/// `video.max_source_bytes`, on disk), in memory up to `cache.max_item_bytes`.
#[derive(Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_video_bytes: u64,
    pub spill_at: u64,
}

impl Limits {
    /// The size limit of a body of content type `ct` whose first bytes are
    /// `head`: a video's (`video/*`, or an MP4/MOV/Matroska file) or an image's.
    pub fn max_for(&self, ct: Option<&str>, head: &[u8]) -> u64 {
        let video_type = ct.is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("video/"));
        if video_type || crate::process::codec::format::looks_like_video(head) {
            self.max_bytes.max(self.max_video_bytes)
        } else {
            self.max_bytes
        }
    }
}

/// Read a body with the size limit and an MD5, in memory up to
/// `limits.spill_at`, then in a temporary file.
pub async fn spool(
    mut body: ByteStream,
    limits: Limits,
    ct: Option<&str>,
) -> Result<Spooled, Failure> {
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
        let max = limits.max_for(ct, &head);
        if size > max {
            return Err(Failure::Fatal(crate::storage::too_large(max)));
        }
        md5.update(&chunk);
        match &mut file {
            Some((_, f)) => f.write_all(&chunk).await.map_err(io)?,
            None if size > limits.spill_at => {
                let (tmp, mut f) = temp_file().await?;
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

fn io(e: std::io::Error) -> Failure {
    tracing::warn!(error = %e, "reading a mirror origin failed");
    Failure::Retry(mirror_failed("reading the origin failed"))
}

/// A temporary file and a handle to write it. Creating and opening it are
/// blocking calls: off the async workers. (The MD5 of a chunk stays inline: a
/// 64 KiB chunk hashes in about 0.1 ms, less than a hop to the blocking pool
/// would cost.)
async fn temp_file() -> Result<(tempfile::NamedTempFile, tokio::fs::File), Failure> {
    let (tmp, std_file) = tokio::task::spawn_blocking(|| {
        let tmp = tempfile::NamedTempFile::new()?;
        let f = tmp.reopen()?;
        Ok::<_, std::io::Error>((tmp, f))
    })
    .await
    .map_err(|e| io(std::io::Error::other(e)))?
    .map_err(io)?;
    Ok((tmp, tokio::fs::File::from_std(std_file)))
}

/// Validate a complete body (Content-MD5, content type) into what the fetch answers.
pub fn validate(s: Spooled, meta: OriginMeta, rule: &MirrorRule) -> Result<Fetched, Failure> {
    use base64::Engine;
    if let (true, Some(want)) = (rule.check_md5, meta.content_md5.as_deref()) {
        let got = base64::engine::general_purpose::STANDARD.encode(s.md5);
        if want.trim() != got {
            return Err(Failure::Fatal(mirror_failed(
                "the origin's Content-MD5 does not match the content; nothing stored",
            )));
        }
    }
    let ct = content_type(meta.content_type, &s.head);
    if !rules::content_type_allowed(&rule.content_types, &ct) {
        return Err(Failure::Fatal(mirror_failed(&format!(
            "the origin sent content type {ct}, which the rule does not allow"
        ))));
    }
    let etag = meta
        .etag
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| format!("\"{}\"", hex::encode(s.md5)));
    Ok(Fetched {
        body: s.body,
        size: s.size,
        content_type: ct,
        etag,
        last_modified: meta.last_modified,
        store: rule.store,
    })
}

/// The origin's content type, unless it is missing or generic: then the one
/// sniffed from the first bytes.
fn content_type(given: Option<String>, head: &[u8]) -> String {
    match given {
        Some(ct)
            if !ct.is_empty()
                && !ct.starts_with("application/octet-stream")
                && !ct.starts_with("binary/") =>
        {
            ct
        }
        _ => Format::sniff(head)
            .map(|f| f.content_type().to_string())
            .unwrap_or_else(|| "application/octet-stream".into()),
    }
}
