//! Attacks on the real server (issue 9): every resource bounded, every hostile
//! input refused early with its documented status, every store fault answered
//! correctly. Fs store where the bucket does not matter, Garage where it does.

mod common;

use std::collections::BTreeMap;

use common::origin::Origin;
use common::{get, put, Backend, Env, TestServer};
use pixmirror::process::{grammar, pipeline};

/// A 1200x900 JPEG, the size of the photo in the attack.
fn photo_1200() -> Vec<u8> {
    common::encode(&common::quadrants(1200, 900), image::ImageFormat::Jpeg)
}

fn message(r: &common::Resp) -> String {
    r.json()["message"].as_str().unwrap_or("").to_string()
}

/// The URL answered 200 with 661 MB after 9 s; now it is refused from
/// the plan's geometry before a pixel is decoded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_pixel_cap_refuses_growth_before_decoding() {
    let env = Env::new(Backend::Fs, "outcap").await;
    put(&env.store, &env.key("p.jpg"), photo_1200(), "image/jpeg").await;
    let s = TestServer::start(env.config()).await;
    let url = |ops: &str| s.url(&format!("/{}?x-oss-process=image/{ops}", env.key("p.jpg")));

    let r = get(&url("resize,p_1000,limit_0/rotate,45/format,bmp")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    let m = message(&r);
    assert!(m.starts_with("resize:") && m.contains("12000x9000"), "{m}");
    assert!(m.contains("max_output_pixels"), "{m}");
    assert_eq!(s.processed(), 0, "nothing was processed");
    s.stop().await;

    // A lower cap shows each growing step named: rotate by any angle, pad.
    let mut cfg = env.config();
    cfg.process.max_output_pixels = 2_000_000;
    let s = TestServer::start(cfg).await;
    let url = |ops: &str| s.url(&format!("/{}?x-oss-process=image/{ops}", env.key("p.jpg")));
    for (ops, step) in [
        ("rotate,45", "rotate:"),
        ("rotate,90/rotate,45", "rotate:"),
        ("resize,m_pad,w_2000,h_1100,limit_0", "resize:"),
        ("resize,p_200,limit_0/format,tiff", "resize:"),
        (
            "resize,w_1000/resize,m_fixed,w_16384,h_200,limit_0",
            "resize:",
        ),
    ] {
        let r = get(&url(ops)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "InvalidArgument"),
            "{ops}"
        );
        assert!(message(&r).starts_with(step), "{ops}: {}", message(&r));
    }
    // Inside the cap: served, at the predicted size.
    let r = get(&url("rotate,10/format,png")).await;
    assert_eq!(r.status, 200);
    let (w, h) = r.dims();
    assert!(w.abs_diff(1339) <= 1 && h.abs_diff(1095) <= 1, "{w}x{h}");
    assert_eq!(s.processed(), 1);
    s.stop().await;
}

/// The geometry the cap is checked on is the geometry the pipeline produces.
#[test]
fn predicted_geometry_is_the_output_geometry() {
    let opts = pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default());
    let sources = [
        ("dragonfly.jpg", common::fixture("dragonfly.jpg")),
        ("gulp.png", common::fixture("gulp.png")),
        ("rotated-exif6.jpg", common::fixture("rotated-exif6.jpg")),
    ];
    let plans = [
        "resize,w_300",
        "resize,m_fill,w_100,h_100",
        "resize,m_pad,w_500,h_100,limit_0",
        "resize,m_fixed,w_77,h_300,limit_0",
        "resize,l_90/crop,g_se,w_50,h_40",
        "resize,p_35/rotate,33",
        "resize,s_64/rotate,271",
        "crop,x_10,y_10/circle,r_40",
        "indexcrop,x_70,i_2/rotate,90",
        "indexcrop,y_1000,i_0/rounded-corners,r_10",
        "auto-orient,0/resize,w_50",
        "resize,w_120/rotate,359/resize,m_mfit,w_80,h_80",
    ];
    for (name, src) in &sources {
        let header = pipeline::probe(src, u64::MAX).expect("probe");
        for ops in plans {
            let plan = grammar::parse_process(&format!("image/{ops}/format,png"), &BTreeMap::new())
                .expect("valid");
            let from = if plan.auto_orient && (5..=8).contains(&header.orientation) {
                (header.height, header.width)
            } else {
                (header.width, header.height)
            };
            let (pw, ph) = pipeline::output_geometry(&plan, from, u64::MAX).expect("geometry");
            let out = pipeline::run(src, &plan, &opts).expect("run");
            let img = image::load_from_memory(&out.bytes).expect("decodes");
            let rot = ops.contains("rotate,33")
                || ops.contains("rotate,271")
                || ops.contains("rotate,359");
            let tol = if rot { 1 } else { 0 };
            assert!(
                img.width().abs_diff(pw) <= tol && img.height().abs_diff(ph) <= tol,
                "{name} {ops}: predicted {pw}x{ph}, got {}x{}",
                img.width(),
                img.height()
            );
        }
    }
}

