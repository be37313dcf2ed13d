//! Animated GIF and WebP: every step of a plan runs on every frame, and the
//! frames keep their delays and loop count.
//!
//! libvips holds an animation as one tall strip of equal frames, stacked top
//! to bottom, with `page-height` (a frame's height), `delay` (one value per
//! frame, in milliseconds) and `loop` (0 = for ever) in its metadata; gifsave
//! and webpsave write such a strip as an animation. [`each_frame`] cuts the
//! strip into frames, runs the plan's steps on each and stacks the results.
//!
//! Which runs keep the frames ([`keeps_frames`]): an animated GIF or WebP
//! source written as GIF or WebP. Any other output format takes the first
//! frame (the loaders' default). Animated runs skip EXIF auto-orientation,
//! which has no meaning per frame, and decode without shrink-on-load.

use libvips::ops;

use super::vips::{self, image_of, Img};
use crate::error::{Error, Result};
use crate::process::codec::{gif, webp};
use crate::process::plan::{Format, Op, Plan};

/// Does a run from a `source` with `frames` frames into `output` keep them?
pub fn keeps_frames(source: Format, frames: u32, output: Format) -> bool {
    frames > 1 && animates(source, output)
}

/// Can a run from `source` into `output` be animated at all (GIF or WebP both ways)?
pub fn animates(source: Format, output: Format) -> bool {
    matches!(source, Format::Gif | Format::Webp) && matches!(output, Format::Gif | Format::Webp)
}

/// OSS never enlarges a GIF: every resize of a GIF source keeps `limit`
/// (and pixmirror's `grow_1` is dropped). Other sources: the plan unchanged.
pub fn source_rules(plan: &Plan, source: Format) -> std::borrow::Cow<'_, Plan> {
    let enlarges = |o: &Op| matches!(o, Op::Resize(r) if !r.limit || r.grow);
    if source != Format::Gif || !plan.ops.iter().any(enlarges) {
        return std::borrow::Cow::Borrowed(plan);
    }
    let mut p = plan.clone();
    for o in &mut p.ops {
        if let Op::Resize(r) = o {
            r.limit = true;
            r.grow = false;
        }
    }
    std::borrow::Cow::Owned(p)
}

/// Frames of the source counted from its container, without libvips (for the
/// memory estimate before a libvips slot is taken). 1 when unsure.
pub fn count_frames(src: &[u8]) -> u32 {
    match Format::sniff(src) {
        Some(Format::Gif) => gif::frames(src).max(1),
        Some(Format::Webp) => webp::frames(src).max(1),
        _ => 1,
    }
}

/// Does `img` hold more than one frame?
pub fn is_strip(img: &Img) -> bool {
    vips::get_int(img.get(), c"page-height").is_some_and(|p| p > 0 && (p as u32) < img.height())
}

/// Run `step` on each of the `frames` frames of `strip`, then stack the
/// results into a strip with the source's delays and loop count. Every frame
/// goes through the same steps, so every result has the same size.
pub fn each_frame(
    strip: Img,
    frames: u32,
    mut step: impl FnMut(Img) -> Result<Img>,
) -> Result<Img> {
    let (w, h) = (strip.width(), strip.height());
    let page = vips::get_int(strip.get(), c"page-height")
        .and_then(|p| u32::try_from(p).ok())
        .filter(|&p| p > 0 && p * frames == h)
        .ok_or_else(|| Error::unprocessable("animation: frames of unequal height"))?;
    let delays = vips::get_array_int(strip.get(), c"delay").unwrap_or_default();
    let looping = vips::get_int(strip.get(), c"loop").unwrap_or(0);
    let mut out = Vec::with_capacity(frames as usize);
    for i in 0..frames {
        let frame = image_of(
            "animation",
            ops::extract_area(strip.get(), 0, (i * page) as i32, w as i32, page as i32),
        )?;
        out.push(step(frame)?.into_inner());
    }
    let (fw, fh) = out
        .first()
        .map_or((0, 0), |f| (f.get_width(), f.get_height()));
    // Every field written: the crate's defaults (an empty background, a grid
    // spacing of 1 pixel) are not libvips' and make a 1-pixel strip.
    let o = ops::ArrayjoinOptions {
        across: 1,
        background: vec![0.0],
        hspacing: fw,
        vspacing: fh,
        ..Default::default()
    };
    let joined = image_of("animation", ops::arrayjoin_with_opts(&mut out, &o))?;
    // A fresh copy that only we hold, so its metadata can be written.
    let joined = image_of("animation", ops::copy(joined.get()))?;
    vips::set_int(&joined, c"page-height", fh);
    vips::set_int(&joined, c"loop", looping);
    if delays.len() == frames as usize {
        vips::set_array_int(&joined, c"delay", &delays);
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gif_is_never_enlarged() {
        let plan = crate::process::lang::parse_process(
            "image/resize,p_200,limit_0/format,webp",
            &Default::default(),
        )
        .expect("plan");
        let gif = source_rules(&plan, Format::Gif);
        assert!(matches!(&gif.ops[0], Op::Resize(r) if r.limit));
        let jpg = source_rules(&plan, Format::Jpg);
        assert!(matches!(&jpg.ops[0], Op::Resize(r) if !r.limit));
    }
}
