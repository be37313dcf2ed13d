//! Video snapshots (issue 24): `video/snapshot` over ranged reads. The videos
//! are written here by the `ffmpeg` command (Debian's, which `make test`
//! installs) with libx264 and libx265: 2.5 s of red then 2.5 s of blue, 25
//! frames a second, a keyframe every 2 s and no other (no scene cut), in MP4
//! (index first and index last), MOV and Matroska.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use common::gated::GatedStore;
use common::*;
use pixmirror::error::Error;
use pixmirror::process::engine::pipeline::Options;
use pixmirror::process::lang;
use pixmirror::process::video::{self, Fetch, RangeReader, Snapped};
use pixmirror::storage::{PutObject, StoreError};

const RED: [u8; 3] = [255, 0, 0];
const BLUE: [u8; 3] = [0, 0, 255];

fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg: {e} (Debian's ffmpeg; `make test` installs it)"));
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The folder the videos are written to once per test binary.
fn dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tmp")).path()
}

/// Held while a fixture is looked for and written: tests run in parallel,
/// and a file ffmpeg is still writing must not be read.
fn writing() -> std::sync::MutexGuard<'static, ()> {
    static GEN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GEN.lock().unwrap_or_else(|e| e.into_inner())
}

/// The bytes of the fixture `name` in the test folder, written once by
/// `write` (given its path) under the [`writing`] lock.
fn written_once(name: &str, write: impl FnOnce(&str)) -> Vec<u8> {
    let _writing = writing();
    let path = dir().join(name);
    if !path.exists() {
        write(&path.to_string_lossy());
    }
    std::fs::read(&path).expect("video")
}

/// 1 s of red 64x64 in `codec` (an FFmpeg encoder) in a `.ext` file.
fn red_second(codec: &str, ext: &str) -> Vec<u8> {
    written_once(&format!("red-{codec}.{ext}"), |p| {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=64x64:r=25:d=1",
            "-c:v",
            codec,
            p,
        ])
    })
}

/// Encoder arguments: keyframes at 0, 2 and 4 s only.
fn codec_args(codec: &str) -> Vec<&'static str> {
    match codec {
        "h264" => vec![
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-pix_fmt",
            "yuv420p",
        ],
        _ => vec![
            "-c:v",
            "libx265",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "keyint=50:min-keyint=50:scenecut=0:log-level=error",
        ],
    }
}

/// Red then blue, 640x360: `codec` (h264, h265) in `container` (mp4 with
/// the index first, mp4-end with it last, mov, mkv). Written once.
fn red_blue(codec: &str, container: &str) -> Vec<u8> {
    let ext = container.trim_end_matches("-end");
    written_once(&format!("rb-{codec}-{container}.{ext}"), |p| {
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=640x360:r=25:d=2.5",
            "-f",
            "lavfi",
            "-i",
            "color=c=blue:s=640x360:r=25:d=2.5",
            "-filter_complex",
            "[0][1]concat=n=2:v=1",
        ];
        args.extend(codec_args(codec));
        if container == "mp4" || container == "mov" {
            args.extend(["-movflags", "+faststart"]);
        }
        if codec == "h265" && container != "mkv" {
            args.extend(["-tag:v", "hvc1"]);
        }
        args.push(p);
        ffmpeg(&args);
    })
}

/// A snapshot of `bytes` in memory, reads counted; `limit`: the read limit.
fn snap_limited(bytes: &[u8], process: &str, limit: u64) -> Result<Snapped, Error> {
    snap_reserving(bytes, process, limit, &mut |_| Ok(()))
}

/// As `snap_limited`, with the memory reservations going to `reserve`.
fn snap_reserving(
    bytes: &[u8],
    process: &str,
    limit: u64,
    reserve: &mut dyn FnMut(u64) -> Result<(), Error>,
) -> Result<Snapped, Error> {
    let plan = lang::parse_process(process, &BTreeMap::new())?;
    let snap = plan.snapshot.expect("a snapshot plan");
    let fetch: Fetch = Box::new(move |off, len| {
        let (a, b) = (off as usize, (off + len) as usize);
        Ok(bytes::Bytes::copy_from_slice(&bytes[a..b.min(bytes.len())]))
    });
    let reader = RangeReader::new(bytes.len() as u64, limit, None, fetch);
    let opts = Options::from_config(&Default::default());
    video::snapshot(reader, &snap, &opts, reserve)
}

fn snap(bytes: &[u8], process: &str) -> Snapped {
    snap_limited(bytes, process, u64::MAX).unwrap_or_else(|e| panic!("{process}: {e}"))
}

/// The colour at the middle of an image body.
fn middle(body: &[u8]) -> [u8; 3] {
    let img = image::load_from_memory(body).expect("image").to_rgb8();
    img.get_pixel(img.width() / 2, img.height() / 2).0
}

fn close(a: [u8; 3], b: [u8; 3]) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (*x as i32 - y as i32).abs() <= 24)
}

#[test]
fn each_time_gives_its_frame_in_every_container_and_codec() {
    let cases: &[(&str, [u8; 3])] = &[
        ("t_0", RED),
        ("t_1000", RED),
        ("t_2400", RED),
        ("t_2600", BLUE),
        ("t_3500", BLUE),
        // The keyframe at or before t: 2.0 s (red), 4.0 s (blue).
        ("t_3500,m_fast", RED),
        ("t_4500,m_fast", BLUE),
        // Past the end: the last frame.
        ("t_99999", BLUE),
        ("t_99999,m_fast", BLUE),
    ];
    for (codec, container) in [
        ("h264", "mp4"),
        ("h264", "mp4-end"),
        ("h264", "mov"),
        ("h264", "mkv"),
        ("h265", "mp4"),
        ("h265", "mp4-end"),
        ("h265", "mkv"),
    ] {
        let v = red_blue(codec, container);
        for (t, want) in cases {
            let process = format!("video/snapshot,{t},f_png");
            let s = snap(&v, &process);
            let got = middle(&s.output.bytes);
            assert!(
                close(got, *want),
                "{codec} {container} {t}: {got:?}, want {want:?}"
            );
            assert_eq!(s.info.codec, if codec == "h264" { 1 } else { 2 });
        }
    }
}

