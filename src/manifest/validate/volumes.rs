//! `volumes` (names, exactly one source, the fields of the common sources)
//! and `volumeMounts` (a volume of the pod, a unique absolute path, a
//! relative sub-path that stays below it).

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Container, KeyToPath, PodSpec, Volume};

use super::super::field_error::{is_dns1123_label, DNS1123_LABEL_MSG};
use super::containers::Ctx;
use super::resources::quantity_nanos;
use super::{Check, FieldError};

/// The volume sources, in the order Kubernetes counts them.
const SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "flocker",
    "persistentVolumeClaim",
    "rbd",
    "quobyte",
    "cinder",
    "cephfs",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "csi",
    "projected",
    "scaleIO",
    "storageos",
    "configMap",
    "ephemeral",
    "image",
];
const HOST_PATH_TYPES: &[&str] = &[
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];
const MODE_MSG: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// The sources set on `v`, by their field names, in Kubernetes' order.
fn sources(v: &Volume) -> Vec<String> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(v) else {
        return Vec::new();
    };
    let mut set: Vec<String> = SOURCES
        .iter()
        .filter(|s| fields.contains_key(**s))
        .map(|s| s.to_string())
        .collect();
    let others = fields
        .keys()
        .filter(|k| *k != "name" && !SOURCES.contains(&k.as_str()));
    set.extend(others.cloned());
    set
}

pub(super) fn validate_volumes(spec: &PodSpec) -> Check {
    let mut names = HashSet::new();
    for (i, v) in spec.volumes.iter().flatten().enumerate() {
        let path = format!("spec.volumes[{i}]");
        let name_path = format!("{path}.name");
        if v.name.is_empty() {
            return Err(FieldError::required(name_path));
        }
        if !is_dns1123_label(&v.name) {
            return Err(FieldError::invalid(name_path, &v.name, DNS1123_LABEL_MSG));
        }
        if !names.insert(v.name.as_str()) {
            return Err(FieldError::duplicate(name_path, &v.name));
        }
        match &sources(v)[..] {
            [] => {
                let msg = "must specify a volume type";
                return Err(FieldError::required_because(path, msg));
            }
            [_] => {}
            [_, second, ..] => {
                let msg = "may not specify more than 1 volume type";
                return Err(FieldError::forbidden(format!("{path}.{second}"), msg));
            }
        }
        validate_source(v, &path)?;
    }
    Ok(())
}

fn validate_source(v: &Volume, path: &str) -> Check {
    if let Some(host) = &v.host_path {
        if host.path.is_empty() {
            return Err(FieldError::required(format!("{path}.hostPath.path")));
        }
        let kind = host.type_.as_deref().unwrap_or_default();
        if !HOST_PATH_TYPES.contains(&kind) {
            let p = format!("{path}.hostPath.type");
            return Err(FieldError::unsupported(p, kind, HOST_PATH_TYPES));
        }
    }
    if let Some(size) = v.empty_dir.as_ref().and_then(|e| e.size_limit.as_ref()) {
        if quantity_nanos(&size.0).map_or(true, |n| n < 0) {
            let msg = "SizeLimit field must be a valid resource quantity";
            return Err(FieldError::forbidden(
                format!("{path}.emptyDir.sizeLimit"),
                msg,
            ));
        }
    }
    if let Some(secret) = &v.secret {
        let path = format!("{path}.secret");
        if secret.secret_name.as_deref().is_none_or(str::is_empty) {
            return Err(FieldError::required(format!("{path}.secretName")));
        }
        validate_mode(secret.default_mode, &format!("{path}.defaultMode"))?;
        validate_items(secret.items.as_deref(), &path)?;
    }
    if let Some(cm) = &v.config_map {
        let path = format!("{path}.configMap");
        if cm.name.is_empty() {
            return Err(FieldError::required(format!("{path}.name")));
        }
        validate_mode(cm.default_mode, &format!("{path}.defaultMode"))?;
        validate_items(cm.items.as_deref(), &path)?;
    }
    if let Some(claim) = &v.persistent_volume_claim {
        if claim.claim_name.is_empty() {
            return Err(FieldError::required(format!(
                "{path}.persistentVolumeClaim.claimName"
            )));
        }
    }
    if let Some(api) = &v.downward_api {
        let path = format!("{path}.downwardAPI");
        validate_mode(api.default_mode, &format!("{path}.defaultMode"))?;
        for (i, item) in api.items.iter().flatten().enumerate() {
            let path = format!("{path}.items[{i}]");
            if item.path.is_empty() {
                return Err(FieldError::required(format!("{path}.path")));
            }
            validate_local_path(&item.path, &format!("{path}.path"), true)?;
            validate_mode(item.mode, &format!("{path}.mode"))?;
        }
    }
    Ok(())
}

