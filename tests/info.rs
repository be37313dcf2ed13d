//! `image/info`: the OSS field set with EXIF fields, named and written as
//! OSS does, read from the header (the stored, unrotated size).

mod common;

use std::collections::BTreeMap;

use common::{get, put, Backend, Env, TestServer};
use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};
use pixmirror::process::engine::pipeline;
use pixmirror::process::lang;

fn field(tag: Tag, value: Value) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    }
}

fn ascii(s: &str) -> Value {
    Value::Ascii(vec![s.as_bytes().to_vec()])
}

fn rationals(v: &[(u32, u32)]) -> Value {
    Value::Rational(
        v.iter()
            .map(|&(num, denom)| Rational { num, denom })
            .collect(),
    )
}

/// A 64x32 JPEG with a camera's EXIF: make, model, times, orientation 6,
/// resolution, GPS position, a version and a maker note.
fn photo() -> Vec<u8> {
    let fields = [
        field(Tag::Make, ascii("Canon")),
        field(Tag::Model, ascii("Canon EOS 5D")),
        field(Tag::DateTime, ascii("2015:02:11 15:38:27")),
        field(Tag::Orientation, Value::Short(vec![6])),
        field(Tag::XResolution, rationals(&[(72, 1)])),
        field(Tag::YResolution, rationals(&[(72, 1)])),
        field(Tag::ResolutionUnit, Value::Short(vec![2])),
        field(Tag::DateTimeOriginal, ascii("2019:12:13 10:36:41")),
        field(Tag::ExifVersion, Value::Undefined(b"0230".to_vec(), 0)),
        field(Tag::MakerNote, Value::Undefined(vec![7; 200], 0)),
        field(Tag::GPSVersionID, Value::Byte(vec![2, 2, 0, 0])),
        field(Tag::GPSLatitudeRef, ascii("N")),
        field(
            Tag::GPSLatitude,
            rationals(&[(30, 1), (15, 1), (3012, 100)]),
        ),
        field(Tag::GPSLongitudeRef, ascii("W")),
        field(Tag::GPSLongitude, rationals(&[(120, 1), (0, 1), (0, 1)])),
        field(Tag::GPSMapDatum, ascii("WGS-84")),
    ];
    let mut w = Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).expect("exif");
    let jpeg = common::encode(&common::quadrants(64, 32), image::ImageFormat::Jpeg);
    common::with_exif(&jpeg, tiff.get_ref())
}

fn info(src: &[u8]) -> serde_json::Value {
    let plan = lang::parse_process("image/info", &BTreeMap::new()).expect("plan");
    let opts = pipeline::Options::from_config(&Default::default());
    let out = pipeline::run(src, &plan, &opts).expect("info");
    assert_eq!(out.content_type, "application/json");
    serde_json::from_slice(&out.bytes).expect("json")
}

/// `{"Name": {"value": "..."}}` as a flat map.
fn values(j: &serde_json::Value) -> BTreeMap<String, String> {
    j.as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| {
            let s = v["value"].as_str().unwrap_or_else(|| panic!("{k}: {v}"));
            (k.clone(), s.to_string())
        })
        .collect()
}

#[test]
fn exif_fields_as_oss_writes_them() {
    let src = photo();
    let v = values(&info(&src));
    let want = [
        ("FileSize", src.len().to_string()),
        ("Format", "jpg".into()),
        ("FrameCount", "1".into()),
        // As stored: orientation 6 does not swap them.
        ("ImageWidth", "64".into()),
        ("ImageHeight", "32".into()),
        ("Make", "Canon".into()),
        ("Model", "Canon EOS 5D".into()),
        ("DateTime", "2015:02:11 15:38:27".into()),
        ("DateTimeOriginal", "2019:12:13 10:36:41".into()),
        ("Orientation", "6".into()),
        ("XResolution", "72/1".into()),
        ("YResolution", "72/1".into()),
        ("ResolutionUnit", "2".into()),
        ("ExifVersion", "0230".into()),
        ("GPSVersionID", "2 2 0 0".into()),
        ("GPSLatitudeRef", "North".into()),
        ("GPSLatitude", "30deg 15' 30.120\" ".into()),
        ("GPSLongitudeRef", "West".into()),
        ("GPSLongitude", "120deg ".into()),
        ("GPSMapDatum", "WGS-84".into()),
    ];
    for (k, want) in want {
        assert_eq!(v.get(k), Some(&want), "{k} in {v:?}");
    }
    // The directory pointers under OSS's names, as offsets.
    for k in ["ExifTag", "GPSTag"] {
        let n: u32 = v[k].parse().unwrap_or_else(|_| panic!("{k}: {}", v[k]));
        assert!(n > 8, "{k}");
    }
    assert!(!v.contains_key("MakerNote"), "binary maker note left out");
}

#[test]
fn without_exif_the_basic_fields_and_resolution_defaults() {
    let png = common::encode(&common::quadrants(40, 30), image::ImageFormat::Png);
    let v = values(&info(&png));
    let keys: Vec<&str> = v.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "FileSize",
            "Format",
            "FrameCount",
            "ImageHeight",
            "ImageWidth",
            "ResolutionUnit",
            "XResolution",
            "YResolution"
        ]
    );
    assert_eq!(
        (v["ResolutionUnit"].as_str(), v["XResolution"].as_str()),
        ("1", "1/1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_through_the_server() {
    let env = Env::new(Backend::Fs, "info").await;
    put(&env.store, &env.key("cam.jpg"), photo(), "image/jpeg").await;
    let s = TestServer::start(env.config()).await;
    let r = get(&s.url(&format!("{}?x-oss-process=image/info", env.key("cam.jpg")))).await;
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, "application/json")
    );
    let v = values(&r.json());
    assert_eq!(v["Model"], "Canon EOS 5D");
    assert_eq!(v["GPSLatitudeRef"], "North");
    s.stop().await;
}
