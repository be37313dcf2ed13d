//! JPEG containers, read without decoding: one walk over the header
//! segments before the first scan ([`segments`]), from which the embedded
//! ICC profile and the quality the file was saved at are read.
//!
//! The quality is estimated from the luminance quantisation table (OSS
//! `quality,q_` is relative to it: a source at 80 with `q_90` is saved at 72;
//! `Q_` never raises it). Encoders derived from the IJG library (libjpeg,
//! libjpeg-turbo, mozjpeg, Photoshop's "save for web" is close) scale the
//! standard table of the JPEG specification (Annex K) by `5000 / q` below 50
//! and `200 - 2q` from 50 up. The estimate is the quality whose scaled table
//! is nearest to the file's.

use std::ops::Range;

/// One piece of a JPEG file, in file order: a marker segment, or a scan (its
/// SOS segment and the entropy-coded data after it).
#[derive(Clone, Debug, PartialEq)]
pub struct Piece<'a> {
    pub marker: u8,
    /// The segment's body (for a scan: the SOS header), cut at the end of
    /// the data.
    pub body: &'a [u8],
    /// Where the piece lies in the file, from its marker to the next one.
    pub at: Range<usize>,
    /// The body is as long as its length field says and, for a scan, the
    /// entropy-coded data ends at a marker.
    pub whole: bool,
    /// A scan's data holds restart markers.
    pub restarts: bool,
}

/// Every piece of a JPEG up to and including EOI. Fill bytes and markers
/// without a length (SOI, TEM, RSTn between segments) are skipped; the walk
/// ends after EOI, at the end of the data, or at anything that is not a marker.
pub fn pieces(b: &[u8]) -> impl Iterator<Item = Piece<'_>> {
    let mut at = if b.starts_with(&[0xFF, 0xD8]) {
        2
    } else {
        b.len()
    };
    std::iter::from_fn(move || loop {
        if at + 2 > b.len() || b[at] != 0xFF {
            return None;
        }
        let marker = b[at + 1];
        match marker {
            0xFF => {
                at += 1;
                continue;
            }
            0xD8 | 0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            0xD9 => {
                let piece = Piece {
                    marker,
                    body: &[],
                    at: at..at + 2,
                    whole: true,
                    restarts: false,
                };
                at = b.len();
                return Some(piece);
            }
            _ => {}
        }
        if at + 4 > b.len() {
            return None;
        }
        let start = at;
        let len = u16::from_be_bytes([b[at + 2], b[at + 3]]) as usize;
        let body = b.get(at + 4..(at + 2 + len).min(b.len())).unwrap_or(&[]);
        let mut whole = len >= 2 && at + 2 + len <= b.len();
        at = (at + 2 + len.max(2)).min(b.len());
        let mut restarts = false;
        if marker == 0xDA {
            let data = entropy_coded(&b[at..]);
            (whole, restarts) = (whole && data.ended, data.restarts);
            at += data.len;
        }
        return Some(Piece {
            marker,
            body,
            at: start..at,
            whole,
            restarts,
        });
    })
}

/// The extent of the entropy-coded data at the start of `b`.
struct EntropyCoded {
    len: usize,
    /// A marker (not a stuffed 0xFF or a restart marker) follows.
    ended: bool,
    restarts: bool,
}

fn entropy_coded(b: &[u8]) -> EntropyCoded {
    let mut i = 0;
    let mut restarts = false;
    while let Some(n) = memchr::memchr(0xFF, &b[i..]) {
        i += n;
        match b.get(i + 1) {
            None => break,
            Some(0x00) => i += 2,
            Some(0xD0..=0xD7) => {
                restarts = true;
                i += 2;
            }
            Some(_) => {
                return EntropyCoded {
                    len: i,
                    ended: true,
                    restarts,
                }
            }
        }
    }
    EntropyCoded {
        len: b.len(),
        ended: false,
        restarts,
    }
}

/// The header segments of a JPEG before its first scan, as `(marker, body)`,
/// a body cut at the end of the data.
pub fn segments(b: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    pieces(b)
        .take_while(|p| p.marker != 0xDA && p.marker != 0xD9)
        .map(|p| (p.marker, p.body))
}

