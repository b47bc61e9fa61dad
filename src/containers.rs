//! From a Pod spec to the engine's create requests: the infra container and
//! the app containers that join its namespaces. Pure functions.

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::naming::{self, ContainerName, Kind, PodLabels};
use crate::runtime::{CreateSpec, PortMapping};

/// Who the pod is, as the naming needs it.
#[derive(Debug, Clone)]
pub struct PodIdentity<'a> {
    pub pod: &'a Pod,
    pub uid: &'a str,
    pub node: &'a str,
}

impl PodIdentity<'_> {
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn host_network(&self) -> bool {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false)
    }

    fn labels(&self, kind: Kind, container: &str, hash: &str, restarts: u32) -> PodLabels {
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

/// The infra container: holds the pod's network and IPC namespaces and
/// publishes every container's ports.
pub fn sandbox_spec(id: &PodIdentity<'_>, image: &str, attempt: u32, hash: &str) -> CreateSpec {
    let host_network = id.host_network();
    let ports = id
        .pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
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
        .collect();
    CreateSpec {
        name: id.docker_name(naming::INFRA_NAME, attempt),
        image: image.to_string(),
        labels: id
            .labels(Kind::Sandbox, naming::INFRA_NAME, hash, 0)
            .render(id.node),
        // Kubernetes names the pod's host after the pod (at most 63 chars).
        hostname: (!host_network).then(|| id.name().chars().take(63).collect()),
        ports,
        network_mode: host_network.then(|| "host".to_string()),
        ipc_mode: Some("shareable".to_string()),
        ..Default::default()
    }
}

/// An app container, joining the infra container's network and IPC.
pub fn app_spec(
    id: &PodIdentity<'_>,
    container: &Container,
    attempt: u32,
    restart_count: u32,
    sandbox_id: &str,
) -> CreateSpec {
    let mut labels = id.labels(
        Kind::Container,
        &container.name,
        &naming::container_hash(container),
        restart_count,
    );
    labels.sandbox_id = Some(sandbox_id.to_string());
    let env = container
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some(format!("{}={}", e.name, e.value.as_deref()?)))
        .collect();
    let join = format!("container:{sandbox_id}");
    CreateSpec {
        name: id.docker_name(&container.name, attempt),
        image: container.image.clone().unwrap_or_default(),
        entrypoint: container.command.clone(),
        cmd: container.args.clone(),
        env,
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        labels: labels.render(id.node),
        network_mode: Some(join.clone()),
        ipc_mode: Some(join),
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
        let s = app_spec(&id, c, 3, 3, "sb1");
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
