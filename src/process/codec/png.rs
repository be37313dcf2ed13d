//! PNG containers: which colour chunk comes first ([`colour_chunk`]), and
//! shrink-on-load ([`decode_shrunk`]).
//!
//! Shrink-on-load for PNG. libvips has none for PNG (and Debian's build decodes
//! with libpng, about 4x slower than the `png` crate here), so a large PNG that
//! is made small is decoded row by row in Rust and averaged by `shrink`×`shrink`
//! blocks on the way (alpha-weighted, so transparent pixels add no colour).
//! Only the shrunk pixels are ever held; libvips does the final Lanczos resize.
//!
//! Used only when it gives the same result as libvips' own loader would: not
//! for interlaced files (rows arrive in passes) nor for files with an embedded
//! ICC profile (the profile would not reach libvips). Pure: no libvips here.

use std::time::Instant;

use crate::error::{Error, Result};

/// The colour chunk before the image data: `iCCP` (an embedded profile,
/// compressed) or `sRGB`; `None` when there is neither.
pub fn colour_chunk(b: &[u8]) -> Option<&'static [u8; 4]> {
    let be32 = |at: usize| -> Option<usize> {
        Some(u32::from_be_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?) as usize)
    };
    let mut at = 8;
    while let (Some(len), Some(kind)) = (be32(at), b.get(at + 4..at + 8)) {
        match kind {
            b"iCCP" => return Some(b"iCCP"),
            b"sRGB" => return Some(b"sRGB"),
            b"IDAT" | b"IEND" => return None,
            _ => {}
        }
        at = at.saturating_add(12).saturating_add(len);
    }
    None
}

/// Decoded, shrunk 8-bit pixels, rows top to bottom, `bands` bytes a pixel.
pub struct Shrunk {
    pub pixels: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub bands: u32,
}

/// Should this PNG go through [`decode_shrunk`]? (Not interlaced.)
pub fn suitable(src: &[u8]) -> bool {
    // IHDR is the first chunk: width, height, depth, colour type, compression,
    // filter, interlace at offsets 16..29.
    src.len() > 28 && &src[12..16] == b"IHDR" && src[28] == 0
}

/// Decode `src` and average blocks of `shrink`×`shrink` pixels. The output is
/// `ceil(width / shrink)` × `ceil(height / shrink)`; edge blocks average what
/// they have. Past `deadline` (checked every output row) it stops: 504 Timeout.
pub fn decode_shrunk(src: &[u8], shrink: u32, deadline: Option<Instant>) -> Result<Shrunk> {
    let bad = |e: png::DecodingError| Error::unprocessable(format!("load: png: {e}"));
    let mut dec = png::Decoder::new(std::io::Cursor::new(src));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().map_err(bad)?;
    let (w, h) = (reader.info().width, reader.info().height);
    let bands = match reader.output_color_type().0 {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(Error::unprocessable("load: png: palette")),
    };
    let shrink = shrink.max(1);
    let (ow, oh) = (w.div_ceil(shrink), h.div_ceil(shrink));
    let mut acc = Accumulator::new(ow as usize, bands as usize, shrink as usize);
    let mut pixels = Vec::with_capacity(ow as usize * oh as usize * bands as usize);
    let mut y = 0;
    while let Some(row) = reader.next_row().map_err(bad)? {
        acc.add_row(row.data());
        y += 1;
        if y % shrink == 0 || y == h {
            acc.emit(&mut pixels);
            Error::check_deadline(deadline)?;
        }
    }
    if y != h {
        return Err(Error::unprocessable("load: png: the image data ends early"));
    }
    Ok(Shrunk {
        pixels,
        width: ow,
        height: oh,
        bands,
    })
}

/// Sums of one output row being built: per output pixel, the alpha-weighted
/// colour sums, the alpha sum and the number of input pixels.
struct Accumulator {
    bands: usize,
    shrink: usize,
    sums: Vec<u64>,
    counts: Vec<u32>,
}

impl Accumulator {
    fn new(width: usize, bands: usize, shrink: usize) -> Accumulator {
        Accumulator {
            bands,
            shrink,
            sums: vec![0; width * bands],
            counts: vec![0; width],
        }
    }

    fn has_alpha(&self) -> bool {
        self.bands == 2 || self.bands == 4
    }

