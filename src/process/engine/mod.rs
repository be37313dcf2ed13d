//! Everything that touches libvips: the pipeline (probe → load → operations
//! → encode) over source bytes and a resolved plan. Depends on `plan` and
//! `codec`, never on `lang`; knows nothing of HTTP or storage. Blocking and
//! CPU-bound: it runs only in the bounded blocking pool (`pool`).
//!
//! `pipeline` is the entry point; `vips` is the only file that touches libvips
//! globals.

mod animation;
mod encode;
mod load;
mod ops;
mod options;
mod overlay;
pub mod pipeline;
mod probe;
mod report;
mod resample;
pub mod vips;
