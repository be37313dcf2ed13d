//! `pixmirror import-oss`: an Aliyun OSS bucket's website configuration XML
//! (its `RoutingRules`, where mirror back-to-origin lives) and its style list
//! XML (`ListStyle` / `GetStyle`) turned into pixmirror TOML
//! (`[[mirror.rules]]`, `[styles]`). Every option either maps or is reported
//! with its rule number and why; nothing is dropped silently.

use std::collections::BTreeMap;

use serde::Serialize;

/// What an import produced: the TOML, and one line per thing not carried over.
#[derive(Debug, Default)]
pub struct Import {
    pub toml: String,
    pub report: Vec<String>,
    pub rules: usize,
    pub styles: usize,
}

mod rules;
mod xml;

use rules::{rule, OutMirror};
use xml::{root_name, unknown_children, Style, StyleList, WebsiteConfiguration};

#[derive(Debug, Default, Serialize)]
struct Out {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    styles: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mirror: Option<OutMirror>,
}

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
    // OSS's categories: image, video (a `video/snapshot` style), document.
    if let Some(c) = s.category.as_deref() {
        if c != "image" && c != "video" {
            return Err(format!("category {c}: only image and video styles apply"));
        }
        if !s.content.starts_with(&format!("{c}/")) {
            return Err(format!("category {c}: the content is not a {c} process"));
        }
    }
    crate::process::lang::parse_process(&s.content, &BTreeMap::new())
        .map(|_| ())
        .map_err(|e| format!("pixmirror refuses `{}`: {e}", s.content))
}
