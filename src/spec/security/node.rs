//! What the node can enforce (the engine's security options, the
//! `--seccomp-default` flag, the machine's memory) and the pod-level checks
//! against it: a security request the node cannot honour refuses the pod,
//! naming the field, never runs it without.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::decide::status::Refusal;
use crate::model::RefusalReason;

/// The legacy per-container AppArmor annotation (before the
/// `appArmorProfile` field): `<prefix><container name>`.
pub const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

/// The node's security facts, as the workers need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSecurity {
    /// `--seccomp-default`: a container without a seccomp profile gets the
    /// engine's default profile instead of none (`Unconfined`).
    pub seccomp_default: bool,
    /// The engine applies AppArmor profiles (`name=apparmor`).
    pub apparmor: bool,
    /// The engine remaps user namespaces (`name=userns`, dockerd
    /// `--userns-remap`).
    pub userns: bool,
    /// The engine applies SELinux labels (`name=selinux`).
    pub selinux: bool,
    /// The machine's memory in bytes: a Burstable container's OOM score
    /// adjustment is relative to it (the kubelet's `MemoryCapacity`).
    pub memory_capacity: i64,
    /// Where Localhost seccomp profiles live: `<root-dir>/seccomp`.
    pub seccomp_dir: PathBuf,
    /// Whether OOM scores may go below 0 (`CAP_SYS_RESOURCE`): without it
    /// the engine cannot start a container with a negative `OomScoreAdj`,
    /// so the infra and Guaranteed containers get 0 (a warning at start).
    pub lower_oom_scores: bool,
}

impl Default for NodeSecurity {
    fn default() -> Self {
        Self {
            seccomp_default: false,
            apparmor: false,
            userns: false,
            selinux: false,
            memory_capacity: 8 << 30,
            seccomp_dir: PathBuf::from("/var/lib/podvisor/seccomp"),
            lower_oom_scores: true,
        }
    }
}

impl NodeSecurity {
    /// The engine's facts from `docker info`'s `SecurityOptions`
    /// (`name=apparmor`, `name=userns`, `name=selinux`, each maybe with
    /// `,key=value` options).
    pub fn with_engine_options(mut self, options: &[String]) -> Self {
        let has = |name: &str| {
            options.iter().any(|o| {
                o.split(',')
                    .any(|kv| kv.strip_prefix("name=") == Some(name))
            })
        };
        self.apparmor = has("apparmor");
        self.userns = has("userns");
        self.selinux = has("selinux");
        self
    }

    /// An OOM score adjustment as this node can apply it: never below 0
    /// without `CAP_SYS_RESOURCE`.
    pub fn oom_score_adj(&self, adj: i64) -> i64 {
        if self.lower_oom_scores {
            adj
        } else {
            adj.max(0)
        }
    }

    /// The engine's `UsernsMode` for the pod's containers: `host` on an
    /// engine that remaps user namespaces, unless the pod asks for its own
    /// (`hostUsers: false`).
    pub fn userns_mode(&self, pod: &Pod) -> Option<String> {
        let own = pod.spec.as_ref().and_then(|s| s.host_users) == Some(false);
        (self.userns && !own).then(|| "host".to_string())
    }
}

/// Whether this process holds `CAP_SYS_RESOURCE` (bit 24 of `CapEff` in a
/// `/proc/<pid>/status` text), which lowering an OOM score below 0 needs.
pub fn has_sys_resource(status: &str) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

/// Sysctls the kubelet allows without `--allowed-unsafe-sysctls`
/// (Kubernetes 1.32's safe set).
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

/// A sysctl name with `/` separators written with dots, as the kubelet
/// reads it.
fn sysctl_name(name: &str) -> String {
    if name.contains('/') {
        name.replace('/', ".")
    } else {
        name.to_string()
    }
}

/// The pod's `securityContext.sysctls` as the infra container takes them.
pub fn pod_sysctls(pod: &Pod) -> std::collections::BTreeMap<String, String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|p| p.sysctls.as_ref())
        .into_iter()
        .flatten()
        .map(|s| (sysctl_name(&s.name), s.value.clone()))
        .collect()
}

