//! `[[sites]]`: several buckets and domains in one fleet. Each site is an
//! [`App`] of its own (store, styles, mirror rules, cache-control, flights)
//! over the process's shared pool, memory budget and L1 (`Shared`); the
//! request's `Host` picks it. The top-level configuration is the default
//! site, so a configuration without `[[sites]]` serves every host as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::app::{App, Shared};
use crate::cache::SiteId;
use crate::config::{Config, UnknownHosts};
use crate::metrics::Metrics;
use crate::mirror::Mirror;
use crate::storage::DynStore;

pub struct Sites {
    /// The top-level configuration's site.
    pub default: Arc<App>,
    /// Host name (lowercase, no port, no trailing dot) → its site.
    by_host: HashMap<String, Arc<App>>,
    /// Site name → its site (admin calls, `?site=`).
    by_name: HashMap<String, Arc<App>>,
    unknown: UnknownHosts,
}

/// `Host` as sites name it: lowercase, without the port or a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim();
    let h = if let Some(rest) = h.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        h.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(h, |(name, _)| name)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Every style of the top level and of each site parses (a process string is
/// the language's to check, so the configuration does not): checked before a
/// server starts and by `check-config`. The error names the style.
pub fn check_styles(cfg: &Config) -> Result<(), String> {
    let check = |c: &Config, at: &str| -> Result<(), String> {
        for (name, value) in c.styles.iter() {
            crate::process::lang::parse_process(value, &BTreeMap::new())
                .map_err(|e| format!("{at}styles.{name}: {e}"))?;
        }
        Ok(())
    };
    check(cfg, "")?;
    (0..cfg.sites.len()).try_for_each(|i| match cfg.site(i) {
        Some(c) => check(&c, &format!("sites[{i}]: ")),
        None => Ok(()),
    })
}

async fn mirror_of(cfg: &Config, metrics: &Arc<Metrics>) -> Result<Option<Mirror>, String> {
    if cfg.mirror.rules.is_empty() {
        return Ok(None);
    }
    Ok(Some(Mirror::new(cfg, metrics.clone()).await?))
}

impl Sites {
    /// Every site of `cfg`; `store` is the default site's (the caller opened it).
    pub async fn build(cfg: Config, store: DynStore) -> Result<Sites, String> {
        check_styles(&cfg)?;
        let shared = Shared::new(&cfg, Arc::new(Metrics::new()));
        let mut by_host = HashMap::new();
        let mut by_name = HashMap::new();
        for (i, site) in cfg.sites.iter().enumerate() {
            let Some(site_cfg) = cfg.site(i) else {
                continue;
            };
            let name = site.name();
            let store = crate::storage::open::from_config(&site_cfg.storage)
                .await
                .map_err(|e| format!("sites[{i}] ({name}): {e}"))?;
            let mirror = mirror_of(&site_cfg, &shared.metrics).await?;
            let id = SiteId(u32::try_from(i + 1).map_err(|_| "too many [[sites]]".to_string())?);
            let app = App::new_in(site_cfg, store, mirror, &shared, id);
            for h in &site.hosts {
                by_host.insert(normalize_host(h), app.clone());
            }
            by_name.insert(name, app);
        }
        let unknown = cfg.server.unknown_hosts;
        let mut top = cfg;
        top.sites = Vec::new();
        let mirror = mirror_of(&top, &shared.metrics).await?;
        let hosts = top.server.hosts.clone();
        let default = App::new_in(top, store, mirror, &shared, SiteId::DEFAULT);
        if !by_host.is_empty() {
            for h in &hosts {
                by_host.insert(normalize_host(h), default.clone());
            }
        }
        Ok(Sites {
            default,
            by_host,
            by_name,
            unknown,
        })
    }

    /// The site that answers `host`: the one naming it; else, with no sites
    /// configured or `server.unknown_hosts = "default"`, the default site;
    /// else none (the request is refused).
    pub fn for_host(&self, host: Option<&str>) -> Option<&Arc<App>> {
        if self.by_host.is_empty() {
            return Some(&self.default);
        }
        let found = host.and_then(|h| self.by_host.get(&normalize_host(h)));
        match (found, self.unknown) {
            (Some(app), _) => Some(app),
            (None, UnknownHosts::Default) => Some(&self.default),
            (None, UnknownHosts::Reject) => None,
        }
    }

    /// A site by name; `None` (no name) is the default site.
    pub fn named(&self, name: Option<&str>) -> Option<&Arc<App>> {
        match name {
            None | Some("") => Some(&self.default),
            Some(n) => self.by_name.get(n),
        }
    }

    /// Every site, the default first.
    pub fn all(&self) -> impl Iterator<Item = &Arc<App>> {
        std::iter::once(&self.default).chain(self.by_name.values())
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_as_sites_name_them() {
        assert_eq!(normalize_host("Img.Example.COM"), "img.example.com");
        assert_eq!(normalize_host("img.example.com:8080"), "img.example.com");
        assert_eq!(normalize_host("img.example.com."), "img.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("127.0.0.1:80"), "127.0.0.1");
    }
}
