//! JPEG XL output: `format,jxl`, and `format,auto` when `process.auto_formats`
//! lists it (its order is the preference). JXL sources stay refused: libvips
//! marks its JXL loader unsafe for untrusted input. Its own test binary,
//! because the last step unblocks that loader in this process to read the
//! output back.

mod common;

use common::{get, put, request, Backend, Env, TestServer};
use pixmirror::process::Format;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jpeg_xl_output_and_negotiation() {
    let env = Env::new(Backend::Fs, "jxl").await;
    let mut cfg = env.config();
    cfg.process.auto_formats = vec!["jxl".into(), "avif".into(), "webp".into()];
    let s = TestServer::start(cfg).await;
    let k = env.key("sunset.jpg"); // 800x533
    let r = get(&s.url(&format!("{k}?x-oss-process=image/resize,w_300/format,jxl"))).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (r.format(), r.header("content-type")),
        (Some(Format::Jxl), "image/jxl")
    );
    let jxl = r.body.clone();
    // An RGBA PNG decoded with shrink-on-load (the memory image path): its
    // alpha is alpha to the encoder, not a fourth colour channel.
    let g = env.key("gulp.png"); // 320x200 RGBA
    let r = get(&s.url(&format!("{g}?x-oss-process=image/resize,w_64/format,jxl"))).await;
    assert_eq!(
        (r.status, r.format()),
        (200, Some(Format::Jxl)),
        "{:?}",
        r.body
    );
    let rgba_jxl = r.body.clone();
    let auto = s.url(&format!("{k}?x-oss-process=image/resize,w_300/format,auto"));
    for (accept, want) in [
        ("image/jxl,image/avif,image/webp,*/*", Format::Jxl),
        ("image/avif,image/webp,*/*", Format::Avif),
        ("image/jxl;q=0,image/webp", Format::Webp),
    ] {
        let r = request("GET", &auto, &[("accept", accept)]).await;
        assert_eq!((r.status, r.format()), (200, Some(want)), "{accept}");
        assert_eq!(r.header("vary"), "Accept");
    }
    s.stop().await;
    // Off by default: the same Accept gets AVIF.
    let s = TestServer::start(env.config()).await;
    let auto = s.url(&format!("{k}?x-oss-process=image/resize,w_300/format,auto"));
    let r = request("GET", &auto, &[("accept", "image/jxl,image/avif")]).await;
    assert_eq!((r.status, r.format()), (200, Some(Format::Avif)));
    // A JXL source is refused, not decoded.
    put(&env.store, &env.key("in.jxl"), jxl.to_vec(), "image/jxl").await;
    let r = get(&s.url(&format!(
        "{}?x-oss-process=image/resize,w_10",
        env.key("in.jxl")
    )))
    .await;
    assert_eq!((r.status, r.code().as_str()), (422, "UnprocessableImage"));
    s.stop().await;
    // Read the output back (this test process only).
    unsafe { libvips::bindings::vips_operation_block_set(c"VipsForeignLoadJxl".as_ptr(), 0) };
    let h = pixmirror::process::engine::pipeline::probe(&jxl, u64::MAX, u32::MAX).expect("decodes");
    assert_eq!((h.width, h.height), (300, 200));
    let h = pixmirror::process::engine::pipeline::probe(&rgba_jxl, u64::MAX, u32::MAX)
        .expect("decodes");
    assert_eq!((h.width, h.height), (64, 40));
}
