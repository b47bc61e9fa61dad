//! YAML scalars as `kubectl` reads them.
//!
//! kubectl (and the kubelet's file source) turns YAML into JSON with
//! `sigs.k8s.io/yaml`, whose go-yaml v2 resolves an unquoted (plain) scalar
//! by the YAML 1.1 rules, then decodes the JSON into the typed object. So
//! `010` is the integer 8, `0x10` 16, `+80` 80, `1_000` 1000, `08` the
//! float 8 (that JSON writes `8`), and `yes`, `on`, `y` are `true` where
//! serde_yaml_ng's YAML 1.2 reading gives strings. A quoted scalar stays a
//! string. [`resolve_plain`] is go-yaml v2's `resolve` for an untagged
//! plain scalar; [`json_float`] is what Go's JSON writes for a float.

use serde_json::{Number, Value};

/// A plain scalar, resolved.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Plain {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str,
}

/// go-yaml v2's resolution of an untagged plain scalar: by its first
/// character, the fixed words (bools, nulls, `.inf`, `.nan`), then for
/// scalars starting with a digit or a sign, Go's `ParseInt`/`ParseUint`
/// with base prefixes and leading-zero octal (underscores dropped), then a
/// float of the form `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`.
pub(super) fn resolve_plain(s: &str) -> Plain {
    let hint = match s.bytes().next() {
        None => return Plain::Null,
        Some(b'+' | b'-') => 'S',
        Some(b'0'..=b'9') => 'D',
        Some(b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~') => 'M',
        Some(b'.') => '.',
        Some(_) => return Plain::Str,
    };
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false)
        }
        "~" | "null" | "Null" | "NULL" => return Plain::Null,
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Plain::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match hint {
        '.' => go_parse_float(s).map_or(Plain::Str, Plain::Float),
        'D' | 'S' => {
            let plain: String = s.chars().filter(|&c| c != '_').collect();
            if let Some(i) = go_parse_int(&plain) {
                return Plain::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Plain::UInt(u);
            }
            if yaml_style_float(&plain) {
                if let Some(f) = plain.parse::<f64>().ok().filter(|f| f.is_finite()) {
                    return Plain::Float(f);
                }
            }
            Plain::Str
        }
        _ => Plain::Str,
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)` (no underscores: they are gone).
fn go_parse_uint(s: &str) -> Option<u64> {
    let (digits, radix) = match s.as_bytes() {
        [] => return None,
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'x') => (&s[2..], 16),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'o') => (&s[2..], 8),
        [b'0', p, _, ..] if p.eq_ignore_ascii_case(&b'b') => (&s[2..], 2),
        [b'0', ..] => (&s[1..], 8),
        _ => (s, 10),
    };
    if digits.is_empty() {
        // "0" alone (after its leading zero) is zero.
        return (s == "0").then_some(0);
    }
    if !digits.bytes().all(|b| (b as char).is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)`: an optional sign, then [`go_parse_uint`].
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    let magnitude = i128::from(go_parse_uint(rest)?);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// go-yaml v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseFloat(s, 64)` for a scalar starting with `.`:
/// digits, an optional exponent, underscores only between digits.
fn go_parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let underscores_ok = b.iter().enumerate().all(|(i, &c)| {
        c != b'_'
            || (i > 0 && b[i - 1].is_ascii_digit() && b.get(i + 1).is_some_and(u8::is_ascii_digit))
    });
    if !underscores_ok {
        return None;
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if !yaml_style_float(&plain) {
        return None;
    }
    plain.parse::<f64>().ok().filter(|f| f.is_finite())
}

/// A float as Go's JSON writes it and reads it back: an integral value
/// below 1e21 is written without a fraction (`80.0` → `80`), so it fills an
/// integer field. `None` for NaN and the infinities, which JSON cannot hold.
pub(super) fn json_float(f: f64) -> Option<Value> {
    if !f.is_finite() {
        return None;
    }
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f >= i64::MIN as f64 && f < i64::MAX as f64 {
            return Some(Value::from(f as i64));
        }
        if f >= 0.0 && f < u64::MAX as f64 {
            return Some(Value::from(f as u64));
        }
    }
    Number::from_f64(f).map(Value::Number)
}

/// A resolved plain scalar as JSON (`Err` for NaN and the infinities).
pub(super) fn plain_to_json(s: &str) -> Result<Value, String> {
    Ok(match resolve_plain(s) {
        Plain::Null => Value::Null,
        Plain::Bool(b) => Value::Bool(b),
        Plain::Int(i) => Value::from(i),
        Plain::UInt(u) => Value::from(u),
        Plain::Float(f) => json_float(f).ok_or_else(|| not_json(s))?,
        Plain::Str => Value::String(s.to_owned()),
    })
}

/// Why a float cannot be kept.
pub(super) fn not_json(s: &str) -> String {
    format!("{s:?} is a YAML float that JSON cannot hold (NaN or infinite)")
}

/// A mapping key resolved to something other than a string, as
/// `sigs.k8s.io/yaml` writes it as a JSON key (`yes:` → `"true"`).
pub(super) fn plain_key(s: &str) -> String {
    match resolve_plain(s) {
        Plain::Bool(b) => b.to_string(),
        Plain::Int(i) => i.to_string(),
        Plain::UInt(u) => u.to_string(),
        Plain::Float(f) => float_key(f),
        Plain::Null | Plain::Str => s.to_owned(),
    }
}

/// A float key, as Go's `FormatFloat(f, 'g', -1, 32)` writes the common
/// cases (`1.5`, `8`); the infinities and NaN as go-yaml writes them.
pub(super) fn float_key(f: f64) -> String {
    if f.is_nan() {
        ".nan".into()
    } else if f.is_infinite() {
        if f > 0.0 { ".inf" } else { "-.inf" }.into()
    } else {
        (f as f32).to_string()
    }
}

