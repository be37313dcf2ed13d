//! Throughput of the processing pipeline against the in-process libvips
//! ceiling: for every image in a folder (default `../shared/images` when it
//! exists, else `tests/fixtures`), WebP q80 thumbnails at widths 250..349 (as
//! the peers benchmark asks), made by `pipeline::run` and by the bare minimum
//! libvips needs for the same result (`thumbnail_buffer` + `webpsave`, one
//! thread, no HTTP), and the output bytes of each summed over the widths.
//! The floor column is the decode alone, whole file, at the shrink-on-load
//! the plan uses (libjpeg's DCT scaling, WebP's scaled decode; a PNG decoded
//! by libvips whole): what every server pays before resizing, and the
//! pipeline's time as a percentage of it (below 100%: less decoded than the
//! floor, e.g. progressive JPEG scans left out). Then the pipeline on one
//! thread per core.
//!
//!     cargo bench --bench pipeline [-- DIR [ROUNDS]]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use pixmirror::process::engine::pipeline;
use pixmirror::process::lang;
use pixmirror::process::plan::Format;

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
    // The smoke run under `cargo test` (debug build) tries two widths.
    let widths: Vec<u32> = if full {
        (0..20).map(|i| 250 + i * 5).collect()
    } else {
        vec![250, 349]
    };
    let plans: Vec<_> = widths
        .iter()
        .map(|w| {
            lang::parse_process(
                &format!("image/resize,w_{w}/format,webp/quality,Q_80"),
                &BTreeMap::new(),
            )
            .expect("plan")
        })
        .collect();
    let opts = pipeline::Options::from_config(&pixmirror::config::ProcessConfig::default());
    pixmirror::process::engine::vips::init().expect("libvips");
    // The server's allocator settings (the pool sets them), for all three columns.
    pixmirror::pool::tune_allocator();
    // Warm up libvips.
    for (_, bytes) in &files {
        let _ = pipeline::run(bytes, &plans[0], &opts);
    }
    println!(
        "pipeline vs ceiling: WebP q80 at widths 250..349, {} images from {}, {rounds} rounds",
        files.len(),
        dir.display()
    );
    println!(
        "{:<40} {:>9} {:>8} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9}",
        "image",
        "bytes",
        "floor ms",
        "ceiling ms",
        "ours ms",
        "ours/ceil",
        "% floor",
        "ceil out",
        "ours out"
    );
    // Only what the pipeline accepts: the ceiling has no pixel limit, and the
    // fixtures include a decompression bomb.
    let max_pixels = opts.max_source_pixels;
    // With each source's header, for the floor and the ceiling's effort.
    let files: Vec<(String, Vec<u8>, pipeline::Header)> = files
        .into_iter()
        .filter_map(
            |(name, bytes)| match pipeline::probe(&bytes, max_pixels, u32::MAX) {
                Ok(h) => Some((name, bytes, h)),
                Err(e) => {
                    println!("{name}: skipped ({e})");
                    None
                }
            },
        )
        .collect();
    let mut total_ms = 0.0;
    for (name, bytes, header) in &files {
        let px = header.width as u64 * header.height as u64;
        // The three alternate, width by width, so that a shared machine's
        // drift falls on all. Output bytes are summed over the widths (of
        // the last round).
        let (mut floor_time, mut ceil_time, mut time) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        let (mut ceil_out, mut out) = (0, 0);
        for _ in 0..rounds {
            (ceil_out, out) = (0, 0);
            for (w, plan) in widths.iter().zip(&plans) {
                let start = Instant::now();
                decode_only(bytes, header, *w);
                floor_time += start.elapsed();
                let start = Instant::now();
                ceil_out += ceiling(bytes, px, *w, &opts);
                ceil_time += start.elapsed();
                let start = Instant::now();
                match pipeline::run(bytes, plan, &opts) {
                    Ok(o) => out += o.bytes.len(),
                    Err(e) => println!("{name}: {e}"),
                }
                time += start.elapsed();
            }
        }
        let per_image = |t: Duration| t.as_secs_f64() * 1000.0 / (rounds * widths.len()) as f64;
        let (floor_ms, ceil_ms, ms) =
            (per_image(floor_time), per_image(ceil_time), per_image(time));
        total_ms += ms;
        println!(
            "{name:<40} {:>9} {floor_ms:>8.1} {ceil_ms:>10.1} {ms:>10.1} {:>8.2}x {:>8.0}% {ceil_out:>9} {out:>9}",
            bytes.len(),
            ceil_ms / ms,
            100.0 * ms / floor_ms
        );
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
            let plans = &plans;
            let opts = &opts;
            s.spawn(move || {
                for _ in 0..rounds {
                    for (i, (_, bytes, _)) in files.iter().enumerate() {
                        if i % cores == t {
                            let _ = pipeline::run(bytes, &plans[i % plans.len()], opts);
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

/// The floor: the whole file decoded at the shrink-on-load a thumbnail
/// `width` pixels wide uses.
fn decode_only(bytes: &[u8], header: &pipeline::Header, width: u32) {
    let (w, h) = header.oriented(true);
    let height = (h as u64 * width as u64 / w.max(1) as u64).max(1) as u32;
    let shrink = pipeline::load_shrink((w, h), (width, height));
    let options = match header.format {
        Format::Jpg => format!("shrink={shrink}"),
        Format::Webp => format!("scale={}", 1.0 / shrink as f64),
        _ => String::new(),
    };
    if let Ok(img) = libvips::VipsImage::new_from_buffer(bytes, &options) {
        let _ = pixmirror::process::engine::vips::write_to_memory(&img);
    }
}

/// The in-process ceiling: what libvips needs at least for the same output
/// (thumbnail with its own shrink-on-load, WebP q80 at the effort the
/// pipeline picks for these sizes, metadata stripped).
fn ceiling(bytes: &[u8], source_pixels: u64, width: u32, opts: &pipeline::Options) -> usize {
    let Ok(img) = libvips::ops::thumbnail_buffer(bytes, width as i32) else {
        return 0;
    };
    let out = img.get_width() as u64 * img.get_height() as u64;
    let effort = opts.webp_effort_for(source_pixels, out);
    img.image_write_to_buffer(&format!(".webp[Q=80,effort={effort},strip]"))
        .map(|b| b.len())
        .unwrap_or(0)
}
