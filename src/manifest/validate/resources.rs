//! `resources`: resource names, quantities that parse and are not
//! negative, requests no more than limits (equal for extended resources).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::qualified_name_error;
use super::{Check, FieldError};

const FORMAT_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity in units of 10⁻⁹ (rounded up, saturating), exactly enough to
/// compare two quantities; the error is Kubernetes' message.
pub(super) fn quantity_nanos(q: &str) -> Result<i128, &'static str> {
    let (negative, rest) = match q.as_bytes().first() {
        Some(b'-') => (true, &q[1..]),
        Some(b'+') => (false, &q[1..]),
        _ => (false, q),
    };
    let number_len = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(number_len);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(FORMAT_MSG);
    }
    let (exp10, pow1024): (i32, u32) = match suffix {
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
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(FORMAT_MSG);
            }
            (exp.parse::<i32>().map_err(|_| FORMAT_MSG)?, 0)
        }
        _ => return Err(FORMAT_MSG),
    };
    // digits × 10^(exp10 + 9 - frac.len()) × 1024^pow1024, in i128. The
    // fraction digits below a nano-unit only round up (70 of them would
    // not fit).
    let kept = usize::try_from(exp10.saturating_add(9).max(0))
        .unwrap_or(0)
        .min(frac.len());
    let (frac, below) = frac.split_at(kept);
    let round_up = below.bytes().any(|b| b != b'0');
    let mut value: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        value = value
            .saturating_mul(10)
            .saturating_add(i128::from(b - b'0'));
    }
    let frac_len = i32::try_from(frac.len()).unwrap_or(i32::MAX);
    let scale = exp10.saturating_add(9).saturating_sub(frac_len);
    if scale >= 0 {
        for _ in 0..scale.min(60) {
            value = value.saturating_mul(10);
        }
        value = value.saturating_add(i128::from(round_up));
    } else {
        let div = 10_i128
            .checked_pow(scale.unsigned_abs())
            .unwrap_or(i128::MAX);
        // Rounded up, without overflow for a saturated value.
        value = value / div + i128::from(value % div != 0 || round_up);
    }
    for _ in 0..pow1024 {
        value = value.saturating_mul(1024);
    }
    Ok(if negative { -value } else { value })
}

/// `cpu`, `memory`, `ephemeral-storage`, `hugepages-<size>`, or an
/// extended resource (`domain/name`, outside `kubernetes.io`).
fn validate_name(name: &str, path: &str) -> Check {
    if let Some(msg) = qualified_name_error(name) {
        return Err(FieldError::invalid(path, name, &msg));
    }
    let standard =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !name.contains('/') && !standard {
        let msg = "must be a standard resource for containers";
        return Err(FieldError::invalid(path, name, msg));
    }
    if name.contains('/') && !is_native(name) && name.starts_with("requests.") {
        let msg = "doesn't follow extended resource name standard";
        return Err(FieldError::invalid(path, name, msg));
    }
    Ok(())
}

