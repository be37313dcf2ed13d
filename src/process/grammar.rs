//! The Aliyun OSS process grammar (also BOS `f_`/`q_` spellings and the path form)
//! parsed into a canonical [`Plan`]. Every value is range-checked here, before any
//! I/O: a bad one is a 400 `InvalidArgument` that names the action and parameter.

use std::collections::BTreeMap;

use super::plan::*;
use super::watermark;
use crate::error::{Error, Result};

/// Largest width/height/side accepted anywhere (SPEC: [1,16384]).
pub const MAX_SIDE: u32 = 16384;

/// Largest `area` (COS/Qiniu `<Area>@`: [1, 24999999]).
pub const MAX_AREA: u64 = 24_999_999;

/// Parse a query value: `image/<actions>` or `style/<name>`.
pub fn parse_process(value: &str, styles: &BTreeMap<String, String>) -> Result<Plan> {
    if let Some(name) = value.strip_prefix("style/") {
        let style = styles
            .get(name)
            .ok_or_else(|| Error::invalid(format!("style `{name}` is not defined")))?;
        if style.starts_with("style/") {
            return Err(Error::invalid(format!(
                "style `{name}` refers to another style"
            )));
        }
        return parse_process(style, &BTreeMap::new());
    }
    let rest = value.strip_prefix("image/").ok_or_else(|| {
        Error::invalid(format!(
            "process string must start with `image/` or `style/`, got `{}`",
            truncate(value)
        ))
    })?;
    parse_actions(rest.split('/'))
}

/// Parse the actions of the path form (`<key><sep>resize,w_300<sep>format,webp`).
pub fn parse_path_actions<'a>(actions: impl Iterator<Item = &'a str>) -> Result<Plan> {
    parse_actions(actions)
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// One parsed action: its name and its parameters (`k_v` pairs and bare values).
struct Params<'a> {
    action: &'a str,
    kv: BTreeMap<&'a str, &'a str>,
    bare: Vec<&'a str>,
}

impl<'a> Params<'a> {
    fn parse(action: &'a str, parts: impl Iterator<Item = &'a str>) -> Result<Params<'a>> {
        let mut kv = BTreeMap::new();
        let mut bare = Vec::new();
        for p in parts {
            if p.is_empty() {
                continue;
            }
            match p.split_once('_') {
                Some((k, v)) if !k.is_empty() => {
                    if kv.insert(k, v).is_some() {
                        return Err(Error::invalid(format!(
                            "{action}: parameter `{k}` is given twice"
                        )));
                    }
                }
                _ => bare.push(p),
            }
        }
        Ok(Params { action, kv, bare })
    }

    /// Fail on parameters this action does not know.
    fn only(&self, keys: &[&str], bare_ok: bool) -> Result<()> {
        for k in self.kv.keys() {
            if !keys.contains(k) {
                return Err(Error::invalid(format!(
                    "{}: unknown parameter `{k}`",
                    self.action
                )));
            }
        }
        if !bare_ok {
            if let Some(b) = self.bare.first() {
                return Err(Error::invalid(format!(
                    "{}: unexpected value `{}`",
                    self.action,
                    truncate(b)
                )));
            }
        }
        Ok(())
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(v) => parse_int(v, min, max)
                .map(Some)
                .ok_or_else(|| self.range_err(key, v, min, max)),
        }
    }

    fn range_err(&self, key: &str, v: &str, min: i64, max: i64) -> Error {
        Error::invalid(format!(
            "{}: parameter {key} must be an integer in [{min},{max}], got `{}`",
            self.action,
            truncate(v)
        ))
    }

    /// The single bare value (`rotate,90`), required.
    fn bare_int(&self, min: i64, max: i64) -> Result<i64> {
        self.only(&[], true)?;
        match self.bare.as_slice() {
            [v] => parse_int(v, min, max).ok_or_else(|| {
                Error::invalid(format!(
                    "{}: value must be an integer in [{min},{max}], got `{}`",
                    self.action,
                    truncate(v)
                ))
            }),
            [] => Err(Error::invalid(format!(
                "{}: a value in [{min},{max}] is required",
                self.action
            ))),
            _ => Err(Error::invalid(format!("{}: takes one value", self.action))),
        }
    }
}

impl watermark::Params for Params<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.kv.get(key).copied()
    }
    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        Params::int(self, key, min, max)
    }
}

