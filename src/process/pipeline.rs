//! Run a resolved [`Plan`] over source bytes with libvips. Reads top to bottom:
//! probe → (report) → load with shrink-on-load → the plan's operations in order
//! → encode. An animated GIF or WebP written as GIF or WebP runs the
//! operations on each frame (`animation`). Blocking and CPU-bound: call it
//! from the bounded blocking pool.

use std::time::Instant;

use libvips::ops;

pub use super::overlay::Marks;
use super::overlay::{self, MarkLimits};
use super::plan::{Format, FormatSpec, Op, Plan, Quality, Report};
use super::steps::{self, ResizeTarget};
use super::vips::{self, decode_err, image_of, Img};
use super::{animation, gifmeta, icc, info, jpegq, pngload, webpmeta};
use crate::error::{Error, Result};

/// Limits and encoder defaults of one run.
#[derive(Clone, Debug)]
pub struct Options {
    pub max_source_pixels: u64,
    pub max_output_pixels: u64,
    pub max_frames: u32,
    pub jpeg_quality: u8,
    pub webp_quality: u8,
    pub avif_quality: u8,
    pub avif_effort: u8,
    pub webp_effort: u8,
    pub webp_large_source_effort: u8,
    /// Checked between steps; past it the run ends with 504 Timeout.
    pub deadline: Option<Instant>,
}

impl Options {
    pub fn from_config(c: &crate::config::ProcessConfig) -> Options {
        Options {
            max_source_pixels: c.max_source_pixels,
            max_output_pixels: c.max_output_pixels,
            max_frames: c.max_frames,
            jpeg_quality: c.jpeg_quality,
            webp_quality: c.webp_quality,
            avif_quality: c.avif_quality,
            avif_effort: c.avif_effort,
            webp_effort: c.webp_effort,
            webp_large_source_effort: c.webp_large_source_effort,
            deadline: None,
        }
    }

    /// The WebP encoder's effort for an output of `output` pixels (per
    /// frame) from a source of `source` pixels: `webp_large_source_effort`
    /// from [`LARGE_SOURCE_RATIO`] times the output's pixels, never below
    /// `webp_effort`.
    pub fn webp_effort_for(&self, source: u64, output: u64) -> u8 {
        if source >= LARGE_SOURCE_RATIO * output.max(1) {
            self.webp_effort.max(self.webp_large_source_effort)
        } else {
            self.webp_effort
        }
    }
}

/// A processed result.
#[derive(Clone, Debug)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
}

/// What the header of the source says, read without decoding pixels.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub orientation: i32,
    /// Frames (pages) in the source; 1 for a still image.
    pub frames: u32,
    /// The embedded colour profile, read from the container's bytes.
    pub profile: icc::Profile,
}

