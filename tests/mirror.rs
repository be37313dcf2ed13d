//! Mirror back-to-origin rules (issue 4) against a real Garage bucket and a
//! counting HTTP origin on loopback.

mod common;

use common::origin::Origin;
use common::*;
use pixmirror::config::{Config, MirrorRule, S3Config};

fn rule(prefix: &str, origin: String) -> MirrorRule {
    MirrorRule {
        prefix: Some(prefix.to_string()),
        origin: Some(origin),
        retries: 0,
        timeout: pixmirror::config::Dur(std::time::Duration::from_secs(5)),
        ..Default::default()
    }
}

fn with_rules(env: &Env, rules: Vec<MirrorRule>) -> Config {
    let mut c = env.config();
    c.mirror.rules = rules;
    c.mirror.allow_private_networks = true;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn business_api_renders_once_then_bucket_serves() {
    let env = Env::new(Backend::S3, "api").await;
    let o = Origin::start().await;
    let p = format!("{}/avatars/", env.prefix);
    let mut r = rule(&p, o.template("render"));
    r.replace_prefix = Some("users/".into());
    let s = TestServer::start(with_rules(&env, vec![r.clone()])).await;
    let key = format!("{p}u1.jpg");

    let first = get(&s.url(&key)).await;
    assert_eq!((first.status, first.cache()), (200, "mirrored"));
    assert_eq!(first.body.as_ref(), fixture("sunset.jpg").as_slice());
    assert_eq!(first.header("content-type"), "image/jpeg");
    assert_eq!(
        o.hits("/render/users/u1.jpg"),
        1,
        "the prefix is replaced in {{key}}"
    );
    assert!(env.exists(&key).await, "stored in the bucket");

    let second = get(&s.url(&key)).await;
    assert_eq!((second.status, second.cache()), (200, "memory"));
    assert_eq!(
        second.header("etag"),
        first.header("etag"),
        "the bucket's ETag from the start"
    );

    // Mirror then process: a missing original with process parameters.
    let key2 = format!("{p}u2.jpg");
    let r2 = get(&s.url(&format!("{key2}?x-oss-process=image/resize,w_100"))).await;
    assert_eq!((r2.status, r2.cache()), (200, "mirrored"));
    assert_eq!(r2.dims(), (100, 67));
    assert!(env.exists(&key2).await);
    s.stop().await;
    assert!(
        env.exists(&format!("{key2}__op__resize,w_100")).await,
        "its derivative too"
    );

    // A new instance (empty L1) never reaches the API again.
    let s = TestServer::start(with_rules(&env, vec![r])).await;
    let third = get(&s.url(&key)).await;
    assert_eq!((third.status, third.cache()), (200, "store"));
    let d = get(&s.url(&format!("{key2}?x-oss-process=image/resize,w_100"))).await;
    assert_eq!((d.status, d.cache()), (200, "store"));
    let d = get(&s.url(&format!("{key2}?x-oss-process=image/resize,w_50"))).await;
    assert_eq!((d.status, d.cache()), (200, "processed"));
    assert_eq!(o.total_hits(), 2, "one origin fetch per key, ever");
    assert_eq!(s.mirror_fetches(), 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_origin_second_bucket() {
    let env = Env::new(Backend::S3, "s3origin").await;
    let legacy = S3Config {
        bucket: common::env("PIXMIRROR_TEST_S3_LEGACY_BUCKET"),
        region: Some("garage".into()),
        endpoint: Some(common::env("PIXMIRROR_TEST_S3_ENDPOINT")),
        force_path_style: true,
        access_key_id: Some(common::env("PIXMIRROR_TEST_S3_ACCESS_KEY")),
        secret_access_key: Some(common::env("PIXMIRROR_TEST_S3_SECRET_KEY")),
    };
    let old = pixmirror::storage::s3::S3Store::new(&legacy, std::time::Duration::from_secs(10))
        .await
        .expect("s3");
    let old: pixmirror::storage::DynStore = std::sync::Arc::new(old);
    let p = format!("{}/legacy/", env.prefix);
    put(
        &old,
        &format!("old/{}/cat.png", env.prefix),
        fixture("gulp.png"),
        "image/png",
    )
    .await;
    let r = MirrorRule {
        prefix: Some(p.clone()),
        origin_s3: Some(legacy),
        replace_prefix: Some(format!("old/{}/", env.prefix)),
        retries: 0,
        // Compared against the origin object's ETag (its MD5: a single-part upload).
        check_md5: true,
        ..Default::default()
    };
    let s = TestServer::start(with_rules(&env, vec![r])).await;
    let key = format!("{p}cat.png");
    let a = get(&s.url(&format!("{key}?x-oss-process=image/resize,w_160"))).await;
    assert_eq!(
        (a.status, a.cache()),
        (200, "mirrored"),
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    assert_eq!(a.dims(), (160, 100));
    let stored = env.store.get(&key).await.expect("stored");
    let bytes = pixmirror::storage::read_limited(stored.body, 10 << 20, 0)
        .await
        .expect("read");
    assert_eq!(bytes.as_ref(), fixture("gulp.png").as_slice());
    let miss = get(&s.url(&format!("{p}none.png"))).await;
    assert_eq!((miss.status, miss.code().as_str()), (404, "NoSuchKey"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_origins_and_errors() {
    let env = Env::new(Backend::Fs, "fallback").await;
    let o = Origin::start().await;
    let p = env.prefix.clone();
    let mut failover = rule(&format!("{p}/a/"), String::new());
    failover.origin = None;
    failover.origins = Some(vec![o.template("fail"), o.template("img")]);
    failover.retries = 1;
    let mut slow = rule(&format!("{p}/b/"), String::new());
    slow.origin = None;
    slow.origins = Some(vec![o.template("slow"), o.template("img")]);
    slow.timeout = pixmirror::config::Dur(std::time::Duration::from_millis(300));
    let mut not_found_stops = rule(&format!("{p}/c/"), String::new());
    not_found_stops.origin = None;
    not_found_stops.origins = Some(vec![o.template("missing"), o.template("img")]);
    let exhausted = rule(&format!("{p}/d/"), o.template("fail"));
    let mut timeout = rule(&format!("{p}/e/"), o.template("slow"));
    timeout.timeout = pixmirror::config::Dur(std::time::Duration::from_millis(300));
    let forbidden = rule(&format!("{p}/f/"), o.template("forbidden"));
    let mut flaky = rule(&format!("{p}/g/"), o.template("flaky"));
    flaky.retries = 2;
    let s = TestServer::start(with_rules(
        &env,
        vec![
            failover,
            slow,
            not_found_stops,
            exhausted,
            timeout,
            forbidden,
            flaky,
        ],
    ))
    .await;

    let r = get(&s.url(&format!("{p}/a/x.jpg"))).await;
    assert_eq!((r.status, r.cache()), (200, "mirrored"));
    assert_eq!(
        o.hits(&format!("/fail/{p}/a/x.jpg")),
        2,
        "first origin: try + 1 retry"
    );
    assert_eq!(
        o.hits(&format!("/img/{p}/a/x.jpg")),
        1,
        "then the next origin"
    );

    let r = get(&s.url(&format!("{p}/b/x.jpg"))).await;
    assert_eq!(
        (r.status, r.cache()),
        (200, "mirrored"),
        "a timeout moves to the next origin"
    );

    let r = get(&s.url(&format!("{p}/c/x.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (404, "NoSuchKey"));
    assert_eq!(
        o.hits(&format!("/img/{p}/c/x.jpg")),
        0,
        "404 is an answer: no next origin"
    );

    let r = get(&s.url(&format!("{p}/d/x.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    assert!(
        r.json()["message"].as_str().unwrap_or("").contains("503"),
        "the origin's status"
    );
    assert!(
        !r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.0.1"),
        "no internals"
    );

    let r = get(&s.url(&format!("{p}/e/x.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (504, "Timeout"));

    let r = get(&s.url(&format!("{p}/f/x.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    assert!(r.json()["message"].as_str().unwrap_or("").contains("403"));

    let r = get(&s.url(&format!("{p}/g/x.jpg"))).await;
    assert_eq!((r.status, r.cache()), (200, "mirrored"), "a retry succeeds");
    assert_eq!(o.hits(&format!("/flaky/{p}/g/x.jpg")), 2);

    let r = get(&s.url(&format!("{p}/zzz/unmatched.jpg"))).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (404, "NoSuchKey"),
        "no rule: plain 404"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_concurrent_requests_one_origin_fetch() {
    let env = Env::new(Backend::S3, "burst").await;
    let o = Origin::start().await;
    let p = format!("{}/m/", env.prefix);
    let s = TestServer::start(with_rules(&env, vec![rule(&p, o.template("img"))])).await;
    let key = format!("{p}hot.jpg");
    let mut urls: Vec<String> = (0..20).map(|_| s.url(&key)).collect();
    urls.extend((0..10).map(|i| s.url(&format!("{key}?x-oss-process=image/resize,w_{}", 50 + i))));
    for r in burst(urls).await {
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        o.hits(&format!("/img/{key}")),
        1,
        "30 concurrent requests, one origin fetch"
    );
    assert_eq!(s.mirror_fetches(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_cache_and_404_not_stored() {
    let env = Env::new(Backend::Fs, "neg").await;
    let o = Origin::start().await;
    let p = format!("{}/n/", env.prefix);
    let s = TestServer::start(with_rules(&env, vec![rule(&p, o.template("missing"))])).await;
    let key = format!("{p}gone.jpg");
    for _ in 0..3 {
        let r = get(&s.url(&key)).await;
        assert_eq!((r.status, r.code().as_str()), (404, "NoSuchKey"));
    }
    let r = get(&s.url(&format!("{key}?x-oss-process=image/resize,w_10"))).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        o.hits(&format!("/missing/{key}")),
        1,
        "a hot missing key does not hammer the origin"
    );
    assert!(!env.exists(&key).await, "404 bodies are never stored");
    let text = s.app.metrics.render();
    common::assert_metric_lines(
        &text,
        &[
            "pixmirror_mirror_fetches_total{outcome=\"not_found\",rule=\"0\"} 1",
            "pixmirror_mirror_fetches_total{outcome=\"negative_cached\",rule=\"0\"} 3",
            "pixmirror_stage_duration_seconds_count{stage=\"mirror_fetch\"} 1",
        ],
    );
    s.stop().await;
    let mut cfg = with_rules(&env, vec![rule(&p, o.template("missing"))]);
    cfg.mirror.negative_ttl = pixmirror::config::Dur(std::time::Duration::from_millis(1));
    let s = TestServer::start(cfg).await;
    get(&s.url(&key)).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    get(&s.url(&key)).await;
    assert_eq!(
        o.hits(&format!("/missing/{key}")),
        3,
        "after negative_ttl the origin is asked again"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_options() {
    let env = Env::new(Backend::Fs, "opts").await;
    let o = Origin::start().await;
    let p = env.prefix.clone();
    let mut proxy = rule(&format!("{p}/proxy/"), o.template("img"));
    proxy.store = false;
    let mut q = rule(&format!("{p}/q/"), o.template("img"));
    q.pass_query = true;
    let mut h = rule(&format!("{p}/h/"), o.template("img"));
    h.headers.pass = vec![
        "Authorization".into(),
        "Cookie".into(),
        "Host".into(),
        "Connection".into(),
    ];
    h.headers.remove = vec!["Cookie".into()];
    h.headers.set.insert("X-Api-Key".into(), "secret-k".into());
    let redir = rule(&format!("{p}/r/"), o.template("redirect"));
    let mut noredir = rule(&format!("{p}/nr/"), o.template("redirect"));
    noredir.follow_redirects = false;
    let looping = rule(&format!("{p}/loop/"), o.template("redirect-loop"));
    let other_host = rule(&format!("{p}/oh/"), o.template("redirect-abs"));
    let mut allowed = rule(&format!("{p}/ok/"), o.template("redirect-abs"));
    allowed.allowed_hosts = vec!["localhost".into()];
    let mut md5 = rule(&format!("{p}/md5/"), o.template("badmd5"));
    md5.check_md5 = true;
    let nomd5 = rule(&format!("{p}/nomd5/"), o.template("badmd5"));
    let html = rule(&format!("{p}/html/"), o.template("html"));
    let mut suffix = rule(&format!("{p}/sfx/"), o.template("img"));
    suffix.suffix = Some(".png".into());
    let s = TestServer::start(with_rules(
        &env,
        vec![
            proxy, q, h, redir, noredir, looping, other_host, allowed, md5, nomd5, html, suffix,
        ],
    ))
    .await;
    let k = |sub: &str, name: &str| format!("{p}/{sub}/{name}");

    // store = false: served, never saved, so the origin is asked every time.
    for _ in 0..2 {
        let r = get(&s.url(&k("proxy", "a.jpg"))).await;
        assert_eq!((r.status, r.cache()), (200, "mirrored"));
    }
    assert!(!env.exists(&k("proxy", "a.jpg")).await);
    assert_eq!(o.hits(&format!("/img/{}", k("proxy", "a.jpg"))), 2);
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_10",
        k("proxy", "b.jpg")
    )))
    .await;
    assert_eq!(r.status, 200);
    s.app
        .writeback
        .drain(std::time::Duration::from_secs(5))
        .await;
    assert!(
        env.store
            .list(&k("proxy", "b.jpg"))
            .await
            .expect("list")
            .is_empty(),
        "nor its derivatives"
    );

    // pass_query
    get(&s.url(&format!(
        "{}?v=3&x-oss-process=image/resize,w_10",
        k("q", "a.jpg")
    )))
    .await;
    assert_eq!(
        o.query(&format!("/img/{}", k("q", "a.jpg"))).as_deref(),
        Some("v=3")
    );
    get(&s.url(&format!("{}?v=3", k("proxy", "c.jpg")))).await;
    assert_eq!(
        o.query(&format!("/img/{}", k("proxy", "c.jpg"))),
        None,
        "pass_query = false"
    );

    // headers: pass, set, remove; never Host or hop-by-hop
    let r = request(
        "GET",
        &s.url(&k("h", "a.jpg")),
        &[
            ("authorization", "Bearer t"),
            ("cookie", "s=1"),
            ("x-other", "o"),
            ("connection", "keep-alive"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let got = o.headers(&format!("/img/{}", k("h", "a.jpg")));
    assert_eq!(
        got.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Bearer t")
    );
    assert_eq!(
        got.get("x-api-key").and_then(|v| v.to_str().ok()),
        Some("secret-k")
    );
    assert!(got.get("cookie").is_none());
    assert!(got.get("x-other").is_none());
    assert_eq!(
        got.get("host").and_then(|v| v.to_str().ok()),
        Some(o.addr.to_string().as_str()),
        "Host is the origin's, not the client's"
    );

    // redirects
    let r = get(&s.url(&k("r", "a.jpg"))).await;
    assert_eq!((r.status, r.cache()), (200, "mirrored"));
    let r = get(&s.url(&k("nr", "a.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    let r = get(&s.url(&k("loop", "a.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    assert_eq!(
        o.hits(&format!("/redirect-loop/{}", k("loop", "a.jpg"))),
        11,
        "at most 10 hops"
    );
    let r = get(&s.url(&k("oh", "a.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    let msg = r.json()["message"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("does not allow"), "{msg}");
    assert!(
        !msg.contains("localhost"),
        "no host names in error bodies: {msg}"
    );
    let r = get(&s.url(&k("ok", "a.jpg"))).await;
    assert_eq!(
        r.status,
        200,
        "allowed_hosts: {}",
        String::from_utf8_lossy(&r.body)
    );

    // Content-MD5
    let r = get(&s.url(&k("md5", "a.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    assert!(
        !env.exists(&k("md5", "a.jpg")).await,
        "nothing stored on a bad MD5"
    );
    assert_eq!(
        get(&s.url(&k("nomd5", "a.jpg"))).await.status,
        200,
        "check_md5 = false"
    );

    // content types
    let r = get(&s.url(&k("html", "a.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (502, "MirrorFailed"));
    assert!(!env.exists(&k("html", "a.jpg")).await);

    // suffix condition
    assert_eq!(get(&s.url(&k("sfx", "a.png"))).await.status, 200);
    assert_eq!(get(&s.url(&k("sfx", "a.jpg"))).await.status, 404);
    s.stop().await;
}

/// Issue 9, item 8: the configured origin (and a redirect back to its host) is
/// trusted, even on a private address; any other host is connected to only on
/// public addresses (checked by the resolver on what it connects to), gets
/// neither the rule's headers nor credentials, and a redirect may not change
/// the port unless `allowed_hosts` names it. Refusals say nothing internal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_leave_the_origin_only_as_allowed() {
    let env = Env::new(Backend::Fs, "private").await;
    let o = Origin::start().await;
    let other = Origin::start().await;
    let port = o.addr.port();
    let k = |dir: &str, name: &str| format!("{}/{dir}/{name}", env.prefix);
    let r = |dir: &str, tpl: String| rule(&format!("{}/{dir}/", env.prefix), tpl);
    let same_host = r("same", o.template("redirect"));
    let mut to_localhost = r("lh", o.template(&format!("goto/localhost:{port}")));
    to_localhost.allowed_hosts = vec!["localhost".into()];
    let other_port = format!("127.0.0.1:{}", other.addr.port());
    let new_port = r("port", o.template(&format!("goto/{other_port}")));
    let mut named_port = r("named", o.template(&format!("goto/{other_port}")));
    named_port.allowed_hosts = vec![other_port.clone()];
    let mut keyed = r("keyed", o.template("redirect-abs"));
    keyed.allowed_hosts = vec!["localhost".into()];
    keyed.headers.pass = vec!["Authorization".into()];
    keyed
        .headers
        .set
        .insert("X-Api-Key".into(), "secret-k".into());
    let rules = vec![same_host, to_localhost, new_port, named_port, keyed.clone()];
    let mut cfg = with_rules(&env, rules);
    cfg.mirror.allow_private_networks = false;
    let s = TestServer::start(cfg).await;

    // The configured origin is on 127.0.0.1: trusted, and so is its own redirect.
    let resp = get(&s.url(&k("same", "a.jpg"))).await;
    assert_eq!((resp.status, resp.cache()), (200, "mirrored"));
    assert_eq!(o.hits(&format!("/img/{}", k("same", "a.jpg"))), 1);

    // `localhost` is allowed by name but resolves to loopback: refused by the resolver.
    let resp = get(&s.url(&k("lh", "a.jpg"))).await;
    assert_eq!((resp.status, resp.code().as_str()), (502, "MirrorFailed"));
    let msg = resp.json()["message"].as_str().unwrap_or("").to_string();
    assert!(
        !msg.contains("localhost") && !msg.contains("127.0.0.1"),
        "{msg}"
    );
    assert_eq!(o.hits(&format!("/img/{}", k("lh", "a.jpg"))), 0);

    // Same host, another port: only when allowed_hosts names host:port.
    let resp = get(&s.url(&k("port", "a.jpg"))).await;
    assert_eq!((resp.status, resp.code().as_str()), (502, "MirrorFailed"));
    let msg = resp.json()["message"].as_str().unwrap_or("").to_string();
    assert!(
        !msg.contains("127.0.0.1") && !msg.contains(&other_port),
        "{msg}"
    );
    assert_eq!(other.total_hits(), 0);
    let resp = get(&s.url(&k("named", "a.jpg"))).await;
    assert_eq!((resp.status, resp.cache()), (200, "mirrored"));
    assert_eq!(other.total_hits(), 1);
    s.stop().await;

    // With private networks allowed, a redirect to an allowed host carries
    // neither the rule's key nor the client's credentials.
    let mut cfg = with_rules(&env, vec![keyed]);
    cfg.mirror.allow_private_networks = true;
    let s = TestServer::start(cfg).await;
    let key = k("keyed", "a.jpg");
    let resp = common::request("GET", &s.url(&key), &[("authorization", "Bearer t")]).await;
    assert_eq!((resp.status, resp.cache()), (200, "mirrored"));
    let first = o.headers(&format!("/redirect-abs/{key}"));
    assert_eq!(
        first.get("x-api-key").map(|v| v.as_bytes()),
        Some(&b"secret-k"[..])
    );
    assert_eq!(
        first.get("authorization").map(|v| v.as_bytes()),
        Some(&b"Bearer t"[..])
    );
    let second = o.headers(&format!("/img/{key}"));
    assert_eq!(o.hits(&format!("/img/{key}")), 1);
    assert!(
        second.get("x-api-key").is_none(),
        "the rule's key stays with the origin"
    );
    assert!(second.get("authorization").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_originals_are_spooled_and_size_limited() {
    let env = Env::new(Backend::S3, "large").await;
    let o = Origin::start().await;
    let p = format!("{}/big/", env.prefix);
    let mut cfg = with_rules(&env, vec![rule(&p, o.template("img"))]);
    cfg.cache.max_item_bytes = pixmirror::config::ByteSize(50_000); // gulp.png is 182 KB
    let s = TestServer::start(cfg).await;
    let key = format!("{p}huge.png");
    let r = get(&s.url(&key)).await;
    assert_eq!((r.status, r.cache()), (200, "mirrored"));
    assert_eq!(
        r.body.as_ref(),
        fixture("gulp.png").as_slice(),
        "streamed to the client"
    );
    let stored = env.store.get(&key).await.expect("stored");
    let bytes = pixmirror::storage::read_limited(stored.body, 10 << 20, 0)
        .await
        .expect("read");
    assert_eq!(
        bytes.as_ref(),
        fixture("gulp.png").as_slice(),
        "and to the bucket"
    );
    let r = get(&s.url(&key)).await;
    assert_eq!(r.cache(), "store", "too large for L1");
    s.stop().await;
    let mut cfg = with_rules(&env, vec![rule(&p, o.template("img"))]);
    cfg.process.max_source_bytes = pixmirror::config::ByteSize(100_000);
    let s = TestServer::start(cfg).await;
    let r = get(&s.url(&format!("{p}other.png"))).await;
    assert_eq!((r.status, r.code().as_str()), (413, "SourceTooLarge"));
    assert!(!env.exists(&format!("{p}other.png")).await);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_never_mirrors() {
    let env = Env::new(Backend::S3, "denymirror").await;
    let o = Origin::start().await;
    let p = format!("{}/d/", env.prefix);
    let mut cfg = with_rules(&env, vec![rule(&p, o.template("img"))]);
    cfg.storage.s3.secret_access_key = Some("0".repeat(64));
    let s = TestServer::start(cfg).await;
    let r = get(&s.url(&format!("{p}a.jpg"))).await;
    assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"));
    let r = get(&s.url(&format!("{p}a.jpg?x-oss-process=image/resize,w_10"))).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        o.total_hits(),
        0,
        "403 from the store never triggers a mirror"
    );
    s.stop().await;
}

/// Keys that a web server in front of the business API would normalise into
/// another path never reach the origin (issue 9, item 7): 400, zero requests
/// at the origin, whatever path they would have reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_that_escape_the_rule_never_reach_the_origin() {
    let env = Env::new(Backend::S3, "escape").await;
    let o = Origin::start().await;
    let p = format!("{}/avatars/", env.prefix);
    let s = TestServer::start(with_rules(&env, vec![rule(&p, o.template("render"))])).await;
    for attack in [
        "../../admin/x.jpg",
        "%2e%2e/%2e%2e/admin/x.jpg",
        "%2E%2E%2F%2E%2E%2Fadmin/x.jpg",
        "a%5C..%5C..%5Cadmin%5Cx.jpg",
        "./x.jpg",
        "a//x.jpg",
        "x.jpg%0d%0aHost:%20evil",
    ] {
        for q in ["", "?x-oss-process=image/resize,w_10"] {
            let r = get(&s.url(&format!("{p}{attack}{q}"))).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (400, "InvalidArgument"),
                "{attack}{q}"
            );
            assert!(!r.json()["message"]
                .as_str()
                .unwrap_or("")
                .contains("127.0.0.1"));
        }
    }
    assert_eq!(o.total_hits(), 0, "the origin saw none of them");
    // The same rule still mirrors an ordinary key.
    let r = get(&s.url(&format!("{p}ok.jpg"))).await;
    assert_eq!((r.status, r.cache()), (200, "mirrored"));
    assert_eq!(o.hits(&format!("/render/{p}ok.jpg")), 1);
    assert_eq!(o.total_hits(), 1);
    s.stop().await;
}
