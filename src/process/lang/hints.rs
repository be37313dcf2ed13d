//! Client hints (`resize,w_auto`, `dpr,<1-3|auto>`) resolved into the plan
//! before it is canonicalised, so that requests that round to the same sizes
//! share one derivative. Pure: the caller hands the request's header values.
//!
//! The SPEC's rules, and pixmirror's choice where it is silent:
//! - `w_auto`: `Sec-CH-Width`, else `Width`, else `Sec-CH-Viewport-Width`,
//!   else `process.client_hints.default_width`; clamped to [1, 4096], rounded
//!   up to `snap_widths` when set, else to a multiple of 16.
//! - `Sec-CH-Width` and `Width` are in device pixels (the browser has already
//!   multiplied the layout width by its DPR): they are never multiplied again.
//!   `Sec-CH-Viewport-Width` and the default are CSS pixels: `dpr` multiplies
//!   them like every other requested size. (Multiplying a device width by
//!   the DPR again is the "DPR enlarges images" bug.)
//! - `dpr,auto`: `Sec-CH-DPR`, else `DPR`, else 1; clamped to [1, 3] and
//!   rounded to the nearest 0.5. Multiplied sizes are rounded to whole pixels
//!   and stay within 16384.
//! - A value that does not parse (not a plain number, too long, not finite)
//!   is ignored as if absent. A plan without `auto` reads no header.

use crate::process::plan::limits::{MAX_HINT_WIDTH, MAX_SIDE};
use crate::process::plan::{snap_up, Dpr, Op, Plan};

/// The hint headers, in the order `Vary` names them.
pub const HINT_HEADERS: [&str; 5] = [
    "Sec-CH-Width",
    "Width",
    "Sec-CH-Viewport-Width",
    "Sec-CH-DPR",
    "DPR",
];

/// Which hint headers a request's answer depends on (bit i: `HINT_HEADERS[i]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hints(u8);

impl Hints {
    fn read(&mut self, i: usize) {
        self.0 |= 1 << i;
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The header names read, in `HINT_HEADERS` order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        (0..HINT_HEADERS.len())
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(|i| HINT_HEADERS[i])
    }
}

/// What the resolution needs from the configuration.
pub struct HintConfig<'a> {
    pub default_width: u32,
    pub snap_widths: &'a [u32],
}

/// Resolve `w_auto` and `dpr` in `plan` from the headers (`header(name)`
/// gives a header's value); answers the headers read. Afterwards the plan
/// holds no `auto` width and no `dpr`.
pub fn resolve(
    plan: &mut Plan,
    header: &dyn Fn(&str) -> Option<String>,
    cfg: &HintConfig,
) -> Hints {
    let mut hints = Hints::default();
    let auto_width = plan
        .ops
        .iter()
        .any(|o| matches!(o, Op::Resize(r) if r.w_auto));
    let width = auto_width.then(|| width(header, cfg, &mut hints));
    let dpr = match plan.dpr.take() {
        None => 1.0,
        Some(Dpr::Times(hundredths)) => hundredths as f64 / 100.0,
        Some(Dpr::Auto) => dpr(header, &mut hints),
    };
    for op in &mut plan.ops {
        let Op::Resize(r) = op else { continue };
        let times = |v: Option<u32>| v.map(|v| scaled(v, dpr));
        (r.h, r.l, r.s) = (times(r.h), times(r.l), times(r.s));
        r.w = match (r.w_auto, width) {
            (true, Some((w, true))) => Some(w),
            (true, Some((w, false))) => Some(scaled(w, dpr)),
            _ => times(r.w),
        };
        r.w_auto = false;
    }
    hints
}

/// The `w_auto` width and whether it is in device pixels.
fn width(
    header: &dyn Fn(&str) -> Option<String>,
    cfg: &HintConfig,
    hints: &mut Hints,
) -> (u32, bool) {
    for (i, device) in [(0, true), (1, true), (2, false)] {
        hints.read(i);
        if let Some(v) = header(HINT_HEADERS[i]).and_then(|v| number(&v)) {
            return (
                snap_width(v.ceil().clamp(1.0, MAX_HINT_WIDTH as f64) as u32, cfg),
                device,
            );
        }
    }
    (
        snap_width(cfg.default_width.clamp(1, MAX_HINT_WIDTH), cfg),
        false,
    )
}

/// Up to `snap_widths` (as `Plan::snap` rounds), else to a multiple of 16.
fn snap_width(w: u32, cfg: &HintConfig) -> u32 {
    match cfg.snap_widths {
        [] => w.div_ceil(16) * 16,
        list => snap_up(w, list),
    }
}

/// `dpr,auto`: the device pixel ratio, clamped to [1, 3], to the nearest 0.5.
fn dpr(header: &dyn Fn(&str) -> Option<String>, hints: &mut Hints) -> f64 {
    for i in [3, 4] {
        hints.read(i);
        if let Some(v) = header(HINT_HEADERS[i]).and_then(|v| number(&v)) {
            return (v.clamp(1.0, 3.0) * 2.0).round() / 2.0;
        }
    }
    1.0
}

/// A plain non-negative decimal (`640`, `2.625`) of at most 12 characters.
fn number(v: &str) -> Option<f64> {
    let v = v.trim();
    let plain = !v.is_empty()
        && v.len() <= 12
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() <= 1;
    plain
        .then(|| v.parse::<f64>().ok())
        .flatten()
        .filter(|n| n.is_finite())
}

