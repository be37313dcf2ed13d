//! What the encoders write: no metadata the request did not ask for.

mod common;

use std::collections::BTreeMap;

use pixmirror::process::engine::pipeline;
use pixmirror::process::lang;

fn run(fixture: &str, ops: &str) -> Vec<u8> {
    let img = common::fixture(fixture);
    let opts = pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default());
    let plan = lang::parse_process(ops, &BTreeMap::new()).expect("valid plan");
    pipeline::run(&img, &plan, &opts).expect("processed").bytes
}

/// The fourccs of a WebP file's chunks, in order.
fn webp_chunks(data: &[u8]) -> Vec<String> {
    assert_eq!(&data[0..4], b"RIFF");
    assert_eq!(&data[8..12], b"WEBP");
    let riff = u32::from_le_bytes(data[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff + 8, data.len(), "RIFF size matches the file");
    let (mut at, mut out) = (12, Vec::new());
    while at < data.len() {
        let len = u32::from_le_bytes(data[at + 4..at + 8].try_into().unwrap()) as usize;
        out.push(String::from_utf8_lossy(&data[at..at + 4]).into_owned());
        at += 8 + len + (len & 1);
    }
    assert_eq!(at, data.len());
    out
}

/// libvips 8.14 writes an EXIF chunk into every WebP, `strip` or not; the
/// output must be the simple container with only the image.
#[test]
fn opaque_webp_is_the_simple_container_without_exif() {
    let out = run("sunset.jpg", "image/resize,w_120/format,webp");
    assert_eq!(webp_chunks(&out), vec!["VP8 "]);
    let img = image::load_from_memory(&out).expect("decodes");
    assert_eq!(img.width(), 120);
}

#[test]
fn webp_with_alpha_keeps_alph_and_drops_exif() {
    let out = run("gulp.png", "image/resize,w_64/format,webp");
    let chunks = webp_chunks(&out);
    assert!(
        !chunks.iter().any(|c| c == "EXIF" || c == "XMP "),
        "{chunks:?}"
    );
    assert_eq!(chunks[0], "VP8X");
    // The VP8X flags say exactly what the file holds: alpha, no EXIF/XMP.
    assert_eq!(out[20] & 0x1c, 0x10, "flags {:#04x}", out[20]);
    let img = image::load_from_memory(&out).expect("decodes").to_rgba8();
    assert_eq!(img.width(), 64);
    assert!(img.pixels().any(|p| p[3] < 255), "alpha survived");
}
