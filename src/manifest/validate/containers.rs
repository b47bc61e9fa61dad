//! Containers and init containers: names, image, policies, the rules of
//! init containers and sidecars, the container security context; and the
//! calls to the port, env, resource, mount and probe checks.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, PodSpec, SecurityContext};

use super::super::field_error::{is_dns1123_label, DNS1123_LABEL_MSG};
use super::{env, ports, probes, resources, volumes, Check, FieldError};
use crate::model::PullPolicy;

/// `IsValidUserID` / `IsValidGroupID`.
pub(super) const ID_RANGE: &str = "must be between 0 and 2147483647, inclusive";

/// Every container and init container, in that order (an init container
/// clashing with an app container is the duplicate, as in Kubernetes).
pub(super) fn validate_containers(spec: &PodSpec) -> Check {
    let volumes = spec.volumes.iter().flatten();
    let volumes: HashSet<&str> = volumes.map(|v| v.name.as_str()).collect();
    let grace = spec.termination_grace_period_seconds;
    let mut names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let lists = [
        ("containers", &spec.containers[..], false),
        ("initContainers", init, true),
    ];
    for (list, containers, is_init) in lists {
        for (i, c) in containers.iter().enumerate() {
            let path = format!("spec.{list}[{i}]");
            let ctx = Ctx {
                path: &path,
                init: is_init,
                volumes: &volumes,
                grace,
            };
            validate_container(c, &ctx, &mut names)?;
        }
    }
    if spec
        .ephemeral_containers
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        let path = "spec.ephemeralContainers";
        return Err(FieldError::forbidden(path, "cannot be set on create"));
    }
    Ok(())
}

/// What a container's checks need to know of the pod.
pub(super) struct Ctx<'a> {
    /// `spec.containers[0]`.
    pub(super) path: &'a str,
    /// An init container.
    pub(super) init: bool,
    /// The pod's volume names.
    pub(super) volumes: &'a HashSet<&'a str>,
    /// The pod's `terminationGracePeriodSeconds`.
    pub(super) grace: Option<i64>,
}

fn validate_container<'a>(c: &'a Container, ctx: &Ctx<'_>, names: &mut HashSet<&'a str>) -> Check {
    let path = ctx.path;
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
    match c.image.as_deref() {
        None => return Err(FieldError::required(format!("{path}.image"))),
        Some(image) if image.trim().is_empty() => {
            return Err(FieldError::required(format!("{path}.image")))
        }
        Some(image) if image.trim() != image => {
            let msg = "must not have leading or trailing whitespace";
            return Err(FieldError::invalid(format!("{path}.image"), image, msg));
        }
        Some(_) => {}
    }
    if let Some(policy) = c.image_pull_policy.as_deref() {
        if policy.parse::<PullPolicy>().is_err() {
            let path = format!("{path}.imagePullPolicy");
            return Err(FieldError::unsupported(path, policy, &PullPolicy::names()));
        }
    }
    ports::validate_container_ports(c, path)?;
    env::validate_env(c, path)?;
    resources::validate_resources(c.resources.as_ref(), &format!("{path}.resources"))?;
    volumes::validate_mounts(c, ctx)?;
    validate_init_rules(c, ctx)?;
    probes::validate_probes(c, ctx)?;
    if let Some(policy) = c.termination_message_policy.as_deref() {
        if !matches!(policy, "File" | "FallbackToLogsOnError") {
            let path = format!("{path}.terminationMessagePolicy");
            let msg = "must be 'File' or 'FallbackToLogsOnError'";
            return Err(FieldError::invalid(path, policy, msg));
        }
    }
    if let Some(sc) = &c.security_context {
        validate_security_context(sc, &format!("{path}.securityContext"))?;
    }
    Ok(())
}

