//! Validation of a defaulted Pod, as the API server (v1.32: `ValidatePodCreate`,
//! `ValidatePodSpec`, `validateContainers`, ...) does it, before any container
//! exists: the first problem, at its field path, in Kubernetes' wording. Policies
//! are parsed here (and refused when unknown); nothing downstream reads their
//! strings again. A value left at 0 or unset stands for the API server's default
//! (podvisor does not write the probe defaults into the pod, so hashes keep).
//!
//! # Checklist
//!
//! Each rule has its test, in the file named.
//!
//! `meta`:
//! - [x] metadata.name: required, DNS-1123 subdomain (≤ 253); generateName ignored
//! - [x] metadata.namespace: DNS-1123 label (≤ 63)
//! - [x] metadata.labels: keys are qualified names (`[prefix/]name`, name ≤ 63,
//!   `[A-Za-z0-9._-]`, prefix a DNS subdomain), values label values (≤ 63, same set)
//! - [x] metadata.annotations: keys qualified names (any case), total ≤ 256 KiB
//!
//! `containers`:
//! - [x] containers required; names required, DNS-1123 labels (≤ 63), unique across
//!   containers and init containers
//! - [x] image required, without leading or trailing whitespace
//! - [x] imagePullPolicy: Always, IfNotPresent, Never
//! - [x] terminationMessagePolicy: File, FallbackToLogsOnError
//! - [x] restartPolicy: forbidden on containers, only `Always` on init containers
//! - [x] init containers without restartPolicy=Always: no lifecycle, no probes
//! - [x] ephemeralContainers: cannot be set on create
//! - [x] securityContext.runAsUser/runAsGroup: 0..=2147483647; procMount Default or
//!   Unmasked; allowPrivilegeEscalation=false excludes privileged and CAP_SYS_ADMIN
//!
//! `ports`:
//! - [x] containerPort 1–65535; hostPort 0–65535; protocol TCP, UDP, SCTP
//! - [x] port names IANA_SVC_NAME, unique per container
//! - [x] (protocol, hostIP, hostPort) unique among containers (and among init
//!   containers): `Duplicate value: "TCP//8080"`
//! - [x] hostNetwork: hostPort == containerPort (or 0, defaulted to it)
//!
//! `env`:
//! - [x] env names: 1.32's relaxed rule, printable ASCII but `=`
//! - [x] value and valueFrom exclusive; valueFrom has exactly one source
//! - [x] fieldRef: apiVersion v1, the downward API's env paths, subscripts of
//!   labels/annotations only, valid keys
//! - [x] resourceFieldRef: limits/requests of cpu, memory, ephemeral-storage,
//!   hugepages-*; divisors 1m/1 (cpu), 1…1E/1Ki…1Ei (others)
//! - [x] configMapKeyRef/secretKeyRef: name a DNS subdomain, key a config key
//! - [x] envFrom: exactly one of configMapRef/secretRef, named; prefix a valid env name
//!
//! `resources`:
//! - [x] quantities parse (Kubernetes' format), are ≥ 0, integers for extended resources
//! - [x] names: cpu, memory, ephemeral-storage, hugepages-*, or domain/name
//! - [x] requests ≤ limits; equal (and limits required) for extended resources
//!
//! `volumes`:
//! - [x] volume names: required, DNS-1123 labels, unique
//! - [x] exactly one volume source
//! - [x] hostPath path required, type known; emptyDir sizeLimit ≥ 0; secret
//!   secretName / configMap name / persistentVolumeClaim claimName required; modes
//!   0–0777; item paths relative, without `..`
//! - [x] volumeMounts: name a volume of the pod, mountPath required and unique,
//!   absolute (podvisor: Docker needs it; the API server leaves it to the node)
//! - [x] subPath / subPathExpr: exclusive, relative, without `..`
//! - [x] mountPropagation: None, HostToContainer, Bidirectional (privileged only)
//!
//! `probes`:
//! - [x] probes and hooks: exactly one handler
//! - [x] initialDelaySeconds, timeoutSeconds, periodSeconds, successThreshold,
//!   failureThreshold ≥ 0 (0 = default)
//! - [x] successThreshold 1 for liveness and startup probes
//! - [x] probe terminationGracePeriodSeconds > 0, not on readiness probes
//! - [x] exec.command required; httpGet port number or name, scheme HTTP/HTTPS,
//!   header names; tcpSocket port; grpc port 1–65535
//! - [x] sleep hook: 0 < seconds ≤ terminationGracePeriodSeconds
//!
//! `pod`:
//! - [x] restartPolicy: Always, OnFailure, Never
//! - [x] terminationGracePeriodSeconds ≥ 0; activeDeadlineSeconds 1–4294967295
//! - [x] dnsPolicy: ClusterFirst, ClusterFirstWithHostNet, Default, None; None needs
//!   dnsConfig with nameservers; ≤ 3 nameservers, IPs; ≤ 32 searches, subdomains;
//!   option names
//! - [x] hostname, subdomain: DNS-1123 labels
//! - [x] nodeSelector: labels; serviceAccountName: DNS subdomain
//! - [x] securityContext: runAsUser, runAsGroup, fsGroup, supplementalGroups
//!   0..=2147483647; fsGroupChangePolicy; sysctls names valid and unique
//! - [x] shareProcessNamespace excludes hostPID
//! - [x] hostAliases: IPs and hostnames
//!
//! Not checked (podvisor does not use them, or a node has no use for them):
//! affinity, tolerations, topologySpreadConstraints, priority/priorityClassName,
//! overhead, readinessGates, resourceClaims, schedulingGates, os, volumeDevices,
//! resizePolicy, seccomp/AppArmor/SELinux profiles, the fields of the other volume
//! sources (nfs, csi, projected, ...), ownerReferences.

