//! The unit tests of the OSS grammar (through `lang::parse_process`).

#[test]
fn radii_follow_oss_ranges() {
    let none = BTreeMap::new();
    for ok in [
        "image/circle,r_1",
        "image/circle,r_4096",
        "image/rounded-corners,r_4096",
    ] {
        assert!(parse_process(ok, &none).is_ok(), "{ok}");
    }
    for bad in [
        "image/circle,r_0",
        "image/circle,r_4097",
        "image/rounded-corners,r_5000",
    ] {
        assert_eq!(
            parse_process(bad, &none).expect_err(bad).code(),
            "InvalidArgument",
            "{bad}"
        );
    }
}

use super::*;
use std::collections::BTreeMap;

fn canon(s: &str) -> String {
    match parse_process(s, &BTreeMap::new()) {
        Ok(p) => p.canonical(),
        Err(e) => panic!("{s}: {e}"),
    }
}

fn err(s: &str) -> String {
    match parse_process(s, &BTreeMap::new()) {
        Ok(p) => panic!("{s} parsed as {}", p.canonical()),
        Err(e) => {
            assert_eq!(e.code(), "InvalidArgument");
            e.to_string()
        }
    }
}

#[test]
fn equivalent_spellings_are_one_string() {
    let groups: &[&[&str]] = &[
        &[
            "image/resize,w_300/format,webp",
            "image/resize,m_lfit,w_300,limit_1/format,webp",
            "image/resize,w_300,m_lfit/format,f_webp",
            "image/format,jpg/resize,w_300/format,webp",
            "image/resize,w_300,p_50/format,webp",
            "image/auto-orient,1/resize,w_300/format,webp",
            "image/resize,w_300,l_100/format,webp/interlace,0",
            "image/resize,w_300/rotate,360/format,webp",
        ],
        &[
            "image/resize,m_fill,w_200,h_200/format,jpg",
            "image/resize,h_200,w_200,m_fill/format,jpeg",
            "image/resize,m_fill,h_200,w_200,color_FFFFFF/format,jpg",
        ],
        &[
            "image/resize,m_pad,w_100,h_50,color_ff0000",
            "image/resize,h_50,color_FF0000,w_100,m_pad",
        ],
        &["image/crop,w_10,h_20,g_nw,x_0", "image/crop,h_20,w_10"],
        &["image/quality,q_80,Q_70", "image/quality,Q_70"],
        &[
            "image/resize,m_fill,w_200,h_200,g_smart",
            "image/resize,g_smart,h_200,w_200,m_fill",
        ],
    ];
    for g in groups {
        let first = canon(g[0]);
        for s in &g[1..] {
            assert_eq!(canon(s), first, "{s}");
        }
    }
    assert_eq!(canon(groups[0][0]), "image/resize,w_300/format,webp");
    assert_eq!(
        canon(groups[1][0]),
        "image/resize,h_200,m_fill,w_200/format,jpg"
    );
    assert_eq!(
        canon(groups[2][0]),
        "image/resize,color_FF0000,h_50,m_pad,w_100"
    );
    assert_eq!(
        canon("image/auto-orient,0/rotate,90"),
        "image/auto-orient,0/rotate,90"
    );
}

#[test]
fn different_requests_differ() {
    assert_ne!(canon("image/resize,w_300"), canon("image/resize,w_301"));
    assert_ne!(
        canon("image/resize,w_300,limit_0"),
        canon("image/resize,w_300")
    );
    assert_ne!(
        canon("image/rotate,90/crop,w_10"),
        canon("image/crop,w_10/rotate,90")
    );
}

