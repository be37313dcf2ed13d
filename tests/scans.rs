//! Progressive JPEG scan selection (`process.jpeg_scan_skip`,
//! `process::codec::jpeg_scans`): for a corpus of progressive JPEGs written by
//! libjpeg-turbo's own tools (Debian's `libjpeg-turbo-progs`, installed by
//! `make test`) and by libvips, the decode at 1/8 scale is the same pixel for
//! pixel with and without the scans left out, and the pipeline's output bytes
//! are the same with the setting on and off. The files the selection must
//! leave alone (greyscale, restart markers, CMYK, baseline, a script that
//! never sends luma AC 1-9) are checked to be left alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use libvips::{ops, VipsImage};
use pixmirror::process::codec::{jpeg, jpeg_scans};
use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::engine::vips;
use pixmirror::process::lang;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Run a libjpeg-turbo tool over `input`, return its output.
fn tool(name: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(name)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{name}: {e} (Debian's libjpeg-turbo-progs; `make test` installs it)")
        });
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write");
    assert!(out.status.success(), "{name} {args:?} failed");
    out.stdout
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).expect("fixture")
}

/// A scan script for `cjpeg -scans`, in a file that lives as long as the test.
fn script(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("script");
    path.to_string_lossy().into_owned()
}

/// A progressive CMYK JPEG, written by libvips (libjpeg's script for four
/// components).
fn cmyk(src: &[u8]) -> Vec<u8> {
    vips::init().expect("libvips");
    let img = VipsImage::new_from_buffer(src, "").expect("load");
    let cmyk = ops::icc_transform(&img, "cmyk").expect("to CMYK");
    let opts = ops::JpegsaveBufferOptions {
        q: 85,
        interlace: true,
        ..Default::default()
    };
    ops::jpegsave_buffer_with_opts(&cmyk, &opts).expect("save")
}

/// The corpus: (what, bytes, whether the selection applies).
fn corpus(dir: &Path) -> Vec<(&'static str, Vec<u8>, bool)> {
    // 800x533: the last block row is partial.
    let sunset = tool("djpeg", &["-ppm"], &fixture("sunset.jpg"));
    let dragonfly = tool("djpeg", &["-ppm"], &fixture("dragonfly.jpg"));
    let cjpeg = |args: &[&str], ppm: &[u8]| tool("cjpeg", args, ppm);
    // mozjpeg's kind of script (luma DC alone, luma AC split at 8 with
    // successive approximation, chroma whole), which Debian does not package.
    let mozjpeg = script(
        dir,
        "mozjpeg",
        "0: 0 0 0 0; 1 2: 0 0 0 0; 0: 1 8 0 2; 1: 1 63 0 0; 2: 1 63 0 0;\n\
         0: 9 63 0 2; 0: 1 63 2 1; 0: 1 63 1 0;",
    );
    let spectral = script(
        dir,
        "spectral",
        "0 1 2: 0 0 0 0; 0: 1 2 0 0; 1: 1 63 0 0; 0: 3 9 0 0; 2: 1 63 0 0; 0: 10 63 0 0;",
    );
    // The first luma AC scan sends nothing of AC 1-9, a later one does.
    let late = script(
        dir,
        "late",
        "0 1 2: 0 0 0 1; 0: 10 63 0 0; 1: 1 63 0 0; 2: 1 63 0 0; 0: 1 9 0 0; 0 1 2: 0 0 1 0;",
    );
    // No luma AC 1-9 at all: the original's luma DC is smoothed (changed) by
    // the decoder, the copy's would not be, so nothing may be left out.
    let no_low = script(
        dir,
        "no-low",
        "0 1 2: 0 0 0 0; 1: 1 63 0 0; 2: 1 63 0 0; 0: 10 63 0 0;",
    );
    vec![
        (
            "libjpeg's script, 4:2:0",
            cjpeg(&["-progressive", "-quality", "90"], &sunset),
            true,
        ),
        (
            "4:2:2",
            cjpeg(&["-progressive", "-sample", "2x1"], &sunset),
            true,
        ),
        (
            "4:4:4",
            cjpeg(&["-progressive", "-sample", "1x1"], &dragonfly),
            true,
        ),
        (
            "mozjpeg-like script",
            cjpeg(&["-scans", &mozjpeg], &dragonfly),
            true,
        ),
        (
            "spectral selection only",
            cjpeg(&["-scans", &spectral], &sunset),
            true,
        ),
        (
            "jpegtran -optimize -progressive",
            tool(
                "jpegtran",
                &["-optimize", "-progressive"],
                &fixture("sunset.jpg"),
            ),
            true,
        ),
        (
            "EXIF orientation 6",
            tool(
                "jpegtran",
                &["-copy", "all", "-progressive"],
                &fixture("rotated-exif6.jpg"),
            ),
            true,
        ),
        (
            "first luma AC scan past AC 9",
            cjpeg(&["-scans", &late], &sunset),
            true,
        ),
        (
            "no luma AC 1-9",
            cjpeg(&["-scans", &no_low], &sunset),
            false,
        ),
        (
            "greyscale",
            cjpeg(&["-progressive", "-grayscale"], &sunset),
            false,
        ),
        (
            "restart intervals",
            cjpeg(&["-progressive", "-restart", "1"], &sunset),
            false,
        ),
        ("baseline", cjpeg(&["-quality", "90"], &sunset), false),
        ("CMYK", cmyk(&fixture("dragonfly.jpg")), false),
    ]
}