    /// Add one decoded row: each output pixel's block of `shrink` input
    /// pixels at once (no division per pixel; the alpha branch per block).
    fn add_row(&mut self, row: &[u8]) {
        let b = self.bands;
        let alpha = self.has_alpha();
        let blocks = row.chunks(self.shrink * b);
        for ((s, n), block) in self
            .sums
            .chunks_exact_mut(b)
            .zip(&mut self.counts)
            .zip(blocks)
        {
            let pixels = block.chunks_exact(b);
            *n += pixels.len() as u32;
            if alpha {
                for px in pixels {
                    let a = px[b - 1] as u64;
                    for c in 0..b - 1 {
                        s[c] += px[c] as u64 * a;
                    }
                    s[b - 1] += a;
                }
            } else {
                for px in pixels {
                    for c in 0..b {
                        s[c] += px[c] as u64;
                    }
                }
            }
        }
    }

    /// Append the averaged row to `out` and start the next one.
    fn emit(&mut self, out: &mut Vec<u8>) {
        let b = self.bands;
        let alpha = self.has_alpha();
        for (o, n) in self.counts.iter_mut().enumerate() {
            let s = &mut self.sums[o * b..o * b + b];
            let n64 = (*n).max(1) as u64;
            if alpha {
                let a = s[b - 1];
                for c in s.iter().take(b - 1) {
                    out.push((c + a / 2).checked_div(a).unwrap_or(0) as u8);
                }
                out.push(((a + n64 / 2) / n64) as u8);
            } else {
                for c in s.iter() {
                    out.push(((c + n64 / 2) / n64) as u8);
                }
            }
            s.fill(0);
            *n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u32, h: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut e = png::Encoder::new(&mut out, w, h);
            e.set_color(color);
            e.set_depth(png::BitDepth::Eight);
            let mut wr = e.write_header().expect("header");
            wr.write_image_data(data).expect("data");
        }
        out
    }

    #[test]
    fn averages_blocks_and_weights_colour_by_alpha() {
        // 3x2 RGBA: left 2x2 block = opaque red, transparent green, opaque red,
        // transparent green → red at half opacity; right column = blue (partial block).
        let px = [
            [255, 0, 0, 255],
            [0, 255, 0, 0],
            [0, 0, 255, 255],
            [255, 0, 0, 255],
            [0, 255, 0, 0],
            [0, 0, 255, 255],
        ];
        let data: Vec<u8> = px.iter().flatten().copied().collect();
        let png = encode(3, 2, png::ColorType::Rgba, &data);
        assert!(suitable(&png));
        let s = decode_shrunk(&png, 2, None).expect("decode");
        assert_eq!((s.width, s.height, s.bands), (2, 1, 4));
        assert_eq!(&s.pixels[0..4], &[255, 0, 0, 128]);
        assert_eq!(&s.pixels[4..8], &[0, 0, 255, 255]);
    }

    #[test]
    fn grey_and_odd_sizes() {
        let data: Vec<u8> = (0..25).map(|i| (i * 10) as u8).collect();
        let png = encode(5, 5, png::ColorType::Grayscale, &data);
        let s = decode_shrunk(&png, 2, None).expect("decode");
        assert_eq!((s.width, s.height, s.bands), (3, 3, 1));
        // First block: 0, 10, 50, 60 → 30; last pixel alone: 240.
        assert_eq!(s.pixels[0], 30);
        assert_eq!(s.pixels[8], 240);
    }

    #[test]
    fn a_passed_deadline_stops_the_decode() {
        let data = vec![7u8; 64 * 64 * 3];
        let png = encode(64, 64, png::ColorType::Rgb, &data);
        let past = Some(Instant::now() - std::time::Duration::from_millis(1));
        let e = decode_shrunk(&png, 2, past).err().expect("stopped");
        assert_eq!(e.code(), "Timeout");
        assert!(decode_shrunk(&png, 2, None).is_ok());
    }

    #[test]
    fn interlaced_and_broken_files_are_refused() {
        let data = vec![7u8; 4 * 4 * 3];
        let ok = encode(4, 4, png::ColorType::Rgb, &data);
        assert!(suitable(&ok));
        let mut interlaced = ok.clone();
        interlaced[28] = 1; // IHDR interlace method: Adam7
        assert!(!suitable(&interlaced));
        for n in [0, 10, 33, ok.len() - 20] {
            assert!(decode_shrunk(&ok[..n], 2, None).is_err(), "{n} bytes");
        }
    }
}
