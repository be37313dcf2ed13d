//! Opening the configured store: the one place that picks a backend.

use std::sync::Arc;

use super::fs;
#[cfg(feature = "s3")]
use super::s3;
use super::DynStore;
use crate::config::{StorageConfig, StorageKind};

/// Build the configured backend.
pub async fn from_config(cfg: &StorageConfig) -> Result<DynStore, String> {
    match cfg.kind {
        StorageKind::Fs => Ok(Arc::new(fs::FsStore::new(&cfg.root)?)),
        StorageKind::S3 => s3_store(&cfg.s3, cfg.timeout.0).await,
    }
}

/// An S3 store (the bucket, or a mirror rule's `origin_s3`).
#[cfg(feature = "s3")]
pub async fn s3_store(
    cfg: &crate::config::S3Config,
    timeout: std::time::Duration,
) -> Result<DynStore, String> {
    Ok(Arc::new(s3::S3Store::new(cfg, timeout).await?))
}

/// Built without the `s3` feature (the fuzz targets are): S3 is refused at
/// startup, never half-supported.
#[cfg(not(feature = "s3"))]
pub async fn s3_store(
    _cfg: &crate::config::S3Config,
    _timeout: std::time::Duration,
) -> Result<DynStore, String> {
    Err("this pixmirror was built without the `s3` feature".into())
}