/// The decoded pixels at libjpeg's 1/8 scale, with the dimensions.
fn decode_eighth(bytes: &[u8]) -> (i32, i32, i32, Vec<u8>) {
    vips::init().expect("libvips");
    let img = VipsImage::new_from_buffer(bytes, "shrink=8").expect("decode");
    let pixels = vips::write_to_memory(&img).expect("pixels");
    (img.get_width(), img.get_height(), img.get_bands(), pixels)
}

fn run(src: &[u8], process: &str, skip: bool) -> pixmirror::error::Result<Vec<u8>> {
    let plan = lang::parse_process(process, &BTreeMap::new()).expect("plan");
    let opts = Options {
        jpeg_scan_skip: skip,
        ..Options::from_config(&Default::default())
    };
    pipeline::run(src, &plan, &opts).map(|o| o.bytes)
}

/// Plans whose load shrinks by 8 (every source is at least 400 px a side).
const PLANS: [&str; 4] = [
    "image/resize,w_50",
    "image/resize,m_fill,w_40,h_40/format,webp",
    "image/auto-orient,1/resize,h_60/format,png",
    "image/resize,l_48/format,jpg/quality,q_80",
];

#[test]
fn the_eighth_scale_decode_is_the_same_without_the_scans_left_out() {
    let dir = tempfile::tempdir().expect("tmp");
    for (what, original, applies) in corpus(dir.path()) {
        let copy = jpeg_scans::eighth_scale_copy(&original);
        assert_eq!(
            copy.is_some(),
            applies,
            "{what}: whether scans are left out"
        );
        let Some(copy) = copy else { continue };
        // Luma's AC is most of a photo's bytes.
        assert!(
            copy.len() * 10 < original.len() * 7,
            "{what}: {} of {} bytes kept",
            copy.len(),
            original.len()
        );
        let (a, b) = (decode_eighth(&original), decode_eighth(&copy));
        assert_eq!((a.0, a.1, a.2), (b.0, b.1, b.2), "{what}: dimensions");
        let differing = a.3.iter().zip(&b.3).filter(|(x, y)| x != y).count();
        assert_eq!(differing, 0, "{what}: bytes of pixels that differ");
        for process in PLANS {
            let on = run(&original, process, true).expect(process);
            let off = run(&original, process, false).expect(process);
            assert!(on == off, "{what}, {process}: output bytes differ");
        }
    }
}

/// The selection is used by the load: a luma AC scan it replaces may
/// name a Huffman table that was never defined (which libjpeg refuses), and
/// the render with the setting on still succeeds, to the same bytes as the
/// sound file's; with the setting off the decoder meets the scan and fails.
#[test]
fn the_load_decodes_the_copy_when_the_setting_is_on() {
    let sunset = tool("djpeg", &["-ppm"], &fixture("sunset.jpg"));
    let sound = tool("cjpeg", &["-progressive"], &sunset);
    // The last luma AC scan (libjpeg's script ends with it): its table
    // selector byte names AC table 3.
    let last_luma_ac = jpeg::pieces(&sound)
        .filter(|p| p.marker == 0xDA && p.body.get(..2) == Some(&[1, 1]) && p.body[3] > 0)
        .last()
        .expect("a luma AC scan");
    let mut broken = sound.clone();
    broken[last_luma_ac.at.start + 6] = 0x03;
    let process = "image/resize,w_50/format,png";
    let on = run(&broken, process, true).expect("the broken scan is left out");
    assert!(
        on == run(&sound, process, true).expect("sound"),
        "same bytes as the sound file"
    );
    let off = run(&broken, process, false);
    assert!(
        off.is_err(),
        "without the selection the decoder reads the broken scan"
    );
    // Where the load does not shrink by 8, the whole file is decoded.
    assert!(run(&broken, "image/resize,w_300/format,png", true).is_err());
}
