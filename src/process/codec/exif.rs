//! EXIF fields for OSS `info`, read from the container (JPEG, TIFF, WebP,
//! HEIF) with `kamadak-exif`, without decoding pixels, named and written as
//! OSS does:
//! - every EXIF field of the main image, the Exif and GPS directories and
//!   the thumbnail directory (the main image wins a name both have), under
//!   its EXIF tag name, the directory pointers as `ExifTag`, `GPSTag` and
//!   `InteroperabilityTag`;
//! - numbers in decimal, rationals as `n/d`, several values space-separated,
//!   text as is; `GPSLatitude`/`GPSLongitude` as degrees, minutes and seconds
//!   (`30deg 15' 30.120" `, trailing zero parts left out: `0deg `); the GPS
//!   references as words (`North`, `East`, ...);
//! - `MakerNote` and binary values over 64 bytes are left out.

use exif::{Field, In, Tag, Value};

/// Binary (UNDEFINED) values longer than this are left out of the report.
const MAX_BINARY: usize = 64;

/// `(name, value)` of every EXIF field worth reporting, main image first.
pub fn fields(src: &[u8]) -> Vec<(String, String)> {
    let mut cursor = std::io::Cursor::new(src);
    let Ok(exif) = exif::Reader::new().read_from_container(&mut cursor) else {
        return Vec::new();
    };
    let mut fields: Vec<&Field> = exif.fields().collect();
    // The main image's directories before the thumbnail's.
    fields.sort_by_key(|f| f.ifd_num != In::PRIMARY);
    let mut out: Vec<(String, String)> = fields
        .into_iter()
        .filter(|f| f.tag != Tag::MakerNote)
        .filter_map(|f| Some((name(f.tag), value(f)?)))
        .collect();
    out.extend(pointers(exif.buf(), exif.little_endian()));
    out
}

/// The main image's pointers to the Exif, GPS and interoperability
/// directories, as offsets (the parser follows them without keeping them).
fn pointers(tiff: &[u8], little: bool) -> Vec<(String, String)> {
    // An unsigned integer of `len` bytes at `at`, in the file's byte order.
    let uint = |at: usize, len: usize| -> Option<u32> {
        let b = tiff.get(at..at.checked_add(len)?)?;
        let fold = |v: u32, x: &u8| v << 8 | *x as u32;
        Some(if little {
            b.iter().rev().fold(0, fold)
        } else {
            b.iter().fold(0, fold)
        })
    };
    let u16_at = |at| uint(at, 2);
    let u32_at = |at| uint(at, 4);
    let Some(ifd0) = u32_at(4).map(|o| o as usize) else {
        return Vec::new();
    };
    let count = u16_at(ifd0).unwrap_or(0) as usize;
    (0..count)
        .filter_map(|i| {
            let entry = ifd0 + 2 + 12 * i;
            let tag = match u16_at(entry)? {
                0x8769 => Tag::ExifIFDPointer,
                0x8825 => Tag::GPSInfoIFDPointer,
                0xA005 => Tag::InteropIFDPointer,
                _ => return None,
            };
            Some((name(tag), u32_at(entry + 8)?.to_string()))
        })
        .collect()
}

/// The tag's name as OSS spells it (the directory pointers differ).
fn name(tag: Tag) -> String {
    match tag {
        Tag::ExifIFDPointer => "ExifTag".into(),
        Tag::GPSInfoIFDPointer => "GPSTag".into(),
        Tag::InteropIFDPointer => "InteroperabilityTag".into(),
        t => t.to_string(),
    }
}

/// The field's value as OSS writes it; `None` to leave it out.
fn value(f: &Field) -> Option<String> {
    match f.tag {
        Tag::GPSLatitude | Tag::GPSLongitude | Tag::GPSDestLatitude | Tag::GPSDestLongitude => {
            if let Value::Rational(v) = &f.value {
                return degrees(&v.iter().map(|r| (r.num, r.denom)).collect::<Vec<_>>());
            }
        }
        Tag::GPSLatitudeRef
        | Tag::GPSLongitudeRef
        | Tag::GPSDestLatitudeRef
        | Tag::GPSDestLongitudeRef => {
            let word = match plain(&f.value)?.as_str() {
                "N" => "North",
                "S" => "South",
                "E" => "East",
                "W" => "West",
                other => return Some(other.to_string()),
            };
            return Some(word.to_string());
        }
        _ => {}
    }
    plain(&f.value)
}

/// Numbers in decimal, rationals `n/d`, several values space-separated, text
/// as is, short binary values as text when printable, else as byte values.
fn plain(v: &Value) -> Option<String> {
    fn join<T: ToString>(v: impl IntoIterator<Item = T>) -> String {
        v.into_iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    }
    Some(match v {
        Value::Byte(b) => join(b),
        Value::SByte(b) => join(b),
        Value::Short(s) => join(s),
        Value::SShort(s) => join(s),
        Value::Long(l) => join(l),
        Value::SLong(l) => join(l),
        Value::Rational(r) => join(r.iter().map(|r| format!("{}/{}", r.num, r.denom))),
        Value::SRational(r) => join(r.iter().map(|r| format!("{}/{}", r.num, r.denom))),
        Value::Float(x) => join(x),
        Value::Double(x) => join(x),
        Value::Ascii(parts) => parts
            .iter()
            .map(|p| {
                String::from_utf8_lossy(p)
                    .trim_end_matches('\0')
                    .to_string()
            })
            .collect::<Vec<_>>()
            .join(" "),
        Value::Undefined(b, _) if b.len() > MAX_BINARY => return None,
        Value::Undefined(b, _) if b.iter().all(|c| (0x20..0x7f).contains(c)) => {
            String::from_utf8_lossy(b).into_owned()
        }
        Value::Undefined(b, _) => join(b),
        Value::Unknown(..) => return None,
    })
}

/// Degrees, minutes, seconds as `30deg 15' 30.120" `: each part followed by a
/// space, parts after the last non-zero one left out, a whole number without
/// decimals, else 7, 5 and 3 decimals. `None` for a zero denominator.
fn degrees(parts: &[(u32, u32)]) -> Option<String> {
    if parts.len() != 3 {
        return None;
    }
    const UNIT: [&str; 3] = ["deg", "'", "\""];
    const DECIMALS: [usize; 3] = [7, 5, 3];
    let last = (1..3).rev().find(|&i| parts[i].0 != 0).unwrap_or(0);
    let mut out = String::new();
    for i in 0..=last {
        let (n, d) = parts[i];
        if d == 0 {
            return None;
        }
        let places = if n % d == 0 { 0 } else { DECIMALS[i] };
        out.push_str(&format!("{:.*}{} ", places, n as f64 / d as f64, UNIT[i]));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees_as_oss_writes_them() {
        assert_eq!(degrees(&[(0, 1), (0, 1), (0, 1)]).as_deref(), Some("0deg "));
        assert_eq!(
            degrees(&[(30, 1), (15, 1), (3012, 100)]).as_deref(),
            Some("30deg 15' 30.120\" ")
        );
        assert_eq!(
            degrees(&[(120, 1), (30, 1), (0, 1)]).as_deref(),
            Some("120deg 30' ")
        );
        assert_eq!(
            degrees(&[(1, 3), (0, 1), (0, 1)]).as_deref(),
            Some("0.3333333deg ")
        );
        assert_eq!(degrees(&[(30, 0), (0, 1), (0, 1)]), None);
        assert_eq!(degrees(&[(30, 1)]), None);
    }
}
