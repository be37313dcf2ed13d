//! The encode: the output format, the encoder's quality and effort, and the
//! bytes (metadata stripped, a GIF's loop count patched in `codec::gif`).

use libvips::ops;

use super::animation;
use super::options::Options;
use super::vips::{self, image_of, Img};
use crate::error::{Error, Result};
use crate::process::codec::{gif, webp};
use crate::process::plan::{Format, FormatSpec, Plan, Quality};

/// A processed result.
#[derive(Clone, Debug)]
pub struct Output {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
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

/// 8-bit sRGB (or grey), alpha flattened onto white where the format has none.
pub fn prepare_for(img: Img, format: Format) -> Result<Img> {
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
/// source whose quality is known (`codec::jpeg::estimate`), `q_` is relative to it and `Q_`
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

/// The output's bytes: `img` brought to 8 bits (alpha flattened where the
/// format has none), saved under the deadline, then patched.
pub fn encode(
    img: Img,
    format: Format,
    plan: &Plan,
    opts: &Options,
    source_quality: Option<u8>,
    webp_effort: u8,
) -> Result<Vec<u8>> {
    let img = prepare_for(img, format)?;
    let q = |default: u8| quality(plan, source_quality, default);
    let Some(suffix) = saver(format, plan.interlace, opts, &q, webp_effort) else {
        return vips::evaluate(img.get(), opts.deadline, || encode_bmp(&img));
    };
    // libvips 8.14's webpsave leaks its whole pipeline (36 objects for a
    // resize) when pixels fail to decode during the save, as a truncated JPEG
    // does, and 5 objects when the deadline stops it. So the pixels are decoded
    // first, under the deadline (the save never sees a failing pixel source),
    // and the save itself is not watched: the watch could only stop its first
    // milliseconds anyway (copying the pixels to libwebp), never libwebp's
    // encode (a 3 MP encode ran 0.9 s past a 30 ms deadline). The deadline is
    // checked as every save ends (tests/leaks.rs). webpsave holds the whole
    // picture for libwebp anyway, so the copy adds little to the peak.
    let (img, watch) = match format {
        Format::Webp => (vips::copy_memory(img, opts.deadline, "encode webp")?, None),
        _ => (img, opts.deadline),
    };
    let bytes = vips::evaluate(img.get(), watch, || {
        vips::write_to_buffer(img.get(), &suffix).ok_or_else(|| {
            Error::unprocessable(format!("encode {}: {}", format.name(), vips::take_error()))
        })
    })?;
    Error::check_deadline(opts.deadline)?;
    Ok(match format {
        Format::Webp => webp::strip(bytes),
        Format::Gif => match vips::get_int(img.get(), c"loop") {
            Some(plays) if animation::is_strip(&img) => gif::set_plays(bytes, plays),
            _ => bytes,
        },
        _ => bytes,
    })
}

/// libvips' saver and its options for `format`; `None` for BMP (see
/// [`encode_bmp`]). `q` gives the quality from an encoder's default.
fn saver(
    format: Format,
    il: bool,
    opts: &Options,
    q: &dyn Fn(u8) -> u8,
    webp_effort: u8,
) -> Option<String> {
    let interlace = if il { ",interlace" } else { "" };
    Some(match format {
        Format::Jpg => format!(
            ".jpg[Q={},strip,profile=none,optimize_coding{interlace}]",
            q(opts.jpeg_quality)
        ),
        Format::Png => format!(".png[strip,profile=none,compression=6{interlace}]"),
        Format::Webp => format!(
            ".webp[Q={},effort={webp_effort},strip,profile=none]",
            q(opts.webp_quality)
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
        Format::Bmp => return None,
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
