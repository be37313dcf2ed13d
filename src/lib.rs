//! pixmirror: a self-hosted caching image proxy with Aliyun OSS-style processing
//! and mirror back-to-origin rules. See ARCHITECTURE.md for the map.

pub mod config;
pub mod error;
pub mod process;
pub mod storage;
pub mod cache;
pub mod http;
pub mod metrics;
pub mod pool;
pub mod service;
pub mod writeback;
