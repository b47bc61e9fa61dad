//! The pod's quality-of-service class (`status.qosClass`), as Kubernetes
//! computes it from its containers' CPU and memory requests and limits.

use k8s_openapi::api::core::v1::Pod;

use super::{container_amounts, Amounts};

/// `Guaranteed`, `Burstable` or `BestEffort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }
}

/// The QoS class of `pod` (Kubernetes' `GetPodQOS`): `BestEffort` when no
/// container (init or app) sets a CPU or memory request or limit;
/// `Guaranteed` when every container limits both and requests what it
/// limits (a request defaults to its limit); `Burstable` otherwise. Zero
/// amounts count as unset; resources that do not parse count as unset
/// (validation refuses them before a pod runs).
pub fn qos_class(pod: &Pod) -> QosClass {
    let Some(spec) = pod.spec.as_ref() else {
        return QosClass::BestEffort;
    };
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    let (mut any, mut guaranteed) = (false, true);
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let a = container_amounts(c, "").unwrap_or_default();
        let pair = |x: &Amounts| (positive(x.cpu_millis), positive(x.memory_bytes));
        let (req, lim) = (pair(&a.requests), pair(&a.limits));
        any |= req.0.is_some() || req.1.is_some() || lim.0.is_some() || lim.1.is_some();
        let limits_both = lim.0.is_some() && lim.1.is_some();
        guaranteed &= limits_both && req == lim;
    }
    match (any, guaranteed) {
        (false, _) => QosClass::BestEffort,
        (true, true) => QosClass::Guaranteed,
        (true, false) => QosClass::Burstable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(containers: serde_json::Value, inits: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": containers, "initContainers": inits},
        }))
        .unwrap()
    }

    fn c(requests: serde_json::Value, limits: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": "c", "image": "i",
            "resources": {"requests": requests, "limits": limits}})
    }

    #[test]
    fn classes_as_kubernetes_gives_them() {
        use serde_json::json;
        let none = json!({});
        let both = json!({"cpu": "500m", "memory": "64Mi"});
        let cases = [
            (
                json!([c(none.clone(), none.clone())]),
                json!([]),
                "BestEffort",
            ),
            // Zero counts as unset.
            (
                json!([c(json!({"cpu": "0"}), none.clone())]),
                json!([]),
                "BestEffort",
            ),
            // Limits alone: requests default to them.
            (
                json!([c(none.clone(), both.clone())]),
                json!([]),
                "Guaranteed",
            ),
            (
                json!([c(both.clone(), both.clone())]),
                json!([]),
                "Guaranteed",
            ),
            (
                json!([c(json!({"cpu": "250m", "memory": "64Mi"}), both.clone())]),
                json!([]),
                "Burstable",
            ),
            (
                json!([c(json!({"cpu": "1"}), none.clone())]),
                json!([]),
                "Burstable",
            ),
            (
                json!([c(none.clone(), json!({"memory": "1Gi"}))]),
                json!([]),
                "Burstable",
            ),
            // Every container counts, init containers too.
            (
                json!([c(both.clone(), both.clone()), c(none.clone(), none.clone())]),
                json!([]),
                "Burstable",
            ),
            (
                json!([c(both.clone(), both.clone())]),
                json!([c(none.clone(), none.clone())]),
                "Burstable",
            ),
            (
                json!([c(none.clone(), none.clone())]),
                json!([c(json!({"memory": "1Mi"}), none.clone())]),
                "Burstable",
            ),
        ];
        for (apps, inits, want) in cases {
            let p = pod(apps.clone(), inits.clone());
            assert_eq!(qos_class(&p).as_str(), want, "apps {apps} inits {inits}");
        }
    }
}
