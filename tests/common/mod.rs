//! Shared helpers of the integration tests: a pixmirror server in-process on
//! loopback, an HTTP client, the Garage bucket `make test` starts, decoders.
#![allow(dead_code)]

pub mod fake_s3;
pub mod gated;
pub mod origin;
pub mod outage;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pixmirror::config::{Config, StorageKind};
use pixmirror::service::App;
use pixmirror::storage::{DynStore, PutObject};

pub fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{t:x}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Where a test's objects live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Fs,
    S3,
}

pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests with `make test`, which starts Garage (tests/support/garage.sh)")
    })
}

/// A config for tests: ephemeral ports, the given backend.
pub fn config(backend: Backend, fs_root: &Path) -> Config {
    let mut c = Config::default();
    c.server.listen = "127.0.0.1:0".parse().expect("addr");
    c.server.admin_listen = "127.0.0.1:0".parse().expect("addr");
    c.server.shutdown_timeout = pixmirror::config::Dur(std::time::Duration::from_secs(10));
    match backend {
        Backend::Fs => {
            c.storage.kind = StorageKind::Fs;
            c.storage.root = fs_root.to_path_buf();
        }
        Backend::S3 => {
            c.storage.kind = StorageKind::S3;
            c.storage.s3.bucket = env("PIXMIRROR_TEST_S3_BUCKET");
            c.storage.s3.endpoint = Some(env("PIXMIRROR_TEST_S3_ENDPOINT"));
            c.storage.s3.region = Some(env("PIXMIRROR_TEST_S3_REGION"));
            c.storage.s3.force_path_style = true;
            c.storage.s3.access_key_id = Some(env("PIXMIRROR_TEST_S3_ACCESS_KEY"));
            c.storage.s3.secret_access_key = Some(env("PIXMIRROR_TEST_S3_SECRET_KEY"));
        }
    }
    c.styles.insert(
        "thumb".into(),
        "image/resize,m_fill,w_200,h_200/format,webp".into(),
    );
    c
}

pub struct TestServer {
    pub base: String,
    pub admin: String,
    pub app: Arc<App>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestServer {
    pub async fn start(cfg: Config) -> TestServer {
        let server = pixmirror::http::Server::bind(cfg).await.expect("bind");
        TestServer::run(server)
    }

    pub async fn start_with_store(cfg: Config, store: DynStore) -> TestServer {
        let server = pixmirror::http::Server::bind_with_store(cfg, store)
            .await
            .expect("bind");
        TestServer::run(server)
    }

    fn run(server: pixmirror::http::Server) -> TestServer {
        let base = format!("http://{}", server.addr);
        let admin = format!("http://{}", server.admin_addr);
        let app = server.app.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async move {
            let _ = rx.await;
        }));
        TestServer {
            base,
            admin,
            app,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}/{}", self.base, path_and_query.trim_start_matches('/'))
    }

    /// Graceful stop: in-flight requests, then the write-back queue.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    pub fn processed(&self) -> u64 {
        self.app.metrics.processed.get()
    }
    pub fn store_fetches(&self) -> u64 {
        self.app
            .metrics
            .source_fetches
            .with_label_values(&["store"])
            .get()
    }
    pub fn mirror_fetches(&self) -> u64 {
        self.app
            .metrics
            .source_fetches
            .with_label_values(&["mirror"])
            .get()
    }
    pub fn writes(&self, result: &str) -> u64 {
        self.app
            .metrics
            .store_writes
            .with_label_values(&[result])
            .get()
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn cache(&self) -> &str {
        self.header("x-cache-status")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or("").to_string()
    }
    /// (width, height) of the image body, read by libvips.
    pub fn dims(&self) -> (u32, u32) {
        if self.format() == Some(pixmirror::process::Format::Bmp) {
            // libvips reads BMP only through ImageMagick, blocked for untrusted input.
            let img = image::load_from_memory(&self.body).expect("bmp");
            return (img.width(), img.height());
        }
        let h = pixmirror::process::engine::pipeline::probe(&self.body, u64::MAX, u32::MAX)
            .unwrap_or_else(|e| {
                panic!(
                    "body is not an image ({e}); status {} {}",
                    self.status,
                    String::from_utf8_lossy(&self.body[..self.body.len().min(200)])
                )
            });
        (h.width, h.height)
    }
    pub fn format(&self) -> Option<pixmirror::process::Format> {
        pixmirror::process::Format::sniff(&self.body)
    }
}

pub async fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut b = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::new()).expect("request");
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str) -> Resp {
    request("GET", url, &[]).await
}

/// Start a GET per URL, all at once; await the handles when the test is ready.
pub fn spawn_gets(urls: impl IntoIterator<Item = String>) -> Vec<tokio::task::JoinHandle<Resp>> {
    urls.into_iter()
        .map(|u| tokio::spawn(async move { get(&u).await }))
        .collect()
}

/// Concurrent GETs of every URL; the responses in order.
pub async fn burst(urls: impl IntoIterator<Item = String>) -> Vec<Resp> {
    futures_util::future::join_all(spawn_gets(urls))
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect()
}

pub async fn post(url: &str) -> Resp {
    request("POST", url, &[]).await
}

/// Decode JPEG/PNG/WebP/GIF/BMP bodies to RGBA pixels.
pub fn rgba(body: &[u8]) -> image::RgbaImage {
    image::load_from_memory(body)
        .expect("decodable image")
        .to_rgba8()
}

