//! The core request path (issue 2): every request form and action, decoded
//! output, HEAD, 304, 404, automatic format, invalid requests, limits, and a
//! store that denies access. Against the fs store and a real Garage bucket.

mod common;

use common::*;
use pixmirror::process::Format;

async fn request_forms(backend: Backend) {
    let env = Env::new(backend, "forms").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("dragonfly.jpg");

    let r = get(&s.url(&k)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.cache(), "store");
    assert_eq!(r.header("content-type"), "image/jpeg");
    assert_eq!(
        r.body.as_ref(),
        fixture("dragonfly.jpg").as_slice(),
        "the original, byte for byte"
    );
    assert_eq!(r.header("cache-control"), "public, max-age=86400");
    assert!(!r.header("etag").is_empty());
    assert!(!r.header("last-modified").is_empty());
    assert_eq!(
        r.header("content-length"),
        fixture("dragonfly.jpg").len().to_string()
    );

    let forms = [
        format!("{k}?x-oss-process=image/resize,w_300/format,webp"),
        format!("{k}?x-bce-process=image/resize,m_lfit,w_300/format,f_webp"),
        format!("{k}__op__resize,w_300__op__format,webp"),
        format!("{k}?x-oss-process=image/format,webp/resize,w_300&unrelated=1"),
    ];
    for (i, f) in forms.iter().enumerate() {
        let r = get(&s.url(f)).await;
        assert_eq!(r.status, 200, "{f}: {:?}", r.body);
        assert_eq!(r.format(), Some(Format::Webp), "{f}");
        assert_eq!(r.header("content-type"), "image/webp");
        assert_eq!(r.dims(), (300, 225), "{f}");
        // One canonical form: after the first, every spelling is the same derivative.
        if i > 0 {
            assert_eq!(r.cache(), "memory", "{f}");
        }
    }
    let r = get(&s.url(&format!("{k}?x-oss-process=style/thumb"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.format(), Some(Format::Webp));
    assert_eq!(r.dims(), (200, 200));
    // Chinese key, percent-encoded.
    put(
        &env.store,
        &env.key("猫.jpg"),
        fixture("sunset.jpg"),
        "image/jpeg",
    )
    .await;
    let enc = percent_encoding::utf8_percent_encode(
        &env.key("猫.jpg"),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string()
    .replace("%2F", "/");
    let r = get(&s.url(&format!("{enc}?x-oss-process=image/resize,w_100"))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.dims(), (100, 67));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_forms_fs() {
    request_forms(Backend::Fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_forms_s3() {
    request_forms(Backend::S3).await;
}

async fn actions(backend: Backend) {
    let env = Env::new(backend, "actions").await;
    let q_img = quadrants(400, 200);
    put(
        &env.store,
        &env.key("q.png"),
        encode(&q_img, image::ImageFormat::Png),
        "image/png",
    )
    .await;
    let s = TestServer::start(env.config()).await;
    let q = env.key("q.png");
    let dims = |ops: &str| {
        let url = s.url(&format!("{q}?x-oss-process=image/{ops}"));
        async move {
            let r = get(&url).await;
            assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
            r
        }
    };
    // resize: five modes and every parameter.
    for (ops, want) in [
        ("resize,w_100", (100, 50)),
        ("resize,h_100", (200, 100)),
        ("resize,w_100,h_100", (100, 50)),
        ("resize,m_lfit,w_100,h_100", (100, 50)),
        ("resize,m_mfit,w_100,h_100", (200, 100)),
        ("resize,m_fill,w_100,h_100", (100, 100)),
        ("resize,m_pad,w_100,h_100", (100, 100)),
        ("resize,m_fixed,w_100,h_100", (100, 100)),
        ("resize,l_200", (200, 100)),
        ("resize,s_50", (100, 50)),
        ("resize,p_25", (100, 50)),
        ("resize,w_800", (400, 200)),
        ("resize,w_800,limit_0", (800, 400)),
        ("resize,p_200,limit_0", (800, 400)),
        // OSS: a thumbnail larger than the source returns the source unless limit_0.
        ("resize,p_200", (400, 200)),
        // OSS crop defaults: w and h the maximum, x and y 0: the whole image.
        ("crop", (400, 200)),
        ("crop,w_100,h_50", (100, 50)),
        ("crop,x_300,y_150", (100, 50)),
        ("rotate,90", (200, 400)),
        ("rotate,180", (400, 200)),
        ("indexcrop,x_100,i_1", (100, 200)),
        // OSS: (2r + 1) square; r past half the shorter side (200) becomes 99.
        ("circle,r_50", (101, 101)),
        ("circle,r_4000", (199, 199)),
    ] {
        let r = dims(ops).await;
        assert_eq!(r.dims(), want, "{ops}");
        assert_eq!(
            r.format(),
            Some(Format::Png),
            "{ops}: the source format is kept"
        );
    }
    // Pixels: fill crops the centre, pad adds the colour, crop gravity, rotation direction.
    let px = rgba(&dims("resize,m_fill,w_100,h_100").await.body);
    assert!(
        near(px.get_pixel(10, 10), [255, 0, 0], 10)
            && near(px.get_pixel(90, 90), [255, 255, 255], 10)
    );
    let px = rgba(&dims("resize,m_pad,w_100,h_100,color_00FF00").await.body);
    assert!(
        near(px.get_pixel(50, 5), [0, 255, 0], 10),
        "pad colour on top: {:?}",
        px.get_pixel(50, 5)
    );
    assert!(
        near(px.get_pixel(10, 30), [255, 0, 0], 10),
        "image in the middle"
    );
    let px = rgba(&dims("crop,w_100,h_50,g_se").await.body);
    assert!(
        near(px.get_pixel(50, 25), [255, 255, 255], 5),
        "se corner is white"
    );
    let px = rgba(&dims("crop,w_100,h_50,g_ne").await.body);
    assert!(
        near(px.get_pixel(50, 25), [0, 255, 0], 5),
        "ne corner is green"
    );
    let px = rgba(&dims("rotate,90").await.body);
    assert!(
        near(px.get_pixel(10, 10), [0, 0, 255], 5),
        "clockwise: blue comes to the top left"
    );
    let px = rgba(&dims("circle,r_50").await.body);
    assert_eq!(
        px.get_pixel(0, 0).0[3],
        0,
        "corner outside the circle is transparent"
    );
    assert_eq!(px.get_pixel(50, 50).0[3], 255, "centre is opaque");
    // formats
    for (f, want) in [
        ("jpg", Format::Jpg),
        ("jpeg", Format::Jpg),
        ("png", Format::Png),
        ("webp", Format::Webp),
        ("avif", Format::Avif),
        // OSS: format,gif keeps a source that is not a GIF in its own format.
        ("gif", Format::Png),
        ("bmp", Format::Bmp),
        ("tiff", Format::Tiff),
        ("heic", Format::Heic),
    ] {
        let r = dims(&format!("resize,w_40/format,{f}")).await;
        assert_eq!(r.format(), Some(want), "format,{f}");
        assert_eq!(r.header("content-type"), want.content_type());
        assert_eq!(r.dims(), (40, 20), "format,{f}");
    }
    // blur: r cuts the kernel. 5 px from the vertical edge between the top
    // quadrants, a radius of 1 leaves the colour, a radius of 20 mixes it.
    let near_edge = |ops: &'static str| {
        let d = dims(ops);
        async move { rgba(&d.await.body).get_pixel(195, 50).0 }
    };
    let sharp = near_edge("blur,r_1,s_10/format,png").await;
    let soft = near_edge("blur,r_20,s_10/format,png").await;
    assert_eq!(
        &sharp[..3],
        &q_img.get_pixel(195, 50).0[..],
        "r_1 keeps the edge"
    );
    assert_ne!(&soft[..3], &sharp[..3], "r_20 blurs across it");
    // ... and a GIF stays a GIF.
    put(
        &env.store,
        &env.key("q.gif"),
        encode(&q_img, image::ImageFormat::Gif),
        "image/gif",
    )
    .await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_40/format,gif",
        env.key("q.gif")
    )))
    .await;
    assert_eq!((r.format(), r.dims()), (Some(Format::Gif), (40, 20)));
    // quality and interlace
    let k = env.key("dragonfly.jpg");
    let lo = get(&s.url(&format!("{k}?x-oss-process=image/quality,Q_10"))).await;
    let hi = get(&s.url(&format!("{k}?x-oss-process=image/quality,Q_95"))).await;
    assert!(
        lo.body.len() * 2 < hi.body.len(),
        "Q_10 {} vs Q_95 {}",
        lo.body.len(),
        hi.body.len()
    );
    let rel = get(&s.url(&format!("{k}?x-oss-process=image/quality,q_10"))).await;
    assert!(rel.body.len() * 2 < hi.body.len());
    let prog = get(&s.url(&format!("{k}?x-oss-process=image/resize,w_200/interlace,1"))).await;
    let base = get(&s.url(&format!("{k}?x-oss-process=image/resize,w_200"))).await;
    assert!(
        prog.body.windows(2).any(|w| w == [0xFF, 0xC2]),
        "progressive JPEG has SOF2"
    );
    assert!(
        !base.body.windows(2).any(|w| w == [0xFF, 0xC2]),
        "baseline has no SOF2"
    );
    // info
    let r = get(&s.url(&format!("{q}?x-oss-process=image/info"))).await;
    assert_eq!(r.header("content-type"), "application/json");
    let j = r.json();
    assert_eq!(j["ImageWidth"]["value"], "400");
    assert_eq!(j["ImageHeight"]["value"], "200");
    assert_eq!(j["Format"]["value"], "png");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_fs() {
    actions(Backend::Fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_s3() {
    actions(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orientation_and_metadata() {
    let env = Env::new(Backend::Fs, "orient").await;
    // Stored 200x400, EXIF 6: displays as 400x200 quadrants.
    let upright = quadrants(400, 200);
    let stored = image::imageops::rotate270(&upright);
    let jpeg = with_orientation(&encode(&stored, image::ImageFormat::Jpeg), 6);
    put(&env.store, &env.key("o.jpg"), jpeg, "image/jpeg").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("o.jpg");
    let r = get(&s.url(&format!("{k}?x-oss-process=image/resize,w_200"))).await;
    assert_eq!(r.dims(), (200, 100), "auto-orient is the default");
    let px = rgba(&r.body);
    assert!(
        near(px.get_pixel(10, 10), [255, 0, 0], 40),
        "upright: red top left, got {:?}",
        px.get_pixel(10, 10)
    );
    assert!(near(px.get_pixel(190, 90), [255, 255, 255], 40));
    assert!(
        !r.body.windows(4).any(|w| w == b"Exif"),
        "no EXIF in the output"
    );
    let r = get(&s.url(&format!(
        "{k}?x-oss-process=image/auto-orient,0/resize,w_100"
    )))
    .await;
    assert_eq!(
        r.dims(),
        (100, 200),
        "auto-orient,0 keeps the stored orientation"
    );
    // The bundled sample with EXIF orientation 6.
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_300",
        env.key("rotated-exif6.jpg")
    )))
    .await;
    assert_eq!(r.dims(), (300, 200));
    assert!(!r.body.windows(4).any(|w| w == b"Exif"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_304_404() {
    let env = Env::new(Backend::Fs, "head").await;
    let s = TestServer::start(env.config()).await;
    for path in [
        env.key("dragonfly.jpg"),
        format!(
            "{}?x-oss-process=image/resize,w_120/format,png",
            env.key("dragonfly.jpg")
        ),
    ] {
        let g = get(&s.url(&path)).await;
        assert_eq!(g.status, 200);
        let h = request("HEAD", &s.url(&path), &[]).await;
        assert_eq!(h.status, 200);
        assert!(h.body.is_empty());
        for name in [
            "content-type",
            "content-length",
            "etag",
            "last-modified",
            "cache-control",
        ] {
            assert_eq!(h.header(name), g.header(name), "{path}: {name}");
        }
        let etag = g.header("etag").to_string();
        let n = request("GET", &s.url(&path), &[("if-none-match", &etag)]).await;
        assert_eq!(n.status, 304, "{path}");
        assert!(n.body.is_empty());
        assert_eq!(n.header("etag"), etag);
        let n = request("GET", &s.url(&path), &[("if-none-match", "\"other\"")]).await;
        assert_eq!(n.status, 200);
    }
    for path in [
        env.key("missing.jpg"),
        format!("{}?x-oss-process=image/resize,w_10", env.key("missing.jpg")),
    ] {
        let r = get(&s.url(&path)).await;
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.code(), "NoSuchKey");
        assert_eq!(r.header("content-type"), "application/json");
        let h = request("HEAD", &s.url(&path), &[]).await;
        assert_eq!(h.status, 404);
    }
    let r = request("DELETE", &s.url(&env.key("dragonfly.jpg")), &[]).await;
    assert_eq!(r.status, 405);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_format() {
    let env = Env::new(Backend::Fs, "auto").await;
    let s = TestServer::start(env.config()).await;
    for (key, accept, want) in [
        ("dragonfly.jpg", "image/avif,image/webp,*/*", Format::Avif),
        ("dragonfly.jpg", "image/webp,*/*", Format::Webp),
        ("dragonfly.jpg", "*/*", Format::Jpg),
        ("gulp.png", "text/html", Format::Png),
        ("gulp.png", "image/webp", Format::Webp),
    ] {
        let url = s.url(&format!(
            "{}?x-oss-process=image/resize,w_100/format,auto",
            env.key(key)
        ));
        let r = request("GET", &url, &[("accept", accept)]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.format(), Some(want), "{key} with {accept}");
        assert_eq!(r.header("vary"), "Accept");
    }
    // The stored derivative is keyed by the concrete format.
    s.stop().await;
    let keys = env
        .store
        .list(&format!("{}__op__", env.key("dragonfly.jpg")))
        .await
        .expect("list");
    let want = [
        format!("{}__op__resize,w_100", env.key("dragonfly.jpg")),
        format!(
            "{}__op__resize,w_100__op__format,avif",
            env.key("dragonfly.jpg")
        ),
        format!(
            "{}__op__resize,w_100__op__format,webp",
            env.key("dragonfly.jpg")
        ),
    ];
    assert_eq!(keys, want);
    // AVIF disabled: falls to WebP.
    let mut cfg = env.config();
    cfg.process.auto_formats = vec!["webp".into()];
    let s = TestServer::start(cfg).await;
    let url = s.url(&format!(
        "{}?x-oss-process=image/resize,w_100/format,auto",
        env.key("sunset.jpg")
    ));
    let r = request("GET", &url, &[("accept", "image/avif,image/webp")]).await;
    assert_eq!(r.format(), Some(Format::Webp));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_requests_fetch_nothing() {
    let env = Env::new(Backend::Fs, "invalid").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("dragonfly.jpg");
    for (q, needle) in [
        ("x-oss-process=image/resize,w_0", "resize: parameter w"),
        ("x-oss-process=image/resize,w_abc", "resize: parameter w"),
        (
            "x-oss-process=image/resize,m_zoom,w_10",
            "resize: parameter m",
        ),
        ("x-oss-process=image/crop,g_middle", "crop: parameter g"),
        ("x-oss-process=image/rotate,400", "rotate"),
        ("x-oss-process=image/format,exe", "format"),
        ("x-oss-process=image/quality,Q_0", "quality: parameter Q"),
        ("x-oss-process=image/nope", "unknown action `nope`"),
        ("x-oss-process=style/missing", "style `missing`"),
        (
            "x-oss-process=video/snapshot",
            "snapshot: parameter t is required",
        ),
        ("x-oss-process=audio/convert", "image/"),
        ("x-bce-process=image/resize,w_99999", "resize: parameter w"),
        (
            "x-oss-process=image/resize,w_1&x-bce-process=image/resize,w_2",
            "more than one",
        ),
        ("x-oss-process=%ff%fe", "UTF-8"),
    ] {
        let r = get(&s.url(&format!("{k}?{q}"))).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.code(), "InvalidArgument", "{q}");
        let msg = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(msg.contains(needle), "{q}: `{msg}` lacks `{needle}`");
    }
    let r = get(&s.url(&format!("{k}__op__resize,w_0"))).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        s.store_fetches(),
        0,
        "nothing fetched for an invalid request"
    );
    assert_eq!(s.processed(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_bad_images() {
    let env = Env::new(Backend::Fs, "limits").await;
    let mut cfg = env.config();
    cfg.process.max_source_bytes = pixmirror::config::ByteSize(100_000);
    cfg.process.max_source_pixels = 1_000_000;
    let s = TestServer::start(cfg).await;
    let p = |name: &str, ops: &str| s.url(&format!("{}?x-oss-process=image/{ops}", env.key(name)));
    // 182 KB PNG over 100 KB → 413, before download (size from the store).
    let r = get(&p("gulp.png", "resize,w_10")).await;
    assert_eq!((r.status, r.code().as_str()), (413, "SourceTooLarge"));
    // 800x600 = 480000 px is fine; the bomb header (10^10 px) is refused before decoding.
    let r = get(&p("bomb-header.png", "resize,w_10")).await;
    assert_eq!((r.status, r.code().as_str()), (422, "UnprocessableImage"));
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or("")
        .contains("max_source_pixels"));
    let r = get(&p("truncated.jpg", "resize,w_10")).await;
    assert_eq!((r.status, r.code().as_str()), (422, "UnprocessableImage"));
    let r = get(&p("not-an-image.jpg", "resize,w_10")).await;
    assert_eq!((r.status, r.code().as_str()), (422, "UnprocessableImage"));
    // Output side over 16384.
    let r = get(&p("sunset.jpg", "resize,m_mfit,w_16384,h_16384,limit_0")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    // Crop starting outside the image.
    let r = get(&p("sunset.jpg", "crop,x_5000")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    // Originals are served whatever their size (streamed), not limited.
    let r = get(&s.url(&env.key("gulp.png"))).await;
    assert_eq!(r.status, 200);
    let r = get(&p("dragonfly.jpg", "resize,w_10")).await;
    assert_eq!(r.status, 200, "the server still works");
    s.stop().await;
    let mut cfg = env.config();
    cfg.process.max_source_pixels = 400_000;
    let s = TestServer::start(cfg).await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_11",
        env.key("dragonfly.jpg")
    )))
    .await;
    assert_eq!((r.status, r.code().as_str()), (422, "UnprocessableImage"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_denies_access_403_not_404() {
    let env = Env::new(Backend::S3, "denied").await;
    let mut cfg = env.config();
    cfg.storage.s3.secret_access_key = Some("0".repeat(64));
    let s = TestServer::start(cfg).await;
    for path in [
        env.key("dragonfly.jpg"),
        env.key("missing.jpg"),
        format!(
            "{}?x-oss-process=image/resize,w_10",
            env.key("dragonfly.jpg")
        ),
    ] {
        let r = get(&s.url(&path)).await;
        assert_eq!(
            r.status,
            403,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.code(), "AccessDenied");
    }
    let r = get(&format!("{}/readyz", s.admin)).await;
    assert_eq!(r.status, 503);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_keys_never_leave_the_root() {
    let env = Env::new(Backend::Fs, "escape").await;
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.txt"), b"TOP SECRET").expect("write");
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        env.root().join("link.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), env.root().join("linkdir")).expect("symlink");
    let s = TestServer::start(env.config()).await;
    for path in [
        "../secret.txt",
        "%2e%2e/%2e%2e/etc/passwd",
        "a/%2e%2e/%2e%2e/etc/passwd",
        "%2fetc%2fpasswd",
        "/etc/passwd",
        "link.txt",
        "linkdir/secret.txt",
        "a%00b",
        ".pixmirror/x.json",
        "a//b",
    ] {
        let r = get(&s.url(path)).await;
        // A symlink out of the root is refused, never "missing" (issue 21).
        let refused = r.status == 400 || (r.status == 404 && !path.starts_with("link"));
        assert!(refused, "{path}: {}", r.status);
        assert!(!r.body.windows(10).any(|w| w == b"TOP SECRET"), "{path}");
        assert!(!r.body.windows(5).any(|w| w == b"root:"), "{path}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints() {
    let env = Env::new(Backend::Fs, "admin").await;
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let s = TestServer::start(cfg).await;
    assert_eq!(get(&format!("{}/healthz", s.admin)).await.status, 200);
    assert_eq!(get(&format!("{}/readyz", s.admin)).await.status, 200);
    // One original from the store, one derivative made then served from memory.
    assert_eq!(get(&s.url(&env.key("sunset.jpg"))).await.cache(), "store");
    let d = s.url(&format!(
        "{}?x-oss-process=image/resize,w_50",
        env.key("sunset.jpg")
    ));
    assert_eq!(get(&d).await.cache(), "processed");
    assert_eq!(get(&d).await.cache(), "memory");
    let m = get(&format!("{}/metrics", s.admin)).await;
    let text = String::from_utf8_lossy(&m.body).to_string();
    // Values, not only names: each line as the exposition prints it.
    common::assert_metric_lines(
        &text,
        &[
            "pixmirror_requests_total{cache_status=\"store\",code=\"200\"} 1",
            "pixmirror_requests_total{cache_status=\"processed\",code=\"200\"} 1",
            "pixmirror_requests_total{cache_status=\"memory\",code=\"200\"} 1",
            "pixmirror_processed_total 1",
            "pixmirror_source_fetches_total{source=\"store\"} 1",
            "pixmirror_source_fetches_total{source=\"mirror\"} 0",
            "pixmirror_store_writes_total{result=\"ok\"} 1",
            "pixmirror_store_writes_total{result=\"error\"} 0",
            "pixmirror_writeback_admission_total{result=\"admitted\"} 1",
            "pixmirror_coalesced_total 0",
            "pixmirror_writeback_queue_depth 0",
            "pixmirror_memory_reserved_bytes 0",
            // The original missed, then hit for the derivative; the derivative
            // missed, then hit on the third request.
            "pixmirror_l1_lookups_total{result=\"hit\"} 2",
            "pixmirror_l1_lookups_total{result=\"miss\"} 2",
            "pixmirror_process_duration_seconds_count{format=\"jpeg\"} 1",
            "pixmirror_request_duration_seconds_count{cache_status=\"memory\",code=\"200\"} 1",
            "pixmirror_response_bytes_total{cache_status=\"store\"} 52332",
            "pixmirror_source_bytes_total{source=\"store\"} 52332",
            // The original's GET and the derivative's (missing) bucket copy; one
            // PUT (sync write-back); one listing for max_per_original.
            "pixmirror_stage_duration_seconds_count{stage=\"store_get\"} 2",
            "pixmirror_stage_duration_seconds_count{stage=\"store_put\"} 1",
            "pixmirror_stage_duration_seconds_count{stage=\"store_list\"} 1",
            "pixmirror_stage_duration_seconds_count{stage=\"pool_wait\"} 1",
        ],
    );
    let gauge = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert!(
        gauge("pixmirror_l1_bytes") > 0.0,
        "L1 holds the original and the derivative"
    );
    assert_eq!(gauge("pixmirror_l1_items"), 2.0);
    // The derivative's bytes, once processed and once from memory.
    let derived = gauge("pixmirror_response_bytes_total{cache_status=\"processed\"}");
    assert!(derived > 0.0);
    assert_eq!(
        gauge("pixmirror_response_bytes_total{cache_status=\"memory\"}"),
        derived
    );
    assert!(gauge("pixmirror_process_resident_memory_bytes") > 1e6);
    assert!(gauge("pixmirror_process_open_fds") > 0.0);
    // Image keys never reach the admin listener.
    assert_eq!(
        get(&format!("{}/{}", s.admin, env.key("sunset.jpg")))
            .await
            .status,
        404
    );
    s.stop().await;
}

#[test]
fn cli_process_and_check_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.jpg");
    std::fs::write(&input, fixture("dragonfly.jpg")).expect("write");
    let out = dir.path().join("out.webp");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(["process", "--ops", "image/resize,w_300/format,webp"])
        .arg(&input)
        .arg(&out)
        .status()
        .expect("run");
    assert!(st.success());
    let bytes = std::fs::read(&out).expect("output");
    assert_eq!(Format::sniff(&bytes), Some(Format::Webp));
    let h = pixmirror::process::engine::pipeline::probe(&bytes, u64::MAX, u32::MAX).expect("probe");
    assert_eq!((h.width, h.height), (300, 225));
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[cache]\nmemory_bytes = \"lots\"\n").expect("write");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("memory_bytes"), "{err}");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"),
        ])
        .output()
        .expect("run");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Issue 21, item 3: `pixmirror process` runs the server's request path on a
/// file: the same grammars (OSS, BOS spellings, COS/Qiniu, styles), snapping,
/// `format,auto` against `--accept`, limits. For 20 process strings the
/// command writes exactly the bytes the server answers. (Before, it skipped
/// snapping, resolved `auto` against nothing and could not read COS.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_process_is_the_servers_request_path() {
    let env = Env::new(Backend::Fs, "cliparity").await;
    let mut cfg = env.config();
    cfg.styles
        .insert("thumb".into(), "image/resize,w_120/format,webp".into());
    cfg.process.snap_widths = vec![160, 320, 640];
    cfg.process.allowed_qualities = vec![60, 80];
    let conf = env.root().join("cli.toml");
    std::fs::write(&conf, toml::to_string(&cfg).expect("toml")).expect("write");
    let s = TestServer::start(cfg).await;
    let key = env.key("sunset.jpg");
    let input = env.root().join(&key);
    let accept = "image/avif,image/webp,*/*";
    let oss = [
        "image/resize,w_300",
        "image/resize,w_301",
        "image/resize,w_200,h_200,m_fill/format,png",
        "image/format,auto",
        "image/resize,w_100/format,auto",
        "style/thumb",
        "image/crop,w_300,h_200,g_center/rotate,90/format,jpg",
        "image/quality,q_75/format,jpg",
        "image/blur,r_3,s_2/resize,l_150",
        "image/resize,w_150/watermark,text_SGVsbG8,size_20,g_center",
        "image/info",
        "image/average-hue",
        "image/auto-orient,1",
        "image/format,f_webp/quality,q_70",
    ];
    let cos = [
        "imageMogr2/thumbnail/300x/format/webp",
        "imageMogr2/thumbnail/!50p",
        "imageView2/1/w/200/h/200",
        "imageMogr2/crop/200x100/gravity/center",
        "imageMogr2/rotate/90|imageView2/2/w/100",
        "imageMogr2/quality/80!/format/jpg",
    ];
    let enc = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let queries = oss
        .iter()
        .map(|o| (o.to_string(), format!("x-oss-process={}", enc(o))))
        .chain(cos.iter().map(|c| (c.to_string(), c.to_string())));
    let out = env.root().join("cli.out");
    for (ops, query) in queries {
        let url = s.url(&format!("{key}?{query}"));
        let served = common::request("GET", &url, &[("accept", accept)]).await;
        assert_eq!(served.status, 200, "{ops}");
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
            .args(["process", "--ops", &ops, "--accept", accept, "--config"])
            .arg(&conf)
            .arg(&input)
            .arg(&out)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{ops}: {err}");
        let written = std::fs::read(&out).expect("output");
        assert!(
            written == served.body,
            "{ops}: {} bytes written, {} served",
            written.len(),
            served.body.len()
        );
        assert!(err.contains(served.header("content-type")), "{ops}: {err}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_503_busy_with_retry_after() {
    let env = Env::new(Backend::Fs, "busy").await;
    let mut cfg = env.config();
    cfg.process.workers = 1;
    cfg.process.queue = 0;
    let s = TestServer::start(cfg).await;
    let urls: Vec<String> = (0..8)
        .map(|i| {
            s.url(&format!(
                "{}?x-oss-process=image/resize,w_{}/format,avif",
                env.key("dragonfly.jpg"),
                700 + i
            ))
        })
        .collect();
    let mut ok = 0;
    let mut busy = 0;
    for r in burst(urls).await {
        match r.status {
            200 => ok += 1,
            503 => {
                assert_eq!(r.code(), "Busy");
                assert_eq!(r.header("retry-after"), "1");
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok}, busy {busy}");
    assert_eq!(s.app.metrics.busy.get(), busy);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_store_is_502_store_error() {
    let env = Env::new(Backend::S3, "down").await;
    let mut cfg = env.config();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    cfg.storage.s3.endpoint = Some(format!("http://127.0.0.1:{port}"));
    let s = TestServer::start(cfg).await;
    for path in [
        env.key("dragonfly.jpg"),
        format!(
            "{}?x-oss-process=image/resize,w_10",
            env.key("dragonfly.jpg")
        ),
    ] {
        let r = get(&s.url(&path)).await;
        assert_eq!((r.status, r.code().as_str()), (502, "StoreError"), "{path}");
        assert!(
            !r.json()["message"]
                .as_str()
                .unwrap_or("")
                .contains("127.0.0.1"),
            "no internals"
        );
    }
    assert_eq!(get(&format!("{}/readyz", s.admin)).await.status, 503);
    common::assert_metric_lines(
        &s.app.metrics.render(),
        &["pixmirror_errors_total{category=\"upstream\",code=\"StoreError\"} 2"],
    );
    s.stop().await;
}

/// Every error response is counted once under its category and SPEC code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_responses_are_counted_by_category() {
    let env = Env::new(Backend::Fs, "errcat").await;
    let s = TestServer::start(env.config()).await;
    let bad = format!("{}?x-oss-process=image/resize,w_0", env.key("sunset.jpg"));
    for (path, status) in [
        (bad.as_str(), 400),
        ("no/such/key.jpg", 404),
        ("no/such/key.jpg", 404),
    ] {
        assert_eq!(get(&s.url(path)).await.status, status, "{path}");
    }
    assert_eq!(get(&s.url(&env.key("sunset.jpg"))).await.status, 200);
    common::assert_metric_lines(
        &s.app.metrics.render(),
        &[
            "pixmirror_errors_total{category=\"client\",code=\"InvalidArgument\"} 1",
            "pixmirror_errors_total{category=\"client\",code=\"NoSuchKey\"} 2",
        ],
    );
    let text = s.app.metrics.render();
    let counted: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("pixmirror_errors_total{"))
        .collect();
    assert_eq!(counted.len(), 2, "only the two kinds of error: {counted:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_over_the_timeout_is_504() {
    let env = Env::new(Backend::Fs, "timeout").await;
    let mut cfg = env.config();
    // Far shorter than decoding an 800x600 JPEG; checked between pipeline steps.
    cfg.process.timeout = pixmirror::config::Dur(std::time::Duration::from_micros(1));
    let s = TestServer::start(cfg).await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_100/rotate,90/format,png",
        env.key("dragonfly.jpg")
    )))
    .await;
    assert_eq!((r.status, r.code().as_str()), (504, "Timeout"));
    s.stop().await;
}

/// `styles.separators`: `key!thumb` is `key?x-oss-process=style/thumb` (the same
/// derivative), while keys that really end in such a suffix stay reachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn style_separators() {
    let env = Env::new(Backend::Fs, "stylesep").await;
    let mut cfg = env.config();
    cfg.styles.separators = vec!["!".into(), "@!".into(), "-".into()];
    let s = TestServer::start(cfg).await;
    let k = env.key("sunset.jpg");
    let r = get(&s.url(&format!("{k}!thumb"))).await;
    assert_eq!((r.status, r.cache()), (200, "processed"), "{:?}", r.body);
    assert_eq!((r.format(), r.dims()), (Some(Format::Webp), (200, 200)));
    // The same derivative whatever the spelling.
    for form in [
        format!("{k}?x-oss-process=style/thumb"),
        format!("{k}@!thumb"),
        format!("{k}-thumb"),
    ] {
        let r = get(&s.url(&form)).await;
        assert_eq!((r.status, r.cache()), (200, "memory"), "{form}");
        assert_eq!(r.dims(), (200, 200), "{form}");
    }
    // Keys that end in a separator and a word: reachable when the word names no
    // style, or when the separator is percent-encoded.
    for key in ["odd!thumb", "my-photo.jpg", "x!nostyle"] {
        put(
            &env.store,
            &env.key(key),
            fixture("sunset.jpg"),
            "image/jpeg",
        )
        .await;
    }
    let r = get(&s.url(&env.key("odd%21thumb"))).await;
    assert_eq!(
        (r.status, r.dims()),
        (200, (800, 533)),
        "odd!thumb as stored"
    );
    let r = get(&s.url(&env.key("my-photo.jpg"))).await;
    assert_eq!((r.status, r.dims()), (200, (800, 533)));
    let r = get(&s.url(&env.key("x!nostyle"))).await;
    assert_eq!((r.status, r.dims()), (200, (800, 533)));
    // A style suffix and a process parameter: which one was meant is unclear.
    let r = get(&s.url(&format!("{k}!thumb?x-oss-process=image/resize,w_10"))).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    s.stop().await;
    // Without separators configured, `!thumb` is part of the key.
    let s = TestServer::start(env.config()).await;
    assert_eq!(get(&s.url(&format!("{k}!thumb"))).await.status, 404);
    s.stop().await;
}

/// Tencent COS / Qiniu URLs: the same canonical plans, so the same derivatives,
/// as their OSS equivalents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cos_and_qiniu_grammars() {
    let env = Env::new(Backend::Fs, "cos").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("sunset.jpg"); // 800x533
    let r = get(&s.url(&format!("{k}?imageMogr2/thumbnail/300x/format/webp"))).await;
    assert_eq!((r.status, r.cache()), (200, "processed"), "{:?}", r.body);
    assert_eq!((r.format(), r.dims()), (Some(Format::Webp), (300, 200)));
    assert_eq!(
        r.header("x-pixmirror-process"),
        "image/auto-orient,0/resize,limit_0,w_300/format,webp"
    );
    let oss = s.url(&format!(
        "{k}?x-oss-process=image/auto-orient,0/resize,w_300,limit_0/format,webp"
    ));
    assert_eq!(
        get(&oss).await.cache(),
        "memory",
        "one derivative for both grammars"
    );
    for (q, fmt, dims) in [
        (
            "imageView2/1/w/100/h/100/format/png",
            Format::Png,
            (100, 100),
        ),
        (
            "imageView2/2/w/1600/h/1600/format/png",
            Format::Png,
            (800, 533),
        ),
        (
            "imageMogr2/thumbnail/1600x/format/png",
            Format::Png,
            (1600, 1066),
        ),
        (
            "imageMogr2/thumbnail/1600x1600%3E/format/png",
            Format::Png,
            (800, 533),
        ),
        (
            "imageMogr2/thumbnail/400x400%3C/format/png",
            Format::Png,
            (800, 533),
        ),
        (
            "imageMogr2/thumbnail/1000x1000%3C/format/png",
            Format::Png,
            (1000, 666),
        ),
        (
            "imageMogr2/thumbnail/200x200!/format/png",
            Format::Png,
            (200, 200),
        ),
        (
            "imageMogr2/thumbnail/!200x200r/format/png",
            Format::Png,
            (300, 200),
        ),
        (
            "imageMogr2/thumbnail/!50p/format/png",
            Format::Png,
            (400, 267),
        ),
        (
            "imageMogr2/thumbnail/10000@/format/png",
            Format::Png,
            (122, 81),
        ),
        (
            "imageMogr2/cut/100x50x10x20/format/png",
            Format::Png,
            (100, 50),
        ),
        (
            "imageMogr2/crop/300x200/gravity/center|imageMogr2/format/png",
            Format::Png,
            (300, 200),
        ),
        ("imageMogr2/iradius/50/format/png", Format::Png, (101, 101)),
        (
            "imageMogr2/thumbnail/!50px/format/png",
            Format::Png,
            (400, 533),
        ),
        (
            "imageMogr2/thumbnail/!x50p/format/png",
            Format::Png,
            (800, 267),
        ),
        (
            "imageView2/5/w/300/h/300/format/png",
            Format::Png,
            (300, 300),
        ),
        (
            "imageView2/5/w/300/h/100/format/png",
            Format::Png,
            (300, 100),
        ),
    ] {
        let r = get(&s.url(&format!("{k}?{q}"))).await;
        assert_eq!(r.status, 200, "{q}: {:?}", r.body);
        assert_eq!((r.format(), r.dims()), (Some(fmt), dims), "{q}");
    }
    for bad in [
        "imageMogr2/thumbnail/0x100",
        "imageMogr2/rotate/400",
        "imageView2/9/w/100",
        "imageMogr2/thumbnail/100x&x-oss-process=image/resize,w_10",
    ] {
        let r = get(&s.url(&format!("{k}?{bad}"))).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "InvalidArgument"),
            "{bad}"
        );
    }
    // `ignore-error/1`: a refusal becomes the original, as stored.
    let original = get(&s.url(&k)).await;
    let bad_image = env.key("not-an-image.jpg");
    for (key, q, refused) in [
        (&k, "imageMogr2/thumbnail/0x100", 400),
        (&k, "imageMogr2/rotate/400", 400),
        (&bad_image, "imageMogr2/thumbnail/100x", 422),
    ] {
        let r = get(&s.url(&format!("{key}?{q}"))).await;
        assert_eq!(r.status, refused, "{q} without ignore-error");
        let r = get(&s.url(&format!("{key}?{q}/ignore-error/1"))).await;
        assert_eq!(r.status, 200, "{q}/ignore-error/1: {:?}", r.body);
        if key == &k {
            assert_eq!(r.body, original.body, "{q}: the original's bytes");
        }
    }
    s.stop().await;
}

/// An explicit `auto-orient,1` alone rotates and re-encodes, as OSS does,
/// instead of serving the stored (sideways) bytes; beside other actions it is
/// the default and shares their derivative.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_auto_orient_rotates() {
    let env = Env::new(Backend::Fs, "orient").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("rotated-exif6.jpg");
    let stored = get(&s.url(&k)).await;
    let (w, h) = stored.dims();
    let r = get(&s.url(&format!("{k}?x-oss-process=image/auto-orient,1"))).await;
    assert_eq!((r.status, r.cache()), (200, "processed"));
    assert_eq!(
        (r.format(), r.dims()),
        (Some(Format::Jpg), (h, w)),
        "upright"
    );
    assert_eq!(r.header("x-pixmirror-process"), "image/auto-orient,1");
    let cos = get(&s.url(&format!("{k}?imageMogr2/auto-orient"))).await;
    assert_eq!(
        (cos.cache(), cos.dims()),
        ("memory", (h, w)),
        "the same derivative"
    );
    let a = get(&s.url(&format!(
        "{k}?x-oss-process=image/auto-orient,1/resize,w_100"
    )))
    .await;
    let b = get(&s.url(&format!("{k}?x-oss-process=image/resize,w_100"))).await;
    assert_eq!((a.cache(), b.cache()), ("processed", "memory"));
    s.stop().await;
}
