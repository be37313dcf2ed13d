//! `video/snapshot`: one frame of a video as an image (Aliyun OSS). Its type,
//! canonical form and geometry; parsed in `lang::oss`, decoded in
//! `process::video`.

use super::format::Format;
use crate::error::{Error, Result};

/// `ar`: how the frame is turned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    /// `ar_auto`: by the video's rotation metadata.
    Auto,
    /// `ar_w`: upright (as `auto`), then landscape if it is not.
    Landscape,
    /// `ar_h`: upright (as `auto`), then portrait if it is not.
    Portrait,
}

impl Turn {
    pub fn parse(s: &str) -> Option<Turn> {
        Some(match s {
            "auto" => Turn::Auto,
            "w" => Turn::Landscape,
            "h" => Turn::Portrait,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Turn::Auto => "auto",
            Turn::Landscape => "w",
            Turn::Portrait => "h",
        }
    }
}

/// One snapshot request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Milliseconds from the start; past the end: the last frame.
    pub t_ms: u64,
    /// 0: proportional to the other side; both 0: the video's size.
    pub w: u32,
    pub h: u32,
    /// `m_fast`: the keyframe at or before `t`, not the exact frame.
    pub fast: bool,
    /// `f`: JPEG or PNG.
    pub format: Format,
    /// `ar`; None: the frame as coded, never turned.
    pub turn: Option<Turn>,
}

/// The size of a `w`×`h` picture turned `deg` degrees clockwise (0, 90,
/// 180, 270): a quarter turn swaps the sides.
pub fn turned((w, h): (u32, u32), deg: u32) -> (u32, u32) {
    match deg {
        90 | 270 => (h, w),
        _ => (w, h),
    }
}

/// The formats `f` takes.
pub const SNAPSHOT_FORMATS: [Format; 2] = [Format::Jpg, Format::Png];

impl Snapshot {
    /// `video/snapshot,<k_v,...>`, parameters in name order (as image actions).
    pub fn canonical(&self) -> String {
        let mut s = String::from("video/snapshot");
        if let Some(t) = self.turn {
            s.push_str(&format!(",ar_{}", t.name()));
        }
        s.push_str(&format!(",f_{},h_{}", self.format.name(), self.h));
        if self.fast {
            s.push_str(",m_fast");
        }
        s.push_str(&format!(",t_{},w_{}", self.t_ms, self.w));
        s
    }

    /// Clockwise degrees to turn a `coded` frame whose metadata says
    /// `rotation`: nothing without `ar`; `ar_w` / `ar_h` a further 90 when
    /// the upright frame has the other shape.
    pub fn turn_degrees(&self, rotation: u32, coded: (u32, u32)) -> u32 {
        let Some(turn) = self.turn else { return 0 };
        let upright = turned(coded, rotation);
        let extra = match turn {
            Turn::Auto => 0,
            Turn::Landscape if upright.1 > upright.0 => 90,
            Turn::Portrait if upright.0 > upright.1 => 90,
            _ => 0,
        };
        (rotation + extra) % 360
    }

    /// The output's size from the turned frame's `from`: `w`/`h` within
    /// `[0, the video's side]` (OSS), 0 proportional, both 0 the frame's size.
    pub fn size(&self, from: (u32, u32)) -> Result<(u32, u32)> {
        let (fw, fh) = (from.0.max(1) as u64, from.1.max(1) as u64);
        if self.w > from.0 {
            return Err(Error::invalid(format!(
                "snapshot: parameter w must be in [0,{}] (the video's width), got {}",
                from.0, self.w
            )));
        }
        if self.h > from.1 {
            return Err(Error::invalid(format!(
                "snapshot: parameter h must be in [0,{}] (the video's height), got {}",
                from.1, self.h
            )));
        }
        let prop = |a: u32, num: u64, den: u64| ((a as u64 * num + den / 2) / den).max(1) as u32;
        Ok(match (self.w, self.h) {
            (0, 0) => from,
            (w, 0) => (w, prop(w, fh, fw)),
            (0, h) => (prop(h, fw, fh), h),
            (w, h) => (w, h),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(w: u32, h: u32, turn: Option<Turn>) -> Snapshot {
        Snapshot {
            t_ms: 1000,
            w,
            h,
            fast: false,
            format: Format::Jpg,
            turn,
        }
    }

    #[test]
    fn sizes_follow_oss() {
        assert_eq!(snap(0, 0, None).size((1280, 720)).ok(), Some((1280, 720)));
        assert_eq!(snap(320, 0, None).size((1280, 720)).ok(), Some((320, 180)));
        assert_eq!(snap(0, 90, None).size((1280, 720)).ok(), Some((160, 90)));
        assert_eq!(
            snap(100, 100, None).size((1280, 720)).ok(),
            Some((100, 100))
        );
        assert_eq!(snap(1, 0, None).size((1280, 720)).ok(), Some((1, 1)));
        let e = snap(1281, 0, None).size((1280, 720)).expect_err("too wide");
        assert_eq!(e.code(), "InvalidArgument");
        assert!(e.to_string().contains("parameter w"), "{e}");
        assert!(snap(0, 721, None).size((1280, 720)).is_err());
    }

    #[test]
    fn turns() {
        let coded = (1280, 720);
        assert_eq!(snap(0, 0, None).turn_degrees(90, coded), 0);
        assert_eq!(snap(0, 0, Some(Turn::Auto)).turn_degrees(90, coded), 90);
        assert_eq!(snap(0, 0, Some(Turn::Auto)).turn_degrees(0, coded), 0);
        // Upright it is portrait: `w` turns it a further 90, `h` keeps it.
        assert_eq!(
            snap(0, 0, Some(Turn::Landscape)).turn_degrees(90, coded),
            180
        );
        assert_eq!(snap(0, 0, Some(Turn::Portrait)).turn_degrees(90, coded), 90);
        assert_eq!(snap(0, 0, Some(Turn::Portrait)).turn_degrees(0, coded), 90);
        assert_eq!(
            snap(0, 0, Some(Turn::Landscape)).turn_degrees(270, coded),
            0
        );
    }

    #[test]
    fn canonical_names_every_parameter_in_order() {
        let s = Snapshot {
            t_ms: 7000,
            w: 800,
            h: 0,
            fast: true,
            format: Format::Jpg,
            turn: Some(Turn::Auto),
        };
        assert_eq!(
            s.canonical(),
            "video/snapshot,ar_auto,f_jpg,h_0,m_fast,t_7000,w_800"
        );
        assert_eq!(
            snap(0, 0, None).canonical(),
            "video/snapshot,f_jpg,h_0,t_1000,w_0"
        );
    }
}
