//! `pixmirror purge --fleet NAME <key>`: the stored derivatives are deleted
//! once (by the caller), then every instance behind NAME drops its in-memory
//! copies through its admin listener (`POST /purge/<key>?scope=memory`,
//! authenticated with `server.admin_token`).
//!
//! NAME is a DNS name whose addresses are the instances (a Kubernetes
//! headless Service, an EC2 service-discovery name), or a comma-separated
//! list of `host[:port]`; the port defaults to `server.admin_listen`'s.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Every address behind `name`, deduplicated, in order.
pub async fn resolve(name: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    let mut out: Vec<SocketAddr> = Vec::new();
    for part in name.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let target = if part
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            part.to_string()
        } else {
            format!("{part}:{default_port}")
        };
        let addrs = tokio::net::lookup_host(&target)
            .await
            .map_err(|e| format!("--fleet {part}: {e}"))?;
        for a in addrs {
            if !out.contains(&a) {
                out.push(a);
            }
        }
    }
    if out.is_empty() {
        return Err(format!("--fleet {name}: no addresses"));
    }
    Ok(out)
}

/// Ask the instance at `addr` to drop `key` and its derivatives from memory.
pub async fn purge_memory(addr: SocketAddr, key: &str, token: Option<&str>) -> Result<(), String> {
    let path = crate::mirror::rules::encode_key(key);
    let mut req = http::Request::post(format!("http://{addr}/purge/{path}?scope=memory"));
    if let Some(t) = token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Empty::<Bytes>::new())
        .map_err(|e| format!("{addr}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .map_err(|_| format!("{addr}: no answer in 10 s"))?
        .map_err(|e| format!("{addr}: {e}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{addr}: {status} {}",
            String::from_utf8_lossy(&body).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_and_default_ports() {
        let a = resolve("127.0.0.1:9001, 127.0.0.1:9002,127.0.0.1", 9100)
            .await
            .expect("resolve");
        let ports: Vec<u16> = a.iter().map(|s| s.port()).collect();
        assert_eq!(ports, [9001, 9002, 9100]);
        let dup = resolve("127.0.0.1:9001,127.0.0.1:9001", 1)
            .await
            .expect("dup");
        assert_eq!(dup.len(), 1);
        assert!(resolve("", 1).await.is_err());
        assert!(resolve("no-such-host.invalid", 1).await.is_err());
    }
}
