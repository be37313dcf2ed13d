//! `resize`: its parameters, their defaults, the canonical form, and the
//! geometry (what size a resize makes of a `w`×`h` image). Pure.

use std::fmt::Write as _;

use super::limits::MAX_SIDE;
use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeMode {
    Lfit,
    Mfit,
    Fill,
    Pad,
    Fixed,
}

impl ResizeMode {
    pub fn name(self) -> &'static str {
        match self {
            ResizeMode::Lfit => "lfit",
            ResizeMode::Mfit => "mfit",
            ResizeMode::Fill => "fill",
            ResizeMode::Pad => "pad",
            ResizeMode::Fixed => "fixed",
        }
    }
}

/// `resize`. After normalisation only the parameters that take effect are set:
/// `w`/`h` win over `l`/`s`, which win over `p`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    pub mode: ResizeMode,
    pub w: Option<u32>,
    pub h: Option<u32>,
    pub l: Option<u32>,
    pub s: Option<u32>,
    pub p: Option<u32>,
    /// true (default): never enlarge.
    pub limit: bool,
    /// Pad colour, RRGGBB.
    pub color: [u8; 3],
    /// Scale so that width × height ≤ this (COS `<Area>@`); pixmirror's
    /// `area_N`, below `p` in precedence.
    pub area: Option<u64>,
    /// Only enlarge: a resize that would shrink leaves the image unchanged
    /// (COS `WxH<`); pixmirror's `grow_1`.
    pub grow: bool,
    /// Width and height scaled apart, in percent (BOS `wp`/`hp`, COS
    /// `!50px`/`!x50p`); the side not given stays. Below `p` in precedence.
    pub wp: Option<u32>,
    pub hp: Option<u32>,
    /// `w_auto`: the width from the client hints (`lang::hints` replaces it
    /// with a number before the plan is canonicalised).
    pub w_auto: bool,
    /// `g_smart` (with `m_fill`): the frame keeps the most salient region
    /// (libvips' attention crop), not the centre. pixmirror's extension; COS
    /// `scrop`.
    pub smart: bool,
}

impl Resize {
    /// OSS's defaults: `lfit`, never enlarge, white padding.
    pub const DEFAULT: Resize = Resize {
        mode: ResizeMode::Lfit,
        w: None,
        h: None,
        l: None,
        s: None,
        p: None,
        limit: true,
        color: [255, 255, 255],
        area: None,
        grow: false,
        wp: None,
        hp: None,
        w_auto: false,
        smart: false,
    };
}

impl Default for Resize {
    fn default() -> Resize {
        Resize::DEFAULT
    }
}

impl Resize {
    /// `resize,<k>_<v>...`: parameters in alphabetical order, defaults left out.
    pub fn canonical(&self) -> String {
        let mut s = String::from("resize");
        let mut kv = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                let _ = write!(s, ",{k}_{v}");
            }
        };
        let c = self.color;
        let padded = self.mode == ResizeMode::Pad && c != [255, 255, 255];
        kv("area", self.area.map(|a| a.to_string()));
        kv(
            "color",
            padded.then(|| format!("{:02X}{:02X}{:02X}", c[0], c[1], c[2])),
        );
        kv("g", self.smart.then(|| "smart".into()));
        kv("grow", self.grow.then(|| "1".into()));
        kv("h", self.h.map(|v| v.to_string()));
        kv("hp", self.hp.map(|v| v.to_string()));
        kv("l", self.l.map(|v| v.to_string()));
        kv("limit", (!self.limit).then(|| "0".into()));
        let mode = (self.mode != ResizeMode::Lfit).then(|| self.mode.name().to_string());
        kv("m", mode);
        kv("p", self.p.map(|v| v.to_string()));
        kv("s", self.s.map(|v| v.to_string()));
        let w = self.w.map(|v| v.to_string());
        kv("w", w.or_else(|| self.w_auto.then(|| "auto".into())));
        kv("wp", self.wp.map(|v| v.to_string()));
        s
    }
}

/// What a resize does to an image of a given size: scale to `scaled`, then
/// optionally crop (fill) or pad (pad) to `frame`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResizeTarget {
    pub scaled: (u32, u32),
    pub frame: Option<(u32, u32)>,
    pub pad: bool,
    /// Crop to the frame around the most salient region (`g_smart`).
    pub smart: bool,
}

impl ResizeTarget {
    /// The size of the result: the frame a fill crops to or a pad pads to,
    /// else the scaled size.
    pub fn size(&self) -> (u32, u32) {
        let (sw, sh) = self.scaled;
        match self.frame {
            None => self.scaled,
            Some((fw, fh)) if self.pad => (fw.max(sw), fh.max(sh)),
            Some((fw, fh)) => (fw.min(sw), fh.min(sh)),
        }
    }
}