impl Header {
    /// Dimensions as displayed (EXIF orientations 5–8 swap the sides).
    fn oriented(&self, auto_orient: bool) -> (u32, u32) {
        if auto_orient && (5..=8).contains(&self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Read the header and enforce `max_source_pixels` (all frames counted) and
/// `max_frames` before any pixel is decoded.
pub fn probe(src: &[u8], max_pixels: u64, max_frames: u32) -> Result<Header> {
    vips::init()?;
    let format = Format::sniff(src)
        .ok_or_else(|| Error::unprocessable("the source is not an image in a supported format"))?;
    let img = libvips::VipsImage::new_from_buffer(src, "").map_err(|_| decode_err("load"))?;
    let img = Img::new(img);
    let (width, height) = (img.width(), img.height());
    let orientation = img.get().get_orientation();
    let frames = img.get().get_n_pages().max(1) as u64;
    if frames > max_frames as u64 {
        return Err(Error::unprocessable(format!(
            "the source has {frames} frames, over process.max_frames ({max_frames})"
        )));
    }
    let pixels = width as u64 * height as u64 * frames;
    if pixels > max_pixels {
        return Err(Error::unprocessable(format!(
            "the source has {width}x{height} pixels x {frames} frame(s) = {pixels}, over process.max_source_pixels ({max_pixels})"
        )));
    }
    Ok(Header {
        format,
        width,
        height,
        orientation,
        frames: frames as u32,
        profile: icc::sniff(src, format),
    })
}

/// The whole pipeline, for a plan that draws no watermark image.
pub fn run(src: &[u8], plan: &Plan, opts: &Options) -> Result<Output> {
    run_with(src, plan, opts, &Marks::new())
}

/// The whole pipeline; `marks` holds the watermark images the plan names
/// (`Plan::mark_keys`).
pub fn run_with(src: &[u8], plan: &Plan, opts: &Options, marks: &Marks) -> Result<Output> {
    let header = probe(src, opts.max_source_pixels, opts.max_frames)?;
    if let Some(report) = plan.report {
        return match report {
            Report::Info => Ok(info::report(src, &header)),
            Report::AverageHue => average_hue(src, &header, plan),
        };
    }
    let plan = &*animation::source_rules(plan, header.format);
    let format = output_format(plan, header.format);
    let frames = kept_frames(&header, format);
    let from = header.oriented(plan.auto_orient && frames == 1);
    geometry(plan, from, frames, opts.max_output_pixels)?;
    let (img, preshrunk) = load(src, &header, plan, frames, opts.deadline)?;
    let steps = |img| apply_all(img, plan, preshrunk, frames, opts, marks);
    let img = match frames {
        1 => steps(img)?,
        n => animation::each_frame(img, n, steps)?,
    };
    check_deadline(opts)?;
    // Estimated only when the plan's quality is relative to, or capped by, it.
    let source_quality = match (plan.quality, header.format) {
        (Some(_), Format::Jpg) => jpegq::estimate(src),
        _ => None,
    };
    let per_frame = img.width() as u64 * img.height() as u64 / frames.max(1) as u64;
    let effort = opts.webp_effort_for(header.width as u64 * header.height as u64, per_frame);
    let bytes = encode(img, format, plan, opts, source_quality, effort)?;
    Ok(Output {
        bytes,
        content_type: format.content_type(),
    })
}

/// The plan's steps in order on one image (or one frame of `frames`), each
/// result checked against the output cap.
fn apply_all(
    mut img: Img,
    plan: &Plan,
    mut preshrunk: Option<ResizeTarget>,
    frames: u32,
    opts: &Options,
    marks: &Marks,
) -> Result<Img> {
    let env = StepEnv {
        marks,
        limits: MarkLimits {
            max_pixels: opts.max_output_pixels,
        },
        deadline: opts.deadline,
    };
    for step in &plan.ops {
        check_deadline(opts)?;
        img = apply(img, step, preshrunk.take(), &env)?;
        let size = (img.width(), img.height());
        within_output_cap(step.action(), size, frames, opts.max_output_pixels)?;
    }
    Ok(img)
}

/// Frames the output keeps: all of an animated GIF or WebP written as GIF or
/// WebP, else 1 (the first).
fn kept_frames(header: &Header, output: Format) -> u32 {
    if animation::keeps_frames(header.format, header.frames, output) {
        header.frames
    } else {
        1
    }
}

/// Frames a run of `plan` on `src` keeps, counted from the container without
/// libvips (for the memory estimate); 1 when unsure.
pub fn kept_frames_of(src: &[u8], plan: &Plan) -> u32 {
    match Format::sniff(src) {
        // Frames are counted only where they can be kept.
        Some(source) if animation::animates(source, output_format(plan, source)) => {
            animation::count_frames(src)
        }
        _ => 1,
    }
}

/// The size each step of `plan` makes of a `from` image, each checked against
/// `process.max_output_pixels` (and 16384 a side): the geometry alone, before
/// any pixel is decoded. Returns the final size.
pub fn output_geometry(plan: &Plan, from: (u32, u32), cap: u64) -> Result<(u32, u32)> {
    geometry(plan, from, 1, cap)
}

/// [`output_geometry`] for an output of `frames` frames of that size.
fn geometry(plan: &Plan, from: (u32, u32), frames: u32, cap: u64) -> Result<(u32, u32)> {
    plan.ops.iter().try_fold(from, |size, step| {
        let next = steps::output_size(step, size)?;
        within_output_cap(step.action(), next, frames, cap)?;
        Ok(next)
    })
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
            let t = steps::resize_target(from.0, from.1, r).ok()?;
            load_shrink(from, t.scaled) as u64
        }
        _ => 1,
    };
    let decoded = (from.0 as u64).div_ceil(shrink) * (from.1 as u64).div_ceil(shrink);
    Some((decoded * frames, w as u64 * h as u64 * frames))
}

fn within_output_cap(step: &str, (w, h): (u32, u32), frames: u32, cap: u64) -> Result<()> {
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

fn check_deadline(opts: &Options) -> Result<()> {
    match opts.deadline {
        Some(d) if Instant::now() > d => Err(Error::Timeout("processing took too long".into())),
        _ => Ok(()),
    }
}

/// The output format: the plan's (already resolved from `auto`), else the source's.
pub fn output_format(plan: &Plan, source: Format) -> Format {
    match plan.format {
        // OSS: "if the source is not a GIF, it is saved in its own format".
        Some(FormatSpec::Concrete(Format::Gif)) if source != Format::Gif => source,
        Some(FormatSpec::Concrete(f)) => f,
        _ => source,
    }
}

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
fn load(
    src: &[u8],
    header: &Header,
    plan: &Plan,
    frames: u32,
    deadline: Option<Instant>,
) -> Result<(Img, Option<ResizeTarget>)> {
    let animated = frames > 1;
    let (w, h) = header.oriented(plan.auto_orient && !animated);
    let target = match plan.ops.first() {
        Some(Op::Resize(r)) => Some(steps::resize_target(w, h, r)?),
        _ => None,
    };
    if animated {
        let img =
            libvips::VipsImage::new_from_buffer(src, "n=-1").map_err(|_| decode_err("load"))?;
        let img = to_srgb(Img::new(img), header.profile)?;
        return Ok((vips::copy_memory(img, deadline, "load")?, target));
    }
    let shrink = target.map_or(1, |t| load_shrink((w, h), t.scaled));
    if header.format == Format::Png
        && shrink > 1
        && header.profile != icc::Profile::Other
        && header.orientation <= 1
        && pngload::suitable(src)
    {
        let s = pngload::decode_shrunk(src, shrink)?;
        let img = vips::from_pixels(&s.pixels, s.width, s.height, s.bands)?;
        return Ok((to_srgb(img, header.profile)?, target));
    }
    let options = match (header.format, shrink) {
        (Format::Jpg, n) if n > 1 => format!("shrink={n},access=sequential,fail_on=truncated"),
        (Format::Webp, n) if n > 1 => format!("scale={},access=sequential", 1.0 / n as f64),
        (Format::Jpg | Format::Png, _) => "access=sequential,fail_on=truncated".to_string(),
        _ => "access=sequential".to_string(),
    };
    let img = libvips::VipsImage::new_from_buffer(src, &options).map_err(|_| decode_err("load"))?;
    let mut img = to_srgb(Img::new(img), header.profile)?;
    // The loaded image can be read once, top to bottom. Steps that read
    // elsewhere (rotations, masks, several passes) need it decoded to memory.
    let sequential_ok = plan.ops.iter().enumerate().all(|(i, o)| match o {
        Op::Resize(_) => i == 0,
        Op::Crop(_) | Op::IndexCrop { .. } => true,
        _ => false,
    });
    let rotate = plan.auto_orient && (2..=8).contains(&header.orientation);
    if rotate || !sequential_ok {
        img = vips::copy_memory(img, deadline, "load")?;
    }
    if rotate {
        img = image_of("auto-orient", ops::autorot(img.get()))?;
    }
    Ok((img, target))
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

/// One step with no resize target from the decoder and no watermark image
/// (a watermark image's own preprocessing).
pub(super) fn apply_step(img: Img, step: &Op) -> Result<Img> {
    let env = StepEnv {
        marks: &Marks::new(),
        limits: MarkLimits { max_pixels: 0 },
        deadline: None,
    };
    apply(img, step, None, &env)
}

/// What the steps of one run share: the watermark images, the mark limits,
/// and the deadline for steps that decode (the Rust resampler reads the
/// decoded pixels).
struct StepEnv<'a> {
    marks: &'a Marks,
    limits: MarkLimits,
    deadline: Option<Instant>,
}

fn apply(img: Img, step: &Op, preshrunk: Option<ResizeTarget>, env: &StepEnv) -> Result<Img> {
    match step {
        Op::Resize(r) => {
            let t = match preshrunk {
                Some(t) => t,
                None => steps::resize_target(img.width(), img.height(), r)?,
            };
            steps::resize(img, &t, r.color, env.deadline)
        }
        Op::Crop(c) => steps::crop(img, c),
        Op::IndexCrop { axis, len, i } => steps::indexcrop(img, *axis, *len, *i),
        Op::Circle { r } => steps::circle(img, *r),
        Op::RoundedCorners { r } => steps::rounded_corners(img, *r),
        Op::Rotate(d) => steps::rotate(img, *d),
        Op::Blur { r, s } => steps::blur(img, *r, *s),
        Op::Bright(v) => steps::bright(img, *v),
        Op::Contrast(v) => steps::contrast(img, *v),
        Op::Sharpen(v) => steps::sharpen(img, *v),
        Op::Watermark(w) => overlay::draw(img, w, env.marks, env.limits),
    }
}

/// 8-bit sRGB (or grey), alpha flattened onto white where the format has none.
fn prepare_for(img: Img, format: Format) -> Result<Img> {
    let mut img = img;
    let interp = img.get().get_interpretation();
    let wide = !matches!(img.get().get_format(), Ok(ops::BandFormat::Uchar));
    if wide
        || !matches!(
            interp,
            Ok(ops::Interpretation::Srgb) | Ok(ops::Interpretation::BW)
        )
    {
        img = image_of(
            "encode",
            ops::colourspace(img.get(), ops::Interpretation::Srgb),
        )?;
        if !matches!(img.get().get_format(), Ok(ops::BandFormat::Uchar)) {
            img = image_of("encode", ops::cast(img.get(), ops::BandFormat::Uchar))?;
        }
    }
    if img.has_alpha() && matches!(format, Format::Jpg) {
        let o = ops::FlattenOptions {
            background: vec![255.0; (img.bands() - 1) as usize],
            max_alpha: 255.0,
        };
        img = image_of("encode", ops::flatten_with_opts(img.get(), &o))?;
        img = image_of("encode", ops::cast(img.get(), ops::BandFormat::Uchar))?;
    }
    Ok(img)
}

/// The quality an encoder is given: the plan's, else `default`. With a JPEG
/// source whose quality is known (`jpegq`), `q_` is relative to it and `Q_`
/// never goes above it (OSS); without one, both are absolute.
fn quality(plan: &Plan, source: Option<u8>, default: u8) -> u8 {
    match (plan.quality, source) {
        (Some(Quality::Relative(q)), Some(src)) => {
            ((src as u32 * q as u32 + 50) / 100).max(1) as u8
        }
        (Some(Quality::Absolute(q)), Some(src)) => q.min(src),
        (Some(Quality::Floor(q)), Some(src)) => q.max(src),
        (Some(Quality::Relative(q) | Quality::Absolute(q) | Quality::Floor(q)), None) => q,
        (None, _) => default,
    }
}

/// How many times the output's pixels a source must have for
/// `webp_large_source_effort`: a 300 px thumbnail of a photo over about
/// 8 MP. Decoding such a source (even at 1/8) costs 30 times and more what
/// encoding the thumbnail does, so libwebp's method 5 (trellis
/// quantisation: about 1.4 ms more per 300 px output, 1.5-2% fewer bytes at
/// the same quality) adds at most a few percent to the request; on a small
/// photo it would add 10%.
pub const LARGE_SOURCE_RATIO: u64 = 128;

fn encode(
    img: Img,
    format: Format,
    plan: &Plan,
    opts: &Options,
    source_quality: Option<u8>,
    webp_effort: u8,
) -> Result<Vec<u8>> {
    let img = prepare_for(img, format)?;
    let q = |default: u8| quality(plan, source_quality, default);
    let il = plan.interlace;
    let suffix = match format {
        Format::Jpg => format!(
            ".jpg[Q={},strip,profile=none,optimize_coding{}]",
            q(opts.jpeg_quality),
            if il { ",interlace" } else { "" }
        ),
        Format::Png => format!(
            ".png[strip,profile=none,compression=6{}]",
            if il { ",interlace" } else { "" }
        ),
        Format::Webp => format!(
            ".webp[Q={},effort={},strip,profile=none]",
            q(opts.webp_quality),
            webp_effort
        ),
        Format::Avif => format!(
            ".avif[Q={},effort={},bitdepth=8,strip]",
            q(opts.avif_quality),
            opts.avif_effort
        ),
        Format::Heic => format!(
            ".heic[Q={},compression=hevc,bitdepth=8,strip]",
            q(opts.avif_quality)
        ),
        Format::Gif => ".gif[strip]".to_string(),
        // JPEG XL's quality scale was made to match JPEG's: process.jpeg_quality.
        // Effort 4 of 9: libjxl's default 7 costs several times the CPU.
        Format::Jxl => format!(".jxl[Q={},effort=4,strip]", q(opts.jpeg_quality)),
        Format::Tiff => ".tiff[compression=deflate,strip,profile=none]".to_string(),
        Format::Bmp => return vips::evaluate(img.get(), opts.deadline, || encode_bmp(&img)),
    };
    // libvips 8.14's webpsave leaks its whole pipeline (36 objects for a
    // resize) when pixels fail to decode during the save, as a truncated JPEG
    // does. Decode first, so the save never sees a failing pixel source
    // (tests/leaks.rs). webpsave holds the whole picture for libwebp anyway, so
    // the copy adds little to the peak.
    let img = match format {
        Format::Webp => vips::copy_memory(img, opts.deadline, "encode webp")?,
        _ => img,
    };
    let bytes = vips::evaluate(img.get(), opts.deadline, || {
        vips::write_to_buffer(img.get(), &suffix).ok_or_else(|| {
            Error::unprocessable(format!("encode {}: {}", format.name(), vips::take_error()))
        })
    })?;
    Ok(match format {
        Format::Webp => webpmeta::strip(bytes),
        Format::Gif => match vips::get_int(img.get(), c"loop") {
            Some(plays) if animation::is_strip(&img) => gifmeta::set_plays(bytes, plays),
            _ => bytes,
        },
        _ => bytes,
    })
}

/// BMP through the `image` crate: libvips can only write BMP through ImageMagick,
/// which is blocked for untrusted input.
fn encode_bmp(img: &Img) -> Result<Vec<u8>> {
    let (w, h, bands) = (img.width(), img.height(), img.bands());
    let raw = vips::write_to_memory(img.get())
        .ok_or_else(|| Error::unprocessable(format!("encode bmp: {}", vips::take_error())))?;
    let color = match bands {
        1 => image::ExtendedColorType::L8,
        2 => image::ExtendedColorType::La8,
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        n => return Err(Error::unprocessable(format!("encode bmp: {n} bands"))),
    };
    if raw.len() != (w as usize) * (h as usize) * (bands as usize) {
        return Err(Error::unprocessable("encode bmp: unexpected pixel buffer"));
    }
    let mut out = Vec::new();
    image::codecs::bmp::BmpEncoder::new(&mut out)
        .encode(&raw, w, h, color)
        .map_err(|e| Error::unprocessable(format!("encode bmp: {e}")))?;
    Ok(out)
}

/// OSS `average-hue`: `{"RGB":"0xRRGGBB"}` of the whole (upright, sRGB) image.
fn average_hue(src: &[u8], header: &Header, plan: &Plan) -> Result<Output> {
    // Averaged over a 64-px thumbnail (shrink-on-load), decoded once to memory.
    let small = Plan {
        ops: vec![Op::Resize(super::plan::Resize {
            l: Some(64),
            ..Default::default()
        })],
        ..plan.clone()
    };
    let (img, _) = load(src, header, &small, 1, None)?;
    let img = prepare_for(img, Format::Jpg)?;
    let img = vips::copy_memory(img, None, "average-hue")?;
    let mut rgb = [0u8; 3];
    for (i, c) in rgb.iter_mut().enumerate() {
        let band = if img.bands() >= 3 { i as i32 } else { 0 };
        let b = image_of("average-hue", ops::extract_band(img.get(), band))?;
        let avg = ops::avg(b.get()).map_err(|_| decode_err("average-hue"))?;
        *c = avg.round().clamp(0.0, 255.0) as u8;
    }
    Ok(Output {
        bytes: format!(
            "{{\"RGB\":\"0x{:02X}{:02X}{:02X}\"}}",
            rgb[0], rgb[1], rgb[2]
        )
        .into_bytes(),
        content_type: "application/json",
    })
}
