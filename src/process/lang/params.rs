//! Reading one action's parameters: `k_v` pairs and bare values, integers in
//! a range, colours, base64 text; and the one way a value is shortened for a
//! message. Every grammar's messages come from here.

use std::collections::BTreeMap;

use base64::Engine;

use crate::error::{Error, Result};

/// The first 64 characters of a value, for a message.
pub fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// One parsed action: its name and its parameters (`k_v` pairs and bare values).
pub struct Params<'a> {
    pub action: &'a str,
    kv: BTreeMap<&'a str, &'a str>,
    pub bare: Vec<&'a str>,
}

impl<'a> Params<'a> {
    pub fn parse(action: &'a str, parts: impl Iterator<Item = &'a str>) -> Result<Params<'a>> {
        let mut kv = BTreeMap::new();
        let mut bare = Vec::new();
        for p in parts {
            if p.is_empty() {
                continue;
            }
            match p.split_once('_') {
                Some((k, v)) if !k.is_empty() => {
                    if kv.insert(k, v).is_some() {
                        return Err(Error::invalid(format!(
                            "{action}: parameter `{k}` is given twice"
                        )));
                    }
                }
                _ => bare.push(p),
            }
        }
        Ok(Params { action, kv, bare })
    }

    /// Fail on parameters this action does not know.
    pub fn only(&self, keys: &[&str], bare_ok: bool) -> Result<()> {
        for k in self.kv.keys() {
            if !keys.contains(k) {
                return Err(Error::invalid(format!(
                    "{}: unknown parameter `{k}`",
                    self.action
                )));
            }
        }
        if !bare_ok {
            if let Some(b) = self.bare.first() {
                return Err(Error::invalid(format!(
                    "{}: unexpected value `{}`",
                    self.action,
                    truncate(b)
                )));
            }
        }
        Ok(())
    }

    pub fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>> {
        match self.kv.get(key) {
            None => Ok(None),
            Some(v) => parse_int(v, min, max)
                .map(Some)
                .ok_or_else(|| self.range_err(key, v, min, max)),
        }
    }

    fn range_err(&self, key: &str, v: &str, min: i64, max: i64) -> Error {
        Error::invalid(format!(
            "{}: parameter {key} must be an integer in [{min},{max}], got `{}`",
            self.action,
            truncate(v)
        ))
    }

    /// The single bare value (`rotate,90`), required.
    pub fn bare_int(&self, min: i64, max: i64) -> Result<i64> {
        self.only(&[], true)?;
        match self.bare.as_slice() {
            [v] => parse_int(v, min, max).ok_or_else(|| {
                Error::invalid(format!(
                    "{}: value must be an integer in [{min},{max}], got `{}`",
                    self.action,
                    truncate(v)
                ))
            }),
            [] => Err(Error::invalid(format!(
                "{}: a value in [{min},{max}] is required",
                self.action
            ))),
            _ => Err(Error::invalid(format!("{}: takes one value", self.action))),
        }
    }

    /// A parameter's value, by name.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.kv.get(key).copied()
    }

    /// A required parameter in `[min, max]`.
    pub fn required(&self, key: &str, min: i64, max: i64) -> Result<i64> {
        self.int(key, min, max)?
            .ok_or_else(|| Error::invalid(format!("{}: parameter {key} is required", self.action)))
    }
}

pub fn parse_int(v: &str, min: i64, max: i64) -> Option<i64> {
    let digits = match v.strip_prefix('-') {
        Some(_) if min >= 0 => return None, // `-0` is no number of [0, max]
        Some(d) => d,
        None => v,
    };
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: i64 = v.parse().ok()?;
    (min..=max).contains(&n).then_some(n)
}

pub fn parse_color(c: &str) -> Option<[u8; 3]> {
    if c.len() != 6 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let v = u32::from_str_radix(c, 16).ok()?;
    Some([(v >> 16) as u8, (v >> 8) as u8, v as u8])
}

/// URL-safe base64 (padding optional) of UTF-8 text.
pub fn b64(v: &str) -> Option<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v.trim_end_matches('='))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// [`b64`] of a watermark's value; `what` names it in the error.
pub fn b64_text(v: &str, what: &str) -> Result<String> {
    b64(v).ok_or_else(|| {
        Error::invalid(format!(
            "watermark: {what} must be URL-safe base64 of UTF-8 text"
        ))
    })
}
