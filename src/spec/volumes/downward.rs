//! `downwardAPI` volumes: the items planned from the spec ([`plan_items`])
//! and the files they make ([`downward_files`]). The values come from the
//! environment's downward API ([`crate::spec::env`]), restricted to what
//! Kubernetes allows in a volume.

use std::path::{Component, Path};

use k8s_openapi::api::core::v1::{
    DownwardAPIVolumeSource, ObjectFieldSelector, Pod, ResourceFieldSelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::manifest::FieldError;
use crate::spec::env::downward::{field_ref, resource_field_ref};
use crate::spec::env::EnvContext;

/// The mode of a file without `mode` or `defaultMode`.
pub const DEFAULT_MODE: u32 = 0o644;

/// What the `fieldRef` of a volume item may name (the kubelet's list).
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
    "metadata.labels['<KEY>']",
    "metadata.annotations['<KEY>']",
];

/// One file of a `downwardAPI` volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownwardItem {
    /// Relative, without `..`.
    pub path: String,
    /// Permission bits (`mode`, else the volume's `defaultMode`, else 0644).
    pub mode: u32,
    pub source: DownwardField,
    /// The item's field path (`spec.volumes[0].downwardAPI.items[1]`).
    pub field: String,
}

/// What a file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownwardField {
    /// A `fieldRef.fieldPath`.
    Field(String),
    /// A `resourceFieldRef`.
    Resource {
        container: String,
        resource: String,
        divisor: Option<String>,
    },
}

fn check_mode(path: String, mode: i32) -> Result<u32, FieldError> {
    match mode {
        0..=0o777 => Ok(mode as u32),
        m => Err(FieldError::new(
            path,
            format!(
                "Invalid value: {m}: must be a number between 0 and 0777 (octal), both inclusive"
            ),
        )),
    }
}

/// Kubernetes' `validateLocalNonReservedPath`.
fn check_item_path(path: String, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(path, "Required value"));
    }
    if value.starts_with('/') {
        return Err(FieldError::invalid(path, value, "must be a relative path"));
    }
    if Path::new(value)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(FieldError::invalid(path, value, "must not contain '..'"));
    }
    if value.starts_with("..") {
        return Err(FieldError::invalid(path, value, "must not start with '..'"));
    }
    Ok(())
}

/// The volume's items, validated as the API server does (`p` is the
/// volume's field path): relative paths without `..`, modes up to 0777,
/// exactly one of `fieldRef` (name, namespace, uid, labels, annotations,
/// or one label or annotation) and `resourceFieldRef` (with its
/// `containerName`). The values are checked by [`downward_files`].
pub fn plan_items(d: &DownwardAPIVolumeSource, p: &str) -> Result<Vec<DownwardItem>, FieldError> {
    let default_mode = match d.default_mode {
        None => DEFAULT_MODE,
        Some(m) => check_mode(format!("{p}.defaultMode"), m)?,
    };
    let mut items = Vec::new();
    for (i, item) in d.items.iter().flatten().enumerate() {
        let ip = format!("{p}.items[{i}]");
        check_item_path(format!("{ip}.path"), &item.path)?;
        let mode = match item.mode {
            None => default_mode,
            Some(m) => check_mode(format!("{ip}.mode"), m)?,
        };
        let source = match (&item.field_ref, &item.resource_field_ref) {
            (Some(f), None) => {
                let fp = f.field_path.as_str();
                let subscripted = ["metadata.labels['", "metadata.annotations['"]
                    .iter()
                    .any(|s| fp.starts_with(s));
                if !fp.is_empty() && !subscripted && !VOLUME_FIELD_PATHS.contains(&fp) {
                    return Err(FieldError::unsupported(
                        format!("{ip}.fieldRef.fieldPath"),
                        fp,
                        VOLUME_FIELD_PATHS,
                    ));
                }
                DownwardField::Field(fp.to_string())
            }
            (None, Some(r)) => {
                let container = r.container_name.clone().unwrap_or_default();
                if container.is_empty() {
                    let path = format!("{ip}.resourceFieldRef.containerName");
                    return Err(FieldError::new(path, "Required value"));
                }
                DownwardField::Resource {
                    container,
                    resource: r.resource.clone(),
                    divisor: r.divisor.as_ref().map(|q| q.0.clone()),
                }
            }
            (Some(_), Some(_)) => {
                let msg = "Invalid value: \"\": fieldRef and resourceFieldRef can not be specified simultaneously";
                return Err(FieldError::new(ip, msg));
            }
            (None, None) => {
                let msg = "Required value: one of fieldRef and resourceFieldRef is required";
                return Err(FieldError::new(ip, msg));
            }
        };
        items.push(DownwardItem {
            path: item.path.clone(),
            mode,
            source,
            field: ip,
        });
    }
    Ok(items)
}

