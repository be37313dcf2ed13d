//! Signed URLs (SPEC section 3), checked before any I/O. Pure: the request's
//! raw path and query, the configured keys, the time.
//!
//! - pixmirror's own: `x-pm-signature` = URL-safe base64 (no padding) of
//!   HMAC-SHA256(key, `<raw path>\n<raw process value>\n<x-pm-expires>`), any
//!   configured key (rotation), optional expiry in Unix seconds.
//! - Aliyun OSS V1 presigned: `OSSAccessKeyId`, `Expires`, `Signature` =
//!   base64 HMAC-SHA1(secret, `GET\n\n\n<Expires>\n/<bucket>/<key>[?x-oss-process=<value>]`),
//!   so URLs a backend presigns with the OSS SDK keep working after the move.
//!
//! A request that carries a signature must carry a valid one, `required` or not;
//! with `required`, an unsigned request is refused too. Comparisons are constant-time.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::percent_decode_str;

use crate::config::SigningConfig;
use crate::error::{Error, Result};

pub const SIGNATURE: &str = "x-pm-signature";
pub const EXPIRES: &str = "x-pm-expires";
const OSS_PROCESS: &str = "x-oss-process";
const BCE_PROCESS: &str = "x-bce-process";

/// Query parameters that belong to a signature: never part of a cache key or
/// passed to an origin.
pub fn is_signature_param(name: &str) -> bool {
    matches!(
        name,
        SIGNATURE | EXPIRES | "OSSAccessKeyId" | "Expires" | "Signature"
    )
}

fn denied(why: &str) -> Error {
    Error::AccessDenied(format!("the URL signature {why}"))
}

/// The process a query asks for, raw (as sent): the value of `x-oss-process`
/// or `x-bce-process`, or a COS/Qiniu item (`imageMogr2/...`, no `=`). This is
/// what a signature covers, whatever the grammar: a process the signature does
/// not name would otherwise ride on a signed URL. `Err` when the query holds
/// more than one (the request parser refuses those too).
pub fn process_of(query: &str) -> Result<Option<&str>> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let item = match (k, v.is_empty()) {
            (OSS_PROCESS | BCE_PROCESS, _) => v,
            (_, true) if is_cos_item(k) => k,
            _ => continue,
        };
        if found.replace(item).is_some() {
            return Err(denied("covers one process; the URL has several"));
        }
    }
    Ok(found)
}

fn is_cos_item(raw: &str) -> bool {
    percent_decode_str(raw)
        .decode_utf8()
        .is_ok_and(|item| crate::process::lang::cos::is_cos(&item))
}

/// A parameter of a signature given once: a second copy (the shape of a
/// published signature bypass, where one copy is checked and another used) is
/// refused.
fn once<'a>(query: &'a str, name: &str) -> Result<Option<&'a str>> {
    let mut values = query
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v);
    let first = values.next();
    if values.next().is_some() {
        return Err(denied(&format!("gives {name} twice")));
    }
    Ok(first)
}