#[test]
fn sizes_and_formats_follow_oss() {
    let v = red_blue("h264", "mp4");
    let dims = |process: &str| {
        let s = snap(&v, process);
        let img = image::load_from_memory(&s.output.bytes).expect("image");
        (img.width(), img.height())
    };
    assert_eq!(dims("video/snapshot,t_1000,f_jpg,w_320"), (320, 180));
    assert_eq!(dims("video/snapshot,t_1000,f_jpg,h_90"), (160, 90));
    assert_eq!(dims("video/snapshot,t_1000,f_jpg,w_0,h_0"), (640, 360));
    assert_eq!(dims("video/snapshot,t_1000,f_jpg,w_100,h_100"), (100, 100));
    let png = snap(&v, "video/snapshot,t_1000,f_png").output;
    assert_eq!(png.content_type, "image/png");
    assert!(png.bytes.starts_with(b"\x89PNG"));
    let jpg = snap(&v, "video/snapshot,t_1000,f_jpg").output;
    assert_eq!(jpg.content_type, "image/jpeg");
    assert!(jpg.bytes.starts_with(&[0xFF, 0xD8]));
    // Wider or taller than the video: 400, naming the parameter.
    for (p, name) in [("w_641", "parameter w"), ("h_361", "parameter h")] {
        let e = snap_limited(&v, &format!("video/snapshot,t_0,f_jpg,{p}"), u64::MAX)
            .err()
            .unwrap_or_else(|| panic!("{p} passed"));
        assert_eq!(e.code(), "InvalidArgument", "{p}: {e}");
        assert!(e.to_string().contains(name), "{p}: {e}");
    }
}

/// 640x360 red with a white box in the top-left corner, tagged to be
/// turned 90 degrees clockwise when shown.
fn rotated() -> (Vec<u8>, PathBuf) {
    let _writing = writing();
    let path = dir().join("rotated.mp4");
    if !path.exists() {
        let plain = dir().join("marked.mp4");
        let p = plain.to_string_lossy().to_string();
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "color=c=red:s=640x360:r=25:d=1",
            "-vf",
            "drawbox=x=0:y=0:w=160:h=90:color=white:t=fill",
        ];
        args.extend(codec_args("h264"));
        args.push(&p);
        ffmpeg(&args);
        let r = path.to_string_lossy().to_string();
        ffmpeg(&["-i", &p, "-c", "copy", "-metadata:s:v:0", "rotate=90", &r]);
    }
    (std::fs::read(&path).expect("video"), path)
}

/// Which corner of an image is white: 0 top-left, 1 top-right, 2 bottom-right, 3 bottom-left.
fn white_corner(body: &[u8]) -> usize {
    let img = image::load_from_memory(body).expect("image").to_rgb8();
    let (w, h) = (img.width() - 1, img.height() - 1);
    let corners = [(0, 0), (w, 0), (w, h), (0, h)];
    let white: Vec<usize> = (0..4)
        .filter(|&i| close(img.get_pixel(corners[i].0, corners[i].1).0, [255, 255, 255]))
        .collect();
    assert_eq!(white.len(), 1, "one white corner: {white:?}");
    white[0]
}

#[test]
fn rotation_metadata_turns_the_frame_under_ar_auto_only() {
    let (v, path) = rotated();
    let dims = |s: &Snapped| {
        let img = image::load_from_memory(&s.output.bytes).expect("image");
        (img.width(), img.height())
    };
    let plain = snap(&v, "video/snapshot,t_0,f_png");
    assert_eq!(dims(&plain), (640, 360), "without ar: as coded");
    assert_eq!(white_corner(&plain.output.bytes), 0);
    let auto = snap(&v, "video/snapshot,t_0,f_png,ar_auto");
    // ffmpeg 5.1 writes `rotate=90` as a display matrix that its own tools
    // read as a 270 degree clockwise turn (a quarter turn anticlockwise).
    assert_eq!(auto.info.rotation, 270);
    assert_eq!(dims(&auto), (360, 640), "ar_auto: portrait");
    // The same way up as ffmpeg's own player turns it.
    let reference = dir().join("rotated-reference.png");
    let r = reference.to_string_lossy().to_string();
    ffmpeg(&["-i", &path.to_string_lossy(), "-frames:v", "1", &r]);
    let reference = std::fs::read(&reference).expect("png");
    assert_eq!(
        image::load_from_memory(&reference).expect("png").width(),
        360
    );
    assert_eq!(white_corner(&auto.output.bytes), white_corner(&reference));
    // ar_h: upright is already portrait; ar_w: a further quarter turn.
    let h = snap(&v, "video/snapshot,t_0,f_png,ar_h");
    assert_eq!(dims(&h), (360, 640));
    assert_eq!(h.output.bytes, auto.output.bytes);
    let w = snap(&v, "video/snapshot,t_0,f_png,ar_w,w_320");
    assert_eq!(dims(&w), (320, 180));
}

