//! Container resources: Kubernetes quantities, the engine's CPU shares, CFS
//! quota and memory limit (DESIGN.md §4), and the node's admission check.
//!
//! Pure: the node's capacity is read by [`crate::host::node_capacity`].
//!
//! # Quantities
//!
//! A quantity is `<sign><number><suffix>`: the number is `12`, `1.5`, `1.` or
//! `.5`; the suffix is empty, a decimal SI prefix (`n`, `u`, `m`, `k`, `M`,
//! `G`, `T`, `P`, `E`), a binary one (`Ki`, `Mi`, `Gi`, `Ti`, `Pi`, `Ei`) or
//! a decimal exponent (`e3`, `E-2`; a bare `E` is exa). As Kubernetes does, a
//! value that is not a whole number of the unit asked for is rounded up
//! (away from zero): `0.1m` of CPU is 1 milliCPU, `1.5m` bytes is 1 byte.
//! Unlike Kubernetes, which caps, a value beyond `i64` is an error.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifest::FieldError;
use crate::runtime::Resources;

/// The message Kubernetes gives for a quantity it cannot read.
const FORMAT_MSG: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// The message Kubernetes gives for a number followed by an unknown suffix.
const SUFFIX_MSG: &str = "unable to parse quantity's suffix";
const TOO_LARGE_MSG: &str = "quantity is too large";

/// Minimum CPU shares the kernel accepts (and what a container without a
/// CPU request gets).
pub const MIN_SHARES: i64 = 2;
/// Maximum CPU shares the kernel accepts.
pub const MAX_SHARES: i64 = 262_144;
/// The CFS period podvisor uses, in µs.
pub const CFS_PERIOD_US: i64 = 100_000;
/// The smallest CFS quota the kernel accepts, in µs.
pub const MIN_CFS_QUOTA_US: i64 = 1_000;

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

fn parse_quantity(q: &str) -> Result<Parsed, String> {
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
        return Err(FORMAT_MSG.to_string());
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
            return Err(SUFFIX_MSG.to_string())
        }
        _ => return Err(FORMAT_MSG.to_string()),
    };
    Ok(Parsed {
        negative,
        digits,
        exp10: exp - frac_len,
        pow1024,
    })
}

/// The integer after `e`/`E`: an optional sign and at least one digit.
fn parse_exponent(s: &str) -> Result<i64, String> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SUFFIX_MSG.to_string());
    }
    // Anything past a few hundred is over- or underflow anyway.
    let magnitude: i64 = match unsigned.trim_start_matches('0') {
        d if d.len() > 6 => 1_000_000,
        "" => 0,
        d => d.parse().map_err(|_| SUFFIX_MSG.to_string())?,
    };
    Ok(if s.starts_with('-') {
        -magnitude
    } else {
        magnitude
    })
}

/// The quantity as a whole number of `10^-scale` units, rounded up (away
/// from zero). Exact: the digits are multiplied as a decimal big number.
fn scaled(p: Parsed, scale: i64) -> Result<i64, String> {
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
        return Err(TOO_LARGE_MSG.to_string());
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
    let value = i64::try_from(value).map_err(|_| TOO_LARGE_MSG.to_string())?;
    Ok(if p.negative { -value } else { value })
}

/// A CPU quantity in milliCPU: `100m` → 100, `0.5` → 500, `2` → 2000,
/// `1e3` → 1 000 000, `2500u` → 3 (rounded up). The error is Kubernetes'
/// wording. Negative quantities parse (to negative values); callers refuse them.
pub fn parse_cpu_millis(q: &str) -> Result<i64, String> {
    scaled(parse_quantity(q)?, 3)
}

/// A byte quantity: `1Gi` → 1073741824, `1G` → 10⁹, `1.5Gi`, `1e3` → 1000,
/// `1500m` → 2 (millibytes, rounded up). The error is Kubernetes' wording.
/// Negative quantities parse (to negative values); callers refuse them.
pub fn parse_bytes(q: &str) -> Result<i64, String> {
    scaled(parse_quantity(q)?, 0)
}

/// CPU, memory and ephemeral storage amounts (either a container's requests
/// or its limits); `None` when not given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amounts {
    /// milliCPU.
    pub cpu_millis: Option<i64>,
    /// Bytes.
    pub memory_bytes: Option<i64>,
    /// Bytes.
    pub ephemeral_storage_bytes: Option<i64>,
}

/// A container's requests and limits, parsed and validated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContainerAmounts {
    /// Requests, defaulted to the limit when only the limit is given (as the
    /// API server does).
    pub requests: Amounts,
    /// Limits as given.
    pub limits: Amounts,
}

