//! `format,auto` → a concrete format from `Accept` (SPEC "Automatic format"). Pure.

use super::plan::{Format, FormatSpec, Plan};

/// Replace `format,auto` by what the client accepts. Returns whether the
/// response varies by `Accept` (and so needs `Vary: Accept`).
///
/// AVIF when `Accept` names `image/avif` and AVIF is enabled in
/// `process.auto_formats`, else WebP likewise, else the source's format
/// (the format action is dropped, so the key equals the no-format request).
pub fn resolve(plan: &mut Plan, accept: &str, auto_formats: &[String]) -> bool {
    if plan.format != Some(FormatSpec::Auto) {
        return false;
    }
    let accepts = |mime: &str| {
        accept.split(',').any(|part| {
            let mut it = part.split(';');
            let m = it.next().unwrap_or("").trim();
            // `image/webp;q=0` means "not acceptable".
            let refused = it.any(|p| {
                let p = p.trim();
                p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
            });
            m.eq_ignore_ascii_case(mime) && !refused
        })
    };
    let enabled = |f: &str| auto_formats.iter().any(|a| a == f);
    plan.format = if enabled("avif") && accepts("image/avif") {
        Some(FormatSpec::Concrete(Format::Avif))
    } else if enabled("webp") && accepts("image/webp") {
        Some(FormatSpec::Concrete(Format::Webp))
    } else {
        None
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::grammar::parse_process;
    use std::collections::BTreeMap;

    fn pick(accept: &str, enabled: &[&str]) -> String {
        let mut p =
            parse_process("image/resize,w_10/format,auto", &BTreeMap::new()).expect("parse");
        let en: Vec<String> = enabled.iter().map(|s| s.to_string()).collect();
        assert!(resolve(&mut p, accept, &en));
        p.canonical()
    }

    #[test]
    fn picks_by_accept() {
        let all = ["avif", "webp"];
        assert_eq!(
            pick("image/avif,image/webp,*/*", &all),
            "image/resize,w_10/format,avif"
        );
        assert_eq!(
            pick("image/webp,*/*", &all),
            "image/resize,w_10/format,webp"
        );
        assert_eq!(
            pick("image/avif,image/webp", &["webp"]),
            "image/resize,w_10/format,webp"
        );
        assert_eq!(
            pick("image/avif;q=0,image/webp", &all),
            "image/resize,w_10/format,webp"
        );
        assert_eq!(pick("*/*", &all), "image/resize,w_10");
        assert_eq!(pick("", &all), "image/resize,w_10");
    }
}