/// A container's AppArmor request, from its field, else the legacy
/// annotation (`runtime/default`, `localhost/<profile>`, `unconfined`),
/// else the pod's field: `(field path, type, localhost profile)`.
pub(super) fn apparmor_request(
    pod: &Pod,
    c: &Container,
    cp: &str,
) -> Option<(String, String, Option<String>)> {
    if let Some(p) = c
        .security_context
        .as_ref()
        .and_then(|s| s.app_armor_profile.as_ref())
    {
        let path = format!("{cp}.appArmorProfile");
        return Some((path, p.type_.clone(), p.localhost_profile.clone()));
    }
    let key = format!("{APPARMOR_ANNOTATION_PREFIX}{}", c.name);
    if let Some(v) = pod.metadata.annotations.as_ref().and_then(|a| a.get(&key)) {
        let path = format!("metadata.annotations[{key}]");
        let (t, profile) = match v.as_str() {
            "runtime/default" => ("RuntimeDefault", None),
            "unconfined" => ("Unconfined", None),
            other => match other.strip_prefix("localhost/") {
                Some(p) => ("Localhost", Some(p.to_string())),
                None => (other, None),
            },
        };
        return Some((path, t.to_string(), profile));
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|p| p.app_armor_profile.as_ref())
        .map(|p| {
            let path = "spec.securityContext.appArmorProfile".to_string();
            (path, p.type_.clone(), p.localhost_profile.clone())
        })
}

fn refuse(reason: RefusalReason, message: String) -> Result<(), Refusal> {
    Err(Refusal { reason, message })
}

