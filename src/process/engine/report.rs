//! The reports a plan can ask for instead of an image: OSS `info` (the
//! header's properties and the EXIF fields, no pixel decoding),
//! `average-hue` (the mean colour of a 64 px copy), and the placeholders
//! `thumbhash` and `blurhash` of the image after the plan's actions.
//!
//! `info`'s field names and value forms follow what OSS returns: always
//! `FileSize`, `Format`, `FrameCount`, `ImageHeight`, `ImageWidth` (as stored,
//! before EXIF orientation), and `ResolutionUnit`, `XResolution`,
//! `YResolution` (`1`, `1/1`, `1/1` when the image does not say); the EXIF
//! fields as `codec::exif` reads them; no EXIF for PNG sources (OSS reads none
//! there).

use std::collections::BTreeMap;

use libvips::ops;
use serde_json::json;

use super::encode::{prepare_for, Output};
use super::load::load;
use super::ops::resize;
use super::options::Options;
use super::probe::Header;
use super::vips::{self, decode_err, image_of};
use crate::error::Error;
use crate::error::Result;
use crate::process::codec::exif;
use crate::process::plan::{Format, Op, Plan, Report, Resize};

/// The largest side a placeholder is computed from (ThumbHash's own limit).
pub const PLACEHOLDER_SIDE: u32 = 100;

/// The plan a placeholder runs: the plan's actions, then a fit into
/// 100x100 that never enlarges (as the first step of a plan without actions,
/// it shrinks on load).
pub fn placeholder_plan(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    p.ops.push(Op::Resize(Resize {
        w: Some(PLACEHOLDER_SIDE),
        h: Some(PLACEHOLDER_SIDE),
        ..Default::default()
    }));
    p
}

/// `{"thumbhash": "<standard base64>"}` or `{"blurhash": "..."}` of `img`,
/// at most [`PLACEHOLDER_SIDE`] a side (`placeholder_plan` made it so).
pub fn placeholder(img: vips::Img, kind: Report, opts: &Options) -> Result<Output> {
    let img = prepare_for(img, Format::Png)?;
    let img = vips::copy_memory(img, opts.deadline, "placeholder")?;
    let (w, h) = (img.width(), img.height());
    if w > PLACEHOLDER_SIDE || h > PLACEHOLDER_SIDE {
        return Err(Error::Internal(format!(
            "a placeholder from {w}x{h} pixels"
        )));
    }
    let raw = vips::write_to_memory(img.get()).ok_or_else(|| decode_err("placeholder"))?;
    let rgba = to_rgba(&raw, img.bands())?;
    let body = match kind {
        Report::ThumbHash => {
            use base64::Engine;
            let hash = thumbhash::rgba_to_thumb_hash(w as usize, h as usize, &rgba);
            json!({ "thumbhash": base64::engine::general_purpose::STANDARD.encode(hash) })
        }
        Report::BlurHash { x, y } => {
            let hash = blurhash::encode(x as u32, y as u32, w, h, &rgba)
                .map_err(|e| Error::Internal(format!("blurhash: {e}")))?;
            json!({ "blurhash": hash })
        }
        _ => return Err(Error::Internal("not a placeholder".into())),
    };
    Ok(Output {
        bytes: body.to_string().into_bytes(),
        content_type: "application/json",
    })
}

/// 8-bit pixels of 1 to 4 bands (grey, grey + alpha, RGB, RGBA) as RGBA.
fn to_rgba(raw: &[u8], bands: i32) -> Result<Vec<u8>> {
    let px = |p: &[u8]| -> [u8; 4] {
        match p.len() {
            1 => [p[0], p[0], p[0], 255],
            2 => [p[0], p[0], p[0], p[1]],
            3 => [p[0], p[1], p[2], 255],
            _ => [p[0], p[1], p[2], p[3]],
        }
    };
    match bands {
        1..=4 => Ok(raw.chunks_exact(bands as usize).flat_map(px).collect()),
        b => Err(Error::Internal(format!("a placeholder of {b} bands"))),
    }
}

/// The report for `src`, whose header `h` the pipeline has read.
pub fn info(src: &[u8], h: &Header) -> Output {
    let mut m: BTreeMap<String, String> = BTreeMap::new();
    if h.format != Format::Png {
        for (name, value) in exif::fields(src) {
            m.entry(name).or_insert(value);
        }
    }
    m.insert("FileSize".into(), src.len().to_string());
    m.insert("Format".into(), h.format.name().to_string());
    m.insert("FrameCount".into(), h.frames.to_string());
    m.insert("ImageHeight".into(), h.height.to_string());
    m.insert("ImageWidth".into(), h.width.to_string());
    for (name, default) in [
        ("ResolutionUnit", "1"),
        ("XResolution", "1/1"),
        ("YResolution", "1/1"),
    ] {
        m.entry(name.into()).or_insert_with(|| default.into());
    }
    let body: serde_json::Map<String, serde_json::Value> = m
        .into_iter()
        .map(|(k, v)| (k, json!({ "value": v })))
        .collect();
    Output {
        bytes: serde_json::Value::Object(body).to_string().into_bytes(),
        content_type: "application/json",
    }
}

/// OSS `average-hue`: `{"RGB":"0xRRGGBB"}` of the whole (upright, sRGB) image,
/// averaged over a copy at most 64 px a side (shrink-on-load, then the resize),
/// decoded once to memory; every step under the request's deadline.
pub fn average_hue(src: &[u8], header: &Header, plan: &Plan, opts: &Options) -> Result<Output> {
    let deadline = opts.deadline;
    let small = Plan {
        ops: vec![Op::Resize(Resize {
            l: Some(64),
            ..Default::default()
        })],
        ..plan.clone()
    };
    let (img, pre) = load(src, header, &small, 1, opts)?;
    let img = match pre {
        Some(p) => resize(img, &p.target, p.source, [255, 255, 255], deadline)?,
        None => img,
    };
    let img = prepare_for(img, Format::Jpg)?;
    let img = vips::copy_memory(img, deadline, "average-hue")?;
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
