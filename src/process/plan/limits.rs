//! The ranges of the plan: the largest values any grammar may ask for, and
//! the longest key the store accepts. The language checks requests against
//! them; the geometry checks computed sizes against `MAX_SIDE`.

/// The longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Largest width/height/side accepted anywhere (SPEC: [1,16384]).
pub const MAX_SIDE: u32 = 16384;

/// Largest crop offset `x`/`y` (OSS `crop`, COS `cut`).
pub const MAX_CROP_OFFSET: u32 = 1 << 20;

/// The largest snapshot time `t`: 999,999,999 ms (11.5 days); past a
/// video's end is its last frame.
pub const MAX_T_MS: u64 = 999_999_999;

/// The widest a client hint may make a `w_auto` resize (`Sec-CH-Width`,
/// `Width`, viewport and default widths are clamped to it).
pub const MAX_HINT_WIDTH: u32 = 4096;

/// Largest `area` (COS/Qiniu `<Area>@`: [1, 24999999]).
pub const MAX_AREA: u64 = 24_999_999;

/// `circle` and `rounded-corners` radii: [1,4096] (OSS).
pub const MAX_RADIUS: u32 = 4096;

/// The longest watermark text, in UTF-8 bytes (OSS: "font content is too large").
pub const MAX_TEXT_BYTES: usize = 64;

/// Image watermarks in one plan (OSS's default quota).
pub const MAX_IMAGE_MARKS: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration checks snapped sizes and the default hint width
    /// against its own copies of these (it depends on nothing of pixmirror's).
    #[test]
    fn the_configuration_checks_against_the_same_limits() {
        assert_eq!(crate::config::MAX_SNAP, MAX_SIDE);
        assert_eq!(crate::config::MAX_DEFAULT_WIDTH, MAX_HINT_WIDTH);
    }
}