fn round_dim(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

/// The scaled size and the frame of a resize; `None` when the image stays
/// as it is (`limit` and an enlargement, or `grow` and a reduction).
type Sized = Option<((u32, u32), Option<(u32, u32)>)>;

/// OSS resize geometry for a `w`×`h` image.
pub fn resize_target(w: u32, h: u32, r: &Resize) -> Result<ResizeTarget> {
    // Both `l` and `s`: the long and the short side of a w×h box in the
    // source's orientation, so every mode means what it means for w/h
    // (`m_fixed` forces l×s, `fill` crops to it, `pad` pads to it).
    if let (None, None, Some(l), Some(s)) = (r.w, r.h, r.l, r.s) {
        let (bw, bh) = if w >= h { (l, s) } else { (s, l) };
        let boxed = Resize {
            w: Some(bw),
            h: Some(bh),
            l: None,
            s: None,
            ..r.clone()
        };
        return resize_target(w, h, &boxed);
    }
    let sized = if r.w.is_some() || r.h.is_some() {
        match r.mode {
            ResizeMode::Fixed => fixed(w, h, r),
            _ => boxed(w, h, r),
        }
    } else if r.l.is_some() || r.s.is_some() {
        sides(w, h, r)
    } else if r.p.is_none() && (r.wp.is_some() || r.hp.is_some()) {
        per_axis(w, h, r)
    } else {
        percent_or_area(w, h, r)
    };
    let Some((scaled, frame)) = sized else {
        return Ok(ResizeTarget {
            scaled: (w, h),
            frame: None,
            pad: false,
            smart: false,
        });
    };
    for (name, v) in [("width", scaled.0), ("height", scaled.1)] {
        if v > MAX_SIDE {
            return Err(Error::invalid(format!(
                "resize: the output {name} would be {v} px, over the limit of {MAX_SIDE}"
            )));
        }
    }
    Ok(ResizeTarget {
        scaled,
        frame,
        pad: r.mode == ResizeMode::Pad,
        smart: r.smart && r.mode == ResizeMode::Fill,
    })
}

/// `m_fixed` with `w` and/or `h`: exactly that size (a missing side
/// proportional).
fn fixed(w: u32, h: u32, r: &Resize) -> Sized {
    let (fw, fh) = (w as f64, h as f64);
    let sx = r.w.map(|v| v as f64 / fw);
    let sy = r.h.map(|v| v as f64 / fh);
    let tw = r.w.unwrap_or_else(|| round_dim(fw * sy.unwrap_or(1.0)));
    let th = r.h.unwrap_or_else(|| round_dim(fh * sx.unwrap_or(1.0)));
    if r.limit && (tw > w || th > h) {
        return None;
    }
    Some(((tw, th), None))
}

/// `w` and/or `h` in the proportional modes: one scale from the side the
/// mode picks, that side kept exact; fill and pad then frame the box.
fn boxed(w: u32, h: u32, r: &Resize) -> Sized {
    let (fw, fh) = (w as f64, h as f64);
    let sx = r.w.map(|v| v as f64 / fw);
    let sy = r.h.map(|v| v as f64 / fh);
    // The scale, and the requested side that set it (kept exact below).
    let (scale, side) = match (sx.zip(r.w), sy.zip(r.h)) {
        (Some((a, tw)), Some((b, th))) => {
            let by_width = match r.mode {
                ResizeMode::Lfit | ResizeMode::Pad => a <= b,
                _ => a >= b,
            };
            if by_width {
                (a, Side::Width(tw))
            } else {
                (b, Side::Height(th))
            }
        }
        (Some((a, tw)), None) => (a, Side::Width(tw)),
        (None, Some((b, th))) => (b, Side::Height(th)),
        (None, None) => (1.0, Side::Neither),
    };
    if held(r, scale) {
        return None;
    }
    let s = (round_dim(fw * scale), round_dim(fh * scale));
    // Keep the requested side exact despite rounding.
    let s = match side {
        Side::Width(tw) => (tw, s.1),
        Side::Height(th) => (s.0, th),
        Side::Neither => s,
    };
    let mut frame = None;
    if matches!(r.mode, ResizeMode::Fill | ResizeMode::Pad) {
        let fwid = r.w.unwrap_or(s.0);
        let fhei = r.h.unwrap_or(s.1);
        if (fwid, fhei) != s {
            frame = Some((fwid, fhei));
        }
    }
    Some((s, frame))
}

/// `l` and/or `s`: the long and the short side.
fn sides(w: u32, h: u32, r: &Resize) -> Sized {
    let (fw, fh) = (w as f64, h as f64);
    let long = fw.max(fh);
    let short = fw.min(fh);
    let sl = r.l.map(|v| v as f64 / long);
    let ss = r.s.map(|v| v as f64 / short);
    let scale = match (sl, ss) {
        (Some(a), Some(b)) => match r.mode {
            ResizeMode::Mfit | ResizeMode::Fill => a.max(b),
            _ => a.min(b),
        },
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => 1.0,
    };
    if held(r, scale) {
        return None;
    }
    Some(((round_dim(fw * scale), round_dim(fh * scale)), None))
}

/// `wp` and/or `hp`: each side scaled apart.
fn per_axis(w: u32, h: u32, r: &Resize) -> Sized {
    let sx = r.wp.unwrap_or(100) as f64 / 100.0;
    let sy = r.hp.unwrap_or(100) as f64 / 100.0;
    if held(r, sx.max(sy)) {
        return None;
    }
    Some(((round_dim(w as f64 * sx), round_dim(h as f64 * sy)), None))
}

/// `p` (a percentage), else `area` (at most that many pixels).
fn percent_or_area(w: u32, h: u32, r: &Resize) -> Sized {
    let (fw, fh) = (w as f64, h as f64);
    let scale = match (r.p, r.area) {
        (None, Some(a)) => (a as f64 / (fw * fh)).sqrt(),
        (p, _) => p.unwrap_or(100) as f64 / 100.0,
    };
    if held(r, scale) {
        return None;
    }
    let s = (round_dim(fw * scale), round_dim(fh * scale));
    let s = match r.area {
        // Rounding must not take the product past the area.
        Some(a) if r.p.is_none() && s.0 as u64 * s.1 as u64 > a => (
            round_dim((fw * scale).floor()),
            round_dim((fh * scale).floor()),
        ),
        _ => s,
    };
    Some((s, None))
}

/// The requested side a proportional resize takes its scale from.
enum Side {
    Width(u32),
    Height(u32),
    Neither,
}

/// The image stays as it is: `limit` and a scale that would enlarge, or `grow`
/// and one that would shrink.
fn held(r: &Resize, scale: f64) -> bool {
    (r.limit && scale > 1.0) || (r.grow && scale < 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rz(mode: ResizeMode, w: Option<u32>, h: Option<u32>) -> Resize {
        Resize {
            mode,
            w,
            h,
            ..Resize::default()
        }
    }

    #[test]
    fn long_and_short_sides_are_a_box_in_the_sources_orientation() {
        let ls = |mode, l, s| Resize {
            mode,
            l: Some(l),
            s: Some(s),
            ..Resize::default()
        };
        let out = |w, h, r: &Resize| resize_target(w, h, r).expect("size").size();
        // m_fixed forces long × short, whichever way the source lies.
        assert_eq!(
            out(4000, 2000, &ls(ResizeMode::Fixed, 300, 100)),
            (300, 100)
        );
        assert_eq!(
            out(2000, 4000, &ls(ResizeMode::Fixed, 300, 100)),
            (100, 300)
        );
        // fill crops to it, pad pads to it, lfit and mfit scale as before.
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Fill, 300, 300)), (300, 300));
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Pad, 300, 300)), (300, 300));
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Lfit, 300, 300)), (300, 150));
        assert_eq!(out(4000, 2000, &ls(ResizeMode::Mfit, 300, 300)), (600, 300));
        // One of them alone: proportional, in every mode.
        let l_only = Resize {
            mode: ResizeMode::Fixed,
            l: Some(300),
            ..Resize::default()
        };
        assert_eq!(out(4000, 2000, &l_only), (300, 150));
    }

    #[test]
    fn resize_geometry() {
        let t = resize_target(4224, 3168, &rz(ResizeMode::Lfit, Some(300), None)).expect("t");
        assert_eq!(t.scaled, (300, 225));
        let t = resize_target(4000, 2000, &rz(ResizeMode::Lfit, Some(300), Some(300))).expect("t");
        assert_eq!(t.scaled, (300, 150));
        let t = resize_target(4000, 2000, &rz(ResizeMode::Mfit, Some(300), Some(300))).expect("t");
        assert_eq!(t.scaled, (600, 300));
        let t = resize_target(4000, 2000, &rz(ResizeMode::Fill, Some(300), Some(300))).expect("t");
        assert_eq!(
            (t.scaled, t.frame, t.pad),
            ((600, 300), Some((300, 300)), false)
        );
        let t = resize_target(4000, 2000, &rz(ResizeMode::Pad, Some(300), Some(300))).expect("t");
        assert_eq!(
            (t.scaled, t.frame, t.pad),
            ((300, 150), Some((300, 300)), true)
        );
        let t = resize_target(4000, 2000, &rz(ResizeMode::Fixed, Some(300), Some(300))).expect("t");
        assert_eq!(t.scaled, (300, 300));
        // limit_1: never enlarge.
        let t = resize_target(100, 50, &rz(ResizeMode::Lfit, Some(300), None)).expect("t");
        assert_eq!(t.scaled, (100, 50));
        let mut r = rz(ResizeMode::Lfit, Some(300), None);
        r.limit = false;
        assert_eq!(resize_target(100, 50, &r).expect("t").scaled, (300, 150));
        let r = Resize {
            l: Some(100),
            w: None,
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert_eq!(resize_target(400, 200, &r).expect("t").scaled, (100, 50));
        let r = Resize {
            s: Some(100),
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert_eq!(resize_target(400, 200, &r).expect("t").scaled, (200, 100));
        let r = Resize {
            p: Some(50),
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert_eq!(resize_target(400, 200, &r).expect("t").scaled, (200, 100));
        let r = Resize {
            p: Some(1000),
            limit: false,
            ..rz(ResizeMode::Lfit, None, None)
        };
        assert!(resize_target(4000, 200, &r).is_err());
    }
}