/// `value` as YAML that reads back the same, by kubectl and by podvisor:
/// serde_yaml_ng quotes the strings YAML 1.2 would read as something else,
/// but writes `yes`, `on`, `y`, `1_000` or `0X1F` plain, which YAML 1.1
/// reads as a boolean or a number. Those strings (keys too) are written
/// single-quoted here.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, String> {
    let mut value = serde_json::to_value(value).map_err(|e| e.to_string())?;
    // A marker no input holds, standing for each string to quote.
    let plain = serde_json::to_string(&value).map_err(|e| e.to_string())?;
    let mut marker = String::from("podvisor-quote-");
    while plain.contains(&marker) {
        marker.push('x');
    }
    let mut quoted = Vec::new();
    mark(&mut value, &marker, &mut quoted);
    let mut text = serde_yaml_ng::to_string(&value).map_err(|e| e.to_string())?;
    // Last first: `…-1` is a prefix of `…-10`.
    for (i, s) in quoted.iter().enumerate().rev() {
        text = text.replace(&format!("{marker}{i}-"), &format!("'{s}'"));
    }
    Ok(text)
}

/// Whether YAML 1.1 reads `s`, written plain, as anything but this string.
fn needs_quotes(s: &str) -> bool {
    resolve_plain(s) != Plain::Str
}

/// Replaces each string (and key) of `value` that [`needs_quotes`] by a
/// marker, keeping the originals in `quoted`. Such strings are made of
/// digits, letters, `+-._~` only: quoting them needs no escapes.
fn mark(value: &mut Value, marker: &str, quoted: &mut Vec<String>) {
    let stand_in = |s: &str, quoted: &mut Vec<String>| {
        quoted.push(s.to_owned());
        format!("{marker}{}-", quoted.len() - 1)
    };
    match value {
        Value::String(s) if needs_quotes(s) && !s.is_empty() => *s = stand_in(s, quoted),
        Value::Array(items) => items.iter_mut().for_each(|v| mark(v, marker, quoted)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                mark(&mut v, marker, quoted);
                let k = if needs_quotes(&k) && !k.is_empty() {
                    stand_in(&k, quoted)
                } else {
                    k
                };
                map.insert(k, v);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_go_yaml_v2_reads_them() {
        let cases: &[(&str, i64)] = &[
            ("10", 10),
            ("010", 8),
            ("0", 0),
            ("00", 0),
            ("0x10", 16),
            ("0X1f", 31),
            ("0x_1F", 31),
            ("0o17", 15),
            ("0O17", 15),
            ("0b11", 3),
            ("0B11", 3),
            ("-0b11", -3),
            ("+80", 80),
            ("-0x10", -16),
            ("+010", 8),
            ("1_000", 1000),
            ("10_", 10),
            ("1__0", 10),
            ("-9223372036854775808", i64::MIN),
        ];
        for (text, want) in cases {
            assert_eq!(resolve_plain(text), Plain::Int(*want), "{text}");
        }
        assert_eq!(resolve_plain("18446744073709551615"), Plain::UInt(u64::MAX));
        assert_eq!(resolve_plain("0xFFFFFFFFFFFFFFFF"), Plain::UInt(u64::MAX));
    }

    #[test]
    fn floats_bools_nulls_and_strings() {
        for (text, want) in [
            ("08", 8.0),
            ("09.5", 9.5),
            ("1e2", 100.0),
            ("1_0.5", 10.5),
            (".5", 0.5),
            ("-.5", -0.5),
            ("+.5", 0.5),
            ("0.", 0.0),
            ("18446744073709551616", 18446744073709551616.0),
        ] {
            assert_eq!(resolve_plain(text), Plain::Float(want), "{text}");
        }
        for t in [
            "y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True",
        ] {
            assert_eq!(resolve_plain(t), Plain::Bool(true), "{t}");
        }
        for t in [
            "n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "FALSE",
        ] {
            assert_eq!(resolve_plain(t), Plain::Bool(false), "{t}");
        }
        for t in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(resolve_plain(t), Plain::Null, "{t}");
        }
        for t in [
            "yEs",
            "oN",
            "tRue",
            "_10",
            "0x",
            "0b",
            "1e400",
            "0x1G",
            "1.2.3",
            "nginx:1.27",
            "1e",
            "+",
            "-",
            ".",
            "._5",
            "0xFFFFFFFFFFFFFFFFF",
            "2001-12-14",
            "1:30",
            "inf",
            "NaN",
        ] {
            assert_eq!(resolve_plain(t), Plain::Str, "{t}");
        }
        assert!(matches!(resolve_plain(".inf"), Plain::Float(f) if f.is_infinite()));
        assert!(matches!(resolve_plain(".NaN"), Plain::Float(f) if f.is_nan()));
    }

    #[test]
    fn floats_become_json_as_go_writes_them() {
        assert_eq!(json_float(80.0), Some(Value::from(80)));
        assert_eq!(json_float(-0.0), Some(Value::from(0)));
        assert_eq!(json_float(80.5), Some(Value::from(80.5)));
        assert_eq!(
            json_float(1e20),
            Some(Value::from(100_000_000_000_000_000_000u128 as f64))
        );
        assert!(json_float(1e20).unwrap().as_i64().is_none());
        assert_eq!(json_float(f64::NAN), None);
        assert!(plain_to_json(".inf").is_err());
        assert_eq!(plain_to_json("010"), Ok(Value::from(8)));
        assert_eq!(plain_key("yes"), "true");
        assert_eq!(plain_key("010"), "8");
        assert_eq!(plain_key("1.5"), "1.5");
        assert_eq!(plain_key("name"), "name");
    }
}
