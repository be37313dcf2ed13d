//! The sections of the configuration (`[server]`, `[storage]`, `[cache]`,
//! `[derivatives]`, `[http]`, `[process]`, `[styles]`, `[mirror]`,
//! `[signing]`, `[[sites]]`) with their defaults (SPEC section 5).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::units::{ByteSize, Dur, MemoryBudget};

/// Whatever a site leaves out comes from the top level (the default site).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// Its name in logs and admin calls (`?site=`); default: its first host.
    pub name: Option<String>,
    pub hosts: Vec<String>,
    pub storage: Option<StorageConfig>,
    pub styles: Option<StylesConfig>,
    pub mirror: Option<MirrorConfig>,
    pub http: Option<HttpConfig>,
}

impl SiteConfig {
    pub fn name(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.hosts.first().cloned())
            .unwrap_or_default()
    }
}

/// What a request whose `Host` no site names gets, when `[[sites]]` exist.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownHosts {
    /// 404 NoSuchKey.
    #[default]
    Reject,
    /// The top-level (default) site.
    Default,
}

/// `[styles]`: `name = "image/..."` for `style/name`, and the reserved key
/// `separators` (`key!thumb` = `key?x-oss-process=style/thumb`). Reads as the
/// map of styles (`Deref`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StylesConfig {
    /// OSS style delimiters in use, e.g. `["!"]` or `["-", "_"]`; none by default.
    pub separators: Vec<String>,
    #[serde(flatten)]
    pub styles: BTreeMap<String, String>,
}

impl std::ops::Deref for StylesConfig {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.styles
    }
}

impl std::ops::DerefMut for StylesConfig {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.styles
    }
}

/// `[signing]`: optional signed URLs (off when there are no keys).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningConfig {
    /// Refuse unsigned requests (403) instead of serving them.
    pub required: bool,
    /// pixmirror's own secrets, hex; the first signs, all verify (rotation).
    pub keys: Vec<String>,
    /// Aliyun OSS V1 presigned URLs made for these key pairs keep working.
    pub oss_keys: Vec<OssKey>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OssKey {
    pub access_key_id: String,
    pub access_key_secret: String,
    /// The OSS bucket the URLs were signed for (part of the string to sign).
    pub bucket: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub admin_listen: SocketAddr,
    /// How long SIGTERM waits for in-flight requests and the write-back queue.
    pub shutdown_timeout: Dur,
    /// With `[[sites]]`: the host names of the default (top-level) site.
    pub hosts: Vec<String>,
    /// With `[[sites]]`: a `Host` no site names is refused (404) or served
    /// by the default site.
    pub unknown_hosts: UnknownHosts,
    /// A shared secret for `POST /purge/<key>` on the admin listener
    /// (`Authorization: Bearer <token>`). Without it, purge is answered only
    /// when the admin listener is on a loopback address.
    pub admin_token: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    Fs,
    S3,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    pub bucket: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// `[storage]`: the bucket's keys (`storage.s3.bucket`, `storage.s3.region`, ...)
/// are written flat beside `kind`, `root` and `timeout`, and read into one
/// [`S3Config`], the same type a mirror rule's `origin_s3` is.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    pub kind: StorageKind,
    pub root: PathBuf,
    #[serde(flatten)]
    pub s3: S3Config,
    /// Per-operation timeout of store calls.
    pub timeout: Dur,
    /// Keys `[storage]` does not know. serde's `deny_unknown_fields` does
    /// not work beside `flatten`, so `validate` refuses them by name.
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    pub memory_bytes: ByteSize,
    pub ttl: Dur,
    pub max_item_bytes: ByteSize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteMode {
    Async,
    Sync,
}

/// Which derivatives are written back to the bucket (`derivatives.admit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Admit {
    /// Every derivative (bounded by `max_per_original`).
    Always,
    /// From the `admit_hits`-th request for it.
    Repeat,
    /// Only derivatives asked for by a named style.
    Styles,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DerivativesConfig {
    pub store: bool,
    pub separator: String,
    pub write: WriteMode,
    pub revalidate: bool,
    /// An original checked less than this long ago is taken as unchanged
    /// without asking the bucket again (0: check on every hit).
    pub revalidate_after: Dur,
    /// Capacity of the asynchronous write-back queue.
    pub queue: usize,
    /// Attempts per write-back (first try included).
    pub write_attempts: u32,
    pub admit: Admit,
    /// With `admit = "repeat"`: stored from this many requests on.
    pub admit_hits: u32,
    /// Stored derivatives per original; past it they are served, not stored. 0: no cap.
    pub max_per_original: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub cache_control: String,
}

/// The largest snapped side and hint width a request may reach: the plan's
/// `MAX_SIDE` and `MAX_HINT_WIDTH`, checked by `validate`, written here because the configuration
/// depends on nothing of pixmirror's (a test in `plan::limits` keeps them
/// equal).
pub const MAX_SNAP: u32 = 16384;
pub const MAX_DEFAULT_WIDTH: u32 = 4096;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    pub max_source_bytes: ByteSize,
    pub max_source_pixels: u64,
    /// Output pixels: checked from the plan before decoding and after every step.
    pub max_output_pixels: u64,
    /// Frames (pages) of an animated or multi-page source.
    pub max_frames: u32,
    /// Bytes in flight for sources, decoded pixels and outputs.
    pub memory_budget: MemoryBudget,
    /// Opt-in size snapping: a resize's `w` (`h`) rounds up to the next value
    /// listed here (the largest when past them all), before canonicalisation.
    pub snap_widths: Vec<u32>,
    pub snap_heights: Vec<u32>,
    /// Optional: `q`/`Q` round to the nearest of these.
    pub allowed_qualities: Vec<u8>,
    pub auto_formats: Vec<String>,
    /// libvips slots of the blocking pool; 0 = one per core, plus one.
    pub workers: usize,
    /// Requests allowed to wait for a slot before `503 Busy`.
    pub queue: usize,
    /// Longest a single processing run may take (504 beyond).
    pub timeout: Dur,
    /// Default encoder qualities.
    pub jpeg_quality: u8,
    pub webp_quality: u8,
    pub avif_quality: u8,
    /// AVIF encoder effort 0 (fast) ..= 9 (slow).
    pub avif_effort: u8,
    /// WebP encoder effort (libwebp's `method`) 0 (fast) ..= 6 (small).
    pub webp_effort: u8,
    /// The WebP effort (never below `webp_effort`) for an output from a
    /// source with at least `pipeline::LARGE_SOURCE_RATIO` times its pixels,
    /// whose decode outweighs the encode.
    pub webp_large_source_effort: u8,
    /// Decode a progressive JPEG at 1/8 scale without the scans that
    /// scale cannot see (same pixels, fewer bytes decoded).
    pub jpeg_scan_skip: bool,
    /// `resize,w_auto` and `dpr,auto` (`process::lang::hints`).
    pub client_hints: ClientHintsConfig,
}

