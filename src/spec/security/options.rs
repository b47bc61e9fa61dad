//! The engine's capability lists and `--security-opt` values:
//! `no-new-privileges`, seccomp, AppArmor and SELinux.

use k8s_openapi::api::core::v1::{
    AppArmorProfile, PodSecurityContext, SELinuxOptions, SeccompProfile, SecurityContext,
};

use crate::manifest::FieldError;

const PP: &str = "spec.securityContext";

/// A `capabilities.add` or `.drop` list, uppercased, each once; `path`
/// names the list.
pub(super) fn capabilities(
    list: Option<&Vec<String>>,
    path: &str,
) -> Result<Vec<String>, FieldError> {
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

/// Docker's `--security-opt` values for the container: `no-new-privileges`
/// for `allowPrivilegeEscalation: false` (refused with `privileged` or
/// `CAP_SYS_ADMIN` in `cap_add`), then the seccomp, AppArmor and SELinux
/// settings, the container's overriding the pod's. `cp` is the container's
/// `securityContext` field path.
pub(super) fn security_opt(
    pod_sc: Option<&PodSecurityContext>,
    sc: Option<&SecurityContext>,
    cp: &str,
    privileged: bool,
    cap_add: &[String],
) -> Result<Vec<String>, FieldError> {
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
    Ok(security_opt)
}

#[cfg(test)]
mod tests {
    use super::super::container_security;
    use super::super::tests::*;

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
}
