//! Tencent COS / Qiniu URL grammars (`?imageMogr2/...`, `?imageView2/...`,
//! pipes with `|`) parsed onto the same canonical [`Plan`] as the OSS grammar,
//! so one stored derivative serves equivalent URLs from every grammar. Pure.
//! Ranges come from the COS and Qiniu documentation; the README lists the
//! forms and the choices made where those are silent.

use super::params::{b64, parse_color, parse_int, truncate};
use crate::error::{Error, Result};
use crate::process::plan::limits::{MAX_AREA, MAX_CROP_OFFSET, MAX_RADIUS, MAX_SIDE};
use crate::process::plan::{
    Crop, Format, FormatSpec, Gravity, Op, Plan, Quality, Resize, ResizeMode,
};

/// Does this query item name a COS/Qiniu process (`imageMogr2/...`, `imageView2/...`)?
pub fn is_cos(item: &str) -> bool {
    ["imageMogr2", "imageView2"].iter().any(|p| {
        item.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// A whole value, percent-decoded: `imageMogr2/...|imageView2/...`, applied in order.
/// With `ignore-error/1` anywhere in it, a value that cannot be parsed (a
/// parameter out of range) serves the original, as COS does.
pub fn parse(value: &str) -> Result<Plan> {
    let ignore = value.split('|').any(|stage| {
        let parts: Vec<&str> = stage.split('/').collect();
        parts.windows(2).any(|w| w == ["ignore-error", "1"])
    });
    match parse_stages(value) {
        Ok(mut plan) => {
            plan.ignore_error = ignore;
            Ok(plan)
        }
        Err(Error::InvalidArgument(_)) if ignore => Ok(Plan::default()),
        Err(e) => Err(e),
    }
}

fn parse_stages(value: &str) -> Result<Plan> {
    // COS and Qiniu do not rotate by EXIF unless asked (`auto-orient`).
    let mut plan = Plan {
        auto_orient: false,
        ..Plan::default()
    };
    for stage in value.split('|').filter(|s| !s.is_empty()) {
        let mut parts = stage.split('/');
        match parts.next() {
            Some("imageMogr2") => mogr2(&mut plan, parts)?,
            Some("imageView2") => view2(&mut plan, parts)?,
            _ => {
                return Err(Error::invalid(format!(
                    "`{}`: expected imageMogr2/... or imageView2/...",
                    truncate(stage)
                )))
            }
        }
    }
    // `auto-orient` alone still rotates and re-encodes.
    plan.orient_only = plan.auto_orient && plan.is_identity();
    Ok(plan)
}

fn bad(op: &str, what: &str, v: &str) -> Error {
    Error::invalid(format!("{op}: {what}, got `{}`", truncate(v)))
}

fn int(op: &str, v: &str, min: u64, max: u64) -> Result<u64> {
    parse_int(v, min as i64, max as i64)
        .map(|n| n as u64)
        .ok_or_else(|| bad(op, &format!("must be an integer in [{min},{max}]"), v))
}

fn side(op: &str, v: &str) -> Result<u32> {
    int(op, v, 1, MAX_SIDE as u64).map(|n| n as u32)
}

/// `W` and `H` of `WxH`, `Wx`, `xH` (either may be missing, not both).
fn dims(op: &str, v: &str) -> Result<(Option<u32>, Option<u32>)> {
    let (w, h) = v
        .split_once('x')
        .ok_or_else(|| bad(op, "expected <W>x<H>, <W>x or x<H>", v))?;
    let w = (!w.is_empty()).then(|| side(op, w)).transpose()?;
    let h = (!h.is_empty()).then(|| side(op, h)).transpose()?;
    if w.is_none() && h.is_none() {
        return Err(bad(op, "expected <W>x<H>, <W>x or x<H>", v));
    }
    Ok((w, h))
}

const THUMBNAIL: &str = "thumbnail";

/// Plain forms may enlarge (COS: only `>` shrinks only).
const FREE: Resize = Resize {
    limit: false,
    ..Resize::DEFAULT
};

/// `thumbnail/<geometry>`: every COS/Qiniu form, the one-sided percentages
/// (`!50px`, `!x50p`) as `wp`/`hp`.
fn thumbnail(g: &str) -> Result<Resize> {
    const OP: &str = THUMBNAIL;
    if let Some(a) = g.strip_suffix('@') {
        return Ok(Resize {
            area: Some(int(OP, a, 1, MAX_AREA)?),
            ..FREE
        });
    }
    if let Some(inner) = g.strip_prefix('!') {
        return percent(inner, g);
    }
    let (mode, limit, grow, wh) = if let Some(wh) = g.strip_suffix('!') {
        (ResizeMode::Fixed, false, false, wh)
    } else if let Some(wh) = g.strip_suffix('>') {
        (ResizeMode::Lfit, true, false, wh)
    } else if let Some(wh) = g.strip_suffix('<') {
        (ResizeMode::Lfit, false, true, wh)
    } else {
        (ResizeMode::Lfit, false, false, g)
    };
    let (w, h) = dims(OP, wh)?;
    if mode == ResizeMode::Fixed && (w.is_none() || h.is_none()) {
        return Err(bad(OP, "<W>x<H>! needs both sides", g));
    }
    Ok(Resize {
        mode,
        w,
        h,
        limit,
        grow,
        ..Resize::default()
    })
}

/// `!<P>p`, `!<W>px` (the width only), `!x<H>p` (the height only), `!<W>x<H>r`.
fn percent(inner: &str, g: &str) -> Result<Resize> {
    const OP: &str = THUMBNAIL;
    let pct = |v| int(OP, v, 1, 999).map(|n| Some(n as u32));
    if let Some(v) = inner.strip_suffix("px") {
        return Ok(Resize {
            wp: pct(v)?,
            ..FREE
        });
    }
    if let Some(v) = inner.strip_prefix('x').and_then(|v| v.strip_suffix('p')) {
        return Ok(Resize {
            hp: pct(v)?,
            ..FREE
        });
    }
    if let Some(v) = inner.strip_suffix('p') {
        return Ok(Resize { p: pct(v)?, ..FREE });
    }
    if let Some(wh) = inner.strip_suffix('r') {
        let (w, h) = dims(OP, wh)?;
        return Ok(Resize {
            mode: ResizeMode::Mfit,
            w,
            h,
            ..FREE
        });
    }
    Err(bad(OP, "unknown geometry", g))
}

fn gravity(v: &str) -> Result<Gravity> {
    Ok(match v.to_ascii_lowercase().as_str() {
        "northwest" => Gravity::Nw,
        "north" => Gravity::North,
        "northeast" => Gravity::Ne,
        "west" => Gravity::West,
        "center" => Gravity::Center,
        "east" => Gravity::East,
        "southwest" => Gravity::Sw,
        "south" => Gravity::South,
        "southeast" => Gravity::Se,
        _ => return Err(bad("gravity", "must be one of northwest, north, northeast, west, center, east, southwest, south, southeast", v)),
    })
}

/// `quality/80`, and `quality/80!` read the same: Q=80, never above a JPEG
/// source's estimated quality (COS's `!` would force 80 even above it; that
/// is not done). COS allows 0, libvips' floor is 1.
fn quality(op: &str, v: &str) -> Result<u8> {
    Ok(int(op, v.strip_suffix('!').unwrap_or(v), 0, 100)?.max(1) as u8)
}

fn format(v: &str) -> Result<Format> {
    match v {
        "jpeg" => Some(Format::Jpg),
        "heif" => Some(Format::Heic),
        other => Format::parse(other),
    }
    .ok_or_else(|| {
        bad(
            "format",
            "must be one of jpg, png, webp, gif, bmp, avif, heif, tiff",
            v,
        )
    })
}

fn unsupported(op: &str) -> Error {
    Error::invalid(format!("{op}: not supported by this version of pixmirror"))
}

fn mogr2<'a>(plan: &mut Plan, mut parts: impl Iterator<Item = &'a str>) -> Result<()> {
    let mut stage = Mogr2::default();
    while let Some(op) = parts.next() {
        if op.is_empty() {
            continue;
        }
        // Operations without a value.
        match op {
            "auto-orient" => {
                plan.auto_orient = true;
                continue;
            }
            "strip" => continue, // pixmirror always strips metadata
            "ignore-error" => {
                // Read by `parse`; only `1` is a value.
                if parts.next() != Some("1") {
                    return Err(Error::invalid("imageMogr2: ignore-error takes 1"));
                }
                continue;
            }
            _ => {}
        }
        let v = parts.next().ok_or_else(|| {
            Error::invalid(format!("imageMogr2: `{}` needs a value", truncate(op)))
        })?;
        stage.read(plan, op, v)?;
    }
    stage.finish(plan);
    Ok(())
}

/// What one `imageMogr2` stage has read that applies to other operations of
/// the stage: the crops `gravity` places, the thumbnail `pad` pads.
#[derive(Default)]
struct Mogr2 {
    crops: Vec<usize>,
    gravity: Option<Gravity>,
    pad: Option<[u8; 3]>,
    resize_at: Option<usize>,
}

impl Mogr2 {
    fn read(&mut self, plan: &mut Plan, op: &str, v: &str) -> Result<()> {
        match op {
            "thumbnail" => {
                self.resize_at = Some(plan.ops.len());
                plan.ops.push(Op::Resize(thumbnail(v)?));
            }
            "pad" => {
                if int(op, v, 0, 1)? == 1 {
                    self.pad.get_or_insert([255, 255, 255]);
                }
            }
            "color" => {
                let hex = b64(v)
                    .and_then(|s| parse_color(s.trim_start_matches('#')))
                    .ok_or_else(|| bad(op, "must be URL-safe base64 of #RRGGBB", v))?;
                self.pad = Some(hex);
            }
            "crop" => {
                let (w, h) = dims(op, v)?;
                self.crops.push(plan.ops.len());
                plan.ops.push(Op::Crop(Crop {
                    w: w.unwrap_or(0),
                    h: h.unwrap_or(0),
                    x: 0,
                    y: 0,
                    g: Gravity::Nw,
                }));
            }
            "gravity" => self.gravity = Some(gravity(v)?),
            _ => alone(plan, op, v)?,
        }
        Ok(())
    }

    fn finish(self, plan: &mut Plan) {
        // `gravity` places every crop of this stage, wherever it is written.
        for i in self.crops {
            if let (Some(Op::Crop(c)), Some(g)) = (plan.ops.get_mut(i), self.gravity) {
                c.g = g;
            }
        }
        // `pad/1` (and its colour) turns the thumbnail's box into a padded one.
        let resize = self.resize_at.and_then(|i| plan.ops.get_mut(i));
        if let (Some(color), Some(Op::Resize(r))) = (self.pad, resize) {
            if r.w.is_some() && r.h.is_some() {
                r.mode = ResizeMode::Pad;
                r.color = color;
            }
        }
    }
}

/// The `imageMogr2` operations that stand alone.
fn alone(plan: &mut Plan, op: &str, v: &str) -> Result<()> {
    match op {
        "cut" => {
            let n: Vec<&str> = v.split('x').collect();
            let [w, h, x, y] = n.as_slice() else {
                return Err(bad(op, "expected <W>x<H>x<dx>x<dy>", v));
            };
            plan.ops.push(Op::Crop(Crop {
                w: side(op, w)?,
                h: side(op, h)?,
                x: int(op, x, 0, MAX_CROP_OFFSET as u64)? as u32,
                y: int(op, y, 0, MAX_CROP_OFFSET as u64)? as u32,
                ..Crop::DEFAULT
            }));
        }
        "rotate" => {
            let d = int(op, v, 0, 360)? as u32 % 360;
            if d != 0 {
                plan.ops.push(Op::Rotate(d));
            }
        }
        "format" => plan.format = Some(FormatSpec::Concrete(format(v)?)),
        "quality" => plan.quality = Some(Quality::Absolute(quality(op, v)?)),
        "lquality" => plan.quality = Some(Quality::Floor(quality(op, v)?)),
        "rquality" => plan.quality = Some(Quality::Relative(quality(op, v)?)),
        "interlace" => plan.interlace = int(op, v, 0, 1)? == 1,
        "blur" => {
            let (r, s) = v
                .split_once('x')
                .ok_or_else(|| bad(op, "expected <radius>x<sigma>", v))?;
            plan.ops.push(Op::Blur {
                r: int(op, r, 1, 50)? as u32,
                s: int(op, s, 1, 50)? as u32,
            });
        }
        // Smart crop: fill the box, keeping the most salient region.
        "scrop" => {
            let (w, h) = dims(op, v)?;
            let (Some(w), Some(h)) = (w, h) else {
                return Err(bad(op, "expected <W>x<H>", v));
            };
            plan.ops.push(Op::Resize(Resize {
                mode: ResizeMode::Fill,
                w: Some(w),
                h: Some(h),
                smart: true,
                ..FREE
            }));
        }
        "iradius" => plan.ops.push(Op::Circle {
            r: int(op, v, 1, MAX_RADIUS as u64)? as u32,
        }),
        "rradius" => plan.ops.push(Op::RoundedCorners {
            r: int(op, v, 1, MAX_RADIUS as u64)? as u32,
        }),
        other => return Err(unsupported(&format!("imageMogr2/{}", truncate(other)))),
    }
    Ok(())
}

/// Qiniu `imageView2/<mode>/w/<W>/h/<H>/format/<f>/q/<q>/interlace/<0|1>`.
/// Never enlarges. Where w and h are maxima a missing one is unbounded; where
/// they are minima (modes 1, 3, 4) it equals the other.
fn view2<'a>(plan: &mut Plan, mut parts: impl Iterator<Item = &'a str>) -> Result<()> {
    const OP: &str = "imageView2";
    let mode = int(OP, parts.next().unwrap_or(""), 0, 5)?;
    let (mut w, mut h) = (None, None);
    while let Some(k) = parts.next() {
        if k.is_empty() {
            continue;
        }
        let v = parts
            .next()
            .ok_or_else(|| Error::invalid(format!("{OP}: `{}` needs a value", truncate(k))))?;
        match k {
            "w" => w = Some(side(k, v)?),
            "h" => h = Some(side(k, v)?),
            "format" => plan.format = Some(FormatSpec::Concrete(format(v)?)),
            "q" => plan.quality = Some(Quality::Absolute(int(k, v, 1, 100)? as u8)),
            "interlace" => plan.interlace = int(k, v, 0, 1)? == 1,
            "ignore-error" if v == "1" => {}
            other => return Err(unsupported(&format!("{OP}/{}", truncate(other)))),
        }
    }
    if w.is_none() && h.is_none() {
        // Only a format or quality change.
        return Ok(());
    }
    plan.ops.push(Op::Resize(view2_resize(mode, w, h)));
    Ok(())
}

/// The resize of `imageView2/<mode>`.
fn view2_resize(mode: u64, w: Option<u32>, h: Option<u32>) -> Resize {
    let both = |w: Option<u32>, h: Option<u32>| (w.or(h), h.or(w));
    match mode {
        0 => Resize {
            l: w,
            s: h,
            ..Resize::default()
        },
        1 => {
            let (w, h) = both(w, h);
            Resize {
                mode: ResizeMode::Fill,
                w,
                h,
                ..Resize::default()
            }
        }
        2 => Resize {
            w,
            h,
            ..Resize::default()
        },
        3 => {
            let (w, h) = both(w, h);
            Resize {
                mode: ResizeMode::Mfit,
                w,
                h,
                ..Resize::default()
            }
        }
        4 => {
            let (l, s) = both(w, h);
            Resize {
                mode: ResizeMode::Mfit,
                l,
                s,
                ..Resize::default()
            }
        }
        // Mode 4's long and short minima, then cropped to them at the centre.
        _ => {
            let (l, s) = both(w, h);
            Resize {
                mode: ResizeMode::Fill,
                l,
                s,
                ..Resize::default()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::lang::parse_process;
    use std::collections::BTreeMap;

    fn canon(v: &str) -> String {
        parse(v).unwrap_or_else(|e| panic!("{v}: {e}")).canonical()
    }

    fn oss(v: &str) -> String {
        parse_process(v, &BTreeMap::new()).expect("oss").canonical()
    }

    #[test]
    fn mogr2_maps_onto_oss_plans() {
        for (cos, oss_form) in [
            (
                "imageMogr2/thumbnail/300x/format/webp",
                "image/auto-orient,0/resize,w_300,limit_0/format,webp",
            ),
            (
                "imageMogr2/scrop/200x300",
                "image/auto-orient,0/resize,m_fill,w_200,h_300,g_smart,limit_0",
            ),
            (
                "imageMogr2/thumbnail/x200",
                "image/auto-orient,0/resize,h_200,limit_0",
            ),
            (
                "imageMogr2/thumbnail/300x200",
                "image/auto-orient,0/resize,w_300,h_200,limit_0",
            ),
            (
                "imageMogr2/thumbnail/300x200%3E",
                "image/auto-orient,0/resize,w_300,h_200",
            ),
            (
                "imageMogr2/thumbnail/300x200>",
                "image/auto-orient,0/resize,w_300,h_200",
            ),
            (
                "imageMogr2/thumbnail/300x200!",
                "image/auto-orient,0/resize,m_fixed,w_300,h_200,limit_0",
            ),
            (
                "imageMogr2/thumbnail/!300x200r",
                "image/auto-orient,0/resize,m_mfit,w_300,h_200,limit_0",
            ),
            (
                "imageMogr2/thumbnail/!50p",
                "image/auto-orient,0/resize,p_50,limit_0",
            ),
            (
                "imageMogr2/thumbnail/!50px",
                "image/auto-orient,0/resize,wp_50,limit_0",
            ),
            (
                "imageMogr2/thumbnail/!x25p",
                "image/auto-orient,0/resize,hp_25,limit_0",
            ),
            ("imageMogr2/auto-orient/lquality/70", "image/quality,l_70"),
            (
                "imageMogr2/thumbnail/300x200</auto-orient",
                "image/resize,w_300,h_200,limit_0,grow_1",
            ),
            (
                "imageMogr2/thumbnail/90000@",
                "image/auto-orient,0/resize,area_90000,limit_0",
            ),
            (
                "imageMogr2/auto-orient/crop/300x200/gravity/center",
                "image/crop,w_300,h_200,g_center",
            ),
            (
                "imageMogr2/auto-orient/cut/100x50x10x20",
                "image/crop,w_100,h_50,x_10,y_20",
            ),
            (
                "imageMogr2/auto-orient/rotate/90/blur/3x2",
                "image/rotate,90/blur,r_3,s_2",
            ),
            (
                "imageMogr2/auto-orient/iradius/20/rradius/10",
                "image/circle,r_20/rounded-corners,r_10",
            ),
            (
                "imageMogr2/auto-orient/quality/80!/interlace/1/format/jpg",
                "image/quality,Q_80/interlace,1/format,jpg",
            ),
            (
                "imageMogr2/auto-orient/rquality/70/strip",
                "image/quality,q_70",
            ),
            (
                "imageMogr2/auto-orient/thumbnail/600x600/pad/1/color/IzNEM0QzRA",
                "image/resize,m_pad,w_600,h_600,limit_0,color_3D3D3D",
            ),
            (
                "imageMogr2/auto-orient/thumbnail/300x|imageMogr2/format/webp",
                "image/resize,w_300,limit_0/format,webp",
            ),
        ] {
            let cos_form = percent_encoding::percent_decode_str(cos).decode_utf8_lossy();
            assert_eq!(canon(&cos_form), oss(oss_form), "{cos}");
        }
    }

    #[test]
    fn view2_maps_onto_oss_plans() {
        for (q, oss_form) in [
            (
                "imageView2/0/w/300/h/200",
                "image/auto-orient,0/resize,l_300,s_200",
            ),
            (
                "imageView2/1/w/200",
                "image/auto-orient,0/resize,m_fill,w_200,h_200",
            ),
            (
                "imageView2/1/w/300/h/200/format/webp/q/75",
                "image/auto-orient,0/resize,m_fill,w_300,h_200/format,webp/quality,Q_75",
            ),
            (
                "imageView2/2/w/300/h/300/format/webp",
                "image/auto-orient,0/resize,w_300,h_300/format,webp",
            ),
            ("imageView2/2/h/300", "image/auto-orient,0/resize,h_300"),
            (
                "imageView2/3/w/300/h/200",
                "image/auto-orient,0/resize,m_mfit,w_300,h_200",
            ),
            (
                "imageView2/4/w/300",
                "image/auto-orient,0/resize,m_mfit,l_300,s_300",
            ),
            ("imageView2/2/format/png", "image/auto-orient,0/format,png"),
            (
                "imageView2/5/w/300/h/200",
                "image/auto-orient,0/resize,m_fill,l_300,s_200",
            ),
            (
                "imageView2/2/w/300/ignore-error/1",
                "image/auto-orient,0/resize,w_300",
            ),
        ] {
            assert_eq!(canon(q), oss(oss_form), "{q}");
        }
    }

    #[test]
    fn out_of_range_and_unknown_are_400() {
        for bad in [
            "imageMogr2/thumbnail/0x100",
            "imageMogr2/thumbnail/20000x",
            "imageMogr2/thumbnail/!1000p",
            "imageMogr2/thumbnail/x",
            "imageMogr2/thumbnail/25000000@",
            "imageMogr2/rotate/361",
            "imageMogr2/quality/101",
            "imageMogr2/blur/51x2",
            "imageMogr2/gravity/middle/crop/10x10",
            "imageMogr2/format/yjpeg",
            "imageMogr2/cut/1x2x3",
            "imageMogr2/thumbnail",
            "imageMogr2/frobnicate/1",
            "imageMogr2/ignore-error/2",
            "imageView2/6/w/100",
            "imageView2/2/w/0",
            "imageView2/2/w/100/q/0",
            "imageView2/2/w/100/x/1",
            "imageMogr3/thumbnail/100x",
            // Numbers are digits, as in every other grammar (Rust's parse
            // alone would take a sign).
            "imageMogr2/thumbnail/+300x",
            "imageMogr2/rotate/+90",
            "imageMogr2/quality/+80",
            "imageView2/2/w/+100",
            "imageMogr2/rotate/-0",
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.code(), "InvalidArgument", "{bad}");
        }
    }
}
