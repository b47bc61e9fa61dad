//! The defaults the API server applies to a Pod, and only those.

use k8s_openapi::api::core::v1::Pod;

use crate::model::pod::DEFAULT_GRACE_PERIOD_SECS;
use crate::model::{PullPolicy, RestartPolicy};

/// Sets `field` to `value` when it is absent or empty (Go's zero value means "unset").
fn default_str(field: &mut Option<String>, value: impl FnOnce() -> String) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value());
    }
}

/// Applies the defaults the API server would, and only those: `metadata.namespace`
/// (`default`), `spec.restartPolicy` (`Always`), `spec.terminationGracePeriodSeconds` (30),
/// `spec.dnsPolicy` (`ClusterFirst`), and for every container and init container
/// `imagePullPolicy` ([`PullPolicy::default_for`]), `terminationMessagePath`
/// (`/dev/termination-log`), `terminationMessagePolicy` (`File`) and each port's `protocol`
/// (`TCP`). Empty strings count as absent.
pub fn apply_defaults(pod: &mut Pod) {
    default_str(&mut pod.metadata.namespace, || "default".into());
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    default_str(&mut spec.restart_policy, || {
        RestartPolicy::default().as_str().into()
    });
    default_str(&mut spec.dns_policy, || "ClusterFirst".into());
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_GRACE_PERIOD_SECS);
    let init = spec.init_containers.iter_mut().flatten();
    for c in spec.containers.iter_mut().chain(init) {
        let image = c.image.as_deref().unwrap_or_default();
        default_str(&mut c.image_pull_policy, || {
            PullPolicy::default_for(image).as_str().into()
        });
        default_str(&mut c.termination_message_path, || {
            "/dev/termination-log".into()
        });
        default_str(&mut c.termination_message_policy, || "File".into());
        for port in c.ports.iter_mut().flatten() {
            default_str(&mut port.protocol, || "TCP".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::test_support::*;

    #[test]
    fn defaults() {
        let content = pod_yaml("web", "    ports:\n    - containerPort: 80\n");
        let pod = &parse("d.yaml", &content).expect("valid")[0].pod;
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        let ports = c.ports.as_deref().expect("ports");
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(spec.host_network, None, "no invented defaults");
    }

    #[test]
    fn defaults_cover_init_containers_and_keep_explicit_values() {
        let mut pod = pod_with(|p| {
            p.metadata.namespace = Some("ops".into());
            let s = spec(p);
            s.restart_policy = Some("Never".into());
            s.containers[0].image_pull_policy = Some("Never".into());
            let mut init = s.containers[0].clone();
            init.name = "init".into();
            init.image = Some("busybox".into());
            init.image_pull_policy = None;
            s.init_containers = Some(vec![init]);
        });
        apply_defaults(&mut pod);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ops"));
        let s = spec(&mut pod);
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.containers[0].image_pull_policy.as_deref(), Some("Never"));
        let init = &s.init_containers.as_ref().expect("init")[0];
        assert_eq!(init.image_pull_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn empty_namespace_is_defaulted() {
        let content = WEB.replace("  name: web\n", "  name: web\n  namespace: \"\"\n");
        let pods = parse("n.yaml", &content).expect("valid");
        assert_eq!(pods[0].namespace(), "default");
        assert_eq!(pods[0].pod.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn pull_policy_defaults() {
        let digest =
            "busybox@sha256:1487d0af5f52b4ba31c7e465126ee2123fe3f2305d638e7827681e7cf6c83d5e";
        let cases = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:1", "IfNotPresent"),
            ("localhost:5000/busybox:latest", "Always"),
            ("docker.io/library/busybox", "Always"),
            (digest, "IfNotPresent"),
            ("localhost:5000/busybox@sha256:abc", "IfNotPresent"),
        ];
        for (image, policy) in cases {
            assert_eq!(PullPolicy::default_for(image).as_str(), policy, "{image}");
        }
    }
}
