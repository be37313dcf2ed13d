//! Video snapshots on arbitrary bytes: the container reader (MP4/MOV,
//! Matroska), the H.264/H.265 decoders and the frame's way through libvips.
//! Input: one selector byte (the time, `m_fast`, the format), then the file.
//! Properties: no panic, crash or leak; reads stay inside the file and under
//! the read limit; a success is an image of the content type it claims, no
//! larger than the limits allow; no libvips object outlives the run.
#![no_main]

use std::sync::Once;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::engine::vips::live_objects;
use pixmirror::process::plan::{Format, Snapshot, Turn};
use pixmirror::process::video::{self, Fetch, RangeReader};

/// Small limits, so that one input stays inside libFuzzer's time and memory.
const MAX_PIXELS: u64 = 1_000_000;
const MAX_READ: u64 = 8 << 20;

/// libvips starts on the first frame it is handed, and keeps objects of its
/// own from then on: a warm-up frame (resized, turned, written as JPEG and
/// PNG) before the first count, whichever input is the first to decode.
fn warm_up(opts: &Options) {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        for format in [Format::Jpg, Format::Png] {
            let r = pipeline::run_frame(&[128u8; 4 * 2 * 3], (4, 2), 90, (1, 2), format, opts);
            assert!(r.is_ok(), "the warm-up frame: {:?}", r.err());
        }
    });
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, file)) = data.split_first() else {
        return;
    };
    let snap = Snapshot {
        t_ms: [0, 1000, 3500, 999_999][sel as usize & 3],
        w: 0,
        h: 0,
        fast: sel & 4 != 0,
        format: if sel & 8 != 0 { Format::Png } else { Format::Jpg },
        turn: (sel & 16 != 0).then_some(Turn::Auto),
    };
    let size = file.len() as u64;
    let fetch: Fetch = Box::new(move |off, len| {
        assert!(off < size && len > 0, "a read at {off}+{len} of {size}");
        let end = (off + len).min(size) as usize;
        Ok(file[off as usize..end].to_vec().into())
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let reader = RangeReader::new(size, MAX_READ, Some(deadline), fetch);
    let opts = Options {
        max_source_pixels: MAX_PIXELS,
        max_output_pixels: MAX_PIXELS,
        deadline: Some(deadline),
        ..Options::from_config(&pixmirror::config::ProcessConfig::default())
    };
    warm_up(&opts);
    let before = live_objects();
    let result = video::snapshot(reader, &snap, &opts, &mut |_| Ok(()));
    assert_eq!(live_objects(), before, "libvips objects left after the run");
    let Ok(s) = result else {
        return;
    };
    assert!(s.read_bytes <= MAX_READ, "read {} bytes", s.read_bytes);
    let format = Format::sniff(&s.output.bytes).expect("an image we know");
    assert_eq!(format.content_type(), s.output.content_type);
    let header = pipeline::probe(&s.output.bytes, u64::MAX, u32::MAX).expect("readable");
    assert!(header.width as u64 * header.height as u64 <= MAX_PIXELS);
});
