//! Progressive JPEG scan selection for a decode at 1/8 scale: a copy of the
//! file without the luma AC scans, whose coefficients such a decode never
//! reads, so the decoder reads (and Huffman-decodes) a third of the bytes or
//! less. In their place goes one scan of a few bytes that says every luma AC
//! coefficient is zero.
//!
//! Why the pixels stay the same, for libjpeg-turbo 2.1 (Debian 12's):
//! - At `scale_denom = 8` a component sampled at the image's largest factors
//!   (luma) gets a 1x1 inverse DCT, which reads the DC coefficient only. A
//!   subsampled component (4:2:0 chroma) gets a larger one that reads AC
//!   coefficients, so every chroma scan is kept, and every DC scan.
//! - A progressive file with coefficients still unknown at the end is decoded
//!   with block smoothing (`decompress_smooth_data`), which estimates AC 1-9
//!   of a block from its neighbours' DC values, and rewrites a block's DC too
//!   when none of AC 1-9 of its component was ever sent (`change_dc`). So:
//!   - the original must send one of luma's AC 1-9 (a first pass, `Ah = 0`,
//!     starting at or below 9), else its luma DC is smoothed: such files keep
//!     their bytes;
//!   - the luma AC scans cannot simply go: with none left, the copy's luma DC
//!     would be smoothed. The scan put in their place sends AC 1-63 at full
//!     precision (`Al = 0`), all zero (EOB runs over every block), so luma is
//!     complete in the copy and smoothing never touches it; its zeros are
//!     not read by the 1x1 transform.
//!   - Chroma's coefficients and their precision are the original's, so
//!     whether and how smoothing treats chroma is the same in both.
//! - Every table and other segment is kept; the new scan and its Huffman
//!   table go last, just before EOI, so the table redefines nothing a kept
//!   scan uses.
//!
//! Anything outside what this argument covers keeps the original bytes
//! (`None`): a frame other than progressive Huffman at 8 bits, other than three
//! components with ids 1, 2, 3 (greyscale, CMYK, RGB by id), luma not at the
//! largest sampling factors, a zero height (DNL), an Adobe segment that does
//! not say YCbCr, a restart interval or restart markers, a scan of several
//! components with AC coefficients, a component the frame lacks, a truncated
//! segment or scan, no EOI. The tests decode a corpus both ways and compare
//! every pixel (`tests/scans.rs`).

use std::ops::Range;

use super::jpeg::{pieces, Frame, Piece};

const SOF2: u8 = 0xC2;
const DHT: u8 = 0xC4;
const SOS: u8 = 0xDA;
const DQT: u8 = 0xDB;
const DRI: u8 = 0xDD;
const COM: u8 = 0xFE;
const EOI: u8 = 0xD9;
const APP14: u8 = 0xEE;

/// A copy of `b` for a decode at 1/8 scale: its luma AC scans replaced by
/// one that sends zeros; `None` to decode the original (see the module's
/// comment).
pub fn eighth_scale_copy(b: &[u8]) -> Option<Vec<u8>> {
    let mut frame: Option<Frame> = None;
    let mut luma_ac: Vec<Range<usize>> = Vec::new();
    let mut sends_low_luma_ac = false;
    let mut eoi = None;
    for p in pieces(b) {
        if !p.whole {
            return None;
        }
        match p.marker {
            SOF2 if frame.is_none() => frame = Some(covered(Frame::parse(p.marker, p.body)?)?),
            DHT | DQT | COM | 0xE0..=0xED | 0xEF => {}
            APP14 => adobe_says_ycbcr(p.body)?,
            DRI => (p.body.get(..2)? == [0, 0]).then_some(())?,
            SOS => {
                let scan = Scan::parse(&p, frame.as_ref()?)?;
                if scan.is_luma_ac() {
                    sends_low_luma_ac |= scan.sends_low_ac();
                    luma_ac.push(p.at.clone());
                }
            }
            EOI => {
                eoi = Some(p.at.start);
                break;
            }
            _ => return None,
        }
    }
    let (eoi, frame) = (eoi?, frame?);
    if !sends_low_luma_ac {
        return None;
    }
    let zeros = zero_luma_ac(luma_blocks(&frame));
    let mut out = without(&b[..eoi], &luma_ac, zeros.len() + b.len() - eoi);
    out.extend_from_slice(&zeros);
    out.extend_from_slice(&b[eoi..]);
    Some(out)
}

