//! The load: decode with shrink-on-load (libjpeg's DCT scaling, WebP's scaled
//! decoding, PNG's in `codec::png`), then 8-bit sRGB and upright; and what a
//! load will decode, from the header alone.

use libvips::ops;

use super::options::Options;
use super::probe::Header;
use super::resample::Extent;
use super::vips::{self, decode_err, image_of, Img};
use crate::error::Result;
use crate::process::codec::{icc, jpeg_scans, png};
use crate::process::plan::geometry::output_geometry;
use crate::process::plan::{resize_target, Format, Op, Plan, ResizeTarget};

/// Decode with shrink-on-load, then bring the pixels to 8-bit sRGB and upright.
///
/// When the plan starts with a resize, the decoder itself shrinks by the
/// largest power of two (up to 8) that keeps the image at least as large as the
/// target (JPEG DCT scaling, WebP scaled decoding), as sharp and imgproxy do;
/// the resize step does the rest with Lanczos3. Colours: an ICC transform only
/// when the source carries a profile that is not sRGB (see `icc`), else
/// libvips' colourspace maths (a no-op for sRGB and grey).
///
/// With `frames` > 1 every frame is decoded, into one strip in memory, at
/// full size and as stored (see `animation`); the resize target is a frame's.
pub fn load(
    src: &[u8],
    header: &Header,
    plan: &Plan,
    frames: u32,
    opts: &Options,
) -> Result<(Img, Option<Preshrunk>)> {
    let deadline = opts.deadline;
    let animated = frames > 1;
    let (w, h) = header.oriented(plan.auto_orient && !animated);
    let target = match plan.ops.first() {
        Some(Op::Resize(r)) => Some(resize_target(w, h, r)?),
        _ => None,
    };
    if animated {
        let img =
            libvips::VipsImage::new_from_buffer(src, "n=-1").map_err(|_| decode_err("load"))?;
        let img = to_srgb(Img::new(img), header.profile)?;
        let pre = Preshrunk::of(target, None);
        return Ok((vips::copy_memory(img, deadline, "load")?, pre));
    }
    let shrink = target.map_or(1, |t| load_shrink((w, h), t.scaled));
    if header.format == Format::Png
        && shrink > 1
        && header.profile != icc::Profile::Other
        && header.orientation <= 1
        && png::suitable(src)
    {
        let s = png::decode_shrunk(src, shrink, deadline)?;
        let img = vips::from_pixels(&s.pixels, s.width, s.height, s.bands)?;
        let pre = Preshrunk::of(target, Some(Extent::shrunk((w, h), shrink)));
        return Ok((to_srgb(img, header.profile)?, pre));
    }
    let (img, in_memory) = decode(src, header, shrink, target, opts)?;
    let mut source = decoded_extent(header, shrink, &img);
    let mut img = to_srgb(img, header.profile)?;
    // The loaded image can be read once, top to bottom. Steps that read
    // elsewhere (rotations, masks, several passes) need it decoded to memory.
    let sequential_ok = plan.ops.iter().enumerate().all(|(i, o)| match o {
        Op::Resize(_) => i == 0,
        Op::Crop(_) | Op::IndexCrop { .. } => true,
        _ => false,
    });
    let rotate = plan.auto_orient && (2..=8).contains(&header.orientation);
    if (rotate || !sequential_ok) && !in_memory {
        img = vips::copy_memory(img, deadline, "load")?;
    }
    if rotate {
        let stored = (img.width(), img.height());
        source = source.map(|e| e.oriented(header.orientation, stored));
        img = image_of("auto-orient", ops::autorot(img.get()))?;
    }
    Ok((img, Preshrunk::of(target, source)))
}

/// What the load did for a plan that starts with a resize: the resize's
/// target (computed on the upright source) and where the source lies in
/// the decoded pixels when the decoder shrank it (`None`: all of them).
#[derive(Clone, Copy, Debug)]
pub struct Preshrunk {
    pub target: ResizeTarget,
    pub source: Option<Extent>,
}

impl Preshrunk {
    /// For a plan that starts with a resize (`target`), else `None`.
    fn of(target: Option<ResizeTarget>, source: Option<Extent>) -> Option<Preshrunk> {
        target.map(|target| Preshrunk { target, source })
    }
}

/// Where the source lies in `img`, its decode at 1/`shrink`, as stored:
/// libjpeg's scaled decode is aligned at 1/`shrink` from the top-left
/// corner, however many of its blocks libvips keeps (the whole ones:
/// `floor(w / shrink)` pixels for `w / shrink` of source); WebP's scaled
/// decode and a HEIF's thumbnail (upright, as libheif turns it) hold the
/// whole image. `None`: nothing was shrunk.
fn decoded_extent(header: &Header, shrink: u32, img: &Img) -> Option<Extent> {
    let (from, decoded) = ((header.width, header.height), (img.width(), img.height()));
    match header.format {
        _ if decoded == from => None,
        Format::Jpg if shrink > 1 => Some(Extent::shrunk(from, shrink)),
        _ => Some(Extent::scaled(from, decoded)),
    }
}

