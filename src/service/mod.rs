//! The request path: one request is a [`Ctx`] that passes through named stages,
//! in this order, until one of them answers. Knows every other module; no hyper
//! types.
//!
//! ```text
//! serve:       l1 → not_modified → original | derivative
//! original:    locate (bucket, else mirror) → reply (stream, or buffer into L1)
//! derivative:  flight(derivative key) {
//!                bucket_derivative (GET it ∥ check the original)
//!                → source (L1, else flight(key) { locate: bucket, else mirror })
//!                → marks (each watermark image as a source)
//!                → process (pool) → publish (L1, write-back)
//!                (a video snapshot: locate by HEAD → snapshot (pool, ranged
//!                reads) → publish, in place of source, marks and process)
//!              } → reply
//! ```
//!
//! One place loads an original (`source::locate`), one place decides freshness
//! (`fresh::Freshness`), one place runs libvips (`render::process`) and one
//! FFmpeg (`snapshot::snap_in_pool`).
//!
//! `app` holds the [`App`] of one site, `ctx` the request context and reply,
//! `stages` the list above, `render` and `source` the two kinds of shared
//! work; `fresh`, `admit` and `purge` the three decisions of their names.

pub mod admit;
mod app;
mod ctx;
mod fresh;
pub mod purge;
mod render;
pub mod sites;
mod snapshot;
mod source;
mod stages;

pub use app::{App, Shared};
pub use ctx::{
    etag_matches, CacheStatus, Ctx, Derived, ImageRequest, Reply, ReplyBody, Vary, META_CANONICAL,
    META_SOURCE_ETAG, META_SOURCE_MODIFIED,
};
pub use render::derived_etag;
