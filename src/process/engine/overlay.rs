//! Drawing a `watermark` step with libvips: build the mark (text, image, or
//! both side by side) as an RGBA image, apply its opacity, then place it by
//! gravity and margins, or tile it over the whole image, and composite it.

use std::collections::BTreeMap;

use libvips::ops;

use super::ops::{mark_step, rotate};
use super::probe::probe;
use super::vips::{self, decode_err, image_of, Img};
use crate::error::{Error, Result};
use crate::process::plan::{Format, Gravity, ImageMark, TextMark, Watermark};

/// The bytes of the watermark images a plan names, by key (loaded by the
/// service through L1 and the store, like any original).
pub type Marks = BTreeMap<String, bytes::Bytes>;

const STEP: &str = "watermark";

/// Limits that apply to the mark itself.
#[derive(Clone, Copy, Debug)]
pub struct MarkLimits {
    /// A watermark image's pixels, and the drawn mark's.
    pub max_pixels: u64,
    /// The request's: the mark's preprocessing runs under it too.
    pub deadline: Option<std::time::Instant>,
}

/// Draw `w` on `img`.
pub fn draw(img: Img, w: &Watermark, marks: &Marks, limits: MarkLimits) -> Result<Img> {
    let had_alpha = img.has_alpha();
    let base = to_srgb(img)?;
    let (bw, bh) = (base.width(), base.height());
    let mark = build(w, marks, (bw, bh), limits)?;
    let mark = fade(mark, w.t as f64 / 100.0)?;
    let (layer, x, y) = if w.fill {
        (tile(mark, (bw, bh), w.padx, w.pady)?, 0, 0)
    } else {
        let (x, y) = position(w, (bw, bh), (mark.width(), mark.height()));
        (mark, x, y)
    };
    // `over` gives 8 bits with alpha; the base's bands again without it.
    let out = over(&base, &layer, x, y)?;
    if had_alpha {
        return Ok(out);
    }
    let three = ops::ExtractBandOptions { n: 3 };
    image_of(STEP, ops::extract_band_with_opts(out.get(), 0, &three))
}

/// 8-bit sRGB with 3 or 4 bands (grey is widened).
fn to_srgb(img: Img) -> Result<Img> {
    if img.bands() >= 3 {
        return Ok(img);
    }
    image_of(STEP, ops::colourspace(img.get(), ops::Interpretation::Srgb))
}

/// The mark as 8-bit RGBA: the text, the image, or both side by side.
fn build(w: &Watermark, marks: &Marks, main: (u32, u32), limits: MarkLimits) -> Result<Img> {
    let text = w.text.as_ref().map(|t| text_mark(t, limits)).transpose()?;
    let image = w
        .image
        .as_ref()
        .map(|m| image_mark(m, marks, main, limits))
        .transpose()?;
    match (text, image) {
        (Some(t), None) => Ok(t),
        (None, Some(i)) => Ok(i),
        (Some(t), Some(i)) => {
            let (first, second) = if w.order == 1 { (t, i) } else { (i, t) };
            side_by_side(first, second, w.interval, w.align)
        }
        (None, None) => Err(Error::invalid("watermark: text or image is required")),
    }
}

/// Pango markup of `text` in one colour (the text is escaped, so it stays literal).
fn markup(text: &str, color: [u8; 3]) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;");
    format!(
        "<span foreground=\"#{:02X}{:02X}{:02X}\">{escaped}</span>",
        color[0], color[1], color[2]
    )
}

/// The text, in its colour, with its shadow, turned by `rotate`.
fn text_mark(t: &TextMark, limits: MarkLimits) -> Result<Img> {
    // Checked before Pango draws anything: a glyph is at most about one em
    // wide and 1.5 em tall.
    let (ew, eh) = (
        t.text.chars().count() as u64 * t.size as u64,
        t.size as u64 * 3 / 2,
    );
    if ew * eh > limits.max_pixels {
        return Err(Error::invalid(format!(
            "watermark: the text would be about {ew}x{eh} pixels, over process.max_output_pixels"
        )));
    }
    let font = format!("{} {}", t.font.family(), t.size);
    let ink = vips::text_rgba(&markup(&t.text, t.color), &font)?;
    let mut mark = if t.shadow > 0 {
        let shadow = vips::text_rgba(&markup(&t.text, [0, 0, 0]), &font)?;
        let shadow = fade(shadow, t.shadow as f64 / 100.0)?;
        let d = (t.size / 20).max(1);
        let (w, h) = (ink.width() + d, ink.height() + d);
        let shadow = canvas(shadow, (w, h), (d, d))?;
        let ink = canvas(ink, (w, h), (0, 0))?;
        over(&shadow, &ink, 0, 0)?
    } else {
        ink
    };
    if t.rotate != 0 {
        mark = rotate(mark, t.rotate)?;
    }
    Ok(mark)
}