/// A frame header (SOF segment): how the image is coded, its size and its
/// components as `(id, h, v)` sampling factors.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub marker: u8,
    pub precision: u8,
    pub width: u16,
    pub height: u16,
    pub components: Vec<(u8, u8, u8)>,
}

impl Frame {
    /// An SOF segment's body, exactly as long as its components need.
    pub fn parse(marker: u8, body: &[u8]) -> Option<Frame> {
        let sof = matches!(marker, 0xC0..=0xCF) && ![0xC4, 0xC8, 0xCC].contains(&marker);
        let n = *body.get(5)? as usize;
        if !sof || body.len() != 6 + 3 * n {
            return None;
        }
        let components = body[6..]
            .chunks_exact(3)
            .map(|c| (c[0], c[1] >> 4, c[1] & 0x0F))
            .collect();
        Some(Frame {
            marker,
            precision: body[0],
            height: u16::from_be_bytes([body[1], body[2]]),
            width: u16::from_be_bytes([body[3], body[4]]),
            components,
        })
    }

    /// Progressive (SOF2, 6, 10, 14): every scan's coefficients are kept
    /// until the last.
    pub fn progressive(&self) -> bool {
        matches!(self.marker, 0xC2 | 0xC6 | 0xCA | 0xCE)
    }

    /// The blocks of component `i` as the decoder stores them: its size in
    /// blocks, rounded up to its sampling factors (`jdmaster`/`jdcoefct`).
    fn stored_blocks(&self, i: usize) -> u64 {
        let (hmax, vmax) = self
            .components
            .iter()
            .fold((1, 1), |(h, v), c| (h.max(c.1), v.max(c.2)));
        let (hmax, vmax) = (hmax as u64, vmax as u64);
        let (_, h, v) = self.components[i];
        let blocks = |size: u16, f: u8, max: u64| {
            (size as u64 * f as u64)
                .div_ceil(max)
                .div_ceil(8)
                .next_multiple_of((f as u64).max(1))
        };
        blocks(self.width, h, hmax) * blocks(self.height, v, vmax)
    }
}

/// The frame header of a JPEG, from the segments before its first scan.
pub fn frame(b: &[u8]) -> Option<Frame> {
    segments(b).find_map(|(marker, body)| Frame::parse(marker, body))
}

/// The bytes a progressive JPEG's decoder holds for the whole image,
/// whatever the output's size: libjpeg keeps every component's coefficients
/// (64 of 2 bytes per block, blocks padded to the sampling factors) until the
/// last scan. `None` for a sequential file (decoded a row of blocks at a
/// time) or a frame header that cannot be read.
pub fn coefficient_bytes(b: &[u8]) -> Option<u64> {
    let f = frame(b).filter(Frame::progressive)?;
    Some(
        (0..f.components.len())
            .map(|i| f.stored_blocks(i) * 128)
            .sum(),
    )
}

/// The embedded ICC profile's first APP2 `ICC_PROFILE` segment (a profile
/// split over several segments starts with its header and tag table).
pub fn icc_profile(b: &[u8]) -> Option<&[u8]> {
    const TAG: &[u8] = b"ICC_PROFILE\0";
    segments(b)
        .find(|(marker, body)| *marker == 0xE2 && body.starts_with(TAG))
        .map(|(_, body)| body.get(TAG.len() + 2..).unwrap_or(&[]))
}

/// The JPEG specification's luminance table (Annex K.1), in zigzag order as
/// stored in a DQT segment.
const STD_LUMA: [u16; 64] = [
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37,
    29, 40, 58, 51, 61, 60, 57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81,
    87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112, 100, 120, 92, 101, 103, 99,
];

/// The luminance table (table 0) of a JPEG, from its DQT segments.
fn luma_table(d: &[u8]) -> Option<[u16; 64]> {
    segments(d)
        .filter(|(marker, _)| *marker == 0xDB)
        .find_map(|(_, body)| table0(body))
}