/// A misspelt bucket is a store failure (502), never "missing": the mirror is
/// not asked, for GET, HEAD and derivatives alike, and `/readyz` fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_store_error_and_never_fires_the_mirror() {
    let env = Env::new(Backend::S3, "nobucket").await;
    let o = Origin::start().await;
    let mut cfg = env.config();
    cfg.storage.bucket = format!("{}-misspelt", cfg.storage.bucket);
    cfg.mirror.allow_private_networks = true;
    cfg.mirror.rules = vec![pixmirror::config::MirrorRule {
        origin: Some(o.template("img")),
        retries: 0,
        ..Default::default()
    }];
    let s = TestServer::start(cfg).await;
    let key = env.key("sunset.jpg");
    for (method, q) in [
        ("GET", ""),
        ("HEAD", ""),
        ("GET", "?x-oss-process=image/resize,w_10"),
    ] {
        let r = common::request(method, &s.url(&format!("{key}{q}")), &[]).await;
        assert_eq!(r.status, 502, "{method} {q}");
        if method == "GET" {
            assert_eq!(r.code(), "StoreError");
            assert!(
                !message(&r).contains("misspelt"),
                "no bucket names: {}",
                message(&r)
            );
        }
    }
    assert_eq!(o.total_hits(), 0, "the mirror never fired");
    assert_eq!(get(&format!("{}/readyz", s.admin)).await.status, 503);
    s.stop().await;
}

/// `SlowDown` is retried by the SDK with backoff (3 attempts), then answered
/// 503 `Busy` with `Retry-After`, not 502 and not "missing". Garage never
/// throttles, so the endpoint here is a loopback stand-in (tests/common/fake_s3.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_down_is_retried_then_busy() {
    let fake = common::fake_s3::FakeS3::start(503, "SlowDown").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config(Backend::Fs, dir.path());
    fake.configure(&mut cfg);
    let s = TestServer::start(cfg).await;
    let r = get(&s.url("a/b.jpg?x-oss-process=image/resize,w_10")).await;
    assert_eq!((r.status, r.code().as_str()), (503, "Busy"));
    assert!(!r.header("retry-after").is_empty());
    let before = fake.requests();
    let r = get(&s.url("a/c.jpg")).await;
    assert_eq!((r.status, r.code().as_str()), (503, "Busy"));
    assert_eq!(fake.requests() - before, 3, "one request, three attempts");
    s.stop().await;
}

/// An original whose key is so long that even the hashed derivative key
/// (`<key><sep>h_<64 hex>`) passes S3's 1024 bytes: the derivative is served
/// and kept in L1, and the bucket never gets a request with a key it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derivatives_of_very_long_keys_are_not_stored() {
    let env = Env::new(Backend::S3, "longkey").await;
    let key = format!("{}/{}.jpg", env.prefix, "k".repeat(1010 - env.prefix.len()));
    let plain = format!("{key}__op__resize,w_40");
    assert!(key.len() <= 1024 && plain.len() > 1024 && key.len() + 6 + 66 > 1024);
    put(
        &env.store,
        &key,
        common::fixture("sunset.jpg"),
        "image/jpeg",
    )
    .await;
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let s = TestServer::start(cfg).await;
    let url = s.url(&format!("{key}?x-oss-process=image/resize,w_40"));
    let first = get(&url).await;
    assert_eq!((first.status, first.cache()), (200, "processed"));
    assert_eq!(first.dims().0, 40);
    let second = get(&url).await;
    assert_eq!((second.status, second.cache()), (200, "memory"));
    let m = &s.app.metrics;
    assert_eq!(m.store_requests_of("PUT"), 0, "no write-back");
    assert_eq!(m.store_requests_of("GET"), 1, "the original only");
    s.stop().await;
}

