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
