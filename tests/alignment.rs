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
//! they span moves the bars by 0.2 to 0.55 px. A 4811x3611 JPEG resized to
//! 2400 wide (past the Rust resampler's 4 MP, so libvips' own resize) keeps
//! them within half a pixel.

mod common;

use std::collections::BTreeMap;

use image::{imageops, GrayImage, ImageFormat, RgbImage};
use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::engine::vips;
use pixmirror::process::lang;

/// A test image: soft grey bars on a dark ground, at known places.
struct Scene {
    w: u32,
    h: u32,
    /// The bars' centres, upright: columns of the vertical ones, rows of
    /// the horizontal ones (in pixel-centre coordinates).
    cols: [f64; 3],
    rows: [f64; 3],
    /// Where the profiles across the bars are averaged, between the
    /// crossing bars: source columns for the rows' profile, source rows for
    /// the columns'.
    between: ((f64, f64), (f64, f64)),
}

/// 1203x903: neither side a multiple of 8.
const SMALL: Scene = Scene {
    w: 1203,
    h: 903,
    cols: [153.0, 643.0, 1103.0],
    rows: [123.0, 473.0, 823.0],
    between: ((250.0, 550.0), (250.0, 420.0)),
};

/// 4811x3611: odd sides, so that 1/2 leaves half a pixel; resized to 2400
/// wide (4.3 MP) it goes to libvips' own resize.
const LARGE: Scene = Scene {
    w: 4811,
    h: 3611,
    cols: [620.0, 2420.0, 4220.0],
    rows: [520.0, 1820.0, 3120.0],
    between: ((900.0, 2100.0), (900.0, 1500.0)),
};

/// A bar's profile is a Gaussian this wide (source pixels): smooth over a
/// 1/8 block, so that the block average does not move its centre.
const SIGMA: f64 = 10.0;

impl Scene {
    fn pixels(&self) -> RgbImage {
        let bars = |n: u32, at: &[f64]| -> Vec<f64> {
            (0..n)
                .map(|v| {
                    at.iter()
                        .map(|&c| (-(v as f64 + 0.5 - c).powi(2) / (2.0 * SIGMA * SIGMA)).exp())
                        .sum()
                })
                .collect()
        };
        let (cols, rows) = (bars(self.w, &self.cols), bars(self.h, &self.rows));
        RgbImage::from_fn(self.w, self.h, |x, y| {
            let v = (40.0 + 180.0 * (cols[x as usize] + rows[y as usize])).min(255.0);
            image::Rgb([v.round() as u8; 3])
        })
    }

    /// The output's height for `out_w` (OSS rounds the proportional side).
    fn out_h(&self, out_w: u32) -> u32 {
        (self.h as f64 * out_w as f64 / self.w as f64).round() as u32
    }

