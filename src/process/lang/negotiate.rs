//! `format,auto` → a concrete format from `Accept` (SPEC "Automatic format"). Pure.

use crate::process::plan::{Format, FormatSpec, Plan};

/// Replace `format,auto` by what the client accepts. Returns whether the
/// response varies by `Accept` (and so needs `Vary: Accept`).
///
/// The first format of `process.auto_formats` (its order is the preference:
/// avif, webp, jxl) whose media type `Accept` names, else the source's format
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
    plan.format = auto_formats
        .iter()
        .filter_map(|f| Format::parse(f))
        .find(|f| accepts(f.content_type()))
        .map(FormatSpec::Concrete);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::lang::parse_process;
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
        // JPEG XL only when listed; the list's order is the preference.
        assert_eq!(
            pick("image/jxl,image/avif,image/webp", &all),
            "image/resize,w_10/format,avif"
        );
        assert_eq!(
            pick("image/jxl,image/avif,image/webp", &["jxl", "avif", "webp"]),
            "image/resize,w_10/format,jxl"
        );
        assert_eq!(
            pick("image/jxl,image/avif", &["avif", "jxl"]),
            "image/resize,w_10/format,avif"
        );
        assert_eq!(
            pick("image/jxl,image/webp", &["avif", "jxl", "webp"]),
            "image/resize,w_10/format,jxl"
        );
        assert_eq!(
            pick("image/avif,image/webp", &["webp", "avif"]),
            "image/resize,w_10/format,webp"
        );
        assert_eq!(pick("", &all), "image/resize,w_10");
    }
}
