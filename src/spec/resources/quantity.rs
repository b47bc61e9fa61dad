//! Kubernetes quantities: `<sign><number><suffix>` read exactly, as a
//! whole number of the unit asked for (see the [module](super) docs).

/// The message Kubernetes gives for a quantity it cannot read.
pub(super) const FORMAT_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// The message Kubernetes gives for a number followed by an unknown suffix.
pub(super) const SUFFIX_MSG: &str = "unable to parse quantity's suffix";
pub(super) const TOO_LARGE_MSG: &str = "quantity is too large";

/// A quantity that cannot be read, in Kubernetes' wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a number with a suffix at all.
    #[error("{}", FORMAT_MSG)]
    Format,
    /// A number followed by an unknown suffix.
    #[error("{}", SUFFIX_MSG)]
    Suffix,
    /// Beyond `i64`.
    #[error("{}", TOO_LARGE_MSG)]
    TooLarge,
}

/// A quantity split into its parts: `±digits × 10^exp10 × 1024^pow1024`.
#[derive(Debug, PartialEq, Eq)]
struct Parsed {
    negative: bool,
    /// Decimal digits of the number, integer and fraction parts together.
    digits: Vec<u8>,
    /// Power of ten applied to `digits` (the fraction length already taken off).
    exp10: i64,
    /// Power of 1024 (binary suffixes).
    pow1024: u32,
}

fn parse_quantity(q: &str) -> Result<Parsed, QuantityError> {
    let bytes = q.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut digits = Vec::new();
    let mut frac_len: i64 = 0;
    let mut seen_dot = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'0'..=b'9' => {
                digits.push(b - b'0');
                if seen_dot {
                    frac_len += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() {
        return Err(QuantityError::Format);
    }
    let (exp, pow1024) = match &q[i..] {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 1),
        "Mi" => (0, 2),
        "Gi" => (0, 3),
        "Ti" => (0, 4),
        "Pi" => (0, 5),
        "Ei" => (0, 6),
        s if s.starts_with(['e', 'E']) => (parse_exponent(&s[1..])?, 0),
        s if s.bytes().all(|b| b"eEinumkKMGTP+-0123456789".contains(&b)) => {
            return Err(QuantityError::Suffix)
        }
        _ => return Err(QuantityError::Format),
    };
    Ok(Parsed {
        negative,
        digits,
        exp10: exp - frac_len,
        pow1024,
    })
}

/// The integer after `e`/`E`: an optional sign and at least one digit.
fn parse_exponent(s: &str) -> Result<i64, QuantityError> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(QuantityError::Suffix);
    }
    // Anything past a few hundred is over- or underflow anyway.
    let magnitude: i64 = match unsigned.trim_start_matches('0') {
        d if d.len() > 6 => 1_000_000,
        "" => 0,
        d => d.parse().map_err(|_| QuantityError::Suffix)?,
    };
    Ok(if s.starts_with('-') {
        -magnitude
    } else {
        magnitude
    })
}

