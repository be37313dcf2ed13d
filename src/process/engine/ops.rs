//! One function per pixel operation of the plan, with libvips (the resize's
//! 8-bit resampling in `resample`). Each takes the current image and returns
//! the next; the sizes they make are the plan's geometry (`plan::geometry`).

use std::time::Instant;

use libvips::ops;

use super::resample::{self, Extent};
use super::vips::{image_of, Img};
use crate::error::{Error, Result};
use crate::process::plan::geometry::circle_diameter;
use crate::process::plan::{crop_rect, resize_target, Crop, IndexCrop, MarkOp, ResizeTarget};

/// One step of a watermark image's preprocessing (no resize target from the
/// decoder), under the request's deadline.
pub fn mark_step(img: Img, step: &MarkOp, deadline: Option<Instant>) -> Result<Img> {
    match step {
        MarkOp::Resize(r) => {
            let t = resize_target(img.width(), img.height(), r)?;
            resize(img, &t, None, r.color, deadline)
        }
        MarkOp::Crop(c) => crop(img, c),
        MarkOp::IndexCrop(c) => indexcrop(img, c),
        MarkOp::RoundedCorners { r } => rounded_corners(img, *r),
        MarkOp::Rotate(d) => rotate(img, *d),
    }
}

/// Apply a resize whose target was computed for this image (or that the load
/// already scaled to `target.scaled`). `source` is where the source lies in
/// the image when the load shrank it (see [`Extent`]); `None`: all of it.
/// 8-bit images are resampled in Rust (`resample`, which decodes them by
/// `deadline`), others, and reductions too steep for its margin, by libvips.
pub fn resize(
    img: Img,
    t: &ResizeTarget,
    source: Option<Extent>,
    color: [u8; 3],
    deadline: Option<Instant>,
) -> Result<Img> {
    let mut img = img;
    let dims = (img.width(), img.height());
    let source = source.unwrap_or(Extent::whole(dims));
    // A decode already at the target's size stays as it is when the source
    // spans it to within half a pixel: a resample to correct less would
    // only soften it.
    if dims != t.scaled || source.misfit(dims) >= 0.5 {
        img = match resample::layout(&img, t.scaled, source) {
            Some(l) => resample::lanczos3(img, &l, deadline)?,
            None => scale(img, t.scaled, source)?,
        };
    }
    match t.frame {
        None => Ok(img),
        Some((fw, fh)) if t.pad => pad(img, fw, fh, color),
        Some((fw, fh)) if t.smart => smart_crop(img, fw, fh, deadline),
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

/// The `fw`×`fh` region libvips' attention measure finds most salient
/// (edges, skin tones, saturated colour), `g_smart`. The scaled image is
/// decoded to memory first, under the deadline: the analysis reads it whole.
fn smart_crop(img: Img, fw: u32, fh: u32, deadline: Option<Instant>) -> Result<Img> {
    let (fw, fh) = (fw.min(img.width()), fh.min(img.height()));
    let img = super::vips::copy_memory(img, deadline, "resize")?;
    image_of("resize", ops::smartcrop(img.get(), fw as i32, fh as i32))
}

/// libvips' Lanczos3 of `source` to exactly `to`, for what `resample`
/// leaves to it; an alpha channel is premultiplied first so that
/// transparent pixels do not bleed their colour into the edges. libvips
/// scales the whole image: the source's extent sets the scale, and its
/// origin where the result is placed, to the nearest output pixel.
fn scale(img: Img, to: (u32, u32), source: Extent) -> Result<Img> {
    let (hscale, vscale) = (to.0 as f64 / source.size.0, to.1 as f64 / source.size.1);
    let opts = ops::ResizeOptions {
        vscale,
        kernel: ops::Kernel::Lanczos3,
        ..Default::default()
    };
    let scaled = if img.has_alpha() {
        let format = img.get().get_format().unwrap_or(ops::BandFormat::Uchar);
        let pre = image_of("resize", ops::premultiply(img.get()))?;
        let scaled = image_of("resize", ops::resize_with_opts(pre.get(), hscale, &opts))?;
        let un = image_of("resize", ops::unpremultiply(scaled.get()))?;
        image_of("resize", ops::cast(un.get(), format))?
    } else {
        image_of("resize", ops::resize_with_opts(img.get(), hscale, &opts))?
    };
    let at = (
        (-source.origin.0 * hscale).round() as i32,
        (-source.origin.1 * vscale).round() as i32,
    );
    exact(scaled, to, at)
}

/// Force exact dimensions after a scale whose rounding may be off by a
/// pixel: the image placed at `at` (edge pixels repeated), cut to `w`×`h`.
fn exact(img: Img, (w, h): (u32, u32), at: (i32, i32)) -> Result<Img> {
    if (img.width(), img.height()) == (w, h) && at == (0, 0) {
        return Ok(img);
    }
    let opts = ops::EmbedOptions {
        extend: ops::Extend::Copy,
        ..Default::default()
    };
    image_of(
        "resize",
        ops::embed_with_opts(img.get(), at.0, at.1, w as i32, h as i32, &opts),
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

/// OSS `indexcrop`: keep one tile (an index past the last tile returns the
/// image unchanged, as on OSS).
pub fn indexcrop(img: Img, c: &IndexCrop) -> Result<Img> {
    match c.rect(img.width(), img.height()) {
        None => Ok(img),
        Some((x, y, w, h)) => image_of(
            "indexcrop",
            ops::extract_area(img.get(), x as i32, y as i32, w as i32, h as i32),
        ),
    }
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

    /// The static interpolators belong to libvips; a rotation must not drop
    /// a reference it never took (before the fix: one per rotation, then a
    /// use-after-free in `vips_interpolate_get_window_size` under load).
    #[test]
    fn rotate_leaves_libvips_static_interpolators_alone() {
        crate::process::engine::vips::init().expect("libvips");
        let refs = || unsafe {
            let p = libvips::bindings::vips_interpolate_nearest_static();
            (*p).parent_object.parent_instance.ref_count
        };
        let before = refs();
        for deg in [33, 45, 271] {
            let img = Img::new(ops::black(40, 30).expect("black"));
            let out = rotate(img, deg).expect("rotate");
            assert!(crate::process::engine::vips::write_to_buffer(out.get(), ".png").is_some());
        }
        assert_eq!(refs(), before);
    }
}
