//! pixmirror: a self-hosted caching image proxy with Aliyun OSS-style processing
//! and mirror back-to-origin rules. See ARCHITECTURE.md for the map.

pub mod budget;
pub mod cache;
pub mod config;
pub mod error;
pub mod fleet;
pub mod http;
pub mod lock;
pub mod metrics;
pub mod mirror;
pub mod oss_import;
pub mod pool;
pub mod process;
pub mod service;
pub mod signing;
pub mod storage;
pub mod warm;
pub mod writeback;
