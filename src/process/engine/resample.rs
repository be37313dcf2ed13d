//! Lanczos3 resampling of 8-bit images in Rust, with `fast_image_resize`.
//!
//! Why not `vips_resize`: Debian 12's libvips 8.14 reduces 8-bit images
//! vertically with an Orc program whose mask coefficients have 6 fractional
//! bits. Its rounding noise cost WebP up to 2% more bytes than the same
//! resize made with libvips' own C path or with 8.15+ (which sharp ships),
//! and its C path is about 1 ms slower per small photo. `fast_image_resize`
//! convolves with 14-bit coefficients in SIMD (SSE4.1/AVX2, NEON) and is
//! faster than both.
//!
//! The image is decoded into memory here (the decoder's shrink-on-load has
//! made it small already); the result is a new image libvips owns.

use std::time::Instant;

use fast_image_resize as fr;

use super::vips::{self, Img};
use crate::error::{Error, Result};

/// Where a resample reads: a box of the source (`size`, from `origin` in
/// the image with its margin) and the margin of repeated edge pixels around
/// the image (`margin` on each side).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Layout {
    to: (u32, u32),
    size: (f64, f64),
    origin: (f64, f64),
    margin: (u32, u32),
}

/// Where the whole source lies in a decoded image, in the decoded image's
/// pixels: the source's `of` pixels span `size` from `origin`. A decode
/// shrunk on load by `n` covers `w/n` × `h/n` from its top-left corner,
/// which is not its pixel count: libvips keeps only the whole blocks of
/// libjpeg's scaled decode (a 1155-row JPEG at 1/4 is 288 rows for 288.75),
/// the PNG block average keeps a last partial block. WebP's scaled decode
/// maps the whole source onto its pixels, each side rounded on its own. A
/// resize over the pixel count would stretch the difference over the
/// image: a shift of up to most of a pixel at its far side.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Extent {
    pub origin: (f64, f64),
    pub size: (f64, f64),
    pub of: (u32, u32),
}

impl Extent {
    /// All of a `w`×`h` image, the source itself.
    pub fn whole((w, h): (u32, u32)) -> Extent {
        Extent::scaled((w, h), (w, h))
    }

    /// A `from`-sized source decoded at 1/`n` in whole blocks, as stored.
    pub fn shrunk(from: (u32, u32), n: u32) -> Extent {
        let n = n.max(1) as f64;
        Extent {
            origin: (0.0, 0.0),
            size: (from.0 as f64 / n, from.1 as f64 / n),
            of: from,
        }
    }

    /// A `from`-sized source scaled whole onto `to` pixels.
    pub fn scaled(from: (u32, u32), to: (u32, u32)) -> Extent {
        Extent {
            origin: (0.0, 0.0),
            size: (to.0 as f64, to.1 as f64),
            of: from,
        }
    }

    /// The extent after EXIF `orientation` turns a decoded image of
    /// `stored` size upright (as `vips_autorot` does).
    pub fn oriented(self, orientation: i32, stored: (u32, u32)) -> Extent {
        let (w, h) = (stored.0 as f64, stored.1 as f64);
        let ((x, y), (ew, eh)) = (self.origin, self.size);
        // The far edge's distance from the opposite side: where the box
        // starts once that axis is mirrored.
        let (fx, fy) = (w - (x + ew), h - (y + eh));
        let (origin, size) = match orientation {
            2 => ((fx, y), (ew, eh)),
            3 => ((fx, fy), (ew, eh)),
            4 => ((x, fy), (ew, eh)),
            5 => ((y, x), (eh, ew)),
            6 => ((fy, x), (eh, ew)),
            7 => ((fy, fx), (eh, ew)),
            8 => ((y, fx), (eh, ew)),
            _ => ((x, y), (ew, eh)),
        };
        let of = match orientation {
            5..=8 => (self.of.1, self.of.0),
            _ => self.of,
        };
        Extent { origin, size, of }
    }

    /// How far, in pixels, the source's edges are from the edges of a
    /// `dims`-sized image (0: it spans the image exactly).
    pub fn misfit(&self, dims: (u32, u32)) -> f64 {
        let (w, h) = (dims.0 as f64, dims.1 as f64);
        let ((x, y), (ew, eh)) = (self.origin, self.size);
        [x, y, x + ew - w, y + eh - h]
            .iter()
            .fold(0.0, |m, d| f64::max(m, d.abs()))
    }
}

