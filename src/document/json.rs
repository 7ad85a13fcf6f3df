//! JSON values written straight into a byte buffer: what the document writer
//! (`write.rs`) is built from.
//!
//! Why by hand and not through `serde_json::Serializer`: a whole document is the lookup
//! path's output, ~1.4 KB of mostly constant keys around short strings, and serde's
//! machinery (escaping every constant key, a state machine per map entry, `Display`
//! for every timestamp) was about half of its serialization time. Each writer here
//! produces exactly the bytes `serde_json` produces for the same value, and falls back
//! to it (or to the value's `Display`) for the rare input off its fast path; the tests
//! below hold them to that. Pure; no I/O.

use std::io::Write;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::store::ValueRef;

/// A quoted, escaped JSON string.
#[inline]
pub fn str(out: &mut Vec<u8>, s: &str) {
    // Branch-free over the bytes so that it vectorizes; almost no value needs escaping.
    let plain = !s.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, s).expect("a string serializes");
    }
}

/// `"key":`, for keys that are constants of the document's shape (nothing to escape).
#[inline]
pub fn key(out: &mut Vec<u8>, key: &str) {
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// An integer.
#[inline]
pub fn int(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
}

/// `true` or `false`.
#[inline]
pub fn bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// An instant as jiff shows it (RFC 3339 in UTC, `2024-05-01T10:00:00.5Z`), quoted.
pub fn timestamp(out: &mut Vec<u8>, t: Timestamp) {
    let (secs, nanos) = (t.as_second(), t.subsec_nanosecond());
    if secs < 0 || nanos < 0 {
        // Before 1970: jiff's own printer (negative years, negative fractions).
        let _ = write!(out, "\"{t}\"");
        return;
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut buf = [0u8; 32];
    buf[0] = b'"';
    put4(&mut buf[1..5], y as u32);
    buf[5] = b'-';
    put2(&mut buf[6..8], m);
    buf[8] = b'-';
    put2(&mut buf[9..11], d);
    buf[11] = b'T';
    put2(&mut buf[12..14], hh as u32);
    buf[14] = b':';
    put2(&mut buf[15..17], mm as u32);
    buf[17] = b':';
    put2(&mut buf[18..20], ss as u32);
    let mut n = 20;
    if nanos > 0 {
        // jiff prints as few fraction digits as show the value exactly.
        buf[n] = b'.';
        let mut digits = [0u8; 9];
        let mut v = nanos as u32;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let used = 9 - digits.iter().rev().take_while(|d| **d == b'0').count();
        buf[n + 1..n + 1 + used].copy_from_slice(&digits[..used]);
        n += 1 + used;
    }
    buf[n] = b'Z';
    buf[n + 1] = b'"';
    out.extend_from_slice(&buf[..n + 2]);
}

/// A civil date as jiff shows it (`2024-05-01`), quoted.
pub fn date(out: &mut Vec<u8>, d: Date) {
    if !(0..=9999).contains(&d.year()) {
        let _ = write!(out, "\"{d}\"");
        return;
    }
    let mut buf = [0u8; 12];
    buf[0] = b'"';
    put4(&mut buf[1..5], d.year() as u32);
    buf[5] = b'-';
    put2(&mut buf[6..8], d.month() as u32);
    buf[8] = b'-';
    put2(&mut buf[9..11], d.day() as u32);
    buf[11] = b'"';
    out.extend_from_slice(&buf);
}

/// A field value, as [`ValueRef`]'s `Serialize` writes it.
pub fn value(out: &mut Vec<u8>, v: &ValueRef<'_>) {
    match v {
        ValueRef::Int(i) => int(out, *i),
        ValueRef::Str(s) => str(out, s),
        ValueRef::Bool(b) => bool(out, *b),
        ValueRef::Date(d) => date(out, *d),
        ValueRef::DateTime(t) => timestamp(out, *t),
        ValueRef::Tags(tags) => {
            out.push(b'[');
            for (i, t) in tags.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                str(out, t);
            }
            out.push(b']');
        }
        // Checked JSON text, stored compact: written as it is.
        ValueRef::Json(text) => out.extend_from_slice(text.as_bytes()),
        // Floats (ryu, `null` for non-finite) and addresses: serde_json's own output.
        ValueRef::Float(_) | ValueRef::Ip(_) => {
            serde_json::to_writer(&mut *out, v).expect("a value serializes")
        }
    }
}

/// Year, month and day of a day count since 1970-01-01 (proleptic Gregorian; Howard
/// Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn put2(buf: &mut [u8], v: u32) {
    buf[0] = b'0' + (v / 10) as u8;
    buf[1] = b'0' + (v % 10) as u8;
}

fn put4(buf: &mut [u8], v: u32) {
    put2(&mut buf[..2], v / 100);
    put2(&mut buf[2..], v % 100);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fixed_points_print_as_jiff_does() {
        for text in [
            "1970-01-01T00:00:00Z",
            "2000-02-29T23:59:59.999999999Z",
            "2024-05-01T10:00:00.5Z",
            "2024-12-31T00:00:00.000001Z",
            "9999-12-30T21:59:59Z",
            "1969-12-31T23:59:59.5Z",
            "-000001-01-01T00:00:00Z",
        ] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(
                written(|o| timestamp(o, t)),
                serde_json::to_string(&t).unwrap()
            );
        }
    }

    proptest! {
        #[test]
        fn timestamps_match_jiff(secs in -377_705_116_800i64..=253_402_207_199, nanos in 0i32..1_000_000_000, round in 0u32..4) {
            // Fractions of every length: whole seconds, millis, micros, nanos.
            let nanos = nanos - nanos % [1_000_000_000, 1_000_000, 1_000, 1][round as usize];
            let t = Timestamp::new(secs, nanos).unwrap();
            prop_assert_eq!(written(|o| timestamp(o, t)), serde_json::to_string(&t).unwrap());
        }

        #[test]
        fn dates_match_jiff(days in -4_000_000i64..=2_932_896) {
            let d = Date::new(1970, 1, 1).unwrap().checked_add(jiff::Span::new().days(days)).unwrap();
            prop_assert_eq!(written(|o| date(o, d)), serde_json::to_string(&d).unwrap());
        }

        #[test]
        fn strings_match_serde_json(s in any::<String>()) {
            prop_assert_eq!(written(|o| str(o, &s)), serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn integers_match_serde_json(i in any::<i64>()) {
            prop_assert_eq!(written(|o| int(o, i)), serde_json::to_string(&i).unwrap());
        }
    }
}
