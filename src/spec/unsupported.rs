//! Pod fields a node without an API server cannot honour, refused by name
//! instead of dropped in silence: the pod's OS (the kubelet's
//! `PodOSNotSupported`), dynamic resource claims, a RuntimeClass, container
//! restart rules and raw block devices.

use k8s_openapi::api::core::v1::Pod;

use crate::decide::status::Refusal;
use crate::model::RefusalReason;

/// The first field of `pod` the node cannot honour, as a refusal naming
/// it; `None` when there is none.
pub fn unsupported(pod: &Pod) -> Option<Refusal> {
    let spec = pod.spec.as_ref()?;
    let refuse = |reason, message: String| Some(Refusal { reason, message });
    if let Some(os) = spec.os.as_ref().filter(|os| os.name != "linux") {
        return refuse(
            RefusalReason::PodOSNotSupported,
            format!(
                "spec.os.name: the pod is for {:?}, this node runs linux",
                os.name
            ),
        );
    }
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        return refuse(
            RefusalReason::UnsupportedField,
            "spec.resourceClaims: dynamic resource allocation needs ResourceClaims from an API server, which this node has not".into(),
        );
    }
    if let Some(class) = spec.runtime_class_name.as_deref().filter(|c| !c.is_empty()) {
        return refuse(
            RefusalReason::UnsupportedField,
            format!("spec.runtimeClassName: {class:?}: this node runs every pod with the engine's default runtime; there is no RuntimeClass to look up"),
        );
    }
    let lists = [
        ("containers", spec.containers.as_slice()),
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            let path = format!("spec.{list}[{i}]");
            if c.restart_policy_rules
                .as_ref()
                .is_some_and(|r| !r.is_empty())
            {
                return refuse(
                    RefusalReason::UnsupportedField,
                    format!("{path}.restartPolicyRules: container restart rules are not supported; the pod's restartPolicy applies"),
                );
            }
            if c.volume_devices.as_ref().is_some_and(|d| !d.is_empty()) {
                return refuse(
                    RefusalReason::UnsupportedField,
                    format!("{path}.volumeDevices: raw block devices come from PersistentVolumeClaims, which this node cannot bind"),
                );
            }
            let claims = c.resources.as_ref().and_then(|r| r.claims.as_ref());
            if claims.is_some_and(|cl| !cl.is_empty()) {
                return refuse(
                    RefusalReason::UnsupportedField,
                    format!("{path}.resources.claims: dynamic resource allocation needs ResourceClaims from an API server, which this node has not"),
                );
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        if spec.get("containers").is_none() {
            spec["containers"] = serde_json::json!([{"name": "a", "image": "i"}]);
        }
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "spec": spec}))
            .unwrap()
    }

    fn refused(spec: serde_json::Value) -> Option<(RefusalReason, String)> {
        unsupported(&pod(spec)).map(|r| (r.reason, r.message))
    }

    #[test]
    fn each_field_is_refused_by_name_and_a_plain_pod_is_not() {
        use serde_json::json;
        assert_eq!(refused(json!({})), None);
        assert_eq!(refused(json!({"os": {"name": "linux"}})), None);
        let cases = [
            (json!({"os": {"name": "windows"}}), "spec.os.name"),
            (
                json!({"resourceClaims": [{"name": "gpu", "resourceClaimName": "g"}]}),
                "spec.resourceClaims",
            ),
            (
                json!({"runtimeClassName": "gvisor"}),
                "spec.runtimeClassName",
            ),
            (
                json!({"containers": [{"name": "a", "image": "i",
                    "restartPolicyRules": [{"action": "Restart",
                        "exitCodes": {"operator": "In", "values": [42]}}]}]}),
                "spec.containers[0].restartPolicyRules",
            ),
            (
                json!({"initContainers": [{"name": "b", "image": "i",
                    "volumeDevices": [{"name": "v", "devicePath": "/dev/x"}]}]}),
                "spec.initContainers[0].volumeDevices",
            ),
            (
                json!({"containers": [{"name": "a", "image": "i",
                    "resources": {"claims": [{"name": "gpu"}]}}]}),
                "spec.containers[0].resources.claims",
            ),
        ];
        for (spec, field) in cases {
            let (reason, message) = refused(spec.clone()).unwrap_or_else(|| panic!("{spec}"));
            assert!(message.starts_with(&format!("{field}: ")), "{message}");
            let want = match field {
                "spec.os.name" => RefusalReason::PodOSNotSupported,
                _ => RefusalReason::UnsupportedField,
            };
            assert_eq!(reason, want, "{field}");
        }
    }
}
