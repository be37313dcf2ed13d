//! The plan's geometry: the size each operation makes of an image, from the
//! sizes alone, so that the output cap is checked before anything is decoded.
//! Pure.

use super::crop::crop_rect;
use super::op::Op;
use super::resize::resize_target;
use super::Plan;
use crate::error::{Error, Result};

/// The size `step` turns a `w`×`h` image into, computed without pixels: the
/// plan's geometry, checked against the output cap before anything is decoded.
pub fn output_size(step: &Op, (w, h): (u32, u32)) -> Result<(u32, u32)> {
    Ok(match step {
        Op::Resize(r) => resize_target(w, h, r)?.size(),
        Op::Crop(c) => {
            let (_, _, cw, ch) = crop_rect(w, h, c)?;
            (cw, ch)
        }
        Op::IndexCrop(c) => c.rect(w, h).map_or((w, h), |(_, _, cw, ch)| (cw, ch)),
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
pub fn rotated_size((w, h): (u32, u32), deg: u32) -> (u32, u32) {
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

/// OSS: the output is (2r + 1) square; an r past half the shorter side
/// becomes (shorter side - 1) / 2.
pub fn circle_diameter(r: u32, w: u32, h: u32) -> u32 {
    2 * r.min(w.min(h).saturating_sub(1) / 2) + 1
}

/// The size each step of `plan` makes of a `from` image, each checked against
/// `process.max_output_pixels` (and 16384 a side): the geometry alone, before
/// any pixel is decoded. Returns the final size.
pub fn output_geometry(plan: &Plan, from: (u32, u32), cap: u64) -> Result<(u32, u32)> {
    geometry(plan, from, 1, cap)
}

/// [`output_geometry`] for an output of `frames` frames of that size.
pub fn geometry(plan: &Plan, from: (u32, u32), frames: u32, cap: u64) -> Result<(u32, u32)> {
    plan.ops.iter().try_fold(from, |size, step| {
        let next = output_size(step, size)?;
        within_output_cap(step.action(), next, frames, cap)?;
        Ok(next)
    })
}

pub fn within_output_cap(step: &str, (w, h): (u32, u32), frames: u32, cap: u64) -> Result<()> {
    let pixels = w as u64 * h as u64 * frames as u64;
    if pixels > cap {
        let what = match frames {
            1 => format!("{w}x{h}"),
            n => format!("{n} frames of {w}x{h}"),
        };
        return Err(Error::invalid(format!(
            "{step}: the output would be {what} = {pixels} pixels, over process.max_output_pixels ({cap})"
        )));
    }
    Ok(())
}
