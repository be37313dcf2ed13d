//! Image processing, in four layers and a fifth for video:
//!
//! - `lang`: the request languages (OSS/BOS, COS/Qiniu, styles, `format,auto`)
//!   parsed into a plan; pure.
//! - `plan`: the typed canonical plan, one file per action family, with its
//!   canonical form and geometry; pure, depends on nothing else here.
//! - `codec`: container bytes read and patched in pure Rust (no libvips).
//! - `engine`: libvips; runs a resolved plan over source bytes.
//! - `video`: FFmpeg; one frame of a video over ranged reads, handed to the
//!   engine (`video/snapshot`).
//!
//! Arrows point down only: `lang` → `plan`; `engine` → `plan`, `codec`;
//! `codec` → `plan` (the `Format` type); `video` → `engine`, `plan`. Nothing
//! here reads the configuration: the service hands the engine its `Options`.

pub mod codec;
pub mod engine;
pub mod lang;
pub mod plan;
pub mod video;

pub use plan::{Format, FormatSpec, Plan};
