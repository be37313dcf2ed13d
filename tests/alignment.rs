//! A resize lands the image where it belongs, whatever the decoder did on
//! load. A 1203x903 image (neither side a multiple of 8) with soft grey bars
//! at known places is reduced to 140 wide, which the decoder starts at 1/8:
//! libvips keeps 150x112 whole JPEG blocks of the 150.375x112.875 the source
//! spans there, the PNG shrink keeps a last partial block, WebP scales the
//! whole image onto its pixels. Each bar's centre in the output is measured
//! (the centroid of its profile) and must be within 0.05 px of where the
//! geometry puts it: for a JPEG in each EXIF orientation, a progressive JPEG
//! (decoded from the copy without its luma AC scans), a JPEG at 1/4 and 1/2,
//! a PNG and a WebP. Resizing over the decoded pixels instead of the source
//! they span moves the bars by 0.2 to 0.55 px.

mod common;

use std::collections::BTreeMap;

use image::{imageops, GrayImage, ImageFormat, RgbImage};
use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::engine::vips;
use pixmirror::process::lang;

const W: u32 = 1203;
const H: u32 = 903;
/// The bars' centres, upright: columns of the vertical ones, rows of the
/// horizontal ones (in pixel-centre coordinates).
const COLS: [f64; 3] = [153.0, 643.0, 1103.0];
const ROWS: [f64; 3] = [123.0, 473.0, 823.0];
/// A bar's profile is a Gaussian this wide (source pixels): smooth over a
/// 1/8 block, so that the block average does not move its centre.
const SIGMA: f64 = 10.0;

fn upright() -> RgbImage {
    let bar = |v: u32, at: &[f64]| {
        at.iter()
            .map(|&c| (-(v as f64 + 0.5 - c).powi(2) / (2.0 * SIGMA * SIGMA)).exp())
            .sum::<f64>()
    };
    RgbImage::from_fn(W, H, |x, y| {
        let v = (40.0 + 180.0 * (bar(x, &COLS) + bar(y, &ROWS))).min(255.0);
        image::Rgb([v.round() as u8; 3])
    })
}

/// The stored pixels that EXIF `orientation` turns into `img`.
fn stored(img: &RgbImage, orientation: u16) -> RgbImage {
    match orientation {
        2 => imageops::flip_horizontal(img),
        3 => imageops::rotate180(img),
        4 => imageops::flip_vertical(img),
        5 => imageops::flip_horizontal(&imageops::rotate90(img)),
        6 => imageops::rotate270(img),
        7 => imageops::flip_horizontal(&imageops::rotate270(img)),
        8 => imageops::rotate90(img),
        _ => img.clone(),
    }
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 95)
        .encode_image(img)
        .expect("jpeg");
    out
}

/// The same JPEG made progressive by libvips (libjpeg's scan script).
fn progressive(jpeg: &[u8]) -> Vec<u8> {
    vips::init().expect("libvips");
    let img = libvips::VipsImage::new_from_buffer(jpeg, "").expect("load");
    let opts = libvips::ops::JpegsaveBufferOptions {
        q: 95,
        interlace: true,
        ..Default::default()
    };
    libvips::ops::jpegsave_buffer_with_opts(&img, &opts).expect("save")
}

/// The output of `resize,w_{out_w}`, upright, as grey levels.
fn resized(src: &[u8], out_w: u32) -> GrayImage {
    let ops = format!("image/resize,w_{out_w}/format,png");
    let plan = lang::parse_process(&ops, &BTreeMap::new()).expect("plan");
    let opts = Options::from_config(&Default::default());
    let out = pipeline::run(src, &plan, &opts).expect("resize");
    image::load_from_memory(&out.bytes).expect("png").to_luma8()
}

/// The output's height for `out_w` (OSS rounds the proportional side).
fn out_h(out_w: u32) -> u32 {
    (H as f64 * out_w as f64 / W as f64).round() as u32
}

/// Where the output's pixel grid puts source coordinate `c` of an axis of
/// `side` source and `out` output pixels, for an output `out_w` wide: one
/// scale for both axes (the smaller), the box centred on the source.
fn expected(c: f64, side: u32, out: u32, out_w: u32) -> f64 {
    let s = (out_w as f64 / W as f64).min(out_h(out_w) as f64 / H as f64);
    let start = (side as f64 - out as f64 / s) / 2.0;
    (c - start) * s - 0.5
}

/// The centroid, in output pixels, of the bar near `guess` in `profile`:
/// over `reach` pixels each side, above the background found just outside.
fn centroid(profile: &[f64], guess: f64, reach: i64) -> f64 {
    let g = guess.round() as i64;
    let at = |i: i64| profile[i as usize];
    let bg = (at(g - reach - 2) + at(g - reach - 1) + at(g + reach + 1) + at(g + reach + 2)) / 4.0;
    let (mut sum, mut weight) = (0.0, 0.0);
    for i in g - reach..=g + reach {
        sum += i as f64 * (at(i) - bg);
        weight += at(i) - bg;
    }
    sum / weight
}

