//! Throughput of the processing pipeline: a 300-px-wide WebP thumbnail of every
//! image in a folder (default `../shared/images` when it exists, else
//! `tests/fixtures`), first on one thread (images/s per core), then on one
//! thread per core.
//!
//!     cargo bench --bench pipeline [-- DIR [ROUNDS]]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use pixmirror::process::{grammar, pipeline};

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` this runs as a quick smoke test.
    let full = std::env::args().any(|a| a == "--bench");
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let dir = args.first().map(PathBuf::from).unwrap_or_else(|| {
        let shared = PathBuf::from("../shared/images");
        if full && shared.is_dir() {
            shared
        } else {
            PathBuf::from("tests/fixtures")
        }
    });
    let rounds: usize =
        args.get(1)
            .and_then(|r| r.parse().ok())
            .unwrap_or(if full { 3 } else { 1 });
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("jpg" | "jpeg" | "png" | "webp")
            )
        })
        .filter_map(|p| {
            Some((
                p.file_name()?.to_string_lossy().into_owned(),
                std::fs::read(&p).ok()?,
            ))
        })
        .collect();
    files.sort();
    let plan =
        grammar::parse_process("image/resize,w_300/format,webp", &BTreeMap::new()).expect("plan");
    let opts = pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default());
    // Warm up libvips.
    for (_, bytes) in &files {
        let _ = pipeline::run(bytes, &plan, &opts);
    }
    println!(
        "pipeline: 300-px WebP thumbnail, {} images from {}, {rounds} rounds",
        files.len(),
        dir.display()
    );
    println!(
        "{:<42} {:>10} {:>10} {:>12}",
        "image", "bytes", "ms/image", "output bytes"
    );
    let mut total_ms = 0.0;
    for (name, bytes) in &files {
        let start = Instant::now();
        let mut out = 0;
        for _ in 0..rounds {
            match pipeline::run(bytes, &plan, &opts) {
                Ok(o) => out = o.bytes.len(),
                Err(e) => println!("{name}: {e}"),
            }
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
        total_ms += ms;
        println!("{name:<42} {:>10} {ms:>10.1} {out:>12}", bytes.len());
    }
    let per_core = files.len() as f64 / (total_ms / 1000.0);
    println!(
        "one thread: {per_core:.2} images/s per core (mean {:.1} ms/image)",
        total_ms / files.len() as f64
    );

    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..cores {
            let files = &files;
            let plan = &plan;
            let opts = &opts;
            s.spawn(move || {
                for _ in 0..rounds {
                    for (i, (_, bytes)) in files.iter().enumerate() {
                        if i % cores == t {
                            let _ = pipeline::run(bytes, plan, opts);
                        }
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let n = (files.len() * rounds) as f64;
    println!(
        "{cores} threads: {:.2} images/s in all, {:.2} images/s per core",
        n / secs,
        n / secs / cores as f64
    );
}
