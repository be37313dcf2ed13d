//! Configuration: built-in defaults, then the TOML file, then `PIXMIRROR_<SECTION>__<KEY>`
//! environment variables (SPEC section 5). Pure: no I/O besides reading the file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A size in bytes; accepts an integer or a string like `"256MiB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let num: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (e.g. 1048576, \"512KiB\", \"256MiB\")"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => return Err(format!("unknown size unit `{other}` in `{s}`")),
        };
        Ok(ByteSize((num * mult as f64) as u64))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes or a string like \"256MiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// `process.memory_budget`: `"auto"` (a share of the cgroup limit or of RAM,
/// see `budget::auto_budget`) or a size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryBudget(pub Option<ByteSize>);

impl<'de> Deserialize<'de> for MemoryBudget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = MemoryBudget;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\" or a size like \"2GiB\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MemoryBudget, E> {
                Ok(MemoryBudget(Some(ByteSize(v))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MemoryBudget, E> {
                u64::try_from(v)
                    .map(|v| MemoryBudget(Some(ByteSize(v))))
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MemoryBudget, E> {
                if v.trim().eq_ignore_ascii_case("auto") {
                    return Ok(MemoryBudget(None));
                }
                ByteSize::parse(v)
                    .map(|b| MemoryBudget(Some(b)))
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for MemoryBudget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str("auto"),
            Some(b) => b.serialize(s),
        }
    }
}

/// A duration; accepts a string like `"10s"`, `"500ms"`, `"10m"` or an integer of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration like \"10s\" or an integer of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Dur, E> {
                Ok(Dur(Duration::from_secs(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Dur, E> {
                u64::try_from(v)
                    .map(|s| Dur(Duration::from_secs(s)))
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Dur, E> {
                humantime::parse_duration(v.trim())
                    .map(Dur)
                    .map_err(|e| E::custom(format!("`{v}` is not a duration: {e}")))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub cache: CacheConfig,
    pub derivatives: DerivativesConfig,
    pub http: HttpConfig,
    pub process: ProcessConfig,
    pub styles: StylesConfig,
    pub mirror: MirrorConfig,
    pub signing: SigningConfig,
    /// More buckets and domains in one fleet; the top level is the default site.
    pub sites: Vec<SiteConfig>,
}

/// `[[sites]]`: the `Host` names a site answers, and what it has of its own.
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

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub kind: StorageKind,
    pub root: PathBuf,
    pub bucket: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub force_path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Per-operation timeout of store calls.
    pub timeout: Dur,
}

impl StorageConfig {
    pub fn s3(&self) -> S3Config {
        S3Config {
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            force_path_style: self.force_path_style,
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
        }
    }
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
            bucket: String::new(),
            region: None,
            endpoint: None,
            force_path_style: false,
            access_key_id: None,
            secret_access_key: None,
            timeout: Dur(Duration::from_secs(30)),
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

/// Where the config file comes from: `--config`, else `PIXMIRROR_CONFIG`, else `config.toml`.
pub fn config_path(flag: Option<&Path>) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    std::env::var_os("PIXMIRROR_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config.toml"))
}

impl Config {
    /// Defaults, then the TOML file (if it exists, or always when named explicitly), then env.
    pub fn load(path: &Path, required: bool) -> Result<Config, String> {
        if required && !path.exists() {
            return Err(format!("config file {} does not exist", path.display()));
        }
        let figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(path))
            .merge(
                Env::prefixed("PIXMIRROR_")
                    .filter(|k| k.as_str().contains("__"))
                    .split("__"),
            );
        let cfg: Config = figment.extract().map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The configuration of site `i`: the top level with the site's own
    /// storage, styles, mirror and http in place (and no sites).
    pub fn site(&self, i: usize) -> Option<Config> {
        let s = self.sites.get(i)?;
        let mut c = self.clone();
        c.sites = Vec::new();
        if let Some(v) = &s.storage {
            c.storage = v.clone();
        }
        if let Some(v) = &s.styles {
            c.styles = v.clone();
        }
        if let Some(v) = &s.mirror {
            c.mirror = v.clone();
        }
        if let Some(v) = &s.http {
            c.http = v.clone();
        }
        Some(c)
    }

    /// `[[sites]]`: hosts given and not shared, names unique, each site's
    /// own configuration valid.
    fn validate_sites(&self) -> Result<(), String> {
        let mut hosts: std::collections::BTreeSet<String> = self
            .server
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.sites.iter().enumerate() {
            if s.hosts.is_empty() {
                return Err(format!(
                    "sites[{i}].hosts: at least one host name is required"
                ));
            }
            for h in &s.hosts {
                if !hosts.insert(h.to_ascii_lowercase()) {
                    return Err(format!("sites[{i}].hosts: `{h}` is named by two sites"));
                }
            }
            if !names.insert(s.name()) {
                return Err(format!("sites[{i}].name: `{}` is used twice", s.name()));
            }
            if let Some(c) = self.site(i) {
                c.validate().map_err(|e| format!("sites[{i}]: {e}"))?;
            }
        }
        Ok(())
    }

    /// Checks that cannot be expressed in types. Errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_sites()?;
        let sep = &self.derivatives.separator;
        if sep.is_empty() || sep.contains('/') || sep.contains(',') {
            return Err(format!(
                "derivatives.separator: `{sep}` must be non-empty and contain neither `/` nor `,`"
            ));
        }
        if self.storage.kind == StorageKind::S3 && self.storage.bucket.is_empty() {
            return Err("storage.bucket: required when storage.kind = \"s3\"".into());
        }
        for (i, k) in self.signing.keys.iter().enumerate() {
            if k.len() < 32 || hex::decode(k).is_err() {
                return Err(format!(
                    "signing.keys[{i}]: must be hex, at least 16 bytes (32 hex digits)"
                ));
            }
        }
        for (i, k) in self.signing.oss_keys.iter().enumerate() {
            if k.access_key_id.is_empty() || k.access_key_secret.is_empty() || k.bucket.is_empty() {
                return Err(format!(
                    "signing.oss_keys[{i}]: access_key_id, access_key_secret and bucket are required"
                ));
            }
        }
        if self.signing.required && self.signing.keys.is_empty() && self.signing.oss_keys.is_empty()
        {
            return Err("signing.required: needs signing.keys or signing.oss_keys".into());
        }
        if let Some(q) = self
            .process
            .allowed_qualities
            .iter()
            .find(|q| !(1..=100).contains(*q))
        {
            return Err(format!("process.allowed_qualities: {q} is outside [1,100]"));
        }
        for (name, list) in [
            ("snap_widths", &self.process.snap_widths),
            ("snap_heights", &self.process.snap_heights),
        ] {
            if let Some(v) = list.iter().find(|v| !(1..=16384).contains(*v)) {
                return Err(format!("process.{name}: {v} is outside [1,16384]"));
            }
        }
        if self.process.max_output_pixels == 0 || self.process.max_source_pixels == 0 {
            return Err(
                "process.max_source_pixels, process.max_output_pixels: must be above 0".into(),
            );
        }
        for f in &self.process.auto_formats {
            if !["avif", "webp", "jxl"].contains(&f.as_str()) {
                return Err(format!(
                    "process.auto_formats: `{f}` is not one of \"avif\", \"webp\", \"jxl\""
                ));
            }
        }
        for (q, name) in [
            (self.process.jpeg_quality, "jpeg_quality"),
            (self.process.webp_quality, "webp_quality"),
            (self.process.avif_quality, "avif_quality"),
        ] {
            if !(1..=100).contains(&q) {
                return Err(format!("process.{name}: {q} is outside [1,100]"));
            }
        }
        if self.process.avif_effort > 9 {
            return Err("process.avif_effort: must be in [0,9]".into());
        }
        for (e, name) in [
            (self.process.webp_effort, "webp_effort"),
            (
                self.process.webp_large_source_effort,
                "webp_large_source_effort",
            ),
        ] {
            if e > 6 {
                return Err(format!("process.{name}: {e} is outside [0,6]"));
            }
        }
        if self.derivatives.write_attempts == 0 {
            return Err("derivatives.write_attempts: must be at least 1".into());
        }
        for (name, value) in self.styles.iter() {
            crate::process::lang::parse_process(value, &BTreeMap::new())
                .map_err(|e| format!("styles.{name}: {e}"))?;
        }
        for sep in &self.styles.separators {
            // OSS allows these delimiters; `%`, `?` and `#` would collide with URL syntax.
            if !["!", "-", "_", "/", "@!", "@"].contains(&sep.as_str()) {
                return Err(format!(
                    "styles.separators: `{sep}` is not one of \"!\", \"-\", \"_\", \"/\", \"@!\", \"@\""
                ));
            }
        }
        for (i, rule) in self.mirror.rules.iter().enumerate() {
            let n = [
                rule.origin.is_some(),
                rule.origins.is_some(),
                rule.origin_s3.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                return Err(format!(
                    "mirror.rules[{i}]: needs exactly one of origin, origins, origin_s3 (found {n})"
                ));
            }
            let urls: Vec<&String> = rule
                .origin
                .iter()
                .chain(rule.origins.iter().flatten())
                .collect();
            if rule.origins.as_ref().is_some_and(|o| o.is_empty()) {
                return Err(format!("mirror.rules[{i}].origins: must not be empty"));
            }
            for u in urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(format!(
                        "mirror.rules[{i}]: origin `{u}` must start with http:// or https://"
                    ));
                }
                if u.parse::<http::Uri>().is_err()
                    && u.replace("{key}", "k").parse::<http::Uri>().is_err()
                {
                    return Err(format!(
                        "mirror.rules[{i}]: origin `{u}` is not a valid URL"
                    ));
                }
            }
            if let Some(s3) = &rule.origin_s3 {
                if s3.bucket.is_empty() {
                    return Err(format!("mirror.rules[{i}].origin_s3.bucket: required"));
                }
            }
        }
        Ok(())
    }

    /// The longest a request waits for work shared with others (a render, a
    /// source read, a mirror fetch): the sum of what that work may take by its
    /// own limits (store calls, the slowest mirror rule with its retries and
    /// origins, processing including the queue), plus slack. A safety net: the
    /// work's own timeouts end it sooner.
    pub fn shared_work_limit(&self) -> Duration {
        let mirror = self
            .mirror
            .rules
            .iter()
            .map(|r| {
                let origins =
                    r.origins.as_ref().map_or(0, Vec::len) + usize::from(r.origin.is_some());
                r.timeout.0 * (r.retries + 1) * origins.max(1) as u32
            })
            .max()
            .unwrap_or_default();
        self.storage.timeout.0 * 4 + mirror + self.process.timeout.0 + Duration::from_secs(10)
    }

    /// The number of libvips slots.
    /// libvips slots: `process.workers`, or one per core plus one. Each run is
    /// one thread (libvips concurrency 1), and a run leaves its core idle for
    /// moments (libvips hands work between its own threads, the request reads
    /// and writes); the extra slot fills them: +17% cold req/s on 2 cores, the
    /// same CPU per request (benches/peers).
    pub fn workers(&self) -> usize {
        if self.process.workers > 0 {
            self.process.workers
        } else {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                + 1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("256MiB"), Ok(ByteSize(256 << 20)));
        assert_eq!(ByteSize::parse("1kb"), Ok(ByteSize(1000)));
        assert_eq!(ByteSize::parse("42"), Ok(ByteSize(42)));
        assert!(ByteSize::parse("12 parsecs").is_err());
    }

    #[test]
    fn styles_hold_separators_beside_the_styles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[styles]\nthumb = \"image/resize,w_10\"\nseparators = [\"!\", \"@!\"]\n",
        )
        .expect("write");
        let cfg = Config::load(&p, true).expect("load");
        assert_eq!(cfg.styles.separators, vec!["!", "@!"]);
        assert_eq!(cfg.styles.len(), 1, "separators is not a style");
        assert_eq!(cfg.styles["thumb"], "image/resize,w_10");
        std::fs::write(&p, "[styles]\nseparators = [\"?\"]\n").expect("write");
        let err = Config::load(&p, true).expect_err("must fail");
        assert!(err.contains("styles.separators"), "{err}");
    }

    #[test]
    fn bad_key_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[cache]\nmemory_byts = 5\n").expect("write");
        let err = Config::load(&p, true).expect_err("must fail");
        assert!(err.contains("memory_byts"), "{err}");
        std::fs::write(&p, "[cache]\nmemory_bytes = \"5 parsecs\"\n").expect("write");
        let err = Config::load(&p, true).expect_err("must fail");
        assert!(err.contains("memory_bytes"), "{err}");
    }

    #[test]
    fn webp_effort_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[process]\nwebp_effort = 6\n").expect("write");
        assert_eq!(Config::load(&p, true).expect("load").process.webp_effort, 6);
        std::fs::write(&p, "[process]\nwebp_effort = 7\n").expect("write");
        let err = Config::load(&p, true).expect_err("must fail");
        assert!(err.contains("process.webp_effort"), "{err}");
    }

    #[test]
    fn rule_needs_one_origin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[[mirror.rules]]\nprefix = \"a/\"\n").expect("write");
        let err = Config::load(&p, true).expect_err("must fail");
        assert!(err.contains("mirror.rules[0]"), "{err}");
    }
}
