//! Security settings of one container, from the pod's and the container's
//! `securityContext`, in the engine's terms; and the kubelet's `runAsNonRoot`
//! verification against the image's user. Pure functions.
//!
//! The container's `runAsUser`, `runAsGroup`, `runAsNonRoot`,
//! `seccompProfile`, `appArmorProfile` and `seLinuxOptions` override the
//! pod's. `hostNetwork`, `hostPID` and `hostIPC` need no permission here.

use k8s_openapi::api::core::v1::{AppArmorProfile, Container, Pod, SELinuxOptions, SeccompProfile};

use crate::manifest::FieldError;

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

fn capabilities(list: Option<&Vec<String>>, path: &str) -> Result<Vec<String>, FieldError> {
    let mut out = Vec::new();
    for (i, cap) in list.into_iter().flatten().enumerate() {
        let upper = cap.to_ascii_uppercase();
        if upper.is_empty()
            || !upper
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            let msg =
                format!("Invalid value: {cap:?}: must be a capability name such as NET_ADMIN");
            return Err(FieldError::new(format!("{path}[{i}]"), msg));
        }
        if !out.contains(&upper) {
            out.push(upper);
        }
    }
    Ok(out)
}

fn seccomp(profile: &SeccompProfile, path: &str, opts: &mut Vec<String>) -> Result<(), FieldError> {
    match profile.type_.as_str() {
        // Docker applies its default profile unless told otherwise.
        "RuntimeDefault" => Ok(()),
        "Unconfined" => {
            opts.push("seccomp=unconfined".into());
            Ok(())
        }
        "Localhost" => Err(FieldError::new(
            format!("{path}.type"),
            "Unsupported: Localhost seccomp profiles are not supported by podvisor",
        )),
        other => Err(FieldError::new(
            format!("{path}.type"),
            format!(
                "Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
            ),
        )),
    }
}

fn apparmor(
    profile: &AppArmorProfile,
    path: &str,
    opts: &mut Vec<String>,
) -> Result<(), FieldError> {
    match profile.type_.as_str() {
        "RuntimeDefault" => Ok(()),
        "Unconfined" => {
            opts.push("apparmor=unconfined".into());
            Ok(())
        }
        "Localhost" => match profile.localhost_profile.as_deref().filter(|p| !p.is_empty()) {
            Some(name) => {
                opts.push(format!("apparmor={name}"));
                Ok(())
            }
            None => Err(FieldError::new(format!("{path}.localhostProfile"), "Required value")),
        },
        other => Err(FieldError::new(
            format!("{path}.type"),
            format!(
                "Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
            ),
        )),
    }
}

fn selinux(options: &SELinuxOptions, opts: &mut Vec<String>) {
    let parts = [
        ("user", &options.user),
        ("role", &options.role),
        ("type", &options.type_),
        ("level", &options.level),
    ];
    for (key, value) in parts {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            opts.push(format!("label={key}:{v}"));
        }
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
        if p.sysctls.as_ref().is_some_and(|s| !s.is_empty()) {
            let msg = "Unsupported: sysctls are not supported by podvisor";
            return Err(FieldError::new(format!("{PP}.sysctls"), msg));
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
    let cap_add = capabilities(
        caps.and_then(|c| c.add.as_ref()),
        &format!("{cp}.capabilities.add"),
    )?;
    let cap_drop = capabilities(
        caps.and_then(|c| c.drop.as_ref()),
        &format!("{cp}.capabilities.drop"),
    )?;

    let mut security_opt = Vec::new();
    if sc.and_then(|s| s.allow_privilege_escalation) == Some(false) {
        let p = format!("{cp}.allowPrivilegeEscalation");
        if privileged {
            let msg = "Invalid value: false: cannot set `allowPrivilegeEscalation` to false and `privileged` to true";
            return Err(FieldError::new(p, msg));
        }
        if cap_add
            .iter()
            .any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN")
        {
            let msg = "Invalid value: false: cannot set `allowPrivilegeEscalation` to false and \
                       `capabilities.Add` CAP_SYS_ADMIN";
            return Err(FieldError::new(p, msg));
        }
        security_opt.push("no-new-privileges".to_string());
    }
    match (
        sc.and_then(|s| s.seccomp_profile.as_ref()),
        pod_sc.and_then(|p| p.seccomp_profile.as_ref()),
    ) {
        (Some(profile), _) => seccomp(profile, &format!("{cp}.seccompProfile"), &mut security_opt)?,
        (None, Some(profile)) => {
            seccomp(profile, &format!("{PP}.seccompProfile"), &mut security_opt)?
        }
        (None, None) => {}
    }
    match (
        sc.and_then(|s| s.app_armor_profile.as_ref()),
        pod_sc.and_then(|p| p.app_armor_profile.as_ref()),
    ) {
        (Some(profile), _) => {
            apparmor(profile, &format!("{cp}.appArmorProfile"), &mut security_opt)?
        }
        (None, Some(profile)) => {
            apparmor(profile, &format!("{PP}.appArmorProfile"), &mut security_opt)?
        }
        (None, None) => {}
    }
    if let Some(options) = sc
        .and_then(|s| s.se_linux_options.as_ref())
        .or(pod_sc.and_then(|p| p.se_linux_options.as_ref()))
    {
        selinux(options, &mut security_opt);
    }
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
        security_opt,
    })
}