#[test]
fn invalid_values_name_action_and_parameter() {
    let cases: &[(&str, &str)] = &[
        ("image/resize,w_0", "resize: parameter w"),
        ("image/resize,w_16385", "resize: parameter w"),
        ("image/resize,h_abc", "resize: parameter h"),
        ("image/resize,l_-1", "resize: parameter l"),
        ("image/resize,s_99999999999", "resize: parameter s"),
        ("image/resize,p_1001", "resize: parameter p"),
        ("image/resize,w_10,limit_2", "resize: parameter limit"),
        ("image/resize,m_zoom,w_10", "resize: parameter m"),
        (
            "image/resize,m_pad,w_10,color_red",
            "resize: parameter color",
        ),
        ("image/resize,m_lfit", "resize: one of w, h, l, s, p"),
        ("image/resize,w_1,z_3", "resize: unknown parameter `z`"),
        (
            "image/resize,w_1,w_2",
            "resize: parameter `w` is given twice",
        ),
        ("image/crop,w_-1", "crop: parameter w"),
        ("image/crop,g_middle", "crop: parameter g"),
        ("image/crop,x_a", "crop: parameter x"),
        ("image/rotate,361", "rotate: value"),
        ("image/rotate,-1", "rotate: value"),
        ("image/rotate", "rotate: a value"),
        ("image/auto-orient,2", "auto-orient: value"),
        ("image/format,jxl2", "format: `jxl2`"),
        ("image/format", "format: exactly one"),
        ("image/quality,q_0", "quality: parameter q"),
        ("image/quality,Q_101", "quality: parameter Q"),
        ("image/quality", "quality: parameter q or Q"),
        ("image/interlace,2", "interlace: value"),
        ("image/blur,r_51,s_2", "blur: parameter r"),
        ("image/blur,r_5", "blur: parameter s is required"),
        ("image/bright,101", "bright: value"),
        ("image/contrast,-101", "contrast: value"),
        ("image/sharpen,49", "sharpen: value"),
        ("image/circle,r_0", "circle: parameter r"),
        ("image/rounded-corners", "rounded-corners: parameter r"),
        ("image/indexcrop,x_10,y_10", "indexcrop: exactly one"),
        ("image/info,1", "info: unexpected value"),
        ("image/resize,w_10/info", "cannot be combined"),
        ("image/frobnicate,1", "unknown action `frobnicate`"),
        ("image/", "no actions"),
        ("video/snapshot,t_1", "parameter f is required"),
        ("image/resize,w_200,h_200,g_smart", "g_smart needs m_fill"),
        (
            "image/resize,m_fill,w_200,h_200,g_face",
            "parameter g must be smart",
        ),
        ("video/resize,w_1", "unknown video action"),
        ("style/nope", "style `nope` is not defined"),
    ];
    for (s, want) in cases {
        let e = err(s);
        assert!(e.contains(want), "{s}: `{e}` lacks `{want}`");
    }
}

#[test]
fn styles_expand() {
    let mut styles = BTreeMap::new();
    styles.insert(
        "thumb".to_string(),
        "image/resize,m_fill,w_200,h_200/format,webp".to_string(),
    );
    let p = parse_process("style/thumb", &styles).expect("style");
    assert_eq!(p.canonical(), "image/resize,h_200,m_fill,w_200/format,webp");
}

#[test]
fn snapping_bounds_variants() {
    let snapped = |q: &str| {
        let mut p = parse_process(q, &BTreeMap::new()).expect("parse");
        p.snap(&[160, 320, 640], &[100], &[60, 75, 85]);
        p.canonical()
    };
    assert_eq!(snapped("image/resize,w_301"), snapped("image/resize,w_320"));
    assert_eq!(snapped("image/resize,w_161"), "image/resize,w_320");
    assert_eq!(
        snapped("image/resize,w_100,h_50"),
        "image/resize,h_100,w_160"
    );
    assert_eq!(
        snapped("image/resize,w_5000"),
        "image/resize,w_640",
        "the largest past them all"
    );
    assert_eq!(snapped("image/quality,Q_70"), "image/quality,Q_75");
    assert_eq!(snapped("image/quality,q_95"), "image/quality,q_85");
    assert_eq!(
        snapped("image/quality,Q_80"),
        "image/quality,Q_85",
        "a tie goes up"
    );
    // Off (empty lists): unchanged.
    let mut p = parse_process("image/resize,w_301/quality,Q_70", &BTreeMap::new()).expect("parse");
    p.snap(&[], &[], &[]);
    assert_eq!(p.canonical(), "image/resize,w_301/quality,Q_70");
}

