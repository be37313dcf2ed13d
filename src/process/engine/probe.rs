//! The probe: what the source's header says (format, size, orientation,
//! frames, colour profile), read without decoding pixels, with the source
//! limits enforced before anything is decoded.

use super::vips::{self, decode_err, Img};
use crate::error::{Error, Result};
use crate::process::codec::icc;
use crate::process::plan::Format;

/// What the header of the source says, read without decoding pixels.
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub format: Format,
    pub width: u32,
    pub height: u32,
    pub orientation: i32,
    /// Frames (pages) in the source; 1 for a still image.
    pub frames: u32,
    /// The embedded colour profile, read from the container's bytes.
    pub profile: icc::Profile,
}

impl Header {
    /// Dimensions as displayed (EXIF orientations 5–8 swap the sides).
    pub fn oriented(&self, auto_orient: bool) -> (u32, u32) {
        if auto_orient && (5..=8).contains(&self.orientation) {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// Read the header and enforce `max_source_pixels` (all frames counted) and
/// `max_frames` before any pixel is decoded.
pub fn probe(src: &[u8], max_pixels: u64, max_frames: u32) -> Result<Header> {
    vips::init()?;
    let format = Format::sniff(src)
        .ok_or_else(|| Error::unprocessable("the source is not an image in a supported format"))?;
    let img = libvips::VipsImage::new_from_buffer(src, "").map_err(|_| decode_err("load"))?;
    let img = Img::new(img);
    let (width, height) = (img.width(), img.height());
    let orientation = img.get().get_orientation();
    let frames = img.get().get_n_pages().max(1) as u64;
    if frames > max_frames as u64 {
        return Err(Error::unprocessable(format!(
            "the source has {frames} frames, over process.max_frames ({max_frames})"
        )));
    }
    let pixels = width as u64 * height as u64 * frames;
    if pixels > max_pixels {
        return Err(Error::unprocessable(format!(
            "the source has {width}x{height} pixels x {frames} frame(s) = {pixels}, over process.max_source_pixels ({max_pixels})"
        )));
    }
    Ok(Header {
        format,
        width,
        height,
        orientation,
        frames: frames as u32,
        profile: icc::sniff(src, format),
    })
}
