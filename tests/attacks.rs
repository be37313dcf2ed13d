//! The published attacks on image proxies, each against a running server
//! (issue 21, item 6). Each test either failed before its fix or passed and
//! stays as a guard; the note in each says which.

mod common;

use common::origin::Origin;
use common::{get, put, Backend, Env, TestServer};

const KEY_HEX: &str = "0123456789abcdef0123456789abcdef";

fn message(r: &common::Resp) -> String {
    r.json()["message"].as_str().unwrap_or("").to_string()
}

fn sign(path: &str, process: Option<&str>) -> String {
    let msg = pixmirror::signing::message(path, process, None);
    pixmirror::signing::sign(KEY_HEX, &msg).expect("sign")
}

/// A signature checks one thing and the request uses another (the shape of a
/// published thumbor HMAC bypass, where the signature was stripped from the
/// URL by a replace-all before checking). Before: a signed URL of an original
/// took an appended COS/Qiniu process (`&imageMogr2/...`) unsigned, and a
/// second `x-pm-signature` was ignored; both are refused now (403). A process
/// in any grammar is signed by its raw value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_covers_exactly_what_is_served() {
    let env = Env::new(Backend::Fs, "sigattack").await;
    let mut cfg = env.config();
    cfg.signing.required = true;
    cfg.signing.keys = vec![KEY_HEX.into()];
    let s = TestServer::start(cfg).await;
    let path = format!("/{}", env.key("sunset.jpg"));
    let signed = sign(&path, None);
    let ok = get(&s.url(&format!("{path}?x-pm-signature={signed}"))).await;
    assert_eq!((ok.status, ok.cache()), (200, "store"));
    let bad = "AAAA";
    for q in [
        // An unsigned process rides on the original's signature.
        format!("x-pm-signature={signed}&imageMogr2/thumbnail/40x"),
        format!("imageView2/2/w/40&x-pm-signature={signed}"),
        // The signature twice: one checked, the other ignored.
        format!("x-pm-signature={signed}&x-pm-signature={bad}"),
        format!("x-pm-signature={bad}&x-pm-signature={signed}"),
        // The expiry twice.
        format!("x-pm-expires=1&x-pm-expires=99999999999&x-pm-signature={signed}"),
    ] {
        let r = get(&s.url(&format!("{path}?{q}"))).await;
        assert_eq!((r.status, r.code().as_str()), (403, "AccessDenied"), "{q}");
    }
    // A COS process is signed like an OSS one, by its value as sent.
    let cos = "imageMogr2/thumbnail/40x";
    let sig = sign(&path, Some(cos));
    let r = get(&s.url(&format!("{path}?{cos}&x-pm-signature={sig}"))).await;
    assert_eq!((r.status, r.dims().0), (200, 40), "{}", message(&r));
    let r = get(&s.url(&format!(
        "{path}?imageMogr2/thumbnail/41x&x-pm-signature={sig}"
    )))
    .await;
    assert_eq!(r.status, 403);
    s.stop().await;
}

/// A path decoded after it was validated (the shape of a published thumbor
/// path traversal): `%252e%252e` is decoded once, to the key `%2e%2e/...`,
/// never twice into `..`. Passed before; stays as a guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_is_decoded_once() {
    let env = Env::new(Backend::Fs, "decodeonce").await;
    let s = TestServer::start(env.config()).await;
    for path in [
        "%252e%252e/%252e%252e/etc/passwd",
        "a/%252e%252e/%252e%252e/%252e%252e/etc/passwd",
        "%252e%252e%252fetc%252fpasswd?x-oss-process=image/resize,w_10",
        "a%252f..%252f..%252fetc/passwd",
    ] {
        let r = get(&s.url(path)).await;
        assert!(r.status == 404 || r.status == 400, "{path}: {}", r.status);
        assert!(!r.body.windows(5).any(|w| w == b"root:"), "{path}");
    }
    s.stop().await;
}