/// 405 names the methods that are allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_not_allowed_carries_allow() {
    let env = Env::new(Backend::Fs, "allow").await;
    let s = TestServer::start(env.config()).await;
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let r = common::request(method, &s.url(&env.key("sunset.jpg")), &[]).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (405, "MethodNotAllowed"),
            "{method}"
        );
        assert_eq!(r.header("allow"), "GET, HEAD", "{method}");
    }
    s.stop().await;
}

/// `process.timeout` stops a single long libvips operation, not only the gaps
/// between steps: a huge blur is evaluated while encoding, in one step. Before,
/// it ran to the end and answered 200; now libvips is told to stop (its image
/// kill flag, set from the eval signal): 504, and the one slot serves the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_stops_a_long_libvips_operation() {
    let env = Env::new(Backend::Fs, "deadline").await;
    let big = common::encode(&common::quadrants(2400, 1800), image::ImageFormat::Jpeg);
    put(&env.store, &env.key("big.jpg"), big, "image/jpeg").await;
    let mut cfg = env.config();
    cfg.process.workers = 1;
    cfg.process.timeout = pixmirror::config::Dur(std::time::Duration::from_millis(150));
    let s = TestServer::start(cfg).await;
    let url = |ops: &str| s.url(&format!("{}?x-oss-process=image/{ops}", env.key("big.jpg")));
    for ops in [
        "blur,r_50,s_50/format,png",
        "blur,r_50,s_50/format,bmp",
        "blur,r_50,s_50/rotate,33",
    ] {
        let r = get(&url(ops)).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (504, "Timeout"),
            "{ops}: {}",
            message(&r)
        );
    }
    let r = get(&url("resize,w_10")).await;
    assert_eq!(r.status, 200, "the slot was freed");
    assert_eq!(s.processed(), 1);
    s.stop().await;
}

/// fs store (issue 9, item 15): a symlinked folder inside the root that leads
/// outside lets nothing through. Reads were refused before; now mirror writes,
/// purges, deletes and listings are too, and no folder is created out there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_writes_deletes_and_listings_stay_inside_the_root() {
    let env = Env::new(Backend::Fs, "confine").await;
    let outside = tempfile::tempdir().expect("tempdir");
    let out = outside.path();
    std::os::unix::fs::symlink(out, env.root().join("link")).expect("symlink");
    std::fs::write(out.join("y.jpg"), common::fixture("sunset.jpg")).expect("write");
    std::fs::write(out.join("y.jpg__op__resize,w_10"), b"keep").expect("write");
    let o = Origin::start().await;
    let mut cfg = env.config();
    cfg.mirror.allow_private_networks = true;
    cfg.mirror.rules = vec![pixmirror::config::MirrorRule {
        prefix: Some("link/".into()),
        origin: Some(o.template("img")),
        retries: 0,
        ..Default::default()
    }];
    let s = TestServer::start(cfg).await;

    // Mirrored objects are served but never written through the link.
    for key in ["link/x.jpg", "link/new/dir/x.jpg"] {
        let r = get(&s.url(key)).await;
        assert_eq!((r.status, r.cache()), (200, "mirrored"), "{key}");
    }
    let mut left: Vec<_> = std::fs::read_dir(out)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        vec!["y.jpg", "y.jpg__op__resize,w_10"],
        "nothing written or created outside"
    );

    // Purge, delete and list through the link touch nothing outside.
    let _ = s.app.purge("link/y.jpg").await;
    assert!(env.store.delete("link/y.jpg").await.is_err());
    assert!(out.join("y.jpg").exists() && out.join("y.jpg__op__resize,w_10").exists());
    assert_eq!(
        env.store.list("link/").await.map(|v| v.len()).unwrap_or(0),
        0
    );
    let put = env
        .store
        .put(
            "link/z.jpg",
            pixmirror::storage::PutObject {
                bytes: bytes::Bytes::from_static(b"z"),
                content_type: "image/jpeg".into(),
                metadata: Default::default(),
            },
        )
        .await;
    assert!(put.is_err());
    assert!(!out.join("z.jpg").exists());
    // Inside the root everything still works.
    let r = get(&s.url(&env.key("sunset.jpg"))).await;
    assert_eq!(r.status, 200);
    s.stop().await;
}
