//! Placeholders (issue 25): `image/thumbhash` and `image/blurhash,x_,y_`,
//! computed from the image after the plan's actions, decoded here by the
//! reference JavaScript implementations (npm `thumbhash`, `blurhash`, which
//! `make test` installs outside the repository and names in
//! `PIXMIRROR_NODE_MODULES`).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use pixmirror::process::engine::pipeline::{self, Options};
use pixmirror::process::lang;

/// 200x100: the left half red, the right half blue.
fn halves() -> Vec<u8> {
    let img = image::RgbImage::from_fn(200, 100, |x, _| {
        if x < 100 {
            image::Rgb([255, 0, 0])
        } else {
            image::Rgb([0, 0, 255])
        }
    });
    encode(&img, image::ImageFormat::Png)
}

fn json_of(src: &[u8], process: &str) -> serde_json::Value {
    let plan = lang::parse_process(process, &BTreeMap::new()).expect(process);
    let opts = Options::from_config(&Default::default());
    let out = pipeline::run(src, &plan, &opts).expect(process);
    assert_eq!(out.content_type, "application/json");
    serde_json::from_slice(&out.bytes).expect("json")
}

const DECODE: &str = r#"
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
const dir = process.env.PIXMIRROR_NODE_MODULES;
const [kind, hash] = process.argv.slice(1);
let w, h, rgba;
if (kind === 'thumbhash') {
  const { thumbHashToRGBA } = await import(pathToFileURL(dir + '/thumbhash/thumbhash.js'));
  ({ w, h, rgba } = thumbHashToRGBA(Buffer.from(hash, 'base64')));
} else {
  const blurhash = createRequire(dir + '/')('blurhash');
  if (!blurhash.isBlurhashValid(hash).result) throw new Error('invalid blurhash');
  [w, h] = [32, 16];
  rgba = blurhash.decode(hash, w, h);
}
const mean = (x0, x1) => {
  const s = [0, 0, 0]; let n = 0;
  for (let y = 0; y < h; y++) for (let x = x0; x < x1; x++) {
    for (let c = 0; c < 3; c++) s[c] += rgba[(y * w + x) * 4 + c];
    n++;
  }
  return s.map(v => Math.round(v / n));
};
// The outer quarters: the middle blends the halves.
console.log(JSON.stringify({ w, h, left: mean(0, Math.floor(w / 4)), right: mean(w - Math.floor(w / 4), w) }));
"#;

/// The decoded placeholder: its size and the mean colour of its outer quarters.
fn decode(kind: &str, hash: &str) -> serde_json::Value {
    let dir = std::env::var("PIXMIRROR_NODE_MODULES").unwrap_or_else(|_| {
        panic!("PIXMIRROR_NODE_MODULES is not set: run the tests with `make test` (npm thumbhash, blurhash)")
    });
    let out = Command::new("node")
        .args(["--input-type=module", "-e", DECODE, kind, hash])
        .env("PIXMIRROR_NODE_MODULES", dir)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decoded")
}

fn colour(v: &serde_json::Value) -> [i64; 3] {
    let c: Vec<i64> = v
        .as_array()
        .expect("rgb")
        .iter()
        .filter_map(|x| x.as_i64())
        .collect();
    [c[0], c[1], c[2]]
}

fn reddish(c: [i64; 3]) -> bool {
    c[0] > 150 && c[2] < 110
}

fn bluish(c: [i64; 3]) -> bool {
    c[2] > 150 && c[0] < 110
}

#[test]
fn placeholders_decode_to_the_image_they_stand_for() {
    let src = halves();
    let thumb = json_of(&src, "image/thumbhash");
    let hash = thumb["thumbhash"].as_str().expect("thumbhash");
    let d = decode("thumbhash", hash);
    let (left, right) = (colour(&d["left"]), colour(&d["right"]));
    assert!(reddish(left) && bluish(right), "thumbhash {hash}: {d}");
    // ThumbHash keeps the aspect ratio: 2:1.
    let ratio = d["w"].as_f64().unwrap_or(0.0) / d["h"].as_f64().unwrap_or(1.0);
    assert!((1.6..2.5).contains(&ratio), "{d}");
    let blur = json_of(&src, "image/blurhash,x_4,y_3");
    let hash = blur["blurhash"].as_str().expect("blurhash");
    // 4x3 components: 1 + 1 + 4 + 2 * 4 * 3 - 2 = 28 characters.
    assert_eq!(hash.len(), 28, "{hash}");
    let d = decode("blurhash", hash);
    let (left, right) = (colour(&d["left"]), colour(&d["right"]));
    assert!(reddish(left) && bluish(right), "blurhash {hash}: {d}");
    // The default is 4x3; other counts change the string's length.
    assert_eq!(json_of(&src, "image/blurhash"), blur);
    let one = json_of(&src, "image/blurhash,x_1,y_1");
    assert_eq!(one["blurhash"].as_str().map(str::len), Some(6));
    // After the actions before it: the left half alone is red on both sides.
    let left_only = json_of(&src, "image/crop,x_0,y_0,w_100,h_100/thumbhash");
    let d = decode("thumbhash", left_only["thumbhash"].as_str().expect("hash"));
    assert!(
        reddish(colour(&d["left"])) && reddish(colour(&d["right"])),
        "{d}"
    );
}

#[test]
fn bad_placeholder_requests_are_400() {
    for (process, says) in [
        ("image/blurhash,x_0", "parameter x"),
        ("image/blurhash,y_10", "parameter y"),
        ("image/blurhash,z_1", "unknown parameter"),
        ("image/thumbhash,1", "unexpected value"),
        ("image/thumbhash/format,webp", "do not apply"),
        ("image/blurhash/quality,q_80", "do not apply"),
    ] {
        let e = lang::parse_process(process, &BTreeMap::new()).expect_err(process);
        assert_eq!(e.code(), "InvalidArgument");
        assert!(e.to_string().contains(says), "{process}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placeholder_is_stored_and_cached_like_average_hue() {
    let env = Env::new(Backend::Fs, "placeholder").await;
    let key = env.key("halves.png");
    put(&env.store, &key, halves(), "image/png").await;
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let server = TestServer::start(cfg).await;
    let url = server.url(&format!(
        "{key}?x-oss-process=image/resize,w_100/blurhash,y_3,x_4"
    ));
    let first = get(&url).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(first.header("content-type"), "application/json");
    assert_eq!(first.cache(), "processed");
    let again = get(&url).await;
    assert_eq!((again.cache(), &again.body), ("memory", &first.body));
    assert!(
        env.exists(&format!("{key}__op__resize,w_100__op__blurhash,x_4,y_3"))
            .await
    );
    assert_eq!(server.processed(), 1);
    server.stop().await;
}
