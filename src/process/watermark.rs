//! OSS `watermark`: what one watermark action asks for, parsed from its
//! parameters and written back canonically. Pure data; `overlay` draws it.
//!
//! A watermark is a text, an image (an object of the same store, optionally
//! preprocessed), or both side by side, placed by gravity and margins or
//! tiled over the whole image, at an opacity. Ranges and defaults are OSS's
//! (README, "Watermarks").

use std::fmt::Write as _;

use base64::Engine;

use super::plan::{Gravity, Op, Plan};
use crate::error::{Error, Result};

/// The fonts OSS documents (`type`, URL-safe base64 of the name), each drawn
/// with a font that `deploy/install-deps.sh` installs and the container ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Font {
    WqyZenhei,
    WqyMicrohei,
    FangzhengShusong,
    FangzhengKaiti,
    FangzhengHeiti,
    FangzhengFangsong,
    DroidSansFallback,
}

impl Font {
    const ALL: [Font; 7] = [
        Font::WqyZenhei,
        Font::WqyMicrohei,
        Font::FangzhengShusong,
        Font::FangzhengKaiti,
        Font::FangzhengHeiti,
        Font::FangzhengFangsong,
        Font::DroidSansFallback,
    ];

    /// OSS's name of the font.
    pub fn name(self) -> &'static str {
        match self {
            Font::WqyZenhei => "wqy-zenhei",
            Font::WqyMicrohei => "wqy-microhei",
            Font::FangzhengShusong => "fangzhengshusong",
            Font::FangzhengKaiti => "fangzhengkaiti",
            Font::FangzhengHeiti => "fangzhengheiti",
            Font::FangzhengFangsong => "fangzhengfangsong",
            Font::DroidSansFallback => "droidsansfallback",
        }
    }

    /// The fontconfig family that draws it. The four Founder (方正) fonts are
    /// commercial: Song and FangSong are drawn with AR PL UMing (a Ming/Song
    /// face), Kai with AR PL UKai, Hei with WenQuanYi Zen Hei.
    pub fn family(self) -> &'static str {
        match self {
            Font::WqyZenhei | Font::FangzhengHeiti => "WenQuanYi Zen Hei",
            Font::WqyMicrohei => "WenQuanYi Micro Hei",
            Font::FangzhengShusong | Font::FangzhengFangsong => "AR PL UMing CN",
            Font::FangzhengKaiti => "AR PL UKai CN",
            Font::DroidSansFallback => "Droid Sans Fallback",
        }
    }

    fn parse(name: &str) -> Option<Font> {
        Font::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The text of a watermark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextMark {
    pub text: String,
    pub font: Font,
    pub color: [u8; 3],
    /// Font size in pixels, (0,1000].
    pub size: u32,
    /// Opacity of the shadow, [0,100]; 0: none.
    pub shadow: u8,
    /// Clockwise, [0,360).
    pub rotate: u32,
}

/// The image of a watermark: an object of the same store, preprocessed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageMark {
    pub key: String,
    /// `resize,P_n`: scaled to fit n% of the main image's width and height.
    pub percent: Option<u32>,
    /// The other preprocessing steps (resize, crop, indexcrop,
    /// rounded-corners, rotate), in order, after the percentage.
    pub ops: Vec<Op>,
    /// `auto-orient` of the mark image (default 1).
    pub auto_orient: bool,
}

/// One `watermark` action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watermark {
    /// Opacity, [0,100].
    pub t: u8,
    pub g: Gravity,
    pub x: u32,
    pub y: u32,
    /// Down from the middle line (west, center, east), [-1000,1000].
    pub voffset: i32,
    /// Tile over the whole image, `padx` × `pady` apart.
    pub fill: bool,
    pub padx: u32,
    pub pady: u32,
    pub text: Option<TextMark>,
    pub image: Option<ImageMark>,
    /// Text and image together: 0 image first (left), 1 text first.
    pub order: u8,
    /// Text and image together: 0 top, 1 middle, 2 bottom.
    pub align: u8,
    /// Text and image together: the gap between them, [0,1000].
    pub interval: u32,
}

/// The longest text, in UTF-8 bytes (OSS: "font content is too large").
pub const MAX_TEXT_BYTES: usize = 64;
/// Image watermarks in one plan (OSS's default quota).
pub const MAX_IMAGE_MARKS: usize = 3;

/// A parameter's value, by name (the grammar's parsed action).
pub trait Params {
    fn get(&self, key: &str) -> Option<&str>;
    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>>;
}

fn b64(v: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .ok()
}

fn b64_text(v: &str, what: &str) -> Result<String> {
    b64(v)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            Error::invalid(format!(
                "watermark: {what} must be URL-safe base64 of UTF-8 text"
            ))
        })
}

fn encode(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes())
}

