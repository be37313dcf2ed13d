//! The process grammar (`x-oss-process` values and path-form actions) on
//! arbitrary text. Properties: no panic; a plan that parses has a canonical
//! form that parses back to the same canonical form (derivative keys depend on
//! it); snapping keeps it parseable.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pixmirror::process::lang::{parse_path_actions, parse_process};

fn styles() -> &'static BTreeMap<String, String> {
    static STYLES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    STYLES.get_or_init(|| {
        BTreeMap::from([
            (
                "thumb".to_string(),
                "image/resize,w_200/format,webp".to_string(),
            ),
            ("loop".to_string(), "style/loop".to_string()),
            (
                "crop".to_string(),
                "image/crop,w_100,h_100,g_center/quality,q_70".to_string(),
            ),
        ])
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(mut plan) = parse_process(text, styles()) {
        // An identity plan serves the original: it has no process string.
        let canonical = plan.canonical();
        if !plan.is_identity() {
            let again = parse_process(&canonical, styles()).unwrap_or_else(|e| {
                panic!("canonical {canonical:?} of {text:?} does not parse: {e}")
            });
            assert_eq!(
                again.canonical(),
                canonical,
                "canonical form of {text:?} is not stable"
            );
        }
        plan.snap(&[100, 300, 1000], &[200], &[50, 80]);
        let snapped = plan.canonical();
        if !plan.is_identity() {
            assert!(
                parse_process(&snapped, styles()).is_ok(),
                "snapped {snapped:?} does not parse"
            );
        }
    }
    // COS / Qiniu plans share the canonical form: it must parse as OSS.
    if let Ok(plan) = pixmirror::process::lang::cos::parse(text) {
        if !plan.is_identity() {
            let canonical = plan.canonical();
            assert!(
                parse_process(&canonical, styles()).is_ok(),
                "canonical {canonical:?} of COS {text:?} does not parse"
            );
        }
    }
    if let Ok(plan) = parse_path_actions(text.split('!')) {
        let _ = plan.canonical();
    }
});
