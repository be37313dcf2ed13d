//! Where the mirror's HTTP client may go: the one place for the private-address
//! rule and the redirect rules.
//!
//! - Addresses: the configured origin's host is trusted (a business API often
//!   lives in the VPC), and so is a redirect back to it. Any other host (a
//!   redirect to `allowed_hosts`) is never connected to on a loopback, private,
//!   shared, link-local, unique-local, multicast, reserved or otherwise special
//!   address unless `mirror.allow_private_networks`. Names are checked by
//!   [`GuardedResolver`], the resolver of that client's connector, on the very
//!   addresses it then connects to (a DNS answer that changes between a check and
//!   the connection cannot slip through); IP literals, which the connector does
//!   not resolve, by [`check_literal`] before the request.
//! - Redirects ([`check_redirect`]): only to the origin's host or the rule's
//!   `allowed_hosts`, only http(s), never from https to http, and on the same port
//!   unless `allowed_hosts` names `host:port`. Headers a rule sets (API keys) go
//!   only to the origin's own host and port ([`same_origin`]).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::dns::Name;

/// A connection refused because every or some address is not public. Found
/// again in the client's error chain to tell it from an unreachable origin.
#[derive(Debug)]
pub struct PrivateAddress(pub String);

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves to a non-public address", self.0)
    }
}

impl std::error::Error for PrivateAddress {}

/// Is `e` (or anything in its `source()` chain) a [`PrivateAddress`]?
pub fn is_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<PrivateAddress>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The system resolver, with every answer checked before it is connected to.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    pub allow_private: bool,
    /// The name lookup (the system's: [`system_lookup`]).
    pub lookup: Lookup,
}

type Addrs = std::vec::IntoIter<SocketAddr>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Answer = Pin<Box<dyn Future<Output = std::io::Result<Vec<SocketAddr>>> + Send>>;
/// How a name is looked up.
pub type Lookup = fn(String) -> Answer;

/// The system resolver (getaddrinfo, through tokio).
pub fn system_lookup(host: String) -> Answer {
    Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.collect()) })
}

impl GuardedResolver {
    pub fn new(allow_private: bool) -> GuardedResolver {
        GuardedResolver {
            allow_private,
            lookup: system_lookup,
        }
    }
}

impl tower_service::Service<Name> for GuardedResolver {
    type Response = Addrs;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let (allow_private, lookup) = (self.allow_private, self.lookup);
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs = lookup(host.clone()).await?;
            // One non-public answer refuses the name: a rebinding name answers both.
            if !allow_private && addrs.iter().any(|a| is_private(a.ip())) {
                return Err(Box::new(PrivateAddress(host)) as BoxError);
            }
            Ok(addrs.into_iter())
        })
    }
}

/// An IP-literal host (which the connector connects to without resolving) that
/// is not public, when private networks are not allowed.
pub fn check_literal(uri: &Uri, allow_private: bool) -> Result<(), PrivateAddress> {
    let host = uri
        .host()
        .unwrap_or("")
        .trim_matches(|c| c == '[' || c == ']');
    match host.parse::<IpAddr>() {
        Ok(ip) if !allow_private && is_private(ip) => Err(PrivateAddress(host.to_string())),
        _ => Ok(()),
    }
}

fn port_of(uri: &Uri) -> u16 {
    uri.port_u16()
        .unwrap_or(if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        })
}

fn host_of(uri: &Uri) -> String {
    uri.host()
        .unwrap_or("")
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase()
}

/// The same host as the rule's origin (any scheme or port): trusted as the
/// configuration is.
pub fn same_host(origin: &Uri, uri: &Uri) -> bool {
    host_of(origin) == host_of(uri)
}

/// Same scheme, host and port as the rule's origin: the only place the rule's
/// headers may be sent.
pub fn same_origin(origin: &Uri, uri: &Uri) -> bool {
    origin.scheme_str() == uri.scheme_str()
        && host_of(origin) == host_of(uri)
        && port_of(origin) == port_of(uri)
}

/// May the mirror follow a redirect from `from` to `to` for a rule whose origin
/// is `origin`? The `Err` is for the log (it names hosts), never for the client.
pub fn check_redirect(
    origin: &Uri,
    from: &Uri,
    to: &Uri,
    allowed_hosts: &[String],
) -> Result<(), String> {
    if !matches!(to.scheme_str(), Some("http") | Some("https")) {
        return Err(format!("redirect to a non-HTTP URL {to}"));
    }
    if from.scheme_str() == Some("https") && to.scheme_str() != Some("https") {
        return Err(format!("redirect from https to {to}"));
    }
    let (host, port) = (host_of(to), port_of(to));
    let with_port = format!("{host}:{port}");
    let named = |h: &str| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(&with_port);
    let host_ok = host == host_of(origin) || allowed_hosts.iter().any(|h| named(h));
    if !host_ok {
        return Err(format!(
            "redirect to host {host}, which the rule does not allow"
        ));
    }
    // http → https on the schemes' default ports is the usual upgrade, not a new port.
    let upgrade = from.scheme_str() == Some("http")
        && to.scheme_str() == Some("https")
        && port_of(from) == 80
        && port == 443;
    let port_ok = port == port_of(from)
        || upgrade
        || allowed_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&with_port));
    if !port_ok {
        return Err(format!(
            "redirect from port {} to {with_port}, which allowed_hosts does not name",
            port_of(from)
        ));
    }
    Ok(())
}

