//! `env` and `envFrom`: names (1.32's relaxed rule: printable ASCII but
//! `=`), `value` or exactly one `valueFrom` source, field and resource
//! paths, config map and secret references.

use k8s_openapi::api::core::v1::{Container, EnvVar, EnvVarSource, ObjectFieldSelector};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::super::field_error::{is_dns1123_subdomain, DNS1123_SUBDOMAIN_MSG};
use super::meta::qualified_name_error;
use super::resources::quantity_nanos;
use super::{Check, FieldError};
use crate::model::pod::ENV_FIELD_PATHS;

const ENV_NAME_MSG: &str =
    "a valid environment variable name must consist only of printable ASCII characters other than '='";
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', \
    '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is \
    '[-._a-zA-Z0-9]+')";
/// Field labels the API server converts (and then refuses in env if not in
/// `ENV_FIELD_PATHS`).
const FIELD_LABELS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "spec.restartPolicy",
    "spec.schedulerName",
    "status.phase",
    "spec.host",
];
const RESOURCE_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// `IsRelaxedEnvVarName` (on by default since 1.32): printable ASCII, no `=`.
fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
}

pub(super) fn validate_env(c: &Container, path: &str) -> Check {
    for (i, var) in c.env.iter().flatten().enumerate() {
        validate_var(var, &format!("{path}.env[{i}]"))?;
    }
    for (i, from) in c.env_from.iter().flatten().enumerate() {
        let path = format!("{path}.envFrom[{i}]");
        if let Some(prefix) = from.prefix.as_deref().filter(|p| !p.is_empty()) {
            if !is_env_name(prefix) {
                let p = format!("{path}.prefix");
                return Err(FieldError::invalid(p, prefix, ENV_NAME_MSG));
            }
        }
        let refs = [
            (
                "configMapRef",
                from.config_map_ref.as_ref().map(|r| &r.name),
            ),
            ("secretRef", from.secret_ref.as_ref().map(|r| &r.name)),
        ];
        let set: Vec<_> = refs.iter().filter_map(|(f, n)| n.map(|n| (f, n))).collect();
        match set[..] {
            [] => {
                let msg = "must specify one of: `configMapRef` or `secretRef`";
                return Err(FieldError::invalid(path, "", msg));
            }
            [(field, name)] => validate_object_name(name, &format!("{path}.{field}.name"))?,
            _ => {
                let msg = "may not have more than one field specified at a time";
                return Err(FieldError::invalid(path, "", msg));
            }
        }
    }
    Ok(())
}

/// A config map's or secret's name: required, a DNS subdomain.
fn validate_object_name(name: &str, path: &str) -> Check {
    if name.is_empty() {
        return Err(FieldError::required(path));
    }
    if !is_dns1123_subdomain(name) {
        return Err(FieldError::invalid(path, name, DNS1123_SUBDOMAIN_MSG));
    }
    Ok(())
}

fn validate_var(var: &EnvVar, path: &str) -> Check {
    if var.name.is_empty() {
        return Err(FieldError::required(format!("{path}.name")));
    }
    if !is_env_name(&var.name) {
        return Err(FieldError::invalid(
            format!("{path}.name"),
            &var.name,
            ENV_NAME_MSG,
        ));
    }
    let Some(from) = &var.value_from else {
        return Ok(());
    };
    let path = format!("{path}.valueFrom");
    let sources = [
        from.field_ref.is_some(),
        from.resource_field_ref.is_some(),
        from.config_map_key_ref.is_some(),
        from.secret_key_ref.is_some(),
    ];
    let count = sources.iter().filter(|s| **s).count();
    if count == 0 {
        let msg = "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or \
                   `secretKeyRef`";
        return Err(FieldError::invalid(path, "", msg));
    }
    if var.value.as_deref().is_some_and(|v| !v.is_empty()) {
        let msg = "may not be specified when `value` is not empty";
        return Err(FieldError::invalid(path, "", msg));
    }
    if count > 1 {
        let msg = "may not have more than one field specified at a time";
        return Err(FieldError::invalid(path, "", msg));
    }
    validate_source(from, &path)
}

