//! The two listeners (images and admin) on hyper 1, with graceful shutdown:
//! stop accepting → finish in-flight requests → drain the write-back queue.

pub mod admin;
pub mod offline;
pub mod request;
pub mod response;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::config::Config;
use crate::error::Error;
use crate::service::sites::Sites;
use crate::service::App;
use crate::storage::DynStore;
use response::Body;

/// The image listener's handler: the site for the `Host`, then parse → serve →
/// respond → finish (metrics, log).
pub async fn handle(sites: Arc<Sites>, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().host());
    let Some(app) = sites.for_host(host).cloned() else {
        let e = Error::NoSuchKey("no site serves this host".into());
        let resp = response::error(&e, false);
        return finish(&sites.default.metrics, &req, "none", Some(&e), resp, start);
    };
    serve_site(app, req, start).await
}

async fn serve_site(app: Arc<App>, req: Request<Incoming>, start: Instant) -> Response<Body> {
    let cond = request::Conditions::of(&req);
    let result = match request::parse(&req, &app.cfg, &cond) {
        Ok(ir) => app.serve(ir).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(reply) => {
            let cs = reply.cache_status.as_str();
            let inm = cond.if_none_match.as_deref();
            let resp = response::reply(reply, cond.head, inm, &app.cfg.http.cache_control);
            finish(&app.metrics, &req, cs, None, resp, start)
        }
        Err(e) => {
            if matches!(e, Error::Internal(_)) {
                tracing::error!(error = %e, uri = %req.uri(), "internal error");
            }
            let resp = response::error(&e, cond.head);
            finish(&app.metrics, &req, "none", Some(&e), resp, start)
        }
    }
}

/// The one place every response of the image listener ends, errors included:
/// requests and duration by cache status and code, response bytes, an error
/// once by its category and SPEC code, the debug log line.
fn finish(
    metrics: &crate::metrics::Metrics,
    req: &Request<Incoming>,
    cache_status: &str,
    error: Option<&Error>,
    resp: Response<Body>,
    start: Instant,
) -> Response<Body> {
    let code = resp.status().as_u16().to_string();
    metrics
        .requests
        .with_label_values(&[cache_status, &code])
        .inc();
    metrics
        .request_seconds
        .with_label_values(&[cache_status, &code])
        .observe(start.elapsed().as_secs_f64());
    if let Some(n) = hyper::body::Body::size_hint(resp.body()).exact() {
        metrics
            .response_bytes
            .with_label_values(&[cache_status])
            .inc_by(n);
    }
    if let Some(e) = error {
        metrics
            .errors
            .with_label_values(&[e.category(), e.code()])
            .inc();
    }
    tracing::debug!(uri = %req.uri(), status = %code, cache = cache_status, ms = start.elapsed().as_millis() as u64, "request");
    resp
}

/// The accepted stream; on an accept error (out of file descriptors or similar)
/// wait a little instead of spinning.
async fn accepted(conn: std::io::Result<(TcpStream, SocketAddr)>) -> Option<TcpStream> {
    match conn {
        Ok((stream, _)) => {
            // A streamed body goes out after the headers in a second write;
            // with Nagle on, that write can wait for the client's delayed ACK.
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY failed");
            }
            Some(stream)
        }
        Err(e) => {
            tracing::warn!(error = %e, "accept failed");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            None
        }
    }
}

/// Serve one connection with `handler`, watched by the graceful shutdown.
fn serve_connection<F>(
    builder: &Builder<TokioExecutor>,
    graceful: &GracefulShutdown,
    stream: TcpStream,
    sites: Arc<Sites>,
    handler: fn(Arc<Sites>, Request<Incoming>) -> F,
) where
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let svc = service_fn(move |req| {
        let fut = handler(sites.clone(), req);
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    let conn = graceful.watch(
        builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned(),
    );
    tokio::spawn(async move {
        let _ = conn.await;
    });
}

pub struct Server {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The default site's App (`sites.default`).
    pub app: Arc<App>,
    pub sites: Arc<Sites>,
    listener: TcpListener,
    admin: TcpListener,
}

impl Server {
    /// Bind both listeners with the configured store.
    pub async fn bind(cfg: Config) -> Result<Server, String> {
        let store = crate::storage::open::from_config(&cfg.storage).await?;
        Server::bind_with_store(cfg, store).await
    }

    pub async fn bind_with_store(cfg: Config, store: DynStore) -> Result<Server, String> {
        crate::process::engine::vips::init().map_err(|e| e.to_string())?;
        let listener = TcpListener::bind(cfg.server.listen)
            .await
            .map_err(|e| format!("server.listen {}: {e}", cfg.server.listen))?;
        let admin = TcpListener::bind(cfg.server.admin_listen)
            .await
            .map_err(|e| format!("server.admin_listen {}: {e}", cfg.server.admin_listen))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let admin_addr = admin.local_addr().map_err(|e| e.to_string())?;
        let sites = Arc::new(Sites::build(cfg, store).await?);
        Ok(Server {
            addr,
            admin_addr,
            app: sites.default.clone(),
            sites,
            listener,
            admin,
        })
    }

    /// Serve until `shutdown` resolves, then drain (bounded by `server.shutdown_timeout`).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), String> {
        let graceful = GracefulShutdown::new();
        let mut builder = Builder::new(TokioExecutor::new());
        // A client that does not finish sending its headers in time is dropped (slowloris).
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(15));
        let (app, sites) = (self.app.clone(), self.sites.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                conn = self.listener.accept() => {
                    if let Some(stream) = accepted(conn).await {
                        serve_connection(&builder, &graceful, stream, sites.clone(), handle);
                    }
                }
                conn = self.admin.accept() => {
                    if let Some(stream) = accepted(conn).await {
                        serve_connection(&builder, &graceful, stream, sites.clone(), admin::handle);
                    }
                }
            }
        }
        drop(self.listener);
        drop(self.admin);
        let deadline = app.cfg.server.shutdown_timeout.0;
        let started = Instant::now();
        tracing::info!("shutting down: finishing in-flight requests");
        if tokio::time::timeout(deadline, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("in-flight requests did not finish in time");
        }
        let depth = app.metrics.writeback_queue_depth.get();
        tracing::info!(queued = depth, "draining the write-back queue");
        for site in sites.all() {
            let left = deadline.saturating_sub(started.elapsed());
            if !site.writeback.drain(left).await {
                tracing::warn!("write-back queue not drained before the deadline");
            }
        }
        Ok(())
    }
}