/// `[process.client_hints]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientHintsConfig {
    /// `w_auto` without a usable hint (CSS pixels).
    pub default_width: u32,
}

impl Default for ClientHintsConfig {
    fn default() -> Self {
        ClientHintsConfig { default_width: 640 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorConfig {
    pub negative_ttl: Dur,
    pub allow_private_networks: bool,
    pub rules: Vec<MirrorRule>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorHeaders {
    pub pass: Vec<String>,
    pub set: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MirrorRule {
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub origin: Option<String>,
    pub origins: Option<Vec<String>>,
    pub origin_s3: Option<S3Config>,
    pub replace_prefix: Option<String>,
    pub store: bool,
    pub pass_query: bool,
    pub headers: MirrorHeaders,
    pub follow_redirects: bool,
    pub allowed_hosts: Vec<String>,
    pub check_md5: bool,
    pub timeout: Dur,
    pub retries: u32,
    pub content_types: Vec<String>,
}

impl Default for MirrorRule {
    fn default() -> Self {
        MirrorRule {
            prefix: None,
            suffix: None,
            origin: None,
            origins: None,
            origin_s3: None,
            replace_prefix: None,
            store: true,
            pass_query: false,
            headers: MirrorHeaders::default(),
            follow_redirects: true,
            allowed_hosts: Vec::new(),
            check_md5: false,
            timeout: Dur(Duration::from_secs(10)),
            retries: 2,
            content_types: vec!["image/*".into()],
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            shutdown_timeout: Dur(Duration::from_secs(25)),
            admin_token: None,
            hosts: Vec::new(),
            unknown_hosts: UnknownHosts::Reject,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            kind: StorageKind::Fs,
            root: PathBuf::from("./data/bucket"),
            s3: S3Config::default(),
            timeout: Dur(Duration::from_secs(30)),
            unknown: BTreeMap::new(),
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            memory_bytes: ByteSize(256 << 20),
            ttl: Dur(Duration::from_secs(600)),
            max_item_bytes: ByteSize(8 << 20),
        }
    }
}

impl Default for DerivativesConfig {
    fn default() -> Self {
        DerivativesConfig {
            store: true,
            separator: "__op__".into(),
            write: WriteMode::Async,
            revalidate: true,
            revalidate_after: Dur(Duration::from_secs(60)),
            queue: 1024,
            write_attempts: 3,
            admit: Admit::Always,
            admit_hits: 2,
            max_per_original: 200,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            cache_control: "public, max-age=86400".into(),
        }
    }
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            max_source_bytes: ByteSize(50 << 20),
            max_source_pixels: 100_000_000,
            max_output_pixels: 40_000_000,
            max_frames: 1000,
            memory_budget: MemoryBudget(None),
            snap_widths: Vec::new(),
            snap_heights: Vec::new(),
            allowed_qualities: Vec::new(),
            auto_formats: vec!["avif".into(), "webp".into()],
            workers: 0,
            queue: 256,
            timeout: Dur(Duration::from_secs(30)),
            jpeg_quality: 85,
            webp_quality: 80,
            avif_quality: 55,
            avif_effort: 2,
            webp_effort: 4,
            webp_large_source_effort: 5,
            jpeg_scan_skip: true,
            client_hints: ClientHintsConfig::default(),
        }
    }
}

/// `[video]`: snapshots (`video/snapshot`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VideoConfig {
    /// Bytes read from the store or an origin for one snapshot; past it 422.
    pub max_read_bytes: ByteSize,
    /// The largest video a mirror rule fetches (spooled to disk past
    /// `cache.max_item_bytes`, then streamed into the bucket); images keep
    /// `process.max_source_bytes`.
    pub max_source_bytes: ByteSize,
}

impl Default for VideoConfig {
    fn default() -> Self {
        VideoConfig {
            max_read_bytes: ByteSize(64 << 20),
            max_source_bytes: ByteSize(2 << 30),
        }
    }
}

impl Default for MirrorConfig {
    fn default() -> Self {
        MirrorConfig {
            negative_ttl: Dur(Duration::from_secs(30)),
            allow_private_networks: false,
            rules: Vec::new(),
        }
    }
}