/// Resource names a container may use without a domain prefix.
fn is_standard_container_resource(name: &str) -> bool {
    matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-")
}

/// Parses one of `resources.limits` / `resources.requests` (`which`), checking
/// every entry as the API server does: a known name (or a domain-qualified
/// extended resource), a well-formed, non-negative quantity.
fn parse_list(
    list: Option<&BTreeMap<String, Quantity>>,
    path: &str,
    which: &str,
) -> Result<Amounts, FieldError> {
    let mut amounts = Amounts::default();
    for (name, Quantity(value)) in list.into_iter().flatten() {
        let p = format!("{path}.resources.{which}.{name}");
        if !name.contains('/') && !is_standard_container_resource(name) {
            let msg =
                format!("Invalid value: {name:?}: must be a standard resource for containers");
            return Err(FieldError::new(p, msg));
        }
        let parsed = if name == "cpu" {
            parse_cpu_millis(value)
        } else {
            parse_bytes(value)
        };
        let amount = parsed
            .map_err(|e| FieldError::new(p.clone(), format!("Invalid value: {value:?}: {e}")))?;
        if amount < 0 {
            let msg = format!("Invalid value: {value:?}: must be greater than or equal to 0");
            return Err(FieldError::new(p, msg));
        }
        match name.as_str() {
            "cpu" => amounts.cpu_millis = Some(amount),
            "memory" => amounts.memory_bytes = Some(amount),
            "ephemeral-storage" => amounts.ephemeral_storage_bytes = Some(amount),
            _ => {}
        }
    }
    Ok(amounts)
}

/// The container's requests and limits, validated as the API server would:
/// known resource names, well-formed non-negative quantities, no request above
/// its limit. Requests default to limits. `path` is the container's field
/// path (`spec.containers[0]`); errors name the entry
/// (`spec.containers[0].resources.limits.memory`).
pub fn container_amounts(c: &Container, path: &str) -> Result<ContainerAmounts, FieldError> {
    let res = c.resources.as_ref();
    let limits = parse_list(res.and_then(|r| r.limits.as_ref()), path, "limits")?;
    let given = parse_list(res.and_then(|r| r.requests.as_ref()), path, "requests")?;
    let requests = Amounts {
        cpu_millis: given.cpu_millis.or(limits.cpu_millis),
        memory_bytes: given.memory_bytes.or(limits.memory_bytes),
        ephemeral_storage_bytes: given
            .ephemeral_storage_bytes
            .or(limits.ephemeral_storage_bytes),
    };
    let pairs = [
        ("cpu", given.cpu_millis, limits.cpu_millis),
        ("memory", given.memory_bytes, limits.memory_bytes),
        (
            "ephemeral-storage",
            given.ephemeral_storage_bytes,
            limits.ephemeral_storage_bytes,
        ),
    ];
    for (name, request, limit) in pairs {
        if let (Some(request), Some(limit)) = (request, limit) {
            if request > limit {
                let text = |which: &str| -> String {
                    res.and_then(|r| match which {
                        "requests" => r.requests.as_ref(),
                        _ => r.limits.as_ref(),
                    })
                    .and_then(|l| l.get(name))
                    .map(|q| q.0.clone())
                    .unwrap_or_default()
                };
                let msg = format!(
                    "Invalid value: {:?}: must be less than or equal to {name} limit of {}",
                    text("requests"),
                    text("limits")
                );
                return Err(FieldError::new(
                    format!("{path}.resources.requests.{name}"),
                    msg,
                ));
            }
        }
    }
    Ok(ContainerAmounts { requests, limits })
}

/// CPU shares for a milliCPU request, as the kubelet computes them:
/// `millis × 1024 / 1000`, clamped to [`MIN_SHARES`]..=[`MAX_SHARES`];
/// no request (or 0) gives [`MIN_SHARES`].
pub fn milli_cpu_to_shares(millis: Option<i64>) -> i64 {
    let millis = i128::from(millis.unwrap_or(0).max(0));
    let shares = millis * 1024 / 1000;
    shares.clamp(i128::from(MIN_SHARES), i128::from(MAX_SHARES)) as i64
}

/// The CFS quota (µs per [`CFS_PERIOD_US`]) for a milliCPU limit, as the
/// kubelet computes it: `millis × 100000 / 1000`, at least
/// [`MIN_CFS_QUOTA_US`]; `None` for no limit (or 0).
pub fn milli_cpu_to_quota(limit_millis: Option<i64>) -> Option<i64> {
    let millis = limit_millis.filter(|m| *m > 0)?;
    let quota = i128::from(millis) * i128::from(CFS_PERIOD_US) / 1000;
    Some(quota.clamp(i128::from(MIN_CFS_QUOTA_US), i128::from(i64::MAX)) as i64)
}

