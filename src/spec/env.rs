//! A container's environment, as the kubelet builds it: `value`s with
//! `$(VAR)` expansion, the downward API (`fieldRef`, `resourceFieldRef`), and
//! the same expansion for `command` and `args`. Pure functions.
//!
//! podvisor has no API server: `envFrom`, `configMapKeyRef`, `secretKeyRef`
//! (and `fileKeyRef`) are refused with an error naming the field.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, ObjectFieldSelector, Pod, ResourceFieldSelector};

use crate::manifest::FieldError;
use crate::spec::resources::{self, Amounts};

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

/// Expands `$(VAR)` references in `s` exactly as Kubernetes does
/// (`third_party/forked/golang/expansion`):
///
/// - `$(NAME)` becomes `vars(NAME)`; when that is `None` the reference stays
///   as written;
/// - `$$` is an escaped `$` (so `$$(A)` gives `$(A)`);
/// - `$(` with no `)` after it, a `$` before any other character, and a `$`
///   at the end are kept literally. There is no nesting: the name ends at the
///   first `)`.
pub fn expand(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.as_bytes().first() {
            // A `$` at the very end.
            None => {
                out.push('$');
                rest = after;
            }
            Some(b'$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some(b'(') => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match vars(name) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&rest[at..at + 1 + close + 1]),
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            // Not a reference: keep the `$` and go on from the next character.
            Some(_) => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Expands `command` or `args` against the container's final environment
/// (later definitions of a name win), as the kubelet does.
pub fn expand_args(list: &[String], env: &[(String, String)]) -> Vec<String> {
    let map: HashMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let lookup = |name: &str| map.get(name).map(|v| v.to_string());
    list.iter().map(|s| expand(s, &lookup)).collect()
}

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

const FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
    "metadata.labels['<KEY>']",
    "metadata.annotations['<KEY>']",
];

/// `metadata.labels['key']` → `("metadata.labels", "key")`, as Kubernetes'
/// `SplitMaybeSubscriptedPath`.
fn split_subscript(field_path: &str) -> Option<(&str, &str)> {
    let inner = field_path.strip_suffix("']")?;
    let (base, key) = inner.split_once("['")?;
    (!base.is_empty()).then_some((base, key))
}

fn field_ref(f: &ObjectFieldSelector, p: &str, ctx: &EnvContext<'_>) -> Result<String, FieldError> {
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
            _ => return Err(FieldError::unsupported(path, fp, FIELD_PATHS)),
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
        _ => return Err(FieldError::unsupported(path, fp, FIELD_PATHS)),
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

fn resource_field_ref(
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
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, PodSpec, ResourceRequirements,
        SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    /// Kubernetes' own expansion table (expand_test.go).
    #[test]
    fn kubernetes_expansion_table() {
        let vars: HashMap<&str, &str> = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ]
        .into_iter()
        .collect();
        let lookup = |n: &str| vars.get(n).map(|v| v.to_string());
        let cases = [
            ("$(VAR_A)", "A"),
            ("$(VAR_A)-$(VAR_A)", "A-A"),
            ("$(VAR_A)-1", "A-1"),
            ("___$(VAR_B)___", "___B___"),
            ("___$(VAR_C)", "___C"),
            ("$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("$$(VAR_A)_$$(VAR_B)", "$(VAR_A)_$(VAR_B)"),
            ("f000-$$VAR_A", "f000-$VAR_A"),
            ("foo\\$(VAR_C)bar", "foo\\Cbar"),
            ("foo\\\\$(VAR_C)bar", "foo\\\\Cbar"),
            ("foo\\\\\\\\$(VAR_A)bar", "foo\\\\\\\\Abar"),
            ("$(VAR_A$(VAR_B))", "$(VAR_A$(VAR_B))"),
            ("$(VAR_A$(VAR_B)", "$(VAR_A$(VAR_B)"),
            ("$(VAR_REF)", "$(VAR_A)"),
            ("%%$(VAR_REF)--$(VAR_REF)%%", "%%$(VAR_A)--$(VAR_A)%%"),
            ("foo$(VAR_EMPTY)bar", "foobar"),
            ("foo$(VAR_Awhoops!", "foo$(VAR_Awhoops!"),
            ("f00__(VAR_A)__", "f00__(VAR_A)__"),
            ("$?_boo_$!", "$?_boo_$!"),
            ("$VAR_A", "$VAR_A"),
            ("$(VAR_DNE)", "$(VAR_DNE)"),
            ("$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("$$$$$$(VAR_A)", "$$$(VAR_A)"),
            ("$$$$$$$(GOOD_ODDS)", "$$$$(GOOD_ODDS)"),
            ("$$$$$$$(VAR_A)", "$$$A"),
            ("$VAR_A)", "$VAR_A)"),
            ("${VAR_A}", "${VAR_A}"),
            ("$(VAR_B)_______$(A", "B_______$(A"),
            ("$(VAR_C)_______$(", "C_______$("),
            ("$(VAR_A)foobarzab$", "Afoobarzab$"),
            ("foo-\\$(VAR_A", "foo-\\$(VAR_A"),
            ("--$($($($($--", "--$($($($($--"),
            ("$($($($($--foo$(", "$($($($($--foo$("),
            ("foo0--$($($($(", "foo0--$($($($("),
            ("$(foo$$var)", "$(foo$$var)"),
            ("\n", "\n"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &lookup), expected, "input {input:?}");
        }
    }

    #[test]
    fn expansion_edge_cases() {
        let lookup = |n: &str| (n == "A").then(|| "x".to_string());
        assert_eq!(expand("", &lookup), "");
        assert_eq!(expand("$", &lookup), "$");
        assert_eq!(expand("$$", &lookup), "$");
        assert_eq!(expand("$$$", &lookup), "$$");
        assert_eq!(expand("$(", &lookup), "$(");
        assert_eq!(expand("$()", &lookup), "$()");
        assert_eq!(expand("$(A)$(A)", &lookup), "xx");
        assert_eq!(expand("é$(A)ü$é", &lookup), "éxü$é");
        assert_eq!(expand("$(é)", &|n| (n == "é").then(|| "ok".into())), "ok");
        // The value substituted is not expanded again.
        assert_eq!(expand("$(A)", &|_| Some("$(A)".into())), "$(A)");
    }

    fn env(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value_from: Some(source),
            ..Default::default()
        }
    }

    fn field(path: &str) -> EnvVarSource {
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn resource(res: &str, container: Option<&str>, divisor: Option<&str>) -> EnvVarSource {
        EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                resource: res.into(),
                container_name: container.map(Into::into),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            ..Default::default()
        }
    }

    fn with_resources(name: &str, limits: &[(&str, &str)], requests: &[(&str, &str)]) -> Container {
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

    fn pod() -> Pod {
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

    fn ctx(pod: &Pod) -> EnvContext<'_> {
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

    fn run(vars: Vec<EnvVar>) -> Result<Vec<(String, String)>, FieldError> {
        let p = pod();
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        c.env = Some(vars);
        container_env(&c, "spec.containers[0]", &ctx(&p))
    }

    fn value(source: EnvVarSource) -> String {
        run(vec![from("X", source)]).unwrap().remove(0).1
    }

    fn error(vars: Vec<EnvVar>) -> String {
        run(vars).unwrap_err().to_string()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
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

    #[test]
    fn args_expand_against_the_final_env_later_wins() {
        let env = pairs(&[("A", "1"), ("B", "two words"), ("A", "3")]);
        let args: Vec<String> = ["echo", "$(A)", "$(B)", "$$(A)", "$(C)", "${A}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand_args(&args, &env),
            vec!["echo", "3", "two words", "$(A)", "$(C)", "${A}"]
        );
        assert!(expand_args(&[], &env).is_empty());
    }
}
