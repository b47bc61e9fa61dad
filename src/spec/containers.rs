//! From a Pod spec to the engine's create requests: the infra container and
//! the app containers that join its namespaces. Pure functions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::decide::status::Refusal;
use crate::manifest::FieldError;
use crate::model::naming::{self, ContainerKind, ContainerName, PodLabels};
use crate::model::{PodExt, RefusalReason};
use crate::runtime::{CreateSpec, PortMapping, Resources};
use crate::spec::env::{self, EnvContext};
use crate::spec::resources::{self, NodeCapacity};
use crate::spec::security::{self, Security};
use crate::spec::volumes::VolumeRefusal;
use crate::spec::volumes::{self, PodVolumes};

/// Who the pod is, as the naming needs it.
#[derive(Debug, Clone)]
pub struct PodIdentity<'a> {
    pub pod: &'a Pod,
    pub uid: &'a str,
    pub node: &'a str,
}

/// The pod's accessors (name, namespace, host namespaces) are [`PodExt`]'s.
impl PodExt for PodIdentity<'_> {
    fn pod(&self) -> &Pod {
        self.pod
    }
}

impl PodIdentity<'_> {
    fn share_pids(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.share_process_namespace)
            .unwrap_or(false)
    }

    fn labels(&self, kind: ContainerKind, container: &str, hash: &str, restarts: u32) -> PodLabels {
        PodLabels {
            pod_name: self.name().to_string(),
            namespace: self.namespace().to_string(),
            uid: self.uid.to_string(),
            kind,
            container_name: container.to_string(),
            hash: hash.to_string(),
            restart_count: restarts,
            grace_period_secs: Some(grace_period_secs(self.pod)),
            sandbox_id: None,
        }
    }

    fn docker_name(&self, container: &str, attempt: u32) -> String {
        ContainerName {
            container: container.to_string(),
            pod: self.name().to_string(),
            namespace: self.namespace().to_string(),
            uid: self.uid.to_string(),
            attempt,
        }
        .render()
    }
}

/// The pod's `terminationGracePeriodSeconds`, 30 when unset.
pub fn grace_period_secs(pod: &Pod) -> i64 {
    pod.spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30)
        .max(0)
}

/// The pod's container ports as the infra container publishes them
/// (`host_port` set for a `hostPort`): the app containers', then the init
/// containers' (a sidecar's, chiefly: it runs beside the apps).
pub fn pod_ports(pod: &Pod) -> Vec<PortMapping> {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(PortMapping {
                container_port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                host_port: p
                    .host_port
                    .and_then(|h| u16::try_from(h).ok())
                    .filter(|h| *h > 0),
                host_ip: p.host_ip.clone().filter(|h| !h.is_empty()),
            })
        })
        .collect()
}

/// The infra container: holds the pod's network and IPC namespaces and
/// publishes every container's ports.
pub fn sandbox_spec(id: &PodIdentity<'_>, image: &str, attempt: u32, hash: &str) -> CreateSpec {
    let host_network = id.host_network();
    let ports = pod_ports(id.pod);
    CreateSpec {
        name: id.docker_name(naming::INFRA_NAME, attempt),
        image: image.to_string(),
        labels: id
            .labels(ContainerKind::Sandbox, naming::INFRA_NAME, hash, 0)
            .render(id.node),
        // Kubernetes names the pod's host after the pod (at most 63
        // chars), or `spec.hostname`; the app containers share it.
        hostname: (!host_network).then(|| super::dns::pod_hostname(id.pod)),
        ports,
        network_mode: host_network.then(|| "host".to_string()),
        ipc_mode: Some(if id.host_ipc() { "host" } else { "shareable" }.to_string()),
        pid_mode: id.host_pid().then(|| "host".to_string()),
        ..Default::default()
    }
}

/// Gives the infra container the pod's sandbox security
/// ([`security::sandbox_security`]: seccomp, OOM score -998, user-namespace
/// mode) and its sysctls. Admission checked them; a pod that slipped past
/// it is logged and its infra container created without them.
pub fn secure_sandbox(spec: &mut CreateSpec, pod: &Pod, rules: &NodeRules) {
    match security::sandbox_security(pod, &rules.security) {
        Ok(sec) => {
            spec.security_opt = sec.security_opt;
            spec.seccomp_profile_file = sec.seccomp_profile_file;
            spec.oom_score_adj = sec.oom_score_adj;
            spec.userns_mode = sec.userns_mode;
        }
        Err(e) => tracing::warn!(error = %e, "infra container security not applied"),
    }
    spec.sysctls = security::pod_sysctls(pod);
}

