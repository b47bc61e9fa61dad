//! Security settings of one container, from the pod's and the container's
//! `securityContext`, in the engine's terms; and the kubelet's `runAsNonRoot`
//! verification against the image's user. Pure functions.
//!
//! The container's `runAsUser`, `runAsGroup`, `runAsNonRoot`,
//! `seccompProfile`, `appArmorProfile` and `seLinuxOptions` override the
//! pod's. `hostNetwork`, `hostPID` and `hostIPC` need no permission here.
//!
//! Here: users, groups, privileged and the checks of the IDs. In `options`:
//! capabilities and Docker's `--security-opt` values. In `non_root`:
//! [`check_non_root`].

mod node;
mod non_root;
mod oom;
mod options;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::manifest::FieldError;

pub use node::{
    admit_security, has_sys_resource, pod_sysctls, NodeSecurity, APPARMOR_ANNOTATION_PREFIX,
    SAFE_SYSCTLS,
};
pub use non_root::{check_non_root, NonRootError};
pub use oom::{container_oom_score_adj, SANDBOX_OOM_SCORE_ADJ};

/// What the engine needs to run a container as the spec asks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Security {
    /// `uid[:gid]` from `runAsUser` (and `runAsGroup`); `None`: the image's
    /// user (see [`Security::docker_user`] for a `runAsGroup` without a user).
    pub user: Option<String>,
    /// Extra groups: the pod's `fsGroup`, then its `supplementalGroups`, each once.
    pub group_add: Vec<String>,
    /// `readOnlyRootFilesystem`.
    pub read_only_rootfs: bool,
    /// `privileged`.
    pub privileged: bool,
    /// `capabilities.add`, uppercased (Docker takes `NET_ADMIN` or `CAP_NET_ADMIN`).
    pub cap_add: Vec<String>,
    /// `capabilities.drop`, uppercased.
    pub cap_drop: Vec<String>,
    /// The effective `runAsNonRoot`.
    pub run_as_non_root: bool,
    /// The effective `runAsUser`.
    pub run_as_user: Option<i64>,
    /// The effective `runAsGroup`.
    pub run_as_group: Option<i64>,
    /// Docker `--security-opt` values: `no-new-privileges` for
    /// `allowPrivilegeEscalation: false`, `seccomp=unconfined`,
    /// `apparmor=unconfined` or `apparmor=<profile>`, `label=user:…` (SELinux).
    pub security_opt: Vec<String>,
    /// The OOM score adjustment the kubelet gives the container (by the
    /// pod's QoS class).
    pub oom_score_adj: Option<i64>,
    /// `host` on an engine that remaps user namespaces, for pods without
    /// `hostUsers: false`.
    pub userns_mode: Option<String>,
    /// A Localhost seccomp profile: `<root-dir>/seccomp/<localhostProfile>`.
    pub seccomp_profile_file: Option<std::path::PathBuf>,
}

impl Security {
    /// The engine's `User` for an image whose configured user is
    /// `image_user`: [`Security::user`] when set; with only a `runAsGroup`,
    /// the image's user (root when it has none) with that group; else `None`
    /// (the image's own user).
    pub fn docker_user(&self, image_user: &str) -> Option<String> {
        if let Some(user) = &self.user {
            return Some(user.clone());
        }
        let group = self.run_as_group?;
        let base = image_user
            .split(':')
            .next()
            .filter(|u| !u.is_empty())
            .unwrap_or("0");
        Some(format!("{base}:{group}"))
    }
}

/// User and group IDs must be in 0..=2147483647, as Kubernetes checks.
fn check_id(path: String, id: Option<i64>) -> Result<(), FieldError> {
    match id {
        Some(v) if !(0..=i64::from(i32::MAX)).contains(&v) => Err(FieldError::new(
            path,
            format!("Invalid value: {v}: must be between 0 and 2147483647, inclusive"),
        )),
        _ => Ok(()),
    }
}

