//! [`PodExt`]: the accessors every floor asks of a `v1/Pod`, written once.
//! A manifest is validated and defaulted before anything else sees it, so
//! these read the defaulted values and hand out typed policies.

use k8s_openapi::api::core::v1::{Container, Pod};

use super::policy::{PullPolicy, RestartPolicy};

/// The pod fields an environment variable's `fieldRef` may name, besides
/// `metadata.labels['<KEY>']` and `metadata.annotations['<KEY>']`: one list
/// for the validator and the downward API.
pub const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];

/// The grace period when the pod sets none (the kubelet's 30 s).
pub const DEFAULT_GRACE_PERIOD_SECS: i64 = 30;

pub trait PodExt {
    fn pod(&self) -> &Pod;

    /// `metadata.name` ("" when unset; validation refuses that).
    fn name(&self) -> &str {
        self.pod().metadata.name.as_deref().unwrap_or_default()
    }

    /// `metadata.namespace`, `default` when unset.
    fn namespace(&self) -> &str {
        self.pod()
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default")
    }

    fn containers(&self) -> &[Container] {
        self.pod()
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
    }

    fn init_containers(&self) -> &[Container] {
        self.pod()
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
    }

    /// `spec.restartPolicy`; `Always` when unset or (never after
    /// validation) unknown.
    fn restart_policy(&self) -> RestartPolicy {
        self.pod()
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    fn host_network(&self) -> bool {
        self.pod()
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn host_ipc(&self) -> bool {
        self.pod()
            .spec
            .as_ref()
            .and_then(|s| s.host_ipc)
            .unwrap_or(false)
    }

    fn host_pid(&self) -> bool {
        self.pod()
            .spec
            .as_ref()
            .and_then(|s| s.host_pid)
            .unwrap_or(false)
    }

    /// `terminationGracePeriodSeconds`, 30 when unset, never negative.
    fn grace_period_secs(&self) -> i64 {
        self.pod()
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(DEFAULT_GRACE_PERIOD_SECS)
            .max(0)
    }
}

impl PodExt for Pod {
    fn pod(&self) -> &Pod {
        self
    }
}

/// A container's `imagePullPolicy`; the API's default for its image when
/// unset (validation refuses unknown values).
pub fn pull_policy(container: &Container) -> PullPolicy {
    container
        .image_pull_policy
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| PullPolicy::default_for(container.image.as_deref().unwrap_or_default()))
}

/// Whether an init container is a sidecar (`restartPolicy: Always`, the
/// only value validation lets an init container have): it is started in
/// order like the others but keeps running beside the app containers.
pub fn is_sidecar(container: &Container) -> bool {
    container.restart_policy.as_deref() == Some("Always")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn accessors_default_as_the_api_does() {
        let bare = Pod::default();
        assert_eq!(bare.namespace(), "default");
        assert_eq!(bare.name(), "");
        assert_eq!(bare.restart_policy(), RestartPolicy::Always);
        assert_eq!(bare.grace_period_secs(), 30);
        assert!(!bare.host_network());
        assert!(bare.containers().is_empty());

        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("OnFailure".into()),
                termination_grace_period_seconds: Some(-5),
                host_network: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!((pod.name(), pod.namespace()), ("web", "prod"));
        assert_eq!(pod.restart_policy(), RestartPolicy::OnFailure);
        assert_eq!(pod.grace_period_secs(), 0);
        assert!(pod.host_network());
    }

    #[test]
    fn pull_policy_is_explicit_or_the_default_for_the_image() {
        let c = |image: &str, policy: Option<&str>| Container {
            image: Some(image.into()),
            image_pull_policy: policy.map(Into::into),
            ..Default::default()
        };
        assert_eq!(pull_policy(&c("busybox:1", None)), PullPolicy::IfNotPresent);
        assert_eq!(pull_policy(&c("busybox", None)), PullPolicy::Always);
        assert_eq!(pull_policy(&c("busybox", Some("Never"))), PullPolicy::Never);
    }

    #[test]
    fn a_sidecar_is_an_init_container_that_always_restarts() {
        let mut c = Container::default();
        assert!(!is_sidecar(&c));
        c.restart_policy = Some("Always".into());
        assert!(is_sidecar(&c));
    }
}
