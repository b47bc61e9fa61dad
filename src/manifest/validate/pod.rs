//! The pod's own fields: policies, deadlines, host and DNS names, the pod
//! security context and its sysctls, host aliases.

use std::collections::HashSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{PodSecurityContext, PodSpec};

use super::super::field_error::{
    is_dns1123_label, is_dns1123_subdomain, DNS1123_LABEL_MSG, DNS1123_SUBDOMAIN_MSG,
};
use super::containers::validate_id;
use super::meta::validate_labels;
use super::{Check, FieldError};
use crate::model::RestartPolicy;

const DNS_POLICIES: &[&str] = &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"];
const SYSCTL_MSG: &str = "must have at most 253 characters and match regex \
    ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$";
const IP_MSG: &str = "must be a valid IP address";

pub(super) fn validate_pod_fields(spec: &PodSpec) -> Check {
    if let Some(policy) = spec.restart_policy.as_deref() {
        if policy.parse::<RestartPolicy>().is_err() {
            let path = "spec.restartPolicy";
            let names = RestartPolicy::names();
            return Err(FieldError::unsupported(path, policy, &names));
        }
    }
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        let path = "spec.terminationGracePeriodSeconds";
        let msg = "must be greater than or equal to 0";
        return Err(FieldError::invalid(path, grace, msg));
    }
    if let Some(deadline) = spec.active_deadline_seconds {
        if !(1..=i64::from(u32::MAX)).contains(&deadline) {
            let path = "spec.activeDeadlineSeconds";
            let msg = "must be between 1 and 4294967295, inclusive";
            return Err(FieldError::invalid(path, deadline, msg));
        }
    }
    validate_dns(spec)?;
    for (field, name) in [("hostname", &spec.hostname), ("subdomain", &spec.subdomain)] {
        if let Some(name) = name.as_deref().filter(|n| !n.is_empty()) {
            if !is_dns1123_label(name) {
                let path = format!("spec.{field}");
                return Err(FieldError::invalid(path, name, DNS1123_LABEL_MSG));
            }
        }
    }
    validate_labels(spec.node_selector.as_ref(), "spec.nodeSelector")?;
    if let Some(sa) = spec
        .service_account_name
        .as_deref()
        .filter(|n| !n.is_empty())
    {
        if !is_dns1123_subdomain(sa) {
            let path = "spec.serviceAccountName";
            return Err(FieldError::invalid(path, sa, DNS1123_SUBDOMAIN_MSG));
        }
    }
    if let Some(sc) = &spec.security_context {
        validate_security_context(sc)?;
    }
    if spec.share_process_namespace == Some(true) && spec.host_pid == Some(true) {
        let path = "spec.shareProcessNamespace";
        let msg = "ShareProcessNamespace and HostPID cannot both be enabled";
        return Err(FieldError::invalid(path, true, msg));
    }
    for (i, alias) in spec.host_aliases.iter().flatten().enumerate() {
        let path = format!("spec.hostAliases[{i}]");
        if alias.ip.parse::<IpAddr>().is_err() {
            return Err(FieldError::invalid(format!("{path}.ip"), &alias.ip, IP_MSG));
        }
        for (j, host) in alias.hostnames.iter().flatten().enumerate() {
            if !is_dns1123_subdomain(host) {
                let p = format!("{path}.hostnames[{j}]");
                return Err(FieldError::invalid(p, host, DNS1123_SUBDOMAIN_MSG));
            }
        }
    }
    Ok(())
}

fn validate_dns(spec: &PodSpec) -> Check {
    let policy = spec.dns_policy.as_deref().unwrap_or_default();
    if !policy.is_empty() && !DNS_POLICIES.contains(&policy) {
        return Err(FieldError::unsupported(
            "spec.dnsPolicy",
            policy,
            DNS_POLICIES,
        ));
    }
    let config = spec.dns_config.as_ref();
    let nameservers = config
        .and_then(|c| c.nameservers.as_deref())
        .unwrap_or_default();
    let path = "spec.dnsConfig";
    if policy == "None" {
        let Some(_) = config else {
            let msg = "must provide `dnsConfig` when `dnsPolicy` is None";
            return Err(FieldError::required_because(path, msg));
        };
        if nameservers.is_empty() {
            let msg = "must provide at least one DNS nameserver when `dnsPolicy` is None";
            return Err(FieldError::required_because(
                format!("{path}.nameservers"),
                msg,
            ));
        }
    }
    if nameservers.len() > 3 {
        let p = format!("{path}.nameservers");
        let msg = "must not have more than 3 nameservers";
        return Err(FieldError::invalid(p, nameservers, msg));
    }
    for (i, ns) in nameservers.iter().enumerate() {
        if ns.parse::<IpAddr>().is_err() {
            let p = format!("{path}.nameservers[{i}]");
            return Err(FieldError::invalid(p, ns, IP_MSG));
        }
    }
    let searches = config
        .and_then(|c| c.searches.as_deref())
        .unwrap_or_default();
    if searches.len() > 32 {
        let p = format!("{path}.searches");
        let msg = "must not have more than 32 search paths";
        return Err(FieldError::invalid(p, searches, msg));
    }
    for (i, search) in searches.iter().enumerate() {
        let name = search.strip_suffix('.').unwrap_or(search);
        if !is_dns1123_subdomain(name) {
            let p = format!("{path}.searches[{i}]");
            return Err(FieldError::invalid(p, name, DNS1123_SUBDOMAIN_MSG));
        }
    }
    let options = config
        .and_then(|c| c.options.as_deref())
        .unwrap_or_default();
    for (i, option) in options.iter().enumerate() {
        if option.name.as_deref().is_none_or(str::is_empty) {
            return Err(FieldError::required(format!("{path}.options[{i}].name")));
        }
    }
    Ok(())
}

