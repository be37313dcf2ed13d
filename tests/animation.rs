//! Animated GIF and WebP: every action on every frame, delays and loop count
//! kept, still formats take the first frame, a GIF is never enlarged, the
//! output cap counts every frame. The sources are drawn here: frame i is
//! `COLORS[i]` on its left half and black on its right half.

mod common;

use std::collections::BTreeMap;
use std::io::Cursor;

use common::{get, put, Backend, Env, TestServer};
use image::AnimationDecoder;
use pixmirror::process::engine::pipeline;
use pixmirror::process::{lang, Format};

const COLORS: [[u8; 3]; 4] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
const DELAYS_MS: [u32; 4] = [100, 200, 300, 400];
/// The source GIF's NETSCAPE2.0 repeats: it plays 1 + 3 = 4 times, which a
/// WebP's ANIM chunk says as 4.
const REPEATS: u16 = 3;
const PLAYS: u16 = 4;

/// A 60x40 animated GIF of four frames.
fn source_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        enc.set_repeat(image::codecs::gif::Repeat::Finite(REPEATS))
            .expect("repeat");
        for (c, ms) in COLORS.iter().zip(DELAYS_MS) {
            let buf = image::RgbaImage::from_fn(60, 40, |x, _| {
                if x < 30 {
                    image::Rgba([c[0], c[1], c[2], 255])
                } else {
                    image::Rgba([0, 0, 0, 255])
                }
            });
            let delay = image::Delay::from_numer_denom_ms(ms, 1);
            enc.encode_frame(image::Frame::from_parts(buf, 0, 0, delay))
                .expect("frame");
        }
    }
    out
}

/// A decoded animation: frames, their delays in ms, how often it plays (0:
/// for ever).
struct Anim {
    frames: Vec<image::RgbaImage>,
    delays: Vec<u32>,
    plays: u16,
}

fn decode(bytes: &[u8]) -> Anim {
    let frames: Vec<image::Frame> = match Format::sniff(bytes) {
        Some(Format::Gif) => image::codecs::gif::GifDecoder::new(Cursor::new(bytes))
            .expect("gif")
            .into_frames()
            .collect_frames()
            .expect("gif frames"),
        Some(Format::Webp) => image::codecs::webp::WebPDecoder::new(Cursor::new(bytes))
            .expect("webp")
            .into_frames()
            .collect_frames()
            .expect("webp frames"),
        other => panic!("not an animation format: {other:?}"),
    };
    let delays = frames
        .iter()
        .map(|f| {
            let (n, d) = f.delay().numer_denom_ms();
            n / d.max(1)
        })
        .collect();
    Anim {
        frames: frames.into_iter().map(|f| f.into_buffer()).collect(),
        delays,
        plays: plays(bytes),
    }
}

/// How often the animation plays: a GIF once plus the NETSCAPE2.0 block's
/// repeats (0: for ever), a WebP what its ANIM chunk says.
fn plays(b: &[u8]) -> u16 {
    let at = |pat: &[u8]| b.windows(pat.len()).position(|w| w == pat);
    if b.starts_with(b"GIF") {
        return match at(b"NETSCAPE2.0") {
            Some(i) => match u16::from_le_bytes([b[i + 13], b[i + 14]]) {
                0 => 0,
                n => n + 1,
            },
            None => 1,
        };
    }
    let i = at(b"ANIM").expect("an ANIM chunk");
    u16::from_le_bytes([b[i + 12], b[i + 13]])
}

fn run(src: &[u8], process: &str) -> pixmirror::error::Result<pipeline::Output> {
    run_with(
        src,
        process,
        pipeline::Options::from_config(&Default::default()),
    )
}

fn run_with(
    src: &[u8],
    process: &str,
    opts: pipeline::Options,
) -> pixmirror::error::Result<pipeline::Output> {
    let plan = lang::parse_process(process, &BTreeMap::new()).expect("plan");
    pipeline::run(src, &plan, &opts)
}

fn near(p: &image::Rgba<u8>, c: [u8; 3]) -> bool {
    common::near(p, c, 24)
}

/// Every frame has size `(w, h)`, the source's colour at `at` and black at
/// `black`, and the source's delays and loop count.
#[track_caller]
fn assert_frames(a: &Anim, (w, h): (u32, u32), at: (u32, u32), black: (u32, u32)) {
    assert_eq!(a.frames.len(), 4, "frame count");
    assert_eq!(a.delays, DELAYS_MS, "delays");
    assert_eq!(a.plays, PLAYS, "plays");
    for (i, f) in a.frames.iter().enumerate() {
        assert_eq!(f.dimensions(), (w, h), "frame {i}");
        let p = f.get_pixel(at.0, at.1);
        assert!(near(p, COLORS[i]), "frame {i} at {at:?}: {p:?}");
        let p = f.get_pixel(black.0, black.1);
        assert!(near(p, [0, 0, 0]), "frame {i} at {black:?}: {p:?}");
    }
}

