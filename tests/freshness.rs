//! Cache economics (issue 8): store requests counted per request. An L1 hit
//! inside `revalidate_after` asks the bucket nothing; a conditional request is
//! answered 304 from one HEAD without processing; a bucket hit reads the
//! derivative while it checks the original; every `format,auto` answer varies
//! by `Accept`; mirrored originals need no HEAD after their PUT.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::gated::GatedStore;
use common::origin::Origin;
use common::*;
use pixmirror::config::{Dur, MirrorRule};

fn derivative_url(s: &TestServer, key: &str, ops: &str) -> String {
    s.url(&format!("{key}?x-oss-process=image/{ops}"))
}

/// Every request the server made to the bucket, by operation.
fn store_requests(s: &TestServer) -> [u64; 3] {
    let m = &s.app.metrics;
    [
        m.store_requests_of("GET"),
        m.store_requests_of("HEAD"),
        m.store_requests_of("PUT"),
    ]
}

fn sync_writes(env: &Env) -> pixmirror::config::Config {
    let mut c = env.config();
    c.derivatives.write = pixmirror::config::WriteMode::Sync;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_hits_inside_revalidate_after_ask_the_bucket_nothing() {
    let env = Env::new(Backend::Fs, "recent").await;
    let s = TestServer::start(sync_writes(&env)).await;
    let url = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_120");
    assert_eq!(get(&url).await.cache(), "processed");
    let before = store_requests(&s);
    for _ in 0..5 {
        assert_eq!(get(&url).await.cache(), "memory");
    }
    assert_eq!(
        store_requests(&s),
        before,
        "no GET, HEAD or PUT for 5 L1 hits"
    );
    s.stop().await;

    // With revalidate_after = 0 every hit costs one HEAD (the count can move).
    let mut cfg = sync_writes(&env);
    cfg.derivatives.revalidate_after = Dur(Duration::ZERO);
    let s = TestServer::start(cfg).await;
    let url = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_120");
    assert_eq!(get(&url).await.cache(), "store");
    let [g, h, p] = store_requests(&s);
    for _ in 0..3 {
        assert_eq!(get(&url).await.cache(), "memory");
    }
    assert_eq!(store_requests(&s), [g, h + 3, p], "one HEAD per hit");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_requests_are_304_without_fetching_or_processing() {
    let env = Env::new(Backend::Fs, "inm").await;
    let s = TestServer::start(sync_writes(&env)).await;
    let key = env.key("dragonfly.jpg");
    let first = get(&derivative_url(&s, &key, "resize,w_90/format,png")).await;
    assert_eq!(first.status, 200);
    let etag = first.header("etag").to_string();
    let original_etag = get(&s.url(&key)).await.header("etag").to_string();
    s.stop().await;

    // A new instance: nothing in L1, the ETag follows from one HEAD.
    let s = TestServer::start(sync_writes(&env)).await;
    let url = derivative_url(&s, &key, "resize,w_90/format,png");
    let r = request("GET", &url, &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), etag);
    assert!(r.body.is_empty());
    assert_eq!(s.processed(), 0, "nothing processed");
    assert_eq!(store_requests(&s), [0, 1, 0], "one HEAD, no GET");
    let r = request("GET", &s.url(&key), &[("if-none-match", &original_etag)]).await;
    assert_eq!(r.status, 304, "the original too");
    assert_eq!(store_requests(&s), [0, 1, 0], "its ETag was known");
    // A stale ETag is a full answer.
    let r = request("GET", &url, &[("if-none-match", "\"other\"")]).await;
    assert_eq!((r.status, r.cache()), (200, "store"));
    assert_eq!(r.header("etag"), etag);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_hit_checks_the_original_while_reading_the_derivative() {
    let env = Env::new(Backend::Fs, "join").await;
    let s = TestServer::start(sync_writes(&env)).await;
    let key = env.key("sunset.jpg");
    assert_eq!(
        get(&derivative_url(&s, &key, "resize,w_70")).await.cache(),
        "processed"
    );
    s.stop().await;

    // Reads are held at the gate: the HEAD of the original must not wait for them.
    let gated = GatedStore::reads_held(env.store.clone());
    let s = TestServer::start_with_store(sync_writes(&env), gated.clone()).await;
    let url = derivative_url(&s, &key, "resize,w_70");
    let pending = tokio::spawn(async move { get(&url).await });
    gated.wait_for_waiting_gets(1).await;
    let mut heads = 0;
    for _ in 0..5000 {
        heads = s.app.metrics.store_requests_of("HEAD");
        if heads >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(
        heads, 1,
        "the original was checked while the derivative GET was held"
    );
    gated.gets.add_permits(100);
    let r = pending.await.expect("join");
    assert_eq!((r.status, r.cache(), r.dims()), (200, "store", (70, 47)));
    assert_eq!(s.processed(), 0);
    let _: Arc<GatedStore> = gated;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_auto_answer_varies_by_accept() {
    let env = Env::new(Backend::Fs, "vary").await;
    let key = env.key("dragonfly.jpg");
    let s = TestServer::start(sync_writes(&env)).await;
    let any = [("accept", "*/*")];
    let webp = [("accept", "image/webp,*/*")];
    // `format,auto` alone that resolves to the source format: the original, varying.
    let bare = s.url(&format!("{key}?x-oss-process=image/format,auto"));
    for expect in ["store", "memory"] {
        let r = request("GET", &bare, &any).await;
        assert_eq!((r.status, r.cache()), (200, expect));
        assert_eq!(r.header("vary"), "Accept", "{expect}");
        assert_eq!(r.header("content-type"), "image/jpeg");
    }
    let url = derivative_url(&s, &key, "resize,w_64/format,auto");
    for (accept, expect, ct) in [
        (&webp, "processed", "image/webp"),
        (&webp, "memory", "image/webp"),
        (&any, "processed", "image/jpeg"),
        (&any, "memory", "image/jpeg"),
    ] {
        let r = request("GET", &url, accept).await;
        assert_eq!(
            (r.status, r.cache(), r.header("content-type")),
            (200, expect, ct)
        );
        assert_eq!(r.header("vary"), "Accept", "{expect} {ct}");
    }
    let etag = request("GET", &url, &webp).await.header("etag").to_string();
    s.stop().await;
    let s = TestServer::start(sync_writes(&env)).await;
    let url = derivative_url(&s, &key, "resize,w_64/format,auto");
    let r = request("GET", &url, &webp).await;
    assert_eq!((r.cache(), r.header("vary")), ("store", "Accept"));
    let inm = [("accept", "image/webp"), ("if-none-match", etag.as_str())];
    let r = request("GET", &url, &inm).await;
    assert_eq!((r.status, r.header("vary")), (304, "Accept"));
    let r = request("HEAD", &url, &webp).await;
    assert_eq!((r.status, r.header("vary")), (200, "Accept"));
    // Without `auto` nothing varies.
    let r = get(&derivative_url(&s, &key, "resize,w_64/format,webp")).await;
    assert_eq!(r.header("vary"), "");
    s.stop().await;
}

fn mirror_rule(prefix: &str, origin: String, store: bool) -> MirrorRule {
    MirrorRule {
        prefix: Some(prefix.to_string()),
        origin: Some(origin),
        store,
        retries: 0,
        timeout: Dur(Duration::from_secs(5)),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_originals_need_no_head_after_their_put() {
    let env = Env::new(Backend::Fs, "mput").await;
    let o = Origin::start().await;
    let p = format!("{}/m/", env.prefix);
    let mut cfg = sync_writes(&env);
    cfg.mirror.rules = vec![mirror_rule(&p, o.template("render"), true)];
    cfg.mirror.allow_private_networks = true;
    let s = TestServer::start(cfg).await;
    let key = format!("{p}a.jpg");
    let first = get(&s.url(&key)).await;
    assert_eq!((first.status, first.cache()), (200, "mirrored"));
    assert_eq!(
        store_requests(&s),
        [1, 1, 1],
        "GET (missing), the flight's HEAD (stored meanwhile?), PUT; no HEAD after the PUT"
    );
    // The bucket's ETag came from the PUT: the derivative checks against it
    // without asking again, and a new instance's HEAD agrees.
    let r = get(&derivative_url(&s, &key, "resize,w_50")).await;
    assert_eq!((r.status, r.cache()), (200, "processed"));
    assert_eq!(store_requests(&s)[1], 1, "no HEAD since");
    let head = request("HEAD", &s.url(&key), &[]).await;
    assert_eq!(head.header("etag"), first.header("etag"));
    assert_eq!(o.total_hits(), 1);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derivatives_of_unstored_mirrored_originals_stay_in_l1() {
    // Review finding: with `store = false` the HEAD of the original answered 404
    // on every hit, so the derivative was evicted and rendered again each time.
    let env = Env::new(Backend::Fs, "proxypass").await;
    let o = Origin::start().await;
    let p = format!("{}/pp/", env.prefix);
    let mut cfg = sync_writes(&env);
    cfg.mirror.rules = vec![mirror_rule(&p, o.template("render"), false)];
    cfg.mirror.allow_private_networks = true;
    cfg.derivatives.revalidate_after = Dur(Duration::ZERO);
    let s = TestServer::start(cfg).await;
    let url = derivative_url(&s, &format!("{p}b.jpg"), "resize,w_40");
    assert_eq!(get(&url).await.cache(), "mirrored");
    for _ in 0..3 {
        let r = get(&url).await;
        assert_eq!((r.status, r.cache(), r.dims().0), (200, "memory", 40));
    }
    assert_eq!(s.processed(), 1);
    assert_eq!(s.mirror_fetches(), 1);
    assert!(!env.exists(&format!("{p}b.jpg")).await, "never stored");
    s.stop().await;
}
