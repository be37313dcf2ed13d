//! The admin listener: `/healthz`, `/readyz`, `/metrics`, `POST /purge/<key>`.

use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use super::response::{error, full, Body};
use crate::error::Error;
use crate::service::App;

fn text(status: StatusCode, ct: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ct)
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full("")))
}

pub async fn handle<B>(app: Arc<App>, req: Request<B>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => match app.store.ready().await {
            Ok(()) => text(StatusCode::OK, "text/plain", "ready\n".into()),
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    "store unreachable\n".into(),
                )
            }
        },
        (&Method::GET, "/metrics") => {
            app.l1.update_gauges(&app.metrics).await;
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                app.metrics.render(),
            )
        }
        (&Method::POST, p) | (&Method::DELETE, p) if p.starts_with("/purge/") => {
            let raw = &p["/purge/".len()..];
            let key = match percent_decode_str(raw).decode_utf8() {
                Ok(k) if !k.is_empty() => k.into_owned(),
                _ => {
                    return error(
                        &Error::invalid("purge needs a percent-encoded UTF-8 key"),
                        false,
                    )
                }
            };
            match app.purge(&key).await {
                Ok(n) => text(
                    StatusCode::OK,
                    "application/json",
                    serde_json::json!({ "key": key, "deleted": n }).to_string(),
                ),
                Err(e) => error(&e, false),
            }
        }
        _ => error(
            &Error::NoSuchKey(format!("no admin endpoint {path}")),
            false,
        ),
    }
}
