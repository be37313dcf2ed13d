//! The admin listener: `/healthz`, `/readyz` (every site's store),
//! `/metrics` (one registry for all sites), `POST /purge/<key>`
//! (`?site=<name>`: another site than the default; `scope=memory`: this
//! instance's L1 only, for the fleet purge), which
//! needs `Authorization: Bearer <server.admin_token>` when a token is set, and
//! is refused without one unless the admin listener is on loopback.

use std::sync::Arc;

use http::{header, Method, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;

use super::response::{error, full, Body};
use crate::error::Error;
use crate::service::sites::Sites;

fn text(status: StatusCode, ct: &str, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, ct)
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full("")))
}

/// The value of `name` in the query, if given.
fn query_param<'a, B>(req: &'a Request<B>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

pub async fn handle<B>(sites: Arc<Sites>, req: Request<B>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, "/readyz") => readyz(&sites).await,
        (&Method::GET, "/metrics") => {
            let app = &sites.default;
            app.l1.update_gauges(&app.metrics).await;
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4",
                app.metrics.render(),
            )
        }
        (&Method::POST, p) | (&Method::DELETE, p) if p.starts_with("/purge/") => {
            purge(&sites, &req, &p["/purge/".len()..]).await
        }
        _ => error(
            &Error::NoSuchKey(format!("no admin endpoint {path}")),
            false,
        ),
    }
}

/// Ready when every site's store answers.
async fn readyz(sites: &Sites) -> Response<Body> {
    for site in sites.all() {
        if let Err(e) = site.store.ready().await {
            tracing::warn!(error = %e, "readiness check failed");
            return text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                "store unreachable\n".into(),
            );
        }
    }
    text(StatusCode::OK, "text/plain", "ready\n".into())
}

/// `POST|DELETE /purge/<percent-encoded key>[?site=][&scope=memory]`.
async fn purge<B>(sites: &Sites, req: &Request<B>, raw: &str) -> Response<Body> {
    if let Err(e) = purge_allowed(&sites.default.cfg.server, req) {
        return error(&e, false);
    }
    let key = match percent_decode_str(raw).decode_utf8() {
        Ok(k) if !k.is_empty() => k.into_owned(),
        _ => {
            return error(
                &Error::invalid("purge needs a percent-encoded UTF-8 key"),
                false,
            )
        }
    };
    let Some(app) = sites.named(query_param(req, "site")) else {
        return error(&Error::invalid("purge: no such site"), false);
    };
    let json = |v: serde_json::Value| text(StatusCode::OK, "application/json", v.to_string());
    if query_param(req, "scope") == Some("memory") {
        app.purge_memory(&key);
        return json(serde_json::json!({ "key": key, "scope": "memory" }));
    }
    match app.purge(&key).await {
        Ok(n) => json(serde_json::json!({ "key": key, "deleted": n })),
        Err(e) => error(&e, false),
    }
}

/// May this request purge? With `server.admin_token`: only with that bearer
/// token (compared in constant time). Without: only on a loopback listener.
fn purge_allowed<B>(server: &crate::config::ServerConfig, req: &Request<B>) -> Result<(), Error> {
    let Some(token) = server.admin_token.as_deref().filter(|t| !t.is_empty()) else {
        return if server.admin_listen.ip().is_loopback() {
            Ok(())
        } else {
            Err(Error::AccessDenied(
                "purge over the network needs server.admin_token".into(),
            ))
        };
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Constant time in the token's length: compare digests.
    use sha2::{Digest, Sha256};
    let (a, b) = (
        Sha256::digest(given.as_bytes()),
        Sha256::digest(token.as_bytes()),
    );
    let same = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0;
    if same {
        Ok(())
    } else {
        Err(Error::AccessDenied(
            "purge: a valid admin token is required".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>) -> Request<()> {
        let mut b = Request::post("/purge/a.jpg");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn purge_needs_the_token_or_a_loopback_listener() {
        let mut server = crate::config::ServerConfig::default();
        assert!(
            purge_allowed(&server, &req(None)).is_ok(),
            "loopback, no token"
        );
        server.admin_listen = "0.0.0.0:8081".parse().expect("addr");
        assert!(
            purge_allowed(&server, &req(None)).is_err(),
            "network, no token"
        );
        server.admin_token = Some("t0k".into());
        assert!(purge_allowed(&server, &req(Some("Bearer t0k"))).is_ok());
        for bad in [None, Some("Bearer t0"), Some("Bearer t0kk"), Some("t0k")] {
            let e = purge_allowed(&server, &req(bad)).expect_err("refused");
            assert_eq!(e.status().as_u16(), 403);
        }
    }
}
