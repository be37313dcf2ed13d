//! Image formats: the ones pixmirror reads and writes, and a plan's format
//! (`format,<f>` or `format,auto`). Sniffing a format from bytes is the
//! codec's (`codec::format`).

/// Output (and source) image formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Jpg,
    Png,
    Webp,
    Avif,
    Gif,
    Bmp,
    Tiff,
    Heic,
    /// JPEG XL (libvips' jxl module, libjxl 0.7 on Debian 12).
    Jxl,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Jpg,
        Format::Png,
        Format::Webp,
        Format::Avif,
        Format::Gif,
        Format::Bmp,
        Format::Tiff,
        Format::Heic,
        Format::Jxl,
    ];

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "jpg" | "jpeg" => Format::Jpg,
            "png" => Format::Png,
            "webp" => Format::Webp,
            "avif" => Format::Avif,
            "gif" => Format::Gif,
            "bmp" => Format::Bmp,
            "tiff" | "tif" => Format::Tiff,
            "heic" | "heif" => Format::Heic,
            "jxl" => Format::Jxl,
            _ => return None,
        })
    }

    /// The canonical spelling, used in process strings and `info`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
            Format::Heic => "heic",
            Format::Jxl => "jxl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
            Format::Gif => "image/gif",
            Format::Bmp => "image/bmp",
            Format::Tiff => "image/tiff",
            Format::Heic => "image/heic",
            Format::Jxl => "image/jxl",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatSpec {
    Concrete(Format),
    /// `format,auto`: chosen from `Accept` before the cache key is computed.
    Auto,
}
