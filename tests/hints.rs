//! Client hints (issue 25): `resize,w_auto` and `dpr` resolved from
//! `Sec-CH-Width`, `Width`, `Sec-CH-Viewport-Width`, `Sec-CH-DPR` and `DPR`
//! before the plan is canonicalised; `Vary` names exactly the hints read.

mod common;

use common::*;

/// Request headers, the width they give, the `Vary` they give.
type Case<'a> = (&'a [(&'a str, &'a str)], u32, &'a str);

async fn hinted(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> Resp {
    let r = request("GET", &s.url(path), headers).await;
    assert_eq!(
        r.status,
        200,
        "{path} {headers:?}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn w_auto_takes_the_first_hint_and_varies_on_what_it_read() {
    let env = Env::new(Backend::Fs, "hints").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("dragonfly.jpg"); // 800x600
    let auto = format!("{k}?x-oss-process=image/resize,w_auto");
    let cases: &[Case] = &[
        (&[("sec-ch-width", "500")], 512, "Sec-CH-Width"),
        (&[("width", "300")], 304, "Sec-CH-Width, Width"),
        (
            &[("sec-ch-viewport-width", "200")],
            208,
            "Sec-CH-Width, Width, Sec-CH-Viewport-Width",
        ),
        (&[], 640, "Sec-CH-Width, Width, Sec-CH-Viewport-Width"),
        (
            &[
                ("sec-ch-width", "400"),
                ("width", "300"),
                ("sec-ch-viewport-width", "200"),
            ],
            400,
            "Sec-CH-Width",
        ),
    ];
    for (headers, width, vary) in cases {
        let r = hinted(&s, &auto, headers).await;
        assert_eq!(r.dims().0, *width, "{headers:?}");
        assert_eq!(r.header("vary"), *vary, "{headers:?}");
        assert_eq!(
            r.header("accept-ch"),
            "Sec-CH-Width, Sec-CH-DPR, Sec-CH-Viewport-Width"
        );
    }
    // Hostile values: ignored (the default width) or clamped; never a 500.
    let long = "7".repeat(10_000);
    for (value, width) in [
        ("0", 16),
        ("-1", 640),
        ("1e9", 640),
        ("abc", 640),
        (long.as_str(), 640),
        ("99999", 800), // clamped to 4096, then never above the source (limit_1)
    ] {
        let r = hinted(&s, &auto, &[("sec-ch-width", value)]).await;
        assert_eq!(r.dims().0, width, "{}", &value[..value.len().min(12)]);
    }
    // `format,auto` beside a hint: Accept first, then the hints read.
    let both = format!("{k}?x-oss-process=image/resize,w_auto/format,auto");
    let r = hinted(
        &s,
        &both,
        &[("sec-ch-width", "320"), ("accept", "image/webp")],
    )
    .await;
    assert_eq!(r.header("vary"), "Accept, Sec-CH-Width");
    assert_eq!(r.header("content-type"), "image/webp");
    // A plan without `auto` ignores the hints and names none.
    let plain = format!("{k}?x-oss-process=image/resize,w_300");
    let r = hinted(&s, &plain, &[("sec-ch-width", "500"), ("sec-ch-dpr", "2")]).await;
    assert_eq!(r.dims().0, 300);
    assert_eq!(r.header("vary"), "");
    assert_eq!(r.header("accept-ch"), "");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dpr_multiplies_sizes_rounds_and_never_enlarges_unless_asked() {
    let env = Env::new(Backend::Fs, "dpr").await;
    let s = TestServer::start(env.config()).await;
    let k = env.key("dragonfly.jpg"); // 800x600
    let r = hinted(
        &s,
        &format!("{k}?x-oss-process=image/resize,w_200/dpr,2"),
        &[],
    )
    .await;
    assert_eq!(r.dims(), (400, 300));
    assert_eq!(r.header("vary"), "", "an explicit dpr reads no hint");
    // 2.625 rounds to 2.5.
    let auto = format!("{k}?x-oss-process=image/resize,w_200/dpr,auto");
    let r = hinted(&s, &auto, &[("sec-ch-dpr", "2.625")]).await;
    assert_eq!(r.dims(), (500, 375));
    assert_eq!(r.header("vary"), "Sec-CH-DPR");
    let r = hinted(&s, &auto, &[("dpr", "3")]).await;
    assert_eq!(r.dims(), (600, 450));
    assert_eq!(r.header("vary"), "Sec-CH-DPR, DPR");
    // Never above the source (800 px) unless limit_0.
    let r = hinted(
        &s,
        &format!("{k}?x-oss-process=image/resize,w_600/dpr,auto"),
        &[("sec-ch-dpr", "2")],
    )
    .await;
    assert_eq!(r.dims(), (800, 600));
    let r = hinted(
        &s,
        &format!("{k}?x-oss-process=image/resize,w_600,limit_0/dpr,auto"),
        &[("sec-ch-dpr", "2")],
    )
    .await;
    assert_eq!(r.dims(), (1200, 900));
    // A device width (Sec-CH-Width) is not multiplied again; the viewport is.
    let both = format!("{k}?x-oss-process=image/resize,w_auto/dpr,auto");
    let r = hinted(&s, &both, &[("sec-ch-width", "400"), ("sec-ch-dpr", "2")]).await;
    assert_eq!(r.dims().0, 400);
    let r = hinted(
        &s,
        &both,
        &[("sec-ch-viewport-width", "200"), ("sec-ch-dpr", "2")],
    )
    .await;
    assert_eq!(r.dims().0, 416);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hints_that_round_together_are_one_derivative() {
    let env = Env::new(Backend::Fs, "hint-keys").await;
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let s = TestServer::start(cfg).await;
    let k = env.key("dragonfly.jpg");
    let auto = format!("{k}?x-oss-process=image/resize,w_auto/dpr,auto");
    let a = hinted(&s, &auto, &[("sec-ch-width", "497"), ("sec-ch-dpr", "1.9")]).await;
    let b = hinted(&s, &auto, &[("sec-ch-width", "510"), ("sec-ch-dpr", "2.1")]).await;
    assert_eq!((a.cache(), b.cache()), ("processed", "memory"));
    assert_eq!(a.body, b.body);
    assert_eq!(a.header("x-pixmirror-process"), "image/resize,w_512");
    assert_eq!(s.processed(), 1);
    assert!(env.exists(&format!("{k}__op__resize,w_512")).await);
    s.stop().await;
}
