//! The OOM score adjustment the kubelet gives each container
//! (`GetContainerOOMScoreAdjust`, Kubernetes 1.32, pod-level resources off):
//! the infra container -998; a node-critical or Guaranteed pod's containers
//! -997; BestEffort 1000; Burstable `1000 - 1000 * request / capacity`,
//! kept within 3..=999 (a sidecar no higher than the pod's smallest regular
//! container).

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::spec::resources::container_amounts;
use crate::spec::resources::qos::{qos_class, QosClass};

/// The infra container's adjustment (the dockershim's `PodInfraOOMAdj`).
pub const SANDBOX_OOM_SCORE_ADJ: i64 = -998;
const GUARANTEED: i64 = -997;
const BEST_EFFORT: i64 = 1000;

fn memory_request(c: &Container) -> i64 {
    container_amounts(c, "")
        .ok()
        .and_then(|a| a.requests.memory_bytes)
        .unwrap_or(0)
        .max(0)
}

fn burstable(request: i64, capacity: i64) -> i64 {
    if capacity <= 0 {
        return BEST_EFFORT - 1;
    }
    let scaled = (i128::from(request) * 1000) / i128::from(capacity);
    BEST_EFFORT - i64::try_from(scaled).unwrap_or(i64::MAX / 2)
}

/// Every podvisor pod is a static pod, so critical; the kubelet keeps
/// node-critical ones (`priorityClassName: system-node-critical`) last.
fn node_critical(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref())
        == Some("system-node-critical")
}

/// The OOM score adjustment of container `c` of `pod` on a machine of
/// `memory_capacity` bytes.
pub fn container_oom_score_adj(pod: &Pod, c: &Container, memory_capacity: i64) -> i64 {
    if node_critical(pod) {
        return GUARANTEED;
    }
    match qos_class(pod) {
        QosClass::Guaranteed => return GUARANTEED,
        QosClass::BestEffort => return BEST_EFFORT,
        QosClass::Burstable => {}
    }
    let mut adj = burstable(memory_request(c), memory_capacity);
    let spec = pod.spec.as_ref();
    let sidecar = c.restart_policy.as_deref() == Some("Always")
        && spec
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|inits| inits.iter().any(|i| i.name == c.name));
    if sidecar {
        let min_regular = spec
            .and_then(|s| s.containers.iter().map(memory_request).min())
            .unwrap_or(0);
        adj = adj.min(burstable(min_regular, memory_capacity));
    }
    // Above a Guaranteed container using all the memory, below BestEffort.
    if adj < 1000 + GUARANTEED {
        return 1000 + GUARANTEED;
    }
    if adj == BEST_EFFORT {
        return BEST_EFFORT - 1;
    }
    adj
}

#[cfg(test)]
mod tests {
    use super::*;

    const GI: i64 = 1 << 30;

    fn pod(containers: serde_json::Value, extra: serde_json::Value) -> Pod {
        let mut spec = serde_json::json!({ "containers": containers });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    fn c(name: &str, req: serde_json::Value, lim: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": name, "image": "i",
            "resources": {"requests": req, "limits": lim}})
    }

    fn adj(p: &Pod, i: usize) -> i64 {
        let c = &p.spec.as_ref().unwrap().containers[i];
        container_oom_score_adj(p, c, 4 * GI)
    }

    #[test]
    fn by_qos_class() {
        let g = pod(
            serde_json::json!([c(
                "a",
                serde_json::json!({}),
                serde_json::json!({"cpu": "1", "memory": "1Gi"})
            )]),
            serde_json::json!({}),
        );
        assert_eq!(adj(&g, 0), -997);
        let be = pod(
            serde_json::json!([{"name": "a", "image": "i"}]),
            serde_json::json!({}),
        );
        assert_eq!(adj(&be, 0), 1000);
        // 1 GiB of 4 GiB: 1000 - 250.
        let b = pod(
            serde_json::json!([
                c(
                    "a",
                    serde_json::json!({"memory": "1Gi"}),
                    serde_json::json!({})
                ),
                c(
                    "b",
                    serde_json::json!({"cpu": "100m"}),
                    serde_json::json!({})
                ),
                c(
                    "c",
                    serde_json::json!({"memory": "4Gi"}),
                    serde_json::json!({})
                ),
                c(
                    "d",
                    serde_json::json!({"memory": "1"}),
                    serde_json::json!({})
                ),
            ]),
            serde_json::json!({}),
        );
        assert_eq!(adj(&b, 0), 750);
        assert_eq!(adj(&b, 1), 999, "no memory request: 1000 becomes 999");
        assert_eq!(adj(&b, 2), 3, "all the memory: at least 3");
        assert_eq!(adj(&b, 3), 999);
        let critical = pod(
            serde_json::json!([{"name": "a", "image": "i"}]),
            serde_json::json!({"priorityClassName": "system-node-critical"}),
        );
        assert_eq!(adj(&critical, 0), -997);
        // Rounds as Go's integer division does: 1000*3Gi/7Gi = 428.57 → 428.
        let odd = pod(
            serde_json::json!([c(
                "a",
                serde_json::json!({"memory": "3Gi"}),
                serde_json::json!({})
            )]),
            serde_json::json!({}),
        );
        let a = &odd.spec.as_ref().unwrap().containers[0];
        assert_eq!(container_oom_score_adj(&odd, a, 7 * GI), 572);
    }

    #[test]
    fn a_sidecar_is_no_more_likely_killed_than_the_smallest_app() {
        let p = pod(
            serde_json::json!([c(
                "app",
                serde_json::json!({"memory": "2Gi"}),
                serde_json::json!({})
            )]),
            serde_json::json!({"initContainers": [
                {"name": "side", "image": "i", "restartPolicy": "Always",
                 "resources": {"requests": {"memory": "1Gi"}}},
                {"name": "init", "image": "i",
                 "resources": {"requests": {"memory": "1Gi"}}},
            ]}),
        );
        let inits = p.spec.as_ref().unwrap().init_containers.clone().unwrap();
        assert_eq!(adj(&p, 0), 500);
        assert_eq!(container_oom_score_adj(&p, &inits[0], 4 * GI), 500);
        assert_eq!(container_oom_score_adj(&p, &inits[1], 4 * GI), 750);
    }
}
