//! Image processing: grammar → canonical plan → libvips.
//!
//! `grammar`, `plan` and `negotiate` are pure (no I/O, no libvips); `pipeline`
//! runs a resolved plan over source bytes with libvips and knows nothing of
//! HTTP or storage, so `pixmirror process` runs exactly what the server runs.

pub mod animation;
pub mod cos;
mod gifmeta;
pub mod grammar;
pub mod icc;
mod info;
pub mod jpegq;
pub mod negotiate;
mod overlay;
pub mod pipeline;
pub mod plan;
pub mod pngload;
mod resample;
mod steps;
pub mod vips;
pub mod watermark;
mod webpmeta;

pub use plan::{Format, FormatSpec, Plan};