/// What the node decides for every pod (from the settings).
#[derive(Debug, Clone)]
pub struct NodeRules {
    pub node_name: String,
    pub host_ip: String,
    pub root_dir: PathBuf,
    pub cfs_quota: bool,
    pub allow_privileged: bool,
    pub allowed_host_paths: Vec<PathBuf>,
    /// The node's allocatable: capacity less `--system-reserved` and
    /// `--kube-reserved`.
    pub capacity: NodeCapacity,
    /// Whether a pod's `hostPort`s can be served: false with a network
    /// plugin that cannot (a CNI chain without `portmap`).
    pub host_ports: bool,
    /// The node's labels (`--node-labels` and the well-known ones the node
    /// sets itself), which `nodeSelector` and node affinity match.
    pub labels: BTreeMap<String, String>,
    /// What the engine and the machine let the node enforce (AppArmor,
    /// user namespaces, SELinux, `--seccomp-default`, the memory the OOM
    /// scores are relative to).
    pub security: security::NodeSecurity,
    /// `--cluster-dns`: the nameservers of `ClusterFirst` pods.
    pub cluster_dns: Vec<String>,
    /// `--cluster-domain`.
    pub cluster_domain: Option<String>,
    /// `--resolv-conf`: the node's resolver configuration.
    pub resolv_conf: Option<PathBuf>,
}

#[cfg(test)]
impl NodeRules {
    /// A node of 2 CPUs and 1 GiB named `n1`, with no labels, for unit
    /// tests.
    pub(crate) fn for_unit_tests() -> Self {
        NodeRules {
            node_name: "n1".into(),
            host_ip: "127.0.0.1".into(),
            root_dir: "/tmp/podvisor-unit".into(),
            cfs_quota: true,
            allow_privileged: false,
            allowed_host_paths: vec![],
            capacity: NodeCapacity {
                cpu_millis: 2000,
                memory_bytes: 1 << 30,
            },
            host_ports: true,
            labels: Default::default(),
            security: Default::default(),
            cluster_dns: vec![],
            cluster_domain: None,
            resolv_conf: None,
        }
    }
}

impl NodeRules {
    /// `<root-dir>/pods/<uid>`: the pod's volumes and termination logs.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root_dir.join("pods").join(uid)
    }
}

/// The field path of a container: `spec.containers[i]` or
/// `spec.initContainers[i]`.
pub fn container_path(pod: &Pod, name: &str) -> String {
    let spec = pod.spec.as_ref();
    let apps = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    if let Some(i) = apps.iter().position(|c| c.name == name) {
        return format!("spec.containers[{i}]");
    }
    let inits = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    let i = inits.iter().position(|c| c.name == name).unwrap_or(0);
    format!("spec.initContainers[{i}]")
}

/// A refusal named as parse errors are: the source (file and document, or
/// URL), the pod, then the reason's message.
pub fn named_refusal(r: Refusal, source: &str, pod: &Pod) -> Refusal {
    Refusal {
        message: format!(
            "{source}: pod {}/{}: {}",
            pod.namespace(),
            pod.name(),
            r.message
        ),
        ..r
    }
}

/// Decides whether the node takes the pod alone, before anything is
/// created: its resources against the node's whole allocatable (no other pod
/// counted), then [`admit_pod_alone`]'s checks. A refusal leaves the pod
/// `Failed` with the reason. What a worker judges when no Supervisor judged
/// the pod against the others ([`crate::decide::admission`]).
pub fn admit_pod(pod: &Pod, uid: &str, rules: &NodeRules) -> Result<PodVolumes, Refusal> {
    resources::admit(pod, &rules.capacity).map_err(|r| Refusal {
        reason: r.reason,
        message: r.message,
    })?;
    admit_pod_alone(pod, uid, rules)
}