#[test]
fn a_snapshot_reads_the_index_and_one_group_of_pictures() {
    // 20 s, keyframes every 2 s: a snapshot at 15 s needs the index and the
    // pictures from 14 s; past the end, from 18 s.
    let path = dir().join("long.mp4");
    let end = dir().join("long-end.mp4");
    let writing = writing();
    if !path.exists() {
        let mut args = vec!["-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=20"];
        args.extend(codec_args("h264"));
        let (p, e) = (
            path.to_string_lossy().to_string(),
            end.to_string_lossy().to_string(),
        );
        let mut fast = args.clone();
        fast.extend(["-movflags", "+faststart", &p]);
        ffmpeg(&fast);
        args.push(&e);
        ffmpeg(&args);
    }
    drop(writing);
    for file in [&path, &end] {
        let v = std::fs::read(file).expect("video");
        for t in ["t_0", "t_15000", "t_99999"] {
            let s = snap(&v, &format!("video/snapshot,{t},f_jpg,w_320"));
            let share = s.read_bytes as f64 / v.len() as f64;
            assert!(
                share < 0.25,
                "{} {t}: read {} of {} bytes in {} ranges",
                file.display(),
                s.read_bytes,
                v.len(),
                s.ranges
            );
        }
        // A limit below what one snapshot needs: 422, and no more read than it.
        let limit = 64 * 1024;
        let e = snap_limited(&v, "video/snapshot,t_15000,f_jpg", limit)
            .err()
            .expect("over the limit");
        assert_eq!(e.code(), "UnprocessableImage", "{e}");
        assert!(e.to_string().contains("video.max_read_bytes"), "{e}");
    }
}

/// The offsets of the 4-byte box type `tag` in an MP4.
fn find(hay: &[u8], tag: &[u8]) -> usize {
    hay.windows(tag.len())
        .position(|w| w == tag)
        .unwrap_or_else(|| panic!("no {:?}", String::from_utf8_lossy(tag)))
}

/// The MP4 `v` whose sample-size table claims 10^9 frames.
fn many_frames(v: &[u8]) -> Vec<u8> {
    let mut out = v.to_vec();
    let at = find(&out, b"stsz") + 12;
    out[at..at + 4].copy_from_slice(&1_000_000_000u32.to_be_bytes());
    out
}

/// The MP4 `v` whose H.264 sample entry says 65535x65535.
fn huge(v: &[u8]) -> Vec<u8> {
    let mut out = v.to_vec();
    let stsd = find(&out, b"stsd");
    let at = stsd + find(&out[stsd..], b"avc1") + 28;
    out[at..at + 4].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    out
}

/// Bits of an H.264 parameter set, exp-Golomb included.
#[derive(Default)]
struct Bits(Vec<bool>);

impl Bits {
    fn u(&mut self, n: u32, v: u64) -> &mut Self {
        self.0.extend((0..n).rev().map(|i| v >> i & 1 == 1));
        self
    }
    fn ue(&mut self, v: u64) -> &mut Self {
        let n = 64 - (v + 1).leading_zeros();
        self.u(n - 1, 0).u(n, v + 1)
    }
    fn bytes(&mut self) -> Vec<u8> {
        self.u(1, 1); // the RBSP stop bit
        while !self.0.len().is_multiple_of(8) {
            self.0.push(false);
        }
        self.0
            .chunks(8)
            .map(|c| c.iter().fold(0, |b, &x| b << 1 | x as u8))
            .collect()
    }
}

/// The MP4 `v` whose H.264 sequence parameter set (in its avcC) says
/// 100000x100000 pixels (6250 macroblocks a side), padded to the original's length.
fn huge_sps(v: &[u8]) -> Vec<u8> {
    let sps = Bits::default()
        .u(8, 0x67) // NAL header: a sequence parameter set
        .u(8, 66) // baseline
        .u(8, 0xC0)
        .u(8, 40)
        .ue(0) // its id
        .ue(0) // log2_max_frame_num_minus4
        .ue(2) // pic_order_cnt_type
        .ue(1) // max_num_ref_frames
        .u(1, 0)
        .ue(6249) // pic_width_in_mbs_minus1
        .ue(6249) // pic_height_in_map_units_minus1
        .u(1, 1) // frame_mbs_only
        .u(1, 1)
        .u(1, 0) // no cropping
        .u(1, 0) // no VUI
        .bytes();
    let mut out = v.to_vec();
    let at = find(&out, b"avcC") + 4 + 6;
    let len = u16::from_be_bytes([out[at], out[at + 1]]) as usize;
    assert!(sps.len() <= len, "{} > {len}", sps.len());
    out[at + 2..at + 2 + len].fill(0x80);
    out[at + 2..at + 2 + sps.len()].copy_from_slice(&sps);
    out
}

#[test]
fn what_is_not_such_a_video_is_a_quick_422() {
    let v = red_blue("h264", "mp4");
    let end = red_blue("h264", "mp4-end");
    let (many_frames, huge) = (many_frames(&v), huge(&v));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a JPEG", fixture("dragonfly.jpg")),
        ("text", b"hello, this is not a video at all".to_vec()),
        ("empty", Vec::new()),
        ("MPEG-4 part 2", red_second("mpeg4", "mp4")),
        (
            "index-last, cut before the index",
            end[..end.len() / 2].to_vec(),
        ),
        (
            "index-first, cut in the pictures",
            v[..v.len() * 3 / 5].to_vec(),
        ),
        ("an index of 10^9 frames", many_frames),
        ("65535x65535 pictures", huge),
        ("a 100000x100000 sequence parameter set", huge_sps(&v)),
    ];
    for (what, bytes) in cases {
        let started = std::time::Instant::now();
        let r = snap_limited(&bytes, "video/snapshot,t_99999,f_jpg", 64 << 20);
        let e = r.err().unwrap_or_else(|| panic!("{what}: a snapshot"));
        assert_eq!(e.code(), "UnprocessableImage", "{what}: {e}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}: {:?}",
            started.elapsed()
        );
    }
}

