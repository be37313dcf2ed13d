//! `[[sites]]`: two sites on two buckets of Garage (`images`, `legacy`) in
//! one process. The `Host` picks the site; each has its own bucket, styles,
//! cache-control and L1 keys; an unknown host is refused, or served by the
//! default site when `server.unknown_hosts = "default"`.

mod common;

use common::{put, request, Backend, Env, TestServer};
use pixmirror::config::{HttpConfig, SiteConfig, StylesConfig, UnknownHosts};

/// The config: the default site on `images` (hosts a.test), site `b` on
/// `legacy` (hosts b.test, b2.test), each with its own `thumb` style and
/// cache-control.
fn config(env: &Env, unknown: UnknownHosts) -> pixmirror::config::Config {
    let mut cfg = env.config();
    cfg.server.hosts = vec!["a.test".into()];
    cfg.server.unknown_hosts = unknown;
    cfg.styles
        .insert("thumb".into(), "image/resize,w_100".into());
    cfg.http.cache_control = "public, max-age=100".into();
    let mut legacy = cfg.storage.clone();
    legacy.bucket = "legacy".into();
    let mut styles = StylesConfig::default();
    styles.insert("thumb".into(), "image/resize,w_50/format,png".into());
    cfg.sites = vec![SiteConfig {
        name: Some("b".into()),
        hosts: vec!["b.test".into(), "B2.test".into()],
        storage: Some(legacy),
        styles: Some(styles),
        mirror: None,
        http: Some(HttpConfig {
            cache_control: "public, max-age=200".into(),
        }),
    }];
    cfg
}

async fn get_at(s: &TestServer, host: &str, path: &str) -> common::Resp {
    request("GET", &s.url(path), &[("host", host)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_gets_its_own_site() {
    let env = Env::new(Backend::S3, "sites").await;
    let cfg = config(&env, UnknownHosts::Reject);
    // The same key in both buckets, different pictures.
    let key = env.key("same.jpg");
    put(
        &env.store,
        &key,
        common::fixture("sunset.jpg"),
        "image/jpeg",
    )
    .await; // 800x533
    let legacy = pixmirror::storage::from_config(&cfg.site(0).expect("site").storage)
        .await
        .expect("legacy bucket");
    put(&legacy, &key, common::fixture("gulp.png"), "image/png").await;
    let s = TestServer::start(cfg).await;
    let path = format!("{key}?x-oss-process=style/thumb");

    let a = get_at(&s, "a.test", &path).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        (a.format(), a.dims().0),
        (Some(pixmirror::process::Format::Jpg), 100)
    );
    assert_eq!(a.header("cache-control"), "public, max-age=100");
    for host in ["b.test", "B2.TEST:8080"] {
        let b = get_at(&s, host, &path).await;
        assert_eq!(b.status, 200, "{host}: {:?}", b.body);
        assert_eq!(
            (b.format(), b.dims().0),
            (Some(pixmirror::process::Format::Png), 50),
            "{host}"
        );
        assert_eq!(b.header("cache-control"), "public, max-age=200");
    }
    // L1: each site's copy under its own key (both now memory hits, different).
    let (a2, b2) = (
        get_at(&s, "a.test", &path).await,
        get_at(&s, "b.test", &path).await,
    );
    assert_eq!((a2.cache(), b2.cache()), ("memory", "memory"));
    assert_ne!(a2.body, b2.body);
    // Write-back into each site's own bucket.
    s.stop().await;
    let a_deriv = format!("{key}__op__resize,w_100");
    let b_deriv = format!("{key}__op__resize,w_50__op__format,png");
    assert!(env.exists(&a_deriv).await && !env.exists(&b_deriv).await);
    assert!(legacy.head(&b_deriv).await.is_ok() && legacy.head(&a_deriv).await.is_err());
    let s = TestServer::start(config(&env, UnknownHosts::Reject)).await;
    // An unknown host is refused, with nothing fetched.
    let fetched = s.store_fetches();
    let c = get_at(&s, "c.test", &path).await;
    assert_eq!((c.status, c.code().as_str()), (404, "NoSuchKey"));
    assert_eq!(s.store_fetches(), fetched);
    // Counted like every response: the request, its duration, the error.
    common::assert_metric_lines(
        &s.app.metrics.render(),
        &[
            "pixmirror_requests_total{cache_status=\"none\",code=\"404\"} 1",
            "pixmirror_request_duration_seconds_count{cache_status=\"none\",code=\"404\"} 1",
            "pixmirror_errors_total{category=\"client\",code=\"NoSuchKey\"} 1",
        ],
    );
    s.stop().await;
    // ... or served by the default site, when configured so.
    let s = TestServer::start(config(&env, UnknownHosts::Default)).await;
    let c = get_at(&s, "c.test", &path).await;
    assert_eq!((c.status, c.dims().0), (200, 100));
    s.stop().await;
}

#[test]
fn a_host_named_twice_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = common::config(Backend::Fs, dir.path());
    cfg.server.hosts = vec!["a.test".into()];
    cfg.sites = vec![SiteConfig {
        hosts: vec!["A.test".into()],
        ..SiteConfig::default()
    }];
    let e = cfg.validate().expect_err("refused");
    assert!(e.contains("named by two sites"), "{e}");
    cfg.sites[0].hosts = Vec::new();
    assert!(cfg.validate().is_err(), "a site without hosts");
}