/// The quantity as a whole number of `10^-scale` units, rounded up (away
/// from zero). Exact: the digits are multiplied as a decimal big number.
fn scaled(p: Parsed, scale: i64) -> Result<i64, QuantityError> {
    let first = p.digits.iter().position(|d| *d != 0);
    let Some(first) = first else {
        return Ok(0);
    };
    // Least significant digit first, for the multiplications.
    let mut digits: Vec<u8> = p.digits[first..].iter().rev().copied().collect();
    for _ in 0..p.pow1024 {
        let mut carry = 0u32;
        for d in digits.iter_mut() {
            let v = u32::from(*d) * 1024 + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            digits.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    let exp = p.exp10 + scale;
    let (kept, inexact): (&[u8], bool) = if exp >= 0 {
        (&digits[..], false)
    } else {
        let drop = usize::try_from(-exp)
            .unwrap_or(usize::MAX)
            .min(digits.len());
        (&digits[drop..], digits[..drop].iter().any(|d| *d != 0))
    };
    let zeros = usize::try_from(exp.max(0)).unwrap_or(usize::MAX);
    // i64::MAX has 19 digits: a longer number cannot fit.
    if kept.len().saturating_add(zeros) > 19 {
        return Err(QuantityError::TooLarge);
    }
    let mut value: i128 = 0;
    for d in kept.iter().rev() {
        value = value * 10 + i128::from(*d);
    }
    for _ in 0..zeros {
        value *= 10;
    }
    if inexact {
        value += 1;
    }
    let value = i64::try_from(value).map_err(|_| QuantityError::TooLarge)?;
    Ok(if p.negative { -value } else { value })
}

/// A CPU quantity in milliCPU: `100m` → 100, `0.5` → 500, `2` → 2000,
/// `1e3` → 1 000 000, `2500u` → 3 (rounded up). The error is Kubernetes'
/// wording. Negative quantities parse (to negative values); callers refuse them.
pub fn parse_cpu_millis(q: &str) -> Result<i64, QuantityError> {
    scaled(parse_quantity(q)?, 3)
}

/// A byte quantity: `1Gi` → 1073741824, `1G` → 10⁹, `1.5Gi`, `1e3` → 1000,
/// `1500m` → 2 (millibytes, rounded up). The error is Kubernetes' wording.
/// Negative quantities parse (to negative values); callers refuse them.
pub fn parse_bytes(q: &str) -> Result<i64, QuantityError> {
    scaled(parse_quantity(q)?, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The tests read the messages.
    fn cpu(q: &str) -> Result<i64, String> {
        parse_cpu_millis(q).map_err(|e| e.to_string())
    }

    fn bytes(q: &str) -> Result<i64, String> {
        parse_bytes(q).map_err(|e| e.to_string())
    }
    #[test]
    fn cpu_millis_from_the_usual_forms() {
        assert_eq!(cpu("100m"), Ok(100));
        assert_eq!(cpu("0.5"), Ok(500));
        assert_eq!(cpu("2"), Ok(2000));
        assert_eq!(cpu("1.5"), Ok(1500));
        assert_eq!(cpu(".5"), Ok(500));
        assert_eq!(cpu("1."), Ok(1000));
        assert_eq!(cpu("+1"), Ok(1000));
        assert_eq!(cpu("0"), Ok(0));
        assert_eq!(cpu("0m"), Ok(0));
        assert_eq!(cpu("1000m"), Ok(1000));
    }

    #[test]
    fn cpu_millis_with_exponents_and_small_units() {
        assert_eq!(cpu("1e3"), Ok(1_000_000));
        assert_eq!(cpu("1E3"), Ok(1_000_000));
        assert_eq!(cpu("1e-3"), Ok(1));
        assert_eq!(cpu("5e+2"), Ok(500_000));
        assert_eq!(cpu("2500u"), Ok(3));
        assert_eq!(cpu("1000000n"), Ok(1));
        assert_eq!(cpu("1k"), Ok(1_000_000));
        assert_eq!(cpu("1.5e3"), Ok(1_500_000));
        assert_eq!(cpu("15e-1"), Ok(1500));
    }

    #[test]
    fn fractional_millis_round_up_away_from_zero() {
        assert_eq!(cpu("0.1m"), Ok(1));
        assert_eq!(cpu("1.0001"), Ok(1001));
        assert_eq!(cpu("0.0000000001"), Ok(1));
        assert_eq!(cpu("1.000m"), Ok(1));
        assert_eq!(cpu("-0.1m"), Ok(-1));
        assert_eq!(cpu("-1.5"), Ok(-1500));
    }

    #[test]
    fn bytes_binary_and_decimal_suffixes() {
        assert_eq!(bytes("1Ki"), Ok(1024));
        assert_eq!(bytes("1Mi"), Ok(1 << 20));
        assert_eq!(bytes("1Gi"), Ok(1 << 30));
        assert_eq!(bytes("1Ti"), Ok(1 << 40));
        assert_eq!(bytes("1Pi"), Ok(1 << 50));
        assert_eq!(bytes("1Ei"), Ok(1 << 60));
        assert_eq!(bytes("1k"), Ok(1000));
        assert_eq!(bytes("1M"), Ok(1_000_000));
        assert_eq!(bytes("1G"), Ok(1_000_000_000));
        assert_eq!(bytes("1T"), Ok(1_000_000_000_000));
        assert_eq!(bytes("1P"), Ok(1_000_000_000_000_000));
        assert_eq!(bytes("1E"), Ok(1_000_000_000_000_000_000));
        assert_eq!(bytes("128974848"), Ok(128_974_848));
    }

    #[test]
    fn bytes_fractions_exponents_and_millibytes() {
        assert_eq!(bytes("1.5Gi"), Ok(1_610_612_736));
        assert_eq!(bytes("0.5Ki"), Ok(512));
        assert_eq!(bytes("0.3Ki"), Ok(308)); // 307.2 rounds up
        assert_eq!(bytes("129e6"), Ok(129_000_000));
        assert_eq!(bytes("1e3"), Ok(1000));
        assert_eq!(bytes("1500m"), Ok(2));
        assert_eq!(bytes("1000m"), Ok(1));
        assert_eq!(bytes("1m"), Ok(1));
        assert_eq!(bytes("0.5"), Ok(1));
        assert_eq!(bytes("7Ei"), Ok(7 << 60));
    }

    #[test]
    fn limits_of_i64() {
        assert_eq!(bytes("9223372036854775807"), Ok(i64::MAX));
        assert_eq!(bytes("9223372036854775808"), Err(TOO_LARGE_MSG.into()));
        assert_eq!(bytes("8Ei"), Err(TOO_LARGE_MSG.into()));
        assert_eq!(bytes("1e19"), Err(TOO_LARGE_MSG.into()));
        assert_eq!(bytes("1e999999999999"), Err(TOO_LARGE_MSG.into()));
        assert_eq!(cpu("9223372036854775807"), Err(TOO_LARGE_MSG.into()));
        assert_eq!(bytes("0e999999999999"), Ok(0));
        assert_eq!(bytes("1e-999999999999"), Ok(1));
        assert_eq!(bytes("000000000000000000000000000001"), Ok(1));
    }

    #[test]
    fn malformed_quantities_are_refused_with_kubernetes_wording() {
        for q in [
            "", "m", ".", "-", "Gi", "abc", " 1", "1 ", "1..5", "1.5.", "1Gb",
        ] {
            assert_eq!(bytes(q), Err(FORMAT_MSG.into()), "{q:?}");
        }
        for q in ["1K", "1e", "1e+", "1Mii", "1mm", "1ki", "1iK", "1E3.5"] {
            let err = bytes(q).unwrap_err();
            assert!(err == SUFFIX_MSG || err == FORMAT_MSG, "{q:?}: {err}");
        }
        assert_eq!(bytes("1K"), Err(SUFFIX_MSG.into()));
        assert_eq!(cpu("1e"), Err(SUFFIX_MSG.into()));
    }
}
