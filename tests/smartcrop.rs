//! Smart crop (issue 25): `resize,m_fill,...,g_smart` and COS `scrop` keep
//! the most salient region where the centre crop loses it.

mod common;

use std::collections::BTreeMap;

use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::lang::{self, cos};

/// 800x400 flat grey with one small red-and-black checkerboard far right of
/// the centre (x 640..700, y 170..230).
fn scene() -> Vec<u8> {
    let img = image::RgbImage::from_fn(800, 400, |x, y| {
        if (640..700).contains(&x) && (170..230).contains(&y) {
            if (x / 10 + y / 10) % 2 == 0 {
                image::Rgb([230, 20, 20])
            } else {
                image::Rgb([0, 0, 0])
            }
        } else {
            image::Rgb([128, 128, 128])
        }
    });
    common::encode(&img, image::ImageFormat::Png)
}

/// The output's size and how many of its pixels are the object's red.
fn red_pixels(png: &[u8]) -> ((u32, u32), usize) {
    let img = image::load_from_memory(png).expect("png").to_rgb8();
    let red = img
        .pixels()
        .filter(|p| p.0[0] > 150 && p.0[1] < 90 && p.0[2] < 90)
        .count();
    ((img.width(), img.height()), red)
}

fn run(plan: &pixmirror::process::Plan) -> Vec<u8> {
    let opts = Options::from_config(&Default::default());
    pipeline::run(&scene(), plan, &opts).expect("run").bytes
}

#[test]
fn the_smart_crop_keeps_the_object_the_centre_crop_loses() {
    let oss = |s: &str| lang::parse_process(s, &BTreeMap::new()).expect(s);
    let centre = red_pixels(&run(&oss("image/resize,m_fill,w_200,h_200/format,png")));
    let smart = red_pixels(&run(&oss(
        "image/resize,m_fill,w_200,h_200,g_smart/format,png",
    )));
    let scrop = red_pixels(&run(
        &cos::parse("imageMogr2/scrop/200x200/format/png").expect("cos")
    ));
    assert_eq!(centre, ((200, 200), 0), "the centre crop loses the object");
    assert_eq!(smart.0, (200, 200));
    // The object is 30x30 at this scale, half of it red.
    assert!(
        smart.1 > 300,
        "the smart crop keeps it: {} red pixels",
        smart.1
    );
    assert_eq!(scrop, smart, "COS scrop is the same crop");
}
