//! WebP containers, read and patched without decoding: one walk over the
//! chunks ([`walk`]), from which the embedded ICC profile and the frame count
//! are read and the metadata libvips writes is dropped ([`strip`]).
//!
//! libvips 8.14.1 (Debian 12) writes an EXIF chunk into every WebP it saves,
//! `strip` or not: 186–222 bytes of generated tags (orientation, resolution,
//! pixel size) on a 3–17 KB thumbnail, which every other format we write is
//! without. This removes `EXIF` and `XMP ` chunks, clears their VP8X flags, and
//! when nothing else needs the extended container (no alpha, ICC, animation)
//! writes the simple form: `RIFF` + one `VP8 `/`VP8L` chunk.
//! Anything it does not understand is returned unchanged.

const VP8X_EXIF: u8 = 0x08;
const VP8X_XMP: u8 = 0x04;

struct Chunk<'a> {
    fourcc: &'a [u8],
    /// The whole chunk: header, payload and padding byte.
    bytes: &'a [u8],
}

/// The chunks after `RIFF....WEBP` as far as their headers go, each cut at
/// the end of the data (its `bytes` then shorter than its header says).
fn walk(data: &[u8]) -> impl Iterator<Item = (Chunk<'_>, bool)> {
    let mut at: usize = 12;
    std::iter::from_fn(move || {
        let head = data.get(at..at.checked_add(8)?)?;
        let len = u32::from_le_bytes(head[4..8].try_into().ok()?) as usize;
        let start = at;
        let end = at.checked_add(8)?.checked_add(len)?.checked_add(len & 1)?;
        at = end;
        let bytes = &data[start..end.min(data.len())];
        Some((
            Chunk {
                fourcc: &head[0..4],
                bytes,
            },
            end <= data.len(),
        ))
    })
}

/// The chunks after `RIFF....WEBP`, or `None` if the file is not laid out as
/// the WebP container spec says.
fn chunks(data: &[u8]) -> Option<Vec<Chunk<'_>>> {
    if data.len() < 12 || &data[0..4] != b"RIFF" || &data[8..12] != b"WEBP" {
        return None;
    }
    let riff_len = u32::from_le_bytes(data[4..8].try_into().ok()?) as usize;
    if riff_len.checked_add(8)? != data.len() {
        return None;
    }
    let mut out = Vec::new();
    let mut end = 12;
    for (chunk, whole) in walk(data) {
        if !whole {
            return None;
        }
        end += chunk.bytes.len();
        out.push(chunk);
    }
    // A header cut short leaves bytes the walk did not take.
    (end == data.len()).then_some(out)
}

/// The ICC profile of the extended format's `ICCP` chunk (before the image).
pub fn icc_profile(data: &[u8]) -> Option<&[u8]> {
    for (c, _) in walk(data) {
        match c.fourcc {
            b"ICCP" => return Some(c.bytes.get(8..).unwrap_or(&[])),
            b"VP8 " | b"VP8L" | b"ANIM" => return None,
            _ => {}
        }
    }
    None
}

/// Frames of an animated WebP (its `ANMF` chunks); 0 for a still one or
/// for bytes that are not a WebP container.
pub fn frames(data: &[u8]) -> u32 {
    chunks(data).map_or(0, |all| {
        all.iter().filter(|c| c.fourcc == b"ANMF").count() as u32
    })
}

/// `data` without EXIF and XMP chunks (see the module comment).
pub fn strip(data: Vec<u8>) -> Vec<u8> {
    let Some(all) = chunks(&data) else {
        return data;
    };
    let is_meta = |c: &Chunk| c.fourcc == b"EXIF" || c.fourcc == b"XMP ";
    if !all.iter().any(is_meta) {
        return data;
    }
    let kept: Vec<&Chunk> = all.iter().filter(|c| !is_meta(c)).collect();
    let simple = match kept.as_slice() {
        [x, image] if x.fourcc == b"VP8X" && matches!(image.fourcc, b"VP8 " | b"VP8L") => {
            Some(*image)
        }
        _ => None,
    };
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    match simple {
        Some(image) => out.extend_from_slice(image.bytes),
        None => {
            for c in &kept {
                let start = out.len();
                out.extend_from_slice(c.bytes);
                if c.fourcc == b"VP8X" && c.bytes.len() > 8 {
                    out[start + 8] &= !(VP8X_EXIF | VP8X_XMP);
                }
            }
        }
    }
    let riff_len = (out.len() - 8) as u32;
    out[4..8].copy_from_slice(&riff_len.to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut c = fourcc.to_vec();
        c.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        c.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            c.push(0);
        }
        c
    }

    fn riff(parts: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = parts.concat();
        let mut f = b"RIFF".to_vec();
        f.extend_from_slice(&((body.len() + 4) as u32).to_le_bytes());
        f.extend_from_slice(b"WEBP");
        f.extend_from_slice(&body);
        f
    }

    fn vp8x(flags: u8) -> Vec<u8> {
        chunk(b"VP8X", &[flags, 0, 0, 0, 1, 0, 0, 1, 0, 0])
    }

    #[test]
    fn exif_only_becomes_the_simple_form() {
        let image = chunk(b"VP8 ", &[1, 2, 3, 4, 5]);
        let file = riff(&[
            vp8x(VP8X_EXIF),
            image.clone(),
            chunk(b"EXIF", b"Exif\0\0II*"),
        ]);
        assert_eq!(strip(file), riff(&[image]));
    }

    #[test]
    fn alpha_keeps_the_extended_form_with_the_flags_cleared() {
        let alph = chunk(b"ALPH", &[9, 9, 9]);
        let image = chunk(b"VP8 ", &[1, 2, 3, 4]);
        let file = riff(&[
            vp8x(0x10 | VP8X_EXIF | VP8X_XMP),
            alph.clone(),
            image.clone(),
            chunk(b"EXIF", b"e"),
            chunk(b"XMP ", b"<x/>"),
        ]);
        assert_eq!(strip(file), riff(&[vp8x(0x10), alph, image]));
    }

    #[test]
    fn files_without_metadata_or_not_webp_are_unchanged() {
        let plain = riff(&[chunk(b"VP8L", &[7; 11])]);
        assert_eq!(strip(plain.clone()), plain);
        let mut truncated = riff(&[vp8x(VP8X_EXIF), chunk(b"EXIF", b"abcdef")]);
        truncated.truncate(truncated.len() - 2);
        assert_eq!(strip(truncated.clone()), truncated);
        assert_eq!(strip(b"GIF89a".to_vec()), b"GIF89a".to_vec());
    }
}
