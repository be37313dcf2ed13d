//! Client hints in a real browser (issue 25): Debian's headless Chromium,
//! driven by npm's playwright-core (both installed by `make test`, outside
//! the repository), loads a page on loopback whose images use `w_auto`,
//! `dpr,auto` and `format,auto`, at device scale factors 2 and 1. After the
//! page's `Accept-CH`, Chromium sends the hints; the test asserts the pixel
//! widths and formats Chromium received. Screenshots go to
//! `target/test-output/`.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_gets_the_widths_and_formats_its_hints_ask_for() {
    let modules = std::env::var("PIXMIRROR_NODE_MODULES").unwrap_or_else(|_| {
        panic!("PIXMIRROR_NODE_MODULES is not set: run the tests with `make test` (npm playwright-core)")
    });
    let env = Env::new(Backend::Fs, "browser").await;
    let server = TestServer::start(env.config()).await;
    let out_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-output");
    std::fs::create_dir_all(&out_dir).expect("output folder");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/hints.mjs");
    let (base, key) = (server.base.clone(), env.key("dragonfly.jpg")); // 800x600
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("PIXMIRROR_NODE_MODULES", modules)
            .env("PIXMIRROR_BASE", base)
            .env("IMAGE_KEY", key)
            .env("OUT_DIR", &out_dir)
            .output()
            .expect("node")
    })
    .await
    .expect("task");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    println!("{}", serde_json::to_string_pretty(&got).unwrap_or_default());
    // (scale, image, the width received, what `Vary` names)
    let expect: &[(&str, &str, u64, &str)] = &[
        // sizes="300px" at 2x: Sec-CH-Width 600, device pixels, to a multiple of 16.
        ("2", "width", 608, "Accept, Sec-CH-Width"),
        ("2", "dpr", 200, "Accept, Sec-CH-DPR"),
        // No `sizes`: the viewport's 360 CSS px (368), times 2.
        (
            "2",
            "viewport",
            736,
            "Sec-CH-Width, Width, Sec-CH-Viewport-Width, Sec-CH-DPR",
        ),
        ("1", "width", 304, "Accept, Sec-CH-Width"),
        ("1", "dpr", 100, "Accept, Sec-CH-DPR"),
        (
            "1",
            "viewport",
            368,
            "Sec-CH-Width, Width, Sec-CH-Viewport-Width, Sec-CH-DPR",
        ),
    ];
    for (scale, id, width, vary) in expect {
        let img = &got[scale][id];
        assert_eq!(
            img["naturalWidth"].as_u64(),
            Some(*width),
            "{scale}x {id}: {img}"
        );
        assert_eq!(img["vary"].as_str(), Some(*vary), "{scale}x {id}: {img}");
        assert_eq!(
            img["acceptCh"].as_str(),
            Some("Sec-CH-Width, Sec-CH-DPR, Sec-CH-Viewport-Width")
        );
        let format = img["contentType"].as_str().unwrap_or("");
        let want = if *id == "viewport" {
            "image/jpeg"
        } else {
            "image/avif"
        };
        assert_eq!(format, want, "{scale}x {id}: Chromium takes AVIF; {img}");
        assert_eq!(img["sent"]["sec-ch-dpr"].as_str(), Some(*scale), "{img}");
    }
    assert_eq!(
        got["2"]["width"]["sent"]["sec-ch-width"].as_str(),
        Some("600")
    );
    assert_eq!(
        got["1"]["width"]["sent"]["sec-ch-width"].as_str(),
        Some("300")
    );
    for scale in ["1", "2"] {
        let shot = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("target/test-output/hints-dpr{scale}.png"));
        assert!(
            std::fs::metadata(&shot)
                .map(|m| m.len() > 1000)
                .unwrap_or(false),
            "{}",
            shot.display()
        );
    }
    server.stop().await;
}
