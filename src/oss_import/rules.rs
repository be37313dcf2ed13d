//! OSS routing rules (`RedirectType` Mirror) as `[[mirror.rules]]`: what maps,
//! and why a rule or an option does not.

use std::collections::BTreeMap;

use serde::Serialize;

use super::xml::{MirrorAuth, MirrorHeaders, MultiAlternate, Redirect, RoutingRule};

#[derive(Debug, Default, Serialize)]
pub struct OutMirror {
    pub rules: Vec<OutRule>,
}

fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize)]
pub struct OutRule {
    #[serde(skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origins: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replace_prefix: Option<String>,
    #[serde(skip_serializing_if = "is_true")]
    store: bool,
    #[serde(skip_serializing_if = "is_false")]
    pass_query: bool,
    #[serde(skip_serializing_if = "is_true")]
    follow_redirects: bool,
    #[serde(skip_serializing_if = "is_false")]
    check_md5: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<OutHeaders>,
    #[serde(skip_serializing_if = "Option::is_none")]
    origin_s3: Option<OutS3>,
}

#[derive(Debug, Default, Serialize)]
struct OutHeaders {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pass: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remove: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    set: BTreeMap<String, String>,
}

#[derive(Debug, Default, Serialize)]
struct OutS3 {
    bucket: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
    #[serde(skip_serializing_if = "is_false")]
    force_path_style: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<String>,
}

/// Headers OSS never passes to an origin, even with `PassAll`.
const NEVER_PASSED: &[&str] = &[
    "Content-Length",
    "Authorization",
    "Authorization2",
    "Range",
    "Date",
];

/// One routing rule as a mirror rule, or `None` (with the reasons reported).
pub fn rule(r: &RoutingRule, unknown: &[String], report: &mut Vec<String>) -> Option<OutRule> {
    let n = r.rule_number;
    let mut say = |what: String| report.push(format!("rule {n}: {what}"));
    for line in unknown {
        say(line.clone());
    }
    let Some(redirect) = r.redirect.as_ref() else {
        say("no Redirect".into());
        return None;
    };
    // Every reason a rule cannot be imported is reported, not only the first.
    let refused = refusals(r, redirect);
    if !refused.is_empty() {
        refused.into_iter().for_each(&mut say);
        return None;
    }
    if r.lua_config.is_some() {
        say("LuaConfig: scripts are not supported (rule imported without it)".into());
    }
    let mut out = mirror_rule(r, redirect);
    origin(redirect, &mut out, &mut say)?;
    if redirect.mirror_switch_all_errors == Some(true) {
        say("MirrorSwitchAllErrors: pixmirror moves to the next origin on connection errors, timeouts and 5xx only".into());
    }
    if redirect.mirror_url_probe.is_some() {
        say(
            "MirrorURLProbe: pixmirror tries the origins in turn on every fetch instead of probing"
                .into(),
        );
    }
    Some(out)
}

/// Why a routing rule cannot become a mirror rule (empty: it can).
fn refusals(r: &RoutingRule, redirect: &Redirect) -> Vec<String> {
    let mut out = Vec::new();
    let kind = redirect.redirect_type.as_deref().unwrap_or("");
    if kind != "Mirror" {
        out.push(format!(
            "RedirectType {kind}: pixmirror mirrors, it does not answer with redirects; put this redirect in the CDN or a web server"
        ));
    }
    if let Some(code) = r
        .condition
        .http_error_code_returned_equals
        .filter(|c| *c != 404)
    {
        out.push(format!(
            "HttpErrorCodeReturnedEquals {code}: a mirror rule applies to missing keys (404) only"
        ));
    }
    if !r.condition.include_header.is_empty() {
        let names: Vec<&str> = r
            .condition
            .include_header
            .iter()
            .map(|h| h.key.as_str())
            .collect();
        out.push(format!(
            "IncludeHeader ({}): pixmirror's rules match on the key only; importing the rule without it would mirror more keys",
            names.join(", ")
        ));
    }
    out
}

/// The mirror rule's match and switches (its origins come from `origin`).
fn mirror_rule(r: &RoutingRule, redirect: &Redirect) -> OutRule {
    let non_empty = |v: &Option<String>| v.clone().filter(|p| !p.is_empty());
    OutRule {
        prefix: non_empty(&r.condition.key_prefix_equals),
        suffix: non_empty(&r.condition.key_suffix_equals),
        origin: None,
        origins: None,
        replace_prefix: None,
        store: !redirect.mirror_proxy_pass.unwrap_or(false),
        pass_query: redirect
            .mirror_pass_query_string
            .or(redirect.pass_query_string)
            .unwrap_or(false),
        follow_redirects: redirect.mirror_follow_redirect.unwrap_or(true),
        check_md5: redirect.mirror_check_md5.unwrap_or(false),
        headers: headers(redirect.mirror_headers.as_ref()),
        origin_s3: None,
    }
}

