//! Purging an original's derivatives: the one purge that the admin endpoint
//! (`POST /purge/<key>`), `pixmirror purge` and `purge --fleet` all use.
//!
//! Order, for the reader: the purge is recorded and every in-memory copy is
//! dropped first (renders in flight then publish nothing, `cache::Purges`),
//! then every stored derivative is deleted, each tried even when another
//! fails, then the in-memory copies are dropped again (a request in between
//! may have read a stored derivative back). A failed delete is reported with
//! what was and was not deleted.

use std::sync::Arc;

use std::net::SocketAddr;

use super::app::App;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::storage::Store;

/// What deleting an original's stored derivatives did.
#[derive(Debug, Default)]
pub struct Deleted {
    pub deleted: usize,
    /// The derivatives whose delete failed (each logged with the store's error).
    pub failed: Vec<String>,
}

impl Deleted {
    /// The number deleted when every delete succeeded; else an error that
    /// says how many were and were not deleted, naming the first few left.
    pub fn complete(self) -> Result<usize> {
        if self.failed.is_empty() {
            return Ok(self.deleted);
        }
        let total = self.deleted + self.failed.len();
        let named: Vec<&str> = self.failed.iter().take(5).map(String::as_str).collect();
        let more = self.failed.len().saturating_sub(named.len());
        Err(Error::StoreError(format!(
            "purge: deleted {} of {total} stored derivative(s); not deleted: {}{}",
            self.deleted,
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        )))
    }
}

/// Delete every stored derivative of `key` (`<key><sep>...`), each tried.
/// Only a failed listing fails the call.
pub async fn delete_stored(store: &dyn Store, key: &str, sep: &str) -> Result<Deleted> {
    let keys = store.list(&format!("{key}{sep}")).await?;
    let mut out = Deleted::default();
    for k in keys {
        match store.delete(&k).await {
            Ok(()) => out.deleted += 1,
            Err(e) => {
                tracing::warn!(key = %k, error = %e, "purge: delete failed");
                out.failed.push(k);
            }
        }
    }
    Ok(out)
}

impl App {
    /// Delete every stored derivative of `key` and drop this instance's copies
    /// (see the module doc for the order). Renders in flight for `key` keep
    /// their result for their callers but publish nothing, and later requests
    /// start new renders.
    pub async fn purge(self: &Arc<Self>, key: &str) -> Result<usize> {
        self.purge_memory(key);
        let sep = &self.cfg.derivatives.separator;
        let deleted = delete_stored(self.store.as_ref(), key, sep).await;
        self.purge_memory(key);
        deleted?.complete()
    }

    /// This instance's part of a purge only: renders in flight for `key`
    /// publish nothing, and L1 drops the key and its derivatives. The fleet
    /// purge deletes the stored derivatives once, then asks every instance
    /// for this.
    pub fn purge_memory(&self, key: &str) {
        let prefix = format!("{key}{}", self.cfg.derivatives.separator);
        self.purges.purge(key);
        self.flights.renders.forget_prefix(&prefix);
        self.l1.remove_key_and_prefix(key, &prefix);
    }
}

/// `pixmirror purge <key> [--fleet NAME]`: the stored derivatives deleted once,
/// and with `--fleet` every instance behind NAME drops its copies before (a
/// bad name or token fails before anything is deleted) and after the deletion
/// (a request in between could have read a stored derivative back), even when
/// a delete failed. `say` gets the lines for the operator.
pub async fn command(
    cfg: &Config,
    key: &str,
    fleet: Option<&str>,
    say: &mut dyn FnMut(String),
) -> Result<(), String> {
    let token = cfg.server.admin_token.as_deref();
    let instances = match fleet {
        Some(name) => {
            let addrs = crate::fleet::resolve(name, cfg.server.admin_listen.port()).await?;
            fleet_drop(&addrs, key, token, "nothing was deleted").await?;
            Some(addrs)
        }
        None => None,
    };
    let store = crate::storage::open::from_config(&cfg.storage).await?;
    let sep = &cfg.derivatives.separator;
    let listed = delete_stored(store.as_ref(), key, sep).await;
    let state = match &listed {
        Err(_) => "the stored derivatives could not be listed; nothing was deleted",
        Ok(d) if !d.failed.is_empty() => "some stored derivatives are left",
        Ok(_) => "the stored derivatives are deleted",
    };
    let deleted = listed
        .and_then(Deleted::complete)
        .map_err(|e| e.to_string());
    if let Ok(n) = &deleted {
        say(format!("purged {n} derivative(s) of {key}"));
    }
    let Some(instances) = instances else {
        say("note: running instances keep their in-memory copies until cache.ttl; --fleet drops them".into());
        return deleted.map(drop);
    };
    if let Err(e) = fleet_drop(&instances, key, token, state).await {
        return Err(match deleted {
            Ok(_) => e,
            Err(d) => format!("{d}; {e}"),
        });
    }
    for addr in &instances {
        say(format!("dropped {key} from the memory of {addr}"));
    }
    deleted.map(drop)
}

/// Every instance drops `key` from memory; an error names those that did not
/// (and says `state`: what has been done so far).
async fn fleet_drop(
    instances: &[SocketAddr],
    key: &str,
    token: Option<&str>,
    state: &str,
) -> Result<(), String> {
    let mut failed = Vec::new();
    for addr in instances {
        if let Err(e) = crate::fleet::purge_memory(*addr, key, token).await {
            failed.push(e);
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} of {} instance(s) did not drop {key} ({state}): {}",
        failed.len(),
        instances.len(),
        failed.join("; ")
    ))
}