/// `v` × `dpr`, rounded to whole pixels, within the side limit.
fn scaled(v: u32, dpr: f64) -> u32 {
    ((v as f64 * dpr).round() as u32).clamp(1, MAX_SIDE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn resolved(
        process: &str,
        headers: &[(&str, &str)],
        snap: &[u32],
    ) -> (String, Vec<&'static str>) {
        let mut plan = super::super::parse_process(process, &BTreeMap::new()).expect(process);
        let headers: BTreeMap<String, String> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        let get = |name: &str| headers.get(&name.to_ascii_lowercase()).cloned();
        let cfg = HintConfig {
            default_width: 640,
            snap_widths: snap,
        };
        let hints = resolve(&mut plan, &get, &cfg);
        (plan.canonical(), hints.names().collect())
    }

    #[test]
    fn widths_come_from_the_first_hint_that_parses() {
        let all = [
            ("Sec-CH-Width", "500"),
            ("Width", "700"),
            ("Sec-CH-Viewport-Width", "900"),
        ];
        let r = |h: &[(&str, &str)]| resolved("image/resize,w_auto", h, &[]);
        assert_eq!(r(&all), ("image/resize,w_512".into(), vec!["Sec-CH-Width"]));
        assert_eq!(
            r(&all[1..]),
            ("image/resize,w_704".into(), vec!["Sec-CH-Width", "Width"])
        );
        let three = vec!["Sec-CH-Width", "Width", "Sec-CH-Viewport-Width"];
        assert_eq!(r(&all[2..]), ("image/resize,w_912".into(), three.clone()));
        assert_eq!(r(&[]), ("image/resize,w_640".into(), three.clone()));
        // Hostile values are ignored (the next hint, or the default), or clamped.
        for bad in [
            "abc",
            "-1",
            "1e9",
            "",
            "12.5.1",
            "NaN",
            "inf",
            &"9".repeat(10_000),
        ] {
            assert_eq!(
                r(&[("Sec-CH-Width", bad)]).0,
                "image/resize,w_640",
                "{bad:?}"
            );
        }
        assert_eq!(r(&[("Sec-CH-Width", "0")]).0, "image/resize,w_16");
        assert_eq!(r(&[("Sec-CH-Width", "99999999")]).0, "image/resize,w_4096");
        assert_eq!(r(&[("Sec-CH-Width", "100.2")]).0, "image/resize,w_112");
        // Widths that round together are one plan.
        assert_eq!(r(&[("Sec-CH-Width", "497")]), r(&[("Sec-CH-Width", "510")]));
        // snap_widths when set.
        let snapped = resolved(
            "image/resize,w_auto",
            &[("Sec-CH-Width", "500")],
            &[320, 640, 960],
        );
        assert_eq!(snapped.0, "image/resize,w_640");
    }

    #[test]
    fn dpr_multiplies_every_size_but_a_device_width() {
        let dpr = [("Sec-CH-DPR", "2.625")];
        // 2.625 rounds to 2.5.
        let (p, h) = resolved("image/resize,w_200,h_100/dpr,auto", &dpr, &[]);
        assert_eq!(
            (p.as_str(), h),
            ("image/resize,h_250,w_500", vec!["Sec-CH-DPR"])
        );
        assert_eq!(
            resolved("image/dpr,2/resize,w_200", &[], &[]).0,
            "image/resize,w_400"
        );
        assert_eq!(
            resolved("image/resize,w_200/dpr,1.5", &[], &[]).0,
            "image/resize,w_300"
        );
        // An explicit dpr reads no header.
        assert!(resolved("image/resize,w_200/dpr,2", &dpr, &[]).1.is_empty());
        // Sec-CH-Width is device pixels: not multiplied; the viewport is CSS pixels.
        let both = [("Sec-CH-Width", "640"), ("Sec-CH-DPR", "2")];
        let (p, h) = resolved("image/resize,w_auto/dpr,auto", &both, &[]);
        assert_eq!(
            (p.as_str(), h),
            ("image/resize,w_640", vec!["Sec-CH-Width", "Sec-CH-DPR"])
        );
        let vp = [("Sec-CH-Viewport-Width", "400"), ("DPR", "2")];
        let (p, h) = resolved("image/resize,w_auto/dpr,auto", &vp, &[]);
        assert_eq!(p, "image/resize,w_800");
        assert_eq!(
            h,
            vec![
                "Sec-CH-Width",
                "Width",
                "Sec-CH-Viewport-Width",
                "Sec-CH-DPR",
                "DPR"
            ]
        );
        // Clamped to [1, 3]; nonsense is 1.
        assert_eq!(
            resolved("image/resize,w_100/dpr,auto", &[("DPR", "9")], &[]).0,
            "image/resize,w_300"
        );
        assert_eq!(
            resolved("image/resize,w_100/dpr,auto", &[("DPR", "0.2")], &[]).0,
            "image/resize,w_100"
        );
        assert_eq!(
            resolved("image/resize,w_100/dpr,auto", &[("DPR", "x")], &[]).0,
            "image/resize,w_100"
        );
    }

    #[test]
    fn a_plan_without_auto_reads_no_hint() {
        let all = [("Sec-CH-Width", "500"), ("Sec-CH-DPR", "2")];
        let (p, h) = resolved("image/resize,w_300/format,webp", &all, &[]);
        assert_eq!(p, "image/resize,w_300/format,webp");
        assert!(h.is_empty());
    }
}