/// Videos FFmpeg decodes well, in containers the demuxer whitelist lets in,
/// but not H.264 or H.265: the codec check refuses each by name (without it,
/// MJPEG and VP9 are snapshotted like any other video).
#[test]
fn other_codecs_are_refused_by_name() {
    let cases = [
        ("mjpeg", "mov"),
        ("libvpx-vp9", "webm"),
        ("mpeg4", "mp4"),
        ("prores", "mov"),
    ];
    for (codec, ext) in cases {
        let bytes = red_second(codec, ext);
        let e = snap_limited(&bytes, "video/snapshot,t_500,f_jpg", 64 << 20)
            .err()
            .unwrap_or_else(|| panic!("{codec}: a snapshot"));
        assert_eq!(e.code(), "UnprocessableImage", "{codec}: {e}");
        assert!(
            e.to_string().contains("only H.264 and H.265"),
            "{codec}: {e}"
        );
    }
}

/// 640x360 H.264 (x264, no B pictures) in MP4: `refs` reference pictures
/// of `pix_fmt` samples, 1 s at 25 fps.
fn refs_video(pix_fmt: &str, refs: u32) -> Vec<u8> {
    let params = format!("ref={refs}:bframes=0:keyint=250:scenecut=0");
    written_once(&format!("refs-{pix_fmt}-{refs}.mp4"), |p| {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=25:d=1",
            "-pix_fmt",
            pix_fmt,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-x264-params",
            &params,
            p,
        ])
    })
}

/// The memory budget sees every picture the decoder keeps, however many the
/// stream's parameters ask for: 16 references of 4:4:4 10-bit 640x360
/// (1.4 MB each) reserve at least 16 pictures' bytes, where a fixed
/// allowance per pixel (30 B/px: 6.9 MB) held a third of it; one 4:2:0
/// 8-bit reference needs nothing past what is reserved ahead. A refused
/// reservation ends the run with the budget's own error, not a frame.
#[test]
fn the_budget_counts_every_picture_the_stream_keeps() {
    let picture_444_10 = 640 * 368 * 3 * 2;
    let reserved = |bytes: &[u8]| {
        let mut total = 0u64;
        let got = snap_reserving(bytes, "video/snapshot,t_900,f_jpg", u64::MAX, &mut |n| {
            total += n;
            Ok(())
        });
        got.unwrap_or_else(|e| panic!("{e}"));
        total
    };
    let many = reserved(&refs_video("yuv444p10le", 16));
    assert!(
        many >= 16 * picture_444_10,
        "16 references: {many} bytes reserved"
    );
    // One reference: nothing past what is reserved ahead (the frame's
    // copies and the usual 8 pictures).
    let few = reserved(&refs_video("yuv420p", 1));
    let px = 640 * 360;
    assert_eq!(few, video::frame_bytes(px) + video::usual_pictures(px));

    let mut granted = 0u64;
    let e = snap_reserving(
        &refs_video("yuv444p10le", 16),
        "video/snapshot,t_900,f_jpg",
        u64::MAX,
        &mut |n| {
            granted += n;
            if granted > 8 * picture_444_10 {
                return Err(Error::Busy("the memory budget is spent".into()));
            }
            Ok(())
        },
    )
    .err()
    .expect("a refused reservation ends the snapshot");
    assert_eq!(e.code(), "Busy", "{e}");
}

/// A TCP stand-in in front of Garage that counts the bytes Garage sends.
struct CountingProxy {
    addr: String,
    down: Arc<AtomicU64>,
}

impl CountingProxy {
    async fn start(upstream: String) -> CountingProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let down = Arc::new(AtomicU64::new(0));
        let counter = down.clone();
        let upstream = upstream.trim_start_matches("http://").to_string();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let counter = counter.clone();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut cr, &mut sw).await });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        counter.fetch_add(n as u64, Ordering::SeqCst);
                    }
                });
            }
        });
        CountingProxy { addr, down }
    }

    fn take(&self) -> u64 {
        self.down.swap(0, Ordering::SeqCst)
    }
}

