//! Issue 13: the bucket cannot be flooded with derivatives. Counts what is
//! stored for each policy against the running server.

mod common;

use common::{get, Backend, Env, TestServer};

/// Derivatives of `name` in the bucket.
async fn stored(env: &Env, name: &str) -> usize {
    let prefix = format!("{}__op__", env.key(name));
    env.store.list(&prefix).await.map(|v| v.len()).unwrap_or(0)
}

/// Snapping: two requested widths, one stored derivative at the snapped size;
/// qualities round to the nearest allowed one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapped_sizes_share_one_derivative() {
    let env = Env::new(Backend::Fs, "snap").await;
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    cfg.process.snap_widths = vec![160, 320, 640];
    cfg.process.allowed_qualities = vec![60, 75, 85];
    let s = TestServer::start(cfg).await;
    let url = |ops: &str| {
        s.url(&format!(
            "{}?x-oss-process=image/{ops}",
            env.key("sunset.jpg")
        ))
    };
    for w in [301, 320, 319] {
        let r = get(&url(&format!("resize,w_{w}"))).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.dims().0, 320, "w_{w} is served at the snapped width");
        assert_eq!(
            r.header("x-pixmirror-process"),
            "image/resize,w_320",
            "and says so"
        );
    }
    assert_eq!(stored(&env, "sunset.jpg").await, 1, "one stored derivative");
    for q in [70, 74, 79] {
        let r = get(&url(&format!("resize,w_160/format,jpg/quality,Q_{q}"))).await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(stored(&env, "sunset.jpg").await, 2, "one more, at Q_75");
    let keys = env
        .store
        .list(&format!("{}__op__", env.key("sunset.jpg")))
        .await
        .expect("list");
    assert!(keys.iter().any(|k| k.ends_with("quality,Q_75")), "{keys:?}");
    s.stop().await;
}

fn config(env: &Env, admit: pixmirror::config::Admit, cap: usize) -> pixmirror::config::Config {
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    cfg.derivatives.admit = admit;
    cfg.derivatives.max_per_original = cap;
    cfg
}

async fn widths(s: &TestServer, env: &Env, ws: impl IntoIterator<Item = u32>) {
    for w in ws {
        let r = get(&s.url(&format!(
            "{}?x-oss-process=image/resize,w_{w}",
            env.key("sunset.jpg")
        )))
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.dims().0, w, "every response is still correct");
    }
}

fn verdicts(s: &TestServer, v: &str) -> u64 {
    s.app
        .metrics
        .writeback_admission
        .with_label_values(&[v])
        .get()
}

/// `max_per_original`: past it, derivatives are served but not stored; the
/// count comes from the bucket, so a new instance keeps to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_per_original_cap_holds_across_instances() {
    use pixmirror::config::Admit;
    let env = Env::new(Backend::Fs, "cap").await;
    let s = TestServer::start(config(&env, Admit::Always, 3)).await;
    widths(&s, &env, 40..46).await;
    assert_eq!(stored(&env, "sunset.jpg").await, 3);
    assert_eq!((verdicts(&s, "admitted"), verdicts(&s, "capped")), (3, 3));
    s.stop().await;
    let s = TestServer::start(config(&env, Admit::Always, 3)).await;
    widths(&s, &env, 50..52).await;
    assert_eq!(
        stored(&env, "sunset.jpg").await,
        3,
        "a new instance reads the count from the bucket"
    );
    s.stop().await;
    // Without a cap, everything is stored.
    let s = TestServer::start(config(&env, Admit::Always, 0)).await;
    widths(&s, &env, 60..66).await;
    assert_eq!(stored(&env, "sunset.jpg").await, 9);
    s.stop().await;
}

/// `admit = "repeat"`: one-off URLs are served and kept in L1, never stored;
/// the second request stores it, also when it is an L1 hit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeat_stores_only_what_is_asked_again() {
    use pixmirror::config::Admit;
    let env = Env::new(Backend::Fs, "repeat").await;
    let s = TestServer::start(config(&env, Admit::Repeat, 200)).await;
    widths(&s, &env, 40..45).await;
    assert_eq!(
        stored(&env, "sunset.jpg").await,
        0,
        "one-off URLs are not stored"
    );
    widths(&s, &env, [41, 43]).await;
    assert_eq!(stored(&env, "sunset.jpg").await, 2, "asked twice: stored");
    widths(&s, &env, [41, 43]).await;
    assert_eq!(stored(&env, "sunset.jpg").await, 2);
    assert_eq!(verdicts(&s, "admitted"), 2, "written once each");
    s.stop().await;
}

/// `admit = "styles"`: only what a named style asked for is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn styles_stores_only_named_styles() {
    use pixmirror::config::Admit;
    let env = Env::new(Backend::Fs, "styles").await;
    let s = TestServer::start(config(&env, Admit::Styles, 200)).await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=style/thumb",
        env.key("sunset.jpg")
    )))
    .await;
    assert_eq!((r.status, r.dims()), (200, (200, 200)));
    // The style's plan spelled out is the style's derivative too (already stored).
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,m_fill,w_200,h_200/format,webp",
        env.key("sunset.jpg")
    )))
    .await;
    assert_eq!((r.status, r.cache()), (200, "memory"));
    widths(&s, &env, 40..43).await;
    assert_eq!(
        stored(&env, "sunset.jpg").await,
        1,
        "the style's derivative only"
    );
    assert_eq!(verdicts(&s, "not_a_style"), 3);
    s.stop().await;
    // On a new instance, the spelled-out plan of a style is admitted as the style.
    let env2 = Env::new(Backend::Fs, "styles2").await;
    let s = TestServer::start(config(&env2, Admit::Styles, 200)).await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_200,h_200,m_fill/format,webp",
        env2.key("sunset.jpg")
    )))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        stored(&env2, "sunset.jpg").await,
        1,
        "a plan listed in config"
    );
    s.stop().await;
}
