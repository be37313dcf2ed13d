//! Configuration: built-in defaults, then the TOML file, then `PIXMIRROR_<SECTION>__<KEY>`
//! environment variables (SPEC section 5). Pure: no I/O besides reading the
//! file; depends on nothing of pixmirror. `units` reads sizes and durations,
//! `sections` holds every section with its defaults, `validate` the checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format as _, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

mod sections;
mod units;
mod validate;

pub use sections::*;
pub use units::{ByteSize, Dur, MemoryBudget};

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
    /// `video/snapshot`.
    pub video: VideoConfig,
    /// More buckets and domains in one fleet; the top level is the default site.
    pub sites: Vec<SiteConfig>,
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
    fn styles_are_not_checked_here() {
        // A process string is the language's to check (`service::sites::check_styles`).
        let mut cfg = Config::default();
        cfg.styles.insert("thumb".into(), "image/nope".into());
        assert!(cfg.validate().is_ok());
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
    fn storage_keys_are_read_and_a_misspelt_one_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        let good =
            "[storage]\nkind = \"s3\"\nbucket = \"b\"\nregion = \"r\"\nendpoint = \"http://e\"\n\
                    force_path_style = true\naccess_key_id = \"a\"\nsecret_access_key = \"s\"\n";
        std::fs::write(&p, good).expect("write");
        let s3 = Config::load(&p, true).expect("load").storage.s3;
        assert_eq!(
            (
                s3.bucket.as_str(),
                s3.region.as_deref(),
                s3.endpoint.as_deref()
            ),
            ("b", Some("r"), Some("http://e"))
        );
        assert!(s3.force_path_style);
        assert_eq!(s3.access_key_id.as_deref(), Some("a"));
        assert_eq!(s3.secret_access_key.as_deref(), Some("s"));
        for bad in [
            "[storage]\nbukcet = \"b\"\n",
            "[[sites]]\nhosts = [\"a\"]\n[sites.storage]\nbukcet = \"b\"\n",
        ] {
            std::fs::write(&p, bad).expect("write");
            let err = Config::load(&p, true).expect_err("must fail");
            assert!(err.contains("bukcet"), "{err}");
        }
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