fn validate_source(from: &EnvVarSource, path: &str) -> Check {
    if let Some(field) = &from.field_ref {
        validate_field_ref(field, &format!("{path}.fieldRef"))?;
    }
    if let Some(r) = &from.resource_field_ref {
        let path = format!("{path}.resourceFieldRef");
        let resource = r.resource.as_str();
        let huge = resource.starts_with("requests.hugepages-")
            || resource.starts_with("limits.hugepages-");
        if resource.is_empty() {
            return Err(FieldError::required(format!("{path}.resource")));
        }
        if !huge && !RESOURCE_PATHS.contains(&resource) {
            let p = format!("{path}.resource");
            return Err(FieldError::unsupported(p, resource, RESOURCE_PATHS));
        }
        if let Some(divisor) = &r.divisor {
            validate_divisor(resource, divisor, &format!("{path}.divisor"))?;
        }
    }
    let keys = [
        (
            "configMapKeyRef",
            from.config_map_key_ref.as_ref().map(|k| (&k.name, &k.key)),
        ),
        (
            "secretKeyRef",
            from.secret_key_ref.as_ref().map(|k| (&k.name, &k.key)),
        ),
    ];
    for (field, selector) in keys {
        let Some((name, key)) = selector else {
            continue;
        };
        let path = format!("{path}.{field}");
        validate_object_name(name, &format!("{path}.name"))?;
        validate_config_key(key, &format!("{path}.key"))?;
    }
    Ok(())
}

/// `IsConfigMapKey`.
fn validate_config_key(key: &str, path: &str) -> Check {
    if key.is_empty() {
        return Err(FieldError::required(path));
    }
    let msg = if key.len() > 253 {
        "must be no more than 253 characters"
    } else if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        CONFIG_KEY_MSG
    } else if key == "." {
        "must not be '.'"
    } else if key == ".." {
        "must not be '..'"
    } else if key.starts_with("..") {
        "must not start with '..'"
    } else {
        return Ok(());
    };
    Err(FieldError::invalid(path, key, msg))
}

/// `fieldRef`: `v1` paths the downward API offers environment variables,
/// or a subscripted label or annotation.
pub(super) fn validate_field_ref(f: &ObjectFieldSelector, path: &str) -> Check {
    let api_version = f.api_version.as_deref().filter(|v| !v.is_empty());
    let field_path = f.field_path.as_str();
    let p = format!("{path}.fieldPath");
    if field_path.is_empty() {
        return Err(FieldError::required(p));
    }
    let converting = |detail: String| {
        let msg = format!("error converting fieldPath: {detail}");
        Err(FieldError::invalid(p.clone(), field_path, &msg))
    };
    if let Some(version) = api_version.filter(|v| *v != "v1") {
        return converting(format!("unsupported pod version: {version}"));
    }
    if let Some((field, subscript)) = split_subscript(field_path) {
        return match field {
            "metadata.labels" | "metadata.annotations" => {
                let key = match field {
                    "metadata.annotations" => subscript.to_ascii_lowercase(),
                    _ => subscript.to_owned(),
                };
                match qualified_name_error(&key) {
                    Some(msg) => Err(FieldError::invalid(p, subscript, &msg)),
                    None => Ok(()),
                }
            }
            _ => converting(format!(
                "field label does not support subscript: {field_path}"
            )),
        };
    }
    let field = if field_path == "spec.host" {
        "spec.nodeName"
    } else {
        field_path
    };
    if ENV_FIELD_PATHS.contains(&field) {
        return Ok(());
    }
    if FIELD_LABELS.contains(&field) {
        return Err(FieldError::unsupported(p, field, ENV_FIELD_PATHS));
    }
    converting(format!("field label not supported: {field_path}"))
}

/// `metadata.labels['app']` → `("metadata.labels", "app")`.
fn split_subscript(path: &str) -> Option<(&str, &str)> {
    let inner = path.strip_suffix("']")?;
    let (field, subscript) = inner.split_once("['")?;
    (!field.is_empty()).then_some((field, subscript))
}

