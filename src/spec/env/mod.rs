//! A container's environment, as the kubelet builds it: `value`s with
//! `$(VAR)` expansion, the downward API (`fieldRef`, `resourceFieldRef`), and
//! the same expansion for `command` and `args`. Pure functions.
//!
//! podvisor has no API server: `envFrom`, `configMapKeyRef`, `secretKeyRef`
//! (and `fileKeyRef`) are refused with an error naming the field.
//!
//! Here: [`container_env`], the list itself. In `expand`: [`expand`] and
//! [`expand_args`]. In `downward`: `fieldRef` and `resourceFieldRef`.

pub(crate) mod downward;
mod expand;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::manifest::FieldError;
use downward::{field_ref, resource_field_ref};

pub use expand::{expand, expand_args};

/// What the environment may refer to besides the pod spec.
#[derive(Debug, Clone, Copy)]
pub struct EnvContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// The pod's UID (`metadata.uid`); podvisor derives it
    /// ([`crate::model::naming::derived_pod_uid`]). When empty, the manifest's
    /// `metadata.uid` is used.
    pub pod_uid: &'a str,
    /// This node's name (`spec.nodeName`).
    pub node_name: &'a str,
    /// The pod's IP (`status.podIP`; empty when it has none yet).
    pub pod_ip: &'a str,
    /// The node's IP (`status.hostIP`).
    pub host_ip: &'a str,
    /// The node's allocatable CPU in milliCPU: what `limits.cpu` reports
    /// for a container without a CPU limit.
    pub node_cpu_millis: i64,
    /// The node's allocatable memory in bytes: what `limits.memory` reports
    /// for a container without a memory limit.
    pub node_memory_bytes: i64,
    /// The node's allocatable ephemeral storage in bytes: what
    /// `limits.ephemeral-storage` reports for a container without that limit.
    pub node_ephemeral_storage_bytes: i64,
}

const NO_API_SERVER: &str =
    "Unsupported: podvisor has no API server; secrets and config maps cannot be referenced";

/// Variables in definition order; redefining a name replaces its value in place.
#[derive(Default)]
struct Vars {
    list: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl Vars {
    fn get(&self, name: &str) -> Option<String> {
        self.index.get(name).map(|i| self.list[*i].1.clone())
    }

    fn set(&mut self, name: &str, value: String) {
        match self.index.get(name) {
            Some(i) => self.list[*i].1 = value,
            None => {
                self.index.insert(name.to_string(), self.list.len());
                self.list.push((name.to_string(), value));
            }
        }
    }
}

/// The container's environment, in definition order, each name once (a
/// later definition replaces the value of an earlier one and keeps its
/// place). `path` is the container's field path (`spec.containers[0]`).
///
/// - `value`: expanded ([`expand`]) against the variables defined before it in
///   the list, and nothing else;
/// - `valueFrom.fieldRef`: `metadata.name`, `metadata.namespace`,
///   `metadata.uid`, `metadata.labels['k']`, `metadata.annotations['k']`
///   (empty when absent), `spec.nodeName`, `spec.serviceAccountName`
///   (`default` when unset), `status.podIP`, `status.podIPs`, `status.hostIP`,
///   `status.hostIPs` (the single IP);
/// - `valueFrom.resourceFieldRef`: `limits.*` and `requests.*` of `cpu`,
///   `memory` and `ephemeral-storage` of `containerName` (default: this
///   container), divided by `divisor` (default 1) and rounded up; an unset (or
///   zero) limit reports the node's allocatable amount;
/// - `envFrom`, `configMapKeyRef`, `secretKeyRef`, `fileKeyRef`: refused.
pub fn container_env(
    c: &Container,
    path: &str,
    ctx: &EnvContext<'_>,
) -> Result<Vec<(String, String)>, FieldError> {
    if c.env_from.as_ref().is_some_and(|e| !e.is_empty()) {
        return Err(FieldError::new(format!("{path}.envFrom"), NO_API_SERVER));
    }
    let mut vars = Vars::default();
    for (i, e) in c.env.iter().flatten().enumerate() {
        let p = format!("{path}.env[{i}]");
        if e.name.is_empty() {
            return Err(FieldError::new(format!("{p}.name"), "Required value"));
        }
        if e.name.contains('=') || !e.name.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            let msg = format!(
                "Invalid value: {:?}: a valid environment variable name must consist only of \
                 printable ASCII characters other than '='",
                e.name
            );
            return Err(FieldError::new(format!("{p}.name"), msg));
        }
        let value = match &e.value_from {
            None => {
                let value = e.value.as_deref().unwrap_or_default();
                expand(value, &|name| vars.get(name))
            }
            Some(from) => {
                let p = format!("{p}.valueFrom");
                if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
                    let msg = "Invalid value: \"\": may not be specified when `value` is not empty";
                    return Err(FieldError::new(p, msg));
                }
                if from.secret_key_ref.is_some() {
                    return Err(FieldError::new(format!("{p}.secretKeyRef"), NO_API_SERVER));
                }
                if from.config_map_key_ref.is_some() {
                    return Err(FieldError::new(
                        format!("{p}.configMapKeyRef"),
                        NO_API_SERVER,
                    ));
                }
                if from.file_key_ref.is_some() {
                    let msg = "Unsupported: fileKeyRef is not supported by podvisor";
                    return Err(FieldError::new(format!("{p}.fileKeyRef"), msg));
                }
                match (&from.field_ref, &from.resource_field_ref) {
                    (Some(f), None) => field_ref(f, &format!("{p}.fieldRef"), ctx)?,
                    (None, Some(r)) => {
                        resource_field_ref(r, &format!("{p}.resourceFieldRef"), c, path, ctx)?
                    }
                    (None, None) => {
                        let msg = "Invalid value: \"\": must specify one of: `fieldRef`, \
                                   `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`";
                        return Err(FieldError::new(p, msg));
                    }
                    (Some(_), Some(_)) => {
                        let msg =
                            "Invalid value: \"\": may not have more than one field specified at a time";
                        return Err(FieldError::new(p, msg));
                    }
                }
            }
        };
        vars.set(&e.name, value);
    }
    Ok(vars.list)
}

