//! Which colour profile does the source carry? Read from the container's bytes
//! (JPEG APP2, PNG iCCP/sRGB, WebP ICCP, each found by its container's walker)
//! before libvips decodes anything. Pure.
//!
//! The answer decides the colour step of the load: an ICC transform (an lcms
//! transform built per image, several milliseconds) runs only when the source
//! carries a profile that is not sRGB; everything else is already sRGB, or is
//! converted with libvips' built-in colourspace maths.

use super::{jpeg, png, webp};
use crate::process::plan::Format;

/// What the source says about its colour space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// No embedded profile: the pixels are taken as sRGB (or grey/CMYK by their
    /// interpretation).
    None,
    /// An embedded profile that describes itself as sRGB, or a PNG `sRGB` chunk.
    Srgb,
    /// Another profile (Display P3, Adobe RGB, CMYK, ...), or one that cannot be
    /// read without decoding (compressed PNG iCCP): needs the ICC transform.
    Other,
}

/// The embedded profile of `src`. Formats not parsed here answer `Other`, so
/// that libvips looks for a profile itself (correct, only slower).
pub fn sniff(src: &[u8], format: Format) -> Profile {
    match format {
        Format::Jpg => jpeg::icc_profile(src).map_or(Profile::None, classify),
        Format::Png => match png::colour_chunk(src) {
            Some(b"iCCP") => Profile::Other,
            Some(_) => Profile::Srgb,
            None => Profile::None,
        },
        Format::Webp => webp::icc_profile(src).map_or(Profile::None, classify),
        Format::Gif | Format::Bmp => Profile::None,
        Format::Tiff | Format::Heic | Format::Avif | Format::Jxl => Profile::Other,
    }
}