#[test]
fn every_action_runs_on_every_frame() {
    let src = source_gif();
    // (process, output size, a pixel of the frame's colour, a black pixel)
    type Case = (&'static str, (u32, u32), (u32, u32), (u32, u32));
    let cases: &[Case] = &[
        ("image/resize,w_30", (30, 20), (5, 10), (25, 10)),
        ("image/resize,w_30/format,webp", (30, 20), (5, 10), (25, 10)),
        ("image/crop,w_20,h_10,x_20,y_5", (20, 10), (5, 5), (15, 5)),
        // Clockwise: the left half becomes the top half.
        ("image/rotate,90", (40, 60), (20, 5), (20, 55)),
        ("image/rotate,180/format,webp", (60, 40), (55, 20), (5, 20)),
        ("image/indexcrop,x_20,i_1", (20, 40), (5, 20), (15, 20)),
        ("image/blur,r_3,s_2", (60, 40), (5, 20), (55, 20)),
        ("image/resize,m_fill,w_20,h_20", (20, 20), (2, 10), (18, 10)),
        (
            "image/auto-orient,1/resize,h_20",
            (30, 20),
            (5, 10),
            (25, 10),
        ),
    ];
    for &(process, size, at, black) in cases {
        let out = run(&src, process).unwrap_or_else(|e| panic!("{process}: {e}"));
        let a = decode(&out.bytes);
        eprintln!("{process}: {} bytes", out.bytes.len());
        assert_frames(&a, size, at, black);
    }
}

#[test]
fn an_animated_webp_source_keeps_its_frames() {
    // Made by the pipeline from the GIF (checked above to be animated).
    let webp = run(&source_gif(), "image/format,webp").expect("webp").bytes;
    assert_frames(&decode(&webp), (60, 40), (5, 20), (55, 20));
    for process in ["image/resize,w_30", "image/resize,w_30/format,gif"] {
        let out = run(&webp, process).unwrap_or_else(|e| panic!("{process}: {e}"));
        assert_frames(&decode(&out.bytes), (30, 20), (5, 10), (25, 10));
    }
}

#[test]
fn a_watermark_lands_on_every_frame() {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("II");
    let process = format!("image/watermark,text_{text},color_FFFFFF,size_30,g_nw,x_2,y_2");
    let a = decode(&run(&source_gif(), &process).expect("watermark").bytes);
    assert_eq!(
        (a.frames.len(), a.delays.clone(), a.plays),
        (4, DELAYS_MS.to_vec(), PLAYS)
    );
    for (i, f) in a.frames.iter().enumerate() {
        let white = (0..20)
            .flat_map(|x| (0..30).map(move |y| (x, y)))
            .filter(|&(x, y)| near(f.get_pixel(x, y), [255, 255, 255]))
            .count();
        assert!(white > 20, "frame {i}: {white} white pixels of the mark");
        assert!(
            near(f.get_pixel(25, 35), COLORS[i]),
            "frame {i} keeps its colour"
        );
    }
}

#[test]
fn masks_make_every_frame_transparent_outside() {
    let src = source_gif();
    for process in [
        "image/circle,r_15",
        "image/rounded-corners,r_10/format,webp",
    ] {
        let out = run(&src, process).unwrap_or_else(|e| panic!("{process}: {e}"));
        let a = decode(&out.bytes);
        assert_eq!((a.frames.len(), a.delays.clone()), (4, DELAYS_MS.to_vec()));
        for (i, f) in a.frames.iter().enumerate() {
            assert_eq!(f.get_pixel(0, 0).0[3], 0, "{process}: frame {i} corner");
            let mid = f.get_pixel(5, f.height() / 2);
            assert!(near(mid, COLORS[i]), "{process}: frame {i}: {mid:?}");
        }
    }
}

#[test]
fn a_still_format_takes_the_first_frame() {
    let src = source_gif();
    for (process, want) in [
        ("image/resize,w_30/format,png", Format::Png),
        ("image/resize,w_30/format,jpg", Format::Jpg),
    ] {
        let out = run(&src, process).expect(process);
        assert_eq!(Format::sniff(&out.bytes), Some(want));
        let img = common::rgba(&out.bytes);
        assert_eq!(img.dimensions(), (30, 20));
        assert!(near(img.get_pixel(5, 10), COLORS[0]), "{process}");
    }
}

#[test]
fn a_gif_is_never_enlarged() {
    let src = source_gif();
    for process in [
        "image/resize,w_120,limit_0",
        "image/resize,p_200,limit_0/format,webp",
    ] {
        let a = decode(&run(&src, process).expect(process).bytes);
        assert_frames(&a, (60, 40), (5, 20), (55, 20));
    }
    // A JPEG still is.
    let jpg = common::encode(&common::quadrants(60, 40), image::ImageFormat::Jpeg);
    let out = run(&jpg, "image/resize,w_120,limit_0").expect("jpg");
    assert_eq!(common::rgba(&out.bytes).dimensions(), (120, 80));
}

#[test]
fn the_output_cap_counts_every_frame() {
    let src = source_gif();
    let opts = pipeline::Options {
        max_output_pixels: 60 * 40 * 3,
        ..pipeline::Options::from_config(&Default::default())
    };
    let err = run_with(&src, "image/resize,w_60", opts.clone()).expect_err("over the cap");
    assert_eq!(err.status().as_u16(), 400, "{err}");
    assert!(err.to_string().contains("4 frames of 60x40"), "{err}");
    // One frame fits.
    let out = run_with(&src, "image/resize,w_60/format,png", opts).expect("png");
    assert_eq!(Format::sniff(&out.bytes), Some(Format::Png));
}

#[test]
fn info_counts_frames() {
    let out = run(&source_gif(), "image/info").expect("info");
    let v: serde_json::Value = serde_json::from_slice(&out.bytes).expect("json");
    assert_eq!(v["FrameCount"]["value"], "4");
    assert_eq!(v["ImageWidth"]["value"], "60");
    assert_eq!(v["ImageHeight"]["value"], "40");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_animated_through_the_server() {
    let env = Env::new(Backend::Fs, "anim").await;
    put(&env.store, &env.key("a.gif"), source_gif(), "image/gif").await;
    let s = TestServer::start(env.config()).await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_30/format,webp",
        env.key("a.gif")
    )))
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.header("content-type"), "image/webp");
    assert_frames(&decode(&r.body), (30, 20), (5, 10), (25, 10));
    s.stop().await;
}
