//! The downward API: `fieldRef` (the pod's metadata, spec and status) and
//! `resourceFieldRef` (a container's requests and limits).

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, ResourceFieldSelector};

use super::EnvContext;
use crate::manifest::FieldError;
use crate::model::pod::ENV_FIELD_PATHS;
use crate::spec::resources::{self, Amounts};

/// What a `fieldRef` may name, as the refusal lists it.
fn field_paths() -> Vec<&'static str> {
    let subscripts = ["metadata.labels['<KEY>']", "metadata.annotations['<KEY>']"];
    ENV_FIELD_PATHS.iter().copied().chain(subscripts).collect()
}

/// `metadata.labels['key']` → `("metadata.labels", "key")`, as Kubernetes'
/// `SplitMaybeSubscriptedPath`.
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

pub(crate) fn field_ref(
    f: &ObjectFieldSelector,
    p: &str,
    ctx: &EnvContext<'_>,
) -> Result<String, FieldError> {
    if let Some(v) = f
        .api_version
        .as_deref()
        .filter(|v| !v.is_empty() && *v != "v1")
    {
        return Err(FieldError::unsupported(
            format!("{p}.apiVersion"),
            v,
            &["v1"],
        ));
    }
    let fp = f.field_path.as_str();
    let path = format!("{p}.fieldPath");
    if fp.is_empty() {
        return Err(FieldError::new(path, "Required value"));
    }
    let meta = &ctx.pod.metadata;
    if let Some((base, key)) = split_subscript(fp) {
        let map = match base {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => return Err(FieldError::unsupported(path, fp, &field_paths())),
        };
        if key.is_empty() {
            return Err(FieldError::new(
                path,
                format!("Invalid value: {key:?}: key must not be empty"),
            ));
        }
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    let spec = ctx.pod.spec.as_ref();
    Ok(match fp {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into()),
        "metadata.uid" if ctx.pod_uid.is_empty() => meta.uid.clone().unwrap_or_default(),
        "metadata.uid" => ctx.pod_uid.to_string(),
        "spec.nodeName" => ctx.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|s| {
                let name = s.service_account_name.as_deref().filter(|n| !n.is_empty());
                name.or(s.service_account.as_deref().filter(|n| !n.is_empty()))
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "default".into()),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        _ => return Err(FieldError::unsupported(path, fp, &field_paths())),
    })
}

const RESOURCES: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

/// The byte divisors Kubernetes accepts: 1, 1k … 1E, 1Ki … 1Ei.
fn is_byte_divisor(d: i64) -> bool {
    (0..=6).any(|i| d == 1000i64.pow(i) || d == 1i64 << (10 * i))
}

