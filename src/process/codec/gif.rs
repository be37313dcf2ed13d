//! The block structure of a GIF file, read and patched without decoding:
//! how many frames it holds, and its loop count.
//!
//! libvips says how often an animation plays in its `loop` field: 0 for ever,
//! else the number of plays (what WebP's ANIM chunk stores). A GIF's
//! NETSCAPE2.0 block stores the repeats after the first play, and no block
//! means one play. libvips 8.14 reads that right (a block of 3 loads as
//! `loop` = 4) but writes `loop` into the block unchanged, so every GIF it
//! saves plays once more than its source. [`set_plays`] rewrites the block
//! from the `loop` field after the save, whatever the libvips version wrote.

/// One block after the header and global colour table: its first byte
/// (0x21 extension, 0x2C image) and its byte range.
struct Block {
    kind: u8,
    start: usize,
    end: usize,
}

const NETSCAPE: &[u8] = b"\x21\xff\x0bNETSCAPE2.0";

/// Bytes of the colour table that a packed field announces.
fn color_table(packed: u8) -> usize {
    if packed & 0x80 != 0 {
        3 << ((packed & 7) + 1)
    } else {
        0
    }
}

/// End of a run of data sub-blocks (length byte, bytes) that starts at `at`.
fn sub_blocks(d: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *d.get(at)? as usize;
        at += 1 + len;
        if len == 0 {
            return Some(at);
        }
    }
}

/// Where the blocks start, and the whole blocks up to the trailer or to the
/// first byte that does not fit the format; `None` if `d` is not a GIF.
fn blocks(d: &[u8]) -> Option<(usize, Vec<Block>)> {
    if !(d.starts_with(b"GIF87a") || d.starts_with(b"GIF89a")) {
        return None;
    }
    let first = 13 + color_table(*d.get(10)?);
    let mut at = first;
    let mut out = Vec::new();
    loop {
        let kind = match d.get(at) {
            Some(&k @ (0x21 | 0x2C)) => k,
            _ => return Some((first, out)),
        };
        let end = match kind {
            0x2C => d
                .get(at + 9)
                .and_then(|&p| sub_blocks(d, at + 10 + color_table(p) + 1)),
            _ => sub_blocks(d, at + 2),
        };
        let Some(end) = end.filter(|&e| e <= d.len()) else {
            return Some((first, out));
        };
        out.push(Block {
            kind,
            start: at,
            end,
        });
        at = end;
    }
}

/// Frames (image descriptors) in a GIF; 0 if it is not one.
pub fn frames(d: &[u8]) -> u32 {
    blocks(d).map_or(0, |(_, b)| {
        b.iter().filter(|b| b.kind == 0x2C).count() as u32
    })
}

/// `data` with a NETSCAPE2.0 block that makes it play `plays` times (libvips'
/// `loop`: 0 for ever). Anything it cannot read is returned unchanged.
pub fn set_plays(data: Vec<u8>, plays: i32) -> Vec<u8> {
    let Some((first, all)) = blocks(&data) else {
        return data;
    };
    let old = all.iter().find(|b| data[b.start..].starts_with(NETSCAPE));
    let repeats = match plays {
        p if p <= 0 => Some(0u16),
        1 => None,
        p => Some(u16::try_from(p - 1).unwrap_or(u16::MAX)),
    };
    let mut out = Vec::with_capacity(data.len() + 19);
    let (cut_start, cut_end) = old.map_or((first, first), |b| (b.start, b.end));
    out.extend_from_slice(&data[..cut_start]);
    if let Some(r) = repeats {
        out.extend_from_slice(NETSCAPE);
        out.extend_from_slice(&[3, 1]);
        out.extend_from_slice(&r.to_le_bytes());
        out.push(0);
    }
    out.extend_from_slice(&data[cut_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GIF of `n` 1x1 frames, each with a graphic control extension, with
    /// a NETSCAPE2.0 block of `repeats` if given.
    fn gif(n: usize, repeats: Option<u16>) -> Vec<u8> {
        let mut d = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff".to_vec();
        if let Some(r) = repeats {
            d.extend_from_slice(NETSCAPE);
            d.extend_from_slice(&[3, 1]);
            d.extend_from_slice(&r.to_le_bytes());
            d.push(0);
        }
        for _ in 0..n {
            d.extend_from_slice(b"\x21\xf9\x04\x04\x0a\x00\x00\x00");
            d.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00");
            d.extend_from_slice(b"\x02\x02\x44\x01\x00");
        }
        d.push(0x3B);
        d
    }

    fn repeats(d: &[u8]) -> Option<u16> {
        let i = d.windows(NETSCAPE.len()).position(|w| w == NETSCAPE)?;
        Some(u16::from_le_bytes([d[i + 16], d[i + 17]]))
    }

    #[test]
    fn counts_frames_from_the_blocks() {
        assert_eq!(frames(&gif(1, None)), 1);
        assert_eq!(frames(&gif(7, Some(0))), 7);
        // Truncated in the fifth frame's descriptor, then in its data.
        let g = gif(9, Some(2));
        let four = 13 + 6 + 19 + 4 * 23;
        assert_eq!(frames(&g[..four + 12]), 4);
        assert_eq!(frames(&g[..four + 19]), 4);
        assert_eq!(frames(&g[..four + 23]), 5);
        assert_eq!(frames(b"GIF89a"), 0);
        assert_eq!(frames(b"\x89PNG\r\n"), 0);
    }

    #[test]
    fn writes_the_repeats_that_give_the_plays() {
        // libvips' loop (plays) -> the NETSCAPE repeats, from any block before.
        for before in [None, Some(0), Some(4)] {
            let src = gif(3, before);
            for (plays, want) in [(0, Some(0)), (1, None), (2, Some(1)), (4, Some(3))] {
                let out = set_plays(src.clone(), plays);
                assert_eq!(repeats(&out), want, "{before:?} plays {plays}");
                assert_eq!(frames(&out), 3);
                assert_eq!(out.last(), Some(&0x3B));
            }
        }
        assert_eq!(set_plays(b"not a gif".to_vec(), 3), b"not a gif");
    }
}
