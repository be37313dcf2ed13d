//! hyper `Request` → [`ImageRequest`]: key decoding, the three process forms,
//! client hints (`w_auto`, `dpr`) and `format,auto` resolved. A 400 ends the request here: nothing is fetched.

use http::{Method, Request};
use percent_encoding::percent_decode_str;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::process::lang::hints::{self, HintConfig};
use crate::process::lang::{self, cos, negotiate};
use crate::process::plan::Plan;
use crate::service::{ImageRequest, Vary};

pub const OSS_PARAM: &str = "x-oss-process";
pub const BOS_PARAM: &str = "x-bce-process";

fn decode(s: &str, what: &str) -> Result<String> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| Error::invalid(format!("{what} is not valid percent-encoded UTF-8")))
}

/// `key<sep><style>` with a separator from `styles.separators`: the raw key and
/// the style name. Only a separator written literally counts (`a%21thumb` is
/// the key `a!thumb`), and only when the suffix names a configured style, so
/// every stored key stays reachable.
fn style_suffix<'a>(raw_path: &'a str, cfg: &Config) -> Option<(&'a str, &'a str)> {
    // Of the separators that match, the longest: `@!` before `!`.
    let seps = &cfg.styles.separators;
    seps.iter()
        .filter_map(|sep| {
            let (key, name) = raw_path.rsplit_once(sep.as_str())?;
            let found = !key.is_empty() && cfg.styles.contains_key(name);
            found.then_some((sep.len(), key, name))
        })
        .min_by_key(|(len, _, _)| std::cmp::Reverse(*len))
        .map(|(_, key, name)| (key, name))
}

/// What the response depends on besides the reply, read once from the
/// request: HEAD (no body), and `If-None-Match` (a 304).
pub struct Conditions {
    pub head: bool,
    pub if_none_match: Option<String>,
}

impl Conditions {
    pub fn of<B>(req: &Request<B>) -> Conditions {
        Conditions {
            head: req.method() == Method::HEAD,
            if_none_match: req
                .headers()
                .get(http::header::IF_NONE_MATCH)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }
}

pub fn parse<B>(req: &Request<B>, cfg: &Config, cond: &Conditions) -> Result<ImageRequest> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(Error::MethodNotAllowed(format!(
            "method {} is not allowed; use GET or HEAD",
            req.method()
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    crate::signing::verify(&cfg.signing, req.uri().path(), req.uri().query(), now)?;
    let raw_path = req.uri().path();
    let raw_path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let styled = style_suffix(raw_path, cfg);
    let path = decode(styled.map_or(raw_path, |(key, _)| key), "the path")?;
    let (process, query) = process_param(req.uri().query().unwrap_or(""))?;
    let process = match (styled, process) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "both a style suffix and a process parameter were given",
            ))
        }
        (Some((_, name)), None) => Some(Process::Oss(format!("style/{name}"))),
        (None, p) => p,
    };
    let from_style = matches!(&process, Some(Process::Oss(p)) if p.starts_with("style/"));
    let (key, mut plan) = key_and_plan(path, process, cfg)?;
    check_key(&key)?;
    let mut vary = Vary::default();
    if let Some(p) = plan.as_mut() {
        let c = &cfg.process;
        let hint = |name: &str| req.headers().get(name)?.to_str().ok().map(str::to_string);
        let hint_cfg = HintConfig {
            default_width: c.client_hints.default_width,
            snap_widths: &c.snap_widths,
        };
        vary.hints = hints::resolve(p, &hint, &hint_cfg);
        p.snap(&c.snap_widths, &c.snap_heights, &c.allowed_qualities);
        vary.accept = negotiate::resolve(p, header(req, http::header::ACCEPT), &c.auto_formats);
    }
    // A plan that changes nothing serves the original as stored (still with
    // `Vary: Accept` when it came from `format,auto`).
    if plan.as_ref().is_some_and(|p| p.is_identity()) {
        plan = None;
    }
    Ok(ImageRequest {
        key,
        plan,
        vary,
        head: cond.head,
        if_none_match: cond.if_none_match.clone(),
        query,
        headers: req.headers().clone(),
        from_style,
    })
}

/// A key pixmirror looks up: not empty, and no control character
/// (U+0000-U+001F, U+007F; SPEC section 2). S3 allows them, but no image URL
/// needs them, so none reaches a cache, a flight or the store.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("no key in the path"));
    }
    if key.chars().any(|c| c.is_ascii_control()) {
        return Err(Error::invalid("the key holds a control character"));
    }
    Ok(())
}

/// A header's value as text ("" when absent or not text).
fn header<B>(req: &Request<B>, name: http::header::HeaderName) -> &str {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The process asked for in the query, decoded, in one of the grammars.
enum Process {
    /// `x-oss-process` / `x-bce-process` (or a style suffix): `image/...`, `style/...`.
    Oss(String),
    /// Tencent COS / Qiniu: a bare `imageMogr2/...` or `imageView2/...` item.
    Cos(String),
}

/// The process parameter (at most one, in any grammar) and the rest of the
/// query minus signature parameters (forwarded to mirror origins).
fn process_param(query: &str) -> Result<(Option<Process>, Option<String>)> {
    let mut process: Option<Process> = None;
    let mut rest: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let cos_item = if v.is_empty() {
            Some(decode(k, "the query")?).filter(|item| cos::is_cos(item))
        } else {
            None
        };
        let found = if k == OSS_PARAM || k == BOS_PARAM {
            Process::Oss(decode(v, k)?)
        } else if let Some(item) = cos_item {
            Process::Cos(item)
        } else {
            if !crate::signing::is_signature_param(k) {
                rest.push(pair);
            }
            continue;
        };
        if process.replace(found).is_some() {
            return Err(Error::invalid("more than one process parameter"));
        }
    }
    Ok((process, (!rest.is_empty()).then(|| rest.join("&"))))
}

/// The key and its plan: the path form (`key<sep>action<sep>...`) or the
/// key as given with the query's process.
fn key_and_plan(
    path: String,
    process: Option<Process>,
    cfg: &Config,
) -> Result<(String, Option<Plan>)> {
    let sep = cfg.derivatives.separator.as_str();
    if let Some((key, actions)) = path.split_once(sep) {
        if process.is_some() {
            return Err(Error::invalid(
                "both the path form and a process parameter were given",
            ));
        }
        let plan = lang::parse_path_actions(actions.split(sep))?;
        return Ok((key.to_string(), Some(plan)));
    }
    let plan = match process {
        Some(Process::Oss(p)) => Some(lang::parse_process(&p, &cfg.styles)?),
        Some(Process::Cos(p)) => Some(cos::parse(&p)?),
        None => None,
    };
    Ok((path, plan))
}
