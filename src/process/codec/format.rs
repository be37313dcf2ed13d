//! Which image format a file is, from its first bytes (magic numbers), and
//! whether it looks like a video. Used by the engine and by the mirror (an
//! origin's content type, its size limit). Pure.

use crate::process::plan::Format;

impl Format {
    /// Format from the first bytes of a file (magic numbers).
    pub fn sniff(b: &[u8]) -> Option<Format> {
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpg)
        } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if b.starts_with(b"BM") {
            Some(Format::Bmp)
        } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
            Some(Format::Tiff)
        } else if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
            // A bare JPEG XL codestream, or the ISO BMFF container.
            Some(Format::Jxl)
        } else if b.len() >= 12 && &b[4..8] == b"ftyp" {
            match &b[8..12] {
                b"avif" | b"avis" => Some(Format::Avif),
                b"heic" | b"heix" | b"mif1" | b"msf1" | b"heim" | b"heis" | b"hevc" => {
                    Some(Format::Heic)
                }
                _ => None,
            }
        } else {
            None
        }
    }
}

/// Do these first bytes start an MP4/MOV (an ISO BMFF or QuickTime box) or a
/// Matroska/WebM file (EBML)? An image in an ISO BMFF box (AVIF, HEIC) is not.
pub fn looks_like_video(b: &[u8]) -> bool {
    if b.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return true;
    }
    if b.len() < 8 || Format::sniff(b).is_some() {
        return false;
    }
    matches!(
        &b[4..8],
        b"ftyp" | b"moov" | b"mdat" | b"wide" | b"free" | b"skip"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn videos_are_told_from_images() {
        assert!(looks_like_video(b"\0\0\0\x20ftypisom\0\0\x02\0"));
        assert!(looks_like_video(b"\0\0\0\x14ftypqt  \0\0\0\0"));
        assert!(looks_like_video(b"\0\0\0\x08wide\0\0\0\0"));
        assert!(looks_like_video(&[0x1A, 0x45, 0xDF, 0xA3, 0x9F]));
        assert!(!looks_like_video(b"\0\0\0\x1cftypavif\0\0\0\0"));
        assert!(!looks_like_video(b"\0\0\0\x18ftypheic\0\0\0\0"));
        assert!(!looks_like_video(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0, 0, 0]));
        assert!(!looks_like_video(b"ftyp"));
    }
}
