//! The kubelet's resource admission: a pod's effective requests against
//! the node's capacity.

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};

use super::{container_amounts, ContainerAmounts};
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

/// The pod's effective requests, per resource, as the kubelet's admission
/// counts them: the pod-level `spec.resources.requests` (`PodLevelResources`)
/// for a resource it names, else the larger of the sum over the app
/// containers and the largest init container (init containers run one at a
/// time, before the app containers); then `spec.overhead` is added.
/// Requests default to limits, the pod's as the containers'.
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
    if let Some(pod_level) = pod_amounts(pod)? {
        let r = pod_level.requests;
        total.cpu_millis = r.cpu_millis.unwrap_or(total.cpu_millis);
        total.memory_bytes = r.memory_bytes.unwrap_or(total.memory_bytes);
    }
    if let Some(overhead) = &spec.overhead {
        let as_container = Container {
            resources: Some(ResourceRequirements {
                requests: Some(overhead.clone()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let o = container_amounts(&as_container, "spec")
            .map_err(|e| {
                FieldError::new(e.path.replace("resources.requests", "overhead"), e.message)
            })?
            .requests;
        total.cpu_millis = total.cpu_millis.saturating_add(o.cpu_millis.unwrap_or(0));
        total.memory_bytes = total
            .memory_bytes
            .saturating_add(o.memory_bytes.unwrap_or(0));
    }
    Ok(total)
}

/// The pod-level `spec.resources` (requests and limits for the whole pod),
/// validated as a container's are (errors name `spec.resources.…`); `None`
/// when the pod sets none.
pub fn pod_amounts(pod: &Pod) -> Result<Option<ContainerAmounts>, FieldError> {
    let Some(res) = pod.spec.as_ref().and_then(|s| s.resources.as_ref()) else {
        return Ok(None);
    };
    let as_container = Container {
        resources: Some(res.clone()),
        ..Default::default()
    };
    container_amounts(&as_container, "spec").map(Some)
}

/// The kubelet's resource fit: refused when the pod's effective CPU or
/// memory request ([`pod_requests`]) exceeds what the node can give less
/// what the pods it admitted request (`used`); CPU is checked first. A
/// resource the pod does not request is not checked.
pub fn fit(requests: PodRequests, used: PodRequests, node: &NodeCapacity) -> Result<(), Rejection> {
    let checks = [
        (
            RefusalReason::OutOfcpu,
            "cpu",
            requests.cpu_millis,
            used.cpu_millis,
            node.cpu_millis,
        ),
        (
            RefusalReason::OutOfmemory,
            "memory",
            requests.memory_bytes,
            used.memory_bytes,
            node.memory_bytes,
        ),
    ];
    for (reason, name, requested, used, capacity) in checks {
        if requested > 0 && requested > capacity.saturating_sub(used) {
            return Err(Rejection {
                reason,
                message: format!(
                    "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
                ),
            });
        }
    }
    Ok(())
}

/// The resource fit of one pod on an otherwise empty node ([`fit`] with
/// nothing used): what a worker judges when no Supervisor judged the pod.
pub fn admit(pod: &Pod, node: &NodeCapacity) -> Result<(), Rejection> {
    let requests = pod_requests(pod).map_err(|e| Rejection {
        reason: RefusalReason::UnexpectedAdmissionError,
        message: e.to_string(),
    })?;
    fit(requests, PodRequests::default(), node)
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
