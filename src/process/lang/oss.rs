//! The Aliyun OSS process grammar (also BOS `f_`/`q_` spellings and the path
//! form) parsed into a canonical [`Plan`]: one small parser per action, found
//! by name in [`ACTIONS`]. Every value is range-checked here, before any I/O: a
//! bad one is a 400 `InvalidArgument` that names the action and parameter.

use std::collections::BTreeMap;

use super::params::{parse_color, truncate, Params};
use super::watermark;
use crate::error::{Error, Result};
use crate::process::plan::limits::{
    MAX_AREA, MAX_CROP_OFFSET, MAX_IMAGE_MARKS, MAX_RADIUS, MAX_SIDE,
};
use crate::process::plan::{
    Axis, Crop, Dpr, Format, FormatSpec, Gravity, IndexCrop, Op, Plan, Quality, Report, Resize,
    ResizeMode,
};

/// Parse a query value: `image/<actions>`, `video/snapshot,...` or `style/<name>`.
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
    if let Some(rest) = value.strip_prefix("video/") {
        return super::video::parse(rest);
    }
    let rest = value.strip_prefix("image/").ok_or_else(|| {
        Error::invalid(format!(
            "process string must start with `image/`, `video/` or `style/`, got `{}`",
            truncate(value)
        ))
    })?;
    parse_actions(rest.split('/'))
}

/// Parse the actions of the path form (`<key><sep>resize,w_300<sep>format,webp`).
pub fn parse_path_actions<'a>(actions: impl Iterator<Item = &'a str>) -> Result<Plan> {
    parse_actions(actions)
}

/// One action's parser: reads its parameters into the plan.
type Action = fn(&mut Plan, &Params) -> Result<()>;

/// Every OSS action, by name.
const ACTIONS: &[(&str, Action)] = &[
    ("resize", |plan, p| push(plan, Op::Resize(parse_resize(p)?))),
    ("crop", |plan, p| push(plan, Op::Crop(parse_crop(p)?))),
    ("indexcrop", indexcrop),
    ("circle", |plan, p| {
        p.only(&["r"], false)?;
        let r = p.required("r", 1, MAX_RADIUS as i64)? as u32;
        push(plan, Op::Circle { r })
    }),
    ("rounded-corners", |plan, p| {
        p.only(&["r"], false)?;
        let r = p.required("r", 1, MAX_RADIUS as i64)? as u32;
        push(plan, Op::RoundedCorners { r })
    }),
    ("rotate", |plan, p| {
        let d = p.bare_int(0, 360)? as u32 % 360;
        push_unless(plan, d == 0, Op::Rotate(d))
    }),
    ("auto-orient", |plan, p| {
        plan.auto_orient = p.bare_int(0, 1)? == 1;
        // Asked for: kept only if nothing else is (see `finish`).
        plan.orient_only = plan.auto_orient;
        Ok(())
    }),
    ("blur", |plan, p| {
        p.only(&["r", "s"], false)?;
        let r = p.required("r", 1, 50)? as u32;
        let s = p.required("s", 1, 50)? as u32;
        push(plan, Op::Blur { r, s })
    }),
    ("bright", |plan, p| {
        let v = p.bare_int(-100, 100)? as i32;
        push_unless(plan, v == 0, Op::Bright(v))
    }),
    ("contrast", |plan, p| {
        let v = p.bare_int(-100, 100)? as i32;
        push_unless(plan, v == 0, Op::Contrast(v))
    }),
    ("sharpen", |plan, p| {
        push(plan, Op::Sharpen(p.bare_int(50, 399)? as u32))
    }),
    ("format", |plan, p| {
        plan.format = Some(parse_format(p)?);
        Ok(())
    }),
    ("quality", |plan, p| {
        plan.quality = Some(parse_quality(p)?);
        Ok(())
    }),
    ("interlace", |plan, p| {
        plan.interlace = p.bare_int(0, 1)? == 1;
        Ok(())
    }),
    ("info", |plan, p| report(plan, p, Report::Info)),
    ("average-hue", |plan, p| report(plan, p, Report::AverageHue)),
    ("thumbhash", |plan, p| report(plan, p, Report::ThumbHash)),
    ("dpr", |plan, p| {
        plan.dpr = Some(parse_dpr(p)?);
        Ok(())
    }),
    ("blurhash", |plan, p| {
        p.only(&["x", "y"], false)?;
        let x = p.int("x", 1, 9)?.unwrap_or(4) as u8;
        let y = p.int("y", 1, 9)?.unwrap_or(3) as u8;
        plan.report = Some(Report::BlurHash { x, y });
        Ok(())
    }),
    ("watermark", parse_watermark),
];

