//! The plan's pixel operations, applied left to right: their names and
//! canonical forms. Each family's parameters and geometry live in its own
//! file (`resize`, `crop`, `watermark`); the one-value operations here.

use super::crop::{Crop, IndexCrop};
use super::resize::Resize;
use super::watermark::{MarkOp, Watermark};

/// A pixel operation, applied left to right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Resize(Resize),
    Crop(Crop),
    IndexCrop(IndexCrop),
    Circle { r: u32 },
    RoundedCorners { r: u32 },
    Rotate(u32),
    Blur { r: u32, s: u32 },
    Bright(i32),
    Contrast(i32),
    Sharpen(u32),
    Watermark(Box<Watermark>),
}

impl Op {
    /// The OSS action name, for messages.
    pub fn action(&self) -> &'static str {
        match self {
            Op::Resize(_) => "resize",
            Op::Crop(_) => "crop",
            Op::IndexCrop(_) => "indexcrop",
            Op::Circle { .. } => "circle",
            Op::RoundedCorners { .. } => "rounded-corners",
            Op::Rotate(_) => "rotate",
            Op::Blur { .. } => "blur",
            Op::Bright(_) => "bright",
            Op::Contrast(_) => "contrast",
            Op::Sharpen(_) => "sharpen",
            Op::Watermark(_) => "watermark",
        }
    }

    /// The canonical action: parameters in alphabetical order, defaults left out.
    pub fn canonical(&self) -> String {
        match self {
            Op::Resize(r) => r.canonical(),
            Op::Crop(c) => c.canonical(),
            Op::IndexCrop(c) => c.canonical(),
            Op::Circle { r } => format!("circle,r_{r}"),
            Op::RoundedCorners { r } => format!("rounded-corners,r_{r}"),
            Op::Rotate(d) => format!("rotate,{d}"),
            Op::Blur { r, s } => format!("blur,r_{r},s_{s}"),
            Op::Bright(v) => format!("bright,{v}"),
            Op::Contrast(v) => format!("contrast,{v}"),
            Op::Sharpen(v) => format!("sharpen,{v}"),
            Op::Watermark(w) => w.canonical(),
        }
    }
}

impl From<MarkOp> for Op {
    fn from(m: MarkOp) -> Op {
        match m {
            MarkOp::Resize(r) => Op::Resize(r),
            MarkOp::Crop(c) => Op::Crop(c),
            MarkOp::IndexCrop(c) => Op::IndexCrop(c),
            MarkOp::RoundedCorners { r } => Op::RoundedCorners { r },
            MarkOp::Rotate(d) => Op::Rotate(d),
        }
    }
}

impl TryFrom<Op> for MarkOp {
    /// The operation a watermark image cannot be preprocessed with.
    type Error = Op;

    fn try_from(o: Op) -> Result<MarkOp, Op> {
        Ok(match o {
            Op::Resize(r) => MarkOp::Resize(r),
            Op::Crop(c) => MarkOp::Crop(c),
            Op::IndexCrop(c) => MarkOp::IndexCrop(c),
            Op::RoundedCorners { r } => MarkOp::RoundedCorners { r },
            Op::Rotate(d) => MarkOp::Rotate(d),
            other => return Err(other),
        })
    }
}

impl MarkOp {
    /// The same as the plan's operation.
    pub fn canonical(&self) -> String {
        Op::from(self.clone()).canonical()
    }
}