/// A mirror redirect to a loopback or unspecified address in every spelling
/// (imgproxy's published `0.0.0.0` bypass; IPv4-mapped IPv6; decimal and
/// octal IPv4), each host even allowed by name: refused by the address guard
/// (502), the target never reached. Passed before; stays as a guard. DNS
/// rebinding (a name that resolves public, then loopback) is the unit test
/// `mirror::guard::a_rebinding_name_is_refused_on_the_lookup_that_would_reach_loopback`:
/// the guard checks the addresses the connector is about to connect to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_to_private_addresses_in_every_spelling_are_refused() {
    let env = Env::new(Backend::Fs, "ssrf").await;
    let o = Origin::start().await;
    let target = Origin::start().await;
    let port = target.addr.port();
    let spellings = [
        format!("0.0.0.0:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("2130706433:{port}"),
        format!("0177.0.0.1:{port}"),
        format!("[::]:{port}"),
        format!("127.1:{port}"),
    ];
    let mut cfg = env.config();
    cfg.mirror.allow_private_networks = false;
    cfg.mirror.rules = spellings
        .iter()
        .enumerate()
        .map(|(i, authority)| pixmirror::config::MirrorRule {
            prefix: Some(format!("{}/r{i}/", env.prefix)),
            origin: Some(o.template(&format!("goto/{authority}"))),
            allowed_hosts: vec![authority.clone()],
            retries: 0,
            ..Default::default()
        })
        .collect();
    let s = TestServer::start(cfg).await;
    for (i, authority) in spellings.iter().enumerate() {
        let r = get(&s.url(&format!("{}/r{i}/a.jpg", env.prefix))).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (502, "MirrorFailed"),
            "{authority}: {}",
            message(&r)
        );
    }
    assert_eq!(target.total_hits(), 0, "no private address was reached");
    s.stop().await;
}

/// Files made to attack decoders and libvips' untrusted loaders
/// (`tests/fixtures/hostile/`): a 5 KB JPEG declaring 64000 × 64000, a PNG
/// declaring 100000 × 100000, ICO and PSD (ImageMagick), PDF (poppler), an SVG
/// with an external entity and one whose `xlink:href` names local files: each
/// 422, quickly, never a file's content in the answer. Passed before; stays as a
/// guard (and seeds the pipeline fuzz target).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_corpus_is_refused() {
    let env = Env::new(Backend::Fs, "hostilecorpus").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/hostile")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    names.sort();
    assert!(names.len() >= 7, "{names:?}");
    for n in &names {
        let bytes = std::fs::read(dir.join(n)).expect("read");
        put(&env.store, &env.key(n), bytes, "application/octet-stream").await;
    }
    let s = TestServer::start(env.config()).await;
    for n in &names {
        for ops in ["resize,w_100", "format,png", "info"] {
            let started = std::time::Instant::now();
            let r = get(&s.url(&format!("{}?x-oss-process=image/{ops}", env.key(n)))).await;
            assert_eq!(
                (r.status, r.code().as_str()),
                (422, "UnprocessableImage"),
                "{n} {ops}: {}",
                message(&r)
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(2), "{n}");
            assert!(!r.body.windows(5).any(|w| w == b"root:"), "{n}");
        }
    }
    s.stop().await;
}

/// The largest output and the heaviest filter on the largest source the
/// limits allow: `resize,p_1000,limit_0` is refused from the plan's geometry
/// before anything is decoded (400: 16384 a side, `max_output_pixels`), and `blur,r_50,s_50`
/// ends at `process.timeout` (504) or finishes inside it; either way the slot
/// is free after. Passed before; stays as a guard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_allowed_work_is_bounded() {
    let env = Env::new(Backend::Fs, "largest").await;
    let big = common::encode(&common::quadrants(2000, 2000), image::ImageFormat::Jpeg);
    put(&env.store, &env.key("big.jpg"), big, "image/jpeg").await;
    let mut cfg = env.config();
    cfg.process.max_source_pixels = 4_000_000;
    cfg.process.workers = 1;
    cfg.process.timeout = pixmirror::config::Dur(std::time::Duration::from_millis(300));
    let s = TestServer::start(cfg).await;
    let url = |ops: &str| s.url(&format!("{}?x-oss-process=image/{ops}", env.key("big.jpg")));
    let r = get(&url("resize,p_1000,limit_0")).await;
    assert_eq!((r.status, r.code().as_str()), (400, "InvalidArgument"));
    let m = message(&r);
    assert!(
        m.contains("max_output_pixels") || m.contains("16384"),
        "{m}"
    );
    assert_eq!(s.processed(), 0, "refused before decoding");
    let started = std::time::Instant::now();
    let r = get(&url("blur,r_50,s_50/format,png")).await;
    assert!(r.status == 504 || r.status == 200, "{}", r.status);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(
        get(&url("resize,w_10")).await.status,
        200,
        "the slot is free"
    );
    s.stop().await;
}