/// How [`lanczos3`] resamples the `source` of `img` to `to`; `None` when it
/// does not take it: not 8-bit with 1 to 4 bands, over [`MAX_PIXELS`], or a
/// margin that would more than double the pixels (a reduction by more than
/// about a sixth of the image's side, which libvips' box shrink handles in
/// bounded memory).
pub fn layout(img: &Img, to: (u32, u32), source: Extent) -> Option<Layout> {
    let uchar = matches!(img.get().get_format(), Ok(libvips::ops::BandFormat::Uchar));
    if !uchar || !(1..=4).contains(&img.bands()) {
        return None;
    }
    let from = (img.width(), img.height());
    let l = layout_for(from, to, source);
    // In f64: a steep reduction's margin saturates u32.
    let padded =
        (from.0 as f64 + 2.0 * l.margin.0 as f64) * (from.1 as f64 + 2.0 * l.margin.1 as f64);
    let small = padded <= MAX_PIXELS && to.0 as f64 * to.1 as f64 <= MAX_PIXELS;
    (small && padded <= 2.0 * from.0 as f64 * from.1 as f64).then_some(l)
}

/// The most pixels the resampler reads out (image and margin) or writes. It
/// holds both whole, where libvips streams: bigger resizes (large outputs,
/// sources without shrink-on-load) stay in libvips, so that their memory is
/// what it was (`benches/memory`: 1.6 GB peak under a 1 GiB budget when
/// every size came here). Web-sized outputs after shrink-on-load fit.
const MAX_PIXELS: f64 = 4.0e6;

/// The layout from the sizes alone, whatever its margin.
fn layout_for((w, h): (u32, u32), to: (u32, u32), source: Extent) -> Layout {
    // The box is decided in the source's pixels, then taken to the image's.
    let of = (source.of.0.max(1) as f64, source.of.1.max(1) as f64);
    let boxed = source_box(of, to);
    let size = (
        boxed.0 * source.size.0 / of.0,
        boxed.1 * source.size.1 / of.1,
    );
    // The box is centred on the source's extent (a proportional box
    // overhangs it by under a pixel of output on one axis, as libvips'
    // reduce centres it). The edge pixels repeat into a margin as wide as
    // the box overhangs the image plus the kernel's reach, so that the
    // kernel is never cut short at an edge (also as libvips does;
    // `fast_image_resize` alone would cut and renormalise).
    let start = |o: f64, extent: f64, boxed: f64| o + (extent - boxed) / 2.0;
    let (sx, sy) = (
        start(source.origin.0, source.size.0, size.0),
        start(source.origin.1, source.size.1, size.1),
    );
    let over =
        |start: f64, boxed: f64, side: u32| (-start).max(start + boxed - side as f64).max(0.0);
    let reach = |boxed: f64, out: u32| (3.0 * (boxed / out as f64).max(1.0)).ceil() + 1.0;
    let (mx, my) = (
        (over(sx, size.0, w) + reach(size.0, to.0)).ceil(),
        (over(sy, size.1, h) + reach(size.1, to.1)).ceil(),
    );
    Layout {
        to,
        size,
        origin: (mx + sx, my + sy),
        margin: (mx as u32, my as u32),
    }
}

/// Resample `img` by `l` with Lanczos3; an alpha band is premultiplied
/// while resampling so that transparent pixels do not bleed their colour.
pub fn lanczos3(img: Img, l: &Layout, deadline: Option<Instant>) -> Result<Img> {
    let bands = img.bands() as u32;
    let pixel = match bands {
        1 => fr::PixelType::U8,
        2 => fr::PixelType::U8x2,
        3 => fr::PixelType::U8x3,
        4 => fr::PixelType::U8x4,
        n => return Err(Error::Internal(format!("resample: {n} bands"))),
    };
    let fail = |e: &dyn std::fmt::Display| Error::Internal(format!("resample: {e}"));
    let (ew, eh) = (img.width() + 2 * l.margin.0, img.height() + 2 * l.margin.1);
    let o = libvips::ops::EmbedOptions {
        extend: libvips::ops::Extend::Copy,
        ..Default::default()
    };
    let (mx, my) = (l.margin.0 as i32, l.margin.1 as i32);
    let e = libvips::ops::embed_with_opts(img.get(), mx, my, ew as i32, eh as i32, &o);
    let img = vips::image_of("resize", e)?;
    vips::with_pixels(img.get(), deadline, "resize", |pixels| {
        let src = fr::images::ImageRef::new(ew, eh, pixels, pixel).map_err(|e| fail(&e))?;
        let mut dst = fr::images::Image::new(l.to.0, l.to.1, pixel);
        let opts = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3))
            .crop(l.origin.0, l.origin.1, l.size.0, l.size.1)
            .use_alpha(bands == 2 || bands == 4);
        // A resizer per call: its scratch buffers go with it, rather than
        // staying with whichever blocking thread ran it.
        fr::Resizer::new()
            .resize(&src, &mut dst, &opts)
            .map_err(|e| fail(&e))?;
        vips::from_pixels(dst.buffer(), l.to.0, l.to.1, bands)
    })
}

