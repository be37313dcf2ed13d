//! A stand-in S3 endpoint on loopback that answers every request with one S3
//! error (status + `<Code>`), counting requests. Used only for failures Garage
//! cannot be made to produce (it never throttles); everything else runs against
//! the real Garage.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};

pub struct FakeS3 {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl FakeS3 {
    pub async fn start(status: u16, code: &'static str) -> FakeS3 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake s3");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(AtomicU64::new(0));
        let n = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let n = n.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        n.fetch_add(1, Ordering::SeqCst);
                        let body = if req.method() == http::Method::HEAD {
                            String::new()
                        } else if code.is_empty() {
                            // An error document that names no code.
                            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\
                             <Message>not here</Message></Error>"
                                .to_string()
                        } else {
                            format!(
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                                 <Message>{code}</Message><RequestId>r</RequestId></Error>"
                            )
                        };
                        let resp = Response::builder()
                            .status(status)
                            .header("content-type", "application/xml")
                            .body(Full::new(Bytes::from(body)))
                            .expect("response");
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeS3 { addr, requests }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Point an S3 storage config at this endpoint.
    pub fn configure(&self, c: &mut pixmirror::config::Config) {
        c.storage.kind = pixmirror::config::StorageKind::S3;
        c.storage.s3.bucket = "images".into();
        c.storage.s3.endpoint = Some(format!("http://{}", self.addr));
        c.storage.s3.region = Some("us-east-1".into());
        c.storage.s3.force_path_style = true;
        c.storage.s3.access_key_id = Some("AKIDFAKE".into());
        c.storage.s3.secret_access_key = Some("fake".into());
    }
}
