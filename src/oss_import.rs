//! `pixmirror import-oss`: an Aliyun OSS bucket's website configuration XML
//! (its `RoutingRules`, where mirror back-to-origin lives) and its style list
//! XML (`ListStyle` / `GetStyle`) turned into pixmirror TOML
//! (`[[mirror.rules]]`, `[styles]`). Every option either maps or is reported
//! with its rule number and why; nothing is dropped silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What an import produced: the TOML, and one line per thing not carried over.
#[derive(Debug, Default)]
pub struct Import {
    pub toml: String,
    pub report: Vec<String>,
    pub rules: usize,
    pub styles: usize,
}

// ---- The XML, as OSS writes it (element names are OSS's). ----

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct WebsiteConfiguration {
    index_document: Option<Skipped>,
    error_document: Option<Skipped>,
    routing_rules: Option<RoutingRules>,
}

#[derive(Debug, Default, Deserialize)]
struct Skipped {}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RoutingRules {
    routing_rule: Vec<RoutingRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct RoutingRule {
    rule_number: u32,
    condition: Condition,
    redirect: Option<Redirect>,
    lua_config: Option<Skipped>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Condition {
    key_prefix_equals: Option<String>,
    key_suffix_equals: Option<String>,
    http_error_code_returned_equals: Option<u16>,
    include_header: Vec<IncludeHeader>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IncludeHeader {
    key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Redirect {
    redirect_type: Option<String>,
    pass_query_string: Option<bool>,
    #[serde(rename = "MirrorURL")]
    mirror_url: Option<String>,
    #[serde(rename = "MirrorURLSlave")]
    mirror_url_slave: Option<String>,
    #[serde(rename = "MirrorURLProbe")]
    mirror_url_probe: Option<String>,
    mirror_multi_alternates: Option<MultiAlternates>,
    mirror_pass_query_string: Option<bool>,
    mirror_follow_redirect: Option<bool>,
    mirror_check_md5: Option<bool>,
    mirror_headers: Option<MirrorHeaders>,
    mirror_proxy_pass: Option<bool>,
    mirror_switch_all_errors: Option<bool>,
    mirror_auth: Option<MirrorAuth>,
    replace_key_with: Option<String>,
    replace_key_prefix_with: Option<String>,
    enable_replace_prefix: Option<bool>,
    #[serde(rename = "MirrorSNI")]
    mirror_sni: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MultiAlternates {
    mirror_multi_alternate: Vec<MultiAlternate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MultiAlternate {
    mirror_multi_alternate_number: i64,
    #[serde(rename = "MirrorMultiAlternateURL")]
    mirror_multi_alternate_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MirrorHeaders {
    pass_all: Option<bool>,
    pass: Vec<String>,
    remove: Vec<String>,
    set: Vec<SetHeader>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SetHeader {
    key: String,
    value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct MirrorAuth {
    auth_type: Option<String>,
    region: Option<String>,
    access_key_id: Option<String>,
    access_key_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Style {
    name: String,
    content: String,
    category: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StyleList {
    style: Vec<Style>,
}

// ---- The TOML written. ----

#[derive(Debug, Default, Serialize)]
struct Out {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    styles: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<OutMirror>,
}

#[derive(Debug, Default, Serialize)]
struct OutMirror {
    rules: Vec<OutRule>,
}

fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize)]
struct OutRule {
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

/// The children of `Condition` and `Redirect` this import understands (mapped,
/// or reported when set). Any other child element is reported by name.
const CONDITION_KNOWN: &[&str] = &[
    "KeyPrefixEquals",
    "KeySuffixEquals",
    "HttpErrorCodeReturnedEquals",
    "IncludeHeader",
];
const REDIRECT_MAPPED: &[&str] = &[
    "RedirectType",
    "PassQueryString",
    "MirrorURL",
    "MirrorURLSlave",
    "MirrorMultiAlternates",
    "MirrorPassQueryString",
    "MirrorFollowRedirect",
    "MirrorCheckMd5",
    "MirrorHeaders",
    "MirrorProxyPass",
    "MirrorSwitchAllErrors",
    "MirrorAuth",
    "ReplaceKeyWith",
    "ReplaceKeyPrefixWith",
    "EnableReplacePrefix",
    "MirrorSNI",
    "MirrorURLProbe",
    // External/AliCDN only; a Mirror rule ignores them, as OSS does.
    "Protocol",
    "HostName",
    "HttpRedirectCode",
];

/// Options pixmirror has no equivalent for, and why, reported when present
/// with a value other than the OSS default (`false`, empty).
const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "MirrorPassOriginalSlashes",
        "pixmirror refuses keys with empty path segments",
    ),
    (
        "MirrorSaveOssMeta",
        "origin metadata is not copied onto stored objects",
    ),
    (
        "MirrorUserLastModified",
        "a stored object's Last-Modified is its write time",
    ),
    (
        "MirrorAllowHeadObject",
        "in pixmirror a HEAD of a missing key always consults the mirror",
    ),
    (
        "MirrorAllowGetImageInfo",
        "in pixmirror every processed request consults the mirror",
    ),
    (
        "MirrorAllowVideoSnapshot",
        "pixmirror does not process video",
    ),
    (
        "MirrorAsyncStatus",
        "pixmirror fetches while the client waits; no asynchronous pull",
    ),
    (
        "TransparentMirrorResponseCodes",
        "an origin's error answer is mapped to pixmirror's own status and code",
    ),
    (
        "MirrorReturnHeaders",
        "pixmirror sets no per-rule response headers",
    ),
    ("MirrorTaggings", "stored objects are not tagged"),
    (
        "MirrorUsingRole",
        "use origin_s3 with access keys, or the instance's AWS role",
    ),
    (
        "MirrorRole",
        "use origin_s3 with access keys, or the instance's AWS role",
    ),
    ("MirrorIsExpressTunnel", "Aliyun network feature"),
    ("MirrorDstRegion", "Aliyun network feature"),
    ("MirrorDstVpcId", "Aliyun network feature"),
    ("MirrorDstSlaveVpcId", "Aliyun network feature"),
    ("MirrorTunnelId", "Aliyun network feature"),
];

/// Headers OSS never passes to an origin, even with `PassAll`.
const NEVER_PASSED: &[&str] = &[
    "Content-Length",
    "Authorization",
    "Authorization2",
    "Range",
    "Date",
];

/// Import the website XML and/or the style XML.
pub fn import(website: Option<&str>, styles: Option<&str>) -> Result<Import, String> {
    let mut out = Out::default();
    let mut imp = Import::default();
    if let Some(xml) = website {
        let cfg: WebsiteConfiguration =
            quick_xml::de::from_str(xml).map_err(|e| format!("website XML: {e}"))?;
        let unknown = unknown_children(xml)?;
        if cfg.index_document.is_some() || cfg.error_document.is_some() {
            imp.report.push(
                "IndexDocument/ErrorDocument: static website pages are not served by pixmirror (not imported)"
                    .into(),
            );
        }
        let mut rules = cfg.routing_rules.unwrap_or_default().routing_rule;
        rules.sort_by_key(|r| r.rule_number);
        let mut out_rules = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            let extra = unknown.get(i).cloned().unwrap_or_default();
            match rule(r, &extra, &mut imp.report) {
                Some(o) => out_rules.push(o),
                None => imp
                    .report
                    .push(format!("rule {}: not imported", r.rule_number)),
            }
        }
        imp.rules = out_rules.len();
        if !out_rules.is_empty() {
            out.mirror = Some(OutMirror { rules: out_rules });
        }
    }
    if let Some(xml) = styles {
        let list = style_list(xml)?;
        for s in list {
            match style(&s) {
                Ok(()) => {
                    out.styles.insert(s.name.clone(), s.content.clone());
                }
                Err(why) => imp
                    .report
                    .push(format!("style {}: {why} (not imported)", s.name)),
            }
        }
        imp.styles = out.styles.len();
    }
    imp.toml = toml::to_string(&out).map_err(|e| format!("writing TOML: {e}"))?;
    Ok(imp)
}

/// A `<StyleList>` (ListStyle) or a single `<Style>` (GetStyle).
fn style_list(xml: &str) -> Result<Vec<Style>, String> {
    if root_name(xml).as_deref() == Some("Style") {
        let s: Style = quick_xml::de::from_str(xml).map_err(|e| format!("style XML: {e}"))?;
        return Ok(vec![s]);
    }
    let l: StyleList = quick_xml::de::from_str(xml).map_err(|e| format!("style XML: {e}"))?;
    Ok(l.style)
}

/// Can pixmirror serve this style as it is?
fn style(s: &Style) -> Result<(), String> {
    let name_ok = (1..=63).contains(&s.name.len())
        && s.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !name_ok || s.name == "separators" {
        return Err("the name is not a valid style name".into());
    }
    if let Some(c) = s.category.as_deref().filter(|c| *c != "image") {
        return Err(format!("category {c}: only image styles apply"));
    }
    crate::process::lang::parse_process(&s.content, &BTreeMap::new())
        .map(|_| ())
        .map_err(|e| format!("pixmirror refuses `{}`: {e}", s.content))
}

/// One routing rule as a mirror rule, or `None` (with the reasons reported).
fn rule(r: &RoutingRule, unknown: &[String], report: &mut Vec<String>) -> Option<OutRule> {
    let n = r.rule_number;
    let mut say = |what: String| report.push(format!("rule {n}: {what}"));
    for line in unknown {
        say(line.clone());
    }
    // Every reason a rule cannot be imported is reported, not only the first.
    let mut importable = true;
    let Some(redirect) = r.redirect.as_ref() else {
        say("no Redirect".into());
        return None;
    };
    let kind = redirect.redirect_type.as_deref().unwrap_or("");
    if kind != "Mirror" {
        say(format!(
            "RedirectType {kind}: pixmirror mirrors, it does not answer with redirects; put this redirect in the CDN or a web server"
        ));
        importable = false;
    }
    if let Some(code) = r
        .condition
        .http_error_code_returned_equals
        .filter(|c| *c != 404)
    {
        say(format!(
            "HttpErrorCodeReturnedEquals {code}: a mirror rule applies to missing keys (404) only"
        ));
        importable = false;
    }
    if !r.condition.include_header.is_empty() {
        let names: Vec<&str> = r
            .condition
            .include_header
            .iter()
            .map(|h| h.key.as_str())
            .collect();
        say(format!(
            "IncludeHeader ({}): pixmirror's rules match on the key only; importing the rule without it would mirror more keys",
            names.join(", ")
        ));
        importable = false;
    }
    if !importable {
        return None;
    }
    if r.lua_config.is_some() {
        say("LuaConfig: scripts are not supported (rule imported without it)".into());
    }
    let mut out = OutRule {
        prefix: r
            .condition
            .key_prefix_equals
            .clone()
            .filter(|p| !p.is_empty()),
        suffix: r
            .condition
            .key_suffix_equals
            .clone()
            .filter(|s| !s.is_empty()),
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
    };
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

/// The name of the document's root element.
fn root_name(xml: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e)) | Ok(quick_xml::events::Event::Empty(e)) => {
                return Some(String::from_utf8_lossy(e.name().as_ref()).into_owned())
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// Per routing rule (in RuleNumber order), the children of its `Condition`
/// and `Redirect` that this importer does not map: the unsupported ones set
/// to something other than the default, and the unknown ones.
fn unknown_children(xml: &str) -> Result<Vec<Vec<String>>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    reader.config_mut().trim_text(true);
    // The open elements, each with whether it has had a child element.
    let mut path: Vec<String> = Vec::new();
    let mut nested: Vec<bool> = Vec::new();
    let mut rules: Vec<(u32, Vec<String>)> = Vec::new();
    let mut text = String::new();
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| format!("website XML: {e}"))?;
        match ev {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "RoutingRule" {
                    rules.push((0, Vec::new()));
                }
                if let Some(parent) = nested.last_mut() {
                    *parent = true;
                }
                path.push(name);
                nested.push(false);
                text.clear();
            }
            Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                note_child(&path, &name, false, &mut rules);
            }
            Event::Text(t) => {
                text = t.unescape().map(|c| c.into_owned()).unwrap_or_default();
            }
            Event::End(_) => {
                let (Some(name), Some(had_children)) = (path.pop(), nested.pop()) else {
                    continue;
                };
                let value = text.trim();
                if name == "RuleNumber" && path.last().map(String::as_str) == Some("RoutingRule") {
                    if let Some(r) = rules.last_mut() {
                        r.0 = value.parse().unwrap_or(0);
                    }
                }
                let set = had_children || !(value.is_empty() || value == "false" || value == "0");
                note_child(&path, &name, set, &mut rules);
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    rules.sort_by_key(|r| r.0);
    Ok(rules.into_iter().map(|r| r.1).collect())
}

/// Report `name` if it is a child of a rule's Condition or Redirect that the
/// import does not map: an unsupported option that is `set` (not false, 0 or
/// empty), or an element this importer does not know.
fn note_child(path: &[String], name: &str, set: bool, rules: &mut [(u32, Vec<String>)]) {
    let parent = path.last().map(String::as_str);
    let in_rule = path.len() >= 2 && path[path.len() - 2] == "RoutingRule";
    let Some(r) = rules.last_mut().filter(|_| in_rule) else {
        return;
    };
    let unknown = || format!("{name}: not known to this importer (ignored)");
    match parent {
        Some("Condition") if !CONDITION_KNOWN.contains(&name) => r.1.push(unknown()),
        Some("Redirect") if REDIRECT_MAPPED.contains(&name) => {}
        Some("Redirect") => match UNSUPPORTED.iter().find(|(n, _)| *n == name) {
            Some((n, why)) if set => r.1.push(format!("{n}: {why} (ignored)")),
            Some(_) => {}
            None => r.1.push(unknown()),
        },
        _ => {}
    }
}