/// Is the pixel close to the colour (JPEG-lossy tolerance)?
pub fn near(p: &image::Rgba<u8>, c: [u8; 3], tol: i32) -> bool {
    (0..3).all(|i| (p.0[i] as i32 - c[i] as i32).abs() <= tol)
}

/// An image of four coloured quadrants: red | green / blue | white.
pub fn quadrants(w: u32, h: u32) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        let c = match (x < w / 2, y < h / 2) {
            (true, true) => [255, 0, 0],
            (false, true) => [0, 255, 0],
            (true, false) => [0, 0, 255],
            (false, false) => [255, 255, 255],
        };
        image::Rgb(c)
    })
}

pub fn encode(img: &image::RgbImage, fmt: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, fmt).expect("encode");
    out.into_inner()
}

/// Insert an EXIF APP1 segment with the given Orientation into a JPEG.
pub fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut exif = b"Exif\0\0MM\0\x2a\0\0\0\x08".to_vec();
    exif.extend_from_slice(&1u16.to_be_bytes());
    exif.extend_from_slice(&0x0112u16.to_be_bytes());
    exif.extend_from_slice(&3u16.to_be_bytes());
    exif.extend_from_slice(&1u32.to_be_bytes());
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0]);
    exif.extend_from_slice(&0u32.to_be_bytes());
    with_exif(jpeg, &exif[6..])
}

/// Insert an EXIF APP1 segment holding `tiff` (a TIFF header and its
/// directories) right after a JPEG's SOI marker.
pub fn with_exif(jpeg: &[u8], tiff: &[u8]) -> Vec<u8> {
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((tiff.len() + 8) as u16).to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A bucket handle for setting up and inspecting objects directly.
pub async fn store(backend: Backend, fs_root: &Path) -> DynStore {
    let cfg = config(backend, fs_root);
    pixmirror::storage::open::from_config(&cfg.storage)
        .await
        .expect("store")
}

pub async fn put(store: &DynStore, key: &str, bytes: Vec<u8>, content_type: &str) {
    store
        .put(
            key,
            PutObject {
                bytes: Bytes::from(bytes),
                content_type: content_type.into(),
                metadata: BTreeMap::new(),
            },
        )
        .await
        .unwrap_or_else(|e| panic!("put {key}: {e}"));
}

pub struct Env {
    pub backend: Backend,
    pub dir: tempfile::TempDir,
    pub prefix: String,
    pub store: DynStore,
}

impl Env {
    /// A fresh namespace in the backend, with the sample fixtures under `<prefix>/`.
    pub async fn new(backend: Backend, name: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = store(backend, dir.path()).await;
        let prefix = unique(name);
        for (f, ct) in [
            ("dragonfly.jpg", "image/jpeg"),
            ("sunset.jpg", "image/jpeg"),
            ("gulp.png", "image/png"),
            ("rotated-exif6.jpg", "image/jpeg"),
            ("truncated.jpg", "image/jpeg"),
            ("not-an-image.jpg", "image/jpeg"),
            ("bomb-header.png", "image/png"),
        ] {
            put(&store, &format!("{prefix}/{f}"), fixture(f), ct).await;
        }
        Env {
            backend,
            dir,
            prefix,
            store,
        }
    }

    pub fn config(&self) -> Config {
        config(self.backend, self.dir.path())
    }

    pub fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.prefix)
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// Write a config file at `path` for the binary: this env's fs store, then `extra` TOML.
    pub fn write_config(&self, path: &Path, extra: &str) {
        let toml = format!(
            "[storage]\nkind = \"fs\"\nroot = \"{}\"\n{extra}",
            self.root().display()
        );
        std::fs::write(path, toml).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    pub async fn exists(&self, key: &str) -> bool {
        match self.store.head(key).await {
            Ok(_) => true,
            Err(pixmirror::storage::StoreError::NotFound) => false,
            Err(e) => panic!("head {key}: {e}"),
        }
    }
}

pub type LogLines = tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStderr>>;

/// Start the real `pixmirror serve` binary with `conf`; its image address is
/// read from the log line `listen=`. The rest of its log is returned.
pub async fn spawn_binary(conf: &Path) -> (tokio::process::Child, String, LogLines) {
    let (child, base, _admin, lines) = spawn_binary_with_admin(conf).await;
    (child, base, lines)
}

/// [`spawn_binary`], also giving the admin address (`admin=` in the same line).
pub async fn spawn_binary_with_admin(
    conf: &Path,
) -> (tokio::process::Child, String, String, LogLines) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pixmirror"))
        .args(["serve", "--config"])
        .arg(conf)
        .env("PIXMIRROR_LOG", "info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let field = |line: &str, name: &str| -> Option<String> {
        let i = line.find(name)? + name.len();
        let addr: String = line[i..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        Some(format!("http://{}", addr.trim_end_matches('\u{1b}')))
    };
    while let Ok(Some(line)) = lines.next_line().await {
        if let (Some(base), Some(admin)) = (field(&line, " listen="), field(&line, " admin=")) {
            return (child, base, admin, lines);
        }
    }
    panic!("the server did not announce its addresses");
}

/// Read and drop a child's log so it never blocks on a full pipe.
pub async fn drain(mut lines: LogLines) {
    while let Ok(Some(_)) = lines.next_line().await {}
}

/// Every `lines` entry appears as a whole line of a metrics exposition: values,
/// not only names.
pub fn assert_metric_lines(text: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            text.lines().any(|l| l == *line),
            "missing `{line}` in\n{text}"
        );
    }
}