/// A divisor for `resourceFieldRef`: `1m` or `1` for CPU, a power of 1000
/// or 1024 up to `E`/`Ei` for the others.
fn validate_divisor(resource: &str, divisor: &Quantity, path: &str) -> Check {
    let cpu = resource.ends_with(".cpu");
    let allowed: &[&str] = if cpu {
        &["1m", "1"]
    } else {
        &[
            "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei",
        ]
    };
    let value = quantity_nanos(&divisor.0);
    if value.is_ok() && allowed.iter().any(|a| quantity_nanos(a) == value) {
        return Ok(());
    }
    let what = if cpu {
        "cpu"
    } else if resource.ends_with(".memory") {
        "memory"
    } else if resource.ends_with(".ephemeral-storage") {
        "local ephemeral storage"
    } else {
        "hugepages"
    };
    let msg = format!(
        "only divisor's values {} are supported with the {what} resource",
        if cpu {
            "1m and 1".to_owned()
        } else {
            allowed.join(", ")
        }
    );
    Err(FieldError::invalid(path, &divisor.0, &msg))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, ResourceFieldSelector, SecretEnvSource,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn env_err(var: EnvVar) -> String {
        let pod = pod_with(|p| spec(p).containers[0].env = Some(vec![var]));
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn env_from_err(from: EnvFromSource) -> String {
        let pod = pod_with(|p| spec(p).containers[0].env_from = Some(vec![from]));
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn var(name: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some("v".into()),
            value_from: None,
        }
    }

    fn field(path: &str) -> EnvVar {
        EnvVar {
            name: "X".into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: None,
                    field_path: path.into(),
                }),
                ..Default::default()
            }),
        }
    }

    fn resource(resource: &str, divisor: Option<&str>) -> EnvVar {
        EnvVar {
            value_from: Some(EnvVarSource {
                resource_field_ref: Some(ResourceFieldSelector {
                    resource: resource.into(),
                    divisor: divisor.map(|d| Quantity(d.into())),
                    container_name: None,
                }),
                ..Default::default()
            }),
            ..field("")
        }
    }

    const ENV: &str = "spec.containers[0].env[0]";

    #[test]
    fn env_names_are_printable_ascii_without_equals() {
        for good in ["PATH", "my.var", "1st", "with space", "a-b:c"] {
            assert_eq!(env_err(var(good)), "", "{good}");
        }
        assert_eq!(env_err(var("")), format!("{ENV}.name: Required value"));
        assert_eq!(
            env_err(var("A=B")),
            format!(
                "{ENV}.name: Invalid value: \"A=B\": a valid environment variable name must \
                 consist only of printable ASCII characters other than '='"
            )
        );
        assert!(env_err(var("tab\there")).contains("Invalid value"));
        assert!(env_err(var("é")).contains("Invalid value"));
    }

    #[test]
    fn value_and_value_from_are_exclusive() {
        let both = EnvVar {
            value: Some("v".into()),
            ..field("metadata.name")
        };
        assert_eq!(
            env_err(both),
            format!("{ENV}.valueFrom: Invalid value: \"\": may not be specified when `value` is not empty")
        );
    }

    #[test]
    fn value_from_has_exactly_one_source() {
        let mut two = field("metadata.name");
        let source = two.value_from.as_mut().expect("source");
        source.config_map_key_ref = Some(ConfigMapKeySelector {
            name: "cm".into(),
            key: "k".into(),
            optional: None,
        });
        assert_eq!(
            env_err(two),
            format!("{ENV}.valueFrom: Invalid value: \"\": may not have more than one field specified at a time")
        );
        let none = EnvVar {
            value_from: Some(EnvVarSource::default()),
            ..var("X")
        };
        let none = EnvVar {
            value: None,
            ..none
        };
        assert!(env_err(none).contains("must specify one of: `fieldRef`, `resourceFieldRef`"));
    }

    #[test]
    fn field_ref_paths() {
        for good in [
            "metadata.name",
            "status.podIPs",
            "metadata.labels['app']",
            "spec.host",
        ] {
            assert_eq!(env_err(field(good)), "", "{good}");
        }
        let err = env_err(field("metadata.labels"));
        assert!(
            err.starts_with(&format!(
                "{ENV}.valueFrom.fieldRef.fieldPath: Unsupported value: \"metadata.labels\": supported values: \"metadata.name\""
            )),
            "{err}"
        );
        let err = env_err(field("spec.nope"));
        assert!(
            err.ends_with("error converting fieldPath: field label not supported: spec.nope"),
            "{err}"
        );
        let err = env_err(field("metadata.name['x']"));
        assert!(
            err.contains("field label does not support subscript"),
            "{err}"
        );
        let err = env_err(field("metadata.labels['bad key']"));
        assert!(err.contains("name part must consist of"), "{err}");
        assert_eq!(
            env_err(field("")),
            format!("{ENV}.valueFrom.fieldRef.fieldPath: Required value")
        );
    }

    #[test]
    fn resource_field_ref_paths_and_divisors() {
        assert_eq!(env_err(resource("limits.memory", Some("1Mi"))), "");
        assert_eq!(env_err(resource("requests.cpu", Some("1m"))), "");
        assert_eq!(env_err(resource("limits.hugepages-2Mi", None)), "");
        let err = env_err(resource("limits.gpu", None));
        assert!(
            err.starts_with(&format!(
                "{ENV}.valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\""
            )),
            "{err}"
        );
        assert_eq!(
            env_err(resource("limits.cpu", Some("2"))),
            format!("{ENV}.valueFrom.resourceFieldRef.divisor: Invalid value: \"2\": only divisor's values 1m and 1 are supported with the cpu resource")
        );
        let err = env_err(resource("limits.memory", Some("3k")));
        assert!(err.ends_with("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource"), "{err}");
    }

    #[test]
    fn key_refs_name_an_object_and_a_key() {
        let key_ref = |name: &str, key: &str| EnvVar {
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: name.into(),
                    key: key.into(),
                    optional: None,
                }),
                ..Default::default()
            }),
            ..field("")
        };
        assert_eq!(env_err(key_ref("cm", "a.key_1")), "");
        let path = format!("{ENV}.valueFrom.configMapKeyRef");
        assert_eq!(
            env_err(key_ref("", "k")),
            format!("{path}.name: Required value")
        );
        assert!(env_err(key_ref("CM", "k")).starts_with(&format!("{path}.name: Invalid value")));
        assert_eq!(
            env_err(key_ref("cm", "")),
            format!("{path}.key: Required value")
        );
        assert!(env_err(key_ref("cm", "a/b")).contains("a valid config key must consist"));
        assert!(env_err(key_ref("cm", "..a")).ends_with("must not start with '..'"));
    }

    #[test]
    fn env_from_has_one_source_and_a_valid_prefix() {
        let cm = |name: &str| {
            Some(ConfigMapEnvSource {
                name: name.into(),
                optional: None,
            })
        };
        let from = EnvFromSource {
            config_map_ref: cm("cm"),
            prefix: Some("APP_".into()),
            secret_ref: None,
        };
        assert_eq!(env_from_err(from.clone()), "");
        let path = "spec.containers[0].envFrom[0]";
        let bad_prefix = EnvFromSource {
            prefix: Some("A=".into()),
            ..from.clone()
        };
        assert!(
            env_from_err(bad_prefix).starts_with(&format!("{path}.prefix: Invalid value: \"A=\""))
        );
        let both = EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: "s".into(),
                optional: None,
            }),
            ..from.clone()
        };
        assert_eq!(
            env_from_err(both),
            format!(
                "{path}: Invalid value: \"\": may not have more than one field specified at a time"
            )
        );
        let none = EnvFromSource::default();
        assert_eq!(
            env_from_err(none),
            format!(
                "{path}: Invalid value: \"\": must specify one of: `configMapRef` or `secretRef`"
            )
        );
        let unnamed = EnvFromSource {
            config_map_ref: cm(""),
            ..from
        };
        assert_eq!(
            env_from_err(unnamed),
            format!("{path}.configMapRef.name: Required value")
        );
    }
}