/// The kubelet's `runAsNonRoot` verification, once the image's configured
/// user (`image_user`, Docker's `Config.User`: `name|uid[:group|gid]`) is
/// known. Nothing to check without `runAsNonRoot`. With it: a `runAsUser` of
/// 0 is refused, any other `runAsUser` passes; without one, the image's user
/// must be a non-zero numeric UID (an empty user, `0` or `root` runs as root;
/// another name cannot be verified). `pod` names the pod in the message.
pub fn check_non_root(
    sec: &Security,
    image_user: &str,
    pod: &str,
    container: &str,
) -> Result<(), String> {
    if !sec.run_as_non_root {
        return Ok(());
    }
    if let Some(uid) = sec.run_as_user {
        if uid == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})"
            ));
        }
        return Ok(());
    }
    let user = image_user.split(':').next().unwrap_or_default();
    let root = || {
        format!("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")
    };
    match user {
        "" | "root" => Err(root()),
        u if u.bytes().all(|b| b.is_ascii_digit()) => match u.parse::<u64>() {
            Ok(0) => Err(root()),
            _ => Ok(()),
        },
        name => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify user is \
             non-root (pod: {pod:?}, container: {container})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Capabilities, PodSecurityContext, PodSpec, SecurityContext, Sysctl,
    };

    fn pod(sc: Option<PodSecurityContext>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                security_context: sc,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn container(sc: Option<SecurityContext>) -> Container {
        Container {
            name: "app".into(),
            security_context: sc,
            ..Default::default()
        }
    }

    const P: &str = "spec.containers[0]";

    fn sec(pod_sc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> Security {
        container_security(&pod(pod_sc), &container(sc), P, false).unwrap()
    }

    fn err(pod_sc: Option<PodSecurityContext>, sc: Option<SecurityContext>) -> String {
        container_security(&pod(pod_sc), &container(sc), P, false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn nothing_set_is_the_image_default() {
        assert_eq!(sec(None, None), Security::default());
        let no_spec = Pod::default();
        assert_eq!(
            container_security(&no_spec, &container(None), P, false).unwrap(),
            Security::default()
        );
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
    fn flags_and_capabilities() {
        let s = sec(
            None,
            Some(SecurityContext {
                read_only_root_filesystem: Some(true),
                capabilities: Some(Capabilities {
                    add: Some(vec![
                        "NET_ADMIN".into(),
                        "cap_sys_time".into(),
                        "net_admin".into(),
                    ]),
                    drop: Some(vec!["ALL".into()]),
                }),
                ..Default::default()
            }),
        );
        assert!(s.read_only_rootfs);
        assert!(!s.privileged);
        assert_eq!(s.cap_add, vec!["NET_ADMIN", "CAP_SYS_TIME"]);
        assert_eq!(s.cap_drop, vec!["ALL"]);
    }

    #[test]
    fn malformed_capability_names_the_entry() {
        let e = err(
            None,
            Some(SecurityContext {
                capabilities: Some(Capabilities {
                    drop: Some(vec!["KILL".into(), "NET ADMIN".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
        assert!(
            e.starts_with("spec.containers[0].securityContext.capabilities.drop[1]: Invalid value: \"NET ADMIN\""),
            "{e}"
        );
    }

    fn privileged() -> Option<SecurityContext> {
        Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        })
    }

    #[test]
    fn privileged_needs_the_cluster_policy() {
        assert_eq!(
            err(None, privileged()),
            "spec.containers[0].securityContext.privileged: Forbidden: disallowed by cluster policy"
        );
        let s = container_security(&pod(None), &container(privileged()), P, true).unwrap();
        assert!(s.privileged);
        let e = container_security(
            &pod(None),
            &container(privileged()),
            "spec.initContainers[1]",
            false,
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
        assert!(container_security(&p, &container(None), P, false).is_ok());
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
    fn no_privilege_escalation() {
        let s = sec(
            None,
            Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                ..Default::default()
            }),
        );
        assert_eq!(s.security_opt, vec!["no-new-privileges"]);
        let s = sec(
            None,
            Some(SecurityContext {
                allow_privilege_escalation: Some(true),
                ..Default::default()
            }),
        );
        assert!(s.security_opt.is_empty());
        let both = SecurityContext {
            allow_privilege_escalation: Some(false),
            privileged: Some(true),
            ..Default::default()
        };
        let e = container_security(&pod(None), &container(Some(both)), P, true).unwrap_err();
        assert_eq!(
            e.path,
            "spec.containers[0].securityContext.allowPrivilegeEscalation"
        );
        let sys_admin = SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                add: Some(vec!["sys_admin".into()]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(err(None, Some(sys_admin)).contains("CAP_SYS_ADMIN"));
    }

    fn seccomp_profile(t: &str) -> Option<SeccompProfile> {
        Some(SeccompProfile {
            type_: t.into(),
            ..Default::default()
        })
    }

    #[test]
    fn seccomp_profiles() {
        let pod_level = |t: &str| PodSecurityContext {
            seccomp_profile: seccomp_profile(t),
            ..Default::default()
        };
        assert!(sec(Some(pod_level("RuntimeDefault")), None)
            .security_opt
            .is_empty());
        assert_eq!(
            sec(Some(pod_level("Unconfined")), None).security_opt,
            vec!["seccomp=unconfined"]
        );
        // The container's profile wins.
        let c = SecurityContext {
            seccomp_profile: seccomp_profile("RuntimeDefault"),
            ..Default::default()
        };
        assert!(sec(Some(pod_level("Unconfined")), Some(c))
            .security_opt
            .is_empty());
        assert_eq!(
            err(Some(pod_level("Localhost")), None),
            "spec.securityContext.seccompProfile.type: Unsupported: Localhost seccomp profiles are not supported by podvisor"
        );
        let c = SecurityContext {
            seccomp_profile: seccomp_profile("Bogus"),
            ..Default::default()
        };
        assert!(err(None, Some(c)).starts_with(
            "spec.containers[0].securityContext.seccompProfile.type: Unsupported value"
        ));
    }

    #[test]
    fn apparmor_and_selinux() {
        let c = SecurityContext {
            app_armor_profile: Some(AppArmorProfile {
                type_: "Localhost".into(),
                localhost_profile: Some("k8s-nginx".into()),
            }),
            se_linux_options: Some(SELinuxOptions {
                level: Some("s0:c123,c456".into()),
                type_: Some("spc_t".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            sec(None, Some(c)).security_opt,
            vec![
                "apparmor=k8s-nginx",
                "label=type:spc_t",
                "label=level:s0:c123,c456"
            ]
        );
        let p = PodSecurityContext {
            app_armor_profile: Some(AppArmorProfile {
                type_: "Unconfined".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(sec(Some(p), None).security_opt, vec!["apparmor=unconfined"]);
        let c = SecurityContext {
            app_armor_profile: Some(AppArmorProfile {
                type_: "Localhost".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            err(None, Some(c)),
            "spec.containers[0].securityContext.appArmorProfile.localhostProfile: Required value"
        );
    }

    #[test]
    fn unmasked_proc_and_sysctls_are_refused() {
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
        let p = PodSecurityContext {
            sysctls: Some(vec![Sysctl {
                name: "net.core.somaxconn".into(),
                value: "1024".into(),
            }]),
            ..Default::default()
        };
        assert_eq!(
            err(Some(p), None),
            "spec.securityContext.sysctls: Unsupported: sysctls are not supported by podvisor"
        );
    }

    fn non_root(run_as_user: Option<i64>) -> Security {
        Security {
            run_as_non_root: true,
            run_as_user,
            ..Default::default()
        }
    }

    #[test]
    fn non_root_with_run_as_user() {
        assert_eq!(
            check_non_root(&non_root(Some(0)), "1000", "web", "app"),
            Err(
                "container's runAsUser breaks non-root policy (pod: \"web\", container: app)"
                    .into()
            )
        );
        assert_eq!(
            check_non_root(&non_root(Some(1000)), "root", "web", "app"),
            Ok(())
        );
        assert_eq!(
            check_non_root(&non_root(Some(1000)), "", "web", "app"),
            Ok(())
        );
    }

    #[test]
    fn non_root_from_the_image_user() {
        let root = Err(
            "container has runAsNonRoot and image will run as root (pod: \"web\", container: app)"
                .to_string(),
        );
        let s = non_root(None);
        for user in ["", "0", "root", "0:0", "root:root", "00", "0:1000"] {
            assert_eq!(check_non_root(&s, user, "web", "app"), root, "{user:?}");
        }
        for user in ["1000", "1000:0", "65534:65534", "1"] {
            assert_eq!(check_non_root(&s, user, "web", "app"), Ok(()), "{user:?}");
        }
        assert_eq!(
            check_non_root(&s, "nobody", "web", "app"),
            Err("container has runAsNonRoot and image has non-numeric user (nobody), cannot verify user is non-root (pod: \"web\", container: app)".into())
        );
        assert!(check_non_root(&s, "nginx:101", "web", "app")
            .unwrap_err()
            .contains("(nginx)"));
    }

    #[test]
    fn without_run_as_non_root_anything_goes() {
        let s = Security {
            run_as_user: Some(0),
            ..Default::default()
        };
        assert_eq!(check_non_root(&s, "", "web", "app"), Ok(()));
        assert_eq!(
            check_non_root(&Security::default(), "root", "web", "app"),
            Ok(())
        );
    }
}
