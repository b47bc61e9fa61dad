//! Pod status as Kubernetes defines it, built from what the engine shows.
//! Pure: the worker passes in the containers it observed and what it knows
//! (waiting reasons, readiness).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::decide::probe::ProbeState;
use crate::model::naming::{Kind, PodLabels};
use crate::model::{PodExt, RestartPolicy, TerminatedReason, WaitingReason};
use crate::runtime::{self, ContainerDetails};

/// Why a container is not running, as a waiting state shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub reason: WaitingReason,
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
            TerminatedReason::of_exit(exit_code.into(), d.oom_killed)
                .as_str()
                .to_string(),
        ),
        message: d.error.clone(),
        started_at: time(d.started_at.as_deref()),
        finished_at: time(d.finished_at.as_deref()),
        container_id: Some(format!("docker://{}", d.summary.id)),
        ..Default::default()
    }
}

fn waiting(reason: WaitingReason, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.as_str().to_string()),
            message: message.map(str::to_string),
        }),
        ..Default::default()
    }
}

/// Each container name's records of `kind`, newest first (by attempt, then
/// creation).
fn by_name(
    containers: &[ContainerDetails],
    kind: Kind,
) -> HashMap<String, Vec<(&ContainerDetails, PodLabels)>> {
    let mut out: HashMap<String, Vec<(u32, &ContainerDetails, PodLabels)>> = HashMap::new();
    for d in containers {
        let Some(labels) = PodLabels::parse(&d.summary.labels) else {
            continue;
        };
        if labels.kind != kind {
            continue;
        }
        let attempt =
            crate::model::naming::ContainerName::parse(&d.summary.name).map_or(0, |n| n.attempt);
        out.entry(labels.container_name.clone())
            .or_default()
            .push((attempt, d, labels));
    }
    out.into_iter()
        .map(|(name, mut records)| {
            records.sort_by_key(|(a, d, _)| std::cmp::Reverse((*a, d.summary.created)));
            (name, records.into_iter().map(|(_, d, l)| (d, l)).collect())
        })
        .collect()
}

fn condition(kind: &str, ok: bool) -> PodCondition {
    PodCondition {
        type_: kind.to_string(),
        status: if ok { "True" } else { "False" }.to_string(),
        ..Default::default()
    }
}

/// Why a pod was refused before anything was created (admission, an
/// unsupported volume): it is `Failed` with this reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `OutOfcpu`, `OutOfmemory`, `UnsupportedVolume`, ...
    pub reason: String,
    pub message: String,
}

/// What the worker knows beyond the engine's view.
pub struct Facts<'a> {
    /// Container name → why it waits (pull failures, back-off, config
    /// errors).
    pub waiting: &'a HashMap<String, Waiting>,
    /// Container ID → what its probes say (`None`: nothing yet, which
    /// counts as [`ProbeState::initial`]).
    pub probes: &'a dyn Fn(&str) -> Option<ProbeState>,
    /// Container ID → termination message read after it exited.
    pub messages: &'a HashMap<String, String>,
    pub host_ip: &'a str,
    pub refused: Option<&'a Refusal>,
}

/// How one container counts towards the pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    Running,
    Waiting,
    Succeeded,
    Failed,
}

