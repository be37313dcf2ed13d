//! The languages of a request: process strings in every grammar (OSS/BOS in
//! `oss`, Tencent COS and Qiniu in `cos`) parsed into the canonical
//! [`Plan`](crate::process::plan::Plan), and `format,auto` resolved from
//! `Accept` (`negotiate`). Pure: no I/O, no libvips; it depends only on `plan`.
//!
//! To add an OSS action: a parser in `oss::ACTIONS`, its type and canonical
//! form in `plan` (see ARCHITECTURE.md, "Where to add").

pub mod cos;
pub mod hints;
pub mod negotiate;
mod oss;
pub mod params;
mod video;
mod watermark;

pub use oss::{parse_path_actions, parse_process};

#[cfg(test)]
mod tests;
