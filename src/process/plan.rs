//! The typed, canonical processing plan. Built by `grammar`, resolved by `negotiate`,
//! executed by `pipeline`. Pure data: no I/O, no libvips.

use std::fmt::Write as _;

/// The longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Output (and source) image formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Jpg,
    Png,
    Webp,
    Avif,
    Gif,
    Bmp,
    Tiff,
    Heic,
    /// JPEG XL (libvips' jxl module, libjxl 0.7 on Debian 12).
    Jxl,
}

impl Format {
    pub const ALL: [Format; 9] = [
        Format::Jpg,
        Format::Png,
        Format::Webp,
        Format::Avif,
        Format::Gif,
        Format::Bmp,
        Format::Tiff,
        Format::Heic,
        Format::Jxl,
    ];

    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "jpg" | "jpeg" => Format::Jpg,
            "png" => Format::Png,
            "webp" => Format::Webp,
            "avif" => Format::Avif,
            "gif" => Format::Gif,
            "bmp" => Format::Bmp,
            "tiff" | "tif" => Format::Tiff,
            "heic" | "heif" => Format::Heic,
            "jxl" => Format::Jxl,
            _ => return None,
        })
    }

    /// The canonical spelling, used in process strings and `info`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Jpg => "jpg",
            Format::Png => "png",
            Format::Webp => "webp",
            Format::Avif => "avif",
            Format::Gif => "gif",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
            Format::Heic => "heic",
            Format::Jxl => "jxl",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
            Format::Avif => "image/avif",
            Format::Gif => "image/gif",
            Format::Bmp => "image/bmp",
            Format::Tiff => "image/tiff",
            Format::Heic => "image/heic",
            Format::Jxl => "image/jxl",
        }
    }

    /// Format from the first bytes of a file (magic numbers).
    pub fn sniff(b: &[u8]) -> Option<Format> {
        if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(Format::Jpg)
        } else if b.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Format::Png)
        } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
            Some(Format::Webp)
        } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
            Some(Format::Gif)
        } else if b.starts_with(b"BM") {
            Some(Format::Bmp)
        } else if b.starts_with(b"II*\0") || b.starts_with(b"MM\0*") {
            Some(Format::Tiff)
        } else if b.starts_with(&[0xFF, 0x0A]) || b.starts_with(b"\0\0\0\x0cJXL \r\n\x87\n") {
            // A bare JPEG XL codestream, or the ISO BMFF container.
            Some(Format::Jxl)
        } else if b.len() >= 12 && &b[4..8] == b"ftyp" {
            match &b[8..12] {
                b"avif" | b"avis" => Some(Format::Avif),
                b"heic" | b"heix" | b"mif1" | b"msf1" | b"heim" | b"heis" | b"hevc" => {
                    Some(Format::Heic)
                }
                _ => None,
            }
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatSpec {
    Concrete(Format),
    /// `format,auto`: chosen from `Accept` before the cache key is computed.
    Auto,
}

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
}