fn container_status(
    c: &k8s_openapi::api::core::v1::Container,
    record: Option<&(&ContainerDetails, PodLabels)>,
    previous: Option<&ContainerDetails>,
    facts: &Facts<'_>,
    not_yet: WaitingReason,
) -> (ContainerStatus, Count) {
    let reason = facts.waiting.get(&c.name);
    let mut st = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        started: Some(false),
        ..Default::default()
    };
    let terminated_of = |d: &ContainerDetails| {
        let mut t = terminated(d);
        if let Some(m) = facts.messages.get(&d.summary.id).filter(|m| !m.is_empty()) {
            t.message = Some(m.clone());
        }
        t
    };
    let Some((d, labels)) = record else {
        let w = reason.map_or((not_yet, None), |w| (w.reason, Some(w.message.as_str())));
        st.state = Some(waiting(w.0, w.1));
        return (st, Count::Waiting);
    };
    st.restart_count = labels.restart_count as i32;
    st.image_id = d.image_id.clone();
    st.container_id = Some(format!("docker://{}", d.summary.id));
    let count = match (d.summary.state, reason) {
        (runtime::ContainerState::Running, _) => {
            let probes = (facts.probes)(&d.summary.id).unwrap_or_else(|| ProbeState::initial(c));
            st.ready = probes.ready;
            st.started = Some(probes.started);
            st.last_state = previous.map(|p| ContainerState {
                terminated: Some(terminated_of(p)),
                ..Default::default()
            });
            st.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time(d.started_at.as_deref()),
                }),
                ..Default::default()
            });
            Count::Running
        }
        (runtime::ContainerState::Exited, Some(w)) => {
            // Dead and about to be restarted (or backing off).
            st.state = Some(waiting(w.reason, Some(&w.message)));
            st.last_state = Some(ContainerState {
                terminated: Some(terminated_of(d)),
                ..Default::default()
            });
            Count::Running
        }
        (runtime::ContainerState::Exited, None) => {
            let t = terminated_of(d);
            let count = if t.exit_code == 0 {
                Count::Succeeded
            } else {
                Count::Failed
            };
            st.state = Some(ContainerState {
                terminated: Some(t),
                ..Default::default()
            });
            count
        }
        (_, w) => {
            st.state = Some(waiting(
                w.map_or(WaitingReason::ContainerCreating, |w| w.reason),
                w.map(|w| w.message.as_str()),
            ));
            Count::Waiting
        }
    };
    (st, count)
}