/// The raw (still percent-encoded) value of the first `name` in `query`.
fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|p| p.split_once('=').or(Some((p, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn decoded(v: &str) -> Result<String> {
    percent_decode_str(v)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| denied("is not valid percent-encoded UTF-8"))
}

/// The message pixmirror signs for a request.
pub fn message(raw_path: &str, raw_process: Option<&str>, expires: Option<&str>) -> String {
    format!(
        "{raw_path}\n{}\n{}",
        raw_process.unwrap_or(""),
        expires.unwrap_or("")
    )
}

/// pixmirror's signature of `message` with a hex key (the first configured).
pub fn sign(key_hex: &str, message: &str) -> Result<String> {
    let key = hex::decode(key_hex).map_err(|_| Error::Internal("signing key is not hex".into()))?;
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key)
        .map_err(|_| Error::Internal("signing key".into()))?;
    mac.update(message.as_bytes());
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// Check a request's signature, if signing is configured. `now` in Unix seconds.
pub fn verify(cfg: &SigningConfig, raw_path: &str, query: Option<&str>, now: u64) -> Result<()> {
    if cfg.keys.is_empty() && cfg.oss_keys.is_empty() {
        return Ok(());
    }
    let q = query.unwrap_or("");
    if let Some(sig) = once(q, SIGNATURE)? {
        once(q, EXPIRES)?;
        return verify_own(cfg, raw_path, q, sig, now);
    }
    if let Some(id) = once(q, "OSSAccessKeyId")? {
        once(q, "Expires")?;
        once(q, "Signature")?;
        return verify_oss(cfg, raw_path, q, id, now);
    }
    if cfg.required {
        return Err(denied("is missing"));
    }
    Ok(())
}

fn not_expired(expires: Option<&str>, now: u64) -> Result<()> {
    match expires {
        None => Ok(()),
        Some(e) => match e.parse::<u64>() {
            Ok(t) if t >= now => Ok(()),
            Ok(_) => Err(denied("has expired")),
            Err(_) => Err(denied("has a bad expiry")),
        },
    }
}

fn verify_own(cfg: &SigningConfig, raw_path: &str, q: &str, sig: &str, now: u64) -> Result<()> {
    let given = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(decoded(sig)?)
        .map_err(|_| denied("is malformed"))?;
    let expires = param(q, EXPIRES);
    let msg = message(raw_path, process_of(q)?, expires);
    let ok = cfg.keys.iter().any(|k| {
        let Ok(key) = hex::decode(k) else {
            return false;
        };
        let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key) else {
            return false;
        };
        mac.update(msg.as_bytes());
        mac.verify_slice(&given).is_ok()
    });
    if !ok {
        return Err(denied("does not match"));
    }
    not_expired(expires, now)
}

/// The OSS V1 string to sign for a GET of `key` (decoded) with an optional
/// (decoded) `x-oss-process` sub-resource.
pub fn oss_string_to_sign(expires: &str, bucket: &str, key: &str, process: Option<&str>) -> String {
    let mut s = format!("GET\n\n\n{expires}\n/{bucket}/{key}");
    if let Some(p) = process {
        s.push_str("?x-oss-process=");
        s.push_str(p);
    }
    s
}

fn verify_oss(cfg: &SigningConfig, raw_path: &str, q: &str, id: &str, now: u64) -> Result<()> {
    let id = decoded(id)?;
    let expires = param(q, "Expires").ok_or_else(|| denied("has no Expires"))?;
    let sig = decoded(param(q, "Signature").ok_or_else(|| denied("has no Signature"))?)?;
    let given = base64::engine::general_purpose::STANDARD
        .decode(sig)
        .map_err(|_| denied("is malformed"))?;
    let key = decoded(raw_path.strip_prefix('/').unwrap_or(raw_path))?;
    // OSS signs `x-oss-process` only: another process form is not covered.
    if process_of(q)?.is_some() && param(q, OSS_PROCESS).is_none() {
        return Err(denied("does not cover this process form"));
    }
    let process = param(q, OSS_PROCESS).map(decoded).transpose()?;
    let ok = cfg
        .oss_keys
        .iter()
        .filter(|k| k.access_key_id == id)
        .any(|k| {
            let msg = oss_string_to_sign(expires, &k.bucket, &key, process.as_deref());
            let Ok(mut mac) =
                <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(k.access_key_secret.as_bytes())
            else {
                return false;
            };
            mac.update(msg.as_bytes());
            mac.verify_slice(&given).is_ok()
        });
    if !ok {
        return Err(denied("does not match"));
    }
    not_expired(Some(expires), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OssKey;

    fn cfg(required: bool) -> SigningConfig {
        SigningConfig {
            required,
            keys: vec![
                "00112233445566778899aabbccddeeff".into(),
                "ffeeddccbbaa99887766554433221100".into(),
            ],
            oss_keys: vec![OssKey {
                access_key_id: "LTAIexample".into(),
                access_key_secret: "secret-example".into(),
                bucket: "old-bucket".into(),
            }],
        }
    }

    /// A parameter given twice is refused only in a signature that is there:
    /// an unsigned request may carry its own `Expires` (not required).
    #[test]
    fn duplicates_are_refused_only_in_a_signature() {
        let open = cfg(false);
        let q = Some("Expires=1&Expires=2&Signature=a&Signature=b");
        assert!(verify(&open, "/a.jpg", q, 0).is_ok());
        let q = Some("x-pm-signature=AAAA&x-pm-signature=BBBB");
        assert!(verify(&open, "/a.jpg", q, 0).is_err());
        let q = Some("OSSAccessKeyId=LTAI&Expires=1&Expires=2&Signature=a");
        assert!(verify(&open, "/a.jpg", q, 0).is_err());
    }

    #[test]
    fn own_signatures() {
        let c = cfg(true);
        let path = "/photos/%E7%8C%AB.jpg";
        let process = "image/resize,w_300";
        for key in &c.keys {
            let sig = sign(key, &message(path, Some(process), None)).expect("sign");
            let q = format!("x-oss-process={process}&{SIGNATURE}={sig}");
            assert!(verify(&c, path, Some(&q), 0).is_ok(), "every key verifies");
            // Another process string, another path, or a flipped bit: refused.
            let q2 = format!("x-oss-process=image/resize,w_301&{SIGNATURE}={sig}");
            assert!(verify(&c, path, Some(&q2), 0).is_err());
            assert!(verify(&c, "/photos/dog.jpg", Some(&q), 0).is_err());
        }
        // Expiry is signed and enforced.
        let sig = sign(&c.keys[0], &message(path, None, Some("1000"))).expect("sign");
        let q = format!("{EXPIRES}=1000&{SIGNATURE}={sig}");
        assert!(verify(&c, path, Some(&q), 999).is_ok());
        assert!(verify(&c, path, Some(&q), 1001).is_err());
        let q = format!("{EXPIRES}=9999&{SIGNATURE}={sig}");
        assert!(
            verify(&c, path, Some(&q), 999).is_err(),
            "expiry cannot be moved"
        );
        // Unsigned: refused only when required; a bad signature always.
        assert!(verify(&c, path, None, 0).is_err());
        assert!(verify(&cfg(false), path, None, 0).is_ok());
        assert!(verify(&cfg(false), path, Some(&format!("{SIGNATURE}=AAAA")), 0).is_err());
        // Off without keys.
        assert!(verify(&SigningConfig::default(), path, Some("x-pm-signature=x"), 0).is_ok());
    }

    /// The OSS V1 algorithm, computed here from its published definition
    /// (HMAC-SHA1 over the string to sign, base64), against `verify`.
    #[test]
    fn oss_v1_presigned_urls() {
        let c = cfg(true);
        let key = "photos/猫.jpg";
        let raw_path = "/photos/%E7%8C%AB.jpg";
        let process = "image/resize,w_300";
        let sts = format!("GET\n\n\n1700000000\n/old-bucket/{key}?x-oss-process={process}");
        let mut mac =
            <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(b"secret-example").expect("mac");
        mac.update(sts.as_bytes());
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let enc = percent_encoding::utf8_percent_encode(&sig, percent_encoding::NON_ALPHANUMERIC);
        let q = format!(
            "x-oss-process=image%2Fresize%2Cw_300&OSSAccessKeyId=LTAIexample&Expires=1700000000&Signature={enc}"
        );
        assert!(verify(&c, raw_path, Some(&q), 1_699_999_999).is_ok());
        assert!(
            verify(&c, raw_path, Some(&q), 1_700_000_001).is_err(),
            "expired"
        );
        let other = q.replace("w_300", "w_600");
        assert!(
            verify(&c, raw_path, Some(&other), 0).is_err(),
            "the process is signed"
        );
        let wrong_id = q.replace("LTAIexample", "LTAIother");
        assert!(verify(&c, raw_path, Some(&wrong_id), 0).is_err());
    }
}
