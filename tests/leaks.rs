//! No libvips object outlives a pipeline run, whatever the plan and input,
//! errors included (`vips::live_objects` counts libvips' global table, where a
//! leaked image stays reachable and LeakSanitizer cannot see it). The pipeline
//! fuzzer ran out of memory this way: live libjpeg, GIF and orc allocations
//! piling up over thousands of inputs.
//! Its own test binary: the count is process-wide.

mod common;

use std::collections::BTreeMap;

use pixmirror::process::engine::pipeline;
use pixmirror::process::engine::vips::live_objects;
use pixmirror::process::lang;

/// Three 40x30 frames (the animated path cuts and joins frames).
fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        for v in [0u8, 120, 240] {
            let buf = image::RgbaImage::from_pixel(40, 30, image::Rgba([v, 255 - v, 60, 255]));
            let delay = image::Delay::from_numer_denom_ms(100, 1);
            enc.encode_frame(image::Frame::from_parts(buf, 0, 0, delay))
                .expect("frame");
        }
    }
    out
}

/// What `run` left in libvips' object table, named by `what`; `None` if nothing.
fn leaked(run: impl FnOnce(), what: impl FnOnce() -> String) -> Option<String> {
    let before = live_objects();
    run();
    let after = live_objects();
    (after != before).then(|| format!("{}: {} object(s)", what(), after as i64 - before as i64))
}

#[test]
fn no_libvips_object_outlives_a_run() {
    let opts = pipeline::Options {
        max_source_pixels: 4_000_000,
        ..pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default())
    };
    let inputs = [
        "sunset.jpg",
        "gulp.png",
        "rotated-exif6.jpg",
        "truncated.jpg",
        "not-an-image.jpg",
        "bomb-header.png",
    ];
    let plans = [
        "image/resize,w_64/format,webp",
        "image/resize,m_fill,w_40,h_40/format,png",
        "image/resize,m_pad,w_50,h_20,color_FF0000/format,jpg",
        "image/crop,w_30,h_30,g_center/format,gif",
        "image/indexcrop,x_20,i_1/format,avif",
        "image/circle,r_20/format,webp",
        "image/rounded-corners,r_10/format,png",
        "image/resize,w_80/rotate,45/format,jpg",
        "image/resize,w_80/rotate,90",
        "image/resize,w_60/blur,r_3,s_2",
        "image/resize,w_60/sharpen,100/bright,20/contrast,-30",
        "image/resize,w_60/format,tiff",
        "image/resize,w_60/format,bmp",
        "image/resize,w_30/rotate,90/format,gif",
        "image/resize,w_60/watermark,text_SGk,shadow_50,rotate_30,fill_1,t_50",
        "image/crop,w_20,h_20/format,webp",
        "image/resize,w_60/interlace,1/quality,q_50/format,jpg",
        "image/auto-orient,0/resize,w_60",
        "image/info",
        "image/average-hue",
        "image/resize,p_1000,limit_0",
        "image/crop,x_100000,y_5,w_10,h_10",
    ];
    // The first run starts libvips (its own objects stay).
    let warm = lang::parse_process(plans[0], &BTreeMap::new()).expect("plan");
    let _ = pipeline::run(&common::fixture("sunset.jpg"), &warm, &opts);
    let base = live_objects();
    let mut leaks = Vec::new();
    let sources = inputs
        .iter()
        .map(|&f| (f, common::fixture(f)))
        .chain([("animated.gif", animated_gif())]);
    for (input, src) in sources {
        for p in plans {
            let plan = lang::parse_process(p, &BTreeMap::new()).expect("plan");
            leaks.extend(leaked(
                || drop(pipeline::run(&src, &plan, &opts)),
                || format!("{input} {p}"),
            ));
        }
    }
    leaks.extend(watermark_images_leave_nothing(&opts));
    leaks.extend(deadline_kills_leave_nothing(&opts));
    assert!(
        leaks.is_empty(),
        "libvips objects left after a run:\n{}",
        leaks.join("\n")
    );
    assert_eq!(live_objects(), base);
}

/// Runs that draw watermark images (their preprocessing included), on each
/// source; the leaks found.
fn watermark_images_leave_nothing(opts: &pipeline::Options) -> Vec<String> {
    use base64::Engine;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let mut marks = pipeline::Marks::new();
    marks.insert("mark.png".into(), common::fixture("gulp.png").into());
    marks.insert("broken.jpg".into(), common::fixture("truncated.jpg").into());
    let plans = [
        format!(
            "image/resize,w_120/watermark,image_{},g_center,t_60",
            b64("mark.png")
        ),
        format!(
            "image/resize,w_120/watermark,image_{},fill_1,padx_5",
            b64("mark.png?x-oss-process=image/resize,P_30/rotate,90/rounded-corners,r_5")
        ),
        format!(
            "image/watermark,image_{},text_SGk,order_1,align_1",
            b64("mark.png?x-oss-process=image/crop,w_50,h_50/indexcrop,x_10,i_1")
        ),
        format!("image/resize,w_120/watermark,image_{}", b64("broken.jpg")),
    ];
    let mut leaks = Vec::new();
    for input in ["sunset.jpg", "gulp.png", "truncated.jpg"] {
        let src = common::fixture(input);
        for p in &plans {
            let plan = lang::parse_process(p, &BTreeMap::new()).expect("plan");
            leaks.extend(leaked(
                || drop(pipeline::run_with(&src, &plan, opts, &marks)),
                || format!("{input} {p}"),
            ));
        }
    }
    leaks
}

/// Runs stopped by the deadline at every moment (before the load, in a step,
/// while encoding); the leaks found.
fn deadline_kills_leave_nothing(opts: &pipeline::Options) -> Vec<String> {
    let plans = [
        "image/resize,w_400/blur,r_30,s_30/format,webp",
        "image/resize,w_400/format,webp",
        "image/format,webp",
        "image/resize,w_400/rotate,33/format,png",
        "image/average-hue",
        "image/resize,w_300/format,avif",
        "image/resize,w_200/format,bmp",
    ];
    let mut leaks = Vec::new();
    let src = common::fixture("dragonfly.jpg");
    for p in plans {
        let plan = lang::parse_process(p, &BTreeMap::new()).expect("plan");
        for ms in (0u64..16).chain([20, 30, 50]) {
            let opts = pipeline::Options {
                deadline: Some(std::time::Instant::now() + std::time::Duration::from_millis(ms)),
                ..opts.clone()
            };
            leaks.extend(leaked(
                || drop(pipeline::run(&src, &plan, &opts)),
                || format!("{p} at {ms} ms"),
            ));
        }
    }
    leaks
}
