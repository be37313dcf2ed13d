//! Lanczos3 resampling of 8-bit images in Rust, with `fast_image_resize`.
//!
//! Why not `vips_resize`: Debian 12's libvips 8.14 reduces 8-bit images
//! vertically with an Orc program whose mask coefficients have 6 fractional
//! bits. Its rounding noise costs WebP up to 2% more bytes than the same
//! resize made with libvips' own C path or with 8.15+ (which sharp ships),
//! and its C path is 1.5 ms slower per small photo. `fast_image_resize`
//! convolves with 14-bit coefficients in SIMD (SSE4.1/AVX2, NEON) and is
//! faster than both.
//!
//! The image is decoded into memory here (the decoder's shrink-on-load has
//! made it small already); the result is a new image libvips owns.

use std::cell::RefCell;
use std::time::Instant;

use fast_image_resize as fr;

use super::vips::{self, Img};
use crate::error::{Error, Result};

thread_local! {
    /// A resizer keeps its scratch buffers between calls; one per pool thread.
    static RESIZER: RefCell<fr::Resizer> = RefCell::new(fr::Resizer::new());
}

/// Whether [`lanczos3`] takes this image: 8-bit, 1 to 4 bands.
pub fn suitable(img: &Img) -> bool {
    matches!(img.get().get_format(), Ok(libvips::ops::BandFormat::Uchar))
        && (1..=4).contains(&img.bands())
}

/// Resample `img` to `to` with Lanczos3; an alpha band is premultiplied
/// while resampling so that transparent pixels do not bleed their colour.
pub fn lanczos3(img: Img, to: (u32, u32), deadline: Option<Instant>) -> Result<Img> {
    let (w, h, bands) = (img.width(), img.height(), img.bands() as u32);
    let pixel = match bands {
        1 => fr::PixelType::U8,
        2 => fr::PixelType::U8x2,
        3 => fr::PixelType::U8x3,
        4 => fr::PixelType::U8x4,
        n => return Err(Error::Internal(format!("resample: {n} bands"))),
    };
    let fail = |e: &dyn std::fmt::Display| Error::Internal(format!("resample: {e}"));
    let (bw, bh) = source_box((w, h), to);
    // A box larger than the image is centred on it (as libvips' reduce
    // does). The edge pixels repeat into a margin as wide as the kernel
    // reaches, so that the kernel is never cut short at an edge (also as
    // libvips does; `fast_image_resize` alone would cut and renormalise).
    let (mx, my) = (
        (bw - w as f64).max(0.0) / 2.0,
        (bh - h as f64).max(0.0) / 2.0,
    );
    let reach = |extent: f64, out: u32| (3.0 * (extent / out as f64).max(1.0)).ceil() + 1.0;
    let (px, py) = ((mx + reach(bw, to.0)).ceil(), (my + reach(bh, to.1)).ceil());
    let (px, py) = (px as u32, py as u32);
    let (ew, eh) = (w + 2 * px, h + 2 * py);
    let o = libvips::ops::EmbedOptions {
        extend: libvips::ops::Extend::Copy,
        ..Default::default()
    };
    let e =
        libvips::ops::embed_with_opts(img.get(), px as i32, py as i32, ew as i32, eh as i32, &o);
    let img = vips::op("resize", e)?;
    vips::with_pixels(img.get(), deadline, "resize", |pixels| {
        let src = fr::images::ImageRef::new(ew, eh, pixels, pixel).map_err(|e| fail(&e))?;
        let mut dst = fr::images::Image::new(to.0, to.1, pixel);
        let opts = fr::ResizeOptions::new()
            .resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3))
            .crop(px as f64 - mx, py as f64 - my, bw, bh)
            .use_alpha(bands == 2 || bands == 4);
        RESIZER
            .with(|r| r.borrow_mut().resize(&src, &mut dst, &opts))
            .map_err(|e| fail(&e))?;
        vips::from_pixels(dst.buffer(), to.0, to.1, bands)
    })
}

/// The part of a `from`-sized source that maps onto `to`, from the top-left
/// corner. Where `to` keeps the source's proportions up to rounding, both
/// axes take the same scale, the smaller one (as `vips_resize` with one
/// factor does, and sharp); the other axis then reads up to a pixel past
/// the edge. Else (a forced size) each axis has its own scale.
fn source_box(from: (u32, u32), to: (u32, u32)) -> (f64, f64) {
    let (w, h) = (from.0 as f64, from.1 as f64);
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
    /// of `extent` samples centred on the source, edges repeated: one row of
    /// (source index, weight) per output sample, in double precision.
    fn weights(from: u32, to: u32, extent: f64) -> Vec<Vec<(usize, f64)>> {
        let scale = extent / to as f64;
        let start = (from as f64 - extent) / 2.0;
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

    /// A one-band reference resize in double precision.
    fn reference(px: &[u8], from: (u32, u32), to: (u32, u32), extent: (f64, f64)) -> Vec<f64> {
        let (wx, wy) = (
            weights(from.0, to.0, extent.0),
            weights(from.1, to.1, extent.1),
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

    /// Fine detail reduced by 2.51: every output level within 1 of the
    /// double-precision result. (libvips 8.14's vector path for the same
    /// reduction is off by up to 5 levels: its mask has 6 fractional bits.)
    #[test]
    fn matches_double_precision_lanczos3() {
        let f = |x: u32, y: u32, _| ((x * 7919 + y * 104_729) % 251) as u8;
        let (img, px) = image(753, 423, 1, f);
        let to = (300, 169);
        let out = pixels(&lanczos3(img, to, None).expect("resize"));
        let want = reference(&px, (753, 423), to, source_box((753, 423), to));
        assert_eq!(out.len(), want.len());
        let worst = out
            .iter()
            .zip(&want)
            .map(|(&o, &r)| (o as f64 - r.clamp(0.0, 255.0)).abs())
            .fold(0.0, f64::max);
        assert!(worst <= 1.0, "off by {worst}");
    }

    /// One scale for both axes when the target keeps the proportions up to
    /// rounding; the box then overhangs the image by under a pixel of output.
    #[test]
    fn proportional_targets_share_one_scale() {
        let (bw, bh) = source_box((753, 423), (300, 169));
        assert!((bw / 300.0 - bh / 169.0).abs() < 1e-12);
        assert_eq!(bw, 753.0);
        assert!(bh > 423.0 && bh < 424.2 + 1e-9);
        // A forced size keeps a scale per axis, over the whole image.
        assert_eq!(source_box((753, 423), (300, 300)), (753.0, 423.0));
        assert_eq!(source_box((1000, 10), (100, 3)), (1000.0, 10.0));
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
            let out = lanczos3(img, to, None).expect("resize");
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
        let px = pixels(&lanczos3(img, (33, 13), None).expect("resize"));
        let visible: Vec<&[u8]> = px.chunks(4).filter(|p| p[3] > 8).collect();
        assert!(!visible.is_empty());
        assert!(visible.iter().all(|p| p[1] <= 2), "green bled in");
        assert!(px.chunks(4).any(|p| p[3] == 0) && px.chunks(4).any(|p| p[3] == 255));
    }
}