#[cfg(test)]
mod tests {
    use super::*;
    pub(super) use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        ResourceFieldSelector, ResourceRequirements, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    pub(super) fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    pub(super) fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(source),
            ..Default::default()
        }
    }

    pub(super) fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(super) fn resource(
        res: &str,
        container: Option<&str>,
        divisor: Option<&str>,
    ) -> EnvVarSource {
        EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: res.into(),
                container_name: container.map(Into::into),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            ..Default::default()
        }
    }

    pub(super) fn with_resources(
        name: &str,
        limits: &[(&str, &str)],
        requests: &[(&str, &str)],
    ) -> Container {
        let list = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            )
        };
        Container {
            name: name.into(),
            resources: Some(ResourceRequirements {
                limits: list(limits),
                requests: list(requests),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(super) fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("manifest-uid".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                annotations: Some([("a/b".to_string(), "note".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![
                    with_resources(
                        "app",
                        &[("cpu", "500m"), ("memory", "64Mi")],
                        &[("cpu", "250m")],
                    ),
                    with_resources("side", &[], &[]),
                ],
                init_containers: Some(vec![with_resources("init", &[("memory", "1Gi")], &[])]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(super) fn ctx(pod: &Pod) -> EnvContext<'_> {
        EnvContext {
            pod,
            pod_uid: "u-123",
            node_name: "node1",
            pod_ip: "10.0.0.5",
            host_ip: "192.168.1.2",
            node_cpu_millis: 4000,
            node_memory_bytes: 8 << 30,
            node_ephemeral_storage_bytes: 100 << 30,
        }
    }

    pub(super) fn run(vars: Vec<EnvVar>) -> Result<Vec<(String, String)>, FieldError> {
        let p = pod();
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        c.env = Some(vars);
        container_env(&c, "spec.containers[0]", &ctx(&p))
    }

    pub(super) fn value(source: EnvVarSource) -> String {
        run(vec![from("X", source)]).unwrap().remove(0).1
    }

    pub(super) fn error(vars: Vec<EnvVar>) -> String {
        run(vars).unwrap_err().to_string()
    }

    pub(super) fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_expand_against_earlier_variables_only() {
        let got = run(vec![
            env("FOO", "bar"),
            env("ZOO", "$(FOO)-1"),
            env("BLU", "$(ZOO)-2"),
            env("EARLY", "$(LATE)"),
            env("LATE", "late"),
            env("ESC", "$$(FOO)"),
        ])
        .unwrap();
        assert_eq!(
            got,
            pairs(&[
                ("FOO", "bar"),
                ("ZOO", "bar-1"),
                ("BLU", "bar-1-2"),
                ("EARLY", "$(LATE)"),
                ("LATE", "late"),
                ("ESC", "$(FOO)"),
            ])
        );
    }

    #[test]
    fn redefinition_keeps_the_first_place_and_the_last_value() {
        let got = run(vec![env("A", "1"), env("B", "$(A)"), env("A", "$(A)2")]).unwrap();
        assert_eq!(got, pairs(&[("A", "12"), ("B", "1")]));
    }

    #[test]
    fn missing_value_is_empty() {
        let got = run(vec![EnvVar {
            name: "E".into(),
            ..Default::default()
        }])
        .unwrap();
        assert_eq!(got, pairs(&[("E", "")]));
    }

    #[test]
    fn secrets_config_maps_and_env_from_are_refused() {
        let secret = EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: "s".into(),
                key: "k".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = error(vec![env("A", "1"), env("B", "2"), from("C", secret)]);
        assert_eq!(
            e,
            "spec.containers[0].env[2].valueFrom.secretKeyRef: Unsupported: podvisor has no API server; secrets and config maps cannot be referenced"
        );
        let cm = EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "c".into(),
                key: "k".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = error(vec![from("C", cm)]);
        assert!(
            e.starts_with("spec.containers[0].env[0].valueFrom.configMapKeyRef: Unsupported: "),
            "{e}"
        );

        let p = pod();
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        c.env_from = Some(vec![EnvFromSource::default()]);
        let e = container_env(&c, "spec.initContainers[2]", &ctx(&p)).unwrap_err();
        assert_eq!(e.path, "spec.initContainers[2].envFrom");
        assert_eq!(e.message, NO_API_SERVER);
        c.env_from = Some(vec![]);
        assert!(container_env(&c, "spec.initContainers[2]", &ctx(&p)).is_ok());
    }

    #[test]
    fn malformed_entries() {
        let e = error(vec![env("", "1")]);
        assert_eq!(e, "spec.containers[0].env[0].name: Required value");
        let e = error(vec![env("A=B", "1")]);
        assert!(
            e.starts_with("spec.containers[0].env[0].name: Invalid value: \"A=B\""),
            "{e}"
        );
        let mut both = from("A", field("metadata.name"));
        both.value = Some("v".into());
        let e = error(vec![both]);
        assert!(
            e.starts_with("spec.containers[0].env[0].valueFrom: Invalid value"),
            "{e}"
        );
        let e = error(vec![from("A", EnvVarSource::default())]);
        assert!(e.contains("must specify one of"), "{e}");
        let mut two = field("metadata.name");
        two.resource_field_ref = resource("limits.cpu", None, None).resource_field_ref;
        let e = error(vec![from("A", two)]);
        assert!(e.contains("more than one field"), "{e}");
    }
}
