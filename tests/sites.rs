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
    legacy.s3.bucket = "legacy".into();
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
    let legacy = pixmirror::storage::open::from_config(&cfg.site(0).expect("site").storage)
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

/// Issue 21: a crafted key on one site never reads another site's cache or
/// bucket. The default site `shop` and the site `blog`, each on its own fs
/// root, each with `photos/x.jpg` (different pictures) and a `store = false`
/// mirror prefix `pp/` (entries whose original is in no bucket, which
/// revalidation cannot catch). Both sites' originals and derivatives are
/// first put into L1; then every crafted spelling of the other site's keys,
/// on every spelling of the host, under both revalidation settings: control
/// characters are 400 with nothing fetched, the rest 404 or the asking site's
/// own picture, and not one body of the other site. (Four pictures: shop
/// dragonfly, blog rotated-exif6, the origin gulp.png for shop, sunset for blog.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sites_never_serve_each_other() {
    use pixmirror::config::{MirrorConfig, MirrorRule};
    for revalidate in [false, true] {
        let o = common::origin::Origin::start().await;
        let (shop_dir, blog_dir) = (
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        );
        // The origin answers `*.png` with one picture and other names with another.
        let mirror = |suffix: &str| MirrorConfig {
            allow_private_networks: true,
            rules: vec![MirrorRule {
                prefix: Some("pp/".into()),
                origin: Some(format!("{}{suffix}", o.template("render"))),
                store: false,
                retries: 0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut cfg = common::config(Backend::Fs, shop_dir.path());
        cfg.derivatives.revalidate = revalidate;
        cfg.server.hosts = vec!["img.shop.example".into()];
        cfg.mirror = mirror(".png");
        let mut blog_storage = cfg.storage.clone();
        blog_storage.root = blog_dir.path().to_path_buf();
        cfg.sites = vec![SiteConfig {
            name: Some("blog".into()),
            hosts: vec!["img.blog.example".into()],
            storage: Some(blog_storage),
            mirror: Some(mirror("")),
            ..SiteConfig::default()
        }];
        let shop_store = common::store(Backend::Fs, shop_dir.path()).await;
        let blog_store = common::store(Backend::Fs, blog_dir.path()).await;
        put(
            &shop_store,
            "photos/x.jpg",
            common::fixture("dragonfly.jpg"),
            "image/jpeg",
        )
        .await;
        put(
            &blog_store,
            "photos/x.jpg",
            common::fixture("rotated-exif6.jpg"),
            "image/jpeg",
        )
        .await;
        let s = TestServer::start(cfg).await;
        let q = "?x-oss-process=image/resize,w_100/format,webp";
        let bases = ["photos/x.jpg", "pp/y.jpg"];
        // Each site's own bodies, asked twice (the second from L1).
        let mut bodies = std::collections::HashMap::new();
        for host in ["img.shop.example", "img.blog.example"] {
            let mut seen = Vec::new();
            for base in bases {
                for path in [base.to_string(), format!("{base}{q}")] {
                    let first = get_at(&s, host, &path).await;
                    assert_eq!(first.status, 200, "{host} {path}: {:?}", first.body);
                    let again = get_at(&s, host, &path).await;
                    assert_eq!(again.body, first.body, "{host} {path}");
                    if path.contains('?') {
                        assert_eq!(again.cache(), "memory", "{host} {path}");
                    }
                    seen.push(first.body);
                }
            }
            bodies.insert(host, seen);
        }
        let pairs = [
            // (victim, attacker, the victim's name as a crafted prefix)
            ("img.blog.example", "img.shop.example", "blog"),
            ("img.shop.example", "img.blog.example", "shop"),
        ];
        for (victim, attacker, victim_name) in pairs {
            let theirs = &bodies[victim];
            let ours = &bodies[attacker];
            let spellings = [
                attacker.to_string(),
                attacker.to_ascii_uppercase(),
                format!("{attacker}."),
                format!("{}.:8080", attacker.replacen('i', "I", 1)),
            ];
            for host in &spellings {
                for base in bases {
                    let controls = [
                        format!("{victim_name}%1F{base}"),
                        format!("{victim_name}%1f{base}"),
                        format!("{}%1F{base}", victim_name.to_ascii_uppercase()),
                        format!("{victim_name}%00{base}"),
                        format!("%1F{base}"),
                        format!("%00{base}"),
                        format!("{victim_name}%7F{base}"),
                        format!("{base}%00"),
                        format!("{base}%1F"),
                    ];
                    let plain = [
                        format!("{victim_name}/{base}"),
                        format!("{victim_name}{base}"),
                        format!("{}/{base}", victim_name.to_ascii_uppercase()),
                        base.to_string(),
                    ];
                    for (key, control) in controls
                        .iter()
                        .map(|k| (k, true))
                        .chain(plain.iter().map(|k| (k, false)))
                    {
                        for path in [key.clone(), format!("{key}{q}")] {
                            let fetched = s.store_fetches() + s.mirror_fetches();
                            let r = get_at(&s, host, &path).await;
                            let what = format!("revalidate={revalidate} {host} {path}");
                            assert!(!theirs.contains(&r.body), "{what}: the other site's bytes");
                            if control {
                                assert_eq!(
                                    (r.status, r.code().as_str()),
                                    (400, "InvalidArgument"),
                                    "{what}"
                                );
                                assert_eq!(
                                    s.store_fetches() + s.mirror_fetches(),
                                    fetched,
                                    "{what}: fetched"
                                );
                            } else if key == base {
                                assert_eq!(r.status, 200, "{what}");
                                assert!(ours.contains(&r.body), "{what}: not its own picture");
                            } else {
                                assert_eq!(r.status, 404, "{what}: {:?}", r.body);
                            }
                        }
                    }
                }
            }
        }
        s.stop().await;
    }
}