/// A file mode: 0 to 0777.
fn validate_mode(mode: Option<i32>, path: &str) -> Check {
    match mode {
        Some(m) if !(0..=0o777).contains(&m) => Err(FieldError::invalid(path, m, MODE_MSG)),
        _ => Ok(()),
    }
}

/// `items` of a secret or config map volume: a key, a relative path.
fn validate_items(items: Option<&[KeyToPath]>, path: &str) -> Check {
    for (i, item) in items.into_iter().flatten().enumerate() {
        let path = format!("{path}.items[{i}]");
        if item.key.is_empty() {
            return Err(FieldError::required(format!("{path}.key")));
        }
        if item.path.is_empty() {
            return Err(FieldError::required(format!("{path}.path")));
        }
        validate_local_path(&item.path, &format!("{path}.path"), true)?;
        validate_mode(item.mode, &format!("{path}.mode"))?;
    }
    Ok(())
}

/// A path relative to a volume that does not climb out of it (`..`); files
/// of a volume may not start with `..` either (Kubernetes keeps its own
/// `..data` there).
fn validate_local_path(p: &str, path: &str, no_dotdot_start: bool) -> Check {
    if p.starts_with('/') || p.starts_with('\\') {
        return Err(FieldError::invalid(path, p, "must be a relative path"));
    }
    if p.split(['/', '\\']).any(|part| part == "..") {
        return Err(FieldError::invalid(path, p, "must not contain '..'"));
    }
    if no_dotdot_start && p.starts_with("..") {
        return Err(FieldError::invalid(path, p, "must not start with '..'"));
    }
    Ok(())
}