mod containers;
mod env;
mod meta;
mod pod;
mod ports;
mod probes;
mod resources;
mod volumes;

use k8s_openapi::api::core::v1::Pod;

use super::FieldError;

/// The result of a check: the first problem found.
type Check = Result<(), FieldError>;

/// `value` ≥ 0 (`ValidateNonnegativeField`).
fn nonnegative(value: Option<i64>, path: impl FnOnce() -> String) -> Check {
    match value {
        Some(v) if v < 0 => Err(FieldError::invalid(
            path(),
            v,
            "must be greater than or equal to 0",
        )),
        _ => Ok(()),
    }
}

/// Validates `pod` as the API server would at creation; returns the first problem.
/// Expects [`apply_defaults`](super::apply_defaults) to have run (absent defaulted
/// fields pass).
pub fn validate_pod(pod: &Pod) -> Result<(), FieldError> {
    meta::validate_metadata(&pod.metadata)?;
    let Some(spec) = pod.spec.as_ref() else {
        return Err(FieldError::required("spec"));
    };
    if spec.containers.is_empty() {
        return Err(FieldError::required("spec.containers"));
    }
    volumes::validate_volumes(spec)?;
    containers::validate_containers(spec)?;
    ports::validate_host_ports(spec)?;
    pod::validate_pod_fields(spec)
}

#[cfg(test)]
mod tests {
    use super::super::field_error::is_iana_svc_name;
    use super::*;
    use crate::manifest::test_support::*;
    use k8s_openapi::api::core::v1::ContainerPort;

