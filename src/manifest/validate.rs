//! Validation of a defaulted Pod, as the API server would for what podvisor
//! uses: the first problem, at its field path. Policies are parsed here (and
//! refused when unknown); nothing downstream reads their strings again.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::field_error::{
    is_dns1123_label, is_dns1123_subdomain, is_iana_svc_name, DNS1123_LABEL_MSG,
    DNS1123_SUBDOMAIN_MSG,
};
use super::FieldError;
use crate::model::{PullPolicy, RestartPolicy};

const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// Validates `pod` as the API server would for what podvisor uses; returns the first
/// problem. Expects [`apply_defaults`](super::apply_defaults) to have run (absent defaulted fields pass).
pub fn validate_pod(pod: &Pod) -> Result<(), FieldError> {
    match pod.metadata.name.as_deref() {
        None | Some("") => return Err(FieldError::required("metadata.name")),
        Some(name) if !is_dns1123_subdomain(name) => {
            return Err(FieldError::invalid(
                "metadata.name",
                name,
                DNS1123_SUBDOMAIN_MSG,
            ))
        }
        Some(_) => {}
    }
    if let Some(ns) = pod.metadata.namespace.as_deref() {
        if !ns.is_empty() && !is_dns1123_label(ns) {
            let msg = DNS1123_LABEL_MSG;
            return Err(FieldError::invalid("metadata.namespace", ns, msg));
        }
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Err(FieldError::required("spec"));
    };
    if spec.containers.is_empty() {
        return Err(FieldError::required("spec.containers"));
    }
    // App containers first, so an init container clashing with one is the duplicate (as
    // in Kubernetes).
    let mut names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let lists = [
        ("containers", &spec.containers[..]),
        ("initContainers", init),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            validate_container(c, &format!("spec.{list}[{i}]"), &mut names)?;
        }
    }
    if let Some(policy) = spec.restart_policy.as_deref() {
        if policy.parse::<RestartPolicy>().is_err() {
            let path = "spec.restartPolicy";
            return Err(FieldError::unsupported(
                path,
                policy,
                &RestartPolicy::names(),
            ));
        }
    }
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        let path = "spec.terminationGracePeriodSeconds";
        return Err(FieldError::invalid(
            path,
            grace,
            "must be greater than or equal to 0",
        ));
    }
    Ok(())
}