/// Each bar's measured centre minus where it belongs, in output pixels.
fn misplacement(out: &GrayImage) -> Vec<(String, f64)> {
    let (ow, oh) = out.dimensions();
    let at = |c: f64, side: u32, out: u32| expected(c, side, out, ow);
    let px = |x: u32, y: u32| out.get_pixel(x, y).0[0] as f64;
    // Profiles across the bars, averaged between the crossing bars; the
    // window holds a bar's profile to 4.5 sigma.
    let (x0, x1) = (at(250.0, W, ow) as u32, at(550.0, W, ow) as u32);
    let (y0, y1) = (at(250.0, H, oh) as u32, at(420.0, H, oh) as u32);
    let reach = (4.5 * SIGMA * ow as f64 / W as f64).ceil() as i64;
    let rows: Vec<f64> = (0..oh)
        .map(|y| (x0..x1).map(|x| px(x, y)).sum::<f64>() / (x1 - x0) as f64)
        .collect();
    let cols: Vec<f64> = (0..ow)
        .map(|x| (y0..y1).map(|y| px(x, y)).sum::<f64>() / (y1 - y0) as f64)
        .collect();
    let mut off = Vec::new();
    for r in ROWS {
        let want = at(r, H, oh);
        off.push((format!("row {r}"), centroid(&rows, want, reach) - want));
    }
    for c in COLS {
        let want = at(c, W, ow);
        off.push((format!("column {c}"), centroid(&cols, want, reach) - want));
    }
    off
}

fn assert_in_place(what: &str, src: &[u8], out_w: u32) {
    let out = resized(src, out_w);
    assert_eq!(out.dimensions(), (out_w, out_h(out_w)), "{what}");
    for (bar, off) in misplacement(&out) {
        assert!(
            off.abs() < 0.05,
            "{what}, w_{out_w}: the bar at {bar} is {off:+.3} px from its place"
        );
    }
}

#[test]
fn jpeg_shrunk_on_load_stays_in_place_in_every_orientation() {
    let img = upright();
    for orientation in 1..=8 {
        let src = common::with_orientation(&jpeg(&stored(&img, orientation)), orientation);
        assert_in_place(&format!("JPEG, orientation {orientation}"), &src, 140);
    }
}

#[test]
fn jpeg_at_every_shrink_stays_in_place() {
    let src = jpeg(&upright());
    // 1/8 from the copy without the luma AC scans; 1/4 and 1/2.
    assert_in_place("progressive JPEG", &progressive(&src), 140);
    assert_in_place("JPEG at 1/4", &src, 280);
    assert_in_place("JPEG at 1/2", &src, 500);
}

#[test]
fn png_and_webp_shrunk_on_load_stay_in_place() {
    let img = upright();
    assert_in_place("PNG", &common::encode(&img, ImageFormat::Png), 140);
    assert_in_place("WebP", &common::encode(&img, ImageFormat::WebP), 140);
}

/// A JPEG whose 1/8 decode is already the target's size is served as that
/// decode when the source spans it to within half a pixel (1600x1203 at
/// 1/8: 200x150 pixels for 200x150.375), and resampled when it does not
/// (1607x1207: 200x150 pixels for 200.875x150.875).
#[test]
fn a_decode_at_the_target_size_is_kept_only_when_it_fits() {
    vips::init().expect("libvips");
    let pattern = |w, h| {
        RgbImage::from_fn(w, h, |x, y| {
            let v = ((x * 7919 + y * 104_729) % 251) as u8;
            image::Rgb([v, v / 2, 255 - v])
        })
    };
    let decoded_at_eighth = |src: &[u8]| {
        let img = libvips::VipsImage::new_from_buffer(src, "shrink=8").expect("load");
        let raw = vips::write_to_memory(&img).expect("pixels");
        let (w, h) = (img.get_width() as u32, img.get_height() as u32);
        let rgb = RgbImage::from_raw(w, h, raw).expect("RGB");
        image::DynamicImage::ImageRgb8(rgb).to_luma8()
    };
    let fits = jpeg(&pattern(1600, 1203));
    let out = resized(&fits, 200);
    assert_eq!(out.dimensions(), (200, 150));
    assert!(
        out == decoded_at_eighth(&fits),
        "a fitting decode was resampled"
    );
    let off = jpeg(&pattern(1607, 1207));
    let out = resized(&off, 200);
    assert_eq!(out.dimensions(), (200, 150));
    assert!(
        out != decoded_at_eighth(&off),
        "a decode 0.875 px short was kept"
    );
}
