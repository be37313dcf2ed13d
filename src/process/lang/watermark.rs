//! OSS `watermark`: its parameters read into a [`Watermark`] (OSS's ranges;
//! the defaults are the plan's `Watermark::DEFAULT`). Pure.

use super::params::{b64_text, parse_color, Params};
use crate::error::{Error, Result};
use crate::process::plan::limits::{MAX_KEY_BYTES, MAX_TEXT_BYTES};
use crate::process::plan::{Font, Gravity, ImageMark, MarkOp, Plan, TextMark, Watermark};

/// Every parameter `watermark` knows (`font` is an alias of `type`;
/// `animation` is accepted and needs nothing: animations keep their frames).
pub const KEYS: &[&str] = &[
    "t",
    "g",
    "x",
    "y",
    "voffset",
    "fill",
    "padx",
    "pady",
    "text",
    "type",
    "font",
    "color",
    "size",
    "shadow",
    "rotate",
    "image",
    "order",
    "align",
    "interval",
    "animation",
];

/// Parse one `watermark` action. A watermark image's key may carry a process
/// string of its own (`key?x-oss-process=image/...`): it is returned for the
/// grammar to parse, then handed to [`preprocess`].
pub fn parse(p: &Params) -> Result<(Watermark, Option<String>)> {
    let d = Watermark::DEFAULT;
    let int = |k: &str, min: i64, max: i64, default: i64| -> Result<i64> {
        Ok(p.int(k, min, max)?.unwrap_or(default))
    };
    let g = match p.get("g") {
        None => d.g,
        Some(v) => Gravity::parse(v).ok_or_else(|| {
            Error::invalid(
                "watermark: g must be one of nw, north, ne, west, center, east, sw, south, se",
            )
        })?,
    };
    int("animation", 0, 1, 0)?;
    let text = p.get("text").map(|v| parse_text(p, v)).transpose()?;
    let (image, process) = match p.get("image") {
        Some(v) => {
            let (mark, process) = parse_image(v)?;
            (Some(mark), process)
        }
        None => (None, None),
    };
    if text.is_none() && image.is_none() {
        return Err(Error::invalid("watermark: text or image is required"));
    }
    let mark = Watermark {
        t: int("t", 0, 100, d.t.into())? as u8,
        g,
        x: int("x", 0, 4096, d.x.into())? as u32,
        y: int("y", 0, 4096, d.y.into())? as u32,
        voffset: int("voffset", -1000, 1000, d.voffset.into())? as i32,
        fill: int("fill", 0, 1, d.fill.into())? == 1,
        padx: int("padx", 0, 4096, d.padx.into())? as u32,
        pady: int("pady", 0, 4096, d.pady.into())? as u32,
        text,
        image,
        order: int("order", 0, 1, d.order.into())? as u8,
        align: int("align", 0, 2, d.align.into())? as u8,
        interval: int("interval", 0, 1000, d.interval.into())? as u32,
    };
    Ok((mark, process))
}

fn parse_text(p: &Params, v: &str) -> Result<TextMark> {
    let d = TextMark::DEFAULT;
    let text = b64_text(v, "text")?;
    if text.is_empty() {
        return Err(Error::invalid("watermark: the text is empty"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid(format!(
            "watermark: font content is too large (the text is {} bytes, at most {MAX_TEXT_BYTES})",
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "watermark: the text holds control characters",
        ));
    }
    let font = match p.get("type").or_else(|| p.get("font")) {
        None => d.font,
        Some(v) => {
            let name = b64_text(v, "type")?;
            Font::parse(name.trim()).ok_or_else(|| {
                Error::invalid(format!(
                    "watermark: unsupported font; type is one of {}",
                    Font::ALL.map(Font::name).join(", ")
                ))
            })?
        }
    };
    let color = match p.get("color") {
        None => d.color,
        Some(c) => parse_color(c)
            .ok_or_else(|| Error::invalid("watermark: color must be 6 hex digits (RRGGBB)"))?,
    };
    Ok(TextMark {
        text,
        font,
        color,
        size: p.int("size", 1, 1000)?.map_or(d.size, |v| v as u32),
        shadow: p.int("shadow", 0, 100)?.map_or(d.shadow, |v| v as u8),
        rotate: p
            .int("rotate", 0, 360)?
            .map_or(d.rotate, |v| v as u32 % 360),
    })
}

/// `image_<base64 of key[?x-oss-process=image/...]>`: the mark, and the
/// preprocessing's process string when it has any action besides `P_`.
fn parse_image(v: &str) -> Result<(ImageMark, Option<String>)> {
    let raw = b64_text(v, "image")?;
    let (key, process) = match raw.split_once("?x-oss-process=") {
        Some((k, p)) => (k, Some(p)),
        None => (raw.as_str(), None),
    };
    check_key(key)?;
    let mut mark = ImageMark {
        key: key.to_string(),
        percent: None,
        ops: Vec::new(),
        auto_orient: true,
    };
    let Some(process) = process else {
        return Ok((mark, None));
    };
    let (rest, percent) = take_percent(process)?;
    mark.percent = percent;
    let empty = rest
        .trim_start_matches("image")
        .trim_matches('/')
        .is_empty();
    Ok((mark, (!empty).then_some(rest)))
}

/// A watermark image's key: an object key of the same store.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(
            "watermark: image must name an object key (1 to 1024 bytes)",
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "watermark: the image key holds control characters",
        ));
    }
    Ok(())
}

/// Take `P_n` out of the preprocessing's `resize` actions: `P` (a percentage
/// of the main image) is known only to watermark images.
fn take_percent(process: &str) -> Result<(String, Option<u32>)> {
    let mut percent = None;
    let mut actions = Vec::new();
    for action in process.split('/') {
        let mut parts: Vec<&str> = action.split(',').collect();
        if parts.first() == Some(&"resize") {
            if let Some(i) = parts.iter().position(|p| p.starts_with("P_")) {
                let v = &parts[i][2..];
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(
                            "watermark: image preprocessing resize,P must be an integer in [1,100]",
                        )
                    })?;
                percent = Some(n);
                parts.remove(i);
                if parts.len() == 1 {
                    continue;
                }
            }
        }
        actions.push(parts.join(","));
    }
    Ok((actions.join("/"), percent))
}

/// Set a watermark image's preprocessing from its parsed plan. OSS
/// preprocesses watermark images with resize, crop, indexcrop,
/// rounded-corners and rotate only: no circle, no nested watermark, no format
/// or report.
pub fn preprocess(mark: &mut ImageMark, plan: Plan) -> Result<()> {
    let only = "watermark: image preprocessing takes resize, crop, indexcrop, rounded-corners and rotate only";
    let extras = plan.format.is_some() || plan.quality.is_some() || plan.report.is_some();
    let ops = plan
        .ops
        .into_iter()
        .map(|o| {
            MarkOp::try_from(o).map_err(|o| {
                Error::invalid(format!(
                    "watermark: image preprocessing cannot use {}",
                    o.action()
                ))
            })
        })
        .collect::<Result<_>>()?;
    if extras || plan.interlace {
        return Err(Error::invalid(only));
    }
    mark.ops = ops;
    mark.auto_orient = plan.auto_orient;
    Ok(())
}