impl Default for Resize {
    fn default() -> Resize {
        Resize {
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
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gravity {
    Nw,
    North,
    Ne,
    West,
    Center,
    East,
    Sw,
    South,
    Se,
}

impl Gravity {
    pub fn parse(s: &str) -> Option<Gravity> {
        Some(match s {
            "nw" => Gravity::Nw,
            "north" => Gravity::North,
            "ne" => Gravity::Ne,
            "west" => Gravity::West,
            "center" => Gravity::Center,
            "east" => Gravity::East,
            "sw" => Gravity::Sw,
            "south" => Gravity::South,
            "se" => Gravity::Se,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Gravity::Nw => "nw",
            Gravity::North => "north",
            Gravity::Ne => "ne",
            Gravity::West => "west",
            Gravity::Center => "center",
            Gravity::East => "east",
            Gravity::Sw => "sw",
            Gravity::South => "south",
            Gravity::Se => "se",
        }
    }
}

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

/// A pixel operation, applied left to right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Resize(Resize),
    Crop(Crop),
    IndexCrop { axis: Axis, len: u32, i: u32 },
    Circle { r: u32 },
    RoundedCorners { r: u32 },
    Rotate(u32),
    Blur { r: u32, s: u32 },
    Bright(i32),
    Contrast(i32),
    Sharpen(u32),
    Watermark(Box<super::watermark::Watermark>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quality {
    /// `q`: relative to a JPEG source's estimated quality (`jpegq`), else absolute.
    Relative(u8),
    /// `Q`: absolute, never above a JPEG source's estimated quality.
    Absolute(u8),
    /// `l` (COS `lquality`): at least this, a JPEG source's own quality when higher.
    Floor(u8),
}

/// A report returned as JSON instead of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    Info,
    AverageHue,
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
}

/// The next listed value at or above `v`; the largest when `v` is past them
/// all; `v` itself when the list is empty.
fn snap_up(v: u32, list: &[u32]) -> u32 {
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
        }
    }
}

impl Op {
    /// The OSS action name, for messages.
    pub fn action(&self) -> &'static str {
        match self {
            Op::Resize(_) => "resize",
            Op::Crop(_) => "crop",
            Op::IndexCrop { .. } => "indexcrop",
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

    pub fn canonical(&self) -> String {
        let mut s = String::new();
        match self {
            Op::Resize(r) => {
                s.push_str("resize");
                // Parameters in alphabetical order, defaults left out.
                if let Some(a) = r.area {
                    let _ = write!(s, ",area_{a}");
                }
                if r.mode == ResizeMode::Pad && r.color != [255, 255, 255] {
                    let _ = write!(
                        s,
                        ",color_{:02X}{:02X}{:02X}",
                        r.color[0], r.color[1], r.color[2]
                    );
                }
                if r.grow {
                    s.push_str(",grow_1");
                }
                if let Some(h) = r.h {
                    let _ = write!(s, ",h_{h}");
                }
                if let Some(v) = r.hp {
                    let _ = write!(s, ",hp_{v}");
                }
                if let Some(l) = r.l {
                    let _ = write!(s, ",l_{l}");
                }
                if !r.limit {
                    s.push_str(",limit_0");
                }
                if r.mode != ResizeMode::Lfit {
                    let _ = write!(s, ",m_{}", r.mode.name());
                }
                if let Some(p) = r.p {
                    let _ = write!(s, ",p_{p}");
                }
                if let Some(v) = r.s {
                    let _ = write!(s, ",s_{v}");
                }
                if let Some(w) = r.w {
                    let _ = write!(s, ",w_{w}");
                }
                if let Some(v) = r.wp {
                    let _ = write!(s, ",wp_{v}");
                }
            }
            Op::Crop(c) => {
                s.push_str("crop");
                if c.g != Gravity::Nw {
                    let _ = write!(s, ",g_{}", c.g.name());
                }
                if c.h > 0 {
                    let _ = write!(s, ",h_{}", c.h);
                }
                if c.w > 0 {
                    let _ = write!(s, ",w_{}", c.w);
                }
                if c.x > 0 {
                    let _ = write!(s, ",x_{}", c.x);
                }
                if c.y > 0 {
                    let _ = write!(s, ",y_{}", c.y);
                }
            }
            Op::IndexCrop { axis, len, i } => {
                let a = if *axis == Axis::X { "x" } else { "y" };
                let _ = write!(s, "indexcrop,i_{i},{a}_{len}");
            }
            Op::Circle { r } => {
                let _ = write!(s, "circle,r_{r}");
            }
            Op::RoundedCorners { r } => {
                let _ = write!(s, "rounded-corners,r_{r}");
            }
            Op::Rotate(d) => {
                let _ = write!(s, "rotate,{d}");
            }
            Op::Blur { r, s: sigma } => {
                let _ = write!(s, "blur,r_{r},s_{sigma}");
            }
            Op::Bright(v) => {
                let _ = write!(s, "bright,{v}");
            }
            Op::Contrast(v) => {
                let _ = write!(s, "contrast,{v}");
            }
            Op::Sharpen(v) => {
                let _ = write!(s, "sharpen,{v}");
            }
            Op::Watermark(w) => s.push_str(&w.canonical()),
        }
        s
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
    }

    /// The canonical actions, in order. `auto` must have been resolved first
    /// (an unresolved `auto` is written as `format,auto`).
    pub fn canonical_actions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.auto_orient {
            out.push("auto-orient,0".to_string());
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
            None => {}
        }
        out
    }

    /// `image/<action>/<action>...`: one string per equivalence class of process strings.
    pub fn canonical(&self) -> String {
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