pub(crate) fn resource_field_ref(
    r: &ResourceFieldSelector,
    p: &str,
    current: &Container,
    current_path: &str,
    ctx: &EnvContext<'_>,
) -> Result<String, FieldError> {
    let (target, target_path) = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        None => (current, current_path.to_string()),
        Some(name) if name == current.name => (current, current_path.to_string()),
        Some(name) => {
            let spec = ctx.pod.spec.as_ref();
            let apps = spec
                .into_iter()
                .flat_map(|s| s.containers.iter().enumerate());
            let apps = apps.map(|(i, c)| (c, format!("spec.containers[{i}]")));
            let inits = spec
                .into_iter()
                .flat_map(|s| s.init_containers.iter().flatten().enumerate());
            let inits = inits.map(|(i, c)| (c, format!("spec.initContainers[{i}]")));
            apps.chain(inits)
                .find(|(c, _)| c.name == name)
                .ok_or_else(|| {
                    FieldError::new(format!("{p}.containerName"), format!("Not found: {name:?}"))
                })?
        }
    };
    let resource = r.resource.as_str();
    let Some((which, kind)) = resource
        .split_once('.')
        .filter(|_| RESOURCES.contains(&resource))
    else {
        if resource.is_empty() {
            return Err(FieldError::new(format!("{p}.resource"), "Required value"));
        }
        return Err(FieldError::unsupported(
            format!("{p}.resource"),
            resource,
            RESOURCES,
        ));
    };
    let cpu = kind == "cpu";
    let divisor = match r.divisor.as_ref().map(|q| q.0.as_str()) {
        None => None,
        Some(text) => {
            let dp = format!("{p}.divisor");
            let parsed = if cpu {
                resources::parse_cpu_millis(text)
            } else {
                resources::parse_bytes(text)
            };
            let d = parsed.map_err(|e| {
                FieldError::new(dp.clone(), format!("Invalid value: {text:?}: {e}"))
            })?;
            let valid = d == 0
                || if cpu {
                    d == 1 || d == 1000
                } else {
                    is_byte_divisor(d)
                };
            if !valid {
                let detail = match kind {
                    "cpu" => "only divisor's values 1m and 1 are supported with the cpu resource",
                    "memory" => {
                        "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei \
                         are supported with the memory resource"
                    }
                    _ => {
                        "only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei \
                         are supported with the local ephemeral storage resource"
                    }
                };
                return Err(FieldError::new(
                    dp,
                    format!("Invalid value: {text:?}: {detail}"),
                ));
            }
            Some(d).filter(|d| *d > 0)
        }
    };
    // A zero divisor means the default, 1 (1000 milliCPU for CPU).
    let divisor = divisor.unwrap_or(if cpu { 1000 } else { 1 });
    let amounts = resources::container_amounts(target, &target_path)?;
    let pick = |a: &Amounts| match kind {
        "cpu" => a.cpu_millis,
        "memory" => a.memory_bytes,
        _ => a.ephemeral_storage_bytes,
    };
    let value = if which == "limits" {
        let node = match kind {
            "cpu" => ctx.node_cpu_millis,
            "memory" => ctx.node_memory_bytes,
            _ => ctx.node_ephemeral_storage_bytes,
        };
        pick(&amounts.limits).filter(|v| *v > 0).unwrap_or(node)
    } else {
        pick(&amounts.requests).unwrap_or(0)
    };
    let value = value.max(0);
    let quotient = value / divisor + i64::from(value % divisor != 0);
    Ok(quotient.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::container_env;
    use super::super::tests::*;

    #[test]
    fn field_refs() {
        assert_eq!(value(field("metadata.name")), "web");
        assert_eq!(value(field("metadata.namespace")), "prod");
        assert_eq!(value(field("metadata.uid")), "u-123");
        assert_eq!(value(field("metadata.labels['app']")), "web");
        assert_eq!(value(field("metadata.labels['nope']")), "");
        assert_eq!(value(field("metadata.annotations['a/b']")), "note");
        assert_eq!(value(field("spec.nodeName")), "node1");
        assert_eq!(value(field("spec.serviceAccountName")), "default");
        assert_eq!(value(field("status.podIP")), "10.0.0.5");
        assert_eq!(value(field("status.podIPs")), "10.0.0.5");
        assert_eq!(value(field("status.hostIP")), "192.168.1.2");
        assert_eq!(value(field("status.hostIPs")), "192.168.1.2");
    }

    #[test]
    fn field_refs_feed_later_expansion() {
        let got = run(vec![
            from("POD", field("metadata.name")),
            env("URL", "http://$(POD):80"),
        ])
        .unwrap();
        assert_eq!(got[1].1, "http://web:80");
    }

    #[test]
    fn service_account_name_and_uid_fallbacks() {
        let mut p = pod();
        p.spec.as_mut().unwrap().service_account_name = Some("robot".into());
        p.metadata.namespace = None;
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        c.env = Some(vec![
            from("SA", field("spec.serviceAccountName")),
            from("NS", field("metadata.namespace")),
            from("UID", field("metadata.uid")),
        ]);
        let mut cx = ctx(&p);
        cx.pod_uid = "";
        let got = container_env(&c, "spec.containers[0]", &cx).unwrap();
        assert_eq!(
            got,
            pairs(&[("SA", "robot"), ("NS", "default"), ("UID", "manifest-uid")])
        );
    }

    #[test]
    fn unknown_field_path_names_the_field() {
        let e = error(vec![env("A", "1"), from("X", field("spec.hostname"))]);
        assert!(
            e.starts_with(
                "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\": supported values: \"metadata.name\""
            ),
            "{e}"
        );
        let e = error(vec![from("X", field("metadata.labels"))]);
        assert!(
            e.contains("fieldRef.fieldPath: Unsupported value: \"metadata.labels\""),
            "{e}"
        );
        let e = error(vec![from("X", field("spec['x']"))]);
        assert!(e.contains("Unsupported value: \"spec['x']\""), "{e}");
        let e = error(vec![from("X", field(""))]);
        assert_eq!(
            e,
            "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Required value"
        );
    }

    #[test]
    fn field_ref_api_version_must_be_v1() {
        let mut source = field("metadata.name");
        source.field_ref.as_mut().unwrap().api_version = Some("v1".into());
        assert_eq!(value(source.clone()), "web");
        source.field_ref.as_mut().unwrap().api_version = Some("v2".into());
        let e = error(vec![from("X", source)]);
        assert_eq!(
            e,
            "spec.containers[0].env[0].valueFrom.fieldRef.apiVersion: Unsupported value: \"v2\": supported values: \"v1\""
        );
    }

    #[test]
    fn cpu_resource_refs_round_up_to_the_divisor() {
        assert_eq!(value(resource("limits.cpu", None, None)), "1");
        assert_eq!(value(resource("limits.cpu", None, Some("1m"))), "500");
        assert_eq!(value(resource("limits.cpu", None, Some("1"))), "1");
        assert_eq!(value(resource("requests.cpu", None, Some("1m"))), "250");
        assert_eq!(value(resource("requests.cpu", None, None)), "1");
        assert_eq!(value(resource("limits.cpu", None, Some("0"))), "1");
    }

    #[test]
    fn memory_resource_refs_with_divisors() {
        assert_eq!(value(resource("limits.memory", None, None)), "67108864");
        assert_eq!(value(resource("limits.memory", None, Some("1Mi"))), "64");
        assert_eq!(value(resource("limits.memory", None, Some("1M"))), "68"); // 67.1 rounds up
        assert_eq!(value(resource("limits.memory", None, Some("1Gi"))), "1");
        // requests.memory defaults to the limit.
        assert_eq!(
            value(resource("requests.memory", None, Some("1Ki"))),
            "65536"
        );
    }

    #[test]
    fn unset_limits_report_the_node_and_unset_requests_zero() {
        let e = |res: &str, div: Option<&str>| value(resource(res, Some("side"), div));
        assert_eq!(e("limits.cpu", Some("1m")), "4000");
        assert_eq!(e("limits.memory", Some("1Gi")), "8");
        assert_eq!(e("limits.ephemeral-storage", Some("1Gi")), "100");
        assert_eq!(e("requests.cpu", None), "0");
        assert_eq!(e("requests.memory", None), "0");
        assert_eq!(e("requests.ephemeral-storage", None), "0");
    }

    #[test]
    fn resource_refs_to_other_containers_including_init() {
        assert_eq!(
            value(resource("limits.memory", Some("init"), Some("1Mi"))),
            "1024"
        );
        assert_eq!(
            value(resource("limits.cpu", Some("app"), Some("1m"))),
            "500"
        );
        let e = error(vec![from("X", resource("limits.cpu", Some("ghost"), None))]);
        assert_eq!(
            e,
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.containerName: Not found: \"ghost\""
        );
    }

    #[test]
    fn bad_resource_refs_name_the_field() {
        let e = error(vec![from("X", resource("limits.gpu", None, None))]);
        assert!(
            e.starts_with(
                "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Unsupported value: \"limits.gpu\""
            ),
            "{e}"
        );
        let e = error(vec![from("X", resource("limits.cpu", None, Some("2")))]);
        assert_eq!(
            e,
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.divisor: Invalid value: \"2\": only divisor's values 1m and 1 are supported with the cpu resource"
        );
        let e = error(vec![from(
            "X",
            resource("limits.memory", None, Some("3Ki")),
        )]);
        assert!(
            e.contains(
                "resourceFieldRef.divisor: Invalid value: \"3Ki\": only divisor's values 1, 1k"
            ),
            "{e}"
        );
        let e = error(vec![from("X", resource("limits.memory", None, Some("1x")))]);
        assert!(
            e.contains("resourceFieldRef.divisor: Invalid value: \"1x\": quantities must match"),
            "{e}"
        );
        let e = error(vec![from("X", resource("", None, None))]);
        assert_eq!(
            e,
            "spec.containers[0].env[0].valueFrom.resourceFieldRef.resource: Required value"
        );
    }

    #[test]
    fn a_bad_quantity_in_the_referenced_container_names_that_container() {
        let mut p = pod();
        p.spec.as_mut().unwrap().containers[1] = with_resources("side", &[("cpu", "lots")], &[]);
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        c.env = Some(vec![from("X", resource("limits.cpu", Some("side"), None))]);
        let e = container_env(&c, "spec.containers[0]", &ctx(&p)).unwrap_err();
        assert_eq!(e.path, "spec.containers[1].resources.limits.cpu");
    }
}