/// The engine's resource settings for one container (DESIGN.md §4).
///
/// - `cpu_shares`: the CPU request (the limit when only that is given) ×
///   1024 / 1000, between 2 and 262144; 2 when there is neither.
/// - With `cfs_quota` and a non-zero CPU limit: `cpu_period` 100000 µs and
///   `cpu_quota` = limit × 100, at least 1000 µs.
/// - A non-zero memory limit sets `memory` and `memory_swap` to the same
///   bytes (no swap); none (or `0`) leaves both unset (unlimited).
///
/// `path` is the container's field path (`spec.containers[0]`); errors are
/// those of [`container_amounts`].
pub fn container_resources(
    c: &Container,
    path: &str,
    cfs_quota: bool,
) -> Result<Resources, FieldError> {
    let amounts = container_amounts(c, path)?;
    let quota = milli_cpu_to_quota(amounts.limits.cpu_millis).filter(|_| cfs_quota);
    let memory = amounts.limits.memory_bytes.filter(|m| *m > 0);
    Ok(Resources {
        cpu_shares: Some(milli_cpu_to_shares(amounts.requests.cpu_millis)),
        cpu_quota: quota,
        cpu_period: quota.map(|_| CFS_PERIOD_US),
        memory,
        memory_swap: memory,
    })
}

/// What the node can give pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    /// CPUs × 1000.
    pub cpu_millis: i64,
    /// Bytes of memory.
    pub memory_bytes: i64,
}

/// Why the node refuses a pod, as the kubelet reports it in the pod's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct Rejection {
    /// `OutOfcpu`, `OutOfmemory`, or `UnexpectedAdmissionError` when the
    /// pod's resources cannot be read (the message names the field).
    pub reason: &'static str,
    /// e.g. `Node didn't have enough resource: cpu, requested: 4000, used: 0, capacity: 2000`.
    pub message: String,
}

/// What a pod asks of the node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// milliCPU.
    pub cpu_millis: i64,
    /// Bytes.
    pub memory_bytes: i64,
}

/// The pod's effective requests, per resource: the larger of the sum over
/// the app containers and the largest init container (init containers run
/// one at a time, before the app containers). Requests default to limits.
pub fn pod_requests(pod: &Pod) -> Result<PodRequests, FieldError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(PodRequests::default());
    };
    let mut apps = PodRequests::default();
    for (i, c) in spec.containers.iter().enumerate() {
        let r = container_amounts(c, &format!("spec.containers[{i}]"))?.requests;
        apps.cpu_millis = apps.cpu_millis.saturating_add(r.cpu_millis.unwrap_or(0));
        apps.memory_bytes = apps
            .memory_bytes
            .saturating_add(r.memory_bytes.unwrap_or(0));
    }
    let mut total = apps;
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let r = container_amounts(c, &format!("spec.initContainers[{i}]"))?.requests;
        total.cpu_millis = total.cpu_millis.max(r.cpu_millis.unwrap_or(0));
        total.memory_bytes = total.memory_bytes.max(r.memory_bytes.unwrap_or(0));
    }
    Ok(total)
}