/// Every parameter `watermark` knows (`font` is an alias of `type`;
/// `animation` is accepted and needs nothing: animations keep their frames).
pub const KEYS: &[&str] = &[
    "t",
    "g",
    "x",
    "y",
    "voffset",
    "fill",
    "padx",
    "pady",
    "text",
    "type",
    "font",
    "color",
    "size",
    "shadow",
    "rotate",
    "image",
    "order",
    "align",
    "interval",
    "animation",
];

/// Parse one `watermark` action. `preprocess` parses the process string a
/// watermark image's key may carry (the grammar's own parser).
pub fn parse(p: &dyn Params, preprocess: &dyn Fn(&str) -> Result<Plan>) -> Result<Watermark> {
    let int = |k: &str, min: i64, max: i64, default: i64| -> Result<i64> {
        Ok(p.int(k, min, max)?.unwrap_or(default))
    };
    let g = match p.get("g") {
        None => Gravity::Se,
        Some(v) => Gravity::parse(v).ok_or_else(|| {
            Error::invalid(
                "watermark: g must be one of nw, north, ne, west, center, east, sw, south, se",
            )
        })?,
    };
    int("animation", 0, 1, 0)?;
    let text = p.get("text").map(|v| parse_text(p, v)).transpose()?;
    let image = p
        .get("image")
        .map(|v| parse_image(v, preprocess))
        .transpose()?;
    if text.is_none() && image.is_none() {
        return Err(Error::invalid("watermark: text or image is required"));
    }
    Ok(Watermark {
        t: int("t", 0, 100, 100)? as u8,
        g,
        x: int("x", 0, 4096, 10)? as u32,
        y: int("y", 0, 4096, 10)? as u32,
        voffset: int("voffset", -1000, 1000, 0)? as i32,
        fill: int("fill", 0, 1, 0)? == 1,
        padx: int("padx", 0, 4096, 0)? as u32,
        pady: int("pady", 0, 4096, 0)? as u32,
        text,
        image,
        order: int("order", 0, 1, 0)? as u8,
        align: int("align", 0, 2, 2)? as u8,
        interval: int("interval", 0, 1000, 0)? as u32,
    })
}

fn parse_text(p: &dyn Params, v: &str) -> Result<TextMark> {
    let text = b64_text(v, "text")?;
    if text.is_empty() {
        return Err(Error::invalid("watermark: the text is empty"));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::invalid(format!(
            "watermark: font content is too large (the text is {} bytes, at most {MAX_TEXT_BYTES})",
            text.len()
        )));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(
            "watermark: the text holds control characters",
        ));
    }
    let font = match p.get("type").or_else(|| p.get("font")) {
        None => Font::WqyZenhei,
        Some(v) => {
            let name = b64_text(v, "type")?;
            Font::parse(name.trim()).ok_or_else(|| {
                Error::invalid(format!(
                    "watermark: unsupported font; type is one of {}",
                    Font::ALL.map(Font::name).join(", ")
                ))
            })?
        }
    };
    let color = match p.get("color") {
        None => [0, 0, 0],
        Some(c) => super::grammar::parse_color(c)
            .ok_or_else(|| Error::invalid("watermark: color must be 6 hex digits (RRGGBB)"))?,
    };
    let size = p.int("size", 1, 1000)?.unwrap_or(40) as u32;
    let shadow = p.int("shadow", 0, 100)?.unwrap_or(0) as u8;
    let rotate = p.int("rotate", 0, 360)?.unwrap_or(0) as u32 % 360;
    Ok(TextMark {
        text,
        font,
        color,
        size,
        shadow,
        rotate,
    })
}

/// `image_<base64 of key[?x-oss-process=image/...]>`.
fn parse_image(v: &str, preprocess: &dyn Fn(&str) -> Result<Plan>) -> Result<ImageMark> {
    let raw = b64_text(v, "image")?;
    let (key, process) = match raw.split_once("?x-oss-process=") {
        Some((k, p)) => (k, Some(p)),
        None => (raw.as_str(), None),
    };
    check_key(key)?;
    let mut mark = ImageMark {
        key: key.to_string(),
        percent: None,
        ops: Vec::new(),
        auto_orient: true,
    };
    if let Some(process) = process {
        let (rest, percent) = take_percent(process)?;
        mark.percent = percent;
        if !rest
            .trim_start_matches("image")
            .trim_matches('/')
            .is_empty()
        {
            let plan = preprocess(&rest)?;
            allowed_preprocess(&plan)?;
            mark.ops = plan.ops;
            mark.auto_orient = plan.auto_orient;
        }
    }
    Ok(mark)
}

/// A watermark image's key: an object key of the same store.
fn check_key(key: &str) -> Result<()> {
    if key.is_empty() || key.len() > super::plan::MAX_KEY_BYTES {
        return Err(Error::invalid(
            "watermark: image must name an object key (1 to 1024 bytes)",
        ));
    }
    if key.chars().any(char::is_control) {
        return Err(Error::invalid(
            "watermark: the image key holds control characters",
        ));
    }
    Ok(())
}