/// Kubernetes' own resources (no domain, or `kubernetes.io`).
fn is_native(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

/// Requests may exceed nothing: over-commit is allowed for native
/// resources but huge pages.
fn overcommit_allowed(name: &str) -> bool {
    is_native(name) && !name.starts_with("hugepages-")
}

fn validate_quantities(map: Option<&BTreeMap<String, Quantity>>, path: &str) -> Check {
    for (name, q) in map.into_iter().flatten() {
        let path = format!("{path}[{name}]");
        validate_name(name, &path)?;
        let value = quantity_nanos(&q.0).map_err(|msg| FieldError::invalid(&path, &q.0, msg))?;
        if value < 0 {
            let msg = "must be greater than or equal to 0";
            return Err(FieldError::invalid(path, &q.0, msg));
        }
        if !is_native(name) && value % 1_000_000_000 != 0 {
            return Err(FieldError::invalid(path, &q.0, "must be an integer"));
        }
    }
    Ok(())
}

pub(super) fn validate_resources(r: Option<&ResourceRequirements>, path: &str) -> Check {
    let Some(r) = r else { return Ok(()) };
    let (limits, requests) = (r.limits.as_ref(), r.requests.as_ref());
    validate_quantities(limits, &format!("{path}.limits"))?;
    validate_quantities(requests, &format!("{path}.requests"))?;
    let req_path = format!("{path}.requests");
    for (name, request) in requests.into_iter().flatten() {
        let limit = limits.and_then(|l| l.get(name));
        let Some(limit) = limit else {
            if !overcommit_allowed(name) {
                let msg = "Limit must be set for non overcommitable resources";
                return Err(FieldError::required_because(format!("{path}.limits"), msg));
            }
            continue;
        };
        let order = quantity_nanos(&request.0).cmp(&quantity_nanos(&limit.0));
        let limit = &limit.0;
        if order != Ordering::Equal && !overcommit_allowed(name) {
            let msg = format!("must be equal to {name} limit of {limit}");
            return Err(FieldError::invalid(req_path, &request.0, &msg));
        }
        if order == Ordering::Greater {
            let msg = format!("must be less than or equal to {name} limit of {limit}");
            return Err(FieldError::invalid(req_path, &request.0, &msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::super::validate_pod;
    use super::quantity_nanos;
    use crate::manifest::test_support::*;

    fn res(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> String {
        let map = |pairs: &[(&str, &str)]| {
            let map = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())));
            Some(map.collect())
        };
        let pod = pod_with(|p| {
            spec(p).containers[0].resources = Some(ResourceRequirements {
                limits: map(limits),
                requests: map(requests),
                ..Default::default()
            })
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    const RES: &str = "spec.containers[0].resources";

    #[test]
    fn quantities_parse_exactly() {
        assert_eq!(quantity_nanos("1"), Ok(1_000_000_000));
        assert_eq!(quantity_nanos("100m"), quantity_nanos("0.1"));
        assert_eq!(quantity_nanos("1Ki"), quantity_nanos("1024"));
        assert_eq!(quantity_nanos("1e3"), quantity_nanos("1k"));
        assert_eq!(quantity_nanos("-1"), Ok(-1_000_000_000));
        for bad in ["", "1x", "1.2.3", ".", "Mi", "1e", "1Kii", "1 "] {
            assert!(quantity_nanos(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities_with_more_digits_than_fit_saturate_instead_of_overflowing() {
        // Found by `make fuzz`: 70 fraction digits saturate the value, and
        // rounding it up overflowed.
        let long = format!("1.{}Gi", "5".repeat(68));
        // 1.555555555 (then 5s, rounding up) × 2³⁰ units.
        assert_eq!(quantity_nanos(&long), Ok((1_555_555_555 + 1) * (1 << 30)));
        assert_eq!(quantity_nanos(&format!("0.{}1", "0".repeat(80))), Ok(1));
        assert_eq!(quantity_nanos("1.5"), Ok(1_500_000_000));
        assert_eq!(quantity_nanos("1.0000000001"), Ok(1_000_000_001));
        assert_eq!(quantity_nanos("1.0000000000"), Ok(1_000_000_000));
    }

    #[test]
    fn quantities_must_parse() {
        assert_eq!(
            res(&[("memory", "64MB")], &[]),
            format!(
                "{RES}.limits[memory]: Invalid value: \"64MB\": quantities must match the \
                 regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
            )
        );
    }

    #[test]
    fn quantities_are_not_negative() {
        assert_eq!(
            res(&[], &[("cpu", "-100m")]),
            format!(
                "{RES}.requests[cpu]: Invalid value: \"-100m\": must be greater than or equal to 0"
            )
        );
    }

    #[test]
    fn resource_names_are_standard_or_extended() {
        let err = res(&[("gpu", "1")], &[]);
        assert_eq!(
            err,
            format!("{RES}.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for containers")
        );
        assert_eq!(
            res(
                &[
                    ("example.com/gpu", "1"),
                    ("hugepages-2Mi", "2Mi"),
                    ("cpu", "1")
                ],
                &[]
            ),
            ""
        );
        assert_eq!(
            res(&[("example.com/gpu", "500m")], &[]),
            format!("{RES}.limits[example.com/gpu]: Invalid value: \"500m\": must be an integer")
        );
    }

    #[test]
    fn requests_are_at_most_limits() {
        assert_eq!(
            res(
                &[("cpu", "1"), ("memory", "1Gi")],
                &[("cpu", "1000m"), ("memory", "1024Mi")]
            ),
            ""
        );
        assert_eq!(
            res(&[("cpu", "500m")], &[("cpu", "1")]),
            format!("{RES}.requests: Invalid value: \"1\": must be less than or equal to cpu limit of 500m")
        );
    }

    #[test]
    fn extended_resources_need_equal_request_and_limit() {
        assert_eq!(
            res(&[("example.com/gpu", "2")], &[("example.com/gpu", "1")]),
            format!(
                "{RES}.requests: Invalid value: \"1\": must be equal to example.com/gpu limit of 2"
            )
        );
        assert_eq!(
            res(&[], &[("example.com/gpu", "1")]),
            format!(
                "{RES}.limits: Required value: Limit must be set for non overcommitable resources"
            )
        );
    }
}
