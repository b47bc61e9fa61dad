//! Container resources: Kubernetes quantities, the engine's CPU shares, CFS
//! quota and memory limit (DESIGN.md §4), and the node's admission check.
//!
//! Pure: the node's capacity is read by [`crate::host::node_capacity`].
//!
//! Here: a container's requests and limits and its engine settings. In
//! `quantity`: reading quantities ([`parse_cpu_millis`], [`parse_bytes`]).
//! In `admission`: a pod's requests against the node ([`admit`]).
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

mod admission;
pub mod qos;
mod quantity;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifest::FieldError;
use crate::runtime::Resources;

pub use admission::{admit, fit, pod_amounts, pod_requests, NodeCapacity, PodRequests, Rejection};
pub use quantity::{parse_bytes, parse_cpu_millis, QuantityError};

/// Minimum CPU shares the kernel accepts (and what a container without a
/// CPU request gets).
pub const MIN_SHARES: i64 = 2;
/// Maximum CPU shares the kernel accepts.
pub const MAX_SHARES: i64 = 262_144;
/// The CFS period podvisor uses, in µs.
pub const CFS_PERIOD_US: i64 = 100_000;
/// The smallest CFS quota the kernel accepts, in µs.
pub const MIN_CFS_QUOTA_US: i64 = 1_000;

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

#[cfg(test)]
mod tests {
    use super::quantity::FORMAT_MSG;
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    pub(super) fn container(limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
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
}
