//! `crop` and `indexcrop`: their parameters, canonical forms and geometry
//! (the rectangle each keeps of a `w`×`h` image). Pure.

use std::fmt::Write as _;

use super::gravity::Gravity;
use crate::error::{Error, Result};

/// `crop`; `w`/`h` of 0 mean "to the edge of the image".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crop {
    pub w: u32,
    pub h: u32,
    pub x: u32,
    pub y: u32,
    pub g: Gravity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Axis {
    X,
    Y,
}

impl Crop {
    /// What a parameter left out means: from the top-left corner to the
    /// image's edges.
    pub const DEFAULT: Crop = Crop {
        w: 0,
        h: 0,
        x: 0,
        y: 0,
        g: Gravity::Nw,
    };

    /// `crop,<k>_<v>...`: parameters in alphabetical order, defaults left out.
    pub fn canonical(&self) -> String {
        let d = Crop::DEFAULT;
        let mut s = String::from("crop");
        if self.g != d.g {
            let _ = write!(s, ",g_{}", self.g.name());
        }
        for (k, v, dv) in [
            ("h", self.h, d.h),
            ("w", self.w, d.w),
            ("x", self.x, d.x),
            ("y", self.y, d.y),
        ] {
            if v != dv {
                let _ = write!(s, ",{k}_{v}");
            }
        }
        s
    }
}

/// The crop rectangle of OSS `crop` on a `w`×`h` image, or an error when the
/// start point lies outside the image.
pub fn crop_rect(w: u32, h: u32, c: &Crop) -> Result<(u32, u32, u32, u32)> {
    let cw = if c.w == 0 { w } else { c.w.min(w) };
    let chh = if c.h == 0 { h } else { c.h.min(h) };
    let (ox, oy) = match c.g {
        Gravity::Nw => (0, 0),
        Gravity::North => ((w / 2).saturating_sub(cw / 2), 0),
        Gravity::Ne => (w - cw, 0),
        Gravity::West => (0, (h / 2).saturating_sub(chh / 2)),
        Gravity::Center => (
            (w / 2).saturating_sub(cw / 2),
            (h / 2).saturating_sub(chh / 2),
        ),
        Gravity::East => (w - cw, (h / 2).saturating_sub(chh / 2)),
        Gravity::Sw => (0, h - chh),
        Gravity::South => ((w / 2).saturating_sub(cw / 2), h - chh),
        Gravity::Se => (w - cw, h - chh),
    };
    let x = ox.saturating_add(c.x);
    let y = oy.saturating_add(c.y);
    if x >= w || y >= h {
        return Err(Error::invalid(format!(
            "crop: the start point ({x},{y}) is outside the {w}x{h} image"
        )));
    }
    Ok((x, y, cw.min(w - x), chh.min(h - y)))
}

/// OSS `indexcrop`: cut into tiles of `len` along the axis and keep tile `i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexCrop {
    pub axis: Axis,
    pub len: u32,
    pub i: u32,
}

impl IndexCrop {
    pub fn canonical(&self) -> String {
        let a = if self.axis == Axis::X { "x" } else { "y" };
        format!("indexcrop,i_{},{a}_{}", self.i, self.len)
    }

    /// The tile kept of a `w`×`h` image as `(x, y, w, h)`; `None` when the
    /// index is past the last tile (the image stays unchanged, as on OSS).
    pub fn rect(&self, w: u32, h: u32) -> Option<(u32, u32, u32, u32)> {
        let total = if self.axis == Axis::X { w } else { h };
        let start = (self.i as u64) * (self.len as u64);
        if start >= total as u64 {
            return None;
        }
        let start = start as u32;
        let size = self.len.min(total - start);
        Some(match self.axis {
            Axis::X => (start, 0, size, h),
            Axis::Y => (0, start, w, size),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_geometry() {
        let c = |w, h, x, y, g| Crop { w, h, x, y, g };
        assert_eq!(
            crop_rect(1000, 800, &c(200, 100, 0, 0, Gravity::Nw)).expect("c"),
            (0, 0, 200, 100)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(200, 100, 0, 0, Gravity::Se)).expect("c"),
            (800, 700, 200, 100)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(200, 100, 0, 0, Gravity::Center)).expect("c"),
            (400, 350, 200, 100)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(0, 0, 800, 50, Gravity::Nw)).expect("c"),
            (800, 50, 200, 750)
        );
        assert_eq!(
            crop_rect(1000, 800, &c(200, 200, 10, 10, Gravity::Se)).expect("c"),
            (810, 610, 190, 190)
        );
        assert!(crop_rect(1000, 800, &c(0, 0, 1000, 0, Gravity::Nw)).is_err());
    }
    #[test]
    fn indexcrop_tiles() {
        let ic = |axis, len, i| IndexCrop { axis, len, i };
        assert_eq!(
            ic(Axis::X, 300, 1).rect(1000, 800),
            Some((300, 0, 300, 800))
        );
        assert_eq!(
            ic(Axis::X, 300, 3).rect(1000, 800),
            Some((900, 0, 100, 800))
        );
        assert_eq!(
            ic(Axis::Y, 300, 2).rect(1000, 800),
            Some((0, 600, 1000, 200))
        );
        assert_eq!(ic(Axis::Y, 300, 3).rect(1000, 800), None);
    }
}