fn be32(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

fn classify(profile: &[u8]) -> Profile {
    if is_srgb(profile) {
        Profile::Srgb
    } else {
        Profile::Other
    }
}

/// Does an ICC profile describe RGB data and call itself "sRGB ..."? Reads the
/// `desc` tag: ICC v2 `desc` (ASCII) or v4 `mluc` (UTF-16BE, first record).
pub fn is_srgb(p: &[u8]) -> bool {
    if p.get(16..20) != Some(b"RGB ") {
        return false;
    }
    let Some(count) = be32(p, 128) else {
        return false;
    };
    for i in 0..count.min(64) {
        let e = 132 + 12 * i;
        if p.get(e..e + 4) != Some(b"desc") {
            continue;
        }
        let (Some(off), Some(size)) = (be32(p, e + 4), be32(p, e + 8)) else {
            return false;
        };
        let Some(tag) = p.get(off..off.saturating_add(size)) else {
            return false;
        };
        return description(tag).is_some_and(|d| d.starts_with("sRGB"));
    }
    false
}

fn description(tag: &[u8]) -> Option<String> {
    match tag.get(0..4)? {
        b"desc" => {
            let n = be32(tag, 8)?;
            let s = tag.get(12..12 + n)?;
            Some(
                String::from_utf8_lossy(s)
                    .trim_end_matches('\0')
                    .to_string(),
            )
        }
        b"mluc" => {
            let (len, off) = (be32(tag, 20)?, be32(tag, 24)?);
            let units: Vec<u16> = tag
                .get(off..off + len)?
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            Some(String::from_utf16_lossy(&units))
        }
        _ => None,
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A minimal ICC profile: header, one `desc` tag (v2 ASCII or v4 mluc).
    pub fn profile(space: &[u8; 4], desc: &str, v4: bool) -> Vec<u8> {
        let mut tag = Vec::new();
        if v4 {
            let text: Vec<u8> = desc.encode_utf16().flat_map(|u| u.to_be_bytes()).collect();
            tag.extend_from_slice(b"mluc\0\0\0\0");
            tag.extend_from_slice(&1u32.to_be_bytes());
            tag.extend_from_slice(&12u32.to_be_bytes());
            tag.extend_from_slice(b"enUS");
            tag.extend_from_slice(&(text.len() as u32).to_be_bytes());
            tag.extend_from_slice(&28u32.to_be_bytes());
            tag.extend_from_slice(&text);
        } else {
            tag.extend_from_slice(b"desc\0\0\0\0");
            tag.extend_from_slice(&(desc.len() as u32 + 1).to_be_bytes());
            tag.extend_from_slice(desc.as_bytes());
            tag.push(0);
        }
        let mut p = vec![0u8; 128];
        p[16..20].copy_from_slice(space);
        p[36..40].copy_from_slice(b"acsp");
        p.extend_from_slice(&1u32.to_be_bytes());
        p.extend_from_slice(b"desc");
        p.extend_from_slice(&144u32.to_be_bytes());
        p.extend_from_slice(&(tag.len() as u32).to_be_bytes());
        p.extend_from_slice(&tag);
        let n = p.len() as u32;
        p[0..4].copy_from_slice(&n.to_be_bytes());
        p
    }

    fn jpeg_with(profile: Option<&[u8]>) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend_from_slice(&[0xFF, 0xE0, 0, 16]);
        j.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        if let Some(p) = profile {
            let mut body = b"ICC_PROFILE\0\x01\x01".to_vec();
            body.extend_from_slice(p);
            j.extend_from_slice(&[0xFF, 0xE2]);
            j.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
            j.extend_from_slice(&body);
        }
        j.extend_from_slice(&[0xFF, 0xDA, 0, 2, 0xFF, 0xD9]);
        j
    }

    #[test]
    fn srgb_profiles_are_recognised_in_both_versions() {
        assert!(is_srgb(&profile(b"RGB ", "sRGB IEC61966-2.1", false)));
        assert!(is_srgb(&profile(b"RGB ", "sRGB built-in", true)));
        assert!(!is_srgb(&profile(b"RGB ", "Display P3", true)));
        assert!(!is_srgb(&profile(b"RGB ", "Adobe RGB (1998)", false)));
        assert!(!is_srgb(&profile(b"CMYK", "sRGB-looking CMYK", false)));
        assert!(!is_srgb(b"short"));
    }

    #[test]
    fn jpeg_profiles() {
        assert_eq!(sniff(&jpeg_with(None), Format::Jpg), Profile::None);
        let srgb = profile(b"RGB ", "sRGB IEC61966-2.1", false);
        assert_eq!(sniff(&jpeg_with(Some(&srgb)), Format::Jpg), Profile::Srgb);
        let p3 = profile(b"RGB ", "Display P3", true);
        assert_eq!(sniff(&jpeg_with(Some(&p3)), Format::Jpg), Profile::Other);
        // Truncated or hostile bytes never panic.
        let full = jpeg_with(Some(&p3));
        for n in 0..full.len() {
            let _ = sniff(&full[..n], Format::Jpg);
        }
    }

    #[test]
    fn png_and_webp_profiles() {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[0, 0, 0, 13]);
        png.extend_from_slice(b"IHDR");
        png.extend_from_slice(&[0; 17]);
        let mut with_srgb = png.clone();
        with_srgb.extend_from_slice(&[0, 0, 0, 1]);
        with_srgb.extend_from_slice(b"sRGB\0\0\0\0\0");
        assert_eq!(sniff(&with_srgb, Format::Png), Profile::Srgb);
        let mut with_iccp = png.clone();
        with_iccp.extend_from_slice(&[0, 0, 0, 3]);
        with_iccp.extend_from_slice(b"iCCPab\0\0\0\0\0");
        assert_eq!(sniff(&with_iccp, Format::Png), Profile::Other);
        png.extend_from_slice(&[0, 0, 0, 0]);
        png.extend_from_slice(b"IDAT\0\0\0\0");
        assert_eq!(sniff(&png, Format::Png), Profile::None);

        let p3 = profile(b"RGB ", "Display P3", false);
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X".to_vec();
        webp.extend_from_slice(&10u32.to_le_bytes());
        webp.extend_from_slice(&[0; 10]);
        webp.extend_from_slice(b"ICCP");
        webp.extend_from_slice(&(p3.len() as u32).to_le_bytes());
        webp.extend_from_slice(&p3);
        assert_eq!(sniff(&webp, Format::Webp), Profile::Other);
        for n in 0..webp.len() {
            let _ = sniff(&webp[..n], Format::Webp);
        }
    }
}
