//! Helpers shared by the status tests: a pod, and engine records of it.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, PodStatus};

use super::{pod_status, Facts, Waiting};
use crate::model::naming::{ContainerKind, ContainerName, PodLabels};
use crate::runtime::{self, ContainerDetails, ContainerSummary};

pub(super) fn pod(policy: &str, apps: &[&str], inits: &[&str]) -> Pod {
    let c = |n: &&str| Container {
        name: n.to_string(),
        image: Some("busybox:1".into()),
        ..Default::default()
    };
    Pod {
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            containers: apps.iter().map(c).collect(),
            init_containers: (!inits.is_empty()).then(|| inits.iter().map(c).collect()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(super) fn record(
    name: &str,
    kind: ContainerKind,
    state: runtime::ContainerState,
    exit: Option<i64>,
    sandbox: Option<&str>,
) -> ContainerDetails {
    let labels = PodLabels {
        pod_name: "p".into(),
        namespace: "default".into(),
        uid: "u".into(),
        kind,
        container_name: name.into(),
        hash: "h".into(),
        restart_count: 2,
        grace_period_secs: None,
        sandbox_id: sandbox.map(str::to_string),
    };
    ContainerDetails {
        summary: ContainerSummary {
            id: format!("id-{name}"),
            name: ContainerName {
                container: name.into(),
                pod: "p".into(),
                namespace: "default".into(),
                uid: "u".into(),
                attempt: 0,
            }
            .render(),
            image: "busybox:1".into(),
            labels: labels.render("n"),
            state,
            created: 1,
        },
        image_id: "sha256:1".into(),
        exit_code: exit,
        oom_killed: false,
        error: None,
        started_at: Some("2026-01-01T00:00:00Z".into()),
        finished_at: exit.map(|_| "2026-01-01T00:01:00Z".to_string()),
        pid: None,
        ip_address: "172.17.0.9".into(),
        hostname: String::new(),
        env: vec![],
    }
}

pub(super) fn sandbox() -> ContainerDetails {
    record(
        "POD",
        ContainerKind::Sandbox,
        runtime::ContainerState::Running,
        None,
        None,
    )
}

pub(super) fn status_of(
    p: &Pod,
    cs: &[ContainerDetails],
    waiting: &HashMap<String, Waiting>,
) -> PodStatus {
    let facts = Facts {
        waiting,
        probes: &|_| None,
        messages: &HashMap::new(),
        host_ip: "127.0.0.1",
        refused: None,
    };
    pod_status(p, cs, &facts)
}

pub(super) fn cond(s: &PodStatus, kind: &str) -> String {
    s.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
        .unwrap_or_default()
}