/// The size of the part of a `from`-sized source that maps onto `to` (the
/// box is centred on the source, see [`layout_for`]). Where `to` keeps the source's proportions up to rounding, both
/// axes take the same scale, the smaller one (as `vips_resize` with one
/// factor does, and sharp); the other axis then reads up to a pixel past
/// the edge. Else (a forced size) each axis has its own scale.
fn source_box((w, h): (f64, f64), to: (u32, u32)) -> (f64, f64) {
    let s = (to.0 as f64 / w).min(to.1 as f64 / h);
    let proportional = (w * s - to.0 as f64).abs() < 1.0 && (h * s - to.1 as f64).abs() < 1.0;
    if proportional {
        (to.0 as f64 / s, to.1 as f64 / s)
    } else {
        (w, h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(w: u32, h: u32, bands: u32, f: impl Fn(u32, u32, u32) -> u8) -> (Img, Vec<u8>) {
        vips::init().expect("libvips");
        let mut px = Vec::with_capacity((w * h * bands) as usize);
        for y in 0..h {
            for x in 0..w {
                for b in 0..bands {
                    px.push(f(x, y, b));
                }
            }
        }
        (vips::from_pixels(&px, w, h, bands).expect("image"), px)
    }

    /// `lanczos3` with its layout, whatever the margin.
    fn resample(img: Img, to: (u32, u32)) -> Img {
        let dims = (img.width(), img.height());
        let l = layout_for(dims, to, Extent::whole(dims));
        lanczos3(img, &l, None).expect("resize")
    }

    fn pixels(img: &Img) -> Vec<u8> {
        vips::write_to_memory(img.get()).expect("pixels")
    }

    fn lanczos(x: f64) -> f64 {
        let sinc = |v: f64| {
            if v == 0.0 {
                1.0
            } else {
                (std::f64::consts::PI * v).sin() / (std::f64::consts::PI * v)
            }
        };
        if x.abs() < 3.0 {
            sinc(x) * sinc(x / 3.0)
        } else {
            0.0
        }
    }

    /// Weights of a Lanczos3 reduction of `from` samples to `to` over a box
    /// of `extent` samples from `start`, edges repeated: one row of (source
    /// index, weight) per output sample, in double precision.
    fn weights(from: u32, to: u32, extent: f64, start: f64) -> Vec<Vec<(usize, f64)>> {
        let scale = extent / to as f64;
        let support = 3.0 * scale.max(1.0);
        (0..to)
            .map(|o| {
                let centre = start + (o as f64 + 0.5) * scale;
                let lo = (centre - support).floor() as i64;
                let hi = (centre + support).ceil() as i64;
                let mut row: Vec<(usize, f64)> = (lo..=hi)
                    .map(|i| {
                        let w = lanczos((i as f64 + 0.5 - centre) / scale.max(1.0));
                        (i.clamp(0, from as i64 - 1) as usize, w)
                    })
                    .collect();
                let sum: f64 = row.iter().map(|r| r.1).sum();
                row.iter_mut().for_each(|r| r.1 /= sum);
                row
            })
            .collect()
    }

    /// A one-band reference resize in double precision over the box of
    /// `extent` from `start`.
    fn reference_over(
        px: &[u8],
        from: (u32, u32),
        to: (u32, u32),
        extent: (f64, f64),
        start: (f64, f64),
    ) -> Vec<f64> {
        let (wx, wy) = (
            weights(from.0, to.0, extent.0, start.0),
            weights(from.1, to.1, extent.1, start.1),
        );
        let mut out = Vec::new();
        for row in &wy {
            for col in &wx {
                let mut v = 0.0;
                for &(y, a) in row {
                    for &(x, b) in col {
                        v += a * b * px[y * from.0 as usize + x] as f64;
                    }
                }
                out.push(v);
            }
        }
        out
    }

    /// [`reference_over`] a box centred on the image.
    fn reference(px: &[u8], from: (u32, u32), to: (u32, u32), extent: (f64, f64)) -> Vec<f64> {
        let start = (
            (from.0 as f64 - extent.0) / 2.0,
            (from.1 as f64 - extent.1) / 2.0,
        );
        reference_over(px, from, to, extent, start)
    }

    /// Fine detail reduced by 2.51: every output level within 1 of the
    /// double-precision result. (libvips 8.14's vector path for the same
    /// reduction is off by up to 5 levels: its mask has 6 fractional bits.)
    #[test]
    fn matches_double_precision_lanczos3() {
        let f = |x: u32, y: u32, _| ((x * 7919 + y * 104_729) % 251) as u8;
        let (img, px) = image(753, 423, 1, f);
        let to = (300, 169);
        let out = pixels(&resample(img, to));
        let want = reference(&px, (753, 423), to, source_box((753.0, 423.0), to));
        assert_eq!(out.len(), want.len());
        let worst = out
            .iter()
            .zip(&want)
            .map(|(&o, &r)| (o as f64 - r.clamp(0.0, 255.0)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "off by {worst}");
    }

    /// Kleiber's 6028x3391 at 1/8 is 753x423 decoded pixels for 753.5 x
    /// 423.875 of source: the box is the source's, from the top-left corner
    /// (not the pixels', centred), so nothing shifts.
    #[test]
    fn a_shrunk_decode_is_resampled_over_the_source() {
        let f = |x: u32, y: u32, _| ((x * 7919 + y * 104_729) % 251) as u8;
        let (img, px) = image(753, 423, 1, f);
        let (to, source) = ((300, 169), Extent::shrunk((6028, 3391), 8));
        let l = layout_for((753, 423), to, source);
        let out = pixels(&lanczos3(img, &l, None).expect("resize"));
        let boxed = source_box((6028.0, 3391.0), to);
        let boxed = (boxed.0 / 8.0, boxed.1 / 8.0);
        let start = (
            (source.size.0 - boxed.0) / 2.0,
            (source.size.1 - boxed.1) / 2.0,
        );
        let want = reference_over(&px, (753, 423), to, boxed, start);
        let off: Vec<f64> = out
            .iter()
            .zip(&want)
            .map(|(&o, &r)| (o as f64 - r.clamp(0.0, 255.0)).abs())
            .collect();
        let worst = off.iter().copied().fold(0.0, f64::max);
        let mean = off.iter().sum::<f64>() / off.len() as f64;
        // 14-bit coefficients: the rounding of a few sums passes 1 level.
        assert!(
            worst <= 1.5 && mean < 0.3,
            "off by {worst} at most, {mean} on average"
        );
    }

    /// The extent follows the image upright: a decode of 10x4 pixels for
    /// 10.5x4.75 of a 21x19 source, turned by each EXIF orientation.
    #[test]
    fn extents_turn_with_the_image() {
        let e = Extent::shrunk((21, 19), 2);
        assert_eq!(e.size, (10.5, 9.5));
        let e = Extent {
            origin: (0.0, 0.0),
            size: (10.5, 4.75),
            of: (21, 19),
        };
        let turned = |o| {
            let t = e.oriented(o, (10, 4));
            assert_eq!(t.of, if o >= 5 { (19, 21) } else { (21, 19) });
            (t.origin, t.size)
        };
        assert_eq!(turned(1), ((0.0, 0.0), (10.5, 4.75)));
        assert_eq!(turned(2), ((-0.5, 0.0), (10.5, 4.75)));
        assert_eq!(turned(3), ((-0.5, -0.75), (10.5, 4.75)));
        assert_eq!(turned(4), ((0.0, -0.75), (10.5, 4.75)));
        assert_eq!(turned(5), ((0.0, 0.0), (4.75, 10.5)));
        assert_eq!(turned(6), ((-0.75, 0.0), (4.75, 10.5)));
        assert_eq!(turned(7), ((-0.75, -0.5), (4.75, 10.5)));
        assert_eq!(turned(8), ((0.0, -0.5), (4.75, 10.5)));
        assert_eq!(Extent::whole((10, 4)).misfit((10, 4)), 0.0);
        assert_eq!(e.misfit((10, 4)), 0.75);
        assert_eq!(e.oriented(3, (10, 4)).misfit((10, 4)), 0.75);
    }

    /// One scale for both axes when the target keeps the proportions up to
    /// rounding; the box then overhangs the image by under a pixel of output.
    #[test]
    fn proportional_targets_share_one_scale() {
        let (bw, bh) = source_box((753.0, 423.0), (300, 169));
        assert!((bw / 300.0 - bh / 169.0).abs() < 1e-12);
        assert_eq!(bw, 753.0);
        assert!(bh > 423.0 && bh < 424.2 + 1e-9);
        // A forced size keeps a scale per axis, over the whole image.
        assert_eq!(source_box((753.0, 423.0), (300, 300)), (753.0, 423.0));
        assert_eq!(source_box((1000.0, 10.0), (100, 3)), (1000.0, 10.0));
    }

    #[test]
    fn exact_sizes_and_flat_colour() {
        for (from, to) in [
            ((753, 423), (300, 169)),
            ((10, 10), (1, 1)),
            ((7, 5), (30, 21)),
            ((640, 480), (639, 1)),
        ] {
            let (img, _) = image(from.0, from.1, 3, |_, _, b| [200, 100, 50][b as usize]);
            let out = resample(img, to);
            assert_eq!((out.width(), out.height(), out.bands()), (to.0, to.1, 3));
            let px = pixels(&out);
            assert!(
                px.chunks(3).all(|p| p == [200, 100, 50]),
                "{from:?} -> {to:?}"
            );
            assert!(matches!(
                out.get().get_interpretation(),
                Ok(libvips::ops::Interpretation::Srgb)
            ));
        }
    }

    /// Transparent pixels lend no colour: the left half is transparent green,
    /// the right opaque red; no visible output pixel turns green.
    #[test]
    fn alpha_is_premultiplied() {
        let f = |x: u32, _, b: u32| match (x < 50, b) {
            (true, 1) => 255,
            (true, _) => 0,
            (false, 0) | (false, 3) => 255,
            (false, _) => 0,
        };
        let (img, _) = image(100, 40, 4, f);
        let px = pixels(&resample(img, (33, 13)));
        let visible: Vec<&[u8]> = px.chunks(4).filter(|p| p[3] > 8).collect();
        assert!(!visible.is_empty());
        assert!(visible.iter().all(|p| p[1] <= 2), "green bled in");
        assert!(px.chunks(4).any(|p| p[3] == 0) && px.chunks(4).any(|p| p[3] == 255));
    }

    /// A steep reduction would need a margin of 3 × the factor on each side
    /// (once 20 GB for 2 px out of 8320x96, found by the pipeline fuzzer):
    /// libvips takes it. An ordinary one has a margin of a few pixels.
    #[test]
    fn steep_reductions_are_left_to_libvips() {
        vips::init().expect("libvips");
        let wide = Img::new(libvips::ops::black(8320, 96).expect("black"));
        let whole = |img: &Img| Extent::whole((img.width(), img.height()));
        assert_eq!(layout(&wide, (2, 1), whole(&wide)), None);
        assert_eq!(layout(&wide, (130, 2), whole(&wide)), None);
        // Large in or out: libvips streams it.
        let big = Img::new(libvips::ops::black(3000, 2000).expect("black"));
        assert_eq!(layout(&big, (2000, 1333), whole(&big)), None);
        assert_eq!(layout(&big, (4500, 3000), whole(&big)), None);
        let photo = Img::new(libvips::ops::black(753, 423).expect("black"));
        let l = layout(&photo, (300, 169), whole(&photo)).expect("layout");
        assert!(l.margin.0 <= 10 && l.margin.1 <= 10, "{l:?}");
        let steep = crate::process::lang::parse_process(
            "image/resize,l_2",
            &std::collections::BTreeMap::new(),
        )
        .expect("plan");
        let opts = crate::process::engine::pipeline::Options::from_config(
            &crate::config::ProcessConfig::default(),
        );
        let png = vips::write_to_buffer(wide.get(), ".png").expect("png");
        let out = crate::process::engine::pipeline::run(&png, &steep, &opts).expect("run");
        let img = libvips::VipsImage::new_from_buffer(&out.bytes, "").expect("decode");
        assert_eq!((img.get_width(), img.get_height()), (2, 1));
    }

    /// A margin past u32 (a reduction by a factor of billions) is refused,
    /// not wrapped into a small one.
    #[test]
    fn huge_margins_do_not_wrap() {
        vips::init().expect("libvips");
        let img = Img::new(libvips::ops::black(2_000_000, 1).expect("black"));
        let l = layout_for(
            (2_000_000_000, 1),
            (1, 1),
            Extent::whole((2_000_000_000, 1)),
        );
        assert_eq!(l.margin.0, u32::MAX);
        assert_eq!(
            layout(&img, (1, 1), Extent::whole((img.width(), img.height()))),
            None
        );
    }
}
