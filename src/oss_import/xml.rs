//! The XML as OSS writes it (element names are OSS's), read into typed
//! structs with quick-xml, and the children of each rule this import does not
//! map, found by walking the document.

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WebsiteConfiguration {
    pub index_document: Option<Skipped>,
    pub error_document: Option<Skipped>,
    pub routing_rules: Option<RoutingRules>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Skipped {}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RoutingRules {
    pub routing_rule: Vec<RoutingRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RoutingRule {
    pub rule_number: u32,
    pub condition: Condition,
    pub redirect: Option<Redirect>,
    pub lua_config: Option<Skipped>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Condition {
    pub key_prefix_equals: Option<String>,
    pub key_suffix_equals: Option<String>,
    pub http_error_code_returned_equals: Option<u16>,
    pub include_header: Vec<IncludeHeader>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IncludeHeader {
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Redirect {
    pub redirect_type: Option<String>,
    pub pass_query_string: Option<bool>,
    #[serde(rename = "MirrorURL")]
    pub mirror_url: Option<String>,
    #[serde(rename = "MirrorURLSlave")]
    pub mirror_url_slave: Option<String>,
    #[serde(rename = "MirrorURLProbe")]
    pub mirror_url_probe: Option<String>,
    pub mirror_multi_alternates: Option<MultiAlternates>,
    pub mirror_pass_query_string: Option<bool>,
    pub mirror_follow_redirect: Option<bool>,
    pub mirror_check_md5: Option<bool>,
    pub mirror_headers: Option<MirrorHeaders>,
    pub mirror_proxy_pass: Option<bool>,
    pub mirror_switch_all_errors: Option<bool>,
    pub mirror_auth: Option<MirrorAuth>,
    pub replace_key_with: Option<String>,
    pub replace_key_prefix_with: Option<String>,
    pub enable_replace_prefix: Option<bool>,
    #[serde(rename = "MirrorSNI")]
    pub mirror_sni: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiAlternates {
    pub mirror_multi_alternate: Vec<MultiAlternate>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MultiAlternate {
    pub mirror_multi_alternate_number: i64,
    #[serde(rename = "MirrorMultiAlternateURL")]
    pub mirror_multi_alternate_url: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MirrorHeaders {
    pub pass_all: Option<bool>,
    pub pass: Vec<String>,
    pub remove: Vec<String>,
    pub set: Vec<SetHeader>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SetHeader {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MirrorAuth {
    pub auth_type: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub access_key_secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Style {
    pub name: String,
    pub content: String,
    pub category: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct StyleList {
    pub style: Vec<Style>,
}

// ---- The TOML written. ----

/// The children of `Condition` and `Redirect` this import understands (mapped,
/// or reported when set). Any other child element is reported by name.
pub const CONDITION_KNOWN: &[&str] = &[
    "KeyPrefixEquals",
    "KeySuffixEquals",
    "HttpErrorCodeReturnedEquals",
    "IncludeHeader",
];
pub const REDIRECT_MAPPED: &[&str] = &[
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
pub const UNSUPPORTED: &[(&str, &str)] = &[
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

/// The name of the document's root element.
pub fn root_name(xml: &str) -> Option<String> {
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
pub fn unknown_children(xml: &str) -> Result<Vec<Vec<String>>, String> {
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