/// Table 0 among the tables of one DQT segment's body.
fn table0(mut body: &[u8]) -> Option<[u16; 64]> {
    while let Some((&pq_tq, rest)) = body.split_first() {
        let wide = pq_tq >> 4 == 1;
        let size = if wide { 128 } else { 64 };
        let values = rest.get(..size)?;
        if pq_tq & 0x0F == 0 {
            let mut t = [0u16; 64];
            for (i, v) in t.iter_mut().enumerate() {
                *v = if wide {
                    u16::from_be_bytes([values[2 * i], values[2 * i + 1]])
                } else {
                    values[i] as u16
                };
            }
            return Some(t);
        }
        body = &rest[size..];
    }
    None
}

/// The IJG table for quality `q`.
fn scaled(q: u32) -> [u16; 64] {
    let s = if q < 50 { 5000 / q } else { 200 - 2 * q };
    STD_LUMA.map(|v| ((v as u32 * s + 50) / 100).clamp(1, 255) as u16)
}

/// The estimated quality of a JPEG, 1 to 100; `None` for anything else.
pub fn estimate(d: &[u8]) -> Option<u8> {
    let t = luma_table(d)?;
    let distance = |q: u32| -> u64 {
        scaled(q)
            .iter()
            .zip(t.iter())
            .map(|(a, b)| (*a as i64 - *b as i64).unsigned_abs())
            .sum()
    };
    // The highest quality among the nearest (tables saturate at 1 near 100).
    (1..=100u32)
        .min_by_key(|&q| (distance(q), std::cmp::Reverse(q)))
        .map(|q| q as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JPEG header holding the IJG luminance table of `q` (and a chroma one).
    fn header(q: u32) -> Vec<u8> {
        let mut d = vec![0xFF, 0xD8, 0xFF, 0xE0, 0, 4, 0, 0];
        d.extend_from_slice(&[0xFF, 0xDB, 0, 132, 0x01]);
        d.extend_from_slice(&[9; 64]);
        d.push(0x00);
        d.extend(scaled(q).iter().map(|&v| v as u8));
        d.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        d
    }

    /// A frame header alone: SOF `marker`, `width`x`height`, the components'
    /// sampling factors.
    fn frame(marker: u8, width: u16, height: u16, factors: &[u8]) -> Vec<u8> {
        let mut d = vec![
            0xFF,
            0xD8,
            0xFF,
            marker,
            0,
            (8 + 3 * factors.len()) as u8,
            8,
        ];
        d.extend_from_slice(&height.to_be_bytes());
        d.extend_from_slice(&width.to_be_bytes());
        d.push(factors.len() as u8);
        for (i, f) in factors.iter().enumerate() {
            d.extend_from_slice(&[i as u8 + 1, *f, 0]);
        }
        d.extend_from_slice(&[0xFF, 0xDA, 0, 2]);
        d
    }

    #[test]
    fn a_progressive_decode_holds_every_coefficient() {
        // 6028x3391 at 4:2:0: luma 754x424 blocks (padded to 2x2: 754x424),
        // chroma 377x212 each, 128 bytes a block.
        let p = frame(0xC2, 6028, 3391, &[0x22, 0x11, 0x11]);
        assert_eq!(
            coefficient_bytes(&p),
            Some((754 * 424 + 2 * 377 * 212) * 128)
        );
        // 4:4:4, 17x9: 3x2 blocks per component.
        let p = frame(0xC2, 17, 9, &[0x11, 0x11, 0x11]);
        assert_eq!(coefficient_bytes(&p), Some(3 * 3 * 2 * 128));
        // Baseline and extended sequential: rows at a time.
        assert_eq!(
            coefficient_bytes(&frame(0xC0, 6028, 3391, &[0x22, 0x11, 0x11])),
            None
        );
        assert_eq!(coefficient_bytes(&frame(0xC1, 64, 64, &[0x11])), None);
        assert_eq!(coefficient_bytes(&p[..12]), None);
    }

    #[test]
    fn reads_back_the_quality_of_the_table() {
        for q in [10, 35, 50, 72, 80, 90, 95] {
            assert_eq!(estimate(&header(q)), Some(q as u8), "q {q}");
        }
        assert_eq!(estimate(&header(100)), Some(100));
        assert_eq!(estimate(b"\x89PNG\r\n"), None);
        assert_eq!(estimate(&header(80)[..20]), None);
    }
}