/// A sysctl name: `.`- or `/`-separated segments of `[a-z0-9]`, `-`, `_`,
/// alphanumeric at both ends.
fn is_sysctl_name(name: &str) -> bool {
    let segment = |s: &str| {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        s.starts_with(alnum)
            && s.ends_with(alnum)
            && s.chars().all(|c| alnum(c) || c == '-' || c == '_')
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment)
}

fn validate_security_context(sc: &PodSecurityContext) -> Check {
    let path = "spec.securityContext";
    validate_id(sc.run_as_user, || format!("{path}.runAsUser"))?;
    validate_id(sc.run_as_group, || format!("{path}.runAsGroup"))?;
    validate_id(sc.fs_group, || format!("{path}.fsGroup"))?;
    for (i, gid) in sc.supplemental_groups.iter().flatten().enumerate() {
        validate_id(Some(*gid), || format!("{path}.supplementalGroups[{i}]"))?;
    }
    if let Some(policy) = sc.fs_group_change_policy.as_deref() {
        let supported = &["OnRootMismatch", "Always"];
        if !supported.contains(&policy) {
            let p = format!("{path}.fsGroupChangePolicy");
            return Err(FieldError::unsupported(p, policy, supported));
        }
    }
    let mut names = HashSet::new();
    for (i, sysctl) in sc.sysctls.iter().flatten().enumerate() {
        let p = format!("{path}.sysctls[{i}].name");
        if sysctl.name.is_empty() {
            return Err(FieldError::required(p));
        }
        if !is_sysctl_name(&sysctl.name) {
            return Err(FieldError::invalid(p, &sysctl.name, SYSCTL_MSG));
        }
        if !names.insert(sysctl.name.replace('/', ".")) {
            return Err(FieldError::duplicate(p, &sysctl.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodSecurityContext, Sysctl};

    use super::super::validate_pod;
    use crate::manifest::test_support::*;

    fn err(f: impl FnOnce(&mut k8s_openapi::api::core::v1::PodSpec)) -> String {
        let pod = pod_with(|p| f(spec(p)));
        validate_pod(&pod)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    fn sc_err(sc: PodSecurityContext) -> String {
        err(|s| s.security_context = Some(sc))
    }

    #[test]
    fn dns_policy_values() {
        assert_eq!(err(|s| s.dns_policy = Some("Default".into())), "");
        assert_eq!(
            err(|s| s.dns_policy = Some("Google".into())),
            "spec.dnsPolicy: Unsupported value: \"Google\": supported values: \
             \"ClusterFirst\", \"ClusterFirstWithHostNet\", \"Default\", \"None\""
        );
    }

    #[test]
    fn dns_policy_none_needs_a_dns_config_with_nameservers() {
        assert_eq!(
            err(|s| s.dns_policy = Some("None".into())),
            "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
        );
        let config = |ns: &[&str]| PodDNSConfig {
            nameservers: Some(ns.iter().map(|n| n.to_string()).collect()),
            ..Default::default()
        };
        let none = |ns: &[&str]| {
            let config = config(ns);
            err(move |s| {
                s.dns_policy = Some("None".into());
                s.dns_config = Some(config);
            })
        };
        assert_eq!(none(&["10.0.0.10"]), "");
        assert!(none(&[])
            .ends_with("must provide at least one DNS nameserver when `dnsPolicy` is None"));
        assert_eq!(
            none(&["dns.local"]),
            "spec.dnsConfig.nameservers[0]: Invalid value: \"dns.local\": must be a valid IP address"
        );
        assert!(none(&["1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"])
            .ends_with("must not have more than 3 nameservers"));
    }

    #[test]
    fn active_deadline_is_at_least_1() {
        assert_eq!(
            err(|s| s.active_deadline_seconds = Some(0)),
            "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 4294967295, inclusive"
        );
        assert_eq!(err(|s| s.active_deadline_seconds = Some(1)), "");
    }

    #[test]
    fn hostname_and_subdomain_are_dns_labels() {
        assert_eq!(err(|s| s.hostname = Some("web-1".into())), "");
        assert!(err(|s| s.hostname = Some("web.local".into()))
            .starts_with("spec.hostname: Invalid value: \"web.local\""));
        assert!(err(|s| s.subdomain = Some("Sub".into()))
            .starts_with("spec.subdomain: Invalid value: \"Sub\""));
    }

    #[test]
    fn node_selector_is_labels() {
        let e = err(|s| s.node_selector = Some([("disk".into(), "s s d".into())].into()));
        assert!(
            e.starts_with("spec.nodeSelector: Invalid value: \"s s d\": a valid label"),
            "{e}"
        );
    }

    #[test]
    fn service_account_name_is_a_dns_subdomain() {
        let e = err(|s| s.service_account_name = Some("Default".into()));
        assert!(
            e.starts_with("spec.serviceAccountName: Invalid value: \"Default\""),
            "{e}"
        );
    }

    #[test]
    fn pod_user_and_group_ids_are_0_to_2147483647() {
        let e = sc_err(PodSecurityContext {
            fs_group: Some(-1),
            ..Default::default()
        });
        assert_eq!(
            e,
            "spec.securityContext.fsGroup: Invalid value: -1: must be between 0 and 2147483647, inclusive"
        );
        let e = sc_err(PodSecurityContext {
            run_as_user: Some(-5),
            ..Default::default()
        });
        assert!(
            e.starts_with("spec.securityContext.runAsUser: Invalid value: -5"),
            "{e}"
        );
        let e = sc_err(PodSecurityContext {
            supplemental_groups: Some(vec![1, -1]),
            ..Default::default()
        });
        assert!(
            e.starts_with("spec.securityContext.supplementalGroups[1]: Invalid value: -1"),
            "{e}"
        );
        let e = sc_err(PodSecurityContext {
            fs_group_change_policy: Some("Never".into()),
            ..Default::default()
        });
        assert!(
            e.starts_with("spec.securityContext.fsGroupChangePolicy: Unsupported value"),
            "{e}"
        );
    }

    #[test]
    fn sysctl_names_are_valid_and_unique() {
        let sysctls = |names: &[&str]| {
            sc_err(PodSecurityContext {
                sysctls: Some(
                    names
                        .iter()
                        .map(|n| Sysctl {
                            name: n.to_string(),
                            value: "1".into(),
                        })
                        .collect(),
                ),
                ..Default::default()
            })
        };
        assert_eq!(
            sysctls(&["net.ipv4.ip_forward", "kernel/shm_rmid_forced"]),
            ""
        );
        assert_eq!(
            sysctls(&["net..x"]),
            "spec.securityContext.sysctls[0].name: Invalid value: \"net..x\": must have at most \
             253 characters and match regex \
             ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$"
        );
        assert_eq!(
            sysctls(&["net.core.somaxconn", "net.core.somaxconn"]),
            "spec.securityContext.sysctls[1].name: Duplicate value: \"net.core.somaxconn\""
        );
        assert_eq!(
            sysctls(&[""]),
            "spec.securityContext.sysctls[0].name: Required value"
        );
    }

    #[test]
    fn share_process_namespace_excludes_host_pid() {
        let e = err(|s| {
            s.share_process_namespace = Some(true);
            s.host_pid = Some(true);
        });
        assert_eq!(
            e,
            "spec.shareProcessNamespace: Invalid value: true: \
             ShareProcessNamespace and HostPID cannot both be enabled"
        );
    }

    #[test]
    fn host_aliases_are_ips_and_hostnames() {
        let alias = |ip: &str, host: &str| {
            let alias = HostAlias {
                ip: ip.into(),
                hostnames: Some(vec![host.into()]),
            };
            err(move |s| s.host_aliases = Some(vec![alias]))
        };
        assert_eq!(alias("10.0.0.1", "db.local"), "");
        assert_eq!(
            alias("10.0.0", "db"),
            "spec.hostAliases[0].ip: Invalid value: \"10.0.0\": must be a valid IP address"
        );
        assert!(
            alias("10.0.0.1", "DB").starts_with("spec.hostAliases[0].hostnames[0]: Invalid value")
        );
    }
}