/// Not a public unicast address: loopback, private (RFC 1918), shared (CGNAT
/// 100.64/10), link-local, unique-local, multicast, documentation and
/// benchmarking ranges, 0/8, 240/4 and broadcast, and the IPv6 forms that
/// carry an IPv4 address (mapped, compatible, NAT64 64:ff9b::/96 and
/// 64:ff9b:1::/48, 6to4), judged by that address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

fn private_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_private()
        || v4.is_loopback()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xC0) == 64) // 100.64/10 shared
        || (o[0] == 198 && (o[1] & 0xFE) == 18) // 198.18/15 benchmarking
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0/24 IETF
        || o[0] >= 240 // 240/4 reserved
}

fn private_v6(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    let embedded_v4 =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return private_v4(v4);
    }
    // ::a.b.c.d (deprecated compatible form) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48).
    if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
        return private_v4(embedded_v4(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        return private_v4(embedded_v4(s[6], s[7]));
    }
    // 6to4 2002::/16 carries the IPv4 address in segments 1–2.
    if s[0] == 0x2002 {
        return private_v4(embedded_v4(s[1], s[2]));
    }
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique-local
        || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 site-local (deprecated)
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x0100 && s[1..4] == [0; 3]) // 100::/64 discard
}

#[cfg(test)]
mod tests {
    /// DNS rebinding (issue 21, item 6): a name that answers a public address
    /// first and 127.0.0.1 on the next lookup. Every connection's own lookup is
    /// the one checked, so the second is refused; there is no earlier check to
    /// fool.
    #[tokio::test]
    async fn a_rebinding_name_is_refused_on_the_lookup_that_would_reach_loopback() {
        use std::str::FromStr;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tower_service::Service;
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        fn rebinding(_: String) -> Answer {
            let ip = match CALLS.fetch_add(1, Ordering::SeqCst) {
                0 => [93, 184, 216, 34],
                _ => [127, 0, 0, 1],
            };
            Box::pin(async move { Ok(vec![SocketAddr::from((ip, 0))]) })
        }
        let mut r = GuardedResolver {
            allow_private: false,
            lookup: rebinding,
        };
        let name = || Name::from_str("rebind.example").expect("name");
        let first = r.call(name()).await.expect("a public answer");
        assert_eq!(
            first.collect::<Vec<_>>()[0].ip().to_string(),
            "93.184.216.34"
        );
        let second = r.call(name()).await.expect_err("refused");
        assert!(is_refusal(second.as_ref()), "{second}");
    }

    use super::*;

    #[test]
    fn special_addresses_are_private() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "198.18.0.1",
            "198.19.255.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.0.8",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "fc00::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::a00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(is_private(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "198.20.0.1",
            "223.255.255.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "::ffff:8.8.8.8",
            "2002:808:808::1",
        ] {
            assert!(!is_private(ip.parse().expect("ip")), "{ip}");
        }
    }

    fn u(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn redirect_rules() {
        let origin = u("https://api.example.com/render/x.jpg");
        let allowed = vec![
            "cdn.example.com".to_string(),
            "img.example.com:8443".to_string(),
        ];
        let ok = |from: &str, to: &str| check_redirect(&origin, &u(from), &u(to), &allowed);
        assert!(ok("https://api.example.com/a", "https://api.example.com/b").is_ok());
        assert!(ok("https://api.example.com/a", "https://CDN.example.com/b").is_ok());
        assert!(ok(
            "https://api.example.com/a",
            "https://img.example.com:8443/b"
        )
        .is_ok());
        // Another host, a downgrade, another port, another scheme.
        assert!(ok("https://api.example.com/a", "https://evil.example.net/b").is_err());
        assert!(ok("https://api.example.com/a", "http://api.example.com/b").is_err());
        assert!(ok(
            "https://api.example.com/a",
            "https://api.example.com:8443/b"
        )
        .is_err());
        assert!(ok("https://api.example.com/a", "https://cdn.example.com:444/b").is_err());
        assert!(ok("https://api.example.com/a", "ftp://api.example.com/b").is_err());
        // http may go up to https on the same host (the port follows the scheme).
        let plain = u("http://api.example.com/x");
        assert!(check_redirect(&plain, &plain, &u("https://api.example.com/y"), &[]).is_ok());
        let odd = u("http://api.example.com:8080/x");
        assert!(check_redirect(&odd, &odd, &u("https://api.example.com/y"), &[]).is_err());
        // The log message names the host; it is never sent to the client.
        let e = ok("https://api.example.com/a", "https://169.254.169.254/b").unwrap_err();
        assert!(e.contains("169.254.169.254"));
    }

    #[test]
    fn headers_stay_with_the_origin() {
        let origin = u("https://api.example.com/render/x.jpg");
        assert!(same_origin(&origin, &u("https://API.example.com/other")));
        assert!(same_origin(
            &origin,
            &u("https://api.example.com:443/other")
        ));
        assert!(!same_origin(&origin, &u("https://cdn.example.com/x")));
        assert!(!same_origin(&origin, &u("https://api.example.com:8443/x")));
        assert!(!same_origin(&origin, &u("http://api.example.com/x")));
    }

    #[test]
    fn literals() {
        assert!(check_literal(&u("http://127.0.0.1:9/x"), false).is_err());
        assert!(check_literal(&u("http://[::1]:9/x"), false).is_err());
        assert!(check_literal(&u("http://127.0.0.1:9/x"), true).is_ok());
        assert!(check_literal(&u("http://8.8.8.8/x"), false).is_ok());
        assert!(check_literal(&u("http://example.com/x"), false).is_ok());
    }
}