/// Take `P_n` out of the preprocessing's `resize` actions: `P` (a percentage
/// of the main image) is known only to watermark images.
fn take_percent(process: &str) -> Result<(String, Option<u32>)> {
    let mut percent = None;
    let mut actions = Vec::new();
    for action in process.split('/') {
        let mut parts: Vec<&str> = action.split(',').collect();
        if parts.first() == Some(&"resize") {
            if let Some(i) = parts.iter().position(|p| p.starts_with("P_")) {
                let v = &parts[i][2..];
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| {
                        Error::invalid(
                            "watermark: image preprocessing resize,P must be an integer in [1,100]",
                        )
                    })?;
                percent = Some(n);
                parts.remove(i);
                if parts.len() == 1 {
                    continue;
                }
            }
        }
        actions.push(parts.join(","));
    }
    Ok((actions.join("/"), percent))
}

/// OSS preprocesses watermark images with resize, crop, indexcrop,
/// rounded-corners and rotate only: no circle, no nested watermark, no
/// format or report.
fn allowed_preprocess(plan: &Plan) -> Result<()> {
    let refused = plan.ops.iter().find(|o| {
        !matches!(
            o,
            Op::Resize(_)
                | Op::Crop(_)
                | Op::IndexCrop { .. }
                | Op::RoundedCorners { .. }
                | Op::Rotate(_)
        )
    });
    if let Some(o) = refused {
        return Err(Error::invalid(format!(
            "watermark: image preprocessing cannot use {}",
            o.action()
        )));
    }
    if plan.format.is_some() || plan.quality.is_some() || plan.report.is_some() || plan.interlace {
        return Err(Error::invalid(
            "watermark: image preprocessing takes resize, crop, indexcrop, rounded-corners and rotate only",
        ));
    }
    Ok(())
}

impl Watermark {
    /// `watermark,<k>_<v>...`: parameters in alphabetical order, defaults left
    /// out, text and keys re-encoded as URL-safe base64 without padding.
    pub fn canonical(&self) -> String {
        let mut s = String::from("watermark");
        let mut kv = |k: &str, v: String| {
            let _ = write!(s, ",{k}_{v}");
        };
        let both = self.text.is_some() && self.image.is_some();
        if both && self.align != 2 {
            kv("align", self.align.to_string());
        }
        if let Some(t) = &self.text {
            if t.color != [0, 0, 0] {
                kv(
                    "color",
                    format!("{:02X}{:02X}{:02X}", t.color[0], t.color[1], t.color[2]),
                );
            }
        }
        if self.fill {
            kv("fill", "1".into());
        }
        if self.g != Gravity::Se {
            kv("g", self.g.name().into());
        }
        if let Some(m) = &self.image {
            kv("image", encode(&m.process_key()));
        }
        if both && self.interval != 0 {
            kv("interval", self.interval.to_string());
        }
        if both && self.order != 0 {
            kv("order", self.order.to_string());
        }
        if self.fill && self.padx != 0 {
            kv("padx", self.padx.to_string());
        }
        if self.fill && self.pady != 0 {
            kv("pady", self.pady.to_string());
        }
        if let Some(t) = &self.text {
            if t.rotate != 0 {
                kv("rotate", t.rotate.to_string());
            }
            if t.shadow != 0 {
                kv("shadow", t.shadow.to_string());
            }
            if t.size != 40 {
                kv("size", t.size.to_string());
            }
        }
        if self.t != 100 {
            kv("t", self.t.to_string());
        }
        if let Some(t) = &self.text {
            kv("text", encode(&t.text));
            if t.font != Font::WqyZenhei {
                kv("type", encode(t.font.name()));
            }
        }
        let placed = !self.fill;
        let uses_x = !matches!(self.g, Gravity::North | Gravity::Center | Gravity::South);
        let uses_y = !matches!(self.g, Gravity::West | Gravity::Center | Gravity::East);
        if placed
            && matches!(self.g, Gravity::West | Gravity::Center | Gravity::East)
            && self.voffset != 0
        {
            kv("voffset", self.voffset.to_string());
        }
        if placed && uses_x && self.x != 10 {
            kv("x", self.x.to_string());
        }
        if placed && uses_y && self.y != 10 {
            kv("y", self.y.to_string());
        }
        s
    }
}

impl ImageMark {
    /// The key with its preprocessing, as an `image_` value holds it.
    pub fn process_key(&self) -> String {
        let mut actions = Vec::new();
        if !self.auto_orient {
            actions.push("auto-orient,0".to_string());
        }
        if let Some(p) = self.percent {
            actions.push(format!("resize,P_{p}"));
        }
        actions.extend(self.ops.iter().map(Op::canonical));
        if actions.is_empty() {
            return self.key.clone();
        }
        format!("{}?x-oss-process=image/{}", self.key, actions.join("/"))
    }
}
