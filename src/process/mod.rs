//! Image processing, in four layers:
//!
//! - `lang`: the request languages (OSS/BOS, COS/Qiniu, styles, `format,auto`)
//!   parsed into a plan; pure.
//! - `plan`: the typed canonical plan, one file per action family, with its
//!   canonical form and geometry; pure, depends on nothing else here.
//! - `codec`: container bytes read and patched in pure Rust (no libvips).
//! - `engine`: libvips; runs a resolved plan over source bytes.
//!
//! Arrows point down only: `lang` → `plan`; `engine` → `plan`, `codec`;
//! `codec` → `plan` (the `Format` type).

pub mod codec;
pub mod engine;
pub mod lang;
pub mod plan;

pub use plan::{Format, FormatSpec, Plan};
