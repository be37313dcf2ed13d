//! The limits and encoder settings of one pipeline run. The service makes
//! them from `[process]` (`Options::from_config`, in `service::app`): the
//! engine does not read the configuration.

use std::time::Instant;

/// Limits and encoder defaults of one run.
#[derive(Clone, Debug)]
pub struct Options {
    pub max_source_pixels: u64,
    pub max_output_pixels: u64,
    pub max_frames: u32,
    pub jpeg_quality: u8,
    pub webp_quality: u8,
    pub avif_quality: u8,
    pub avif_effort: u8,
    pub webp_effort: u8,
    pub webp_large_source_effort: u8,
    /// Leave out the scans of a progressive JPEG that a 1/8 decode cannot
    /// see (`codec::jpeg_scans`).
    pub jpeg_scan_skip: bool,
    /// Checked between steps; past it the run ends with 504 Timeout.
    pub deadline: Option<Instant>,
}

impl Options {
    /// The WebP encoder's effort for an output of `output` pixels (per
    /// frame) from a source of `source` pixels: `webp_large_source_effort`
    /// from [`LARGE_SOURCE_RATIO`] times the output's pixels, never below
    /// `webp_effort`.
    pub fn webp_effort_for(&self, source: u64, output: u64) -> u8 {
        if source >= LARGE_SOURCE_RATIO * output.max(1) {
            self.webp_effort.max(self.webp_large_source_effort)
        } else {
            self.webp_effort
        }
    }
}

/// How many times the output's pixels a source must have for
/// `webp_large_source_effort`: a 300 px thumbnail of a photo over about
/// 8 MP. Decoding such a source (even at 1/8) costs 30 times and more what
/// encoding the thumbnail does, so libwebp's method 5 (trellis
/// quantisation: about 1.4 ms more per 300 px output, 1.5-2% fewer bytes at
/// the same quality) adds at most a few percent to the request; on a small
/// photo it would add 10%.
pub const LARGE_SOURCE_RATIO: u64 = 128;
