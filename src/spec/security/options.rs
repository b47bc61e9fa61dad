//! The engine's capability lists and `--security-opt` values:
//! `no-new-privileges`, seccomp, AppArmor and SELinux.

use k8s_openapi::api::core::v1::{
    PodSecurityContext, SELinuxOptions, SeccompProfile, SecurityContext,
};

use super::NodeSecurity;
use crate::manifest::FieldError;

/// Docker's `--security-opt` values and the Localhost seccomp profile
/// file (whose content the engine is given).
#[derive(Debug, Default)]
pub(super) struct SecurityOpts {
    pub security_opt: Vec<String>,
    pub seccomp_profile_file: Option<std::path::PathBuf>,
}

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

fn seccomp(
    profile: &SeccompProfile,
    path: &str,
    node: &NodeSecurity,
    opts: &mut SecurityOpts,
) -> Result<(), FieldError> {
    match profile.type_.as_str() {
        // Docker applies its default profile unless told otherwise.
        "RuntimeDefault" => Ok(()),
        "Unconfined" => {
            opts.security_opt.push("seccomp=unconfined".into());
            Ok(())
        }
        "Localhost" => {
            let Some(name) = profile.localhost_profile.as_deref().filter(|p| !p.is_empty()) else {
                return Err(FieldError::new(format!("{path}.localhostProfile"), "Required value"));
            };
            let relative = std::path::Path::new(name);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(FieldError::new(
                    format!("{path}.localhostProfile"),
                    format!("Invalid value: {name:?}: must be a relative path without '..'"),
                ));
            }
            opts.seccomp_profile_file = Some(node.seccomp_dir.join(relative));
            Ok(())
        }
        other => Err(FieldError::new(
            format!("{path}.type"),
            format!(
                "Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
            ),
        )),
    }
}

/// The seccomp settings: the container's profile, else the pod's, else
/// the kubelet's default: `Unconfined`, or the engine's default profile
/// with `--seccomp-default`. `cp` is the container's `securityContext`
/// path.
pub(super) fn seccomp_for(
    container: Option<&SeccompProfile>,
    pod: Option<&SeccompProfile>,
    cp: &str,
    node: &NodeSecurity,
    opts: &mut SecurityOpts,
) -> Result<(), FieldError> {
    match (container, pod) {
        (Some(profile), _) => seccomp(profile, &format!("{cp}.seccompProfile"), node, opts),
        (None, Some(profile)) => seccomp(profile, &format!("{PP}.seccompProfile"), node, opts),
        (None, None) if node.seccomp_default => Ok(()),
        (None, None) => {
            opts.security_opt.push("seccomp=unconfined".into());
            Ok(())
        }
    }
}

/// An AppArmor request (`type`, `localhostProfile`, named at `path`) as
/// Docker's option. Nothing on an engine without AppArmor: admission
/// refuses any profile but `Unconfined` there.
fn apparmor(
    (path, type_, localhost_profile): (String, String, Option<String>),
    node: &NodeSecurity,
    opts: &mut Vec<String>,
) -> Result<(), FieldError> {
    let opt = match type_.as_str() {
        "RuntimeDefault" => None,
        "Unconfined" => Some("apparmor=unconfined".to_string()),
        "Localhost" => match localhost_profile.as_deref().filter(|p| !p.is_empty()) {
            Some(name) => Some(format!("apparmor={name}")),
            None => {
                return Err(FieldError::new(
                    format!("{path}.localhostProfile"),
                    "Required value",
                ))
            }
        },
        other => {
            // The annotation's value is the field; the field's type is `.type`.
            let field = if path.starts_with("metadata.") {
                path
            } else {
                format!("{path}.type")
            };
            let msg = format!(
                "Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
            );
            return Err(FieldError::new(field, msg));
        }
    };
    if node.apparmor {
        opts.extend(opt);
    }
    Ok(())
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
/// `securityContext` field path; `apparmor` its AppArmor request (field,
/// legacy annotation or the pod's).
pub(super) fn security_opt(
    pod_sc: Option<&PodSecurityContext>,
    sc: Option<&SecurityContext>,
    cp: &str,
    privileged: bool,
    cap_add: &[String],
    apparmor_request: Option<(String, String, Option<String>)>,
    node: &NodeSecurity,
) -> Result<SecurityOpts, FieldError> {
    let mut opts = SecurityOpts::default();
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
        opts.security_opt.push("no-new-privileges".to_string());
    }
    seccomp_for(
        sc.and_then(|s| s.seccomp_profile.as_ref()),
        pod_sc.and_then(|p| p.seccomp_profile.as_ref()),
        cp,
        node,
        &mut opts,
    )?;
    if let Some(request) = apparmor_request {
        apparmor(request, node, &mut opts.security_opt)?;
    }
    if let Some(options) = sc
        .and_then(|s| s.se_linux_options.as_ref())
        .or(pod_sc.and_then(|p| p.se_linux_options.as_ref()))
    {
        if node.selinux {
            selinux(options, &mut opts.security_opt);
        }
    }
    Ok(opts)
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
        let e =
            container_security(&pod(None), &container(Some(both)), P, true, &node()).unwrap_err();
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
            "spec.securityContext.seccompProfile.localhostProfile: Required value"
        );
        let local = PodSecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Localhost".into(),
                localhost_profile: Some("profiles/audit.json".into()),
            }),
            ..Default::default()
        };
        let s = sec(Some(local), None);
        assert!(s.security_opt.is_empty());
        assert_eq!(
            s.seccomp_profile_file,
            Some(node().seccomp_dir.join("profiles/audit.json"))
        );
        let escape = SecurityContext {
            seccomp_profile: Some(SeccompProfile {
                type_: "Localhost".into(),
                localhost_profile: Some("../etc/x.json".into()),
            }),
            ..Default::default()
        };
        assert!(err(None, Some(escape)).starts_with(
            "spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value"
        ));
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