/// `b` without the (ordered, disjoint) ranges, with room for `more` bytes.
fn without(b: &[u8], ranges: &[Range<usize>], more: usize) -> Vec<u8> {
    let cut: usize = ranges.iter().map(|r| r.len()).sum();
    let mut out = Vec::with_capacity(b.len() - cut + more);
    let mut from = 0;
    for r in ranges {
        out.extend_from_slice(&b[from..r.start]);
        from = r.end;
    }
    out.extend_from_slice(&b[from..]);
    out
}

/// The longest EOB run one symbol codes: EOB14, 2^14 plus 14 extra bits.
const MAX_RUN: u64 = (1 << 15) - 1;

/// A DHT segment and a first-pass luma scan of AC 1-63 at `Al = 0` in
/// which every one of `blocks` blocks is zero: EOB runs of at most
/// [`MAX_RUN`], then one for the rest. The table (AC table 0) codes EOB14
/// as `0` and the rest's symbol as `10` (a code of all ones is not allowed).
fn zero_luma_ac(blocks: u64) -> Vec<u8> {
    let rest = blocks % MAX_RUN;
    // EOBr codes a run of 2^r to 2^(r+1) - 1 blocks.
    let rest_r = (rest > 0).then(|| 63 - rest.leading_zeros());
    let symbols: Vec<u8> = match rest_r {
        Some(r) if r < 14 => vec![0xE0, (r as u8) << 4],
        _ => vec![0xE0],
    };
    let mut counts = [0u8; 16];
    counts[..symbols.len()].fill(1);
    let mut out = vec![0xFF, DHT, 0, (2 + 1 + 16 + symbols.len()) as u8, 0x10];
    out.extend_from_slice(&counts);
    out.extend_from_slice(&symbols);
    // One component (luma, id 1), AC table 0, Ss 1, Se 63, Ah 0, Al 0.
    out.extend_from_slice(&[0xFF, SOS, 0, 8, 1, 1, 0x00, 1, 63, 0x00]);
    let mut bits = BitWriter::default();
    for _ in 0..blocks / MAX_RUN {
        bits.put(0b0, 1);
        bits.put(MAX_RUN - (1 << 14), 14);
    }
    if let Some(r) = rest_r {
        match symbols.len() {
            2 => bits.put(0b10, 2),
            _ => bits.put(0b0, 1),
        }
        bits.put(rest - (1 << r), r);
    }
    out.extend_from_slice(&bits.finish());
    out
}