fn validate_container<'a>(
    c: &'a Container,
    path: &str,
    names: &mut HashSet<&'a str>,
) -> Result<(), FieldError> {
    let name_path = format!("{path}.name");
    if c.name.is_empty() {
        return Err(FieldError::required(name_path));
    }
    if !is_dns1123_label(&c.name) {
        return Err(FieldError::invalid(name_path, &c.name, DNS1123_LABEL_MSG));
    }
    if !names.insert(&c.name) {
        return Err(FieldError::duplicate(name_path, &c.name));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        return Err(FieldError::required(format!("{path}.image")));
    }
    if let Some(policy) = c.image_pull_policy.as_deref() {
        if policy.parse::<PullPolicy>().is_err() {
            let path = format!("{path}.imagePullPolicy");
            return Err(FieldError::unsupported(path, policy, &PullPolicy::names()));
        }
    }
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let path = format!("{path}.ports[{j}]");
        const RANGE: &str = "must be between 1 and 65535, inclusive";
        if !(1..=65535).contains(&port.container_port) {
            let p = format!("{path}.containerPort");
            return Err(FieldError::invalid(p, port.container_port, RANGE));
        }
        if let Some(host) = port.host_port.filter(|h| !(0..=65535).contains(h)) {
            let msg = "must be between 0 and 65535, inclusive";
            return Err(FieldError::invalid(format!("{path}.hostPort"), host, msg));
        }
        if let Some(proto) = port.protocol.as_deref() {
            if !PROTOCOLS.contains(&proto) {
                let p = format!("{path}.protocol");
                return Err(FieldError::unsupported(p, proto, PROTOCOLS));
            }
        }
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            if !is_iana_svc_name(name) {
                let msg = "must be a valid port name: at most 15 lowercase alphanumeric \
                    characters or '-', with at least one letter, no leading, trailing or \
                    doubled '-'";
                return Err(FieldError::invalid(format!("{path}.name"), name, msg));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::test_support::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn missing_image() {
        let err = parse_err("x.yaml", &WEB.replace("    image: nginx:1.27\n", ""));
        assert_eq!(
            err,
            "x.yaml: document 0: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn blank_image() {
        let err = parse_err("x.yaml", &WEB.replace("nginx:1.27", "\"  \""));
        assert_eq!(
            err,
            "x.yaml: document 0: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn duplicate_container_name() {
        let content = pod_yaml("web", "  - name: app\n    image: busybox\n");
        let err = parse_err("web.yaml", &content);
        assert_eq!(
            err,
            r#"web.yaml: document 0: spec.containers[1].name: Duplicate value: "app""#
        );
    }

    #[test]
    fn init_container_name_clashing_with_app_container() {
        let content = format!("{WEB}  initContainers:\n  - name: app\n    image: busybox\n");
        let err = parse_err("web.yaml", &content);
        assert_eq!(
            err,
            r#"web.yaml: document 0: spec.initContainers[0].name: Duplicate value: "app""#
        );
    }

    #[test]
    fn bad_restart_policy() {
        let err = parse_err("r.yaml", &format!("{WEB}  restartPolicy: Sometimes\n"));
        assert_eq!(
            err,
            "r.yaml: document 0: spec.restartPolicy: Unsupported value: \"Sometimes\": \
             supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn bad_pull_policy() {
        let err = parse_err(
            "p.yaml",
            &pod_yaml("web", "    imagePullPolicy: Sometimes\n"),
        );
        assert!(
            err.starts_with("p.yaml: document 0: spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\""),
            "{err}"
        );
    }

    #[test]
    fn pod_names() {
        for (name, path) in [("Web", "metadata.name"), ("web_1", "metadata.name")] {
            let err = validate_msg(&pod_with(|p| p.metadata.name = Some(name.into())));
            assert!(
                err.starts_with(&format!("{path}: Invalid value: {name:?}: ")),
                "{err}"
            );
        }
        let err = validate_msg(&pod_with(|p| p.metadata.name = None));
        assert_eq!(err, "metadata.name: Required value");
        let err = validate_msg(&pod_with(|p| p.metadata.name = Some(String::new())));
        assert_eq!(err, "metadata.name: Required value");
        assert!(validate_pod(&pod_with(|p| p.metadata.name = Some("web.v2-a".into()))).is_ok());
    }

    #[test]
    fn namespace_must_be_a_label() {
        let err = validate_msg(&pod_with(|p| p.metadata.namespace = Some("my.ns".into())));
        assert!(
            err.starts_with("metadata.namespace: Invalid value: \"my.ns\""),
            "{err}"
        );
    }

    #[test]
    fn container_names_must_be_labels() {
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = "App".into()));
        assert!(
            err.starts_with("spec.containers[0].name: Invalid value: \"App\""),
            "{err}"
        );
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = String::new()));
        assert_eq!(err, "spec.containers[0].name: Required value");
    }

    #[test]
    fn containers_are_required() {
        let err = validate_msg(&pod_with(|p| spec(p).containers.clear()));
        assert_eq!(err, "spec.containers: Required value");
        assert_eq!(
            validate_msg(&pod_with(|p| p.spec = None)),
            "spec: Required value"
        );
    }

    /// Validates a pod whose only container has one port, changed by `f`.
    fn validate_port(f: impl FnOnce(&mut ContainerPort)) -> Result<(), FieldError> {
        let mut port = ContainerPort {
            container_port: 80,
            ..Default::default()
        };
        f(&mut port);
        validate_pod(&pod_with(|p| {
            spec(p).containers[0].ports = Some(vec![port])
        }))
    }

    #[test]
    fn ports_are_validated() {
        type Tweak = fn(&mut ContainerPort);
        let path = "spec.containers[0].ports[0]";
        let err = |f: Tweak| validate_port(f).expect_err("invalid").to_string();
        assert_eq!(
            err(|p| p.container_port = 0),
            format!(
                "{path}.containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"
            )
        );
        let cases: [(Tweak, &str); 5] = [
            (
                |p| p.container_port = 65536,
                "containerPort: Invalid value: 65536",
            ),
            (|p| p.host_port = Some(-1), "hostPort: Invalid value: -1"),
            (
                |p| p.protocol = Some("tcp".into()),
                "protocol: Unsupported value: \"tcp\"",
            ),
            (
                |p| p.name = Some("Http".into()),
                "name: Invalid value: \"Http\"",
            ),
            (
                |p| p.name = Some("a-very-long-port".into()),
                "name: Invalid value",
            ),
        ];
        for (f, expected) in cases {
            let err = err(f);
            assert!(err.starts_with(&format!("{path}.{expected}")), "{err}");
        }
    }

    #[test]
    fn good_ports_pass() {
        assert_eq!(validate_port(|_| {}), Ok(()));
        assert_eq!(validate_port(|p| p.host_port = Some(0)), Ok(()));
        assert_eq!(validate_port(|p| p.protocol = Some("SCTP".into())), Ok(()));
        for name in ["http", "web-8080", "h2c", "a23456789012345"] {
            assert_eq!(
                validate_port(|p| p.name = Some(name.into())),
                Ok(()),
                "{name}"
            );
        }
        for bad in ["80", "-http", "http-", "ht--tp", "a234567890123456"] {
            assert!(!is_iana_svc_name(bad), "{bad}");
        }
    }

    #[test]
    fn negative_grace_period() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).termination_grace_period_seconds = Some(-1)
        }));
        assert!(
            err.starts_with("spec.terminationGracePeriodSeconds: Invalid value: -1"),
            "{err}"
        );
    }
}
