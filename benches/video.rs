//! Video snapshots: latency and bytes read per snapshot, pixmirror (ranged
//! reads of the bucket, one frame decoded in-process) against downloading
//! the whole file and running the `ffmpeg` command on it (what a handler that
//! shells out to ffmpeg does), at t_0, mid-file and past the end, for files
//! with the index first (faststart) and last.
//!
//!     cargo bench --bench video [-- DIR [ROUNDS]]
//!
//! DIR holds the videos (default `~/.cache/pixmirror-bench/video`, where the
//! issue's two fixtures are written with ffmpeg when missing: 30 s 1280x720
//! and 60 s 1920x1080, H.264, a keyframe every 2 s, each index-first and
//! index-last). The bucket is Garage when `PIXMIRROR_TEST_S3_*` is set (as
//! `make test` sets it; `tests/support/garage.sh start DIR` prints them),
//! else a folder. Each pixmirror round asks a new width (800, 801, ...) so
//! that no round is served from memory. Under `cargo test` it runs one small
//! video once on a folder, as a smoke test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use pixmirror::config::{Config, StorageKind};
use pixmirror::storage::PutObject;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rounds: usize =
        args.get(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(if full { 3 } else { 1 });
    let scratch = tempfile::tempdir().expect("tmp");
    let videos = if full {
        let dir = args.first().map(PathBuf::from).unwrap_or_else(default_dir);
        fixtures(&dir)
    } else {
        let p = scratch.path().join("smoke.mp4");
        ffmpeg_encode("testsrc2=s=960x540:r=25:d=2", true, &p);
        vec![(p, 2_000)]
    };
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(run(&videos, rounds, scratch.path(), full));
}

fn default_dir() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/pixmirror-bench/video")
}

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg (Debian's; `make test` installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ffmpeg_encode(source: &str, faststart: bool, out: &Path) {
    let o = out.to_string_lossy().to_string();
    let mut a = vec![
        "-f", "lavfi", "-i", source, "-c:v", "libx264", "-preset", "veryfast",
    ];
    a.extend(["-g", "60", "-pix_fmt", "yuv420p"]);
    if faststart {
        a.extend(["-movflags", "+faststart"]);
    }
    a.push(&o);
    ffmpeg(&a);
}

/// The fixtures, written once: (path, duration in ms).
fn fixtures(dir: &Path) -> Vec<(PathBuf, u64)> {
    std::fs::create_dir_all(dir).expect("dir");
    let mut out = Vec::new();
    for (name, src, ms) in [
        ("hd30", "testsrc2=s=1280x720:r=30:d=30", 30_000),
        ("fhd60", "testsrc2=s=1920x1080:r=30:d=60", 60_000),
    ] {
        for (suffix, faststart) in [("", true), ("-end", false)] {
            let p = dir.join(format!("{name}{suffix}.mp4"));
            if !p.exists() {
                eprintln!("writing {} with ffmpeg", p.display());
                ffmpeg_encode(src, faststart, &p);
            }
            out.push((p, ms));
        }
    }
    out
}

fn config(scratch: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().expect("addr");
    c.server.admin_listen = "127.0.0.1:0".parse().expect("addr");
    c.derivatives.store = false;
    match std::env::var("PIXMIRROR_TEST_S3_ENDPOINT") {
        Ok(endpoint) => {
            let var = |n: &str| std::env::var(n).unwrap_or_default();
            c.storage.kind = StorageKind::S3;
            c.storage.s3.bucket = var("PIXMIRROR_TEST_S3_BUCKET");
            c.storage.s3.endpoint = Some(endpoint);
            c.storage.s3.region = Some(var("PIXMIRROR_TEST_S3_REGION"));
            c.storage.s3.force_path_style = true;
            c.storage.s3.access_key_id = Some(var("PIXMIRROR_TEST_S3_ACCESS_KEY"));
            c.storage.s3.secret_access_key = Some(var("PIXMIRROR_TEST_S3_SECRET_KEY"));
        }
        Err(_) => {
            c.storage.kind = StorageKind::Fs;
            c.storage.root = scratch.join("bucket");
        }
    }
    c
}

