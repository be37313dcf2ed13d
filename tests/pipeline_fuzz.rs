//! Random valid process strings over real images: the pipeline returns an
//! image or a typed error, never a panic or a crash (a libvips crash would
//! take this test process down).

mod common;

use std::collections::BTreeMap;

use pixmirror::process::engine::pipeline;
use pixmirror::process::lang;

/// Plans that shrink the image to a pixel or two before a geometric step.
#[test]
fn tiny_images_through_every_geometric_step() {
    let img = common::fixture("gulp.png");
    let opts = pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default());
    for ops in [
        "image/resize,w_1/circle,r_50",
        "image/crop,w_1,h_1/circle,r_1",
        "image/resize,m_fixed,w_1,h_1/rounded-corners,r_5",
        "image/resize,w_2/indexcrop,x_1,i_1",
        "image/crop,w_1,h_1/rotate,45",
        "image/resize,m_fixed,w_1,h_1/blur,r_50,s_50",
        "image/resize,m_fixed,w_1,h_1/sharpen,399/format,gif",
        "image/resize,m_fixed,w_1,h_2/resize,m_fill,w_3,h_1,limit_0",
        "image/resize,m_fixed,w_2,h_1/resize,m_pad,w_1,h_5,limit_0/format,jpg",
        "image/crop,w_1,h_1/crop,g_se,w_5,h_5",
    ] {
        let plan = lang::parse_process(ops, &BTreeMap::new()).expect("valid plan");
        match pipeline::run(&img, &plan, &opts) {
            Ok(out) => assert!(!out.bytes.is_empty(), "{ops}"),
            Err(e) => assert!(matches!(e.status().as_u16(), 400 | 422), "{ops}: {e}"),
        }
    }
}

#[test]
fn random_plans_on_real_images() {
    const ACTIONS: &[&str] = &[
        "resize",
        "crop",
        "rotate",
        "format",
        "quality",
        "interlace",
        "indexcrop",
        "circle",
        "rounded-corners",
        "blur",
        "bright",
        "contrast",
        "sharpen",
        "auto-orient",
    ];
    const PARAMS: &[&str] = &[
        "w_1",
        "h_1",
        "w_3",
        "w_300",
        "h_200",
        "l_2",
        "s_1",
        "p_1",
        "p_300",
        "m_fill",
        "m_pad",
        "m_fixed",
        "m_mfit",
        "limit_0",
        "color_FF0000",
        "g_se",
        "g_center",
        "g_south",
        "x_10",
        "y_5",
        "x_799",
        "r_1",
        "r_20",
        "r_500",
        "s_3",
        "i_1",
        "i_9",
        "q_5",
        "Q_70",
        "1",
        "0",
        "90",
        "45",
        "270",
        "359",
        "-50",
        "50",
        "100",
        "399",
        "webp",
        "jpg",
        "png",
        "gif",
        "avif",
        "bmp",
        "tiff",
    ];
    let images = [
        common::fixture("dragonfly.jpg"),
        common::fixture("gulp.png"),
        common::fixture("rotated-exif6.jpg"),
    ];
    let opts = pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default());
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let (mut ok, mut refused, mut tried) = (0, 0, 0);
    while tried < 150 {
        let mut s = String::from("image");
        for _ in 0..(1 + next(3)) {
            s.push('/');
            let a = ACTIONS[next(ACTIONS.len())];
            s.push_str(a);
            for _ in 0..(1 + next(2)) {
                s.push(',');
                s.push_str(PARAMS[next(PARAMS.len())]);
            }
        }
        let Ok(plan) = lang::parse_process(&s, &BTreeMap::new()) else {
            continue;
        };
        tried += 1;
        // AVIF encodes of large outputs are slow; keep the run short.
        let img = &images[next(images.len())];
        match pipeline::run(img, &plan, &opts) {
            Ok(out) => {
                assert!(!out.bytes.is_empty(), "{s}: empty output");
                ok += 1;
            }
            Err(e) => {
                let status = e.status().as_u16();
                assert!(matches!(status, 400 | 422), "{s}: unexpected {status} {e}");
                refused += 1;
            }
        }
    }
    assert!(
        ok > 100,
        "most random plans succeed ({ok} ok, {refused} refused)"
    );
}