/// `restartPolicy` only on init containers, and only `Always` (a
/// sidecar); plain init containers have no lifecycle and no probes.
fn validate_init_rules(c: &Container, ctx: &Ctx<'_>) -> Check {
    let path = format!("{}.restartPolicy", ctx.path);
    match (ctx.init, c.restart_policy.as_deref()) {
        (false, Some(_)) => {
            let msg = "may not be set for non-init containers";
            return Err(FieldError::forbidden(path, msg));
        }
        (true, Some(policy)) if policy != "Always" => {
            return Err(FieldError::unsupported(path, policy, &["Always"]));
        }
        (true, None) => {
            let fields = [
                ("lifecycle", c.lifecycle.is_some()),
                ("livenessProbe", c.liveness_probe.is_some()),
                ("readinessProbe", c.readiness_probe.is_some()),
                ("startupProbe", c.startup_probe.is_some()),
            ];
            if let Some((field, _)) = fields.iter().find(|(_, set)| *set) {
                let msg = "may not be set for init containers without restartPolicy=Always";
                return Err(FieldError::forbidden(format!("{}.{field}", ctx.path), msg));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A user or group id: 0 to 2³¹-1.
pub(super) fn validate_id(id: Option<i64>, path: impl FnOnce() -> String) -> Check {
    match id {
        Some(id) if !(0..=i64::from(i32::MAX)).contains(&id) => {
            Err(FieldError::invalid(path(), id, ID_RANGE))
        }
        _ => Ok(()),
    }
}

fn validate_security_context(sc: &SecurityContext, path: &str) -> Check {
    validate_id(sc.run_as_user, || format!("{path}.runAsUser"))?;
    validate_id(sc.run_as_group, || format!("{path}.runAsGroup"))?;
    if let Some(proc_mount) = sc.proc_mount.as_deref() {
        if !matches!(proc_mount, "Default" | "Unmasked") {
            let supported = &["Default", "Unmasked"];
            let path = format!("{path}.procMount");
            return Err(FieldError::unsupported(path, proc_mount, supported));
        }
    }
    if sc.allow_privilege_escalation == Some(false) {
        if sc.privileged == Some(true) {
            let msg = "cannot set `allowPrivilegeEscalation` to false and `privileged` to true";
            return Err(FieldError::invalid(path, false, msg));
        }
        let caps = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
        if caps.is_some_and(|add| add.iter().any(|c| c == "CAP_SYS_ADMIN")) {
            let msg = "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` \
                       CAP_SYS_ADMIN";
            return Err(FieldError::invalid(path, false, msg));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Capabilities, Container, Probe, SecurityContext};

    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn with_init(f: impl FnOnce(&mut Container)) -> String {
        let pod = pod_with(|p| {
            let mut init = spec(p).containers[0].clone();
            init.name = "init".into();
            f(&mut init);
            spec(p).init_containers = Some(vec![init]);
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn with_sc(sc: SecurityContext) -> String {
        let pod = pod_with(|p| spec(p).containers[0].security_context = Some(sc));
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn container_name_is_at_most_63_characters() {
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = "a".repeat(64)));
        assert!(
            err.starts_with("spec.containers[0].name: Invalid value: "),
            "{err}"
        );
        let ok = pod_with(|p| spec(p).containers[0].name = "a".repeat(63));
        assert!(validate_pod(&ok).is_ok());
    }

    #[test]
    fn image_without_surrounding_whitespace() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).containers[0].image = Some(" x:1".into())
        }));
        assert_eq!(
            err,
            "spec.containers[0].image: Invalid value: \" x:1\": must not have leading or trailing whitespace"
        );
    }

    #[test]
    fn termination_message_policy_values() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).containers[0].termination_message_policy = Some("Logs".into())
        }));
        assert_eq!(
            err,
            "spec.containers[0].terminationMessagePolicy: Invalid value: \"Logs\": \
             must be 'File' or 'FallbackToLogsOnError'"
        );
    }

    #[test]
    fn restart_policy_only_on_init_containers_and_only_always() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).containers[0].restart_policy = Some("Always".into())
        }));
        assert_eq!(
            err,
            "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers"
        );
        let err = with_init(|c| c.restart_policy = Some("Never".into()));
        assert_eq!(
            err,
            "spec.initContainers[0].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""
        );
        assert_eq!(with_init(|c| c.restart_policy = Some("Always".into())), "");
    }

    #[test]
    fn plain_init_containers_have_no_probes_or_lifecycle() {
        let probe = Probe {
            exec: Some(Default::default()),
            ..Default::default()
        };
        let err = with_init(|c| c.readiness_probe = Some(probe.clone()));
        assert_eq!(
            err,
            "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init \
             containers without restartPolicy=Always"
        );
    }

    #[test]
    fn ephemeral_containers_cannot_be_set_on_create() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).ephemeral_containers = Some(vec![Default::default()])
        }));
        assert_eq!(
            err,
            "spec.ephemeralContainers: Forbidden: cannot be set on create"
        );
    }

    #[test]
    fn container_user_and_group_ids_are_0_to_2147483647() {
        let err = with_sc(SecurityContext {
            run_as_user: Some(-1),
            ..Default::default()
        });
        assert_eq!(
            err,
            "spec.containers[0].securityContext.runAsUser: Invalid value: -1: \
             must be between 0 and 2147483647, inclusive"
        );
        let err = with_sc(SecurityContext {
            run_as_group: Some(1 << 31),
            ..Default::default()
        });
        assert!(
            err.starts_with(
                "spec.containers[0].securityContext.runAsGroup: Invalid value: 2147483648"
            ),
            "{err}"
        );
    }

    #[test]
    fn proc_mount_values() {
        let err = with_sc(SecurityContext {
            proc_mount: Some("Masked".into()),
            ..Default::default()
        });
        assert!(
            err.starts_with(
                "spec.containers[0].securityContext.procMount: Unsupported value: \"Masked\""
            ),
            "{err}"
        );
    }

    #[test]
    fn no_privilege_escalation_excludes_privileged_and_sys_admin() {
        let err = with_sc(SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(true),
            ..Default::default()
        });
        assert!(
            err.ends_with(
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            ),
            "{err}"
        );
        let err = with_sc(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["CAP_SYS_ADMIN".into()]),
                drop: None,
            }),
            ..Default::default()
        });
        assert!(err.ends_with("`capabilities.Add` CAP_SYS_ADMIN"), "{err}");
    }
}