async fn get(url: &str) -> (u16, Bytes) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let resp = client.get(url.parse().expect("url")).await.expect("GET");
    let status = resp.status().as_u16();
    (
        status,
        resp.into_body().collect().await.expect("body").to_bytes(),
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn run(videos: &[(PathBuf, u64)], rounds: usize, scratch: &Path, full: bool) {
    let cfg = config(scratch);
    let backend = format!("{:?}", cfg.storage.kind).to_lowercase();
    let store = pixmirror::storage::open::from_config(&cfg.storage)
        .await
        .expect("store");
    let server = pixmirror::http::Server::bind(cfg).await.expect("bind");
    let (base, app) = (format!("http://{}", server.addr), server.app.clone());
    tokio::spawn(server.run(std::future::pending()));
    println!("bucket: {backend}; {rounds} round(s) each; medians");
    println!(
        "{:<16} {:>8} {:>11} {:>13} {:>7} {:>11} {:>13} {:>7}",
        "video",
        "t (ms)",
        "pixmirror",
        "bytes read",
        "ranges",
        "whole+ffmpeg",
        "bytes read",
        "ratio"
    );
    for (path, ms) in videos {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("video");
        let bytes = std::fs::read(path).expect("video");
        let size = bytes.len() as u64;
        let key = format!("bench-video/{name}");
        let obj = PutObject {
            bytes: Bytes::from(bytes),
            content_type: "video/mp4".into(),
            metadata: Default::default(),
        };
        store.put(&key, obj).await.expect("put");
        for t in [0, ms / 2, ms + 10_000] {
            let m = &app.metrics;
            let (b0, r0) = (
                m.video_read_bytes.with_label_values(&["store"]).get(),
                m.video_read_ranges.with_label_values(&["store"]).get(),
            );
            let mut ours = Vec::new();
            for i in 0..rounds {
                let url = format!(
                    "{base}/{key}?x-oss-process=video/snapshot,t_{t},f_jpg,w_{}",
                    800 + i
                );
                let start = Instant::now();
                let (status, body) = get(&url).await;
                ours.push(start.elapsed());
                assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
            }
            let read =
                (m.video_read_bytes.with_label_values(&["store"]).get() - b0) / rounds as u64;
            let ranges =
                (m.video_read_ranges.with_label_values(&["store"]).get() - r0) / rounds as u64;
            let mut theirs = Vec::new();
            for _ in 0..rounds {
                theirs.push(whole_then_ffmpeg(&store, &key, t.min(ms - 100), scratch).await);
            }
            let (a, b) = (median(ours), median(theirs));
            println!(
                "{:<16} {:>8} {:>9.1}ms {:>13} {:>7} {:>9.1}ms {:>13} {:>6.1}x",
                name,
                t,
                a.as_secs_f64() * 1000.0,
                read,
                ranges,
                b.as_secs_f64() * 1000.0,
                size,
                b.as_secs_f64() / a.as_secs_f64()
            );
        }
        let _ = store.delete(&key).await;
    }
    if !full {
        println!("(smoke run; `cargo bench --bench video` for the fixtures)");
    }
}

/// The whole object downloaded to a file, then `ffmpeg -ss t -i file
/// -frames:v 1 -vf scale=800:-2 out.jpg` (ffmpeg seeks to the keyframe and
/// decodes to t, as pixmirror does).
async fn whole_then_ffmpeg(
    store: &pixmirror::storage::DynStore,
    key: &str,
    t: u64,
    scratch: &Path,
) -> Duration {
    let start = Instant::now();
    let obj = store.get(key).await.expect("get");
    let bytes = pixmirror::storage::read_limited(obj.body, u64::MAX, obj.meta.size as usize)
        .await
        .expect("body");
    let file = scratch.join("download.mp4");
    tokio::fs::write(&file, &bytes).await.expect("write");
    let (input, out) = (file.to_string_lossy().to_string(), scratch.join("out.jpg"));
    let out = out.to_string_lossy().to_string();
    let ss = format!("{}.{:03}", t / 1000, t % 1000);
    let cmd: Vec<String> = [
        "-ss",
        &ss,
        "-i",
        &input,
        "-frames:v",
        "1",
        "-vf",
        "scale=800:-2",
        &out,
    ]
    .map(String::from)
    .to_vec();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        ffmpeg(&args)
    })
    .await
    .expect("ffmpeg");
    start.elapsed()
}