/// The origin(s), the key rewriting, and an S3 origin from `MirrorAuth`.
fn origin(d: &Redirect, out: &mut OutRule, say: &mut impl FnMut(String)) -> Option<()> {
    let Some(base) = d.mirror_url.as_deref().map(folder) else {
        say("Mirror without MirrorURL".into());
        return None;
    };
    let key_part = match &d.replace_key_with {
        Some(with) if !with.is_empty() => {
            if d.enable_replace_prefix == Some(true) {
                say("EnableReplacePrefix with ReplaceKeyWith: OSS refuses this combination".into());
                return None;
            }
            with.replace("${key}", "{key}")
        }
        _ => "{key}".to_string(),
    };
    if d.enable_replace_prefix == Some(true)
        || d.replace_key_prefix_with
            .as_deref()
            .is_some_and(|p| !p.is_empty())
    {
        out.replace_prefix = Some(d.replace_key_prefix_with.clone().unwrap_or_default());
    }
    let mut urls = vec![format!("{base}{key_part}")];
    if let Some(slave) = d.mirror_url_slave.as_deref().filter(|s| !s.is_empty()) {
        urls.push(format!("{}{key_part}", folder(slave)));
    }
    if let Some(alts) = &d.mirror_multi_alternates {
        let mut alts: Vec<&MultiAlternate> = alts.mirror_multi_alternate.iter().collect();
        alts.sort_by_key(|a| a.mirror_multi_alternate_number);
        for a in alts {
            urls.push(format!(
                "{}{key_part}",
                folder(&a.mirror_multi_alternate_url)
            ));
        }
    }
    if let Some(auth) = &d.mirror_auth {
        out.origin_s3 = Some(s3_origin(&base, auth, say)?);
        if urls.len() > 1 || key_part != "{key}" {
            say("MirrorAuth with several origins or ReplaceKeyWith: an S3 origin takes one bucket and the key (with replace_prefix)".into());
            return None;
        }
        return Some(());
    }
    if urls.len() == 1 {
        out.origin = urls.pop();
    } else {
        out.origins = Some(urls);
    }
    Some(())
}

/// An origin URL as OSS reads it: a folder, to which the key is appended.
fn folder(url: &str) -> String {
    if url.ends_with('/') {
        url.to_string()
    } else {
        format!("{url}/")
    }
}

/// An S3-compatible origin from its URL and `MirrorAuth`: a virtual-hosted
/// bucket (`https://bucket.s3.region.amazonaws.com/`) or a path-style one
/// (`https://minio.example.com/bucket/`).
fn s3_origin(url: &str, auth: &MirrorAuth, say: &mut impl FnMut(String)) -> Option<OutS3> {
    if let Some(t) = auth
        .auth_type
        .as_deref()
        .filter(|t| !t.eq_ignore_ascii_case("S3V4"))
    {
        say(format!(
            "MirrorAuth AuthType {t}: only S3V4 (an S3-compatible origin) is supported"
        ));
        return None;
    }
    let (scheme, rest) = url.split_once("://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let path = path.trim_matches('/');
    let mut s3 = OutS3 {
        region: auth.region.clone(),
        access_key_id: auth.access_key_id.clone(),
        secret_access_key: auth.access_key_secret.clone(),
        ..OutS3::default()
    };
    if !path.is_empty() {
        s3.bucket = path.split('/').next().unwrap_or(path).to_string();
        s3.endpoint = Some(format!("{scheme}://{host}"));
        s3.force_path_style = true;
    } else if let Some((bucket, aws)) = host.split_once(".s3.") {
        s3.bucket = bucket.to_string();
        if !aws.ends_with("amazonaws.com") {
            s3.endpoint = Some(format!("{scheme}://{}", &host[bucket.len() + 1..]));
        }
    } else {
        say(format!(
            "MirrorAuth: cannot tell the bucket from MirrorURL {url}"
        ));
        return None;
    }
    Some(s3)
}

fn headers(h: Option<&MirrorHeaders>) -> Option<OutHeaders> {
    let h = h?;
    let mut out = OutHeaders {
        pass: h.pass.clone(),
        remove: h.remove.clone(),
        set: h
            .set
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect(),
    };
    if h.pass_all == Some(true) {
        out.pass = vec!["*".into()];
        for n in NEVER_PASSED {
            if !out.remove.iter().any(|r| r.eq_ignore_ascii_case(n)) {
                out.remove.push(n.to_string());
            }
        }
    }
    (!out.pass.is_empty() || !out.remove.is_empty() || !out.set.is_empty()).then_some(out)
}
