//! Pod status as Kubernetes defines it, built from what the engine shows.
//! Pure: the worker passes in the containers it observed and what it knows
//! (waiting reasons, readiness).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::naming::{Kind, PodLabels};
use crate::runtime::{self, ContainerDetails};

/// Why a container is not running, as a waiting state shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `ContainerCreating`, `ErrImagePull`, `ImagePullBackOff`,
    /// `ErrImageNeverPull`, `CrashLoopBackOff`, `CreateContainerError`, ...
    pub reason: String,
    pub message: String,
}

/// Parses the engine's RFC 3339 times into Kubernetes' `Time`.
pub fn time(t: Option<&str>) -> Option<Time> {
    t.and_then(|t| t.parse().ok()).map(Time)
}

fn terminated(d: &ContainerDetails) -> ContainerStateTerminated {
    let exit_code = d.exit_code.unwrap_or(0) as i32;
    ContainerStateTerminated {
        exit_code,
        reason: Some(
            if d.oom_killed {
                "OOMKilled"
            } else if exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .to_string(),
        ),
        message: d.error.clone(),
        started_at: time(d.started_at.as_deref()),
        finished_at: time(d.finished_at.as_deref()),
        container_id: Some(format!("docker://{}", d.summary.id)),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message: message.map(str::to_string),
        }),
        ..Default::default()
    }
}

/// The newest record (by attempt, then creation) of each container name.
fn newest(
    containers: &[ContainerDetails],
    kind: Kind,
) -> HashMap<String, (&ContainerDetails, PodLabels)> {
    let mut out: HashMap<String, (&ContainerDetails, PodLabels, u32)> = HashMap::new();
    for d in containers {
        let Some(labels) = PodLabels::parse(&d.summary.labels) else {
            continue;
        };
        if labels.kind != kind {
            continue;
        }
        let attempt = crate::naming::ContainerName::parse(&d.summary.name).map_or(0, |n| n.attempt);
        let newer = out
            .get(&labels.container_name)
            .is_none_or(|(old, _, a)| (attempt, d.summary.created) > (*a, old.summary.created));
        if newer {
            out.insert(labels.container_name.clone(), (d, labels, attempt));
        }
    }
    out.into_iter().map(|(k, (d, l, _))| (k, (d, l))).collect()
}

fn condition(kind: &str, ok: bool) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        ..Default::default()
    }
}

/// Builds the status of `pod` from the engine's view of its containers.
/// `ready` tells whether a running container is ready (`None`: no verdict
/// yet, which counts as ready until probes exist).
pub fn pod_status(
    pod: &Pod,
    containers: &[ContainerDetails],
    waiting_reasons: &HashMap<String, Waiting>,
    ready: &dyn Fn(&str) -> Option<bool>,
    host_ip: &str,
) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let apps = newest(containers, Kind::Container);
    let sandbox = newest(containers, Kind::Sandbox)
        .into_values()
        .next()
        .map(|(d, _)| d);
    let sandbox_running =
        sandbox.is_some_and(|s| s.summary.state == runtime::ContainerState::Running);

    let (mut running, mut waiting_n, mut succeeded, mut failed) = (0, 0, 0, 0);
    let mut statuses = Vec::new();
    for c in &spec.containers {
        let record = apps.get(&c.name);
        let reason = waiting_reasons.get(&c.name);
        let mut st = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            ..Default::default()
        };
        match (record, reason) {
            (Some((d, labels)), reason) => {
                st.restart_count = labels.restart_count as i32;
                st.image_id = d.image_id.clone();
                st.container_id = Some(format!("docker://{}", d.summary.id));
                match (d.summary.state, reason) {
                    (runtime::ContainerState::Running, _) => {
                        running += 1;
                        st.ready = ready(&d.summary.id).unwrap_or(true);
                        st.started = Some(true);
                        st.state = Some(ContainerState {
                            running: Some(ContainerStateRunning {
                                started_at: time(d.started_at.as_deref()),
                            }),
                            ..Default::default()
                        });
                    }
                    (runtime::ContainerState::Exited, Some(w)) => {
                        // Dead and about to be restarted (or backing off).
                        running += 1;
                        st.started = Some(false);
                        st.state = Some(waiting(&w.reason, Some(&w.message)));
                        st.last_state = Some(ContainerState {
                            terminated: Some(terminated(d)),
                            ..Default::default()
                        });
                    }
                    (runtime::ContainerState::Exited, None) => {
                        let t = terminated(d);
                        if t.exit_code == 0 {
                            succeeded += 1;
                        } else {
                            failed += 1;
                        }
                        st.started = Some(false);
                        st.state = Some(ContainerState {
                            terminated: Some(t),
                            ..Default::default()
                        });
                    }
                    (_, w) => {
                        waiting_n += 1;
                        st.started = Some(false);
                        st.state = Some(waiting(
                            w.map_or("ContainerCreating", |w| w.reason.as_str()),
                            w.map(|w| w.message.as_str()),
                        ));
                    }
                }
            }
            (None, w) => {
                waiting_n += 1;
                st.started = Some(false);
                st.state = Some(waiting(
                    w.map_or("ContainerCreating", |w| w.reason.as_str()),
                    w.map(|w| w.message.as_str()),
                ));
            }
        }
        statuses.push(st);
    }

    let total = spec.containers.len();
    let phase = if total == 0 || waiting_n > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if succeeded + failed == total && total > 0 {
        match policy {
            "Always" => "Running",
            "OnFailure" if failed > 0 => "Running",
            _ if failed > 0 => "Failed",
            _ => "Succeeded",
        }
    } else {
        "Pending"
    };
    let all_ready = total > 0 && statuses.iter().all(|s| s.ready);
    let pod_ip = sandbox
        .filter(|_| sandbox_running)
        .map(|s| s.ip_address.clone())
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            spec.host_network
                .unwrap_or(false)
                .then(|| host_ip.to_string())
        });
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(vec![
            condition("PodScheduled", true),
            condition("Initialized", true),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
        ]),
        container_statuses: Some(statuses),
        host_ip: Some(host_ip.to_string()),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: sandbox.and_then(|s| time(s.started_at.as_deref())),
        ..Default::default()
    }
}

/// The status of a pod nothing is known of yet.
pub fn pending(pod: &Pod) -> PodStatus {
    pod_status(pod, &[], &HashMap::new(), &|_| None, "")
}