fn parse_int(v: &str, min: i64, max: i64) -> Option<i64> {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = v.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

/// `circle` and `rounded-corners` radii: [1,4096] (OSS).
pub const MAX_RADIUS: u32 = 4096;

fn radius(p: &Params) -> Result<Option<u32>> {
    Ok(p.int("r", 1, MAX_RADIUS as i64)?.map(|v| v as u32))
}

fn side(p: &Params, key: &str) -> Result<Option<u32>> {
    Ok(p.int(key, 1, MAX_SIDE as i64)?.map(|v| v as u32))
}

fn parse_actions<'a>(actions: impl Iterator<Item = &'a str>) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut any = false;
    let mut orient_asked = false;
    for raw in actions {
        if raw.is_empty() {
            continue;
        }
        any = true;
        let mut parts = raw.split(',');
        let name = parts.next().unwrap_or_default();
        let p = Params::parse(name, parts)?;
        match name {
            "resize" => plan.ops.push(Op::Resize(parse_resize(&p)?)),
            "crop" => plan.ops.push(Op::Crop(parse_crop(&p)?)),
            "indexcrop" => {
                p.only(&["x", "y", "i"], false)?;
                let x = side(&p, "x")?;
                let y = side(&p, "y")?;
                let i = p.int("i", 0, MAX_SIDE as i64)?.unwrap_or(0) as u32;
                let (axis, len) = match (x, y) {
                    (Some(x), None) => (Axis::X, x),
                    (None, Some(y)) => (Axis::Y, y),
                    _ => {
                        return Err(Error::invalid(
                            "indexcrop: exactly one of x and y is required",
                        ))
                    }
                };
                plan.ops.push(Op::IndexCrop { axis, len, i });
            }
            "circle" => {
                p.only(&["r"], false)?;
                let r =
                    radius(&p)?.ok_or_else(|| Error::invalid("circle: parameter r is required"))?;
                plan.ops.push(Op::Circle { r });
            }
            "rounded-corners" => {
                p.only(&["r"], false)?;
                let r = radius(&p)?
                    .ok_or_else(|| Error::invalid("rounded-corners: parameter r is required"))?;
                plan.ops.push(Op::RoundedCorners { r });
            }
            "rotate" => {
                let d = p.bare_int(0, 360)? as u32 % 360;
                if d != 0 {
                    plan.ops.push(Op::Rotate(d));
                }
            }
            "auto-orient" => {
                plan.auto_orient = p.bare_int(0, 1)? == 1;
                orient_asked = plan.auto_orient;
            }
            "blur" => {
                p.only(&["r", "s"], false)?;
                let r = p
                    .int("r", 1, 50)?
                    .ok_or_else(|| Error::invalid("blur: parameter r is required"))?;
                let s = p
                    .int("s", 1, 50)?
                    .ok_or_else(|| Error::invalid("blur: parameter s is required"))?;
                plan.ops.push(Op::Blur {
                    r: r as u32,
                    s: s as u32,
                });
            }
            "bright" => {
                let v = p.bare_int(-100, 100)? as i32;
                if v != 0 {
                    plan.ops.push(Op::Bright(v));
                }
            }
            "contrast" => {
                let v = p.bare_int(-100, 100)? as i32;
                if v != 0 {
                    plan.ops.push(Op::Contrast(v));
                }
            }
            "sharpen" => plan.ops.push(Op::Sharpen(p.bare_int(50, 399)? as u32)),
            "format" => plan.format = Some(parse_format(&p)?),
            "quality" => plan.quality = Some(parse_quality(&p)?),
            "interlace" => plan.interlace = p.bare_int(0, 1)? == 1,
            "info" => {
                p.only(&[], false)?;
                plan.report = Some(Report::Info);
            }
            "average-hue" => {
                p.only(&[], false)?;
                plan.report = Some(Report::AverageHue);
            }
            "watermark" => {
                p.only(watermark::KEYS, false)?;
                let preprocess = |s: &str| parse_process(s, &BTreeMap::new());
                plan.ops
                    .push(Op::Watermark(Box::new(watermark::parse(&p, &preprocess)?)));
            }
            other => {
                return Err(Error::invalid(format!(
                    "unknown action `{}`",
                    truncate(other)
                )))
            }
        }
    }
    if !any {
        return Err(Error::invalid("process string has no actions"));
    }
    let image_marks = plan
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Watermark(w) if w.image.is_some()))
        .count();
    if image_marks > watermark::MAX_IMAGE_MARKS {
        return Err(Error::invalid(format!(
            "watermark: at most {} image watermarks in one request",
            watermark::MAX_IMAGE_MARKS
        )));
    }
    // `auto-orient,1` alone still processes (OSS rotates and re-encodes);
    // beside other actions it is the default and leaves no trace in the key.
    plan.orient_only = orient_asked && plan.is_identity();
    if plan.report.is_some()
        && (!plan.ops.is_empty() || plan.format.is_some() || plan.quality.is_some())
    {
        return Err(Error::invalid(
            "info and average-hue describe the source and cannot be combined with other actions",
        ));
    }
    Ok(plan)
}

