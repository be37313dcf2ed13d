//! The checks a configuration must pass that its types cannot express, one
//! small function per section, run in order by [`Config::validate`]. Each
//! error names the key. Styles are process strings: they are checked where
//! sites are built (`service::sites::check_styles`), not here.

use std::collections::BTreeSet;

use super::sections::{MirrorRule, StorageKind, MAX_DEFAULT_WIDTH, MAX_SNAP};
use super::Config;

type Check = fn(&Config) -> Result<(), String>;

/// Every check, in the order the errors are reported.
const CHECKS: &[Check] = &[
    sites,
    derivatives,
    storage,
    signing,
    process_limits,
    process_encoders,
    style_separators,
    mirror_rules,
];

impl Config {
    /// Checks that cannot be expressed in types. Errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        CHECKS.iter().try_for_each(|check| check(self))
    }
}

fn fail(ok: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(message())
    }
}

/// `[[sites]]`: hosts given and not shared, names unique, each site's own
/// configuration valid.
fn sites(cfg: &Config) -> Result<(), String> {
    let mut hosts: BTreeSet<String> = cfg
        .server
        .hosts
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut names = BTreeSet::new();
    for (i, s) in cfg.sites.iter().enumerate() {
        fail(!s.hosts.is_empty(), || {
            format!("sites[{i}].hosts: at least one host name is required")
        })?;
        for h in &s.hosts {
            fail(hosts.insert(h.to_ascii_lowercase()), || {
                format!("sites[{i}].hosts: `{h}` is named by two sites")
            })?;
        }
        fail(names.insert(s.name()), || {
            format!("sites[{i}].name: `{}` is used twice", s.name())
        })?;
        if let Some(c) = cfg.site(i) {
            c.validate().map_err(|e| format!("sites[{i}]: {e}"))?;
        }
    }
    Ok(())
}

fn derivatives(cfg: &Config) -> Result<(), String> {
    let sep = &cfg.derivatives.separator;
    fail(
        !sep.is_empty() && !sep.contains('/') && !sep.contains(','),
        || {
            format!(
                "derivatives.separator: `{sep}` must be non-empty and contain neither `/` nor `,`"
            )
        },
    )?;
    fail(cfg.derivatives.write_attempts > 0, || {
        "derivatives.write_attempts: must be at least 1".into()
    })
}

fn storage(cfg: &Config) -> Result<(), String> {
    let s = &cfg.storage;
    if let Some(k) = s.unknown.keys().next() {
        return Err(format!("storage.{k}: unknown key"));
    }
    fail(s.kind != StorageKind::S3 || !s.s3.bucket.is_empty(), || {
        "storage.bucket: required when storage.kind = \"s3\"".into()
    })
}

fn signing(cfg: &Config) -> Result<(), String> {
    let s = &cfg.signing;
    for (i, k) in s.keys.iter().enumerate() {
        fail(k.len() >= 32 && hex::decode(k).is_ok(), || {
            format!("signing.keys[{i}]: must be hex, at least 16 bytes (32 hex digits)")
        })?;
    }
    for (i, k) in s.oss_keys.iter().enumerate() {
        let whole =
            !k.access_key_id.is_empty() && !k.access_key_secret.is_empty() && !k.bucket.is_empty();
        fail(whole, || {
            format!(
                "signing.oss_keys[{i}]: access_key_id, access_key_secret and bucket are required"
            )
        })?;
    }
    fail(
        !s.required || !s.keys.is_empty() || !s.oss_keys.is_empty(),
        || "signing.required: needs signing.keys or signing.oss_keys".into(),
    )
}

fn process_limits(cfg: &Config) -> Result<(), String> {
    let p = &cfg.process;
    if let Some(q) = p.allowed_qualities.iter().find(|q| !(1..=100).contains(*q)) {
        return Err(format!("process.allowed_qualities: {q} is outside [1,100]"));
    }
    for (name, list) in [
        ("snap_widths", &p.snap_widths),
        ("snap_heights", &p.snap_heights),
    ] {
        if let Some(v) = list.iter().find(|v| !(1..=MAX_SNAP).contains(*v)) {
            return Err(format!("process.{name}: {v} is outside [1,{MAX_SNAP}]"));
        }
    }
    fail(p.max_output_pixels > 0 && p.max_source_pixels > 0, || {
        "process.max_source_pixels, process.max_output_pixels: must be above 0".into()
    })?;
    let w = p.client_hints.default_width;
    fail((1..=MAX_DEFAULT_WIDTH).contains(&w), || {
        format!("process.client_hints.default_width: {w} is outside [1,{MAX_DEFAULT_WIDTH}]")
    })?;
    fail(cfg.video.max_read_bytes.0 > 0, || {
        "video.max_read_bytes: must be above 0".into()
    })
}

fn process_encoders(cfg: &Config) -> Result<(), String> {
    let p = &cfg.process;
    for f in &p.auto_formats {
        fail(["avif", "webp", "jxl"].contains(&f.as_str()), || {
            format!("process.auto_formats: `{f}` is not one of \"avif\", \"webp\", \"jxl\"")
        })?;
    }
    let ranges = [
        ("jpeg_quality", p.jpeg_quality, 1, 100),
        ("webp_quality", p.webp_quality, 1, 100),
        ("avif_quality", p.avif_quality, 1, 100),
        ("avif_effort", p.avif_effort, 0, 9),
        ("webp_effort", p.webp_effort, 0, 6),
        ("webp_large_source_effort", p.webp_large_source_effort, 0, 6),
    ];
    for (name, v, min, max) in ranges {
        fail((min..=max).contains(&v), || {
            format!("process.{name}: {v} is outside [{min},{max}]")
        })?;
    }
    Ok(())
}

fn style_separators(cfg: &Config) -> Result<(), String> {
    for sep in &cfg.styles.separators {
        // OSS allows these delimiters; `%`, `?` and `#` would collide with URL syntax.
        fail(
            ["!", "-", "_", "/", "@!", "@"].contains(&sep.as_str()),
            || {
                format!(
                "styles.separators: `{sep}` is not one of \"!\", \"-\", \"_\", \"/\", \"@!\", \"@\""
            )
            },
        )?;
    }
    Ok(())
}

fn mirror_rules(cfg: &Config) -> Result<(), String> {
    cfg.mirror
        .rules
        .iter()
        .enumerate()
        .try_for_each(|(i, rule)| mirror_rule(i, rule))
}

fn mirror_rule(i: usize, rule: &MirrorRule) -> Result<(), String> {
    let n = [
        rule.origin.is_some(),
        rule.origins.is_some(),
        rule.origin_s3.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    fail(n == 1, || {
        format!("mirror.rules[{i}]: needs exactly one of origin, origins, origin_s3 (found {n})")
    })?;
    fail(!rule.origins.as_ref().is_some_and(|o| o.is_empty()), || {
        format!("mirror.rules[{i}].origins: must not be empty")
    })?;
    for u in rule.origin.iter().chain(rule.origins.iter().flatten()) {
        fail(
            u.starts_with("http://") || u.starts_with("https://"),
            || format!("mirror.rules[{i}]: origin `{u}` must start with http:// or https://"),
        )?;
        let valid =
            u.parse::<http::Uri>().is_ok() || u.replace("{key}", "k").parse::<http::Uri>().is_ok();
        fail(valid, || {
            format!("mirror.rules[{i}]: origin `{u}` is not a valid URL")
        })?;
    }
    if let Some(s3) = &rule.origin_s3 {
        fail(!s3.bucket.is_empty(), || {
            format!("mirror.rules[{i}].origin_s3.bucket: required")
        })?;
    }
    Ok(())
}
