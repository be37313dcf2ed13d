//! Values written as a number or as a string with a unit: sizes in bytes
//! (`"256MiB"`), the memory budget (`"auto"` or a size), durations
//! (`"10s"`). One serde visitor reads all three.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// A value that config files write as a number or a string.
trait Unit: Sized {
    /// What the value looks like, for errors.
    const EXPECTING: &'static str;
    /// "a size", "a duration": for the negative-number error.
    const WHAT: &'static str;
    fn from_number(v: u64) -> Self;
    fn from_text(v: &str) -> Result<Self, String>;
}

struct Visit<T>(PhantomData<T>);

impl<T: Unit> de::Visitor<'_> for Visit<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        Ok(T::from_number(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        u64::try_from(v)
            .map(T::from_number)
            .map_err(|_| E::custom(format!("{} cannot be negative", T::WHAT)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        T::from_text(v).map_err(E::custom)
    }
}

fn read<'de, T: Unit, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(Visit::<T>(PhantomData))
}

/// A size in bytes; accepts an integer or a string like `"256MiB"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let num: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size (e.g. 1048576, \"512KiB\", \"256MiB\")"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            "t" | "tb" => 1_000_000_000_000,
            "tib" => 1 << 40,
            other => return Err(format!("unknown size unit `{other}` in `{s}`")),
        };
        Ok(ByteSize((num * mult as f64) as u64))
    }
}

impl Unit for ByteSize {
    const EXPECTING: &'static str = "a size in bytes or a string like \"256MiB\"";
    const WHAT: &'static str = "a size";
    fn from_number(v: u64) -> Self {
        ByteSize(v)
    }
    fn from_text(v: &str) -> Result<Self, String> {
        ByteSize::parse(v)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// `process.memory_budget`: `"auto"` (a share of the cgroup limit or of RAM,
/// see `budget::auto_budget`) or a size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryBudget(pub Option<ByteSize>);

impl Unit for MemoryBudget {
    const EXPECTING: &'static str = "\"auto\" or a size like \"2GiB\"";
    const WHAT: &'static str = "a size";
    fn from_number(v: u64) -> Self {
        MemoryBudget(Some(ByteSize(v)))
    }
    fn from_text(v: &str) -> Result<Self, String> {
        if v.trim().eq_ignore_ascii_case("auto") {
            return Ok(MemoryBudget(None));
        }
        ByteSize::parse(v).map(|b| MemoryBudget(Some(b)))
    }
}

impl<'de> Deserialize<'de> for MemoryBudget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d)
    }
}

impl Serialize for MemoryBudget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_str("auto"),
            Some(b) => b.serialize(s),
        }
    }
}

/// A duration; accepts a string like `"10s"`, `"500ms"`, `"10m"` or an integer of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl Unit for Dur {
    const EXPECTING: &'static str = "a duration like \"10s\" or an integer of seconds";
    const WHAT: &'static str = "a duration";
    fn from_number(v: u64) -> Self {
        Dur(Duration::from_secs(v))
    }
    fn from_text(v: &str) -> Result<Self, String> {
        humantime::parse_duration(v.trim())
            .map(Dur)
            .map_err(|e| format!("`{v}` is not a duration: {e}"))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        read(d)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(ByteSize::parse("256MiB"), Ok(ByteSize(256 << 20)));
        assert_eq!(ByteSize::parse("1kb"), Ok(ByteSize(1000)));
        assert_eq!(ByteSize::parse("42"), Ok(ByteSize(42)));
        assert!(ByteSize::parse("12 parsecs").is_err());
    }
}
