//! OSS `watermark`: what one watermark action asks for (a text, an image of
//! the same store with its preprocessing, or both side by side; placed by
//! gravity and margins or tiled, at an opacity), OSS's defaults, and the
//! canonical form. Pure data: `lang::watermark` parses it, `engine::overlay`
//! draws it. Ranges and defaults are OSS's (README, "Watermarks").

use std::fmt::Write as _;

use base64::Engine;

use super::crop::{Crop, IndexCrop};
use super::gravity::Gravity;
use super::resize::Resize;

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
    pub const ALL: [Font; 7] = [
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
    /// The font OSS calls `name`.
    pub fn parse(name: &str) -> Option<Font> {
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
    pub ops: Vec<MarkOp>,
    /// `auto-orient` of the mark image (default 1).
    pub auto_orient: bool,
}

/// A step a watermark image may be preprocessed with: OSS allows resize,
/// crop, indexcrop, rounded-corners and rotate only (no circle, no nested
/// watermark). Each is the same step as the plan's (`Op`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MarkOp {
    Resize(Resize),
    Crop(Crop),
    IndexCrop(IndexCrop),
    RoundedCorners { r: u32 },
    Rotate(u32),
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

impl TextMark {
    /// OSS's defaults for everything but the text.
    pub const DEFAULT: TextMark = TextMark {
        text: String::new(),
        font: Font::WqyZenhei,
        color: [0, 0, 0],
        size: 40,
        shadow: 0,
        rotate: 0,
    };
}

fn encode(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.as_bytes())
}

fn hex(c: [u8; 3]) -> String {
    format!("{:02X}{:02X}{:02X}", c[0], c[1], c[2])
}

impl Watermark {
    /// OSS's defaults: `parse` starts from them, `canonical` leaves them out.
    pub const DEFAULT: Watermark = Watermark {
        t: 100,
        g: Gravity::Se,
        x: 10,
        y: 10,
        voffset: 0,
        fill: false,
        padx: 0,
        pady: 0,
        text: None,
        image: None,
        order: 0,
        align: 2,
        interval: 0,
    };

    /// `watermark,<k>_<v>...`: parameters in alphabetical order, defaults and
    /// parameters that take no effect left out, text and keys re-encoded as
    /// URL-safe base64 without padding.
    pub fn canonical(&self) -> String {
        let mut s = String::from("watermark");
        for (k, v) in self.params() {
            if let Some(v) = v {
                let _ = write!(s, ",{k}_{v}");
            }
        }
        s
    }

    /// Every parameter with the value the canonical form writes (`None`: left
    /// out), in alphabetical order.
    fn params(&self) -> Vec<(&'static str, Option<String>)> {
        let mut all = self.layout_params();
        all.extend(self.text_params());
        all.sort_by_key(|(k, _)| *k);
        all
    }

    /// Where and how the mark is placed, and the image.
    fn layout_params(&self) -> Vec<(&'static str, Option<String>)> {
        let d = &Watermark::DEFAULT;
        let both = self.text.is_some() && self.image.is_some();
        let placed = !self.fill;
        let middle = matches!(self.g, Gravity::West | Gravity::Center | Gravity::East);
        let uses_x = !matches!(self.g, Gravity::North | Gravity::Center | Gravity::South);
        let set = |on: bool, v: String| on.then_some(v);
        vec![
            (
                "align",
                set(both && self.align != d.align, self.align.to_string()),
            ),
            ("fill", set(self.fill, "1".into())),
            ("g", set(self.g != d.g, self.g.name().into())),
            (
                "image",
                self.image.as_ref().map(|m| encode(&m.process_key())),
            ),
            (
                "interval",
                set(
                    both && self.interval != d.interval,
                    self.interval.to_string(),
                ),
            ),
            (
                "order",
                set(both && self.order != d.order, self.order.to_string()),
            ),
            (
                "padx",
                set(self.fill && self.padx != d.padx, self.padx.to_string()),
            ),
            (
                "pady",
                set(self.fill && self.pady != d.pady, self.pady.to_string()),
            ),
            ("t", set(self.t != d.t, self.t.to_string())),
            (
                "voffset",
                set(
                    placed && middle && self.voffset != d.voffset,
                    self.voffset.to_string(),
                ),
            ),
            (
                "x",
                set(placed && uses_x && self.x != d.x, self.x.to_string()),
            ),
            (
                "y",
                set(placed && !middle && self.y != d.y, self.y.to_string()),
            ),
        ]
    }

    /// The text's own parameters.
    fn text_params(&self) -> Vec<(&'static str, Option<String>)> {
        let Some(t) = &self.text else {
            return Vec::new();
        };
        let td = &TextMark::DEFAULT;
        let set = |on: bool, v: String| on.then_some(v);
        vec![
            ("color", set(t.color != td.color, hex(t.color))),
            ("rotate", set(t.rotate != td.rotate, t.rotate.to_string())),
            ("shadow", set(t.shadow != td.shadow, t.shadow.to_string())),
            ("size", set(t.size != td.size, t.size.to_string())),
            ("text", Some(encode(&t.text))),
            ("type", set(t.font != td.font, encode(t.font.name()))),
        ]
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
        actions.extend(self.ops.iter().map(MarkOp::canonical));
        if actions.is_empty() {
            return self.key.clone();
        }
        format!("{}?x-oss-process=image/{}", self.key, actions.join("/"))
    }
}