fn parse_actions<'a>(actions: impl Iterator<Item = &'a str>) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut any = false;
    for raw in actions.filter(|a| !a.is_empty()) {
        any = true;
        let mut parts = raw.split(',');
        let name = parts.next().unwrap_or_default();
        let p = Params::parse(name, parts)?;
        let (_, action) = ACTIONS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| Error::invalid(format!("unknown action `{}`", truncate(name))))?;
        action(&mut plan, &p)?;
    }
    if !any {
        return Err(Error::invalid("process string has no actions"));
    }
    finish(plan)
}

/// The checks on the whole plan, once every action is read.
fn finish(mut plan: Plan) -> Result<Plan> {
    let image_marks = plan
        .ops
        .iter()
        .filter(|o| matches!(o, Op::Watermark(w) if w.image.is_some()))
        .count();
    if image_marks > MAX_IMAGE_MARKS {
        return Err(Error::invalid(format!(
            "watermark: at most {MAX_IMAGE_MARKS} image watermarks in one request"
        )));
    }
    // `auto-orient,1` alone still processes (OSS rotates and re-encodes);
    // beside other actions it is the default and leaves no trace in the key.
    let asked = std::mem::take(&mut plan.orient_only);
    plan.orient_only = asked && plan.is_identity();
    let encoding = plan.format.is_some() || plan.quality.is_some() || plan.interlace;
    match plan.report {
        Some(r) if r.is_placeholder() && encoding => {
            return Err(Error::invalid(
                "thumbhash and blurhash answer JSON: format, quality and interlace do not apply",
            ))
        }
        Some(r)
            if !r.is_placeholder()
                && (!plan.ops.is_empty() || plan.format.is_some() || plan.quality.is_some()) =>
        {
            return Err(Error::invalid(
                "info and average-hue describe the source and cannot be combined with other actions",
            ))
        }
        _ => {}
    }
    Ok(plan)
}

fn push(plan: &mut Plan, op: Op) -> Result<()> {
    plan.ops.push(op);
    Ok(())
}

/// An operation that changes nothing (`rotate,0`, `bright,0`) leaves no trace.
fn push_unless(plan: &mut Plan, no_op: bool, op: Op) -> Result<()> {
    if !no_op {
        plan.ops.push(op);
    }
    Ok(())
}

/// `dpr,auto` or `dpr,<1-3>` with at most two decimals.
fn parse_dpr(p: &Params) -> Result<Dpr> {
    p.only(&[], true)?;
    let bad =
        || Error::invalid("dpr: value must be auto or a number in [1,3] with at most two decimals");
    let [v] = p.bare.as_slice() else {
        return Err(bad());
    };
    if *v == "auto" {
        return Ok(Dpr::Auto);
    }
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 1 || frac.len() > 2 || !digits(whole) || !digits(frac) {
        return Err(bad());
    }
    let hundredths = whole.parse::<u16>().map_err(|_| bad())? * 100
        + format!("{frac:0<2}").parse::<u16>().map_err(|_| bad())?;
    if !(100..=300).contains(&hundredths) {
        return Err(bad());
    }
    Ok(Dpr::Times(hundredths))
}

fn report(plan: &mut Plan, p: &Params, report: Report) -> Result<()> {
    p.only(&[], false)?;
    plan.report = Some(report);
    Ok(())
}

fn indexcrop(plan: &mut Plan, p: &Params) -> Result<()> {
    p.only(&["x", "y", "i"], false)?;
    let x = side(p, "x")?;
    let y = side(p, "y")?;
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
    plan.ops.push(Op::IndexCrop(IndexCrop { axis, len, i }));
    Ok(())
}

/// `watermark`; a watermark image's preprocessing is a process string of its
/// own, parsed here by the same grammar.
fn parse_watermark(plan: &mut Plan, p: &Params) -> Result<()> {
    p.only(watermark::KEYS, false)?;
    let (mut mark, preprocess) = watermark::parse(p)?;
    if let (Some(image), Some(process)) = (mark.image.as_mut(), preprocess) {
        let pre = parse_process(&process, &BTreeMap::new())?;
        watermark::preprocess(image, pre)?;
    }
    plan.ops.push(Op::Watermark(Box::new(mark)));
    Ok(())
}

