//! Which rule fires for a key, and the origin-side key it asks for. Pure.

use crate::config::MirrorRule;

/// First rule whose conditions (prefix and/or suffix) match, in config order.
pub fn find<'a>(rules: &'a [MirrorRule], key: &str) -> Option<(usize, &'a MirrorRule)> {
    rules.iter().enumerate().find(|(_, r)| {
        r.prefix.as_deref().is_none_or(|p| key.starts_with(p))
            && r.suffix.as_deref().is_none_or(|s| key.ends_with(s))
    })
}

/// The key as the origin knows it: the matched prefix replaced by `replace_prefix`
/// (OSS `ReplaceKeyPrefixWith`).
pub fn origin_key(rule: &MirrorRule, key: &str) -> String {
    match (&rule.prefix, &rule.replace_prefix) {
        (Some(p), Some(r)) if key.starts_with(p.as_str()) => format!("{r}{}", &key[p.len()..]),
        _ => key.to_string(),
    }
}

/// Can `key` be asked of an origin without reaching a path the rule does not
/// intend? Dot segments (`.`, `..`, also as `%2e%2e` or behind an encoded
/// slash, which arrive here decoded), backslashes (a path separator to some
/// servers), empty segments and control characters are refused: web servers and
/// proxies in front of a business API normalise them, so
/// `avatars/../../admin/x.jpg` would reach `/admin/x.jpg` with the rule's API key.
pub fn check_origin_key(key: &str) -> Result<(), &'static str> {
    if key.chars().any(|c| c.is_control()) {
        return Err("control characters");
    }
    if key.contains('\\') {
        return Err("a backslash");
    }
    for seg in key.split('/') {
        match seg {
            "" => return Err("an empty path segment"),
            "." | ".." => return Err("a dot segment"),
            _ => {}
        }
    }
    Ok(())
}

/// An object key as a URL path: each segment percent-encoded, `/` kept.
pub fn encode_key(key: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(key, SET).to_string()
}

/// Fill `{key}` in a URL template (path segments percent-encoded, `/` kept) and
/// append the client's query when `pass_query`.
pub fn origin_url(template: &str, origin_key: &str, query: Option<&str>) -> String {
    let enc = encode_key(origin_key);
    let mut url = if template.contains("{key}") {
        template.replace("{key}", &enc)
    } else {
        format!("{}/{enc}", template.trim_end_matches('/'))
    };
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(q);
    }
    url
}

/// Is a content type allowed by patterns like `image/*` or `image/png`?
pub fn content_type_allowed(patterns: &[String], ct: &str) -> bool {
    let ct = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        p == "*/*"
            || p == ct
            || p.strip_suffix("/*")
                .is_some_and(|major| ct.split('/').next() == Some(major))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: Option<&str>, suffix: Option<&str>) -> MirrorRule {
        MirrorRule {
            prefix: prefix.map(str::to_string),
            suffix: suffix.map(str::to_string),
            origin: Some("http://o/{key}".into()),
            ..Default::default()
        }
    }

    #[test]
    fn first_match_wins() {
        let rules = vec![
            rule(Some("a/"), Some(".png")),
            rule(Some("a/"), None),
            rule(None, None),
        ];
        assert_eq!(find(&rules, "a/x.png").map(|r| r.0), Some(0));
        assert_eq!(find(&rules, "a/x.jpg").map(|r| r.0), Some(1));
        assert_eq!(find(&rules, "b/x.jpg").map(|r| r.0), Some(2));
        assert!(find(&rules[..2], "b/x.jpg").is_none());
    }

    #[test]
    fn keys_and_urls() {
        let mut r = rule(Some("avatars/"), None);
        r.replace_prefix = Some("img/".into());
        assert_eq!(origin_key(&r, "avatars/u/1.jpg"), "img/u/1.jpg");
        assert_eq!(
            origin_url("https://api/render/{key}", "img/u 1.jpg", None),
            "https://api/render/img/u%201.jpg"
        );
        assert_eq!(
            origin_url("https://api/r?k={key}", "a/猫.jpg", Some("v=2")),
            "https://api/r?k=a/%E7%8C%AB.jpg&v=2"
        );
        assert_eq!(
            origin_url("https://cdn.old.com", "a.jpg", None),
            "https://cdn.old.com/a.jpg"
        );
    }

    #[test]
    fn origin_keys_that_could_escape_are_refused() {
        for k in [
            "avatars/../../admin/x.jpg",
            "avatars/./x.jpg",
            "..",
            "avatars/..",
            "avatars//x.jpg",
            "/x.jpg",
            "avatars/a\\..\\admin.jpg",
            "avatars/x.jpg\n",
            "avatars/x\u{7f}.jpg",
        ] {
            assert!(check_origin_key(k).is_err(), "{k:?}");
        }
        for k in [
            "avatars/x.jpg",
            "a/..b/c..d/.e.jpg",
            "猫/图片.jpg",
            "a/b%2e%2e.jpg",
        ] {
            assert_eq!(check_origin_key(k), Ok(()), "{k:?}");
        }
    }

    #[test]
    fn content_types() {
        let img = vec!["image/*".to_string()];
        assert!(content_type_allowed(&img, "image/jpeg"));
        assert!(content_type_allowed(&img, "Image/PNG; charset=x"));
        assert!(!content_type_allowed(&img, "text/html"));
        assert!(content_type_allowed(&["image/png".into()], "image/png"));
        assert!(!content_type_allowed(&["image/png".into()], "image/jpeg"));
    }
}