/// The kubelet's resource admission of one pod against the whole node (no
/// other pod is accounted): refused when its effective CPU or memory request
/// ([`pod_requests`]) exceeds the capacity; CPU is checked first.
pub fn admit(pod: &Pod, node: &NodeCapacity) -> Result<(), Rejection> {
    let requests = pod_requests(pod).map_err(|e| Rejection {
        reason: "UnexpectedAdmissionError",
        message: e.to_string(),
    })?;
    let checks = [
        ("OutOfcpu", "cpu", requests.cpu_millis, node.cpu_millis),
        (
            "OutOfmemory",
            "memory",
            requests.memory_bytes,
            node.memory_bytes,
        ),
    ];
    for (reason, name, requested, capacity) in checks {
        if requested > capacity {
            return Err(Rejection {
                reason,
                message: format!(
                    "Node didn't have enough resource: {name}, requested: {requested}, used: 0, capacity: {capacity}"
                ),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodSpec, ResourceRequirements};

    fn cpu(q: &str) -> Result<i64, String> {
        parse_cpu_millis(q)
    }

    fn bytes(q: &str) -> Result<i64, String> {
        parse_bytes(q)
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

    fn container(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "app".into(),
            resources: Some(ResourceRequirements {
                limits: list(limits),
                requests: list(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const P: &str = "spec.containers[0]";

    #[test]
    fn shares_from_request_quota_from_limit_memory_from_limit() {
        let c = container(&[("cpu", "2"), ("memory", "128Mi")], &[("cpu", "500m")]);
        let r = container_resources(&c, P, true).unwrap();
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.cpu_quota, Some(200_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.memory, Some(128 << 20));
        assert_eq!(r.memory_swap, Some(128 << 20));
    }

    #[test]
    fn without_cfs_quota_no_quota_or_period() {
        let c = container(&[("cpu", "2")], &[]);
        let r = container_resources(&c, P, false).unwrap();
        assert_eq!(r.cpu_quota, None);
        assert_eq!(r.cpu_period, None);
        assert_eq!(r.cpu_shares, Some(2048));
    }

    #[test]
    fn shares_use_the_limit_when_there_is_no_request() {
        let c = container(&[("cpu", "250m")], &[]);
        assert_eq!(
            container_resources(&c, P, true).unwrap().cpu_shares,
            Some(256)
        );
    }

    #[test]
    fn no_cpu_at_all_gives_two_shares_and_nothing_else() {
        let c = Container::default();
        let r = container_resources(&c, P, true).unwrap();
        assert_eq!(
            r,
            Resources {
                cpu_shares: Some(2),
                ..Default::default()
            }
        );
    }

    #[test]
    fn share_and_quota_bounds() {
        assert_eq!(milli_cpu_to_shares(Some(1)), 2);
        assert_eq!(milli_cpu_to_shares(Some(0)), 2);
        assert_eq!(milli_cpu_to_shares(None), 2);
        assert_eq!(milli_cpu_to_shares(Some(3)), 3);
        assert_eq!(milli_cpu_to_shares(Some(1000)), 1024);
        assert_eq!(milli_cpu_to_shares(Some(1_000_000)), MAX_SHARES);
        assert_eq!(milli_cpu_to_shares(Some(i64::MAX)), MAX_SHARES);
        assert_eq!(milli_cpu_to_quota(Some(1)), Some(1000));
        assert_eq!(milli_cpu_to_quota(Some(10)), Some(1000));
        assert_eq!(milli_cpu_to_quota(Some(11)), Some(1100));
        assert_eq!(milli_cpu_to_quota(Some(0)), None);
        assert_eq!(milli_cpu_to_quota(None), None);
        assert_eq!(milli_cpu_to_quota(Some(i64::MAX)), Some(i64::MAX));
    }

    #[test]
    fn tiny_cpu_limit_gets_the_minimum_quota() {
        let c = container(&[("cpu", "1m")], &[]);
        let r = container_resources(&c, P, true).unwrap();
        assert_eq!(
            (r.cpu_quota, r.cpu_period, r.cpu_shares),
            (Some(1000), Some(100_000), Some(2))
        );
    }

    #[test]
    fn zero_memory_limit_is_unlimited() {
        let c = container(&[("memory", "0")], &[]);
        let r = container_resources(&c, P, true).unwrap();
        assert_eq!((r.memory, r.memory_swap), (None, None));
    }

    #[test]
    fn errors_name_the_field() {
        let c = container(&[("memory", "1Gb")], &[]);
        let e = container_resources(&c, "spec.containers[3]", true).unwrap_err();
        assert_eq!(e.path, "spec.containers[3].resources.limits.memory");
        assert_eq!(e.message, format!("Invalid value: \"1Gb\": {FORMAT_MSG}"));

        let c = container(&[], &[("cpu", "-1")]);
        let e = container_resources(&c, P, true).unwrap_err();
        assert_eq!(e.path, "spec.containers[0].resources.requests.cpu");
        assert_eq!(
            e.message,
            "Invalid value: \"-1\": must be greater than or equal to 0"
        );
    }

    #[test]
    fn request_above_limit_is_invalid() {
        let c = container(&[("cpu", "1")], &[("cpu", "1500m")]);
        let e = container_resources(&c, P, true).unwrap_err();
        assert_eq!(e.path, "spec.containers[0].resources.requests.cpu");
        assert_eq!(
            e.message,
            "Invalid value: \"1500m\": must be less than or equal to cpu limit of 1"
        );
        let c = container(&[("memory", "1Gi")], &[("memory", "1025Mi")]);
        let e = container_resources(&c, P, true).unwrap_err();
        assert_eq!(e.path, "spec.containers[0].resources.requests.memory");
        // Equal is fine, whatever the spelling.
        let c = container(&[("memory", "1Gi")], &[("memory", "1024Mi")]);
        assert!(container_resources(&c, P, true).is_ok());
    }

    #[test]
    fn unknown_resource_names_are_refused_extended_ones_pass() {
        let c = container(&[("memroy", "1Gi")], &[]);
        let e = container_resources(&c, P, true).unwrap_err();
        assert_eq!(e.path, "spec.containers[0].resources.limits.memroy");
        assert_eq!(
            e.message,
            "Invalid value: \"memroy\": must be a standard resource for containers"
        );
        let c = container(&[("example.com/gpu", "1"), ("hugepages-2Mi", "4Mi")], &[]);
        assert!(container_resources(&c, P, true).is_ok());
        let c = container(&[("example.com/gpu", "x")], &[]);
        let e = container_resources(&c, P, true).unwrap_err();
        assert_eq!(
            e.path,
            "spec.containers[0].resources.limits.example.com/gpu"
        );
    }

    #[test]
    fn requests_default_to_limits() {
        let c = container(&[("cpu", "1"), ("memory", "64Mi")], &[("memory", "32Mi")]);
        let a = container_amounts(&c, P).unwrap();
        assert_eq!(a.requests.cpu_millis, Some(1000));
        assert_eq!(a.requests.memory_bytes, Some(32 << 20));
        assert_eq!(a.limits.memory_bytes, Some(64 << 20));
        assert_eq!(a.requests.ephemeral_storage_bytes, None);
    }

    fn pod(apps: Vec<Container>, inits: Vec<Container>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: apps,
                init_containers: (!inits.is_empty()).then_some(inits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    const NODE: NodeCapacity = NodeCapacity {
        cpu_millis: 2000,
        memory_bytes: 1 << 30,
    };

    #[test]
    fn pod_requests_sum_apps_and_take_the_largest_init() {
        let p = pod(
            vec![
                container(&[], &[("cpu", "500m"), ("memory", "100Mi")]),
                container(&[("cpu", "250m")], &[("memory", "100Mi")]),
            ],
            vec![
                container(&[], &[("cpu", "1"), ("memory", "50Mi")]),
                container(&[], &[("cpu", "100m"), ("memory", "150Mi")]),
            ],
        );
        let r = pod_requests(&p).unwrap();
        assert_eq!(r.cpu_millis, 1000); // init 1 > 750 of the apps
        assert_eq!(r.memory_bytes, 200 << 20); // apps 200Mi > init 150Mi
    }

    #[test]
    fn admits_what_fits_exactly() {
        let p = pod(
            vec![container(&[], &[("cpu", "2"), ("memory", "1Gi")])],
            vec![],
        );
        assert_eq!(admit(&p, &NODE), Ok(()));
        assert_eq!(
            admit(&pod(vec![Container::default()], vec![]), &NODE),
            Ok(())
        );
    }

    #[test]
    fn refuses_too_much_cpu_like_the_kubelet() {
        let p = pod(vec![container(&[("cpu", "4")], &[])], vec![]);
        assert_eq!(
            admit(&p, &NODE),
            Err(Rejection {
                reason: "OutOfcpu",
                message: "Node didn't have enough resource: cpu, requested: 4000, used: 0, capacity: 2000".into()
            })
        );
    }

    #[test]
    fn refuses_too_much_memory_and_checks_cpu_first() {
        let p = pod(vec![container(&[], &[("memory", "2Gi")])], vec![]);
        let e = admit(&p, &NODE).unwrap_err();
        assert_eq!(e.reason, "OutOfmemory");
        assert_eq!(
            e.message,
            "Node didn't have enough resource: memory, requested: 2147483648, used: 0, capacity: 1073741824"
        );
        let p = pod(
            vec![container(&[], &[("memory", "2Gi"), ("cpu", "3")])],
            vec![],
        );
        assert_eq!(admit(&p, &NODE).unwrap_err().reason, "OutOfcpu");
    }

    #[test]
    fn an_init_container_alone_can_be_too_big() {
        let p = pod(
            vec![Container::default()],
            vec![container(&[], &[("cpu", "2001m")])],
        );
        assert_eq!(admit(&p, &NODE).unwrap_err().reason, "OutOfcpu");
    }

    #[test]
    fn unreadable_resources_are_an_admission_error_naming_the_field() {
        let p = pod(
            vec![Container::default()],
            vec![container(&[("cpu", "x")], &[])],
        );
        let e = admit(&p, &NODE).unwrap_err();
        assert_eq!(e.reason, "UnexpectedAdmissionError");
        assert!(
            e.message
                .starts_with("spec.initContainers[0].resources.limits.cpu: "),
            "{}",
            e.message
        );
    }
}
