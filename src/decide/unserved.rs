//! Pod fields with nowhere to go on a node without an API server: what to
//! tell the user about them, and what they do to the pod's `Ready`
//! condition.
//!
//! - `imagePullSecrets` name Secrets there is no API server to read: the
//!   kubelet's own warning when it cannot get them
//!   (`FailedToRetrieveImagePullSecret`); pulls use the node's credentials.
//! - `serviceAccountName` (or the deprecated `serviceAccount`): no API
//!   server issues its token, so none is mounted (`FieldIgnored`).
//! - `readinessGates`: nothing can set their conditions, so the pod never
//!   becomes Ready (`FieldIgnored`, and in status the `Ready` condition is
//!   `False` with reason `ReadinessGatesNotReady` as Kubernetes writes it).
//!
//! Each is told once per spec by the pod's worker, as a Warning event on
//! the pod (which the recorder also logs).

use k8s_openapi::api::core::v1::{Pod, PodCondition};

/// One warning about a field the node cannot honour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unserved {
    /// The event's reason.
    pub reason: &'static str,
    /// The event's message, naming the field.
    pub message: String,
}

/// The reason of the warnings with no kubelet counterpart.
pub const FIELD_IGNORED: &str = "FieldIgnored";

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The pod's readiness gates' condition types.
pub fn readiness_gates(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.readiness_gates.iter().flatten())
        .map(|g| g.condition_type.clone())
        .collect()
}

/// The warnings a pod's spec calls for, in a stable order.
pub fn unserved(pod: &Pod) -> Vec<Unserved> {
    let Some(spec) = &pod.spec else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let secrets: Vec<String> = spec
        .image_pull_secrets
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect();
    if !secrets.is_empty() {
        out.push(Unserved {
            reason: "FailedToRetrieveImagePullSecret",
            message: format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed. \
                 spec.imagePullSecrets is ignored: there is no API server to read Secrets from; \
                 pulls use the node's credentials (Docker config.json)",
                secrets.join(", ")
            ),
        });
    }
    let account = [
        ("spec.serviceAccountName", &spec.service_account_name),
        ("spec.serviceAccount", &spec.service_account),
    ]
    .into_iter()
    .find_map(|(field, v)| v.as_deref().filter(|v| !v.is_empty()).map(|v| (field, v)));
    if let Some((field, name)) = account {
        out.push(Unserved {
            reason: FIELD_IGNORED,
            message: format!(
                "{field} {name:?} is ignored: there is no API server to issue its token, \
                 so no service account token is mounted"
            ),
        });
    }
    let gates = readiness_gates(pod);
    if !gates.is_empty() {
        out.push(Unserved {
            reason: FIELD_IGNORED,
            message: format!(
                "spec.readinessGates ({}): nothing sets these pod conditions on this node \
                 (no API server), so the pod never becomes Ready",
                quoted(&gates)
            ),
        });
    }
    out
}

/// The pod's `Ready` condition: its containers' readiness, and then its
/// readiness gates, none of which can be set here (Kubernetes' reason and
/// message for a gate whose condition is missing).
pub fn ready_condition(pod: &Pod, containers_ready: bool) -> PodCondition {
    let gates = readiness_gates(pod);
    let unset = containers_ready && !gates.is_empty();
    PodCondition {
        type_: "Ready".into(),
        status: if containers_ready && !unset {
            "True"
        } else {
            "False"
        }
        .into(),
        reason: unset.then(|| "ReadinessGatesNotReady".into()),
        message: unset.then(|| {
            gates
                .iter()
                .map(|g| {
                    format!("corresponding condition of pod readiness gate {g:?} does not exist.")
                })
                .collect::<Vec<_>>()
                .join(", ")
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{LocalObjectReference, PodReadinessGate, PodSpec};

    fn pod(f: impl FnOnce(&mut PodSpec)) -> Pod {
        let mut spec = PodSpec::default();
        f(&mut spec);
        Pod {
            spec: Some(spec),
            ..Default::default()
        }
    }

    #[test]
    fn a_plain_pod_has_nothing_to_say_and_is_ready_with_its_containers() {
        let p = pod(|_| {});
        assert!(unserved(&p).is_empty());
        assert_eq!(ready_condition(&p, true).status, "True");
        assert_eq!(ready_condition(&p, false).status, "False");
        assert_eq!(ready_condition(&p, true).reason, None);
        // An empty service account name is the default: nothing to say.
        assert!(unserved(&pod(|s| s.service_account_name = Some(String::new()))).is_empty());
    }

    #[test]
    fn each_field_is_named_in_its_warning() {
        let p = pod(|s| {
            s.image_pull_secrets = Some(vec![LocalObjectReference {
                name: "regcred".into(),
            }]);
            s.service_account = Some("old".into());
            s.readiness_gates = Some(vec![PodReadinessGate {
                condition_type: "example.com/lb".into(),
            }]);
        });
        let w = unserved(&p);
        assert_eq!(w.len(), 3, "{w:?}");
        assert_eq!(w[0].reason, "FailedToRetrieveImagePullSecret");
        assert!(
            w[0].message.contains("(regcred)") && w[0].message.contains("spec.imagePullSecrets")
        );
        assert!(
            w[1].message
                .starts_with("spec.serviceAccount \"old\" is ignored"),
            "{w:?}"
        );
        assert!(
            w[2].message
                .contains("spec.readinessGates (\"example.com/lb\")"),
            "{w:?}"
        );
        // serviceAccountName wins over the deprecated field.
        let p = pod(|s| {
            s.service_account_name = Some("robot".into());
            s.service_account = Some("old".into());
        });
        assert!(unserved(&p)[0]
            .message
            .starts_with("spec.serviceAccountName \"robot\""));
    }

    #[test]
    fn an_unset_gate_keeps_ready_false_with_kubernetes_reason() {
        let p = pod(|s| {
            s.readiness_gates = Some(vec![
                PodReadinessGate {
                    condition_type: "a".into(),
                },
                PodReadinessGate {
                    condition_type: "b".into(),
                },
            ])
        });
        let c = ready_condition(&p, true);
        assert_eq!(c.status, "False");
        assert_eq!(c.reason.as_deref(), Some("ReadinessGatesNotReady"));
        assert_eq!(
            c.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"a\" does not exist., \
                 corresponding condition of pod readiness gate \"b\" does not exist."
            )
        );
        // Containers not ready: that comes first, as in Kubernetes.
        assert_eq!(ready_condition(&p, false).reason, None);
    }
}