/// Go's `%q` of a string, as the kubelet quotes label and annotation values.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A map as the kubelet writes it: `key="value"` lines in key order, no
/// final newline.
fn format_map(m: Option<&std::collections::BTreeMap<String, String>>) -> String {
    m.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The files of a `downwardAPI` volume: path, content, mode. Each value is
/// the environment's downward API value for the same selector, except
/// `metadata.labels` and `metadata.annotations` whole (`key="value"` lines).
pub fn downward_files(
    items: &[DownwardItem],
    ctx: &EnvContext<'_>,
) -> Result<Vec<(String, String, u32)>, FieldError> {
    let pod: &Pod = ctx.pod;
    let mut files = Vec::with_capacity(items.len());
    for item in items {
        let content = match &item.source {
            DownwardField::Field(fp) if fp == "metadata.labels" => {
                format_map(pod.metadata.labels.as_ref())
            }
            DownwardField::Field(fp) if fp == "metadata.annotations" => {
                format_map(pod.metadata.annotations.as_ref())
            }
            DownwardField::Field(fp) => {
                let selector = ObjectFieldSelector {
                    field_path: fp.clone(),
                    api_version: None,
                };
                field_ref(&selector, &format!("{}.fieldRef", item.field), ctx)?
            }
            DownwardField::Resource {
                container,
                resource,
                divisor,
            } => {
                let p = format!("{}.resourceFieldRef", item.field);
                let spec = pod.spec.as_ref();
                let apps = spec
                    .into_iter()
                    .flat_map(|s| s.containers.iter().enumerate());
                let apps = apps.map(|(i, c)| (c, format!("spec.containers[{i}]")));
                let inits = spec
                    .into_iter()
                    .flat_map(|s| s.init_containers.iter().flatten().enumerate());
                let inits = inits.map(|(i, c)| (c, format!("spec.initContainers[{i}]")));
                let Some((target, target_path)) =
                    apps.chain(inits).find(|(c, _)| c.name == *container)
                else {
                    return Err(FieldError::new(
                        format!("{p}.containerName"),
                        format!("Not found: {container:?}"),
                    ));
                };
                let selector = ResourceFieldSelector {
                    container_name: Some(container.clone()),
                    resource: resource.clone(),
                    divisor: divisor.clone().map(Quantity),
                };
                resource_field_ref(&selector, &p, target, &target_path, ctx)?
            }
        };
        files.push((item.path.clone(), content, item.mode));
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod",
                "labels": {"app": "web", "tier": "front"},
                "annotations": {"note": "say \"hi\"\nbye"}},
            "spec": {"containers": [{"name": "app", "image": "i",
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}]}
        }))
        .unwrap()
    }

    fn ctx(p: &Pod) -> EnvContext<'_> {
        EnvContext {
            pod: p,
            pod_uid: "u-1",
            node_name: "n1",
            pod_ip: "",
            host_ip: "10.0.0.1",
            node_cpu_millis: 4000,
            node_memory_bytes: 8 << 30,
            node_ephemeral_storage_bytes: i64::MAX,
        }
    }

    fn source(v: serde_json::Value) -> DownwardAPIVolumeSource {
        serde_json::from_value(v).unwrap()
    }

    fn files(v: serde_json::Value) -> Result<Vec<(String, String, u32)>, String> {
        let p = pod();
        let items =
            plan_items(&source(v), "spec.volumes[0].downwardAPI").map_err(|e| e.to_string())?;
        downward_files(&items, &ctx(&p)).map_err(|e| e.to_string())
    }

    #[test]
    fn fields_labels_annotations_and_resources_become_files() {
        let got = files(serde_json::json!({"defaultMode": 0o600, "items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}, "mode": 0o444},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "sub/app", "fieldRef": {"fieldPath": "metadata.labels['app']"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
            {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu", "divisor": "1m"}},
        ]}))
        .unwrap();
        let f = |s: &str, c: &str, m: u32| (s.to_string(), c.to_string(), m);
        assert_eq!(
            got,
            vec![
                f("name", "web", 0o600),
                f("labels", "app=\"web\"\ntier=\"front\"", 0o444),
                f("annotations", "note=\"say \\\"hi\\\"\\nbye\"", 0o600),
                f("sub/app", "web", 0o600),
                f("mem", "64", 0o600),
                f("cpu", "500", 0o600),
            ]
        );
        let got = files(serde_json::json!({"items": [
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}))
        .unwrap();
        assert_eq!(got, vec![f("ns", "prod", 0o644)]);
    }

    #[test]
    fn refusals_name_the_field() {
        let e = |v| files(v).unwrap_err();
        assert!(e(serde_json::json!({"items": [
            {"path": "x", "fieldRef": {"fieldPath": "spec.nodeName"}}]}))
        .starts_with("spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"spec.nodeName\""));
        assert_eq!(
            e(serde_json::json!({"items": [
                {"path": "x", "resourceFieldRef": {"resource": "limits.cpu"}}]})),
            "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: Required value"
        );
        assert_eq!(
            e(serde_json::json!({"items": [
                {"path": "x", "resourceFieldRef": {"containerName": "ghost", "resource": "limits.cpu"}}]})),
            "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName: Not found: \"ghost\""
        );
        assert!(e(serde_json::json!({"items": [
            {"path": "x", "resourceFieldRef": {"containerName": "app", "resource": "limits.gpu"}}]}))
        .contains("resourceFieldRef.resource: Unsupported value"));
        assert_eq!(
            e(serde_json::json!({"items": [{"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]})),
            "spec.volumes[0].downwardAPI.items[0].path: Invalid value: \"../x\": must not contain '..'"
        );
        assert!(e(serde_json::json!({"items": [{"path": "/x", "fieldRef": {"fieldPath": "metadata.name"}}]}))
            .contains("must be a relative path"));
        assert!(e(serde_json::json!({"items": [{"path": "..x", "fieldRef": {"fieldPath": "metadata.name"}}]}))
            .contains("must not start with '..'"));
        assert_eq!(
            e(serde_json::json!({"defaultMode": 0o1000, "items": []})),
            "spec.volumes[0].downwardAPI.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive"
        );
        assert!(e(serde_json::json!({"items": [{"path": "x"}]}))
            .contains("one of fieldRef and resourceFieldRef is required"));
    }
}
