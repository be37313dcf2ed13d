//! The typed, canonical processing plan: what one process string asks for, in
//! one form per equivalence class. Built by `lang`, executed by `engine`. Pure
//! data: no I/O, no libvips, nothing else of `process`.
//!
//! One file per action family (`resize`, `crop`, `watermark`), each with its
//! type, its defaults, its canonical form and its geometry; `op` holds the
//! operation enum, `geometry` the sizes a plan makes, `limits` the ranges.

mod crop;
mod format;
pub mod geometry;
mod gravity;
pub mod limits;
mod op;
mod resize;
mod snapshot;
mod watermark;

pub use crop::{crop_rect, Axis, Crop, IndexCrop};
pub use format::{Format, FormatSpec};
pub use gravity::Gravity;
pub use limits::MAX_KEY_BYTES;
pub use op::Op;
pub use resize::{resize_target, Resize, ResizeMode, ResizeTarget};
pub use snapshot::{turned, Snapshot, Turn, SNAPSHOT_FORMATS};
pub use watermark::{Font, ImageMark, MarkOp, TextMark, Watermark};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    /// `q`: relative to a JPEG source's estimated quality (`codec::jpeg`), else absolute.
    Relative(u8),
    /// `Q`: absolute, never above a JPEG source's estimated quality.
    Absolute(u8),
    /// `l` (COS `lquality`): at least this, a JPEG source's own quality when higher.
    Floor(u8),
}

/// `dpr`: every requested size multiplied (`lang::hints` applies it and
/// removes it before the plan is canonicalised).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dpr {
    /// An explicit ratio in hundredths (100..=300).
    Times(u16),
    /// `dpr,auto`: from `Sec-CH-DPR` / `DPR`.
    Auto,
}

impl Dpr {
    /// `dpr,2`, `dpr,1.5`, `dpr,auto`.
    pub fn canonical(self) -> String {
        match self {
            Dpr::Auto => "dpr,auto".into(),
            Dpr::Times(h) if h % 100 == 0 => format!("dpr,{}", h / 100),
            Dpr::Times(h) => {
                let s = format!("dpr,{}.{:02}", h / 100, h % 100);
                s.trim_end_matches('0').to_string()
            }
        }
    }
}

/// A report returned as JSON instead of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Info,
    AverageHue,
    /// `thumbhash`: a placeholder of the image after the plan's actions.
    ThumbHash,
    /// `blurhash,x_,y_`: components across and down, each 1-9.
    BlurHash {
        x: u8,
        y: u8,
    },
}

impl Report {
    /// A placeholder of the processed image (the plan's actions run first),
    /// rather than a report on the source.
    pub fn is_placeholder(self) -> bool {
        matches!(self, Report::ThumbHash | Report::BlurHash { .. })
    }
}

/// The canonical plan of one process string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Rotate upright from EXIF orientation at load (default true, as on OSS).
    pub auto_orient: bool,
    pub ops: Vec<Op>,
    /// None: the source's format.
    pub format: Option<FormatSpec>,
    pub quality: Option<Quality>,
    pub interlace: bool,
    pub report: Option<Report>,
    /// An explicit `auto-orient,1` and nothing else: re-encoded upright (OSS),
    /// not the stored bytes. Canonical `image/auto-orient,1`.
    pub orient_only: bool,
    /// COS `ignore-error/1`: a processing failure caused by the request (a
    /// limit, an undecodable source) serves the original instead. Not part
    /// of the canonical form: it changes no successful output.
    pub ignore_error: bool,
    /// `video/snapshot`: a frame of a video, instead of everything above.
    pub snapshot: Option<Snapshot>,
    /// `dpr`, until `lang::hints::resolve` applies it.
    pub dpr: Option<Dpr>,
}

/// The next listed value at or above `v`; the largest when `v` is past them
/// all; `v` itself when the list is empty.
pub fn snap_up(v: u32, list: &[u32]) -> u32 {
    list.iter()
        .copied()
        .filter(|&x| x >= v)
        .min()
        .or_else(|| list.iter().copied().max())
        .unwrap_or(v)
}

/// The listed value nearest to `q` (the higher one on a tie).
fn nearest(q: u8, list: &[u8]) -> u8 {
    list.iter()
        .copied()
        .min_by_key(|&x| ((x as i16 - q as i16).abs(), std::cmp::Reverse(x)))
        .unwrap_or(q)
}

