//! One function per pixel operation of the plan. Each takes the current image and
//! returns the next; geometry is computed by small pure functions tested below.

use libvips::ops;

use super::plan::{Axis, Crop, Gravity, Op, Resize, ResizeMode};
use super::resample;
use super::vips::{image_of, Img};
use crate::error::{Error, Result};
use crate::process::grammar::MAX_SIDE;

/// What a resize does to an image of a given size: scale to `scaled`, then
/// optionally crop (fill) or pad (pad) to `frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResizeTarget {
    pub scaled: (u32, u32),
    pub frame: Option<(u32, u32)>,
    pub pad: bool,
}

fn round_dim(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

/// OSS resize geometry for a `w`×`h` image.
pub fn resize_target(w: u32, h: u32, r: &Resize) -> Result<ResizeTarget> {
    // Both `l` and `s`: the long and the short side of a w×h box in the
    // source's orientation, so every mode means what it means for w/h
    // (`m_fixed` forces l×s, `fill` crops to it, `pad` pads to it).
    if let (None, None, Some(l), Some(s)) = (r.w, r.h, r.l, r.s) {
        let (bw, bh) = if w >= h { (l, s) } else { (s, l) };
        let boxed = Resize {
            w: Some(bw),
            h: Some(bh),
            l: None,
            s: None,
            ..r.clone()
        };
        return resize_target(w, h, &boxed);
    }
    let (fw, fh) = (w as f64, h as f64);
    let unchanged = ResizeTarget {
        scaled: (w, h),
        frame: None,
        pad: false,
    };
    let mut frame = None;
    let scaled = if r.w.is_some() || r.h.is_some() {
        let sx = r.w.map(|v| v as f64 / fw);
        let sy = r.h.map(|v| v as f64 / fh);
        if r.mode == ResizeMode::Fixed {
            let tw = r.w.unwrap_or_else(|| round_dim(fw * sy.unwrap_or(1.0)));
            let th = r.h.unwrap_or_else(|| round_dim(fh * sx.unwrap_or(1.0)));
            if r.limit && (tw > w || th > h) {
                return Ok(unchanged);
            }
            (tw, th)
        } else {
            // The scale, and the requested side that set it (kept exact below).
            let (scale, side) = match (sx.zip(r.w), sy.zip(r.h)) {
                (Some((a, tw)), Some((b, th))) => {
                    let by_width = match r.mode {
                        ResizeMode::Lfit | ResizeMode::Pad => a <= b,
                        _ => a >= b,
                    };
                    if by_width {
                        (a, Side::Width(tw))
                    } else {
                        (b, Side::Height(th))
                    }
                }
                (Some((a, tw)), None) => (a, Side::Width(tw)),
                (None, Some((b, th))) => (b, Side::Height(th)),
                (None, None) => (1.0, Side::Neither),
            };
            if held(r, scale) {
                return Ok(unchanged);
            }
            let s = (round_dim(fw * scale), round_dim(fh * scale));
            // Keep the requested side exact despite rounding.
            let s = match side {
                Side::Width(tw) => (tw, s.1),
                Side::Height(th) => (s.0, th),
                Side::Neither => s,
            };
            if matches!(r.mode, ResizeMode::Fill | ResizeMode::Pad) {
                let fwid = r.w.unwrap_or(s.0);
                let fhei = r.h.unwrap_or(s.1);
                if (fwid, fhei) != s {
                    frame = Some((fwid, fhei));
                }
            }
            s
        }
    } else if r.l.is_some() || r.s.is_some() {
        let long = fw.max(fh);
        let short = fw.min(fh);
        let sl = r.l.map(|v| v as f64 / long);
        let ss = r.s.map(|v| v as f64 / short);
        let scale = match (sl, ss) {
            (Some(a), Some(b)) => match r.mode {
                ResizeMode::Mfit | ResizeMode::Fill => a.max(b),
                _ => a.min(b),
            },
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => 1.0,
        };
        if held(r, scale) {
            return Ok(unchanged);
        }
        (round_dim(fw * scale), round_dim(fh * scale))
    } else if r.p.is_none() && (r.wp.is_some() || r.hp.is_some()) {
        let sx = r.wp.unwrap_or(100) as f64 / 100.0;
        let sy = r.hp.unwrap_or(100) as f64 / 100.0;
        if held(r, sx.max(sy)) {
            return Ok(unchanged);
        }
        (round_dim(fw * sx), round_dim(fh * sy))
    } else {
        let scale = match (r.p, r.area) {
            (None, Some(a)) => (a as f64 / (fw * fh)).sqrt(),
            (p, _) => p.unwrap_or(100) as f64 / 100.0,
        };
        if held(r, scale) {
            return Ok(unchanged);
        }
        let s = (round_dim(fw * scale), round_dim(fh * scale));
        match r.area {
            // Rounding must not take the product past the area.
            Some(a) if r.p.is_none() && s.0 as u64 * s.1 as u64 > a => (
                round_dim((fw * scale).floor()),
                round_dim((fh * scale).floor()),
            ),
            _ => s,
        }
    };
    for (name, v) in [("width", scaled.0), ("height", scaled.1)] {
        if v > MAX_SIDE {
            return Err(Error::invalid(format!(
                "resize: the output {name} would be {v} px, over the limit of {MAX_SIDE}"
            )));
        }
    }
    Ok(ResizeTarget {
        scaled,
        frame,
        pad: r.mode == ResizeMode::Pad,
    })
}

/// The requested side a proportional resize takes its scale from.
enum Side {
    Width(u32),
    Height(u32),
    Neither,
}

/// The image stays as it is: `limit` and a scale that would enlarge, or `grow`
/// and one that would shrink.
fn held(r: &Resize, scale: f64) -> bool {
    (r.limit && scale > 1.0) || (r.grow && scale < 1.0)
}

/// The size `step` turns a `w`×`h` image into, computed without pixels: the
/// plan's geometry, checked against the output cap before anything is decoded.
pub fn output_size(step: &Op, (w, h): (u32, u32)) -> Result<(u32, u32)> {
    Ok(match step {
        Op::Resize(r) => {
            let t = resize_target(w, h, r)?;
            let (sw, sh) = t.scaled;
            match t.frame {
                None => t.scaled,
                Some((fw, fh)) if t.pad => (fw.max(sw), fh.max(sh)),
                Some((fw, fh)) => (fw.min(sw), fh.min(sh)),
            }
        }
        Op::Crop(c) => {
            let (_, _, cw, ch) = crop_rect(w, h, c)?;
            (cw, ch)
        }
        Op::IndexCrop { axis, len, i } => {
            let total = if *axis == Axis::X { w } else { h };
            let start = (*i as u64) * (*len as u64);
            if start >= total as u64 {
                (w, h)
            } else {
                let size = (*len).min(total - start as u32);
                if *axis == Axis::X {
                    (size, h)
                } else {
                    (w, size)
                }
            }
        }
        Op::Circle { r } => {
            let d = circle_diameter(*r, w, h);
            (d, d)
        }
        Op::Rotate(deg) => rotated_size((w, h), *deg),
        Op::RoundedCorners { .. }
        | Op::Blur { .. }
        | Op::Bright(_)
        | Op::Contrast(_)
        | Op::Sharpen(_)
        | Op::Watermark(_) => (w, h),
    })
}

/// The canvas of a rotation by `deg` degrees: the bounding box of the turned
/// rectangle (libvips' `rotate` may round it one pixel either way).
fn rotated_size((w, h): (u32, u32), deg: u32) -> (u32, u32) {
    match deg % 360 {
        0 | 180 => (w, h),
        90 | 270 => (h, w),
        d => {
            let (s, c) = (d as f64).to_radians().sin_cos();
            let (s, c) = (s.abs(), c.abs());
            let (fw, fh) = (w as f64, h as f64);
            (
                (fw * c + fh * s).ceil() as u32,
                (fw * s + fh * c).ceil() as u32,
            )
        }
    }
}

/// Apply a resize whose target was computed for this image (or that the load
/// already scaled to `target.scaled`). 8-bit images are resampled in Rust
/// (`resample`, which decodes them by `deadline`), others, and reductions
/// too steep for its margin, by libvips.
pub fn resize(
    img: Img,
    t: &ResizeTarget,
    color: [u8; 3],
    deadline: Option<std::time::Instant>,
) -> Result<Img> {
    let mut img = img;
    if (img.width(), img.height()) != t.scaled {
        img = match resample::layout(&img, t.scaled) {
            Some(l) => resample::lanczos3(img, &l, deadline)?,
            None => scale(img, t.scaled)?,
        };
    }
    match t.frame {
        None => Ok(img),
        Some((fw, fh)) if t.pad => pad(img, fw, fh, color),
        Some((fw, fh)) => {
            let (w, h) = (img.width(), img.height());
            let (fw, fh) = (fw.min(w), fh.min(h));
            image_of(
                "resize",
                ops::extract_area(
                    img.get(),
                    ((w - fw) / 2) as i32,
                    ((h - fh) / 2) as i32,
                    fw as i32,
                    fh as i32,
                ),
            )
        }
    }
}

/// libvips' Lanczos3 to exactly `to`, for what `resample` leaves to it; an
/// alpha channel is premultiplied first so that transparent pixels do not
/// bleed their colour into the edges.
fn scale(img: Img, to: (u32, u32)) -> Result<Img> {
    let opts = ops::ResizeOptions {
        vscale: to.1 as f64 / img.height() as f64,
        kernel: ops::Kernel::Lanczos3,
        ..Default::default()
    };
    let hscale = to.0 as f64 / img.width() as f64;
    let scaled = if img.has_alpha() {
        let format = img.get().get_format().unwrap_or(ops::BandFormat::Uchar);
        let pre = image_of("resize", ops::premultiply(img.get()))?;
        let scaled = image_of("resize", ops::resize_with_opts(pre.get(), hscale, &opts))?;
        let un = image_of("resize", ops::unpremultiply(scaled.get()))?;
        image_of("resize", ops::cast(un.get(), format))?
    } else {
        image_of("resize", ops::resize_with_opts(img.get(), hscale, &opts))?
    };
    exact(scaled, to)
}

/// Force exact dimensions after a scale whose rounding may be off by a pixel.
fn exact(img: Img, (w, h): (u32, u32)) -> Result<Img> {
    if (img.width(), img.height()) == (w, h) {
        return Ok(img);
    }
    if img.width() >= w && img.height() >= h {
        return image_of(
            "resize",
            ops::extract_area(img.get(), 0, 0, w as i32, h as i32),
        );
    }
    let opts = ops::EmbedOptions {
        extend: ops::Extend::Copy,
        ..Default::default()
    };
    let img = image_of(
        "resize",
        ops::embed_with_opts(
            img.get(),
            0,
            0,
            w.max(img.width()) as i32,
            h.max(img.height()) as i32,
            &opts,
        ),
    )?;
    image_of(
        "resize",
        ops::extract_area(img.get(), 0, 0, w as i32, h as i32),
    )
}

fn background(img: &Img, color: [u8; 3], alpha: f64) -> Vec<f64> {
    let mut bg: Vec<f64> = if img.bands() <= 2 {
        vec![(color[0] as f64 + color[1] as f64 + color[2] as f64) / 3.0]
    } else {
        color.iter().map(|c| *c as f64).collect()
    };
    if img.has_alpha() {
        bg.push(alpha);
    }
    bg
}

fn pad(img: Img, fw: u32, fh: u32, color: [u8; 3]) -> Result<Img> {
    let (w, h) = (img.width(), img.height());
    let (fw, fh) = (fw.max(w), fh.max(h));
    let opts = ops::EmbedOptions {
        extend: ops::Extend::Background,
        background: background(&img, color, 255.0),
    };
    image_of(
        "resize",
        ops::embed_with_opts(
            img.get(),
            ((fw - w) / 2) as i32,
            ((fh - h) / 2) as i32,
            fw as i32,
            fh as i32,
            &opts,
        ),
    )
}

/// The crop rectangle of OSS `crop` on a `w`×`h` image, or an error when the
/// start point lies outside the image.
pub fn crop_rect(w: u32, h: u32, c: &Crop) -> Result<(u32, u32, u32, u32)> {
    let cw = if c.w == 0 { w } else { c.w.min(w) };
    let chh = if c.h == 0 { h } else { c.h.min(h) };
    let (ox, oy) = match c.g {
        Gravity::Nw => (0, 0),
        Gravity::North => ((w / 2).saturating_sub(cw / 2), 0),
        Gravity::Ne => (w - cw, 0),
        Gravity::West => (0, (h / 2).saturating_sub(chh / 2)),
        Gravity::Center => (
            (w / 2).saturating_sub(cw / 2),
            (h / 2).saturating_sub(chh / 2),
        ),
        Gravity::East => (w - cw, (h / 2).saturating_sub(chh / 2)),
        Gravity::Sw => (0, h - chh),
        Gravity::South => ((w / 2).saturating_sub(cw / 2), h - chh),
        Gravity::Se => (w - cw, h - chh),
    };
    let x = ox.saturating_add(c.x);
    let y = oy.saturating_add(c.y);
    if x >= w || y >= h {
        return Err(Error::invalid(format!(
            "crop: the start point ({x},{y}) is outside the {w}x{h} image"
        )));
    }
    Ok((x, y, cw.min(w - x), chh.min(h - y)))
}

pub fn crop(img: Img, c: &Crop) -> Result<Img> {
    let (x, y, w, h) = crop_rect(img.width(), img.height(), c)?;
    if (x, y, w, h) == (0, 0, img.width(), img.height()) {
        return Ok(img);
    }
    image_of(
        "crop",
        ops::extract_area(img.get(), x as i32, y as i32, w as i32, h as i32),
    )
}

/// OSS `indexcrop`: cut into tiles of `len` along the axis and keep tile `i`
/// (an index past the last tile returns the image unchanged, as on OSS).
pub fn indexcrop(img: Img, axis: Axis, len: u32, i: u32) -> Result<Img> {
    let (w, h) = (img.width(), img.height());
    let total = if axis == Axis::X { w } else { h };
    let start = (i as u64) * (len as u64);
    if start >= total as u64 {
        return Ok(img);
    }
    let start = start as u32;
    let size = len.min(total - start);
    let r = if axis == Axis::X {
        ops::extract_area(img.get(), start as i32, 0, size as i32, h as i32)
    } else {
        ops::extract_area(img.get(), 0, start as i32, w as i32, size as i32)
    };
    image_of("indexcrop", r)
}

/// Join `mask` (one uchar band, 255 = keep) to the image as (or into) its alpha.
fn apply_mask(img: Img, mask: Img, step: &str) -> Result<Img> {
    let mut alpha = mask;
    let colour = if img.has_alpha() {
        let n = img.bands() - 1;
        let old = image_of(step, ops::extract_band(img.get(), n))?;
        let prod = image_of(step, ops::multiply(old.get(), alpha.get()))?;
        let scaled = image_of(
            step,
            ops::linear(prod.get(), &mut [1.0 / 255.0], &mut [0.0]),
        )?;
        alpha = image_of(step, ops::cast(scaled.get(), ops::BandFormat::Uchar))?;
        image_of(
            step,
            ops::extract_band_with_opts(img.get(), 0, &ops::ExtractBandOptions { n }),
        )?
    } else {
        img
    };
    image_of(
        step,
        ops::bandjoin(&mut [colour.into_inner(), alpha.into_inner()]),
    )
}

/// A `w`×`h` uchar mask: 255 inside a rectangle with corners rounded by `r`
/// (a circle when `w = h = 2r`), 0 outside. Built from coordinates, no SVG
/// (the SVG loader is blocked for untrusted input).
fn rounded_mask(w: u32, h: u32, r: u32, step: &str) -> Result<Img> {
    let xy = image_of(step, ops::xyz(w as i32, h as i32))?;
    // Distance of each pixel centre from the centre, per axis.
    let (cx, cy) = (w as f64 / 2.0, h as f64 / 2.0);
    let centred = image_of(
        step,
        ops::linear(xy.get(), &mut [1.0, 1.0], &mut [0.5 - cx, 0.5 - cy]),
    )?;
    let dist = image_of(step, ops::abs(centred.get()))?;
    // How far into the corner zone: max(0, |d| - (half - r)) = (v + |v|) / 2.
    let v = image_of(
        step,
        ops::linear(
            dist.get(),
            &mut [1.0, 1.0],
            &mut [r as f64 - cx, r as f64 - cy],
        ),
    )?;
    let av = image_of(step, ops::abs(v.get()))?;
    let pos = image_of(step, ops::add(v.get(), av.get()))?;
    let pos = image_of(step, ops::linear(pos.get(), &mut [0.5], &mut [0.0]))?;
    let sq = image_of(step, ops::multiply(pos.get(), pos.get()))?;
    let dx2 = image_of(step, ops::extract_band(sq.get(), 0))?;
    let dy2 = image_of(step, ops::extract_band(sq.get(), 1))?;
    let d2 = image_of(step, ops::add(dx2.get(), dy2.get()))?;
    let r2 = (r as f64) * (r as f64);
    image_of(
        step,
        ops::relational_const(d2.get(), ops::OperationRelational::Lesseq, &mut [r2]),
    )
}

/// OSS: the output is (2r + 1) square; an r past half the shorter side
/// becomes (shorter side - 1) / 2.
fn circle_diameter(r: u32, w: u32, h: u32) -> u32 {
    2 * r.min(w.min(h).saturating_sub(1) / 2) + 1
}

pub fn circle(img: Img, r: u32) -> Result<Img> {
    let (w, h) = (img.width(), img.height());
    let d = circle_diameter(r, w, h);
    let r = d / 2;
    let img = image_of(
        "circle",
        ops::extract_area(
            img.get(),
            ((w - d) / 2) as i32,
            ((h - d) / 2) as i32,
            d as i32,
            d as i32,
        ),
    )?;
    let mask = rounded_mask(d, d, r, "circle")?;
    apply_mask(img, mask, "circle")
}

pub fn rounded_corners(img: Img, r: u32) -> Result<Img> {
    let (w, h) = (img.width(), img.height());
    let r = r.min(w / 2).min(h / 2);
    let mask = rounded_mask(w, h, r, "rounded-corners")?;
    apply_mask(img, mask, "rounded-corners")
}

pub fn rotate(img: Img, deg: u32) -> Result<Img> {
    let angle = match deg {
        90 => Some(ops::Angle::D90),
        180 => Some(ops::Angle::D180),
        270 => Some(ops::Angle::D270),
        _ => None,
    };
    if let Some(a) = angle {
        return image_of("rotate", ops::rot(img.get(), a));
    }
    // Arbitrary angles grow the canvas; the corners are white (transparent with alpha).
    // Every field is written out: the crate's `RotateOptions::default()` wraps
    // libvips' *static* nearest interpolator and unrefs it on drop, so each
    // default (even one `..Default::default()` only partly uses) frees a shared
    // object a little more; concurrent rotations then crashed in libvips.
    // `new_from_name` returns a reference of our own, bilinear as libvips' default.
    let interpolate = libvips::VipsInterpolate::new_from_name("bilinear")
        .map_err(|_| Error::Internal("rotate: no bilinear interpolator".into()))?;
    let opts = ops::RotateOptions {
        interpolate,
        background: background(&img, [255, 255, 255], 0.0),
        odx: 0.0,
        ody: 0.0,
        idx: 0.0,
        idy: 0.0,
    };
    image_of(
        "rotate",
        ops::rotate_with_opts(img.get(), deg as f64, &opts),
    )
}

/// Gaussian blur with standard deviation `s`, its kernel cut at radius `r`
/// (OSS: r is the blur radius, s the deviation). libvips sizes the kernel by
/// the smallest weight it keeps, so r becomes min_ampl = exp(-r² / 2s²).
pub fn blur(img: Img, r: u32, s: u32) -> Result<Img> {
    let (r, s) = (r as f64, s as f64);
    let o = ops::GaussblurOptions {
        min_ampl: (-(r * r) / (2.0 * s * s)).exp().clamp(0.001, 0.999),
        precision: ops::Precision::Integer,
    };
    image_of("blur", ops::gaussblur_with_opts(img.get(), s, &o))
}

/// `out = a * in + b` on the colour bands only, clipped to 8 bits.
fn linear_colour(img: Img, a: f64, b: f64, step: &str) -> Result<Img> {
    let n = img.bands() as usize;
    let colour = if img.has_alpha() { n - 1 } else { n };
    let mut av: Vec<f64> = (0..n).map(|i| if i < colour { a } else { 1.0 }).collect();
    let mut bv: Vec<f64> = (0..n).map(|i| if i < colour { b } else { 0.0 }).collect();
    let out = image_of(step, ops::linear(img.get(), &mut av, &mut bv))?;
    image_of(step, ops::cast(out.get(), ops::BandFormat::Uchar))
}

pub fn bright(img: Img, v: i32) -> Result<Img> {
    linear_colour(img, 1.0, v as f64 * 2.55, "bright")
}

pub fn contrast(img: Img, v: i32) -> Result<Img> {
    let a = (100.0 + v as f64) / 100.0;
    linear_colour(img, a, 128.0 * (1.0 - a), "contrast")
}

pub fn sharpen(img: Img, v: u32) -> Result<Img> {
    // OSS amount 50..399 mapped onto the slope of libvips' jagged-area sharpening.
    let opts = ops::SharpenOptions {
        sigma: 1.0,
        m_2: v as f64 / 100.0 * 2.0,
        ..Default::default()
    };
    let out = image_of("sharpen", ops::sharpen_with_opts(img.get(), &opts))?;
    // sharpen works in LabS; come back to 8-bit sRGB.
    image_of(
        "sharpen",
        ops::colourspace(out.get(), ops::Interpretation::Srgb),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rz(mode: ResizeMode, w: Option<u32>, h: Option<u32>) -> Resize {
        Resize {
            mode,
            w,
            h,
            ..Resize::default()
        }
    }

    #[test]
    fn long_and_short_sides_are_a_box_in_the_sources_orientation() {
        let ls = |mode, l, s| Resize {
            mode,
            l: Some(l),
            s: Some(s),
            ..Resize::default()
        };
        let out = |w, h, r: &Resize| output_size(&Op::Resize(r.clone()), (w, h)).expect("size");
        // m_fixed forces long × short, whichever way the source lies.
        assert_eq!(
            out(4000, 2000, &ls(ResizeMode::Fixed, 300, 100)),
            (300, 100)
        );
        assert_eq!(
            out(2000, 4000, &ls(ResizeMode::Fixed, 300, 100)),
            (100, 300)
        );
        // fill crops to it, pad pads to it, lfit and mfit scale as before.
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Fill, 300, 300)), (300, 300));
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Pad, 300, 300)), (300, 300));
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Lfit, 300, 300)), (300, 150));
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Mfit, 300, 300)), (600, 300));
        // One of them alone: proportional, in every mode.
        let l_only = Resize {
            mode: ResizeMode::Fixed,
            l: Some(300),
            ..Resize::default()
        };
        assert_eq!(out(4000, 2000, &l_only), (300, 150));
    }

    #[test]
    fn resize_geometry() {
        let t = resize_target(4224, 3168, &rz(ResizeMode::Lfit, Some(300), None)).expect("t");
        assert_eq!(t.scaled, (300, 225));
        let t = resize_target(4000, 2000, &rz(ResizeMode::Lfit, Some(300), Some(300))).expect("t");
        assert_eq!(t.scaled, (300, 150));
        let t = resize_target(4000, 2000, &rz(ResizeMode::Mfit, Some(300), Some(300))).expect("t");
        assert_eq!(t.scaled, (600, 300));
        let t = resize_target(4000, 2000, &rz(ResizeMode::Fill, Some(300), Some(300))).expect("t");
        assert_eq!(
            (t.scaled, t.frame, t.pad),
            ((600, 300), Some((300, 300)), false)
        );
        let t = resize_target(4000, 2000, &rz(ResizeMode::Pad, Some(300), Some(300))).expect("t");
        assert_eq!(
            (t.scaled, t.frame, t.pad),
            ((300, 150), Some((300, 300)), true)
        );
        let t = resize_target(4000, 2000, &rz(ResizeMode::Fixed, Some(300), Some(300))).expect("t");
        assert_eq!(t.scaled, (300, 300));
        // limit_1: never enlarge.
        let t = resize_target(100, 50, &rz(ResizeMode::Lfit, Some(300), None)).expect("t");
        assert_eq!(t.scaled, (100, 50));
        let mut r = rz(ResizeMode::Lfit, Some(300), None);
        r.limit = false;
        assert_eq!(resize_target(100, 50, &r).expect("t").scaled, (300, 150));
        let r = Resize {
            l: Some(100),
            w: None,
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert_eq!(resize_target(400, 200, &r).expect("t").scaled, (100, 50));
        let r = Resize {
            s: Some(100),
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert_eq!(resize_target(400, 200, &r).expect("t").scaled, (200, 100));
        let r = Resize {
            p: Some(50),
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert_eq!(resize_target(400, 200, &r).expect("t").scaled, (200, 100));
        let r = Resize {
            p: Some(1000),
            limit: false,
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert!(resize_target(4000, 200, &r).is_err());
    }

    #[test]
    fn crop_geometry() {
        let c = |w, h, x, y, g| Crop { w, h, x, y, g };
        assert_eq!(
            crop_rect(1000, 800, &c(200, 100, 0, 0, Gravity::Nw)).expect("c"),
            (0, 0, 200, 100)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(200, 100, 0, 0, Gravity::Se)).expect("c"),
            (800, 700, 200, 100)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(200, 100, 0, 0, Gravity::Center)).expect("c"),
            (400, 350, 200, 100)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(0, 0, 800, 50, Gravity::Nw)).expect("c"),
            (800, 50, 200, 750)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(200, 200, 10, 10, Gravity::Se)).expect("c"),
            (810, 610, 190, 190)
        );
        assert!(crop_rect(1000, 800, &c(0, 0, 1000, 0, Gravity::Nw)).is_err());
    }

    /// The static interpolators belong to libvips; a rotation must not drop
    /// a reference it never took (before the fix: one per rotation, then a
    /// use-after-free in `vips_interpolate_get_window_size` under load).
    #[test]
    fn rotate_leaves_libvips_static_interpolators_alone() {
        crate::process::vips::init().expect("libvips");
        let refs = || unsafe {
            let p = libvips::bindings::vips_interpolate_nearest_static();
            (*p).parent_object.parent_instance.ref_count
        };
        let before = refs();
        for deg in [33, 45, 271] {
            let img = Img::new(ops::black(40, 30).expect("black"));
            let out = rotate(img, deg).expect("rotate");
            assert!(crate::process::vips::write_to_buffer(out.get(), ".png").is_some());
        }
        assert_eq!(refs(), before);
    }
}