/// A container's mounts: a volume of the pod, a unique absolute path,
/// `subPath` / `subPathExpr` (exclusive) relative without `..`, a known
/// propagation (`Bidirectional` only for privileged containers).
pub(super) fn validate_mounts(c: &Container, ctx: &Ctx<'_>) -> Check {
    let mut paths = HashSet::new();
    let privileged = c.security_context.as_ref().and_then(|s| s.privileged) == Some(true);
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let path = format!("{}.volumeMounts[{i}]", ctx.path);
        if m.name.is_empty() {
            return Err(FieldError::required(format!("{path}.name")));
        }
        if !ctx.volumes.contains(m.name.as_str()) {
            return Err(FieldError::not_found(format!("{path}.name"), &m.name));
        }
        let mount_path = format!("{path}.mountPath");
        if m.mount_path.is_empty() {
            return Err(FieldError::required(mount_path));
        }
        if !paths.insert(m.mount_path.as_str()) {
            return Err(FieldError::invalid(
                mount_path,
                &m.mount_path,
                "must be unique",
            ));
        }
        if !m.mount_path.starts_with('/') {
            let msg = "must be an absolute path";
            return Err(FieldError::invalid(mount_path, &m.mount_path, msg));
        }
        let sub_path = m.sub_path.as_deref().filter(|s| !s.is_empty());
        if let Some(sub) = sub_path {
            validate_local_path(sub, &format!("{path}.subPath"), false)?;
        }
        if let Some(expr) = m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
            let p = format!("{path}.subPathExpr");
            if sub_path.is_some() {
                let msg = "subPathExpr and subPath are mutually exclusive";
                return Err(FieldError::invalid(p, expr, msg));
            }
            validate_local_path(expr, &p, false)?;
        }
        if let Some(mode) = m.mount_propagation.as_deref() {
            let p = format!("{path}.mountPropagation");
            let supported = &["Bidirectional", "HostToContainer", "None"];
            if !supported.contains(&mode) {
                return Err(FieldError::unsupported(p, mode, supported));
            }
            if mode == "Bidirectional" && !privileged {
                let msg = "Bidirectional mount propagation is available only to privileged \
                           containers";
                return Err(FieldError::forbidden(p, msg));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, KeyToPath,
        SecretVolumeSource, Volume, VolumeMount,
    };

    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn empty_dir(name: &str) -> Volume {
        Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }
    }

    fn volumes_err(volumes: Vec<Volume>) -> String {
        let pod = pod_with(|p| spec(p).volumes = Some(volumes));
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn mounts_err(mounts: Vec<VolumeMount>) -> String {
        let pod = pod_with(|p| {
            spec(p).volumes = Some(vec![empty_dir("data")]);
            spec(p).containers[0].volume_mounts = Some(mounts);
        });
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn mount(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn volume_names_are_unique_dns_labels() {
        assert_eq!(volumes_err(vec![empty_dir("data"), empty_dir("logs")]), "");
        assert_eq!(
            volumes_err(vec![empty_dir("data"), empty_dir("data")]),
            "spec.volumes[1].name: Duplicate value: \"data\""
        );
        let err = volumes_err(vec![empty_dir("Data")]);
        assert!(
            err.starts_with("spec.volumes[0].name: Invalid value: \"Data\""),
            "{err}"
        );
        assert_eq!(
            volumes_err(vec![empty_dir("")]),
            "spec.volumes[0].name: Required value"
        );
    }

    #[test]
    fn a_volume_has_exactly_one_source() {
        let none = Volume {
            name: "v".into(),
            ..Default::default()
        };
        assert_eq!(
            volumes_err(vec![none]),
            "spec.volumes[0]: Required value: must specify a volume type"
        );
        let two = Volume {
            host_path: Some(HostPathVolumeSource {
                path: "/tmp".into(),
                type_: None,
            }),
            ..empty_dir("v")
        };
        assert_eq!(
            volumes_err(vec![two]),
            "spec.volumes[0].emptyDir: Forbidden: may not specify more than 1 volume type"
        );
    }

    #[test]
    fn source_fields() {
        let host = |path: &str, kind: Option<&str>| Volume {
            name: "h".into(),
            host_path: Some(HostPathVolumeSource {
                path: path.into(),
                type_: kind.map(Into::into),
            }),
            ..Default::default()
        };
        assert_eq!(
            volumes_err(vec![host("", None)]),
            "spec.volumes[0].hostPath.path: Required value"
        );
        let err = volumes_err(vec![host("/x", Some("Dir"))]);
        assert!(
            err.starts_with("spec.volumes[0].hostPath.type: Unsupported value: \"Dir\""),
            "{err}"
        );
        let secret = |mode, path: &str| Volume {
            name: "s".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some("s".into()),
                default_mode: mode,
                items: Some(vec![KeyToPath {
                    key: "k".into(),
                    path: path.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(volumes_err(vec![secret(Some(0o644), "a/b")]), "");
        assert_eq!(
            volumes_err(vec![secret(Some(0o1000), "a")]),
            "spec.volumes[0].secret.defaultMode: Invalid value: 512: \
             must be a number between 0 and 0777 (octal), both inclusive"
        );
        assert!(volumes_err(vec![secret(None, "../a")]).ends_with("must not contain '..'"));
        assert!(volumes_err(vec![secret(None, "/a")]).ends_with("must be a relative path"));
        let cm = Volume {
            name: "c".into(),
            config_map: Some(ConfigMapVolumeSource::default()),
            ..Default::default()
        };
        assert_eq!(
            volumes_err(vec![cm]),
            "spec.volumes[0].configMap.name: Required value"
        );
    }

    #[test]
    fn a_mount_names_a_volume_of_the_pod() {
        assert_eq!(mounts_err(vec![mount("data", "/data")]), "");
        assert_eq!(
            mounts_err(vec![mount("logs", "/logs")]),
            "spec.containers[0].volumeMounts[0].name: Not found: \"logs\""
        );
    }

    #[test]
    fn mount_paths_are_absolute_and_unique() {
        assert_eq!(
            mounts_err(vec![mount("data", "/data"), mount("data", "/data")]),
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/data\": must be unique"
        );
        assert_eq!(
            mounts_err(vec![mount("data", "data")]),
            "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"data\": must be an absolute path"
        );
    }

    #[test]
    fn sub_paths_are_relative_without_dot_dot() {
        let sub = |s: &str| VolumeMount {
            sub_path: Some(s.into()),
            ..mount("data", "/data")
        };
        assert_eq!(mounts_err(vec![sub("a/b")]), "");
        assert_eq!(
            mounts_err(vec![sub("a/../../etc")]),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"a/../../etc\": must not contain '..'"
        );
        assert!(mounts_err(vec![sub("/etc")]).ends_with("must be a relative path"));
        let both = VolumeMount {
            sub_path_expr: Some("$(POD)".into()),
            ..sub("a")
        };
        assert!(mounts_err(vec![both]).ends_with("subPathExpr and subPath are mutually exclusive"));
    }

    #[test]
    fn mount_propagation_values() {
        let prop = |p: &str| VolumeMount {
            mount_propagation: Some(p.into()),
            ..mount("data", "/data")
        };
        assert_eq!(mounts_err(vec![prop("HostToContainer")]), "");
        assert!(mounts_err(vec![prop("Shared")]).contains("Unsupported value: \"Shared\""));
        assert!(mounts_err(vec![prop("Bidirectional")])
            .ends_with("available only to privileged containers"));
    }
}