impl Plan {
    /// Bound the variants of a plan (issue 13): resize widths and heights snap
    /// up to the listed sizes, qualities to the nearest allowed one. Run before
    /// the plan is canonicalised, so snapped requests share one derivative.
    pub fn snap(&mut self, widths: &[u32], heights: &[u32], qualities: &[u8]) {
        for op in &mut self.ops {
            if let Op::Resize(r) = op {
                r.w = r.w.map(|w| snap_up(w, widths));
                r.h = r.h.map(|h| snap_up(h, heights));
            }
        }
        self.quality = match self.quality {
            Some(Quality::Absolute(q)) => Some(Quality::Absolute(nearest(q, qualities))),
            Some(Quality::Relative(q)) => Some(Quality::Relative(nearest(q, qualities))),
            Some(Quality::Floor(q)) => Some(Quality::Floor(nearest(q, qualities))),
            None => None,
        };
    }
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            auto_orient: true,
            ops: Vec::new(),
            format: None,
            quality: None,
            interlace: false,
            report: None,
            orient_only: false,
            ignore_error: false,
            snapshot: None,
            dpr: None,
        }
    }
}

impl Plan {
    /// The keys of the watermark images the plan draws, in order, each once.
    pub fn mark_keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::new();
        for o in &self.ops {
            if let Op::Watermark(w) = o {
                if let Some(m) = &w.image {
                    if !keys.contains(&m.key.as_str()) {
                        keys.push(&m.key);
                    }
                }
            }
        }
        keys
    }

    /// True when the plan changes nothing: the original is served as stored.
    pub fn is_identity(&self) -> bool {
        self.ops.is_empty()
            && self.format.is_none()
            && self.quality.is_none()
            && !self.interlace
            && self.report.is_none()
            && self.auto_orient
            && !self.orient_only
            && self.snapshot.is_none()
            && self.dpr.is_none()
    }

    /// The canonical actions, in order. `auto` must have been resolved first
    /// (an unresolved `auto` is written as `format,auto`).
    pub fn canonical_actions(&self) -> Vec<String> {
        if let Some(s) = &self.snapshot {
            return vec![s.canonical()];
        }
        let mut out = Vec::new();
        if !self.auto_orient {
            out.push("auto-orient,0".to_string());
        }
        if let Some(d) = self.dpr {
            out.push(d.canonical());
        }
        if self.orient_only {
            out.push("auto-orient,1".to_string());
        }
        out.extend(self.ops.iter().map(Op::canonical));
        match self.format {
            Some(FormatSpec::Concrete(f)) => out.push(format!("format,{}", f.name())),
            Some(FormatSpec::Auto) => out.push("format,auto".into()),
            None => {}
        }
        match self.quality {
            Some(Quality::Relative(q)) => out.push(format!("quality,q_{q}")),
            Some(Quality::Absolute(q)) => out.push(format!("quality,Q_{q}")),
            Some(Quality::Floor(q)) => out.push(format!("quality,l_{q}")),
            None => {}
        }
        if self.interlace {
            out.push("interlace,1".into());
        }
        match self.report {
            Some(Report::Info) => out.push("info".into()),
            Some(Report::AverageHue) => out.push("average-hue".into()),
            Some(Report::ThumbHash) => out.push("thumbhash".into()),
            Some(Report::BlurHash { x, y }) => out.push(format!("blurhash,x_{x},y_{y}")),
            None => {}
        }
        out
    }

    /// `image/<action>/<action>...`: one string per equivalence class of process strings;
    /// `video/snapshot,...` for a snapshot.
    pub fn canonical(&self) -> String {
        if let Some(s) = &self.snapshot {
            return s.canonical();
        }
        let mut s = String::from("image");
        for a in self.canonical_actions() {
            s.push('/');
            s.push_str(&a);
        }
        s
    }

    /// The stored derivative's key: `<key><sep><action>...`, or a hashed form past
    /// [`MAX_KEY_BYTES`]. With an original's key near the limit even the hashed
    /// form is longer: such a derivative is never stored (see `Derived::storable`).
    pub fn derivative_key(&self, key: &str, sep: &str) -> String {
        let mut k = String::from(key);
        for a in self.canonical_actions() {
            k.push_str(sep);
            k.push_str(&a);
        }
        if k.len() > MAX_KEY_BYTES {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(self.canonical().as_bytes());
            k = format!("{key}{sep}h_{}", hex::encode(digest));
        }
        k
    }
}
