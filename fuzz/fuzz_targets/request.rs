//! The request parser (`http::request::parse`): path, query, percent-encoding,
//! the path form, signatures and `Accept`, on arbitrary request lines and
//! headers. Properties: no panic; a parsed key is non-empty, and a plan that
//! came back canonicalises to a parseable process string.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pixmirror::config::{Config, OssKey};
use pixmirror::process::lang::parse_process;

/// Index 0: defaults with styles. Index 1: signing required, with both kinds of
/// keys, snapping on.
fn configs() -> &'static [Config; 2] {
    static CONFIGS: OnceLock<[Config; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let mut open = Config::default();
        open.styles
            .insert("thumb".into(), "image/resize,w_200/format,auto".into());
        let mut signed = open.clone();
        signed.signing.required = true;
        signed.signing.keys = vec!["00112233445566778899aabbccddeeff".into()];
        signed.signing.oss_keys = vec![OssKey {
            access_key_id: "LTAIfuzz".into(),
            access_key_secret: "secret".into(),
            bucket: "bucket".into(),
        }];
        signed.process.snap_widths = vec![100, 300, 1000];
        signed.process.allowed_qualities = vec![50, 80];
        [open, signed]
    })
}

fuzz_target!(|data: &[u8]| {
    // Layout: selector byte, then the request target, then (after a newline)
    // the Accept header's value.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (target, accept) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let Ok(uri) = http::Uri::try_from(target) else {
        return;
    };
    let method = if selector & 2 == 0 {
        http::Method::GET
    } else {
        http::Method::HEAD
    };
    let mut builder = http::Request::builder().method(method).uri(uri);
    if let Ok(value) = http::HeaderValue::from_bytes(accept) {
        builder = builder.header(http::header::ACCEPT, value);
    }
    let Ok(req) = builder.body(()) else {
        return;
    };
    let cfg = &configs()[(selector & 1) as usize];
    if let Ok(parsed) =
        pixmirror::http::request::parse(&req, cfg, &pixmirror::http::request::Conditions::of(&req))
    {
        assert!(!parsed.key.is_empty(), "empty key from {target:?}");
        // The parser already turned identity plans into None.
        if let Some(plan) = parsed.plan {
            let canonical = plan.canonical();
            assert!(
                parse_process(&canonical, &cfg.styles).is_ok(),
                "canonical {canonical:?} of {target:?} does not parse"
            );
        }
    }
});