/// A still image's one decode by libvips, at `shrink`, and whether it is
/// already in memory. What is decoded is decided here: a HEIF's embedded
/// thumbnail when it covers the resize (`heif_thumbnail`); a progressive
/// JPEG at 1/8 from the copy without its luma AC scans
/// (`codec::jpeg_scans`), decoded to memory at once since the copy must
/// outlive the image; else the file, lazily, to be read once.
fn decode(
    src: &[u8],
    header: &Header,
    shrink: u32,
    target: Option<ResizeTarget>,
    opts: &Options,
) -> Result<(Img, bool)> {
    if let (Format::Heic, Some(t)) = (header.format, target) {
        if let Some(img) = heif_thumbnail(src, header, t.scaled) {
            return Ok((img, false));
        }
    }
    let options = match (header.format, shrink) {
        (Format::Jpg, n) if n > 1 => format!("shrink={n},access=sequential,fail_on=truncated"),
        (Format::Webp, n) if n > 1 => format!("scale={},access=sequential", 1.0 / n as f64),
        (Format::Jpg | Format::Png, _) => "access=sequential,fail_on=truncated".to_string(),
        _ => "access=sequential".to_string(),
    };
    let open = |bytes: &[u8]| {
        libvips::VipsImage::new_from_buffer(bytes, &options)
            .map(Img::new)
            .map_err(|_| decode_err("load"))
    };
    if header.format == Format::Jpg && shrink == 8 && opts.jpeg_scan_skip {
        if let Some(copy) = jpeg_scans::eighth_scale_copy(src) {
            return Ok((
                vips::copy_memory(open(&copy)?, opts.deadline, "load")?,
                true,
            ));
        }
    }
    Ok((open(src)?, false))
}

/// A HEIF's embedded thumbnail image (`heifload thumbnail=true`, the header
/// only until it is read), when it is smaller than the primary image, at
/// least `to` on both sides (so the resize only shrinks it), the primary's
/// shape within a pixel's rounding (orientation included: libheif applies
/// each item's rotation), and carries the primary's ICC profile, or none
/// when the primary has none. Else `None`: the primary is decoded. `info`
/// and the limits read the primary (`probe`).
fn heif_thumbnail(src: &[u8], header: &Header, to: (u32, u32)) -> Option<Img> {
    let open = |options| {
        libvips::VipsImage::new_from_buffer(src, options)
            .ok()
            .map(Img::new)
    };
    let thumb = open("thumbnail=true,access=sequential")?;
    let (w, h) = (thumb.width() as u64, thumb.height() as u64);
    let (pw, ph) = (header.width as u64, header.height as u64);
    let smaller = w < pw && h < ph;
    let covers = w >= to.0 as u64 && h >= to.1 as u64;
    let same_shape = (w * ph).abs_diff(h * pw) <= pw.max(ph);
    if !(smaller && covers && same_shape) {
        return None;
    }
    let profile = |img: &Img| vips::get_blob(img, c"icc-profile-data");
    (profile(&thumb) == profile(&open("")?)).then_some(thumb)
}

/// The decoder's shrink factor for an image of `from` pixels that will be
/// resized to `to`: 8, 4, 2 or 1, never below the target on either side.
pub fn load_shrink(from: (u32, u32), to: (u32, u32)) -> u32 {
    let s = (from.0 as f64 / to.0.max(1) as f64).min(from.1 as f64 / to.1.max(1) as f64);
    [8, 4, 2].into_iter().find(|&n| s >= n as f64).unwrap_or(1)
}

/// 8-bit sRGB (or grey) for processing. The ICC transform (an lcms transform per
/// image) runs only for a profile that is not sRGB.
fn to_srgb(img: Img, profile: icc::Profile) -> Result<Img> {
    if profile == icc::Profile::Other {
        let o = ops::IccTransformOptions {
            embedded: true,
            input_profile: "sRGB".into(),
            intent: ops::Intent::Relative,
            depth: 8,
            ..Default::default()
        };
        return image_of("load", ops::icc_transform_with_opts(img.get(), "sRGB", &o));
    }
    let srgb_like = matches!(
        img.get().get_interpretation(),
        Ok(ops::Interpretation::Srgb) | Ok(ops::Interpretation::BW)
    ) && matches!(img.get().get_format(), Ok(ops::BandFormat::Uchar));
    if srgb_like {
        return Ok(img);
    }
    let target = if img.bands() < 3 {
        ops::Interpretation::BW
    } else {
        ops::Interpretation::Srgb
    };
    image_of("load", ops::colourspace(img.get(), target))
}

/// What a run of `plan` on a `from`-sized source decodes and outputs, in
/// pixels, from the geometry alone (for the memory budget, before a libvips
/// slot is taken): the decoder's shrink-on-load when the plan starts with a
/// resize, the plan's final size; both times `frames` for an animation.
/// `None` when the plan is refused anyway.
pub fn pixel_estimate(plan: &Plan, from: (u32, u32), frames: u32) -> Option<(u64, u64)> {
    if plan.report.is_some() {
        return Some((0, 0));
    }
    let (w, h) = output_geometry(plan, from, u64::MAX).ok()?;
    let frames = frames.max(1) as u64;
    let shrink = match plan.ops.first() {
        Some(Op::Resize(r)) if frames == 1 => {
            let t = resize_target(from.0, from.1, r).ok()?;
            load_shrink(from, t.scaled) as u64
        }
        _ => 1,
    };
    let decoded = (from.0 as u64).div_ceil(shrink) * (from.1 as u64).div_ceil(shrink);
    Some((decoded * frames, w as u64 * h as u64 * frames))
}