/// The checks of a pod that no other pod changes: pod-level resources, the
/// volumes, host ports the network plugin cannot serve, the security policy,
/// each container's resources and mounts.
pub fn admit_pod_alone(pod: &Pod, uid: &str, rules: &NodeRules) -> Result<PodVolumes, Refusal> {
    let refuse = |reason: RefusalReason| {
        move |e: &dyn std::fmt::Display| Refusal {
            reason,
            message: e.to_string(),
        }
    };
    if let Some(r) = super::unsupported::unsupported(pod) {
        return Err(r);
    }
    super::dns::sandbox_hostname(pod, rules.cluster_domain.as_deref())
        .map_err(|e| refuse(RefusalReason::UnsupportedField)(&e))?;
    // Pod-level limits are held by a pod cgroup (the worker refuses them
    // when the engine's cgroup driver cannot take one).
    resources::pod_amounts(pod).map_err(|e| refuse(RefusalReason::InvalidResources)(&e))?;
    let vols = volumes::plan_volumes(pod, uid, &rules.root_dir, &rules.allowed_host_paths)
        .map_err(|e| match &e {
            VolumeRefusal::Unsupported(f) => refuse(RefusalReason::UnsupportedVolume)(f),
            VolumeRefusal::Invalid(f) => refuse(RefusalReason::InvalidVolume)(f),
        })?;
    security::admit_security(pod, &rules.security)?;
    security::sandbox_security(pod, &rules.security)
        .map_err(|e| refuse(RefusalReason::Forbidden)(&e))?;
    for source in vols.volumes.values() {
        if let volumes::VolumeSource::DownwardApi { items, .. } = source {
            volumes::downward_files(items, &env_context(pod, uid, rules, ""))
                .map_err(|e| refuse(RefusalReason::InvalidVolume)(&e))?;
        }
    }
    let spec = pod.spec.clone().unwrap_or_default();
    if !rules.host_ports && !spec.host_network.unwrap_or(false) {
        let lists = [
            ("containers", spec.containers.as_slice()),
            (
                "initContainers",
                spec.init_containers.as_deref().unwrap_or_default(),
            ),
        ];
        for (list, containers) in lists {
            for (i, c) in containers.iter().enumerate() {
                for (j, p) in c.ports.iter().flatten().enumerate() {
                    if p.host_port.is_some_and(|h| h > 0) {
                        return Err(Refusal {
                            reason: RefusalReason::UnsupportedHostPort,
                            message: format!(
                                "spec.{list}[{i}].ports[{j}].hostPort: the node's network plugin cannot serve host ports (a CNI chain without the portmap plugin)"
                            ),
                        });
                    }
                }
            }
        }
    }
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        let path = container_path(pod, &c.name);
        security::container_security(pod, c, &path, rules.allow_privileged, &rules.security)
            .map_err(|e| refuse(RefusalReason::Forbidden)(&e))?;
        resources::container_resources(c, &path, rules.cfs_quota)
            .map_err(|e| refuse(RefusalReason::InvalidResources)(&e))?;
        volumes::container_mounts(c, &path, &vols)
            .map_err(|e| refuse(RefusalReason::InvalidVolumeMount)(&e))?;
    }
    Ok(vols)
}

/// Everything one container needs beyond its spec, decided when it is
/// created: its environment (with `$(VAR)` expanded into command and
/// args), resources, security settings, mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    pub env: Vec<(String, String)>,
    pub command: Option<Vec<String>>,
    pub args: Option<Vec<String>>,
    pub resources: Resources,
    pub security: Security,
    /// `host:container[:ro]`, the termination log included.
    pub binds: Vec<String>,
    /// The engine user (`uid[:gid]`).
    pub user: Option<String>,
}

/// Why a container's configuration cannot be decided: its
/// `CreateContainerConfigError` message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A field of the spec (environment, resources, security, mounts).
    #[error(transparent)]
    Field(#[from] FieldError),
    /// `runAsNonRoot` against the image's user.
    #[error(transparent)]
    NonRoot(#[from] security::NonRootError),
}

/// What the downward API (environment and volumes) reads besides the pod.
pub fn env_context<'a>(
    pod: &'a Pod,
    uid: &'a str,
    rules: &'a NodeRules,
    pod_ip: &'a str,
) -> EnvContext<'a> {
    EnvContext {
        pod,
        pod_uid: uid,
        node_name: &rules.node_name,
        pod_ip,
        host_ip: &rules.host_ip,
        node_cpu_millis: rules.capacity.cpu_millis,
        node_memory_bytes: rules.capacity.memory_bytes,
        node_ephemeral_storage_bytes: i64::MAX,
    }
}

