//! `watermark`: image and text marks, every position, opacity, tiling,
//! rotation, text and image together, preprocessing with `P`, errors; checked
//! on decoded pixels. The base images are white; the marks are solid colours,
//! so where a mark lands is read off the pixels.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use common::{get, put, Backend, Env, TestServer};
use pixmirror::process::engine::pipeline::{self, Marks};
use pixmirror::process::{lang, Format};

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn solid(w: u32, h: u32, c: [u8; 3]) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb(c));
    common::encode(&img, image::ImageFormat::Png)
}

const WHITE: [u8; 3] = [255, 255, 255];
const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];

/// A 200x100 white PNG with `process` applied; marks: `red.png` (20x10 red),
/// `blue.png` (10x10 blue), `big.png` (100x100 red).
fn run(process: &str) -> Result<image::RgbaImage, pixmirror::error::Error> {
    let mut marks = Marks::new();
    marks.insert("red.png".into(), solid(20, 10, RED).into());
    marks.insert("blue.png".into(), solid(10, 10, BLUE).into());
    marks.insert("big.png".into(), solid(100, 100, RED).into());
    let plan = lang::parse_process(&format!("{process}/format,png"), &BTreeMap::new())?;
    let opts = pipeline::Options::from_config(&Default::default());
    let out = pipeline::run_with(&solid(200, 100, WHITE), &plan, &opts, &marks)?;
    assert_eq!(Format::sniff(&out.bytes), Some(Format::Png));
    Ok(common::rgba(&out.bytes))
}

fn is(img: &image::RgbaImage, (x, y): (u32, u32), c: [u8; 3]) -> bool {
    common::near(img.get_pixel(x, y), c, 8)
}

/// The bounding box of the pixels that are not white: (x0, y0, x1, y1), inclusive.
fn ink(img: &image::RgbaImage) -> Option<(u32, u32, u32, u32)> {
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if !common::near(p, WHITE, 40) {
            b = Some(match b {
                None => (x, y, x, y),
                Some((x0, y0, x1, y1)) => (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            });
        }
    }
    b
}

#[test]
fn an_image_mark_at_every_position() {
    let red = b64("red.png");
    // (g, top-left corner of the 20x10 mark) with x_5, y_7, voffset_3.
    let cases = [
        ("nw", (5, 7)),
        ("north", (90, 7)),
        ("ne", (175, 7)),
        ("west", (5, 48)),
        ("center", (90, 48)),
        ("east", (175, 48)),
        ("sw", (5, 83)),
        ("south", (90, 83)),
        ("se", (175, 83)),
    ];
    for (g, (x, y)) in cases {
        let img = run(&format!(
            "image/watermark,image_{red},g_{g},x_5,y_7,voffset_3"
        ))
        .unwrap_or_else(|e| panic!("{g}: {e}"));
        assert_eq!(ink(&img), Some((x, y, x + 19, y + 9)), "{g}");
        assert!(is(&img, (x + 10, y + 5), RED), "{g}");
    }
    // Defaults: g_se, x_10, y_10.
    let img = run(&format!("image/watermark,image_{red}")).expect("defaults");
    assert_eq!(ink(&img), Some((170, 80, 189, 89)));
}

#[test]
fn opacity_blends_with_the_image() {
    let img = run(&format!("image/watermark,image_{},t_50", b64("red.png"))).expect("t_50");
    let p = img.get_pixel(180, 85).0;
    assert!(p[0] >= 250 && (120..=135).contains(&p[1]), "{p:?}");
    // t_0 leaves the image untouched.
    let img = run(&format!("image/watermark,image_{},t_0", b64("red.png"))).expect("t_0");
    assert_eq!(ink(&img), None);
}

#[test]
fn fill_tiles_the_mark_with_gaps() {
    let img = run(&format!(
        "image/watermark,image_{},fill_1,padx_10,pady_5",
        b64("blue.png")
    ))
    .expect("fill");
    // Cells of 20x15 from the top-left corner: blue 10x10, then gaps.
    for (x, y) in [(0, 0), (9, 9), (20, 0), (40, 15), (180, 90)] {
        assert!(is(&img, (x, y), BLUE), "blue at {x},{y}");
    }
    for (x, y) in [(10, 0), (19, 9), (0, 10), (5, 14), (35, 20)] {
        assert!(is(&img, (x, y), WHITE), "gap at {x},{y}");
    }
}

