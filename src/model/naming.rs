//! Names, labels, hashes and UIDs: how podvisor finds its state again.
//!
//! Docker is the only store (DESIGN.md §3). A container's name follows the
//! dockershim convention and its labels say which pod, container and spec it
//! was made for, so a restarted podvisor adopts what is running instead of
//! recreating it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use sha2::{Digest, Sha256};

use super::PodExt;

pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
pub const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
pub const LABEL_CONTAINER_HASH: &str = "io.kubernetes.container.hash";
pub const LABEL_RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
pub const LABEL_GRACE_PERIOD: &str = "io.kubernetes.pod.terminationGracePeriod";
pub const LABEL_DOCKER_TYPE: &str = "io.kubernetes.docker.type";
pub const LABEL_SANDBOX_ID: &str = "io.kubernetes.sandbox.id";
/// Which podvisor owns the container: its `--node-name`.
pub const LABEL_NODE: &str = "podvisor.io/node";

pub const TYPE_SANDBOX: &str = "podsandbox";
pub const TYPE_CONTAINER: &str = "container";
/// The container name of the infra container in its Docker name.
pub const INFRA_NAME: &str = "POD";

/// The parts of a dockershim container name:
/// `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerName {
    pub container: String,
    pub pod: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
}

impl ContainerName {
    pub fn render(&self) -> String {
        format!(
            "k8s_{}_{}_{}_{}_{}",
            self.container, self.pod, self.namespace, self.uid, self.attempt
        )
    }

    /// Parses a Docker container name (with or without the leading `/`).
    /// Kubernetes names cannot hold `_`, so the split is unambiguous.
    pub fn parse(name: &str) -> Option<Self> {
        let parts: Vec<&str> = name.trim_start_matches('/').split('_').collect();
        match parts.as_slice() {
            ["k8s", container, pod, namespace, uid, attempt] => Some(Self {
                container: container.to_string(),
                pod: pod.to_string(),
                namespace: namespace.to_string(),
                uid: uid.to_string(),
                attempt: attempt.parse().ok()?,
            }),
            _ => None,
        }
    }
}

/// Whether a container is a pod's infra container or one of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainerKind {
    Sandbox,
    Container,
}

/// What podvisor reads back from a container's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLabels {
    pub pod_name: String,
    pub namespace: String,
    pub uid: String,
    pub kind: ContainerKind,
    /// `POD` for the infra container.
    pub container_name: String,
    pub hash: String,
    pub restart_count: u32,
    pub grace_period_secs: Option<i64>,
    pub sandbox_id: Option<String>,
}

impl PodLabels {
    /// Reads the labels podvisor wrote; `None` when they are not ours or are
    /// incomplete (such a container is left alone).
    pub fn parse(labels: &BTreeMap<String, String>) -> Option<Self> {
        let get = |k: &str| labels.get(k).cloned();
        let kind = match labels.get(LABEL_DOCKER_TYPE).map(String::as_str) {
            Some(TYPE_SANDBOX) => ContainerKind::Sandbox,
            Some(TYPE_CONTAINER) => ContainerKind::Container,
            _ => return None,
        };
        Some(Self {
            pod_name: get(LABEL_POD_NAME)?,
            namespace: get(LABEL_POD_NAMESPACE)?,
            uid: get(LABEL_POD_UID)?,
            kind,
            container_name: match kind {
                ContainerKind::Sandbox => INFRA_NAME.to_string(),
                ContainerKind::Container => get(LABEL_CONTAINER_NAME)?,
            },
            hash: get(LABEL_CONTAINER_HASH).unwrap_or_default(),
            restart_count: get(LABEL_RESTART_COUNT)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            grace_period_secs: get(LABEL_GRACE_PERIOD).and_then(|v| v.parse().ok()),
            sandbox_id: get(LABEL_SANDBOX_ID),
        })
    }