/// Decides a container's configuration; an error is the container's
/// `CreateContainerConfigError` message.
#[allow(clippy::too_many_arguments)]
pub fn configure(
    pod: &Pod,
    uid: &str,
    c: &Container,
    rules: &NodeRules,
    vols: &PodVolumes,
    pod_ip: &str,
    image_user: &str,
    termination_log: Option<&Path>,
) -> Result<ContainerConfig, ConfigError> {
    let path = container_path(pod, &c.name);
    let ctx = env_context(pod, uid, rules, pod_ip);
    let env = env::container_env(c, &path, &ctx)?;
    let resources = resources::container_resources(c, &path, rules.cfs_quota)?;
    let security =
        security::container_security(pod, c, &path, rules.allow_privileged, &rules.security)?;
    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
    security::check_non_root(&security, image_user, pod_name, &c.name)?;
    let mut binds = volumes::container_mounts(c, &path, vols)?;
    if let Some(log) = termination_log {
        let target = c
            .termination_message_path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/dev/termination-log".into());
        binds.push(format!("{}:{target}", log.display()));
    }
    Ok(ContainerConfig {
        command: c.command.as_ref().map(|l| env::expand_args(l, &env)),
        args: c.args.as_ref().map(|l| env::expand_args(l, &env)),
        user: security.docker_user(image_user),
        env,
        resources,
        security,
        binds,
    })
}