#[test]
fn percent_scales_the_mark_to_the_main_image() {
    // big.png 100x100 at P_10 of a 200x100 image: fits 20x10, so 10x10.
    let key = b64("big.png?x-oss-process=image/resize,P_10");
    let img = run(&format!("image/watermark,image_{key},g_nw,x_0,y_0")).expect("P");
    assert_eq!(ink(&img), Some((0, 0, 9, 9)));
    // With further preprocessing after it: crop to 5x4.
    let key = b64("big.png?x-oss-process=image/resize,P_10/crop,w_5,h_4");
    let img = run(&format!("image/watermark,image_{key},g_nw,x_0,y_0")).expect("P+crop");
    assert_eq!(ink(&img), Some((0, 0, 4, 3)));
}

#[test]
fn text_is_drawn_in_its_colour_size_and_place() {
    let text = b64("水印 Ab");
    let img = run(&format!(
        "image/watermark,text_{text},color_0000FF,size_30,g_nw,x_0,y_0"
    ))
    .expect("text");
    let (x0, y0, x1, y1) = ink(&img).expect("ink");
    assert!(x0 < 5 && y0 < 12, "starts at the top-left: {x0},{y0}");
    assert!((60..160).contains(&(x1 - x0)), "width {}", x1 - x0);
    assert!((15..=40).contains(&(y1 - y0)), "height {}", y1 - y0);
    // Its ink is blue.
    let blue = img.pixels().filter(|p| common::near(p, BLUE, 60)).count();
    assert!(blue > 100, "{blue} blue pixels");
    // A bigger size draws bigger.
    let big = run(&format!("image/watermark,text_{text},size_60,g_nw,x_0,y_0")).expect("60");
    let (_, by0, _, by1) = ink(&big).expect("ink");
    assert!(by1 - by0 > (y1 - y0) * 3 / 2, "size 60 taller than 30");
    // Every font draws.
    for font in [
        "wqy-zenhei",
        "wqy-microhei",
        "fangzhengshusong",
        "fangzhengkaiti",
        "fangzhengheiti",
        "fangzhengfangsong",
        "droidsansfallback",
    ] {
        let img = run(&format!(
            "image/watermark,text_{text},type_{},size_20",
            b64(font)
        ))
        .unwrap_or_else(|e| panic!("{font}: {e}"));
        assert!(ink(&img).is_some(), "{font} drew nothing");
    }
}

#[test]
fn rotation_and_shadow() {
    let text = b64("WWWWWW");
    let flat = run(&format!("image/watermark,text_{text},size_20,g_center")).expect("flat");
    let (fx0, fy0, fx1, fy1) = ink(&flat).expect("ink");
    assert!(fx1 - fx0 > 2 * (fy1 - fy0), "wide when flat");
    let turned = run(&format!(
        "image/watermark,text_{text},size_20,g_center,rotate_90"
    ))
    .expect("rotate");
    let (tx0, ty0, tx1, ty1) = ink(&turned).expect("ink");
    assert!(ty1 - ty0 > 2 * (tx1 - tx0), "tall when turned 90");
    // A shadow adds grey ink below and right of the black.
    let shadow = run(&format!(
        "image/watermark,text_{},color_FFFFFF,size_40,shadow_100,g_nw,x_0,y_0",
        b64("I")
    ))
    .expect("shadow");
    assert!(
        ink(&shadow).is_some(),
        "white text shows only by its shadow"
    );
}

#[test]
fn text_and_image_side_by_side() {
    let (red, text) = (b64("red.png"), b64("WW"));
    let both = |extra: &str| {
        run(&format!(
            "image/watermark,image_{red},text_{text},size_20,g_nw,x_0,y_0{extra}"
        ))
        .expect("both")
    };
    // order 0: the image first (left), the text after `interval`.
    let img = both(",interval_7,align_0");
    assert!(is(&img, (10, 2), RED), "image at the left, top-aligned");
    let (x0, _, x1, _) = ink(&img).expect("ink");
    assert_eq!(x0, 0);
    assert!(x1 > 27 + 10, "text after the image and the gap");
    assert!(
        (20..27).all(|x| (0..30).all(|y| is(&img, (x, y), WHITE))),
        "the interval is empty"
    );
    // order 1: the text first; the image at the right end.
    let img = both(",order_1,align_0");
    assert!(!is(&img, (10, 2), RED), "no image at the left");
    let (_, _, x1, _) = ink(&img).expect("ink");
    assert!(is(&img, (x1 - 5, 2), RED), "image at the right end");
    // align 2 (default): the image's bottom on the bottom of the taller text.
    let img = both("");
    let (_, _, _, bottom) = ink(&img).expect("ink");
    assert!(bottom >= 12, "the text is taller than the image");
    assert!(!is(&img, (10, 1), RED) && is(&img, (10, bottom), RED));
    assert!(!is(&img, (10, bottom - 10), RED));
}

