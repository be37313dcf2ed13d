//! `quality`: `q_` is relative to a JPEG source's own quality (estimated from
//! its quantisation table), `Q_` is absolute but never above it; for other
//! sources both are absolute. The output's quality is read back the same way.

mod common;

use std::collections::BTreeMap;

use pixmirror::process::codec::jpeg;
use pixmirror::process::engine::pipeline;
use pixmirror::process::lang;

fn jpeg_at(q: u8) -> Vec<u8> {
    let img = common::quadrants(64, 48);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
        .encode_image(&img)
        .expect("jpeg");
    out
}

fn output_quality(src: &[u8], process: &str) -> u8 {
    let plan = lang::parse_process(process, &BTreeMap::new()).expect("plan");
    let opts = pipeline::Options::from_config(&Default::default());
    let out = pipeline::run(src, &plan, &opts).expect(process);
    jpeg::estimate(&out.bytes).expect("a JPEG")
}

#[test]
fn relative_and_absolute_quality_follow_the_source() {
    let src = jpeg_at(80);
    assert_eq!(jpeg::estimate(&src), Some(80), "the source reads as 80");
    // q_90 of 80 is 72; Q_ caps at the source's 80.
    assert_eq!(output_quality(&src, "image/resize,w_32/quality,q_90"), 72);
    assert_eq!(output_quality(&src, "image/resize,w_32/quality,q_50"), 40);
    assert_eq!(output_quality(&src, "image/resize,w_32/quality,Q_90"), 80);
    assert_eq!(output_quality(&src, "image/resize,w_32/quality,Q_50"), 50);
    // Both: Q wins.
    assert_eq!(
        output_quality(&src, "image/resize,w_32/quality,q_50,Q_60"),
        60
    );
    // Without a quality: process.jpeg_quality, whatever the source's.
    let default = pixmirror::config::ProcessConfig::default().jpeg_quality;
    assert_eq!(output_quality(&jpeg_at(95), "image/resize,w_32"), default);
}

#[test]
fn other_sources_take_quality_as_absolute() {
    let png = common::encode(&common::quadrants(64, 48), image::ImageFormat::Png);
    assert_eq!(output_quality(&png, "image/quality,q_70/format,jpg"), 70);
    assert_eq!(output_quality(&png, "image/quality,Q_65/format,jpg"), 65);
}

/// A photo-like source: smooth shading with fine texture, where libwebp's
/// effort changes what it spends bits on.
fn textured_png() -> Vec<u8> {
    let img = image::RgbImage::from_fn(240, 180, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 37;
        image::Rgb([(x + n) as u8, (y + 2 * n) as u8, ((x + y) / 2 + n) as u8])
    });
    common::encode(&img, image::ImageFormat::Png)
}

/// `process` run on `src` with `cfg`: the WebP bytes and their decoded size.
fn webp(
    src: &[u8],
    process: &str,
    cfg: &pixmirror::config::ProcessConfig,
) -> (Vec<u8>, (u32, u32)) {
    let plan = lang::parse_process(process, &BTreeMap::new()).expect("plan");
    let out = pipeline::run(src, &plan, &pipeline::Options::from_config(cfg)).expect("webp");
    let img = image::load_from_memory_with_format(&out.bytes, image::ImageFormat::WebP)
        .expect("decodes as WebP");
    (out.bytes, (img.width(), img.height()))
}

fn webp_at_effort(src: &[u8], effort: Option<u8>) -> Vec<u8> {
    let mut cfg = pixmirror::config::ProcessConfig::default();
    if let Some(e) = effort {
        cfg.webp_effort = e;
    }
    let (bytes, size) = webp(src, "image/format,webp/quality,Q_80", &cfg);
    assert_eq!(size, (240, 180));
    bytes
}

#[test]
fn webp_effort_reaches_the_encoder() {
    let src = textured_png();
    let fast = webp_at_effort(&src, Some(0));
    let four = webp_at_effort(&src, Some(4));
    let five = webp_at_effort(&src, Some(5));
    let six = webp_at_effort(&src, Some(6));
    assert!(
        six.len() < fast.len(),
        "effort 6 {} B, effort 0 {} B",
        six.len(),
        fast.len()
    );
    assert_ne!(four, five, "efforts 4 and 5 encode differently");
    // libwebp is deterministic: the default is effort 4.
    assert_eq!(webp_at_effort(&src, None), four, "the default is effort 4");
}

/// A 3 MP photo-like JPEG, for thumbnails with far fewer pixels than it.
fn large_textured_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(2048, 1536, |x, y| {
        let n = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 37;
        image::Rgb([
            (x / 8 + n) as u8,
            (y / 6 + 2 * n) as u8,
            ((x + y) / 16 + n) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("jpeg");
    out
}

fn thumbnail(src: &[u8], w: u32, cfg: &pixmirror::config::ProcessConfig) -> Vec<u8> {
    let process = format!("image/resize,w_{w}/format,webp/quality,Q_80");
    let (bytes, size) = webp(src, &process, cfg);
    assert_eq!(size.0, w);
    bytes
}

#[test]
fn large_sources_get_the_large_source_effort() {
    let src = large_textured_jpeg();
    let default = pixmirror::config::ProcessConfig::default();
    assert_eq!(
        (default.webp_effort, default.webp_large_source_effort),
        (4, 5)
    );
    let at = |base: u8, large: u8, w: u32| {
        let mut cfg = default.clone();
        cfg.webp_effort = base;
        cfg.webp_large_source_effort = large;
        thumbnail(&src, w, &cfg)
    };
    // 180x135 has 1/129 of the source's pixels: the large-source effort.
    let thumb = thumbnail(&src, 180, &default);
    assert_eq!(thumb, at(5, 5, 180), "effort 5 for a 1/129 thumbnail");
    assert_ne!(thumb, at(4, 4, 180), "efforts 4 and 5 differ here");
    // Never below webp_effort.
    assert_eq!(at(6, 5, 180), at(6, 6, 180));
    // 182x137 has 1/126: webp_effort.
    let bigger = thumbnail(&src, 182, &default);
    assert_eq!(bigger, at(4, 4, 182), "effort 4 for a 1/126 thumbnail");
    assert_ne!(bigger, at(5, 5, 182), "efforts 4 and 5 differ here");
}
