//! Cache tiers (issue 3): derivatives written back to the bucket, L1, coalescing
//! of concurrent misses, revalidation, purge, shutdown drain, failing writes.
//! Counts, not timings.

mod common;

use std::sync::Arc;

use common::gated::GatedStore;
use common::*;

fn derivative_url(s: &TestServer, key: &str, ops: &str) -> String {
    s.url(&format!("{key}?x-oss-process=image/{ops}"))
}

async fn identical_cold_requests(backend: Backend) {
    let env = Env::new(backend, "burst").await;
    let s = TestServer::start(env.config()).await;
    let url = derivative_url(&s, &env.key("dragonfly.jpg"), "resize,w_333/format,webp");
    let rs = burst(vec![url; 50]).await;
    let first = &rs[0].body;
    for r in &rs {
        assert_eq!(r.status, 200);
        assert_eq!(&r.body, first, "every waiter gets the same bytes");
        assert!(
            ["processed", "memory"].contains(&r.cache()),
            "{}",
            r.cache()
        );
    }
    assert_eq!(
        s.processed(),
        1,
        "one libvips run for 50 identical requests"
    );
    assert_eq!(s.store_fetches(), 1, "one source read");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_cold_requests_s3() {
    identical_cold_requests(Backend::S3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_identical_cold_requests_fs() {
    identical_cold_requests(Backend::Fs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_sizes_one_source_read() {
    let env = Env::new(Backend::S3, "sizes").await;
    let s = TestServer::start(env.config()).await;
    let urls: Vec<String> = (0..10)
        .map(|i| derivative_url(&s, &env.key("sunset.jpg"), &format!("resize,w_{}", 100 + i)))
        .collect();
    let rs = burst(urls).await;
    for (i, r) in rs.iter().enumerate() {
        assert_eq!(r.status, 200);
        assert_eq!(r.dims().0, 100 + i as u32);
    }
    assert_eq!(
        s.store_fetches(),
        1,
        "ten derivatives, one read of the original"
    );
    assert_eq!(s.processed(), 10);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reads_the_store_then_memory() {
    let env = Env::new(Backend::S3, "restart").await;
    let key = env.key("dragonfly.jpg");
    let s = TestServer::start(env.config()).await;
    let r = get(&derivative_url(&s, &key, "resize,w_150/format,png")).await;
    assert_eq!((r.status, r.cache()), (200, "processed"));
    let etag = r.header("etag").to_string();
    s.stop().await; // drains the write-back queue
    assert!(
        env.exists(&format!("{key}__op__resize,w_150__op__format,png"))
            .await
    );

    let s = TestServer::start(env.config()).await;
    let r2 = get(&derivative_url(&s, &key, "resize,w_150/format,png")).await;
    assert_eq!((r2.status, r2.cache()), (200, "store"));
    assert_eq!(r2.body, r.body);
    assert_eq!(
        r2.header("etag"),
        etag,
        "the ETag is the same on every tier"
    );
    assert_eq!(r2.header("content-type"), "image/png");
    let r3 = get(&derivative_url(&s, &key, "resize,w_150/format,png")).await;
    assert_eq!((r3.status, r3.cache()), (200, "memory"));
    assert_eq!(s.processed(), 0);
    assert_eq!(s.store_fetches(), 0, "the original was not read");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuploaded_original_is_never_served_stale() {
    let env = Env::new(Backend::S3, "reupload").await;
    let key = env.key("photo.jpg");
    put(&env.store, &key, fixture("dragonfly.jpg"), "image/jpeg").await; // 800x600

    // Every hit asks the bucket (the default trusts an answer for 60 s: see
    // tests/freshness.rs and the README's freshness model).
    let mut cfg = env.config();
    cfg.derivatives.revalidate_after = pixmirror::config::Dur(std::time::Duration::ZERO);
    let s = TestServer::start(cfg.clone()).await;
    let url = derivative_url(&s, &key, "resize,w_100");
    assert_eq!(get(&url).await.dims(), (100, 75));
    assert_eq!(get(&url).await.cache(), "memory");
    assert_eq!(
        get(&s.url(&key)).await.cache(),
        "memory",
        "small originals are kept in L1"
    );
    put(&env.store, &key, fixture("sunset.jpg"), "image/jpeg").await; // 800x533
    let r = get(&url).await;
    assert_eq!(
        (r.dims(), r.cache()),
        ((100, 67), "processed"),
        "L1 hit revalidated"
    );
    let o = get(&s.url(&key)).await;
    assert_eq!(
        o.body.as_ref(),
        fixture("sunset.jpg").as_slice(),
        "the original too"
    );
    s.stop().await;

    // Another instance: the stored derivative is from the second upload; upload a third.
    put(&env.store, &key, fixture("dragonfly.jpg"), "image/jpeg").await;
    let s = TestServer::start(cfg).await;
    let r = get(&derivative_url(&s, &key, "resize,w_100")).await;
    assert_eq!(
        (r.dims(), r.cache()),
        ((100, 75), "processed"),
        "store hit revalidated"
    );
    s.stop().await;

    // revalidate = false trusts the stored derivative (operators purge explicitly).
    put(&env.store, &key, fixture("sunset.jpg"), "image/jpeg").await;
    let mut cfg = env.config();
    cfg.derivatives.revalidate = false;
    let s = TestServer::start(cfg).await;
    let r = get(&derivative_url(&s, &key, "resize,w_100")).await;
    assert_eq!((r.dims(), r.cache()), ((100, 75), "store"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_deletes_derivatives_and_l1() {
    let env = Env::new(Backend::S3, "purge").await;
    let key = env.key("sunset.jpg");
    let s = TestServer::start(env.config()).await;
    for w in [50, 60, 70] {
        assert_eq!(
            get(&derivative_url(&s, &key, &format!("resize,w_{w}")))
                .await
                .status,
            200
        );
    }
    s.stop().await;
    let prefix = format!("{key}__op__");
    assert_eq!(env.store.list(&prefix).await.expect("list").len(), 3);

    let s = TestServer::start(env.config()).await;
    assert_eq!(
        get(&derivative_url(&s, &key, "resize,w_50")).await.cache(),
        "store"
    );
    assert_eq!(
        get(&derivative_url(&s, &key, "resize,w_50")).await.cache(),
        "memory"
    );
    let enc =
        percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC).to_string();
    let r = post(&format!("{}/purge/{enc}", s.admin)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["deleted"], 3);
    assert!(
        env.store.list(&prefix).await.expect("list").is_empty(),
        "gone from the bucket"
    );
    assert!(env.exists(&key).await, "the original stays");
    let r = get(&derivative_url(&s, &key, "resize,w_50")).await;
    assert_eq!(r.cache(), "processed", "gone from L1 too");
    s.stop().await;
}

/// Issue 21, item 5: a purge whose second delete fails deletes the others,
/// says what was and was not deleted, and drops every in-memory copy anyway
/// (before: it returned at the failed delete, and the instance kept serving
/// the purged derivatives from memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_failed_purge_says_what_is_left_and_drops_memory() {
    let env = Env::new(Backend::Fs, "purgehalf").await;
    let gated = Arc::new(GatedStore::new(env.store.clone()));
    gated.puts.add_permits(1000);
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let s = TestServer::start_with_store(cfg, gated.clone()).await;
    let key = env.key("sunset.jpg");
    let widths = [50, 60, 70];
    for w in widths {
        let url = derivative_url(&s, &key, &format!("resize,w_{w}"));
        assert_eq!(get(&url).await.cache(), "processed");
        assert_eq!(get(&url).await.cache(), "memory");
    }
    let prefix = format!("{key}__op__");
    assert_eq!(env.store.list(&prefix).await.expect("list").len(), 3);
    gated.fail_delete(2);
    let enc =
        percent_encoding::utf8_percent_encode(&key, percent_encoding::NON_ALPHANUMERIC).to_string();
    let r = post(&format!("{}/purge/{enc}", s.admin)).await;
    assert_eq!(r.status, 502);
    let left = env.store.list(&prefix).await.expect("list");
    assert_eq!(left.len(), 1, "the other two are deleted");
    let body = r.json();
    let msg = body["message"].as_str().expect("message");
    assert_eq!(body["code"], "StoreError");
    assert!(msg.contains("deleted 2 of 3"), "{msg}");
    assert!(msg.contains(&format!("not deleted: {}", left[0])), "{msg}");
    for w in widths {
        let r = get(&derivative_url(&s, &key, &format!("resize,w_{w}"))).await;
        let stored = left[0].ends_with(&format!("resize,w_{w}"));
        let want = if stored { "store" } else { "processed" };
        assert_eq!(
            (r.status, r.cache()),
            (200, want),
            "w_{w}: none from memory"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_command() {
    let env = Env::new(Backend::Fs, "purgecli").await;
    let key = env.key("sunset.jpg");
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let s = TestServer::start(cfg).await;
    get(&derivative_url(&s, &key, "resize,w_50")).await;
    get(&derivative_url(&s, &key, "rotate,90")).await;
    s.stop().await;
    assert_eq!(
        env.store
            .list(&format!("{key}__op__"))
            .await
            .expect("list")
            .len(),
        2
    );
    let conf = env.root().join("purge.toml");
    env.write_config(&conf, "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(["purge", &key, "--config"])
        .arg(&conf)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("purged 2"));
    assert!(env
        .store
        .list(&format!("{key}__op__"))
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l1_respects_max_item_bytes_and_zero_disables() {
    let env = Env::new(Backend::Fs, "l1").await;
    let mut cfg = env.config();
    cfg.cache.max_item_bytes = pixmirror::config::ByteSize(2_000);
    cfg.derivatives.store = false;
    let s = TestServer::start(cfg).await;
    let small = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_20/format,webp");
    let big = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_400/format,png");
    get(&small).await;
    assert_eq!(get(&small).await.cache(), "memory");
    get(&big).await;
    assert_eq!(
        get(&big).await.cache(),
        "processed",
        "over max_item_bytes: not kept"
    );
    s.stop().await;
    let mut cfg = env.config();
    cfg.cache.memory_bytes = pixmirror::config::ByteSize(0);
    cfg.derivatives.store = false;
    let s = TestServer::start(cfg).await;
    let url = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_20/format,webp");
    get(&url).await;
    assert_eq!(get(&url).await.cache(), "processed");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_store_writes_never_fail_responses() {
    let env = Env::new(Backend::S3, "rowrite").await;
    for write in [
        pixmirror::config::WriteMode::Sync,
        pixmirror::config::WriteMode::Async,
    ] {
        let mut cfg = env.config();
        // A real key that may read the bucket but not write it.
        cfg.storage.s3.access_key_id = Some(common::env("PIXMIRROR_TEST_S3_RO_ACCESS_KEY"));
        cfg.storage.s3.secret_access_key = Some(common::env("PIXMIRROR_TEST_S3_RO_SECRET_KEY"));
        cfg.derivatives.write = write;
        cfg.derivatives.write_attempts = 3;
        let s = TestServer::start(cfg).await;
        let r = get(&derivative_url(
            &s,
            &env.key("sunset.jpg"),
            &format!("resize,w_{}", 90 + write as u32),
        ))
        .await;
        assert_eq!(r.status, 200, "{write:?}");
        assert_eq!(r.cache(), "processed");
        let app = s.app.clone();
        s.stop().await; // async: the drain waits for the retries
        assert_eq!(
            app.metrics.store_writes.with_label_values(&["error"]).get(),
            3,
            "{write:?}: counted and retried"
        );
        assert_eq!(app.metrics.store_writes.with_label_values(&["ok"]).get(), 0);
        assert_eq!(app.metrics.writeback_queue_depth.get(), 0);
    }
}

/// Issue 21, item 8: no write after the shutdown drain. 20 renders wait at
/// the bucket while the server shuts down (its requests cut off after
/// `server.shutdown_timeout`, the queue drained); released after `stop()`
/// returns, they finish and publish, and every write-back is abandoned, none
/// written. (Before: each wrote inline after the drain.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renders_that_outlive_the_drain_write_nothing() {
    let env = Env::new(Backend::Fs, "afterdrain").await;
    let gated = GatedStore::reads_held(env.store.clone());
    let store: pixmirror::storage::DynStore = gated.clone();
    let mut cfg = env.config();
    cfg.server.shutdown_timeout = pixmirror::config::Dur(std::time::Duration::from_millis(300));
    cfg.process.workers = 2;
    let s = TestServer::start_with_store(cfg, store).await;
    let key = env.key("sunset.jpg");
    let urls: Vec<String> = (0..20)
        .map(|i| derivative_url(&s, &key, &format!("resize,w_{}", 30 + i)))
        .collect();
    let clients = spawn_gets(urls);
    // Each render reads its stored derivative (and the original) at the gate.
    gated.wait_for_waiting_gets(20).await;
    let app = s.app.clone();
    s.stop().await;
    gated.gate_gets(false);
    gated.gets.add_permits(1000);
    let m = &app.metrics;
    let mut waited = 0;
    while m.writeback_abandoned.get() < 20 && waited < 10_000 {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        waited += 10;
    }
    assert_eq!(
        m.writeback_abandoned.get(),
        20,
        "every write-back after the drain"
    );
    assert_eq!(
        m.store_requests_of("PUT"),
        0,
        "nothing written after the drain"
    );
    let prefix = format!("{key}__op__");
    assert!(env.store.list(&prefix).await.expect("list").is_empty());
    for c in clients {
        let _ = c.await; // cut off by the shutdown
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queued_write_backs() {
    let env = Env::new(Backend::S3, "drain").await;
    let gated = GatedStore::new(env.store.clone());
    let gate = gated.puts.clone();
    let store: pixmirror::storage::DynStore = Arc::new(gated);
    let s = TestServer::start_with_store(env.config(), store).await;
    let key = env.key("sunset.jpg");
    let urls: Vec<String> = (0..12)
        .map(|i| derivative_url(&s, &key, &format!("resize,w_{}", 40 + i)))
        .collect();
    for r in burst(urls).await {
        assert_eq!(r.status, 200, "responses do not wait for the write-back");
    }
    let app = s.app.clone();
    assert_eq!(
        app.metrics.writeback_queue_depth.get(),
        12,
        "all twelve are queued"
    );
    let mut stopping = tokio::spawn(s.stop());
    // While every PUT is held at the gate, shutdown cannot finish: a drain that
    // did not wait would end here at once. (Correct code never finishes inside
    // the window, so the window's length cannot make this flaky.)
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut stopping).await;
    assert!(early.is_err(), "shutdown waits for the queued write-backs");
    gate.add_permits(1000);
    stopping.await.expect("stop");
    assert_eq!(app.metrics.writeback_queue_depth.get(), 0);
    assert_eq!(
        app.metrics.store_writes.with_label_values(&["ok"]).get(),
        12
    );
    let stored = env.store.list(&format!("{key}__op__")).await.expect("list");
    assert_eq!(stored.len(), 12, "every queued write landed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_write_backs_of_the_binary() {
    let env = Env::new(Backend::S3, "sigterm").await;
    let conf = env.root().join("pixmirror.toml");
    std::fs::write(
        &conf,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n[storage]\nkind = \"s3\"\nbucket = \"{}\"\nendpoint = \"{}\"\nregion = \"garage\"\nforce_path_style = true\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            common::env("PIXMIRROR_TEST_S3_BUCKET"),
            common::env("PIXMIRROR_TEST_S3_ENDPOINT"),
            common::env("PIXMIRROR_TEST_S3_ACCESS_KEY"),
            common::env("PIXMIRROR_TEST_S3_SECRET_KEY"),
        ),
    )
    .expect("write");
    let (mut child, base, mut lines) = common::spawn_binary(&conf).await;
    let key = env.key("dragonfly.jpg");
    let urls: Vec<String> = (0..20)
        .map(|i| {
            format!(
                "{base}/{key}?x-oss-process=image/resize,w_{}/format,webp",
                30 + i
            )
        })
        .collect();
    for r in burst(urls).await {
        assert_eq!(r.status, 200);
    }
    unsafe { libc::kill(child.id().expect("pid") as i32, libc::SIGTERM) };
    let mut log = String::new();
    while let Ok(Some(line)) = lines.next_line().await {
        log.push_str(&line);
        log.push('\n');
    }
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("wait");
    assert!(status.success(), "{log}");
    assert!(log.contains("draining the write-back queue"), "{log}");
    let stored = env.store.list(&format!("{key}__op__")).await.expect("list");
    assert_eq!(
        stored.len(),
        20,
        "every write-back landed before exit\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_disconnect_does_not_cancel_shared_work() {
    let env = Env::new(Backend::Fs, "disconnect").await;
    let gated = GatedStore::reads_held(env.store.clone());
    let store: pixmirror::storage::DynStore = gated.clone();
    let s = TestServer::start_with_store(env.config(), store).await;
    let url = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_123");
    // The leader's client: its request reaches the store (a get waits at the gate)...
    let leader = spawn_gets([url.clone()]).remove(0);
    gated.wait_for_waiting_gets(1).await;
    // ...a second client joins the shared work...
    let follower = spawn_gets([url.clone()]).remove(0);
    wait_until(|| s.app.metrics.coalesced.get() >= 1).await;
    // ...and the leader's client goes away.
    leader.abort();
    let _ = leader.await;
    gated.gets.add_permits(1000);
    let r = follower.await.expect("follower");
    assert_eq!((r.status, r.cache()), (200, "processed"));
    assert_eq!(r.dims().0, 123);
    assert_eq!(
        s.processed(),
        1,
        "the work went on without its first client"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_leader_fails_its_waiters_once() {
    let env = Env::new(Backend::Fs, "leadfail").await;
    let gated = GatedStore::reads_held(env.store.clone());
    gated.fail_gets(true);
    let store: pixmirror::storage::DynStore = gated.clone();
    let s = TestServer::start_with_store(env.config(), store).await;
    let url = derivative_url(&s, &env.key("sunset.jpg"), "resize,w_77");
    let tasks = spawn_gets(vec![url; 10]);
    gated.wait_for_waiting_gets(1).await;
    wait_until(|| s.app.metrics.coalesced.get() >= 9).await;
    gated.gets.add_permits(1000);
    for t in tasks {
        let r = t.await.expect("task");
        assert_eq!((r.status, r.code().as_str()), (502, "StoreError"));
    }
    assert_eq!(
        gated.get_calls(),
        1,
        "one store read for ten requests, no retry storm"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_write_back_queue_writes_inline_never_drops() {
    let env = Env::new(Backend::Fs, "qfull").await;
    let gated = GatedStore::new(env.store.clone());
    let gate = gated.puts.clone();
    let store: pixmirror::storage::DynStore = Arc::new(gated);
    let mut cfg = env.config();
    cfg.derivatives.queue = 1;
    let s = TestServer::start_with_store(cfg, store).await;
    let key = env.key("sunset.jpg");
    // Writes are held at the gate: the worker absorbs at most 4 running + 1 waiting
    // + 1 queued, so at least 4 of these 10 must be written inline by their request.
    let tasks =
        spawn_gets((0..10).map(|i| derivative_url(&s, &key, &format!("resize,w_{}", 60 + i))));
    let app = s.app.clone();
    wait_until(|| app.metrics.writeback_inline.get() >= 4).await;
    let pending = tasks.iter().filter(|t| !t.is_finished()).count();
    assert!(
        pending >= 4,
        "requests writing inline wait for their write ({pending} pending)"
    );
    gate.add_permits(1000);
    for t in tasks {
        assert_eq!(t.await.expect("task").status, 200);
    }
    s.stop().await;
    assert_eq!(
        app.metrics.store_writes.with_label_values(&["ok"]).get(),
        10
    );
    assert_eq!(
        env.store
            .list(&format!("{key}__op__"))
            .await
            .expect("list")
            .len(),
        10,
        "none dropped"
    );
}

/// Wait (bounded) for a condition that another task makes true.
async fn wait_until(cond: impl Fn() -> bool) {
    for _ in 0..5000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    panic!("condition not reached in 5 s");
}

/// Issue 9, item 14: a leader that panics gives itself and its waiters 500
/// and releases the key; the next caller starts fresh work. Before, the key
/// stayed in flight with the dead result, and every later request for it got
/// 500 until restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_leader_releases_the_key() {
    use pixmirror::cache::Coalescer;
    let joins = prometheus::IntCounter::new("j", "j").expect("counter");
    let c: std::sync::Arc<Coalescer<u32>> =
        Coalescer::counting(joins.clone(), std::time::Duration::from_secs(30));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let leader = {
        let c = c.clone();
        tokio::spawn(async move {
            c.run("k", move || async move {
                let _ = rx.await;
                panic!("a bug in the leader");
            })
            .await
        })
    };
    while !c.in_flight("k") {
        tokio::task::yield_now().await;
    }
    let waiter = {
        let c = c.clone();
        tokio::spawn(async move { c.run("k", || async { Ok(7) }).await })
    };
    while joins.get() < 1 {
        tokio::task::yield_now().await;
    }
    let _ = tx.send(());
    for (name, task) in [("leader", leader), ("waiter", waiter)] {
        let (r, _) = task.await.expect("the caller itself does not panic");
        let e = r.expect_err(name);
        assert_eq!(e.status().as_u16(), 500, "{name}: {e}");
    }
    assert!(!c.in_flight("k"), "the key is released");
    let (r, joined) = c.run("k", || async { Ok(8) }).await;
    assert_eq!((r.expect("fresh work"), joined), (8, false));
}

/// A caller waits at most the coalescer's limit for shared work (504), and the
/// work itself goes on for whoever comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_shared_work_is_bounded() {
    use pixmirror::cache::Coalescer;
    let joins = prometheus::IntCounter::new("j", "j").expect("counter");
    let c: std::sync::Arc<Coalescer<u32>> =
        Coalescer::counting(joins, std::time::Duration::from_millis(50));
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (r, _) = c
        .run("stuck", move || async move {
            let _ = rx.await;
            Ok(1)
        })
        .await;
    let e = r.expect_err("timed out");
    assert_eq!((e.status().as_u16(), e.code()), (504, "Timeout"));
    assert!(c.in_flight("stuck"), "the work itself was not cancelled");
}

/// Issue 9, item 14: a purge wins over a render that started before it. The
/// render's callers get their answer, but nothing it made comes back into L1
/// or the bucket, and a request after the purge starts a new render.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn purge_wins_over_renders_in_flight() {
    let env = Env::new(Backend::Fs, "purgewins").await;
    let gated = GatedStore::reads_held(env.store.clone());
    let store: pixmirror::storage::DynStore = gated.clone();
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let s = TestServer::start_with_store(cfg, store).await;
    let key = env.key("sunset.jpg");
    let url = derivative_url(&s, &key, "resize,w_61");
    // A render starts and waits at the bucket.
    let before = spawn_gets(vec![url.clone()]);
    gated.wait_for_waiting_gets(1).await;
    assert_eq!(s.app.purge(&key).await.expect("purge"), 0);
    // After the purge: a new render, not the one in flight.
    let after = spawn_gets(vec![url.clone()]);
    gated.wait_for_waiting_gets(2).await;
    assert_eq!(
        s.app.metrics.coalesced.get(),
        0,
        "nobody joined the purged render"
    );
    gated.gets.add_permits(1000);
    for t in before {
        let r = t.await.expect("task");
        assert_eq!(
            (r.status, r.cache()),
            (200, "processed"),
            "its caller is answered"
        );
    }
    for t in after {
        assert_eq!(t.await.expect("task").status, 200);
    }
    // Exactly one write-back: the render that started after the purge.
    let m = &s.app.metrics;
    assert_eq!(m.store_writes.with_label_values(&["ok"]).get(), 1);
    assert_eq!(m.store_requests_of("PUT"), 1);
    s.stop().await;
}