/// The 30 s 1280x720 fixture of the issue, index first.
fn hd30() -> Vec<u8> {
    written_once("hd30.mp4", |p| {
        let mut args = vec!["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=30:d=30"];
        args.extend([
            "-c:v", "libx264", "-preset", "veryfast", "-g", "60", "-pix_fmt", "yuv420p",
        ]);
        args.extend(["-movflags", "+faststart", p]);
        ffmpeg(&args);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_garage_a_snapshot_reads_a_tenth_of_the_file_at_most() {
    let env = Env::new(Backend::S3, "video").await;
    let video = hd30();
    let key = env.key("clips/hd30.mp4");
    put(&env.store, &key, video.clone(), "video/mp4").await;
    let proxy = CountingProxy::start(common::env("PIXMIRROR_TEST_S3_ENDPOINT")).await;
    let mut cfg = env.config();
    cfg.storage.s3.endpoint = Some(proxy.addr.clone());
    cfg.derivatives.store = false;
    let server = TestServer::start(cfg.clone()).await;
    proxy.take();
    let url = server.url(&format!(
        "{key}?x-oss-process=video/snapshot,t_15000,f_jpg,w_800,h_0"
    ));
    let r = get(&url).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), "image/jpeg");
    assert_eq!(r.dims(), (800, 450));
    let read = proxy.take();
    let m = &server.app.metrics;
    let counted = m.video_read_bytes.with_label_values(&["store"]).get();
    println!(
        "t_15000: {read} bytes from Garage ({:.1}% of {}), {counted} counted in {} ranges",
        read as f64 * 100.0 / video.len() as f64,
        video.len(),
        m.video_read_ranges.with_label_values(&["store"]).get()
    );
    assert!(read * 10 < video.len() as u64, "{read} of {}", video.len());
    assert!(
        counted <= read && counted > 0,
        "{counted} counted, {read} on the wire"
    );
    // The second time it is in memory: nothing read.
    let again = get(&url).await;
    assert_eq!(again.cache(), "memory");
    assert_eq!(again.body, r.body);
    assert_eq!(proxy.take(), 0);
    server.stop().await;
    // Past video.max_read_bytes: 422.
    cfg.video.max_read_bytes = pixmirror::config::ByteSize(100_000);
    let server = TestServer::start(cfg).await;
    let r = get(&server.url(&format!("{key}?x-oss-process=video/snapshot,t_15000,f_jpg"))).await;
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.code(), "UnprocessableImage");
    assert!(proxy.take() < 200_000);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_is_a_derivative_like_any_other() {
    let env = Env::new(Backend::Fs, "video").await;
    let key = env.key("clips/rb.mp4");
    put(&env.store, &key, red_blue("h264", "mp4"), "video/mp4").await;
    let mut cfg = env.config();
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    let server = TestServer::start(cfg).await;
    let q = "video/snapshot,t_3500,f_jpg,w_320,m_fast";
    let urls = (0..50).map(|_| server.url(&format!("{key}?x-oss-process={q}")));
    let all = burst(urls).await;
    for r in &all {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.body, all[0].body);
    }
    assert!(close(middle(&all[0].body), RED));
    assert_eq!(server.processed(), 1, "50 requests, one decode");
    // Stored under the canonical action spelled in full.
    let stored = format!("{key}__op__video/snapshot,f_jpg,h_0,m_fast,t_3500,w_320");
    assert!(env.exists(&stored).await, "{stored}");
    server.stop().await;
    // A new instance serves it from the bucket without decoding.
    let server = TestServer::start(env.config()).await;
    let r = get(&server.url(&format!("{key}?x-oss-process={q}"))).await;
    assert_eq!(r.cache(), "store");
    assert_eq!(r.body, all[0].body);
    assert_eq!(server.processed(), 0);
    server.stop().await;
}

/// The ranges of one snapshot all come from one version of the object: a
/// ranged read names the ETag the HEAD saw (S3 `If-Match`; on the fs store,
/// the opened file's), and a replaced object fails the snapshot with 503
/// instead of decoding a mix of two files; the next request reads the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_replaced_while_it_is_read_is_never_mixed() {
    let (first, second) = (refs_video("yuv420p", 1), red_blue("h264", "mp4"));
    let obj = |bytes: &Vec<u8>| PutObject {
        bytes: bytes::Bytes::from(bytes.clone()),
        content_type: "video/mp4".into(),
        metadata: BTreeMap::new(),
    };
    for backend in [Backend::Fs, Backend::S3] {
        let env = Env::new(backend, "video").await;
        let key = env.key("clips/replaced.mp4");
        put(&env.store, &key, first.clone(), "video/mp4").await;
        let old = env.store.head(&key).await.expect("head").etag;
        let range = |etag: String| {
            let (store, key) = (env.store.clone(), key.clone());
            async move { store.get_range(&key, 0, 16, Some(&etag)).await }
        };
        assert_eq!(range(old.clone()).await.expect("same version").len(), 16);
        put(&env.store, &key, second.clone(), "video/mp4").await;
        let new = env.store.head(&key).await.expect("head").etag;
        let e = range(old.clone()).await.expect_err("another version");
        assert!(matches!(e, StoreError::Changed), "{backend:?}: {e}");
        assert_eq!(range(new).await.expect("new version").len(), 16);

        put(&env.store, &key, first.clone(), "video/mp4").await;
        let gated = Arc::new(GatedStore::new(env.store.clone()));
        gated.puts.add_permits(1000);
        gated.replace_after_ranges(1, obj(&second));
        let server = TestServer::start_with_store(env.config(), gated.clone()).await;
        let url = server.url(&format!("{key}?x-oss-process=video/snapshot,t_900,f_jpg"));
        let r = get(&url).await;
        let body = String::from_utf8_lossy(&r.body).to_string();
        assert_eq!(r.status, 503, "{backend:?}: {body}");
        assert!(body.contains("changed while it was read"), "{body}");
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert!(close(middle(&r.body), RED), "the new version: red at 0.9 s");
        server.stop().await;
    }
}