/// The pod-level security checks against what the node can enforce, in
/// the kubelet's words where it has them:
/// - `hostUsers: false` without user-namespace remapping in the engine
///   (`UserNamespacesNotSupported`);
/// - an AppArmor profile other than `Unconfined` (field or legacy
///   annotation) on an engine without AppArmor (`AppArmor`, "Cannot
///   enforce AppArmor: AppArmor is not enabled on the host");
/// - `seLinuxOptions` on an engine without SELinux, `windowsOptions` (a
///   Linux node), `supplementalGroupsPolicy: Strict` (Docker always adds
///   the image's groups) (`UnsupportedSecurityContext`);
/// - sysctls outside the safe set, `net.*` with `hostNetwork`, `kernel.shm*`
///   with `hostIPC` (`SysctlForbidden`).
pub fn admit_security(pod: &Pod, node: &NodeSecurity) -> Result<(), Refusal> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(());
    };
    if spec.host_users == Some(false) && !node.userns {
        return refuse(
            RefusalReason::UserNamespacesNotSupported,
            "spec.hostUsers: RuntimeClass handler \"\" does not support user namespaces: the Docker \
             engine runs without user-namespace remapping (dockerd --userns-remap)"
                .into(),
        );
    }
    let pod_sc = spec.security_context.as_ref();
    let containers: Vec<(String, &Container)> = spec
        .containers
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("spec.containers[{i}]"), c))
        .chain(
            spec.init_containers
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, c)| (format!("spec.initContainers[{i}]"), c)),
        )
        .collect();
    if !node.apparmor {
        for (path, c) in &containers {
            let cp = format!("{path}.securityContext");
            if let Some((field, t, _)) = apparmor_request(pod, c, &cp) {
                if t != "Unconfined" {
                    return refuse(
                        RefusalReason::AppArmor,
                        format!(
                            "Cannot enforce AppArmor: AppArmor is not enabled on the host ({field}: {t})"
                        ),
                    );
                }
            }
        }
    }
    let unsupported = |field: String, why: &str| {
        refuse(
            RefusalReason::UnsupportedSecurityContext,
            format!("{field}: {why}"),
        )
    };
    if !node.selinux {
        const NO_SELINUX: &str =
            "Forbidden: SELinux is not enabled on the Docker engine: the label cannot be applied";
        if pod_sc.is_some_and(|p| p.se_linux_options.is_some()) {
            return unsupported("spec.securityContext.seLinuxOptions".into(), NO_SELINUX);
        }
        for (path, c) in &containers {
            if c.security_context
                .as_ref()
                .is_some_and(|s| s.se_linux_options.is_some())
            {
                return unsupported(format!("{path}.securityContext.seLinuxOptions"), NO_SELINUX);
            }
        }
    }
    const WINDOWS: &str = "Forbidden: Windows options apply to Windows nodes; this node is Linux";
    if pod_sc.is_some_and(|p| p.windows_options.is_some()) {
        return unsupported("spec.securityContext.windowsOptions".into(), WINDOWS);
    }
    for (path, c) in &containers {
        if c.security_context
            .as_ref()
            .is_some_and(|s| s.windows_options.is_some())
        {
            return unsupported(format!("{path}.securityContext.windowsOptions"), WINDOWS);
        }
    }
    if let Some(policy) = pod_sc.and_then(|p| p.supplemental_groups_policy.as_deref()) {
        if policy != "Merge" {
            return unsupported(
                "spec.securityContext.supplementalGroupsPolicy".into(),
                &format!(
                    "Unsupported value: {policy:?}: Docker always adds the groups of the image's /etc/group (only \"Merge\")"
                ),
            );
        }
    }
    for (name, _) in pod_sysctls(pod) {
        let forbidden = |why: &str| {
            refuse(
                RefusalReason::SysctlForbidden,
                format!("spec.securityContext.sysctls: forbidden sysctl: {name:?} {why}"),
            )
        };
        if !SAFE_SYSCTLS.contains(&name.as_str()) {
            return forbidden("not allowlisted");
        }
        if name.starts_with("net.") && spec.host_network == Some(true) {
            return forbidden("not allowed with host net enabled");
        }
        if name.starts_with("kernel.shm") && spec.host_ipc == Some(true) {
            return forbidden("not allowed with host ipc enabled");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn app(extra: serde_json::Value) -> Pod {
        let mut c = serde_json::json!({"name": "app", "image": "i"});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.get("container")) {
            for (k, v) in e.as_object().unwrap() {
                c.insert(k.clone(), v.clone());
            }
        }
        let mut spec = serde_json::json!({"containers": [c]});
        if let Some(s) = extra.get("spec") {
            for (k, v) in s.as_object().unwrap() {
                spec[k] = v.clone();
            }
        }
        pod(serde_json::json!({
            "metadata": {"name": "p", "annotations": extra.get("annotations").cloned().unwrap_or_default()},
            "spec": spec,
        }))
    }

    fn reason(p: &Pod, node: &NodeSecurity) -> Option<(String, String)> {
        admit_security(p, node)
            .err()
            .map(|r| (r.reason.to_string(), r.message))
    }

    #[test]
    fn engine_options_are_read() {
        let opts: Vec<String> = [
            "name=apparmor",
            "name=seccomp,profile=default",
            "name=userns",
        ]
        .map(String::from)
        .into();
        let n = NodeSecurity::default().with_engine_options(&opts);
        assert!(n.apparmor && n.userns && !n.selinux);
        let n = NodeSecurity::default()
            .with_engine_options(&["name=seccomp,profile=default".to_string()]);
        assert!(!n.apparmor && !n.userns && !n.selinux);
    }

    #[test]
    fn negative_oom_scores_need_cap_sys_resource() {
        assert!(has_sys_resource("Name:\tx\nCapEff:\t000001ffffffffff\n"));
        assert!(!has_sys_resource("CapEff:\t000001fffeffffff\n"));
        assert!(!has_sys_resource("Name: x\n"));
        let n = NodeSecurity {
            lower_oom_scores: false,
            ..Default::default()
        };
        assert_eq!((n.oom_score_adj(-998), n.oom_score_adj(750)), (0, 750));
        assert_eq!(NodeSecurity::default().oom_score_adj(-998), -998);
    }

    #[test]
    fn host_users_false_needs_user_namespaces() {
        let p = app(serde_json::json!({"spec": {"hostUsers": false}}));
        let (r, m) = reason(&p, &NodeSecurity::default()).unwrap();
        assert_eq!(r, "UserNamespacesNotSupported");
        assert!(
            m.starts_with(
                "spec.hostUsers: RuntimeClass handler \"\" does not support user namespaces"
            ),
            "{m}"
        );
        let userns = NodeSecurity {
            userns: true,
            ..Default::default()
        };
        assert_eq!(reason(&p, &userns), None);
        // Remapped engine: every other pod stays in the host's namespace.
        assert_eq!(userns.userns_mode(&p), None);
        let plain = app(serde_json::json!({}));
        assert_eq!(userns.userns_mode(&plain).as_deref(), Some("host"));
        let host_true = app(serde_json::json!({"spec": {"hostUsers": true}}));
        assert_eq!(userns.userns_mode(&host_true).as_deref(), Some("host"));
        assert_eq!(NodeSecurity::default().userns_mode(&plain), None);
    }

    #[test]
    fn apparmor_needs_apparmor_on_the_host() {
        let no = NodeSecurity::default();
        let yes = NodeSecurity {
            apparmor: true,
            ..Default::default()
        };
        let local = app(serde_json::json!({"container": {"securityContext":
            {"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-x"}}}}));
        let (r, m) = reason(&local, &no).unwrap();
        assert_eq!(r, "AppArmor");
        assert_eq!(
            m,
            "Cannot enforce AppArmor: AppArmor is not enabled on the host (spec.containers[0].securityContext.appArmorProfile: Localhost)"
        );
        assert_eq!(reason(&local, &yes), None);
        let default = app(serde_json::json!({"spec": {"securityContext":
            {"appArmorProfile": {"type": "RuntimeDefault"}}}}));
        assert_eq!(reason(&default, &no).unwrap().0, "AppArmor");
        let unconfined = app(serde_json::json!({"spec": {"securityContext":
            {"appArmorProfile": {"type": "Unconfined"}}}}));
        assert_eq!(reason(&unconfined, &no), None);
        let annotated = app(serde_json::json!({"annotations":
            {"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-y"}}));
        let (r, m) = reason(&annotated, &no).unwrap();
        assert_eq!(r, "AppArmor");
        assert!(
            m.contains("metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]"),
            "{m}"
        );
    }

    #[test]
    fn selinux_windows_and_strict_groups_are_refused() {
        let no = NodeSecurity::default();
        let se = app(serde_json::json!({"container": {"securityContext":
            {"seLinuxOptions": {"level": "s0:c1,c2"}}}}));
        let (r, m) = reason(&se, &no).unwrap();
        assert_eq!(r, "UnsupportedSecurityContext");
        assert!(
            m.starts_with("spec.containers[0].securityContext.seLinuxOptions: Forbidden"),
            "{m}"
        );
        let selinux = NodeSecurity {
            selinux: true,
            ..Default::default()
        };
        assert_eq!(reason(&se, &selinux), None);
        let win = app(serde_json::json!({"spec": {"securityContext":
            {"windowsOptions": {"runAsUserName": "x"}}}}));
        assert!(reason(&win, &no)
            .unwrap()
            .1
            .starts_with("spec.securityContext.windowsOptions: "));
        let strict = app(serde_json::json!({"spec": {"securityContext":
            {"supplementalGroupsPolicy": "Strict"}}}));
        assert!(reason(&strict, &no)
            .unwrap()
            .1
            .starts_with("spec.securityContext.supplementalGroupsPolicy: "));
        let merge = app(serde_json::json!({"spec": {"securityContext":
            {"supplementalGroupsPolicy": "Merge"}}}));
        assert_eq!(reason(&merge, &no), None);
    }

    #[test]
    fn only_safe_sysctls_and_not_on_host_namespaces() {
        let no = NodeSecurity::default();
        let sysctls = |name: &str, spec: serde_json::Value| {
            let mut s =
                serde_json::json!({"securityContext": {"sysctls": [{"name": name, "value": "1"}]}});
            for (k, v) in spec.as_object().unwrap() {
                s[k] = v.clone();
            }
            app(serde_json::json!({ "spec": s }))
        };
        let safe = sysctls("net.ipv4.tcp_syncookies", serde_json::json!({}));
        assert_eq!(reason(&safe, &no), None);
        assert_eq!(
            pod_sysctls(&safe).into_iter().collect::<Vec<_>>(),
            vec![("net.ipv4.tcp_syncookies".to_string(), "1".to_string())]
        );
        let slashes = sysctls("net/ipv4/tcp_syncookies", serde_json::json!({}));
        assert_eq!(reason(&slashes, &no), None);
        let (r, m) = reason(&sysctls("net.core.somaxconn", serde_json::json!({})), &no).unwrap();
        assert_eq!(r, "SysctlForbidden");
        assert_eq!(
            m,
            "spec.securityContext.sysctls: forbidden sysctl: \"net.core.somaxconn\" not allowlisted"
        );
        let host_net = sysctls(
            "net.ipv4.tcp_syncookies",
            serde_json::json!({"hostNetwork": true}),
        );
        assert!(reason(&host_net, &no)
            .unwrap()
            .1
            .ends_with("host net enabled"));
        let host_ipc = sysctls(
            "kernel.shm_rmid_forced",
            serde_json::json!({"hostIPC": true}),
        );
        assert!(reason(&host_ipc, &no)
            .unwrap()
            .1
            .ends_with("host ipc enabled"));
    }
}
