//! The libvips pipeline on arbitrary image bytes with arbitrary plans.
//! Input: a process string, a NUL byte, then the source bytes. Properties: no
//! panic or crash; a success is an image of the content type it claims (or
//! the JSON of a report), within the output cap; no libvips object outlives
//! the run (counted in libvips' own table, which LeakSanitizer cannot judge:
//! see fuzz/lsan.supp).
#![no_main]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::engine::vips::live_objects;
use pixmirror::process::lang::parse_process;
use pixmirror::process::plan::Format;

/// Small limits, so that one input stays well inside libFuzzer's time and
/// memory limits; the limits themselves are part of what is tested.
const MAX_PIXELS: u64 = 2_000_000;

static STARTED: AtomicBool = AtomicBool::new(false);

fuzz_target!(|data: &[u8]| {
    let Some(nul) = data.iter().position(|&b| b == 0) else {
        return;
    };
    let Ok(process) = std::str::from_utf8(&data[..nul]) else {
        return;
    };
    let src = &data[nul + 1..];
    let Ok(mut plan) = parse_process(process, &BTreeMap::new()) else {
        return;
    };
    // The request parser resolves `format,auto` before the pipeline runs.
    pixmirror::process::lang::negotiate::resolve(&mut plan, "image/webp", &[]);
    // From the defaults, so that a new option does not break this build.
    let opts = Options {
        max_source_pixels: MAX_PIXELS,
        max_output_pixels: MAX_PIXELS,
        max_frames: 20,
        jpeg_quality: 80,
        webp_quality: 80,
        avif_quality: 50,
        avif_effort: 0,
        webp_effort: 0,
        webp_large_source_effort: 0,
        deadline: Some(Instant::now() + Duration::from_secs(5)),
        ..Options::from_config(&pixmirror::config::ProcessConfig::default())
    };
    let before = live_objects();
    let result = pipeline::run(src, &plan, &opts);
    // The first run starts libvips, whose own objects stay.
    if STARTED.swap(true, Ordering::Relaxed) {
        let after = live_objects();
        assert_eq!(
            after, before,
            "{process:?}: libvips objects left after the run"
        );
    }
    let Ok(out) = result else {
        return;
    };
    if out.content_type == "application/json" {
        assert!(
            out.bytes.first() == Some(&b'{'),
            "a report that is not JSON"
        );
        return;
    }
    let format = Format::sniff(&out.bytes)
        .unwrap_or_else(|| panic!("output of {process:?} is not an image we know"));
    assert_eq!(
        format.content_type(),
        out.content_type,
        "output of {process:?}"
    );
    let dims = imagesize_of(&out.bytes);
    if let Some((w, h)) = dims {
        assert!(
            w * h <= MAX_PIXELS,
            "output of {process:?} is {w}x{h}, over the cap"
        );
    }
});

/// Dimensions of the output, read back with libvips.
fn imagesize_of(bytes: &[u8]) -> Option<(u64, u64)> {
    let header = pipeline::probe(bytes, u64::MAX, u32::MAX).ok()?;
    Some((header.width as u64, header.height as u64))
}
