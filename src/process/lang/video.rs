//! The OSS video grammar: `video/snapshot,t_<ms>,f_<jpg|png>[,w_][,h_][,m_fast][,ar_]`
//! into a plan holding one [`Snapshot`]. Every value is range-checked here,
//! before anything is fetched; the sides against the video itself once it is
//! open (`Snapshot::size`).

use super::params::{truncate, Params};
use crate::error::{Error, Result};
use crate::process::plan::limits::{MAX_SIDE, MAX_T_MS};
use crate::process::plan::{Format, Plan, Snapshot, Turn, SNAPSHOT_FORMATS};

/// `<action>` after `video/`: only `snapshot`, alone.
pub fn parse(rest: &str) -> Result<Plan> {
    if rest.contains('/') {
        return Err(Error::invalid(
            "video/snapshot cannot be combined with other actions",
        ));
    }
    let mut parts = rest.split(',');
    let name = parts.next().unwrap_or_default();
    if name != "snapshot" {
        return Err(Error::invalid(format!(
            "unknown video action `{}`",
            truncate(name)
        )));
    }
    let p = Params::parse(name, parts)?;
    p.only(&["t", "w", "h", "m", "f", "ar"], false)?;
    let snapshot = Snapshot {
        t_ms: p.required("t", 0, MAX_T_MS as i64)? as u64,
        w: p.int("w", 0, MAX_SIDE as i64)?.unwrap_or(0) as u32,
        h: p.int("h", 0, MAX_SIDE as i64)?.unwrap_or(0) as u32,
        fast: match p.get("m") {
            None => false,
            Some("fast") => true,
            Some(m) => return Err(bad(&p, "m", m, "fast")),
        },
        format: match p.get("f").map(|f| (f, Format::parse(f))) {
            Some((_, Some(f))) if SNAPSHOT_FORMATS.contains(&f) => f,
            Some((f, _)) => return Err(bad(&p, "f", f, "jpg, png")),
            None => return Err(Error::invalid("snapshot: parameter f is required")),
        },
        turn: match p.get("ar") {
            None => None,
            Some(a) => Some(Turn::parse(a).ok_or_else(|| bad(&p, "ar", a, "auto, w, h"))?),
        },
    };
    Ok(Plan {
        snapshot: Some(snapshot),
        ..Plan::default()
    })
}

fn bad(p: &Params, key: &str, v: &str, allowed: &str) -> Error {
    Error::invalid(format!(
        "{}: parameter {key} must be one of {allowed}, got `{}`",
        p.action,
        truncate(v)
    ))
}