    /// Where the output's pixel grid puts source coordinate `c` of an axis
    /// of `side` source and `out` output pixels, for an output `out_w` wide:
    /// one scale for both axes (the smaller), the box centred on the source.
    fn expected(&self, c: f64, side: u32, out: u32, out_w: u32) -> f64 {
        let s = (out_w as f64 / self.w as f64).min(self.out_h(out_w) as f64 / self.h as f64);
        let start = (side as f64 - out as f64 / s) / 2.0;
        (c - start) * s - 0.5
    }
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

/// `img` as a JPEG written by libvips, progressive (libjpeg's scan script)
/// with `interlace`; faster than `jpeg` for large images.
fn vips_jpeg(img: &RgbImage, interlace: bool) -> Vec<u8> {
    vips::init().expect("libvips");
    let (w, h) = img.dimensions();
    let v = vips::from_pixels(img.as_raw(), w, h, 3).expect("image");
    let opts = libvips::ops::JpegsaveBufferOptions {
        q: 95,
        interlace,
        ..Default::default()
    };
    libvips::ops::jpegsave_buffer_with_opts(v.get(), &opts).expect("jpeg")
}

/// The output of `resize,w_{out_w}`, upright, as grey levels.
fn resized(src: &[u8], out_w: u32) -> GrayImage {
    let ops = format!("image/resize,w_{out_w}/format,png");
    let plan = lang::parse_process(&ops, &BTreeMap::new()).expect("plan");
    let opts = Options::from_config(&Default::default());
    let out = pipeline::run(src, &plan, &opts).expect("resize");
    image::load_from_memory(&out.bytes).expect("png").to_luma8()
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
fn misplacement(scene: &Scene, out: &GrayImage) -> Vec<(String, f64)> {
    let (ow, oh) = out.dimensions();
    let (w, h) = (scene.w, scene.h);
    let at = |c: f64, side: u32, out: u32| scene.expected(c, side, out, ow);
    let px = |x: u32, y: u32| out.get_pixel(x, y).0[0] as f64;
    // Profiles across the bars, averaged between the crossing bars; the
    // window holds a bar's profile to 4.5 sigma.
    let ((bx0, bx1), (by0, by1)) = scene.between;
    let (x0, x1) = (at(bx0, w, ow) as u32, at(bx1, w, ow) as u32);
    let (y0, y1) = (at(by0, h, oh) as u32, at(by1, h, oh) as u32);
    let reach = (4.5 * SIGMA * ow as f64 / w as f64).ceil() as i64;
    let rows: Vec<f64> = (0..oh)
        .map(|y| (x0..x1).map(|x| px(x, y)).sum::<f64>() / (x1 - x0) as f64)
        .collect();
    let cols: Vec<f64> = (0..ow)
        .map(|x| (y0..y1).map(|y| px(x, y)).sum::<f64>() / (y1 - y0) as f64)
        .collect();
    let mut off = Vec::new();
    for r in scene.rows {
        let want = at(r, h, oh);
        off.push((format!("row {r}"), centroid(&rows, want, reach) - want));
    }
    for c in scene.cols {
        let want = at(c, w, ow);
        off.push((format!("column {c}"), centroid(&cols, want, reach) - want));
    }
    off
}

/// The bars of `scene` in `src` resized to `out_w` wide are each within
/// `tolerance` output pixels of their place.
fn assert_placed(scene: &Scene, what: &str, src: &[u8], out_w: u32, tolerance: f64) {
    let out = resized(src, out_w);
    assert_eq!(out.dimensions(), (out_w, scene.out_h(out_w)), "{what}");
    for (bar, off) in misplacement(scene, &out) {
        assert!(
            off.abs() < tolerance,
            "{what}, w_{out_w}: the bar at {bar} is {off:+.3} px from its place"
        );
    }
}

fn assert_in_place(what: &str, src: &[u8], out_w: u32) {
    assert_placed(&SMALL, what, src, out_w, 0.05);
}

#[test]
fn jpeg_shrunk_on_load_stays_in_place_in_every_orientation() {
    let img = SMALL.pixels();
    for orientation in 1..=8 {
        let src = common::with_orientation(&jpeg(&stored(&img, orientation)), orientation);
        assert_in_place(&format!("JPEG, orientation {orientation}"), &src, 140);
    }
}

#[test]
fn jpeg_at_every_shrink_stays_in_place() {
    let img = SMALL.pixels();
    let src = jpeg(&img);
    // 1/8 from the copy without the luma AC scans; 1/4 and 1/2.
    assert_in_place("progressive JPEG", &vips_jpeg(&img, true), 140);
    assert_in_place("JPEG at 1/4", &src, 280);
    assert_in_place("JPEG at 1/2", &src, 500);
}

#[test]
fn png_and_webp_shrunk_on_load_stay_in_place() {
    let img = SMALL.pixels();
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

/// An output past the Rust resampler's 4 MP goes to libvips' own resize,
/// which scales by the source's extent and places its origin to the nearest
/// output pixel (4811x3611 at 1/2 is 2405x1805 pixels for 2405.5x1805.5 of
/// source). libvips 8.14's reduce adds its own quarter-pixel shift and
/// rescales to a whole output size: the bars land within half a pixel (0.43
/// at worst, in either orientation), where the decoded pixel count put them
/// up to 0.64 px off.
#[test]
fn libvips_resizes_keep_the_image_within_half_a_pixel() {
    let img = LARGE.pixels();
    for orientation in [1, 3] {
        let jpeg = vips_jpeg(&stored(&img, orientation), false);
        let src = common::with_orientation(&jpeg, orientation);
        let what = format!("a 4811x3611 JPEG, orientation {orientation}");
        assert_placed(&LARGE, &what, &src, 2400, 0.5);
    }
}