/// The watermark image: decoded, upright, scaled to `percent` of the main
/// image, its preprocessing applied, with an alpha band.
fn image_mark(m: &ImageMark, marks: &Marks, main: (u32, u32), limits: MarkLimits) -> Result<Img> {
    let bytes = marks
        .get(&m.key)
        .ok_or_else(|| Error::Internal("a watermark image was not loaded".into()))?;
    if !matches!(
        Format::sniff(bytes),
        Some(Format::Jpg | Format::Png | Format::Webp | Format::Tiff)
    ) {
        return Err(Error::invalid(
            "watermark: the watermark image must be a JPG, PNG, WebP or TIFF",
        ));
    }
    let header = probe(bytes, limits.max_pixels, 1)?;
    let img = libvips::VipsImage::new_from_buffer(bytes, "").map_err(|_| decode_err(STEP))?;
    let mut img = Img::new(img);
    if m.auto_orient && (2..=8).contains(&header.orientation) {
        img = image_of(STEP, ops::autorot(img.get()))?;
    }
    img = with_alpha(to_srgb(image_of(
        STEP,
        ops::cast(img.get(), ops::BandFormat::Uchar),
    )?)?)?;
    if let Some(p) = m.percent {
        let (tw, th) = (
            (main.0 as f64 * p as f64 / 100.0).max(1.0),
            (main.1 as f64 * p as f64 / 100.0).max(1.0),
        );
        let scale = (tw / img.width() as f64).min(th / img.height() as f64);
        img = image_of(STEP, ops::resize(img.get(), scale))?;
    }
    for step in &m.ops {
        img = mark_step(img, step, limits.deadline)?;
    }
    Ok(img)
}

fn with_alpha(img: Img) -> Result<Img> {
    if img.has_alpha() {
        return Ok(img);
    }
    image_of(STEP, ops::bandjoin_const(img.get(), &mut [255.0]))
}

/// Multiply the alpha band by `a` (opacity).
fn fade(img: Img, a: f64) -> Result<Img> {
    if a >= 1.0 {
        return Ok(img);
    }
    let img = with_alpha(img)?;
    let n = img.bands() as usize;
    let mut mul = vec![1.0; n];
    mul[n - 1] = a;
    let faded = image_of(STEP, ops::linear(img.get(), &mut mul, &mut vec![0.0; n]))?;
    image_of(STEP, ops::cast(faded.get(), ops::BandFormat::Uchar))
}

/// `img` on a transparent `size` canvas at `at`.
fn canvas(img: Img, size: (u32, u32), at: (u32, u32)) -> Result<Img> {
    let o = ops::EmbedOptions {
        extend: ops::Extend::Background,
        background: vec![0.0; img.bands() as usize],
    };
    image_of(
        STEP,
        ops::embed_with_opts(
            img.get(),
            at.0 as i32,
            at.1 as i32,
            size.0 as i32,
            size.1 as i32,
            &o,
        ),
    )
}

/// `top` composited over `base` with its top-left corner at (x, y); what
/// falls outside `base` is cut off.
fn over(base: &Img, top: &Img, x: i32, y: i32) -> Result<Img> {
    let o = ops::Composite2Options {
        x,
        y,
        compositing_space: ops::Interpretation::Srgb,
        premultiplied: false,
    };
    let out = image_of(
        STEP,
        ops::composite_2_with_opts(base.get(), top.get(), ops::BlendMode::Over, &o),
    )?;
    image_of(STEP, ops::cast(out.get(), ops::BandFormat::Uchar))
}

/// Two marks side by side, `interval` apart, aligned top (0), middle (1) or
/// bottom (2).
fn side_by_side(first: Img, second: Img, interval: u32, align: u8) -> Result<Img> {
    let w = first.width() + interval + second.width();
    let h = first.height().max(second.height());
    let top = |img: &Img| match align {
        0 => 0,
        1 => (h - img.height()) / 2,
        _ => h - img.height(),
    };
    let (t1, t2) = (top(&first), top(&second));
    let x2 = first.width() + interval;
    let left = canvas(first, (w, h), (0, t1))?;
    over(&left, &second, x2 as i32, t2 as i32)
}

/// Where the mark's top-left corner goes: x from the left or right edge, y
/// from the top or bottom edge, centred on the other axis (moved down by
/// `voffset` on the middle line).
fn position(w: &Watermark, (bw, bh): (u32, u32), (mw, mh): (u32, u32)) -> (i32, i32) {
    let (bw, bh, mw, mh) = (bw as i64, bh as i64, mw as i64, mh as i64);
    let (x, y) = (w.x as i64, w.y as i64);
    let left = match w.g {
        Gravity::Nw | Gravity::West | Gravity::Sw => x,
        Gravity::North | Gravity::Center | Gravity::South => (bw - mw) / 2,
        Gravity::Ne | Gravity::East | Gravity::Se => bw - mw - x,
    };
    let top = match w.g {
        Gravity::Nw | Gravity::North | Gravity::Ne => y,
        Gravity::West | Gravity::Center | Gravity::East => (bh - mh) / 2 + w.voffset as i64,
        Gravity::Sw | Gravity::South | Gravity::Se => bh - mh - y,
    };
    let clamp = |v: i64| v.clamp(-(1 << 24), 1 << 24) as i32;
    (clamp(left), clamp(top))
}

/// The mark repeated over a `size` image from its top-left corner, each copy
/// `padx` × `pady` from the next.
fn tile(mark: Img, size: (u32, u32), padx: u32, pady: u32) -> Result<Img> {
    let cell = (mark.width() + padx, mark.height() + pady);
    let cell_img = canvas(mark, cell, (0, 0))?;
    let across = size.0.div_ceil(cell.0).max(1);
    let down = size.1.div_ceil(cell.1).max(1);
    let tiled = image_of(
        STEP,
        ops::replicate(cell_img.get(), across as i32, down as i32),
    )?;
    image_of(
        STEP,
        ops::extract_area(tiled.get(), 0, 0, size.0 as i32, size.1 as i32),
    )
}
