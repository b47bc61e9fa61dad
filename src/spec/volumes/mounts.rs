//! [`container_mounts`]: a container's `volumeMounts` as Docker binds.

use std::collections::HashSet;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Container;

use super::{check_absolute, check_bind_safe, PodVolumes};
use crate::manifest::FieldError;

/// The container's `volumeMounts` as Docker binds, in order:
/// `host:container`, then `:ro` and/or the propagation (`rslave` for
/// `HostToContainer`, `rshared` for `Bidirectional`, privileged containers
/// only), comma-separated. A `subPath` (relative, no `..`) is joined to the
/// volume's host path. `path` is the container's field path
/// (`spec.containers[0]`). `subPathExpr` and `recursiveReadOnly: Enabled`
/// are refused.
pub fn container_mounts(
    c: &Container,
    path: &str,
    vols: &PodVolumes,
) -> Result<Vec<String>, FieldError> {
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let mut seen = HashSet::new();
    let mut binds = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            return Err(FieldError::new(format!("{p}.name"), "Required value"));
        }
        let Some(volume) = vols.volumes.get(&m.name) else {
            return Err(FieldError::new(
                format!("{p}.name"),
                format!("Not found: {:?}", m.name),
            ));
        };
        check_absolute(format!("{p}.mountPath"), &m.mount_path)?;
        if !seen.insert(PathBuf::from(&m.mount_path)) {
            return Err(FieldError::invalid(
                format!("{p}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            let msg = "Unsupported: subPathExpr is not supported by podvisor";
            return Err(FieldError::new(format!("{p}.subPathExpr"), msg));
        }
        let mut host = volume.host_path().to_path_buf();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sp = format!("{p}.subPath");
            if sub.starts_with('/') {
                return Err(FieldError::invalid(sp, sub, "must be a relative path"));
            }
            check_bind_safe(sp, sub)?;
            host = host.join(sub);
        }
        let mut options = Vec::new();
        // The kubelet mounts downwardAPI volumes read-only, whatever asked.
        let always_ro = matches!(volume, super::VolumeSource::DownwardApi { .. });
        if m.read_only.unwrap_or(false) || always_ro {
            options.push("ro");
        }
        match m.mount_propagation.as_deref().unwrap_or("None") {
            "None" => {}
            "HostToContainer" => options.push("rslave"),
            "Bidirectional" if privileged => options.push("rshared"),
            "Bidirectional" => {
                let msg = "Forbidden: Bidirectional mount propagation is available only to privileged containers";
                return Err(FieldError::new(format!("{p}.mountPropagation"), msg));
            }
            other => {
                let supported = &["Bidirectional", "HostToContainer", "None"];
                return Err(FieldError::unsupported(
                    format!("{p}.mountPropagation"),
                    other,
                    supported,
                ));
            }
        }
        match m.recursive_read_only.as_deref().unwrap_or("Disabled") {
            "Disabled" | "IfPossible" => {}
            "Enabled" => {
                let msg = "Unsupported: recursive read-only mounts are not supported by podvisor";
                return Err(FieldError::new(format!("{p}.recursiveReadOnly"), msg));
            }
            other => {
                let supported = &["Disabled", "Enabled", "IfPossible"];
                return Err(FieldError::unsupported(
                    format!("{p}.recursiveReadOnly"),
                    other,
                    supported,
                ));
            }
        }
        let mut bind = format!("{}:{}", host.display(), m.mount_path);
        if !options.is_empty() {
            bind = format!("{bind}:{}", options.join(","));
        }
        binds.push(bind);
    }
    Ok(binds)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use k8s_openapi::api::core::v1::{SecurityContext, VolumeMount};

    fn mount(name: &str, at: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: at.into(),
            ..Default::default()
        }
    }

    fn vols() -> PodVolumes {
        plan(vec![empty_dir("data"), host("logs", "/var/log", None)], &[]).unwrap()
    }

    fn mounts(list: Vec<VolumeMount>) -> Result<Vec<String>, FieldError> {
        let c = Container {
            volume_mounts: Some(list),
            ..Default::default()
        };
        container_mounts(&c, "spec.containers[0]", &vols())
    }

    fn mount_err(list: Vec<VolumeMount>) -> String {
        mounts(list).unwrap_err().to_string()
    }

    #[test]
    fn mounts_become_binds() {
        let mut ro = mount("logs", "/logs");
        ro.read_only = Some(true);
        let got = mounts(vec![mount("data", "/data"), ro]).unwrap();
        assert_eq!(
            got,
            vec![
                "/var/lib/podvisor/pods/u1/volumes/data:/data".to_string(),
                "/var/log:/logs:ro".to_string()
            ]
        );
        assert!(mounts(vec![]).unwrap().is_empty());
    }

    #[test]
    fn sub_paths_join_the_host_side() {
        let mut m = mount("data", "/cfg");
        m.sub_path = Some("app/conf".into());
        let mut n = mount("logs", "/nginx");
        n.sub_path = Some("nginx".into());
        n.read_only = Some(true);
        assert_eq!(
            mounts(vec![m, n]).unwrap(),
            vec![
                "/var/lib/podvisor/pods/u1/volumes/data/app/conf:/cfg".to_string(),
                "/var/log/nginx:/nginx:ro".to_string()
            ]
        );
    }

    #[test]
    fn sub_paths_must_stay_inside() {
        let mut m = mount("data", "/x");
        m.sub_path = Some("../x".into());
        assert_eq!(
            mount_err(vec![m]),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../x\": must not contain '..'"
        );
        let mut m = mount("data", "/x");
        m.sub_path = Some("a/../../b".into());
        assert!(mount_err(vec![m]).contains("must not contain '..'"));
        let mut m = mount("data", "/x");
        m.sub_path = Some("/etc".into());
        assert_eq!(
            mount_err(vec![m]),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/etc\": must be a relative path"
        );
        let mut m = mount("data", "/x");
        m.sub_path = Some("a..b".into());
        assert!(
            mounts(vec![m]).is_ok(),
            "'..' inside a name is not a component"
        );
    }

    #[test]
    fn unknown_volume_and_bad_mount_paths() {
        assert_eq!(
            mount_err(vec![mount("data", "/d"), mount("ghost", "/g")]),
            "spec.containers[0].volumeMounts[1].name: Not found: \"ghost\""
        );
        assert_eq!(
            mount_err(vec![mount("data", "rel")]),
            "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"rel\": must be an absolute path"
        );
        assert_eq!(
            mount_err(vec![mount("data", "")]),
            "spec.containers[0].volumeMounts[0].mountPath: Required value"
        );
        assert_eq!(
            mount_err(vec![mount("data", "/d"), mount("logs", "/d/")]),
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d/\": must be unique"
        );
        assert!(mount_err(vec![mount("data", "/a:b")]).contains("must not contain ':'"));
        let mut m = mount("data", "/d");
        m.sub_path_expr = Some("$(POD)".into());
        assert!(mount_err(vec![m])
            .starts_with("spec.containers[0].volumeMounts[0].subPathExpr: Unsupported"));
    }

    #[test]
    fn propagation_and_recursive_read_only() {
        let mut m = mount("logs", "/l");
        m.mount_propagation = Some("HostToContainer".into());
        m.read_only = Some(true);
        assert_eq!(
            mounts(vec![m]).unwrap(),
            vec!["/var/log:/l:ro,rslave".to_string()]
        );

        let mut m = mount("logs", "/l");
        m.mount_propagation = Some("Bidirectional".into());
        assert_eq!(
            mount_err(vec![m.clone()]),
            "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"
        );
        let c = Container {
            volume_mounts: Some(vec![m]),
            security_context: Some(SecurityContext {
                privileged: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            container_mounts(&c, "spec.containers[0]", &vols()).unwrap(),
            vec!["/var/log:/l:rshared".to_string()]
        );

        let mut m = mount("logs", "/l");
        m.mount_propagation = Some("Sideways".into());
        assert!(mount_err(vec![m]).contains("mountPropagation: Unsupported value: \"Sideways\""));
        let mut m = mount("logs", "/l");
        m.recursive_read_only = Some("Enabled".into());
        assert!(mount_err(vec![m])
            .starts_with("spec.containers[0].volumeMounts[0].recursiveReadOnly: Unsupported"));
        let mut m = mount("logs", "/l");
        m.recursive_read_only = Some("IfPossible".into());
        assert!(mounts(vec![m]).is_ok());
    }
}