/// An app (or init) container, joining the infra container's network, IPC
/// and (with `shareProcessNamespace`) PID namespaces.
pub fn app_spec(
    id: &PodIdentity<'_>,
    container: &Container,
    attempt: u32,
    restart_count: u32,
    sandbox_id: &str,
    config: &ContainerConfig,
) -> CreateSpec {
    let mut labels = id.labels(
        ContainerKind::Container,
        &container.name,
        &naming::container_hash(container),
        restart_count,
    );
    labels.sandbox_id = Some(sandbox_id.to_string());
    let join = format!("container:{sandbox_id}");
    let sec = &config.security;
    CreateSpec {
        name: id.docker_name(&container.name, attempt),
        image: container.image.clone().unwrap_or_default(),
        entrypoint: config.command.clone(),
        cmd: config.args.clone(),
        env: config.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        labels: labels.render(id.node),
        network_mode: Some(join.clone()),
        ipc_mode: Some(if id.host_ipc() {
            "host".into()
        } else {
            join.clone()
        }),
        pid_mode: if id.host_pid() {
            Some("host".into())
        } else {
            id.share_pids().then_some(join)
        },
        user: config.user.clone(),
        group_add: sec.group_add.clone(),
        resources: config.resources.clone(),
        binds: config.binds.clone(),
        read_only_rootfs: sec.read_only_rootfs,
        privileged: sec.privileged,
        cap_add: sec.cap_add.clone(),
        cap_drop: sec.cap_drop.clone(),
        security_opt: sec.security_opt.clone(),
        oom_score_adj: sec.oom_score_adj,
        userns_mode: sec.userns_mode.clone(),
        seccomp_profile_file: sec.seccomp_profile_file.clone(),
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                termination_grace_period_seconds: Some(5),
                containers: vec![Container {
                    name: "app".into(),
                    image: Some("busybox:1".into()),
                    command: Some(vec!["sh".into()]),
                    args: Some(vec!["-c".into(), "sleep 1".into()]),
                    working_dir: Some("/tmp".into()),
                    env: Some(vec![EnvVar {
                        name: "A".into(),
                        value: Some("1".into()),
                        ..Default::default()
                    }]),
                    ports: Some(vec![ContainerPort {
                        container_port: 8080,
                        host_port: Some(18080),
                        protocol: Some("TCP".into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rules() -> NodeRules {
        NodeRules::for_unit_tests()
    }

    #[test]
    fn a_host_port_is_refused_when_the_network_plugin_cannot_serve_it() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "app", "image": "i",
                "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 8081}]}]},
        }))
        .unwrap();
        assert!(admit_pod(&pod, "u1", &rules()).is_ok());
        let no_ports = NodeRules {
            host_ports: false,
            ..rules()
        };
        let r = admit_pod(&pod, "u1", &no_ports).unwrap_err();
        assert_eq!(r.reason, RefusalReason::UnsupportedHostPort);
        assert!(
            r.message
                .starts_with("spec.containers[0].ports[1].hostPort"),
            "{}",
            r.message
        );
        let mut host = pod.clone();
        host.spec.as_mut().unwrap().host_network = Some(true);
        assert!(
            admit_pod(&host, "u1", &no_ports).is_ok(),
            "hostNetwork skips the plugin"
        );
    }

    #[test]
    fn configure_expands_env_into_args_and_binds_the_termination_log() {
        let mut p = pod();
        {
            let c = &mut p.spec.as_mut().unwrap().containers[0];
            c.args = Some(vec!["echo $(A) $$(A)".into()]);
            c.env.as_mut().unwrap().push(EnvVar {
                name: "POD".into(),
                value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                    field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                        field_path: "metadata.name".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let log = Path::new("/tmp/x/termination-log");
        let cfg = configure(
            &p,
            "u1",
            &c,
            &rules(),
            &PodVolumes::default(),
            "10.0.0.1",
            "",
            Some(log),
        )
        .unwrap();
        assert_eq!(cfg.args, Some(vec!["echo 1 $(A)".to_string()]));
        assert!(cfg.env.contains(&("POD".to_string(), "web".to_string())));
        assert_eq!(
            cfg.binds,
            vec!["/tmp/x/termination-log:/dev/termination-log".to_string()]
        );
        // CPU shares default to the minimum without a request.
        assert_eq!(cfg.resources.cpu_shares, Some(2));
    }

    #[test]
    fn run_as_non_root_refuses_a_root_image() {
        let mut p = pod();
        p.spec.as_mut().unwrap().containers[0].security_context =
            Some(k8s_openapi::api::core::v1::SecurityContext {
                run_as_non_root: Some(true),
                ..Default::default()
            });
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let e = configure(&p, "u1", &c, &rules(), &PodVolumes::default(), "", "", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("runAsNonRoot and image will run as root"), "{e}");
        assert!(configure(
            &p,
            "u1",
            &c,
            &rules(),
            &PodVolumes::default(),
            "",
            "1000",
            None
        )
        .is_ok());
    }

    #[test]
    fn admission_refuses_what_the_node_cannot_give() {
        let mut p = pod();
        p.spec.as_mut().unwrap().containers[0].resources =
            Some(k8s_openapi::api::core::v1::ResourceRequirements {
                requests: Some(
                    [(
                        "cpu".to_string(),
                        k8s_openapi::apimachinery::pkg::api::resource::Quantity("4".into()),
                    )]
                    .into(),
                ),
                ..Default::default()
            });
        let r = admit_pod(&p, "u1", &rules()).unwrap_err();
        assert_eq!(r.reason.as_str(), "OutOfcpu");
        // A volume type podvisor does not support.
        let mut p = pod();
        p.spec.as_mut().unwrap().volumes = Some(vec![k8s_openapi::api::core::v1::Volume {
            name: "cfg".into(),
            config_map: Some(Default::default()),
            ..Default::default()
        }]);
        let r = admit_pod(&p, "u1", &rules()).unwrap_err();
        assert_eq!(r.reason.as_str(), "UnsupportedVolume");
        assert!(
            r.message.contains("volume type configMap is not supported"),
            "{}",
            r.message
        );
        // Privileged without --allow-privileged.
        let mut p = pod();
        p.spec.as_mut().unwrap().containers[0].security_context =
            Some(k8s_openapi::api::core::v1::SecurityContext {
                privileged: Some(true),
                ..Default::default()
            });
        assert_eq!(
            admit_pod(&p, "u1", &rules()).unwrap_err().reason.as_str(),
            "Forbidden"
        );
        let mut allowed = rules();
        allowed.allow_privileged = true;
        assert!(admit_pod(&p, "u1", &allowed).is_ok());
    }

    #[test]
    fn host_namespaces_reach_the_engine() {
        let mut p = pod();
        {
            let s = p.spec.as_mut().unwrap();
            s.host_pid = Some(true);
            s.host_ipc = Some(true);
        }
        let id = PodIdentity {
            pod: &p,
            uid: "u1",
            node: "n1",
        };
        let sb = sandbox_spec(&id, "pause:1", 0, "h");
        assert_eq!(sb.ipc_mode.as_deref(), Some("host"));
        assert_eq!(sb.pid_mode.as_deref(), Some("host"));
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let app = app_spec(&id, &c, 0, 0, "sb", &ContainerConfig::default());
        assert_eq!(app.ipc_mode.as_deref(), Some("host"));
        assert_eq!(app.pid_mode.as_deref(), Some("host"));
        assert_eq!(app.network_mode.as_deref(), Some("container:sb"));
    }

    #[test]
    fn stdin_and_tty_reach_the_engine_only_when_asked() {
        let p = pod();
        let id = PodIdentity {
            pod: &p,
            uid: "u1",
            node: "n1",
        };
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        let plain = app_spec(&id, &c, 0, 0, "sb", &ContainerConfig::default());
        assert!(!plain.stdin && !plain.stdin_once && !plain.tty);
        c.stdin = Some(true);
        c.tty = Some(true);
        let shell = app_spec(&id, &c, 0, 0, "sb", &ContainerConfig::default());
        assert!(shell.stdin && shell.tty && !shell.stdin_once);
        c.stdin_once = Some(true);
        let once = app_spec(&id, &c, 0, 0, "sb", &ContainerConfig::default());
        assert!(once.stdin_once);
    }

    #[test]
    fn sandbox_holds_ports_and_shareable_ipc() {
        let p = pod();
        let id = PodIdentity {
            pod: &p,
            uid: "u1",
            node: "n1",
        };
        let s = sandbox_spec(&id, "pause:1", 2, "h");
        assert_eq!(s.name, "k8s_POD_web_prod_u1_2");
        assert_eq!(s.ipc_mode.as_deref(), Some("shareable"));
        assert_eq!(s.network_mode, None);
        assert_eq!(s.hostname.as_deref(), Some("web"));
        assert_eq!(
            s.ports,
            vec![PortMapping {
                container_port: 8080,
                protocol: "tcp".into(),
                host_port: Some(18080),
                host_ip: None
            }]
        );
        assert_eq!(s.labels[naming::LABEL_DOCKER_TYPE], "podsandbox");
        assert_eq!(s.labels[naming::LABEL_GRACE_PERIOD], "5");
        assert_eq!(s.labels[naming::LABEL_NODE], "n1");
    }

    #[test]
    fn host_network_sandbox_uses_the_host() {
        let mut p = pod();
        p.spec.as_mut().unwrap().host_network = Some(true);
        let id = PodIdentity {
            pod: &p,
            uid: "u1",
            node: "n1",
        };
        let s = sandbox_spec(&id, "pause:1", 0, "h");
        assert_eq!(s.network_mode.as_deref(), Some("host"));
        assert_eq!(s.hostname, None);
    }

    #[test]
    fn app_joins_the_sandbox_and_carries_its_spec() {
        let p = pod();
        let id = PodIdentity {
            pod: &p,
            uid: "u1",
            node: "n1",
        };
        let c = &p.spec.as_ref().unwrap().containers[0];
        let config = configure(
            &p,
            "u1",
            c,
            &rules(),
            &PodVolumes::default(),
            "10.0.0.1",
            "",
            None,
        )
        .unwrap();
        let s = app_spec(&id, c, 3, 3, "sb1", &config);
        assert_eq!(s.name, "k8s_app_web_prod_u1_3");
        assert_eq!(s.network_mode.as_deref(), Some("container:sb1"));
        assert_eq!(s.ipc_mode.as_deref(), Some("container:sb1"));
        assert_eq!(s.entrypoint, Some(vec!["sh".to_string()]));
        assert_eq!(s.cmd, Some(vec!["-c".to_string(), "sleep 1".to_string()]));
        assert_eq!(s.env, vec!["A=1".to_string()]);
        assert_eq!(s.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(s.labels[naming::LABEL_SANDBOX_ID], "sb1");
        assert_eq!(s.labels[naming::LABEL_RESTART_COUNT], "3");
        assert_eq!(
            s.labels[naming::LABEL_CONTAINER_HASH],
            naming::container_hash(c)
        );
        assert!(s.ports.is_empty());
    }
}