/// The container's security settings. `path` is the container's field path
/// (`spec.containers[0]`); pod-level problems are reported at
/// `spec.securityContext…`.
///
/// Refused: `privileged: true` unless `allow_privileged`
/// (`…securityContext.privileged: Forbidden: disallowed by cluster policy`,
/// the kubelet's wording); `allowPrivilegeEscalation: false` together with
/// `privileged` or `CAP_SYS_ADMIN` (as the API server does); IDs outside
/// 0..=2147483647; `Localhost` seccomp profiles, `procMount: Unmasked` and
/// pod `sysctls`, which podvisor cannot apply.
pub fn container_security(
    pod: &Pod,
    c: &Container,
    path: &str,
    allow_privileged: bool,
    node: &NodeSecurity,
) -> Result<Security, FieldError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc = c.security_context.as_ref();
    let cp = format!("{path}.securityContext");
    const PP: &str = "spec.securityContext";

    // IDs where they are written, so the error names the right field.
    if let Some(p) = pod_sc {
        check_id(format!("{PP}.runAsUser"), p.run_as_user)?;
        check_id(format!("{PP}.runAsGroup"), p.run_as_group)?;
        check_id(format!("{PP}.fsGroup"), p.fs_group)?;
        for (i, g) in p.supplemental_groups.iter().flatten().enumerate() {
            check_id(format!("{PP}.supplementalGroups[{i}]"), Some(*g))?;
        }
    }
    if let Some(s) = sc {
        check_id(format!("{cp}.runAsUser"), s.run_as_user)?;
        check_id(format!("{cp}.runAsGroup"), s.run_as_group)?;
    }

    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|p| p.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|p| p.run_as_group));
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    let user = run_as_user.map(|u| match run_as_group {
        Some(g) => format!("{u}:{g}"),
        None => u.to_string(),
    });

    let mut group_add: Vec<String> = Vec::new();
    let groups = pod_sc.and_then(|p| p.fs_group).into_iter().chain(
        pod_sc
            .and_then(|p| p.supplemental_groups.clone())
            .into_iter()
            .flatten(),
    );
    for g in groups {
        let g = g.to_string();
        if !group_add.contains(&g) {
            group_add.push(g);
        }
    }

    let privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
    if privileged && !allow_privileged {
        let msg = "Forbidden: disallowed by cluster policy";
        return Err(FieldError::new(format!("{cp}.privileged"), msg));
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    let cap_add = options::capabilities(
        caps.and_then(|c| c.add.as_ref()),
        &format!("{cp}.capabilities.add"),
    )?;
    let cap_drop = options::capabilities(
        caps.and_then(|c| c.drop.as_ref()),
        &format!("{cp}.capabilities.drop"),
    )?;

    let apparmor = node::apparmor_request(pod, c, &cp);
    let opts = options::security_opt(pod_sc, sc, &cp, privileged, &cap_add, apparmor, node)?;
    match sc
        .and_then(|s| s.proc_mount.as_deref())
        .unwrap_or("Default")
    {
        "Default" => {}
        "Unmasked" => {
            let msg = "Unsupported: procMount Unmasked is not supported by podvisor";
            return Err(FieldError::new(format!("{cp}.procMount"), msg));
        }
        other => {
            let msg = format!(
                "Unsupported value: {other:?}: supported values: \"Default\", \"Unmasked\""
            );
            return Err(FieldError::new(format!("{cp}.procMount"), msg));
        }
    }

    Ok(Security {
        user,
        group_add,
        read_only_rootfs: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        privileged,
        cap_add,
        cap_drop,
        run_as_non_root,
        run_as_user,
        run_as_group,
        security_opt: opts.security_opt,
        oom_score_adj: Some(node.oom_score_adj(container_oom_score_adj(
            pod,
            c,
            node.memory_capacity,
        ))),
        userns_mode: node.userns_mode(pod),
        seccomp_profile_file: opts.seccomp_profile_file,
    })
}

