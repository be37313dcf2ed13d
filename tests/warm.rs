//! `pixmirror warm` (the real binary) on generated logs: a combined log, a
//! gzip'd CloudFront log and a URL list. Derivatives land in the bucket with
//! the right size; a second run renders nothing; a run over part of the log
//! followed by one over all of it renders each derivative once; failures are
//! counted by code.

mod common;

use std::io::Write;
use std::path::Path;

use common::{Backend, Env};

/// Run `pixmirror warm` and return its summary line.
fn warm(conf: &Path, files: &[&Path]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .arg("warm")
        .arg("--config")
        .arg(conf)
        .args(files)
        .output()
        .expect("run warm");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "warm failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim().to_string()
}

/// The number after `name ` in a summary line.
fn count(summary: &str, name: &str) -> u64 {
    let at = summary
        .find(&format!("{name} "))
        .unwrap_or_else(|| panic!("no `{name}` in {summary}"));
    summary[at + name.len() + 1..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{name}` in {summary}"))
}

fn combined(target: &str) -> String {
    format!("203.0.113.7 - - [24/Nov/2026:10:00:00 +0000] \"GET {target} HTTP/1.1\" 200 1024 \"-\" \"Mozilla/5.0\"\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_renders_each_logged_derivative_once() {
    let env = Env::new(Backend::Fs, "warm").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = dir.path().join("pixmirror.toml");
    env.write_config(&conf, "[process]\nauto_formats = [\"webp\"]\n");
    let k = env.key("sunset.jpg"); // 800x533
    let g = env.key("gulp.png");
    // Twelve derivatives, several logged many times, plus originals, a 404,
    // a 400 and lines that are not requests.
    let mut log = String::new();
    for w in [100, 200, 300, 400, 500, 600] {
        for _ in 0..(w / 100) {
            log.push_str(&combined(&format!("/{k}?x-oss-process=image/resize,w_{w}")));
        }
        log.push_str(&combined(&format!("/{k}")));
    }
    log.push_str(&combined(&format!(
        "/{}?x-oss-process=image/resize,w_10",
        env.key("nope.jpg")
    )));
    log.push_str(&combined(&format!("/{k}?x-oss-process=image/resize,w_0")));
    log.push_str("not a log line\n");
    let access = dir.path().join("access.log");
    std::fs::write(&access, &log).expect("log");
    // CloudFront, gzip'd: `format,auto` names two derivatives (webp, and jpg).
    let mut cf = String::from("#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query\n");
    for w in [120, 240] {
        cf.push_str(&format!("2026-11-24\t10:00:00\tLAX1\t512\t192.0.2.1\tGET\td.cloudfront.net\t/{g}\t200\t-\tMozilla\tx-oss-process=image/resize,w_{w}/format,auto\n"));
    }
    let cf_path = dir.path().join("cf.log.gz");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(cf.as_bytes()).expect("gzip");
    std::fs::write(&cf_path, gz.finish().expect("gzip")).expect("cf log");
    // A URL list, COS grammar and a path form.
    let list = dir.path().join("urls.txt");
    std::fs::write(
        &list,
        format!("https://img.example.com/{k}?imageMogr2/thumbnail/150x\n/{k}__op__resize,w_250\n"),
    )
    .expect("list");

    // A first run over the access log only (as if stopped there)...
    let first = warm(&conf, &[&access]);
    assert_eq!(count(&first, "rendered"), 6, "{first}");
    assert_eq!(count(&first, "failed"), 2, "{first}");
    assert!(
        first.contains("NoSuchKey 1") && first.contains("InvalidArgument 1"),
        "{first}"
    );
    // ... then over everything: only the new ones are rendered.
    let second = warm(&conf, &[&access, &cf_path, &list]);
    assert_eq!(count(&second, "rendered"), 6, "{second}");
    assert_eq!(count(&second, "skipped"), 6, "{second}");
    assert!(
        second.contains("12 URLs with processing (13 derivatives)"),
        "{second}"
    );
    // A third: nothing left to do.
    let third = warm(&conf, &[&access, &cf_path, &list]);
    assert_eq!(count(&third, "rendered"), 0, "{third}");
    assert_eq!(count(&third, "skipped"), 12, "{third}");
    // The derivatives are in the bucket, with the requested size.
    let stored = env.store.list(&format!("{k}__op__")).await.expect("list");
    assert_eq!(stored.len(), 8, "{stored:?}");
    let obj = env
        .store
        .get(&format!("{k}__op__resize,w_300"))
        .await
        .expect("stored derivative");
    let bytes = pixmirror::storage::read_limited(obj.body, 1 << 24, obj.meta.size as usize)
        .await
        .expect("read");
    let h = pixmirror::process::engine::pipeline::probe(&bytes, u64::MAX, u32::MAX).expect("image");
    assert_eq!((h.width, h.height), (300, 200));
    let gulp = env.store.list(&format!("{g}__op__")).await.expect("list");
    assert_eq!(
        gulp.len(),
        4,
        "webp and source format for two widths: {gulp:?}"
    );
}
