//! The kubelet's resource admission: a pod's effective requests against
//! the node's capacity.

use k8s_openapi::api::core::v1::Pod;

use super::container_amounts;
use crate::manifest::FieldError;
use crate::model::RefusalReason;

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
    pub reason: RefusalReason,
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
        reason: RefusalReason::UnexpectedAdmissionError,
        message: e.to_string(),
    })?;
    let checks = [
        (
            RefusalReason::OutOfcpu,
            "cpu",
            requests.cpu_millis,
            node.cpu_millis,
        ),
        (
            RefusalReason::OutOfmemory,
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
    use super::super::tests::container;
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

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
                reason: RefusalReason::OutOfcpu,
                message: "Node didn't have enough resource: cpu, requested: 4000, used: 0, capacity: 2000".into()
            })
        );
    }

    #[test]
    fn refuses_too_much_memory_and_checks_cpu_first() {
        let p = pod(vec![container(&[], &[("memory", "2Gi")])], vec![]);
        let e = admit(&p, &NODE).unwrap_err();
        assert_eq!(e.reason.as_str(), "OutOfmemory");
        assert_eq!(
            e.message,
            "Node didn't have enough resource: memory, requested: 2147483648, used: 0, capacity: 1073741824"
        );
        let p = pod(
            vec![container(&[], &[("memory", "2Gi"), ("cpu", "3")])],
            vec![],
        );
        assert_eq!(admit(&p, &NODE).unwrap_err().reason.as_str(), "OutOfcpu");
    }

    #[test]
    fn an_init_container_alone_can_be_too_big() {
        let p = pod(
            vec![Container::default()],
            vec![container(&[], &[("cpu", "2001m")])],
        );
        assert_eq!(admit(&p, &NODE).unwrap_err().reason.as_str(), "OutOfcpu");
    }

    #[test]
    fn unreadable_resources_are_an_admission_error_naming_the_field() {
        let p = pod(
            vec![Container::default()],
            vec![container(&[("cpu", "x")], &[])],
        );
        let e = admit(&p, &NODE).unwrap_err();
        assert_eq!(e.reason.as_str(), "UnexpectedAdmissionError");
        assert!(
            e.message
                .starts_with("spec.initContainers[0].resources.limits.cpu: "),
            "{}",
            e.message
        );
    }
}