    #[test]
    fn missing_image() {
        let err = parse_err("x.yaml", &WEB.replace("    image: nginx:1.27\n", ""));
        assert_eq!(
            err,
            "x.yaml: document 0: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn blank_image() {
        let err = parse_err("x.yaml", &WEB.replace("nginx:1.27", "\"  \""));
        assert_eq!(
            err,
            "x.yaml: document 0: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn duplicate_container_name() {
        let content = pod_yaml("web", "  - name: app\n    image: busybox\n");
        let err = parse_err("web.yaml", &content);
        assert_eq!(
            err,
            r#"web.yaml: document 0: spec.containers[1].name: Duplicate value: "app""#
        );
    }

    #[test]
    fn init_container_name_clashing_with_app_container() {
        let content = format!("{WEB}  initContainers:\n  - name: app\n    image: busybox\n");
        let err = parse_err("web.yaml", &content);
        assert_eq!(
            err,
            r#"web.yaml: document 0: spec.initContainers[0].name: Duplicate value: "app""#
        );
    }

    #[test]
    fn bad_restart_policy() {
        let err = parse_err("r.yaml", &format!("{WEB}  restartPolicy: Sometimes\n"));
        assert_eq!(
            err,
            "r.yaml: document 0: spec.restartPolicy: Unsupported value: \"Sometimes\": \
             supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn bad_pull_policy() {
        let err = parse_err(
            "p.yaml",
            &pod_yaml("web", "    imagePullPolicy: Sometimes\n"),
        );
        assert!(
            err.starts_with("p.yaml: document 0: spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\""),
            "{err}"
        );
    }

    #[test]
    fn pod_names() {
        for (name, path) in [("Web", "metadata.name"), ("web_1", "metadata.name")] {
            let err = validate_msg(&pod_with(|p| p.metadata.name = Some(name.into())));
            assert!(
                err.starts_with(&format!("{path}: Invalid value: {name:?}: ")),
                "{err}"
            );
        }
        let err = validate_msg(&pod_with(|p| p.metadata.name = None));
        assert_eq!(err, "metadata.name: Required value");
        let err = validate_msg(&pod_with(|p| p.metadata.name = Some(String::new())));
        assert_eq!(err, "metadata.name: Required value");
        assert!(validate_pod(&pod_with(|p| p.metadata.name = Some("web.v2-a".into()))).is_ok());
    }

    #[test]
    fn namespace_must_be_a_label() {
        let err = validate_msg(&pod_with(|p| p.metadata.namespace = Some("my.ns".into())));
        assert!(
            err.starts_with("metadata.namespace: Invalid value: \"my.ns\""),
            "{err}"
        );
    }

    #[test]
    fn container_names_must_be_labels() {
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = "App".into()));
        assert!(
            err.starts_with("spec.containers[0].name: Invalid value: \"App\""),
            "{err}"
        );
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = String::new()));
        assert_eq!(err, "spec.containers[0].name: Required value");
    }

    #[test]
    fn containers_are_required() {
        let err = validate_msg(&pod_with(|p| spec(p).containers.clear()));
        assert_eq!(err, "spec.containers: Required value");
        assert_eq!(
            validate_msg(&pod_with(|p| p.spec = None)),
            "spec: Required value"
        );
    }

    /// Validates a pod whose only container has one port, changed by `f`.
    fn validate_port(f: impl FnOnce(&mut ContainerPort)) -> Result<(), FieldError> {
        let mut port = ContainerPort {
            container_port: 80,
            ..Default::default()
        };
        f(&mut port);
        validate_pod(&pod_with(|p| {
            spec(p).containers[0].ports = Some(vec![port])
        }))
    }

    #[test]
    fn ports_are_validated() {
        type Tweak = fn(&mut ContainerPort);
        let path = "spec.containers[0].ports[0]";
        let err = |f: Tweak| validate_port(f).expect_err("invalid").to_string();
        assert_eq!(
            err(|p| p.container_port = 0),
            format!(
                "{path}.containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"
            )
        );
        let cases: [(Tweak, &str); 5] = [
            (
                |p| p.container_port = 65536,
                "containerPort: Invalid value: 65536",
            ),
            (|p| p.host_port = Some(-1), "hostPort: Invalid value: -1"),
            (
                |p| p.protocol = Some("tcp".into()),
                "protocol: Unsupported value: \"tcp\"",
            ),
            (
                |p| p.name = Some("Http".into()),
                "name: Invalid value: \"Http\"",
            ),
            (
                |p| p.name = Some("a-very-long-port".into()),
                "name: Invalid value",
            ),
        ];
        for (f, expected) in cases {
            let err = err(f);
            assert!(err.starts_with(&format!("{path}.{expected}")), "{err}");
        }
    }

    #[test]
    fn good_ports_pass() {
        assert_eq!(validate_port(|_| {}), Ok(()));
        assert_eq!(validate_port(|p| p.host_port = Some(0)), Ok(()));
        assert_eq!(validate_port(|p| p.protocol = Some("SCTP".into())), Ok(()));
        for name in ["http", "web-8080", "h2c", "a23456789012345"] {
            assert_eq!(
                validate_port(|p| p.name = Some(name.into())),
                Ok(()),
                "{name}"
            );
        }
        for bad in ["80", "-http", "http-", "ht--tp", "a234567890123456"] {
            assert!(!is_iana_svc_name(bad), "{bad}");
        }
    }

    #[test]
    fn negative_grace_period() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).termination_grace_period_seconds = Some(-1)
        }));
        assert!(
            err.starts_with("spec.terminationGracePeriodSeconds: Invalid value: -1"),
            "{err}"
        );
    }
}