    /// The labels to write on a container.
    pub fn render(&self, node: &str) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert(LABEL_NODE.into(), node.into());
        l.insert(LABEL_POD_NAME.into(), self.pod_name.clone());
        l.insert(LABEL_POD_NAMESPACE.into(), self.namespace.clone());
        l.insert(LABEL_POD_UID.into(), self.uid.clone());
        l.insert(LABEL_CONTAINER_HASH.into(), self.hash.clone());
        l.insert(LABEL_RESTART_COUNT.into(), self.restart_count.to_string());
        if let Some(g) = self.grace_period_secs {
            l.insert(LABEL_GRACE_PERIOD.into(), g.to_string());
        }
        match self.kind {
            ContainerKind::Sandbox => {
                l.insert(LABEL_DOCKER_TYPE.into(), TYPE_SANDBOX.into());
            }
            ContainerKind::Container => {
                l.insert(LABEL_DOCKER_TYPE.into(), TYPE_CONTAINER.into());
                l.insert(LABEL_CONTAINER_NAME.into(), self.container_name.clone());
            }
        }
        if let Some(s) = &self.sandbox_id {
            l.insert(LABEL_SANDBOX_ID.into(), s.clone());
        }
        l
    }
}

/// Hashes a value's canonical JSON: serde_json's maps are sorted by key and
/// k8s-openapi omits unset fields, so the text (and the hash) of an unchanged
/// spec does not move between builds or when new optional fields appear.
/// SHA-256, first 8 bytes, as 16 hex digits.
fn canonical_hash(value: &impl serde::Serialize) -> String {
    let canonical = serde_json::to_value(value)
        .map(|v| v.to_string())
        .unwrap_or_default();
    let digest = Sha256::digest(canonical.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of one container spec: a change replaces that container.
pub fn container_hash(container: &Container) -> String {
    canonical_hash(container)
}

/// The hash of what the infra container holds: its image, the ports of all
/// the pod's containers (init containers' included), and `hostNetwork`. A
/// change recreates the pod.
pub fn sandbox_hash(pod: &Pod, infra_image: &str) -> String {
    let spec = pod.spec.as_ref();
    let mut ports: Vec<serde_json::Value> = spec
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    ports.sort_by_key(|p| p.to_string());
    let host_network = pod.host_network();
    let mut held = serde_json::json!({
        "image": infra_image,
        "ports": ports,
        "hostNetwork": host_network,
    });
    // The init containers' (sidecars') ports, which the infra container
    // publishes too: only when there are any, so that the hash of every
    // other pod stays what it always was.
    let mut init_ports: Vec<serde_json::Value> = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| serde_json::to_value(p).unwrap_or_default())
        .collect();
    if !init_ports.is_empty() {
        init_ports.sort_by_key(|p| p.to_string());
        held["initPorts"] = serde_json::Value::Array(init_ports);
    }
    canonical_hash(&held)
}

/// A stable UID for a pod from a source without UIDs (a manifest file or
/// URL): derived from the source kind, the node and the pod's
/// namespace/name, so a restart adopts the same containers, and two agents
/// (or a file and a URL pod) never share one. Formatted as a UUID.
pub fn derived_pod_uid(source: &str, node: &str, namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{source}\0{node}\0{namespace}\0{name}").as_bytes());
    let h: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, EnvVar, PodSpec};

    fn container() -> Container {
        Container {
            name: "app".into(),
            image: Some("busybox:1.36".into()),
            command: Some(vec!["sleep".into(), "3600".into()]),
            env: Some(vec![EnvVar {
                name: "A".into(),
                value: Some("1".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn names_round_trip() {
        let n = ContainerName {
            container: "app".into(),
            pod: "web.v1".into(),
            namespace: "default".into(),
            uid: "0a1b-2c".into(),
            attempt: 3,
        };
        assert_eq!(n.render(), "k8s_app_web.v1_default_0a1b-2c_3");
        assert_eq!(ContainerName::parse(&n.render()), Some(n.clone()));
        assert_eq!(ContainerName::parse(&format!("/{}", n.render())), Some(n));
    }

    #[test]
    fn foreign_names_do_not_parse() {
        assert_eq!(ContainerName::parse("nginx"), None);
        assert_eq!(ContainerName::parse("k8s_a_b_c_d"), None);
        assert_eq!(ContainerName::parse("k8s_a_b_c_d_x"), None);
        assert_eq!(ContainerName::parse("x8s_a_b_c_d_1"), None);
    }

    #[test]
    fn labels_round_trip() {
        let l = PodLabels {
            pod_name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            kind: ContainerKind::Container,
            container_name: "app".into(),
            hash: "abc".into(),
            restart_count: 4,
            grace_period_secs: Some(30),
            sandbox_id: Some("sb".into()),
        };
        let rendered = l.render("node-1");
        assert_eq!(rendered[LABEL_NODE], "node-1");
        assert_eq!(rendered[LABEL_RESTART_COUNT], "4");
        assert_eq!(rendered[LABEL_DOCKER_TYPE], "container");
        assert_eq!(PodLabels::parse(&rendered), Some(l));
    }

    #[test]
    fn sandbox_labels_name_the_infra_container() {
        let l = PodLabels {
            pod_name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            kind: ContainerKind::Sandbox,
            container_name: INFRA_NAME.into(),
            hash: "abc".into(),
            restart_count: 0,
            grace_period_secs: None,
            sandbox_id: None,
        };
        let rendered = l.render("n");
        assert!(!rendered.contains_key(LABEL_CONTAINER_NAME));
        assert_eq!(PodLabels::parse(&rendered), Some(l));
    }

    #[test]
    fn labels_missing_a_key_are_not_ours() {
        let mut m = BTreeMap::new();
        m.insert(LABEL_DOCKER_TYPE.to_string(), TYPE_CONTAINER.to_string());
        m.insert(LABEL_POD_NAME.to_string(), "web".to_string());
        assert_eq!(PodLabels::parse(&m), None);
        let mut bad_type = PodLabels {
            pod_name: "w".into(),
            namespace: "d".into(),
            uid: "u".into(),
            kind: ContainerKind::Sandbox,
            container_name: INFRA_NAME.into(),
            hash: String::new(),
            restart_count: 0,
            grace_period_secs: None,
            sandbox_id: None,
        }
        .render("n");
        bad_type.insert(LABEL_DOCKER_TYPE.into(), "volume".into());
        assert_eq!(PodLabels::parse(&bad_type), None);
    }

    #[test]
    fn container_hash_is_fixed_for_a_fixed_spec() {
        // Written down once: if this changes, every pod on every node restarts
        // on upgrade. Change it only on purpose. The same value comes out of
        // `sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")))[:16]`
        // in Python, which pins the canonical form to a documented one.
        assert_eq!(container_hash(&container()), "02c2510536033bcf");
    }

    #[test]
    fn container_hash_follows_the_spec() {
        let mut c = container();
        let before = container_hash(&c);
        c.args = Some(vec!["x".into()]);
        assert_ne!(container_hash(&c), before);
        // Equal specs built in another order hash the same.
        let mut d = Container {
            args: Some(vec!["x".into()]),
            ..Default::default()
        };
        d.env = c.env.clone();
        d.command = c.command.clone();
        d.image = c.image.clone();
        d.name = c.name.clone();
        assert_eq!(container_hash(&c), container_hash(&d));
    }

    #[test]
    fn sandbox_hash_covers_image_ports_and_host_network() {
        let mut pod = Pod {
            spec: Some(PodSpec {
                containers: vec![container()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let base = sandbox_hash(&pod, "pause:1");
        assert_ne!(sandbox_hash(&pod, "pause:2"), base);
        // An env change in a container does not touch the sandbox.
        pod.spec.as_mut().unwrap().containers[0].env = None;
        assert_eq!(sandbox_hash(&pod, "pause:1"), base);
        pod.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
            container_port: 80,
            ..Default::default()
        }]);
        let with_port = sandbox_hash(&pod, "pause:1");
        assert_ne!(with_port, base);
        pod.spec.as_mut().unwrap().host_network = Some(true);
        let host = sandbox_hash(&pod, "pause:1");
        assert_ne!(host, with_port);
        // An init container without ports changes nothing; a sidecar's
        // port does.
        let mut sidecar = container();
        sidecar.name = "proxy".into();
        pod.spec.as_mut().unwrap().init_containers = Some(vec![sidecar]);
        assert_eq!(sandbox_hash(&pod, "pause:1"), host);
        pod.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0].ports =
            Some(vec![ContainerPort {
                container_port: 15001,
                ..Default::default()
            }]);
        assert_ne!(sandbox_hash(&pod, "pause:1"), host);
    }

    #[test]
    fn derived_uids_are_stable_and_distinct() {
        let a = derived_pod_uid("file", "n1", "default", "web");
        assert_eq!(a, derived_pod_uid("file", "n1", "default", "web"));
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_ne!(a, derived_pod_uid("http", "n1", "default", "web"));
        assert_ne!(a, derived_pod_uid("file", "n2", "default", "web"));
        assert_ne!(a, derived_pod_uid("file", "n1", "other", "web"));
        assert_ne!(a, derived_pod_uid("file", "n1", "default", "web2"));
    }
}
