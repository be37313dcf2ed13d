//! pixmirror: a self-hosted caching image proxy with Aliyun OSS-style processing
//! and mirror back-to-origin rules. See ARCHITECTURE.md for the map.

pub mod config;
pub mod error;
pub mod process;
