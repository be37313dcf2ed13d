//! Run a resolved [`Plan`] over source bytes with libvips. Reads top to bottom:
//! probe → (report) → load with shrink-on-load → the plan's operations in order
//! → encode. An animated GIF or WebP written as GIF or WebP runs the
//! operations on each frame (`animation`). Blocking and CPU-bound: call it
//! from the bounded blocking pool.

use std::time::Instant;

pub use super::encode::Output;
pub use super::load::{load_shrink, pixel_estimate};
pub use super::options::Options;
pub use super::overlay::Marks;
pub use super::probe::{probe, Header};

use super::encode::{encode, output_format};
use super::load::{load, Preshrunk};
use super::overlay::{self, MarkLimits};
use super::vips::Img;
use super::{animation, ops, report};
use crate::error::{Error, Result};
use crate::process::codec::jpeg;
use crate::process::plan::geometry::{geometry, within_output_cap};
use crate::process::plan::{
    resize_target, turned, Format, FormatSpec, Op, Plan, Report, ResizeTarget,
};

/// The whole pipeline, for a plan that draws no watermark image.
pub fn run(src: &[u8], plan: &Plan, opts: &Options) -> Result<Output> {
    run_with(src, plan, opts, &Marks::new())
}

/// The whole pipeline; `marks` holds the watermark images the plan names
/// (`Plan::mark_keys`).
pub fn run_with(src: &[u8], plan: &Plan, opts: &Options, marks: &Marks) -> Result<Output> {
    let header = probe(src, opts.max_source_pixels, opts.max_frames)?;
    // The header's parse cannot be stopped; a slow one still ends the run.
    Error::check_deadline(opts.deadline)?;
    match plan.report {
        Some(Report::Info) => return Ok(report::info(src, &header)),
        Some(Report::AverageHue) => return report::average_hue(src, &header, plan, opts),
        _ => {}
    }
    let placeholder = plan.report.filter(|r| r.is_placeholder());
    let plan = &*animation::source_rules(plan, header.format);
    let plan = &*match placeholder {
        Some(_) => std::borrow::Cow::Owned(report::placeholder_plan(plan)),
        None => std::borrow::Cow::Borrowed(plan),
    };
    let format = output_format(plan, header.format);
    let frames = match placeholder {
        Some(_) => 1,
        None => kept_frames(&header, format),
    };
    let from = header.oriented(plan.auto_orient && frames == 1);
    geometry(plan, from, frames, opts.max_output_pixels)?;
    let (img, preshrunk) = load(src, &header, plan, frames, opts)?;
    let steps = |img| apply_all(img, plan, preshrunk, frames, opts, marks);
    let img = match frames {
        1 => steps(img)?,
        n => animation::each_frame(img, n, steps)?,
    };
    Error::check_deadline(opts.deadline)?;
    if let Some(kind) = placeholder {
        return report::placeholder(img, kind, opts);
    }
    // Estimated only when the plan's quality is relative to, or capped by, it.
    let source_quality = match (plan.quality, header.format) {
        (Some(_), Format::Jpg) => jpeg::estimate(src),
        _ => None,
    };
    let per_frame = img.width() as u64 * img.height() as u64 / frames.max(1) as u64;
    let effort = opts.webp_effort_for(header.width as u64 * header.height as u64, per_frame);
    let bytes = encode(img, format, plan, opts, source_quality, effort)?;
    Ok(Output {
        bytes,
        content_type: format.content_type(),
    })
}

/// The image half of a video snapshot: a decoded frame (packed RGB of
/// `from`) sized to `to` (the turned frame's size), turned `turn` degrees
/// clockwise, encoded as `format`. Sized first: fewer pixels to turn.
pub fn run_frame(
    rgb: &[u8],
    from: (u32, u32),
    turn: u32,
    to: (u32, u32),
    format: Format,
    opts: &Options,
) -> Result<Output> {
    let img = super::vips::from_pixels(rgb, from.0, from.1, 3)?;
    let scaled = turned(to, turn);
    let t = ResizeTarget {
        scaled,
        frame: None,
        pad: false,
        smart: false,
    };
    let img = ops::resize(img, &t, None, [255, 255, 255], opts.deadline)?;
    let img = match turn {
        0 => img,
        d => ops::rotate(img, d)?,
    };
    Error::check_deadline(opts.deadline)?;
    let plan = Plan {
        format: Some(FormatSpec::Concrete(format)),
        ..Plan::default()
    };
    let bytes = encode(img, format, &plan, opts, None, opts.webp_effort)?;
    Ok(Output {
        bytes,
        content_type: format.content_type(),
    })
}

/// The plan's steps in order on one image (or one frame of `frames`), each
/// result checked against the output cap.
fn apply_all(
    mut img: Img,
    plan: &Plan,
    mut preshrunk: Option<Preshrunk>,
    frames: u32,
    opts: &Options,
    marks: &Marks,
) -> Result<Img> {
    let env = StepEnv {
        marks,
        limits: MarkLimits {
            max_pixels: opts.max_output_pixels,
            deadline: opts.deadline,
        },
        deadline: opts.deadline,
    };
    for step in &plan.ops {
        Error::check_deadline(opts.deadline)?;
        img = apply(img, step, preshrunk.take(), &env)?;
        let size = (img.width(), img.height());
        within_output_cap(step.action(), size, frames, opts.max_output_pixels)?;
    }
    Ok(img)
}

/// Frames the output keeps: all of an animated GIF or WebP written as GIF or
/// WebP, else 1 (the first).
fn kept_frames(header: &Header, output: Format) -> u32 {
    if animation::keeps_frames(header.format, header.frames, output) {
        header.frames
    } else {
        1
    }
}

/// Frames a run of `plan` on `src` keeps, counted from the container without
/// libvips (for the memory estimate); 1 when unsure.
pub fn kept_frames_of(src: &[u8], plan: &Plan) -> u32 {
    match Format::sniff(src) {
        // Frames are counted only where they can be kept.
        Some(source) if animation::animates(source, output_format(plan, source)) => {
            animation::count_frames(src)
        }
        _ => 1,
    }
}

/// What the steps of one run share: the watermark images, the mark limits,
/// and the deadline for steps that decode (the Rust resampler reads the
/// decoded pixels).
struct StepEnv<'a> {
    marks: &'a Marks,
    limits: MarkLimits,
    deadline: Option<Instant>,
}

fn apply(img: Img, step: &Op, preshrunk: Option<Preshrunk>, env: &StepEnv) -> Result<Img> {
    match step {
        Op::Resize(r) => {
            let (t, source) = match preshrunk {
                Some(p) => (p.target, p.source),
                None => (resize_target(img.width(), img.height(), r)?, None),
            };
            ops::resize(img, &t, source, r.color, env.deadline)
        }
        Op::Crop(c) => ops::crop(img, c),
        Op::IndexCrop(c) => ops::indexcrop(img, c),
        Op::Circle { r } => ops::circle(img, *r),
        Op::RoundedCorners { r } => ops::rounded_corners(img, *r),
        Op::Rotate(d) => ops::rotate(img, *d),
        Op::Blur { r, s } => ops::blur(img, *r, *s),
        Op::Bright(v) => ops::bright(img, *v),
        Op::Contrast(v) => ops::contrast(img, *v),
        Op::Sharpen(v) => ops::sharpen(img, *v),
        Op::Watermark(w) => overlay::draw(img, w, env.marks, env.limits),
    }
}
