//! A test HTTP origin on loopback (a stand-in for a business API or an old
//! website): counts requests per path, records headers and queries, and can
//! delay, fail, redirect, send the wrong content type or a bad Content-MD5.
//! Behaviour is chosen by the first path segment.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> OriginBody {
    Full::new(b.into()).boxed()
}

/// A body sent as `chunks` of `size` bytes, `pause` apart (`None` chunks: forever).
fn streamed(chunks: Option<usize>, size: usize, pause: Duration) -> OriginBody {
    let stream = futures_util::stream::unfold(0usize, move |n| async move {
        if chunks.is_some_and(|c| n >= c) {
            return None;
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let frame = hyper::body::Frame::data(Bytes::from(vec![0xFFu8; size]));
        Some((Ok::<_, Infallible>(frame), n + 1))
    });
    StreamBody::new(stream).boxed()
}
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

#[derive(Default)]
struct State {
    hits: HashMap<String, u64>,
    headers: HashMap<String, http::HeaderMap>,
    queries: HashMap<String, String>,
}

#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

fn fixture_for(name: &str) -> (Vec<u8>, &'static str) {
    let file = name.rsplit('/').next().unwrap_or(name);
    let (f, ct) = if file.ends_with(".png") {
        ("gulp.png", "image/png")
    } else {
        ("sunset.jpg", "image/jpeg")
    };
    (
        super::fixture(if file.starts_with("dragonfly") {
            "dragonfly.jpg"
        } else {
            f
        }),
        ct,
    )
}

fn md5_b64(b: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(b))
}

impl Origin {
    pub async fn start() -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), addr, req));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Origin { addr, state }
    }

    /// A URL template for a behaviour: `http://127.0.0.1:P/<behaviour>/{key}`.
    pub fn template(&self, behaviour: &str) -> String {
        format!("http://{}/{behaviour}/{{key}}", self.addr)
    }

    /// Requests that reached `path` (e.g. `/render/users/u1.jpg`).
    pub fn hits(&self, path: &str) -> u64 {
        self.state
            .lock()
            .map(|s| s.hits.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    pub fn total_hits(&self) -> u64 {
        self.state
            .lock()
            .map(|s| s.hits.values().sum())
            .unwrap_or(0)
    }

    pub fn headers(&self, path: &str) -> http::HeaderMap {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.headers.get(path).cloned())
            .unwrap_or_default()
    }

    pub fn query(&self, path: &str) -> Option<String> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.queries.get(path).cloned())
    }
}

async fn handle(
    st: Arc<Mutex<State>>,
    addr: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<OriginBody>, Infallible> {
    let path = req.uri().path().to_string();
    let n = {
        let mut s = st.lock().expect("state");
        let n = {
            let h = s.hits.entry(path.clone()).or_insert(0);
            *h += 1;
            *h
        };
        s.headers.insert(path.clone(), req.headers().clone());
        if let Some(q) = req.uri().query() {
            s.queries.insert(path.clone(), q.to_string());
        }
        n
    };
    let (behaviour, rest) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let image = |status: StatusCode, md5_override: Option<&str>| {
        let (body, ct) = fixture_for(rest);
        let md5 = md5_override
            .map(str::to_string)
            .unwrap_or_else(|| md5_b64(&body));
        Response::builder()
            .status(status)
            .header("content-type", ct)
            .header("content-md5", md5)
            .header("etag", "\"origin-etag\"")
            .body(full(body))
            .expect("response")
    };
    let status = |code: u16| {
        Response::builder()
            .status(code)
            .header("content-type", "text/plain")
            .body(full(format!("status {code}")))
            .expect("response")
    };
    let redirect = |to: String| {
        Response::builder()
            .status(302)
            .header("location", to)
            .body(full(Bytes::new()))
            .expect("response")
    };
    let resp = match behaviour {
        "img" | "render" => image(StatusCode::OK, None),
        "slow" => {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            image(StatusCode::OK, None)
        }
        "fail" => status(503),
        "forbidden" => status(403),
        "missing" => status(404),
        "flaky" if n == 1 => status(500),
        "flaky" => image(StatusCode::OK, None),
        "redirect" => redirect(format!("/img/{rest}")),
        "redirect-abs" => redirect(format!("http://localhost:{}/img/{rest}", addr.port())),
        "redirect-loop" => redirect(format!("/redirect-loop/{rest}")),
        // /goto/<host:port>/<key> → http://<host:port>/img/<key>
        "goto" => {
            let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
            redirect(format!("http://{authority}/img/{key}"))
        }
        "html" => Response::builder()
            .header("content-type", "text/html")
            .body(full(Bytes::from_static(b"<html>not an image</html>")))
            .expect("response"),
        // Headers at once, then one byte every 100 ms for 100 s.
        "dribble" => Response::builder()
            .header("content-type", "image/jpeg")
            .body(streamed(Some(1000), 1, Duration::from_millis(100)))
            .expect("response"),
        // A body that never ends, as fast as the client reads it.
        "endless" => Response::builder()
            .header("content-type", "image/jpeg")
            .body(streamed(None, 64 * 1024, Duration::ZERO))
            .expect("response"),
        "badmd5" => image(StatusCode::OK, Some("AAAAAAAAAAAAAAAAAAAAAA==")),
        _ => status(404),
    };
    Ok(resp)
}