fn parse_resize(p: &Params) -> Result<Resize> {
    p.only(
        &[
            "m", "w", "h", "l", "s", "limit", "color", "p", "area", "grow", "wp", "hp",
        ],
        false,
    )?;
    let mode = match p.kv.get("m").copied() {
        None | Some("lfit") => ResizeMode::Lfit,
        Some("mfit") => ResizeMode::Mfit,
        Some("fill") => ResizeMode::Fill,
        Some("pad") => ResizeMode::Pad,
        Some("fixed") => ResizeMode::Fixed,
        Some(other) => {
            return Err(Error::invalid(format!(
                "resize: parameter m must be one of lfit, mfit, fill, pad, fixed, got `{}`",
                truncate(other)
            )))
        }
    };
    let mut w = side(p, "w")?;
    let mut h = side(p, "h")?;
    let mut l = side(p, "l")?;
    let mut s = side(p, "s")?;
    let mut pct = p.int("p", 1, 1000)?.map(|v| v as u32);
    let mut wp = p.int("wp", 1, 1000)?.map(|v| v as u32);
    let mut hp = p.int("hp", 1, 1000)?.map(|v| v as u32);
    let limit = p.int("limit", 0, 1)?.unwrap_or(1) == 1;
    // pixmirror extensions for the COS/Qiniu geometries (`<Area>@`, `WxH<`).
    let mut area = p.int("area", 1, MAX_AREA as i64)?.map(|v| v as u64);
    let grow = p.int("grow", 0, 1)?.unwrap_or(0) == 1;
    let color = match p.kv.get("color") {
        None => [255, 255, 255],
        Some(c) => parse_color(c).ok_or_else(|| {
            Error::invalid(format!(
                "resize: parameter color must be RRGGBB hex, got `{}`",
                truncate(c)
            ))
        })?,
    };
    if [w, h, l, s, pct, wp, hp].iter().all(Option::is_none) && area.is_none() {
        return Err(Error::invalid("resize: one of w, h, l, s, p is required"));
    }
    // Precedence: w/h, then l/s, then p, then area. Drop what does not take effect.
    if w.is_some() || h.is_some() {
        l = None;
        s = None;
        pct = None;
    } else if l.is_some() || s.is_some() {
        pct = None;
    }
    if pct.is_some() {
        w = None;
        h = None;
    }
    if w.is_some() || h.is_some() || l.is_some() || s.is_some() || pct.is_some() {
        wp = None;
        hp = None;
    }
    if [w, h, l, s, pct, wp, hp].iter().any(Option::is_some) {
        area = None;
    }
    // The colour only matters when padding.
    let color = if mode == ResizeMode::Pad {
        color
    } else {
        [255, 255, 255]
    };
    Ok(Resize {
        mode,
        w,
        h,
        l,
        s,
        p: pct,
        limit,
        color,
        area,
        grow,
        wp,
        hp,
    })
}

pub(crate) fn parse_color(c: &str) -> Option<[u8; 3]> {
    if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(c, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

fn parse_crop(p: &Params) -> Result<Crop> {
    p.only(&["w", "h", "x", "y", "g"], false)?;
    let w = p.int("w", 0, MAX_SIDE as i64)?.unwrap_or(0) as u32;
    let h = p.int("h", 0, MAX_SIDE as i64)?.unwrap_or(0) as u32;
    let x = p.int("x", 0, 1 << 20)?.unwrap_or(0) as u32;
    let y = p.int("y", 0, 1 << 20)?.unwrap_or(0) as u32;
    let g = match p.kv.get("g") {
        None => Gravity::Nw,
        Some(g) => Gravity::parse(g).ok_or_else(|| {
            Error::invalid(format!(
                "crop: parameter g must be one of nw, north, ne, west, center, east, sw, south, se, got `{}`",
                truncate(g)
            ))
        })?,
    };
    Ok(Crop { w, h, x, y, g })
}

fn parse_format(p: &Params) -> Result<FormatSpec> {
    // OSS: `format,webp`; BOS: `format,f_webp`.
    p.only(&["f"], true)?;
    let v = match (p.bare.as_slice(), p.kv.get("f")) {
        ([v], None) => *v,
        ([], Some(v)) => *v,
        _ => return Err(Error::invalid("format: exactly one format is required")),
    };
    if v == "auto" {
        return Ok(FormatSpec::Auto);
    }
    Format::parse(v).map(FormatSpec::Concrete).ok_or_else(|| {
        Error::invalid(format!(
            "format: `{}` is not one of jpg, jpeg, png, webp, avif, gif, bmp, tiff, heic, auto",
            truncate(v)
        ))
    })
}

fn parse_quality(p: &Params) -> Result<Quality> {
    p.only(&["q", "Q", "l"], false)?;
    let rel = p.int("q", 1, 100)?;
    let abs = p.int("Q", 1, 100)?;
    let floor = p.int("l", 1, 100)?;
    match (rel, abs, floor) {
        (_, Some(q), _) => Ok(Quality::Absolute(q as u8)),
        (Some(q), None, _) => Ok(Quality::Relative(q as u8)),
        (None, None, Some(q)) => Ok(Quality::Floor(q as u8)),
        (None, None, None) => Err(Error::invalid("quality: parameter q or Q is required")),
    }
}

#[cfg(test)]
mod tests {

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
            ("video/snapshot,t_1", "must start with `image/`"),
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
        let mut p =
            parse_process("image/resize,w_301/quality,Q_70", &BTreeMap::new()).expect("parse");
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
}