fn side(p: &Params, key: &str) -> Result<Option<u32>> {
    Ok(p.int(key, 1, MAX_SIDE as i64)?.map(|v| v as u32))
}

/// Every parameter `resize` knows.
const RESIZE_KEYS: &[&str] = &[
    "m", "w", "h", "l", "s", "limit", "color", "p", "area", "grow", "wp", "hp", "g",
];

fn parse_resize(p: &Params) -> Result<Resize> {
    p.only(RESIZE_KEYS, false)?;
    let mode = resize_mode(p)?;
    let color = match p.get("color") {
        None => [255, 255, 255],
        Some(c) => parse_color(c).ok_or_else(|| {
            Error::invalid(format!(
                "resize: parameter color must be RRGGBB hex, got `{}`",
                truncate(c)
            ))
        })?,
    };
    let pct = |k| Ok::<_, Error>(p.int(k, 1, 1000)?.map(|v| v as u32));
    let w_auto = p.get("w") == Some("auto");
    let r = Resize {
        mode,
        w: if w_auto { None } else { side(p, "w")? },
        w_auto,
        h: side(p, "h")?,
        l: side(p, "l")?,
        s: side(p, "s")?,
        p: pct("p")?,
        limit: p.int("limit", 0, 1)?.unwrap_or(1) == 1,
        // The colour only matters when padding.
        color: if mode == ResizeMode::Pad {
            color
        } else {
            [255, 255, 255]
        },
        // pixmirror extensions for the COS/Qiniu geometries (`<Area>@`, `WxH<`).
        area: p.int("area", 1, MAX_AREA as i64)?.map(|v| v as u64),
        grow: p.int("grow", 0, 1)?.unwrap_or(0) == 1,
        wp: pct("wp")?,
        hp: pct("hp")?,
        smart: match p.get("g") {
            None => false,
            Some("smart") if mode == ResizeMode::Fill => true,
            Some("smart") => return Err(Error::invalid("resize: g_smart needs m_fill")),
            Some(g) => {
                return Err(Error::invalid(format!(
                    "resize: parameter g must be smart, got `{}`",
                    truncate(g)
                )))
            }
        },
    };
    let sizes = [r.w, r.h, r.l, r.s, r.p, r.wp, r.hp];
    if sizes.iter().all(Option::is_none) && r.area.is_none() && !r.w_auto {
        return Err(Error::invalid("resize: one of w, h, l, s, p is required"));
    }
    Ok(effective(r))
}

/// Only the sizes that take effect: w/h win over l/s, which win over p, then
/// wp/hp, then area.
fn effective(mut r: Resize) -> Resize {
    if r.w.is_some() || r.w_auto || r.h.is_some() {
        (r.l, r.s, r.p) = (None, None, None);
    } else if r.l.is_some() || r.s.is_some() {
        r.p = None;
    }
    if r.p.is_some() {
        (r.w, r.h, r.w_auto) = (None, None, false);
    }
    if [r.w, r.h, r.l, r.s, r.p].iter().any(Option::is_some) {
        (r.wp, r.hp) = (None, None);
    }
    if [r.w, r.h, r.l, r.s, r.p, r.wp, r.hp]
        .iter()
        .any(Option::is_some)
    {
        r.area = None;
    }
    r
}

fn resize_mode(p: &Params) -> Result<ResizeMode> {
    Ok(match p.get("m") {
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
    })
}

fn parse_crop(p: &Params) -> Result<Crop> {
    p.only(&["w", "h", "x", "y", "g"], false)?;
    let d = Crop::DEFAULT;
    let w = p.int("w", 0, MAX_SIDE as i64)?.map_or(d.w, |v| v as u32);
    let h = p.int("h", 0, MAX_SIDE as i64)?.map_or(d.h, |v| v as u32);
    let x = p
        .int("x", 0, MAX_CROP_OFFSET as i64)?
        .map_or(d.x, |v| v as u32);
    let y = p
        .int("y", 0, MAX_CROP_OFFSET as i64)?
        .map_or(d.y, |v| v as u32);
    let g = match p.get("g") {
        None => d.g,
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
    let v = match (p.bare.as_slice(), p.get("f")) {
        ([v], None) => *v,
        ([], Some(v)) => v,
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