/// Entropy-coded bytes: most significant bit first, a 0xFF followed by a
/// stuffed 0x00, the last byte padded with ones.
#[derive(Default)]
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn put(&mut self, value: u64, len: u32) {
        self.acc = (self.acc << len) | (value & ((1 << len) - 1));
        self.n += len;
        while self.n >= 8 {
            self.n -= 8;
            self.byte((self.acc >> self.n) as u8);
        }
    }

    fn byte(&mut self, b: u8) {
        self.out.push(b);
        if b == 0xFF {
            self.out.push(0x00);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// An Adobe APP14 segment's colour transform must be 1 (YCbCr); 0 means RGB.
fn adobe_says_ycbcr(body: &[u8]) -> Option<()> {
    if !body.starts_with(b"Adobe") {
        return Some(());
    }
    (body.get(11) == Some(&1)).then_some(())
}

/// The frame the argument covers: progressive Huffman at 8 bits, YCbCr with
/// the standard component ids, luma at the largest sampling factors, a height
/// in the header.
fn covered(f: Frame) -> Option<Frame> {
    let ids: Vec<u8> = f.components.iter().map(|c| c.0).collect();
    let luma = f.components.first()?;
    let luma_largest = f.components.iter().all(|c| c.1 <= luma.1 && c.2 <= luma.2);
    let sized = f.width > 0 && f.height > 0;
    (f.precision == 8 && ids == [1, 2, 3] && luma_largest && sized).then_some(f)
}

/// Luma's blocks, as a scan of luma alone codes them (T.81 A.2.2).
fn luma_blocks(f: &Frame) -> u64 {
    (f.width as u64).div_ceil(8) * (f.height as u64).div_ceil(8)
}

/// A scan header: its components and spectral selection.
struct Scan {
    luma_only: bool,
    ss: u8,
    ah: u8,
}

impl Scan {
    fn parse(p: &Piece, frame: &Frame) -> Option<Scan> {
        if p.restarts {
            return None;
        }
        let (&n, rest) = p.body.split_first()?;
        let n = n as usize;
        if !(1..=3).contains(&n) || rest.len() != 2 * n + 3 {
            return None;
        }
        let ids: Vec<u8> = rest[..2 * n].iter().step_by(2).copied().collect();
        if !ids
            .iter()
            .all(|id| frame.components.iter().any(|c| c.0 == *id))
        {
            return None;
        }
        let (ss, se, a) = (rest[2 * n], rest[2 * n + 1], rest[2 * n + 2]);
        // DC scans have Se = 0; AC scans one component (T.81 G.1.1.1.1).
        let valid = if ss == 0 {
            se == 0
        } else {
            n == 1 && ss <= se && se <= 63
        };
        valid.then_some(Scan {
            luma_only: ids == [frame.components[0].0],
            ss,
            ah: a >> 4,
        })
    }

    fn is_luma_ac(&self) -> bool {
        self.luma_only && self.ss > 0
    }

    /// A first pass that sends one of AC 1-9: block smoothing leaves the
    /// component's DC alone.
    fn sends_low_ac(&self) -> bool {
        self.ah == 0 && (1..=9).contains(&self.ss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A progressive file from pieces: SOI, a frame, the scans, EOI.
    fn file(frame: &[u8], scans: &[[u8; 3]]) -> Vec<u8> {
        let mut f = vec![0xFF, 0xD8];
        f.extend_from_slice(&[0xFF, SOF2, 0, (2 + frame.len()) as u8]);
        f.extend_from_slice(frame);
        for (i, s) in scans.iter().enumerate() {
            // One component per scan: [id, Ss, Se], then some data with a
            // stuffed 0xFF.
            f.extend_from_slice(&[0xFF, SOS, 0, 8, 1, s[0], 0, s[1], s[2], 0]);
            f.extend_from_slice(&[i as u8 + 0x10, 0xFF, 0x00, 0x20]);
        }
        f.extend_from_slice(&[0xFF, EOI]);
        f
    }

    /// 20x17 pixels, 4:2:0: luma is 3x3 blocks.
    const YCC420: [u8; 15] = [8, 0, 17, 0, 20, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];

    /// (component, Ss, Se) of each scan.
    fn scans(f: &[u8]) -> Vec<(u8, u8, u8)> {
        pieces(f)
            .filter(|p| p.marker == SOS)
            .map(|p| (p.body[1], p.body[3], p.body[4]))
            .collect()
    }

    #[test]
    fn replaces_the_luma_ac_scans_with_one_of_zeros() {
        let f = file(
            &YCC420,
            &[
                [1, 0, 0],
                [1, 1, 5],
                [2, 1, 63],
                [1, 6, 63],
                [3, 1, 63],
                [1, 1, 63],
            ],
        );
        let copy = eighth_scale_copy(&f).expect("a copy");
        assert_eq!(
            scans(&copy),
            [(1, 0, 0), (2, 1, 63), (3, 1, 63), (1, 1, 63)],
            "the kept scans in order, then the zeros"
        );
        let last = pieces(&copy)
            .filter(|p| p.marker == SOS)
            .last()
            .expect("scan");
        assert_eq!(&last.body[5..], [0], "Ah 0, Al 0");
        assert!(copy.ends_with(&[0xFF, EOI]));
        // Its table comes right before it.
        let markers: Vec<u8> = pieces(&copy).map(|p| p.marker).collect();
        assert_eq!(markers[markers.len() - 3..], [DHT, SOS, EOI]);
    }

    /// The EOB runs of a zero scan, read back with its own table.
    fn runs(segment: &[u8]) -> (u64, u32) {
        let dht_end = 2 + u16::from_be_bytes([segment[2], segment[3]]) as usize;
        let table = &segment[4..dht_end];
        let counts = &table[1..17];
        let symbols = &table[17..];
        // Canonical codes (T.81 C.2): (length, code, symbol).
        let mut codes = Vec::new();
        let (mut code, mut k) = (0u32, 0);
        for (i, &n) in counts.iter().enumerate() {
            for _ in 0..n {
                codes.push((i as u32 + 1, code, symbols[k]));
                code += 1;
                k += 1;
            }
            code <<= 1;
        }
        let mut data = Vec::new();
        let mut bytes = segment[dht_end + 10..].iter();
        while let Some(&b) = bytes.next() {
            data.push(b);
            if b == 0xFF {
                assert_eq!(bytes.next(), Some(&0x00), "stuffed");
            }
        }
        let bit = |i: usize| ((data[i / 8] >> (7 - i % 8)) & 1) as u32;
        let (mut at, mut total, mut n) = (0usize, 0u64, 0u32);
        let end = data.len() * 8;
        // The padding: fewer than 8 bits, all ones.
        while !(end - at < 8 && (at..end).all(|i| bit(i) == 1)) {
            let (mut len, mut value) = (0, 0);
            let symbol = loop {
                value = (value << 1) | bit(at);
                at += 1;
                len += 1;
                if let Some(c) = codes.iter().find(|c| c.0 == len && c.1 == value) {
                    break c.2;
                }
                assert!(len < 16, "no code");
            };
            assert_eq!(symbol & 0x0F, 0, "an EOB run");
            let r = (symbol >> 4) as usize;
            let extra = (0..r).fold(0u64, |v, _| {
                let b = bit(at);
                at += 1;
                (v << 1) | b as u64
            });
            total += (1 << r) + extra;
            n += 1;
        }
        (total, n)
    }

    #[test]
    fn the_zero_scan_covers_every_block_once() {
        for blocks in [
            1,
            2,
            3,
            9,
            255,
            16383,
            16384,
            32766,
            32767,
            32768,
            65534,
            319_696,
            1 << 24,
        ] {
            let (total, symbols) = runs(&zero_luma_ac(blocks));
            assert_eq!(total, blocks, "{blocks} blocks");
            assert_eq!(
                symbols as u64,
                blocks.div_ceil(MAX_RUN),
                "{blocks}: symbols"
            );
        }
    }

    #[test]
    fn keeps_the_original_when_unsure() {
        let plain = [[1, 0, 0], [1, 1, 5], [1, 6, 63]];
        assert!(eighth_scale_copy(&file(&YCC420, &plain)).is_some());
        // No luma AC scan; none that sends AC 1-9.
        assert!(eighth_scale_copy(&file(&YCC420, &plain[..1])).is_none());
        let late = [[1, 0, 0], [1, 10, 63], [2, 1, 63]];
        assert!(eighth_scale_copy(&file(&YCC420, &late)).is_none());
        // Greyscale; ids other than 1, 2, 3; luma subsampled; 12 bits; no height.
        assert!(eighth_scale_copy(&file(&[8, 0, 16, 0, 16, 1, 1, 0x11, 0], &plain)).is_none());
        let mut rgb_ids = YCC420;
        (rgb_ids[6], rgb_ids[9], rgb_ids[12]) = (b'R', b'G', b'B');
        assert!(eighth_scale_copy(&file(&rgb_ids, &plain)).is_none());
        let mut small_luma = YCC420;
        small_luma[7] = 0x11;
        small_luma[10] = 0x22;
        assert!(eighth_scale_copy(&file(&small_luma, &plain)).is_none());
        let mut twelve = YCC420;
        twelve[0] = 12;
        assert!(eighth_scale_copy(&file(&twelve, &plain)).is_none());
        let mut dnl = YCC420;
        (dnl[1], dnl[2]) = (0, 0);
        assert!(eighth_scale_copy(&file(&dnl, &plain)).is_none());
        // A scan of a component the frame lacks.
        let stranger = [[1, 0, 0], [1, 1, 5], [4, 1, 63], [1, 6, 63]];
        assert!(eighth_scale_copy(&file(&YCC420, &stranger)).is_none());
        let f = file(&YCC420, &plain);
        // Truncated anywhere: no EOI, or a cut segment.
        for end in 0..f.len() - 1 {
            assert!(eighth_scale_copy(&f[..end]).is_none(), "cut at {end}");
        }
    }

    #[test]
    fn restarts_arithmetic_coding_and_adobe_rgb_keep_the_original() {
        let plain = [[1, 0, 0], [1, 1, 5], [1, 6, 63]];
        let f = file(&YCC420, &plain);
        let with = |at: usize, bytes: &[u8]| {
            let mut g = f.clone();
            g.splice(at..at, bytes.iter().copied());
            g
        };
        assert!(eighth_scale_copy(&with(2, &[0xFF, DRI, 0, 4, 0, 0])).is_some());
        assert!(eighth_scale_copy(&with(2, &[0xFF, DRI, 0, 4, 0, 8])).is_none());
        let adobe = |transform: u8| {
            let mut seg = vec![0xFF, APP14, 0, 14];
            seg.extend_from_slice(b"Adobe\0\x64\0\0\0\0");
            seg.push(transform);
            seg
        };
        assert!(eighth_scale_copy(&with(2, &adobe(1))).is_some());
        assert!(eighth_scale_copy(&with(2, &adobe(0))).is_none());
        // A restart marker inside the last scan's data.
        assert!(eighth_scale_copy(&with(f.len() - 3, &[0xFF, 0xD0])).is_none());
        // SOF10 (progressive, arithmetic) instead of SOF2.
        let mut arith = f.clone();
        arith[3] = 0xCA;
        assert!(eighth_scale_copy(&arith).is_none());
    }
}