/// Through the server: a video whose pictures add up to more than the whole
/// memory budget is a 422 at once (it could never fit), not a wait on its
/// own reservations until `process.timeout`; one that fits is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_that_can_never_fit_the_budget_are_a_quick_422() {
    let env = Env::new(Backend::Fs, "video").await;
    let (many, few) = (env.key("clips/many.mp4"), env.key("clips/few.mp4"));
    put(
        &env.store,
        &many,
        refs_video("yuv444p10le", 16),
        "video/mp4",
    )
    .await;
    put(&env.store, &few, refs_video("yuv420p", 1), "video/mp4").await;
    let mut cfg = env.config();
    cfg.process.memory_budget =
        pixmirror::config::MemoryBudget(Some(pixmirror::config::ByteSize(16 << 20)));
    cfg.process.timeout = pixmirror::config::Dur(std::time::Duration::from_secs(20));
    let server = TestServer::start(cfg).await;
    let q = "x-oss-process=video/snapshot,t_900,f_jpg";
    let started = std::time::Instant::now();
    let r = get(&server.url(&format!("{many}?{q}"))).await;
    let body = String::from_utf8_lossy(&r.body).to_string();
    assert_eq!(r.status, 422, "{body}");
    assert!(body.contains("process.memory_budget"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let r = get(&server.url(&format!("{few}?{q}"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_parameters_are_400_before_anything_is_read() {
    let env = Env::new(Backend::Fs, "video").await;
    let key = env.key("clips/rb.mp4");
    put(&env.store, &key, red_blue("h264", "mp4"), "video/mp4").await;
    let server = TestServer::start(env.config()).await;
    for (q, names) in [
        ("video/snapshot,t_-1,f_jpg", "parameter t"),
        ("video/snapshot,t_1000,f_jpg,w_-800", "parameter w"),
        ("video/snapshot,t_1000,f_jpg,h_-600", "parameter h"),
        ("video/snapshot,t_1000,f_jpg,w_abc", "parameter w"),
        ("video/snapshot,t_1000,f_gif", "parameter f"),
        ("video/snapshot,t_1000", "parameter f"),
        ("video/snapshot,f_jpg", "parameter t"),
        ("video/snapshot,t_1000,f_jpg,m_slow", "parameter m"),
        ("video/snapshot,t_1000,f_jpg,ar_x", "parameter ar"),
        ("video/snapshot,t_1000,f_jpg,z_1", "parameter `z`"),
        (
            "video/snapshot,t_1000,f_jpg/resize,w_10",
            "cannot be combined",
        ),
        ("video/convert,t_1000", "unknown video action"),
    ] {
        let r = get(&server.url(&format!("{key}?x-oss-process={q}"))).await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.code(), "InvalidArgument", "{q}");
        let msg = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(msg.contains(names), "{q}: {msg}");
    }
    assert_eq!(server.store_fetches(), 0);
    assert_eq!(server.app.metrics.store_requests_of("GET"), 0);
    assert_eq!(server.app.metrics.store_requests_of("HEAD"), 0);
    server.stop().await;
}

/// What a test origin did: requests answered and body bytes sent.
#[derive(Clone, Default)]
struct OriginCount {
    hits: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

/// An origin that answers every GET with `body` as `video/mp4`: a `Range`
/// with 206 when `ranges`, else the whole body.
async fn video_origin(body: Vec<u8>, ranges: bool) -> (String, OriginCount) {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = OriginCount::default();
    let (c, body) = (count.clone(), bytes::Bytes::from(body));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (c, body) = (c.clone(), body.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    c.hits.fetch_add(1, Ordering::SeqCst);
                    let range = req
                        .headers()
                        .get("range")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes="))
                        .and_then(|v| v.split_once('-'))
                        .and_then(|(a, b)| {
                            Some((a.parse::<usize>().ok()?, b.parse::<usize>().ok()?))
                        })
                        .filter(|_| ranges);
                    let b = http::Response::builder()
                        .header("content-type", "video/mp4")
                        .header("etag", "\"v1\"");
                    let (b, part) = match range {
                        Some((a, z)) => {
                            let z = z.min(body.len() - 1);
                            let cr = format!("bytes {a}-{z}/{}", body.len());
                            (b.status(206).header("content-range", cr), body.slice(a..=z))
                        }
                        None => (b.status(200), body.clone()),
                    };
                    c.sent.fetch_add(part.len() as u64, Ordering::SeqCst);
                    let resp = b.body(Full::new(part)).expect("response");
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (format!("http://{addr}/{{key}}"), count)
}

/// 2 s of noise at 640x360, nearly lossless: about 17 MB.
fn noisy() -> Vec<u8> {
    written_once("noisy.mp4", |p| {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=640x360:r=25:d=2",
            "-vf",
            "noise=alls=80:allf=t",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "4",
            "-g",
            "25",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            p,
        ])
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_video_is_streamed_into_the_bucket_then_snapshotted() {
    let env = Env::new(Backend::Fs, "video-mirror").await;
    let video = noisy();
    let (ranged, ranged_count) = video_origin(video.clone(), true).await;
    let (whole, whole_count) = video_origin(video.clone(), false).await;
    let mut cfg = env.config();
    cfg.mirror.allow_private_networks = true;
    let rule = |prefix: &str, origin: &str, store: bool| pixmirror::config::MirrorRule {
        prefix: Some(format!("{}/{prefix}/", env.prefix)),
        origin: Some(origin.to_string()),
        retries: 0,
        store,
        // The SPEC's default is `image/*`: a bucket of videos names them.
        content_types: vec!["image/*".into(), "video/*".into()],
        ..Default::default()
    };
    cfg.mirror.rules = vec![
        rule("stored", &whole, true),
        rule("proxied", &ranged, false),
        rule("proxied-whole", &whole, false),
    ];
    // An image may be 1 MiB; the video (17 MB) is more than the whole memory
    // budget, so only a spool on disk and ranged reads can snapshot it.
    cfg.process.max_source_bytes = pixmirror::config::ByteSize(1 << 20);
    cfg.cache.max_item_bytes = pixmirror::config::ByteSize(256 << 10);
    cfg.process.memory_budget =
        pixmirror::config::MemoryBudget(Some(pixmirror::config::ByteSize(16 << 20)));
    cfg.derivatives.write = pixmirror::config::WriteMode::Sync;
    assert!(video.len() > 16 << 20, "{}", video.len());
    let server = TestServer::start(cfg).await;
    let q = "x-oss-process=video/snapshot,t_1000,f_jpg,w_320";
    let snapshot = |key: &str| format!("{key}__op__video/snapshot,f_jpg,h_0,t_1000,w_320");
    let stored = env.key("stored/clip.mp4");
    let r = get(&server.url(&format!("{stored}?{q}"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.dims(), (320, 180));
    assert_eq!(whole_count.hits.load(Ordering::SeqCst), 1);
    // The bucket holds the video as the origin sent it, and the snapshot.
    let obj = env.store.get(&stored).await.expect("stored");
    let bytes = pixmirror::storage::read_limited(obj.body, u64::MAX, 0)
        .await
        .expect("body");
    assert!(bytes == video, "the stored video differs");
    assert!(env.exists(&snapshot(&stored)).await);
    let m = &server.app.metrics;
    let from_store = m.video_read_bytes.with_label_values(&["store"]).get();
    assert!(
        from_store > 0 && from_store < video.len() as u64,
        "{from_store}"
    );
    // Another time: read from the bucket, the origin not asked again.
    let r = get(&server.url(&format!(
        "{stored}?x-oss-process=video/snapshot,t_1500,f_png"
    )))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(whole_count.hits.load(Ordering::SeqCst), 1);
    // An image request for the video is still held to the image limit.
    let r = get(&server.url(&format!("{stored}?x-oss-process=image/resize,w_10"))).await;
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    // A rule that does not store, an origin that serves ranges: ranged GETs
    // of the origin, a small share of the video, nothing stored.
    let proxied = env.key("proxied/clip.mp4");
    let r = get(&server.url(&format!("{proxied}?{q}"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.dims(), (320, 180));
    let sent = ranged_count.sent.load(Ordering::SeqCst);
    let counted = m.video_read_bytes.with_label_values(&["mirror"]).get();
    println!(
        "proxied: {sent} of {} bytes in {} ranged GETs",
        video.len(),
        ranged_count.hits.load(Ordering::SeqCst)
    );
    assert!(sent * 10 < video.len() as u64, "{sent}");
    assert_eq!(counted, sent);
    // Again: from memory, the origin not asked (nothing in the bucket to check).
    let hits = ranged_count.hits.load(Ordering::SeqCst);
    let again = get(&server.url(&format!("{proxied}?{q}"))).await;
    assert_eq!((again.status, again.cache()), (200, "memory"));
    assert_eq!(ranged_count.hits.load(Ordering::SeqCst), hits);
    assert!(!env.exists(&proxied).await);
    assert!(!env.exists(&snapshot(&proxied)).await);
    // An origin that answers ranges whole: fetched once to a spool on disk.
    let proxied = env.key("proxied-whole/clip.mp4");
    let r = get(&server.url(&format!("{proxied}?{q}"))).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.dims(), (320, 180));
    assert!(!env.exists(&proxied).await);
    server.stop().await;
}

fn binary(args: &[&str], cwd: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run pixmirror");
    assert!(
        out.status.success(),
        "pixmirror {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Styles, the `!style` separator, signed URLs, `warm` and `pixmirror
/// process` take snapshots like any other process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn styles_signatures_warm_and_the_cli_take_snapshots() {
    let env = Env::new(Backend::Fs, "video-product").await;
    let key = env.key("clips/rb.mp4");
    let video = red_blue("h264", "mp4");
    put(&env.store, &key, video.clone(), "video/mp4").await;
    let dir = tempfile::tempdir().expect("tmp");
    let conf = dir.path().join("pixmirror.toml");
    let secret = "00112233445566778899aabbccddeeff";
    env.write_config(
        &conf,
        &format!(
            "[styles]\ncover = \"video/snapshot,t_3500,f_png,w_320\"\nseparators = [\"!\"]\n\
             [signing]\nrequired = true\nkeys = [\"{secret}\"]\n"
        ),
    );
    let cfg = pixmirror::config::Config::load(&conf, true).expect("config");
    let server = TestServer::start(cfg).await;
    // Unsigned: 403, nothing read.
    let r = get(&server.url(&format!("{key}!cover"))).await;
    assert_eq!(r.status, 403);
    for path in [
        format!("/{key}!cover"),
        format!("/{key}?x-oss-process=style/cover"),
    ] {
        let signed = binary(
            &[
                "sign",
                "--config",
                conf.to_str().expect("utf-8"),
                &format!("http://x{path}"),
            ],
            dir.path(),
        );
        let signed = signed.trim_start_matches("http://x");
        let r = get(&server.url(signed)).await;
        assert_eq!(
            r.status,
            200,
            "{signed}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.dims(), (320, 180));
        assert!(close(middle(&r.body), BLUE));
    }
    assert_eq!(
        server.processed(),
        1,
        "the style and its separator are one derivative"
    );
    server.stop().await;
    // `warm` renders the snapshots a log names; `process` on a local file.
    let plain = dir.path().join("plain.toml");
    env.write_config(&plain, "");
    let log = dir.path().join("access.log");
    let line = |q: &str| {
        format!("203.0.113.7 - - [24/Nov/2026:10:00:00 +0000] \"GET /{key}?x-oss-process={q} HTTP/1.1\" 200 1024 \"-\" \"Mozilla/5.0\"\n")
    };
    let log_text = line("video/snapshot,t_1000,f_jpg,w_160") + &line("video/snapshot,t_4000,f_jpg");
    std::fs::write(&log, log_text).expect("log");
    let summary = binary(
        &[
            "warm",
            "--config",
            plain.to_str().expect("utf-8"),
            log.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    assert!(summary.contains("rendered 2"), "{summary}");
    for stored in [
        format!("{key}__op__video/snapshot,f_jpg,h_0,t_1000,w_160"),
        format!("{key}__op__video/snapshot,f_jpg,h_0,t_4000,w_0"),
    ] {
        assert!(env.exists(&stored).await, "{stored}");
    }
    let local = dir.path().join("clip.mp4");
    std::fs::write(&local, &video).expect("video");
    let out = dir.path().join("frame.png");
    binary(
        &[
            "process",
            "--ops",
            "video/snapshot,t_1000,f_png,w_64",
            local.to_str().expect("utf-8"),
            out.to_str().expect("utf-8"),
        ],
        dir.path(),
    );
    let png = std::fs::read(&out).expect("frame");
    assert_eq!(image::load_from_memory(&png).expect("png").width(), 64);
    assert!(close(middle(&png), RED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_past_the_timeout_is_a_504_and_frees_its_slot() {
    let env = Env::new(Backend::Fs, "video-slow").await;
    let key = env.key("clips/hd30.mp4");
    put(&env.store, &key, hd30(), "video/mp4").await;
    let mut cfg = env.config();
    cfg.process.timeout = pixmirror::config::Dur(std::time::Duration::from_millis(30));
    cfg.process.workers = 1;
    let server = TestServer::start(cfg).await;
    // The last second of 720p from the keyframe at 28 s: far more than 30 ms.
    let url = server.url(&format!("{key}?x-oss-process=video/snapshot,t_29900,f_jpg"));
    let started = std::time::Instant::now();
    let r = get(&url).await;
    assert_eq!(r.status, 504, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.code(), "Timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server.app.metrics.pool_in_use.get(),
        0,
        "the slot is free again"
    );
    let failed = &server.app.metrics.video_snapshot_seconds;
    assert_eq!(failed.with_label_values(&["failed"]).get_sample_count(), 1);
    server.stop().await;
}

/// Hostile videos through `pixmirror process`, one process each: each a 422,
/// and the largest resident set of them all stays small.
#[test]
// Each child is reaped by `wait4`, which also gives its own peak RSS.
#[allow(clippy::zombie_processes)]
fn hostile_videos_keep_the_resident_set_small() {
    let v = red_blue("h264", "mp4");
    let (many_frames, huge) = (many_frames(&v), huge(&v));
    let mut garbage = v.clone();
    let mut x = 0x2545_F491u32;
    for b in garbage.iter_mut().skip(v.len() / 3) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let tmp = tempfile::tempdir().expect("tmp");
    for (name, bytes) in [
        ("frames", many_frames),
        ("huge", huge),
        ("huge-sps", huge_sps(&v)),
        ("garbage", garbage),
    ] {
        let input = tmp.path().join(format!("{name}.mp4"));
        std::fs::write(&input, bytes).expect("write");
        let mut child = Command::new(env!("CARGO_BIN_EXE_pixmirror"))
            .args(["process", "--ops", "video/snapshot,t_99999,f_jpg"])
            .arg(&input)
            .arg(tmp.path().join("out.jpg"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run");
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .expect("stderr")
            .read_to_string(&mut err)
            .expect("stderr");
        // This child's own peak (other tests' children are not counted).
        let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
        // SAFETY: waits for our own child; fills `status` and `usage`.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        assert_eq!(pid, child.id() as i32);
        let peak_mb = usage.ru_maxrss / 1024;
        println!("{name}: peak resident set {peak_mb} MB; {}", err.trim());
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) != 0,
            "{name}: {status}"
        );
        assert!(err.contains("UnprocessableImage"), "{name}: {err}");
        assert!(peak_mb < 300, "{name}: {peak_mb} MB");
    }
}

/// 2.5 s at 25 frames a second, frame N grey at luma 16 + 3N (B pictures,
/// keyframes every 2 s, no scene cut): the frame at t is exactly
/// floor(t / 40 ms), past the end the last one (62: ffmpeg's source makes
/// 63 frames of 2.5 s).
#[test]
fn the_exact_frame_at_every_time() {
    let path = dir().join("numbered-3.mp4");
    {
        let _writing = writing();
        if !path.exists() {
            let p = path.to_string_lossy().to_string();
            let mut args = vec![
                "-f",
                "lavfi",
                "-i",
                "color=c=black:s=160x96:r=25:d=2.5",
                "-vf",
                "geq=lum='16+N*3':cb=128:cr=128",
            ];
            args.extend(codec_args("h264"));
            args.extend(["-bf", "3", "-crf", "12", "-movflags", "+faststart", &p]);
            ffmpeg(&args);
        }
    }
    let v = std::fs::read(&path).expect("video");
    let frame_of = |process: &str| {
        let s = snap(&v, process);
        let img = image::load_from_memory(&s.output.bytes)
            .expect("png")
            .to_luma8();
        // Grey g = 3N * 255/219 (limited-range luma to RGB): back to N.
        let g = img.get_pixel(80, 48).0[0] as f64;
        (g * 219.0 / 255.0 / 3.0).round() as i64
    };
    for t in (0..2500).step_by(20) {
        let got = frame_of(&format!("video/snapshot,t_{t},f_png"));
        assert_eq!(got, t as i64 / 40, "t_{t}");
    }
    assert_eq!(frame_of("video/snapshot,t_2520,f_png"), 62);
    assert_eq!(frame_of("video/snapshot,t_2600,f_png"), 62);
    assert_eq!(frame_of("video/snapshot,t_999999,f_png"), 62);
    // m_fast: the keyframe at or before t (frames 0 and 50).
    assert_eq!(frame_of("video/snapshot,t_1990,f_png,m_fast"), 0);
    assert_eq!(frame_of("video/snapshot,t_2000,f_png,m_fast"), 50);
    assert_eq!(frame_of("video/snapshot,t_999999,f_png,m_fast"), 50);
}
