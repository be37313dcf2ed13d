//! HEIF sources with an embedded thumbnail (issue 23): a resize the
//! thumbnail covers decodes the thumbnail instead of the primary image;
//! `info` and the size limits read the primary. The files are written by
//! `heif-enc` (Debian's `libheif-examples`, installed by `make test`) from a
//! fixture: one with a 320 px thumbnail, one without, the same primary.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::lang;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// dragonfly.jpg (800x600) as HEIC, with a thumbnail of at most `thumb`
/// pixels a side when given.
fn heic(dir: &Path, thumb: Option<u32>) -> Vec<u8> {
    let out = dir.join(format!("{thumb:?}.heic"));
    let mut cmd = Command::new("heif-enc");
    cmd.args(["-q", "60"]);
    if let Some(t) = thumb {
        cmd.args(["-t", &t.to_string()]);
    }
    let status = cmd
        .arg(Path::new(FIXTURES).join("dragonfly.jpg"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap_or_else(|e| {
            panic!("heif-enc: {e} (Debian's libheif-examples; `make test` installs it)")
        });
    assert!(status.success(), "heif-enc failed");
    std::fs::read(&out).expect("heic")
}

fn run(src: &[u8], process: &str) -> Vec<u8> {
    let plan = lang::parse_process(process, &BTreeMap::new()).expect("plan");
    let opts = Options::from_config(&Default::default());
    pipeline::run(src, &plan, &opts).expect(process).bytes
}

/// Width, height and RGB pixels of a PNG.
fn pixels(png: &[u8]) -> (u32, u32, Vec<u8>) {
    let img = image::load_from_memory(png).expect("png").to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

#[test]
fn a_thumbnail_that_covers_the_output_is_decoded_instead() {
    let dir = tempfile::tempdir().expect("tmp");
    let (with, without) = (heic(dir.path(), Some(320)), heic(dir.path(), None));
    // info is the primary's in both.
    for src in [&with, &without] {
        let info: serde_json::Value =
            serde_json::from_slice(&run(src, "image/info")).expect("json");
        assert_eq!(info["ImageWidth"]["value"], "800", "{info}");
        assert_eq!(info["ImageHeight"]["value"], "600", "{info}");
    }
    // w_200 (the thumbnail is 320x240): the file with a thumbnail renders
    // from other pixels than the one without, the same picture.
    let process = "image/resize,w_200/format,png";
    let (a, b) = (
        pixels(&run(&with, process)),
        pixels(&run(&without, process)),
    );
    assert_eq!((a.0, a.1), (200, 150));
    assert_eq!((b.0, b.1), (200, 150));
    assert!(a.2 != b.2, "the thumbnail was not used");
    // The same picture: 10x10 block averages within 3 levels on average
    // (heif-enc scales its thumbnail by nearest neighbour, so fine texture
    // aliases: single blocks differ by up to 12 levels; another picture
    // differs by tens).
    let blocks = |p: &[u8]| -> Vec<f64> {
        let mut sums = vec![0f64; 20 * 15 * 3];
        for (i, v) in p.iter().enumerate() {
            let (px, c) = (i / 3, i % 3);
            let (x, y) = (px % 200 / 10, px / 200 / 10);
            sums[(y * 20 + x) * 3 + c] += *v as f64 / 100.0;
        }
        sums
    };
    let (ba, bb) = (blocks(&a.2), blocks(&b.2));
    let mean = ba.iter().zip(&bb).map(|(x, y)| (x - y).abs()).sum::<f64>() / ba.len() as f64;
    assert!(
        mean < 3.0,
        "not the same picture: blocks {mean:.2} levels apart"
    );
    // w_400, h_320 or a crop before the resize: the thumbnail does not cover
    // the output, or its pixels are not what the plan addresses; the
    // primary is decoded, to the same bytes from both files.
    for process in [
        "image/resize,w_400/format,png",
        "image/resize,h_320/format,png",
        "image/crop,w_400,h_300/resize,w_100/format,png",
    ] {
        assert!(run(&with, process) == run(&without, process), "{process}");
    }
}