#[test]
fn derivative_keys() {
    let p = parse_process("image/resize,w_300/format,webp", &BTreeMap::new()).expect("parse");
    assert_eq!(
        p.derivative_key("photos/cat.jpg", "__op__"),
        "photos/cat.jpg__op__resize,w_300__op__format,webp"
    );
    // Past 1024 bytes: the hashed form, which fits when the key leaves room...
    let many = parse_process(
            "image/resize,w_300/crop,w_100,h_100,x_5,y_5/rotate,90/blur,r_3,s_2/bright,10/contrast,-10/format,webp",
            &BTreeMap::new(),
        )
        .expect("parse");
    let long_key = "k".repeat(950);
    let d = many.derivative_key(&long_key, "__op__");
    assert!(d.starts_with(&format!("{long_key}__op__h_")));
    assert_eq!(d.len(), 950 + 6 + 2 + 64);
    assert!(d.len() <= crate::process::plan::MAX_KEY_BYTES);
    // ...and is still too long when it does not (such derivatives are not stored).
    let d = p.derivative_key(&"k".repeat(1000), "__op__");
    assert_eq!(d.len(), 1072);
    // The path form of a canonical request names the stored object itself.
    let actions = "resize,w_300__op__format,webp";
    let q = parse_path_actions(actions.split("__op__")).expect("path form");
    assert_eq!(q, p);
}

/// Random process strings built from the grammar's own tokens: parsing never
/// panics, and a parsed plan's canonical string parses back to the same plan
/// (plans that change nothing are served as the original and have no key).
#[test]
fn random_strings_never_panic_and_canonical_is_a_fixed_point() {
    const ACTIONS: &[&str] = &[
        "resize",
        "crop",
        "rotate",
        "auto-orient",
        "format",
        "quality",
        "interlace",
        "info",
        "indexcrop",
        "circle",
        "rounded-corners",
        "blur",
        "bright",
        "contrast",
        "sharpen",
        "average-hue",
        "nope",
        "",
    ];
    const PARAMS: &[&str] = &[
        "w_300",
        "h_200",
        "l_100",
        "s_50",
        "p_50",
        "m_fill",
        "m_pad",
        "m_fixed",
        "m_mfit",
        "m_lfit",
        "limit_0",
        "limit_1",
        "color_FF0000",
        "g_se",
        "g_center",
        "x_10",
        "y_5",
        "r_20",
        "s_3",
        "i_1",
        "q_80",
        "Q_70",
        "90",
        "0",
        "1",
        "-5",
        "webp",
        "jpg",
        "auto",
        "f_png",
        "w_0",
        "w_99999",
        "m_zzz",
        "_",
        "w_",
        "",
        "x_-1",
        "Q_101",
    ];
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let mut parsed = 0;
    for _ in 0..50_000 {
        let mut s = String::from("image");
        for _ in 0..(1 + next(4)) {
            s.push('/');
            s.push_str(ACTIONS[next(ACTIONS.len())]);
            for _ in 0..next(4) {
                s.push(',');
                s.push_str(PARAMS[next(PARAMS.len())]);
            }
        }
        if let Ok(plan) = parse_process(&s, &BTreeMap::new()) {
            parsed += 1;
            if plan.is_identity() {
                // Served as the original: never canonicalised into a key.
                continue;
            }
            let again = parse_process(&plan.canonical(), &BTreeMap::new())
                .unwrap_or_else(|e| panic!("{s} -> {} does not parse: {e}", plan.canonical()));
            assert_eq!(again, plan, "{s} -> {}", plan.canonical());
        }
    }
    assert!(
        parsed > 500,
        "the generator should produce valid strings too ({parsed})"
    );
}