#[test]
fn several_marks_in_one_request() {
    let (red, blue) = (b64("red.png"), b64("blue.png"));
    let img = run(&format!(
        "image/watermark,image_{red},g_nw,x_0,y_0/watermark,image_{blue},g_se,x_0,y_0"
    ))
    .expect("two");
    assert!(is(&img, (5, 5), RED) && is(&img, (195, 95), BLUE));
}

#[test]
fn refused_with_400() {
    let red = b64("red.png");
    for process in [
        "image/watermark".to_string(),
        "image/watermark,t_50".into(),
        format!("image/watermark,text_{}", b64(&"x".repeat(65))),
        format!(
            "image/watermark,text_{},type_{}",
            b64("a"),
            b64("comic-sans")
        ),
        format!("image/watermark,text_{},color_FFF", b64("a")),
        format!("image/watermark,text_{},size_0", b64("a")),
        format!("image/watermark,image_{red},t_101"),
        format!("image/watermark,image_{red},voffset_2000"),
        format!("image/watermark,image_{red},align_3"),
        format!(
            "image/watermark,image_{}",
            b64("red.png?x-oss-process=image/circle,r_5")
        ),
        format!(
            "image/watermark,image_{}",
            b64("red.png?x-oss-process=image/resize,P_101")
        ),
        format!("image/watermark,image_{red}/").repeat(4),
        "image/watermark,text_!!!".into(),
    ] {
        let e = lang::parse_process(&process, &BTreeMap::new())
            .err()
            .unwrap_or_else(|| panic!("{process} was accepted"));
        assert_eq!(e.status().as_u16(), 400, "{process}: {e}");
    }
}

#[test]
fn equivalent_spellings_share_one_canonical_form() {
    let canon = |s: &str| {
        lang::parse_process(s, &BTreeMap::new())
            .expect(s)
            .canonical()
    };
    let text = b64("Hi");
    let padded = base64::engine::general_purpose::URL_SAFE.encode("Hi");
    assert_ne!(text, padded);
    let a = canon(&format!("image/watermark,text_{text}"));
    assert_eq!(a, canon(&format!("image/watermark,text_{padded}")));
    assert_eq!(
        a,
        canon(&format!(
            "image/watermark,text_{text},type_{},t_100,g_se,x_10,y_10,size_40",
            b64("wqy-zenhei")
        ))
    );
    assert_eq!(
        canon(&format!(
            "image/watermark,text_{text},font_{}",
            b64("wqy-microhei")
        )),
        canon(&format!(
            "image/watermark,text_{text},type_{}",
            b64("wqy-microhei")
        ))
    );
    // The canonical form parses back to itself.
    let c = canon(&format!(
        "image/watermark,image_{},text_{text},order_1,g_west,voffset_-5,t_60",
        b64("a/b.png?x-oss-process=image/resize,P_20/rotate,90")
    ));
    assert_eq!(canon(&c), c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_load_through_the_store_and_l1() {
    let env = Env::new(Backend::Fs, "wm").await;
    put(
        &env.store,
        &env.key("base.png"),
        solid(200, 100, WHITE),
        "image/png",
    )
    .await;
    put(
        &env.store,
        &env.key("logo.png"),
        solid(20, 10, RED),
        "image/png",
    )
    .await;
    let s = TestServer::start(env.config()).await;
    let logo = b64(&env.key("logo.png"));
    let url = |extra: &str| {
        s.url(&format!(
            "{}?x-oss-process=image/watermark,image_{logo}{extra}/format,png",
            env.key("base.png")
        ))
    };
    let r = get(&url("")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(ink(&common::rgba(&r.body)), Some((170, 80, 189, 89)));
    let fetched = s.store_fetches();
    // Another plan with the same mark: base and mark both come from L1.
    let r = get(&url(",g_nw")).await;
    assert_eq!(r.status, 200);
    assert_eq!(ink(&common::rgba(&r.body)), Some((10, 10, 29, 19)));
    assert_eq!(s.store_fetches(), fetched, "no store read for either");
    // A mark that does not exist: 400, not 404.
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/watermark,image_{}",
        env.key("base.png"),
        b64("nope.png")
    )))
    .await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    s.stop().await;
}
