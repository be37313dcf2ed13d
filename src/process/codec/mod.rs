//! Container bytes read and patched in pure Rust, without decoding pixels and
//! without libvips: one walker per container (`jpeg` segments, `png` chunks,
//! `webp` chunks, `gif` blocks), what is read from them (the format, the ICC
//! profile, a JPEG's quality, EXIF fields, frame counts) and what is patched
//! (WebP metadata, the GIF loop count). Also PNG shrink-on-load, which decodes
//! rows in Rust. Depends on nothing in `process` but the plan's `Format`.
//!
//! To handle a container quirk: the container's file here, and a test beside it.

pub mod exif;
pub mod format;
pub mod gif;
pub mod icc;
pub mod jpeg;
pub mod jpeg_scans;
pub mod png;
pub mod webp;