/// The infra container's security settings: the pod-level seccomp profile
/// (the kubelet's sandbox profile; `Unconfined` unless `--seccomp-default`),
/// the OOM score adjustment -998, the user-namespace mode and the pod's
/// sysctls, which it holds for the pod.
pub fn sandbox_security(pod: &Pod, node: &NodeSecurity) -> Result<Security, FieldError> {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let mut opts = options::SecurityOpts::default();
    options::seccomp_for(
        None,
        pod_sc.and_then(|p| p.seccomp_profile.as_ref()),
        "",
        node,
        &mut opts,
    )?;
    Ok(Security {
        security_opt: opts.security_opt,
        seccomp_profile_file: opts.seccomp_profile_file,
        oom_score_adj: Some(node.oom_score_adj(SANDBOX_OOM_SCORE_ADJ)),
        userns_mode: node.userns_mode(pod),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    pub(super) use k8s_openapi::api::core::v1::{
        AppArmorProfile, Capabilities, PodSecurityContext, PodSpec, SELinuxOptions, SeccompProfile,
        SecurityContext,
    };

    pub(super) fn pod(sc: Option<PodSecurityContext>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                security_context: sc,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(super) fn container(sc: Option<SecurityContext>) -> Container {
        Container {
            name: "app".into(),
            security_context: sc,
            ..Default::default()
        }
    }

    pub(super) const P: &str = "spec.containers[0]";

    /// A node with AppArmor and SELinux, and `--seccomp-default` (so that
    /// only what a test sets shows in `security_opt`).
    pub(super) fn node() -> NodeSecurity {
        NodeSecurity {
            seccomp_default: true,
            apparmor: true,
            selinux: true,
            ..Default::default()
        }
    }

    pub(super) fn sec(pod_sc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> Security {
        container_security(&pod(pod_sc), &container(sc), P, false, &node()).unwrap()
    }

    pub(super) fn err(pod_sc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> String {
        container_security(&pod(pod_sc), &container(sc), P, false, &node())
            .unwrap_err()
            .to_string()
    }

    pub(super) fn privileged() -> Option<SecurityContext> {
        Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        })
    }

    #[test]
    fn nothing_set_is_the_image_default() {
        // A BestEffort pod: the kubelet's OOM score adjustment 1000.
        let best_effort = Security {
            oom_score_adj: Some(1000),
            ..Default::default()
        };
        assert_eq!(sec(None, None), best_effort);
        let no_spec = Pod::default();
        assert_eq!(
            container_security(&no_spec, &container(None), P, false, &node()).unwrap(),
            best_effort
        );
    }

    #[test]
    fn without_a_profile_seccomp_is_unconfined_unless_seccomp_default() {
        let plain = NodeSecurity::default();
        let s = container_security(&pod(None), &container(None), P, false, &plain).unwrap();
        assert_eq!(s.security_opt, vec!["seccomp=unconfined"]);
        let sb = sandbox_security(&pod(None), &plain).unwrap();
        assert_eq!(sb.security_opt, vec!["seccomp=unconfined"]);
        assert_eq!(sb.oom_score_adj, Some(-998));
        let sb = sandbox_security(&pod(None), &node()).unwrap();
        assert!(sb.security_opt.is_empty());
        let runtime_default = PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = pod(Some(runtime_default));
        let s = container_security(&p, &container(None), P, false, &plain).unwrap();
        assert!(s.security_opt.is_empty(), "{:?}", s.security_opt);
        assert!(sandbox_security(&p, &plain)
            .unwrap()
            .security_opt
            .is_empty());
    }

    #[test]
    fn pod_level_user_group_and_non_root() {
        let s = sec(
            Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                run_as_non_root: Some(true),
                ..Default::default()
            }),
            None,
        );
        assert_eq!(s.user.as_deref(), Some("1000:3000"));
        assert_eq!(
            (s.run_as_user, s.run_as_group, s.run_as_non_root),
            (Some(1000), Some(3000), true)
        );
    }

    #[test]
    fn container_overrides_pod() {
        let s = sec(
            Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(3000),
                run_as_non_root: Some(true),
                ..Default::default()
            }),
            Some(SecurityContext {
                run_as_user: Some(0),
                run_as_non_root: Some(false),
                ..Default::default()
            }),
        );
        assert_eq!(s.user.as_deref(), Some("0:3000"));
        assert_eq!(s.run_as_user, Some(0));
        assert!(!s.run_as_non_root);
        let s = sec(
            Some(PodSecurityContext {
                run_as_user: Some(1000),
                ..Default::default()
            }),
            Some(SecurityContext {
                run_as_group: Some(5),
                ..Default::default()
            }),
        );
        assert_eq!(s.user.as_deref(), Some("1000:5"));
    }

    #[test]
    fn user_only_and_group_only() {
        let s = sec(
            None,
            Some(SecurityContext {
                run_as_user: Some(65534),
                ..Default::default()
            }),
        );
        assert_eq!(s.user.as_deref(), Some("65534"));
        assert_eq!(s.docker_user("nobody"), Some("65534".into()));
        let s = sec(
            None,
            Some(SecurityContext {
                run_as_group: Some(7),
                ..Default::default()
            }),
        );
        assert_eq!(s.user, None);
        assert_eq!(s.docker_user(""), Some("0:7".into()));
        assert_eq!(s.docker_user("nginx"), Some("nginx:7".into()));
        assert_eq!(s.docker_user("101:101"), Some("101:7".into()));
        assert_eq!(Security::default().docker_user("nginx"), None);
    }

    #[test]
    fn fs_group_then_supplemental_groups_once_each() {
        let s = sec(
            Some(PodSecurityContext {
                fs_group: Some(2000),
                supplemental_groups: Some(vec![10, 2000, 11]),
                ..Default::default()
            }),
            None,
        );
        assert_eq!(s.group_add, vec!["2000", "10", "11"]);
    }

    #[test]
    fn privileged_needs_the_cluster_policy() {
        assert_eq!(
            err(None, privileged()),
            "spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy"
        );
        let s = container_security(&pod(None), &container(privileged()), P, true, &node()).unwrap();
        assert!(s.privileged);
        let e = container_security(
            &pod(None),
            &container(privileged()),
            "spec.initContainers[1]",
            false,
            &node(),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.initContainers[1].securityContext.privileged");
        // privileged: false needs nothing.
        let off = Some(SecurityContext {
            privileged: Some(false),
            ..Default::default()
        });
        assert!(!sec(None, off).privileged);
    }

    #[test]
    fn host_namespaces_need_no_permission() {
        let mut p = pod(None);
        let spec = p.spec.as_mut().unwrap();
        spec.host_network = Some(true);
        spec.host_pid = Some(true);
        spec.host_ipc = Some(true);
        assert!(container_security(&p, &container(None), P, false, &node()).is_ok());
    }

    #[test]
    fn ids_out_of_range_name_their_field() {
        let e = err(
            Some(PodSecurityContext {
                supplemental_groups: Some(vec![1, -1]),
                ..Default::default()
            }),
            None,
        );
        assert_eq!(
            e,
            "spec.securityContext.supplementalGroups[1]: Invalid value: -1: must be between 0 and 2147483647, inclusive"
        );
        let e = err(
            None,
            Some(SecurityContext {
                run_as_user: Some(1 << 31),
                ..Default::default()
            }),
        );
        assert!(
            e.starts_with(
                "spec.containers[0].securityContext.runAsUser: Invalid value: 2147483648"
            ),
            "{e}"
        );
        let e = err(
            Some(PodSecurityContext {
                fs_group: Some(-5),
                ..Default::default()
            }),
            None,
        );
        assert!(e.starts_with("spec.securityContext.fsGroup: "), "{e}");
    }

    #[test]
    fn unmasked_proc_is_refused() {
        let c = SecurityContext {
            proc_mount: Some("Unmasked".into()),
            ..Default::default()
        };
        assert!(err(None, Some(c))
            .starts_with("spec.containers[0].securityContext.procMount: Unsupported"));
        let c = SecurityContext {
            proc_mount: Some("Default".into()),
            ..Default::default()
        };
        assert!(sec(None, Some(c)).security_opt.is_empty());
    }
}