/// Builds the status of `pod` from the engine's view of its containers.
pub fn pod_status(pod: &Pod, containers: &[ContainerDetails], facts: &Facts<'_>) -> PodStatus {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = pod.restart_policy();
    if let Some(r) = facts.refused {
        return PodStatus {
            phase: Some("Failed".into()),
            reason: Some(r.reason.clone()),
            message: Some(r.message.clone()),
            host_ip: Some(facts.host_ip.to_string()),
            ..Default::default()
        };
    }
    let all = by_name(containers, Kind::Container);
    // The newest record of each name, and (for a running container's
    // `lastState`) the one before it when that one ended.
    let records: HashMap<&str, &(&ContainerDetails, PodLabels)> =
        all.iter().map(|(k, v)| (k.as_str(), &v[0])).collect();
    let previous: HashMap<&str, &ContainerDetails> = all
        .iter()
        .filter_map(|(k, v)| {
            let (prev, _) = v.get(1)?;
            (prev.summary.state == runtime::ContainerState::Exited).then_some((k.as_str(), *prev))
        })
        .collect();
    let sandbox = by_name(containers, Kind::Sandbox)
        .into_values()
        .next()
        .map(|v| v[0].0);
    let sandbox_running =
        sandbox.is_some_and(|s| s.summary.state == runtime::ContainerState::Running);
    let sandbox_id = sandbox.map(|s| s.summary.id.as_str());
    // Init containers count only in the current sandbox: a new one runs
    // them again.
    let init_record = |name: &str| {
        records
            .get(name)
            .copied()
            .filter(|(_, l)| l.sandbox_id.as_deref() == sandbox_id)
    };

    let inits = spec.init_containers.clone().unwrap_or_default();
    let mut init_statuses = Vec::new();
    let mut initialized = true;
    let mut init_failed = false;
    for c in &inits {
        let (st, count) = container_status(
            c,
            init_record(&c.name),
            None,
            facts,
            WaitingReason::PodInitializing,
        );
        match count {
            Count::Succeeded => {}
            Count::Failed if policy == RestartPolicy::Never => {
                init_failed = true;
                initialized = false;
            }
            _ => initialized = false,
        }
        init_statuses.push(st);
    }

    let (mut running, mut waiting_n, mut succeeded, mut failed) = (0, 0, 0, 0);
    let not_yet = if initialized {
        WaitingReason::ContainerCreating
    } else {
        WaitingReason::PodInitializing
    };
    let mut statuses = Vec::new();
    for c in &spec.containers {
        let prev = previous.get(c.name.as_str()).copied();
        let record = records.get(c.name.as_str()).copied();
        let (st, count) = container_status(c, record, prev, facts, not_yet);
        match count {
            Count::Running => running += 1,
            Count::Waiting => waiting_n += 1,
            Count::Succeeded => succeeded += 1,
            Count::Failed => failed += 1,
        }
        statuses.push(st);
    }

    let total = spec.containers.len();
    let phase = if init_failed {
        "Failed"
    } else if total == 0 || waiting_n > 0 || !initialized {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if succeeded + failed == total {
        match policy {
            RestartPolicy::Always => "Running",
            RestartPolicy::OnFailure if failed > 0 => "Running",
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
                .then(|| facts.host_ip.to_string())
        });
    PodStatus {
        phase: Some(phase.to_string()),
        conditions: Some(vec![
            condition("PodScheduled", true),
            condition("Initialized", initialized),
            condition("ContainersReady", all_ready),
            condition("Ready", all_ready),
        ]),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        host_ip: Some(facts.host_ip.to_string()),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: sandbox.and_then(|s| time(s.started_at.as_deref())),
        ..Default::default()
    }
}

/// The status of a pod nothing is known of yet.
pub fn pending(pod: &Pod) -> PodStatus {
    let facts = Facts {
        waiting: &HashMap::new(),
        probes: &|_| None,
        messages: &HashMap::new(),
        host_ip: "",
        refused: None,
    };
    pod_status(pod, &[], &facts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::naming::{ContainerName, PodLabels};
    use crate::runtime::ContainerSummary;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn pod(policy: &str, apps: &[&str], inits: &[&str]) -> Pod {
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

    fn record(
        name: &str,
        kind: Kind,
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

    fn sandbox() -> ContainerDetails {
        record(
            "POD",
            Kind::Sandbox,
            runtime::ContainerState::Running,
            None,
            None,
        )
    }

    fn status_of(
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

    fn cond(s: &PodStatus, kind: &str) -> String {
        s.conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == kind)
            .map(|c| c.status.clone())
            .unwrap_or_default()
    }

    #[test]
    fn running_pod_is_running_ready_with_ip() {
        let p = pod("Always", &["a"], &[]);
        let cs = [
            sandbox(),
            record(
                "a",
                Kind::Container,
                runtime::ContainerState::Running,
                None,
                Some("id-POD"),
            ),
        ];
        let s = status_of(&p, &cs, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), "True");
        assert_eq!(s.pod_ip.as_deref(), Some("172.17.0.9"));
        let c = &s.container_statuses.unwrap()[0];
        assert_eq!(c.container_id.as_deref(), Some("docker://id-a"));
        assert_eq!(c.restart_count, 2);
        assert!(c.ready);
        assert!(c.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn a_container_without_a_record_is_creating_and_the_pod_pending() {
        let p = pod("Always", &["a"], &[]);
        let s = status_of(&p, &[sandbox()], &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let w = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
    }

    #[test]
    fn terminal_phases_follow_the_policy() {
        for (policy, code, phase) in [
            ("Never", 0, "Succeeded"),
            ("Never", 1, "Failed"),
            ("OnFailure", 0, "Succeeded"),
            ("OnFailure", 1, "Running"),
            ("Always", 0, "Running"),
        ] {
            let p = pod(policy, &["a"], &[]);
            let cs = [
                sandbox(),
                record(
                    "a",
                    Kind::Container,
                    runtime::ContainerState::Exited,
                    Some(code),
                    Some("id-POD"),
                ),
            ];
            let s = status_of(&p, &cs, &HashMap::new());
            assert_eq!(s.phase.as_deref(), Some(phase), "{policy} exit {code}");
            let t = s.container_statuses.unwrap()[0]
                .state
                .clone()
                .unwrap()
                .terminated
                .unwrap();
            assert_eq!(t.exit_code, code as i32);
            assert_eq!(
                t.reason.as_deref(),
                Some(if code == 0 { "Completed" } else { "Error" })
            );
        }
    }

    #[test]
    fn crash_loop_shows_waiting_and_the_last_exit() {
        let p = pod("Always", &["a"], &[]);
        let cs = [
            sandbox(),
            record(
                "a",
                Kind::Container,
                runtime::ContainerState::Exited,
                Some(3),
                Some("id-POD"),
            ),
        ];
        let mut w = HashMap::new();
        w.insert(
            "a".to_string(),
            Waiting {
                reason: WaitingReason::CrashLoopBackOff,
                message: "back-off 20s".into(),
            },
        );
        let s = status_of(&p, &cs, &w);
        let c = &s.container_statuses.unwrap()[0];
        let state = c.state.clone().unwrap().waiting.unwrap();
        assert_eq!(state.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = c.last_state.clone().unwrap().terminated.unwrap();
        assert_eq!(last.exit_code, 3);
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_restarted_running_container_shows_its_last_exit() {
        let p = pod("Always", &["a"], &[]);
        let mut old = record(
            "a",
            Kind::Container,
            runtime::ContainerState::Exited,
            Some(7),
            Some("id-POD"),
        );
        old.summary.id = "old".into();
        let mut new = record(
            "a",
            Kind::Container,
            runtime::ContainerState::Running,
            None,
            Some("id-POD"),
        );
        new.summary.name = new.summary.name.replace("_0", "_1");
        new.summary.created = 2;
        let s = status_of(&p, &[sandbox(), old, new], &HashMap::new());
        let c = &s.container_statuses.unwrap()[0];
        assert!(c.state.as_ref().unwrap().running.is_some());
        let last = c.last_state.clone().unwrap().terminated.unwrap();
        assert_eq!(last.exit_code, 7);
        assert_eq!(last.container_id.as_deref(), Some("docker://old"));
    }

    #[test]
    fn oom_killed_is_the_reason() {
        let p = pod("Never", &["a"], &[]);
        let mut r = record(
            "a",
            Kind::Container,
            runtime::ContainerState::Exited,
            Some(137),
            Some("id-POD"),
        );
        r.oom_killed = true;
        let s = status_of(&p, &[sandbox(), r], &HashMap::new());
        let t = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(t.reason.as_deref(), Some("OOMKilled"));
    }

    #[test]
    fn init_containers_gate_the_pod() {
        let p = pod("Always", &["a"], &["i"]);
        let running_init = [
            sandbox(),
            record(
                "i",
                Kind::Container,
                runtime::ContainerState::Running,
                None,
                Some("id-POD"),
            ),
        ];
        let s = status_of(&p, &running_init, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(cond(&s, "Initialized"), "False");
        let w = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .waiting
            .unwrap();
        assert_eq!(w.reason.as_deref(), Some("PodInitializing"));
        assert!(s.init_container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .running
            .is_some());

        let done = [
            sandbox(),
            record(
                "i",
                Kind::Container,
                runtime::ContainerState::Exited,
                Some(0),
                Some("id-POD"),
            ),
            record(
                "a",
                Kind::Container,
                runtime::ContainerState::Running,
                None,
                Some("id-POD"),
            ),
        ];
        let s = status_of(&p, &done, &HashMap::new());
        assert_eq!(cond(&s, "Initialized"), "True");
        assert_eq!(s.phase.as_deref(), Some("Running"));

        // An init record from an older sandbox does not count.
        let stale = [
            sandbox(),
            record(
                "i",
                Kind::Container,
                runtime::ContainerState::Exited,
                Some(0),
                Some("old"),
            ),
        ];
        assert_eq!(
            cond(&status_of(&p, &stale, &HashMap::new()), "Initialized"),
            "False"
        );
    }

    #[test]
    fn a_failed_init_container_fails_a_never_pod() {
        let p = pod("Never", &["a"], &["i"]);
        let cs = [
            sandbox(),
            record(
                "i",
                Kind::Container,
                runtime::ContainerState::Exited,
                Some(1),
                Some("id-POD"),
            ),
        ];
        assert_eq!(
            status_of(&p, &cs, &HashMap::new()).phase.as_deref(),
            Some("Failed")
        );
    }

    #[test]
    fn a_refused_pod_is_failed_with_the_reason() {
        let p = pod("Always", &["a"], &[]);
        let r = Refusal {
            reason: "OutOfcpu".into(),
            message: "Node didn't have enough resource: cpu".into(),
        };
        let facts = Facts {
            waiting: &HashMap::new(),
            probes: &|_| None,
            messages: &HashMap::new(),
            host_ip: "127.0.0.1",
            refused: Some(&r),
        };
        let s = pod_status(&p, &[], &facts);
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("OutOfcpu"));
        assert!(s.message.unwrap().contains("cpu"));
    }

    #[test]
    fn termination_messages_land_in_the_terminated_state() {
        let p = pod("Never", &["a"], &[]);
        let cs = [
            sandbox(),
            record(
                "a",
                Kind::Container,
                runtime::ContainerState::Exited,
                Some(0),
                Some("id-POD"),
            ),
        ];
        let mut messages = HashMap::new();
        messages.insert("id-a".to_string(), "all done".to_string());
        let facts = Facts {
            waiting: &HashMap::new(),
            probes: &|_| None,
            messages: &messages,
            host_ip: "",
            refused: None,
        };
        let s = pod_status(&p, &cs, &facts);
        let t = s.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(t.message.as_deref(), Some("all done"));
    }
}
