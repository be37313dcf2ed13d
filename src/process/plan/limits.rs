//! The ranges of the plan: the largest values any grammar may ask for, and
//! the longest key the store accepts. The language checks requests against
//! them; the geometry checks computed sizes against `MAX_SIDE`.

/// The longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Largest width/height/side accepted anywhere (SPEC: [1,16384]).
pub const MAX_SIDE: u32 = 16384;

/// Largest `area` (COS/Qiniu `<Area>@`: [1, 24999999]).
pub const MAX_AREA: u64 = 24_999_999;

/// `circle` and `rounded-corners` radii: [1,4096] (OSS).
pub const MAX_RADIUS: u32 = 4096;

/// The longest watermark text, in UTF-8 bytes (OSS: "font content is too large").
pub const MAX_TEXT_BYTES: usize = 64;

/// Image watermarks in one plan (OSS's default quota).
pub const MAX_IMAGE_MARKS: usize = 3;
