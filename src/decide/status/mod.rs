//! Pod status as Kubernetes defines it, built from what the engine shows.
//! Pure: the worker passes in the containers it observed and what it knows
//! (waiting reasons, readiness).
//!
//! - `container`: each container's status, and how it counts;
//! - this module: the pod's phase ([`PodPhase`], spelled out only in the
//!   returned [`PodStatus`]), its conditions and IPs.

mod container;
#[cfg(test)]
mod test_support;

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodIP, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::decide::probe::ProbeState;
use crate::model::naming::{ContainerKind, PodLabels};
use crate::model::{is_sidecar, PodExt, PodPhase, RefusalReason, RestartPolicy, WaitingReason};
use crate::runtime::{self, ContainerDetails};
use crate::spec::resources::qos::qos_class;

use container::{by_name, container_status, Count};

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
    pub reason: RefusalReason,
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

/// How many app containers count as what.
#[derive(Debug, Default)]
struct Tally {
    running: usize,
    waiting: usize,
    succeeded: usize,
    failed: usize,
}

impl Tally {
    fn add(&mut self, count: Count) {
        match count {
            Count::Running => self.running += 1,
            Count::Waiting => self.waiting += 1,
            Count::Succeeded => self.succeeded += 1,
            Count::Failed => self.failed += 1,
        }
    }
}

/// The pod phase from how its `total` app containers count, whether its
/// init containers are done (or one failed for good), and the policy.
fn phase(
    policy: RestartPolicy,
    init_failed: bool,
    initialized: bool,
    total: usize,
    t: &Tally,
) -> PodPhase {
    if init_failed {
        PodPhase::Failed
    } else if total == 0 || t.waiting > 0 || !initialized {
        PodPhase::Pending
    } else if t.running > 0 {
        PodPhase::Running
    } else if t.succeeded + t.failed == total {
        match policy {
            RestartPolicy::Always => PodPhase::Running,
            RestartPolicy::OnFailure if t.failed > 0 => PodPhase::Running,
            _ if t.failed > 0 => PodPhase::Failed,
            _ => PodPhase::Succeeded,
        }
    } else {
        PodPhase::Pending
    }
}

/// Builds the status of `pod` from the engine's view of its containers.
pub fn pod_status(pod: &Pod, containers: &[ContainerDetails], facts: &Facts<'_>) -> PodStatus {
    let policy = pod.restart_policy();
    if let Some(r) = facts.refused {
        return PodStatus {
            phase: Some(PodPhase::Failed.as_str().to_string()),
            reason: Some(r.reason.to_string()),
            message: Some(r.message.clone()),
            host_ip: Some(facts.host_ip.to_string()),
            qos_class: Some(qos_class(pod).as_str().to_string()),
            ..Default::default()
        };
    }
    let all = by_name(containers, ContainerKind::Container);
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
    let sandbox = by_name(containers, ContainerKind::Sandbox)
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

    // Once an app container ran in this sandbox the pod stays initialized:
    // a sidecar restarting does not take it back (the kubelet's
    // `HasAnyRegularContainerStarted`).
    let apps_ran = pod.containers().iter().any(|c| {
        init_record(&c.name).is_some_and(|(d, _)| {
            matches!(
                d.summary.state,
                runtime::ContainerState::Running | runtime::ContainerState::Exited
            )
        })
    });

    let mut init_statuses = Vec::new();
    let mut initialized = true;
    let mut init_failed = false;
    let mut sidecars_ready = true;
    for c in pod.init_containers() {
        let (st, count) = container_status(
            c,
            init_record(&c.name),
            None,
            facts,
            WaitingReason::PodInitializing,
        );
        if is_sidecar(c) {
            // Done for initialization once started; its exits fail nothing.
            let started = count == Count::Running && st.started == Some(true);
            initialized &= started || apps_ran;
            sidecars_ready &= st.ready;
            init_statuses.push(st);
            continue;
        }
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

    let mut tally = Tally::default();
    let not_yet = if initialized {
        WaitingReason::ContainerCreating
    } else {
        WaitingReason::PodInitializing
    };
    let mut statuses = Vec::new();
    for c in pod.containers() {
        let prev = previous.get(c.name.as_str()).copied();
        let record = records.get(c.name.as_str()).copied();
        let (st, count) = container_status(c, record, prev, facts, not_yet);
        tally.add(count);
        statuses.push(st);
    }

    let total = pod.containers().len();
    let phase = phase(policy, init_failed, initialized, total, &tally);
    // Sidecars count for readiness as app containers do.
    let all_ready = total > 0 && statuses.iter().all(|s| s.ready) && sidecars_ready;
    let pod_ip = sandbox
        .filter(|_| sandbox_running)
        .map(|s| s.ip_address.clone())
        .filter(|ip| !ip.is_empty())
        .or_else(|| pod.host_network().then(|| facts.host_ip.to_string()));
    PodStatus {
        phase: Some(phase.as_str().to_string()),
        conditions: Some(vec![
            condition("PodScheduled", true),
            condition("Initialized", initialized),
            condition("ContainersReady", all_ready),
            crate::decide::unserved::ready_condition(pod, all_ready),
        ]),
        init_container_statuses: (!init_statuses.is_empty()).then_some(init_statuses),
        container_statuses: Some(statuses),
        host_ip: Some(facts.host_ip.to_string()),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: sandbox.and_then(|s| time(s.started_at.as_deref())),
        qos_class: Some(qos_class(pod).as_str().to_string()),
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

/// `status` with `container` (app or init) waiting `ContainerCreating`
/// with `message` (how far its image's pull is); `None` when the pod has no
/// such container or it runs.
pub fn pulling(status: &PodStatus, container: &str, message: &str) -> Option<PodStatus> {
    let mut status = status.clone();
    let c = status
        .container_statuses
        .iter_mut()
        .chain(status.init_container_statuses.iter_mut())
        .flatten()
        .find(|c| c.name == container)?;
    if c.state.as_ref().is_some_and(|s| s.running.is_some()) {
        return None;
    }
    c.state = Some(container::waiting(
        WaitingReason::ContainerCreating,
        Some(message),
    ));
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::model::naming::ContainerKind;
    use crate::runtime;

    #[test]
    fn running_pod_is_running_ready_with_ip() {
        let p = pod("Always", &["a"], &[]);
        let cs = [
            sandbox(),
            record(
                "a",
                ContainerKind::Container,
                runtime::ContainerState::Running,
                None,
                Some("id-POD"),
            ),
        ];
        let s = status_of(&p, &cs, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(cond(&s, "Ready"), "True");
        assert_eq!(s.pod_ip.as_deref(), Some("172.17.0.9"));
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        let c = &s.container_statuses.unwrap()[0];
        assert_eq!(c.container_id.as_deref(), Some("docker://id-a"));
        assert_eq!(c.restart_count, 2);
        assert!(c.ready);
        assert!(c.state.as_ref().unwrap().running.is_some());
    }

    #[test]
    fn a_pull_shows_in_the_waiting_message_of_a_container_not_running() {
        let p = pod("Always", &["a", "b"], &["i"]);
        let cs = [
            sandbox(),
            record(
                "a",
                ContainerKind::Container,
                runtime::ContainerState::Running,
                None,
                Some("id-POD"),
            ),
        ];
        let s = status_of(&p, &cs, &HashMap::new());
        let message = "Pulling image \"x\": 1 of 2 layers";
        let shown = pulling(&s, "b", message).expect("b waits");
        let b = &shown.container_statuses.as_ref().unwrap()[1];
        let w = b.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(w.reason.as_deref(), Some("ContainerCreating"));
        assert_eq!(w.message.as_deref(), Some(message));
        assert_eq!(
            shown.container_statuses.as_ref().unwrap()[0],
            s.container_statuses.as_ref().unwrap()[0],
            "the others are as they were"
        );
        assert!(pulling(&s, "i", message).is_some(), "init containers too");
        assert_eq!(pulling(&s, "a", message), None, "a runs");
        assert_eq!(pulling(&s, "nope", message), None);
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
                    ContainerKind::Container,
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
    fn init_containers_gate_the_pod() {
        let p = pod("Always", &["a"], &["i"]);
        let running_init = [
            sandbox(),
            record(
                "i",
                ContainerKind::Container,
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
                ContainerKind::Container,
                runtime::ContainerState::Exited,
                Some(0),
                Some("id-POD"),
            ),
            record(
                "a",
                ContainerKind::Container,
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
                ContainerKind::Container,
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
                ContainerKind::Container,
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
            reason: RefusalReason::OutOfcpu,
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

    /// `p` with its init container `name` a sidecar.
    fn with_sidecar(mut p: Pod, name: &str) -> Pod {
        let spec = p.spec.as_mut().unwrap();
        for c in spec.init_containers.iter_mut().flatten() {
            if c.name == name {
                c.restart_policy = Some("Always".into());
            }
        }
        p
    }

    fn running(name: &str) -> runtime::ContainerDetails {
        record(
            name,
            ContainerKind::Container,
            runtime::ContainerState::Running,
            None,
            Some("id-POD"),
        )
    }

    fn exited(name: &str, code: i64) -> runtime::ContainerDetails {
        record(
            name,
            ContainerKind::Container,
            runtime::ContainerState::Exited,
            Some(code),
            Some("id-POD"),
        )
    }

    fn with_probes(
        p: &Pod,
        cs: &[runtime::ContainerDetails],
        probes: &dyn Fn(&str) -> Option<ProbeState>,
    ) -> PodStatus {
        let facts = Facts {
            waiting: &HashMap::new(),
            probes,
            messages: &HashMap::new(),
            host_ip: "127.0.0.1",
            refused: None,
        };
        pod_status(p, cs, &facts)
    }

    #[test]
    fn a_started_sidecar_initializes_the_pod_and_shows_running() {
        let p = with_sidecar(pod("Always", &["a"], &["s"]), "s");
        let s = status_of(&p, &[sandbox(), running("s")], &HashMap::new());
        assert_eq!(cond(&s, "Initialized"), "True");
        let st = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(st.started, Some(true));
        assert!(st.ready);
        assert!(st.state.as_ref().unwrap().running.is_some());
        assert_eq!(st.restart_count, 2);
        // Not started yet (its startup probe runs): not initialized.
        let unstarted = |_: &str| {
            Some(ProbeState {
                ready: false,
                started: false,
            })
        };
        let s = with_probes(&p, &[sandbox(), running("s")], &unstarted);
        assert_eq!(cond(&s, "Initialized"), "False");
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        assert_eq!(
            s.init_container_statuses.as_ref().unwrap()[0].started,
            Some(false)
        );
    }

    #[test]
    fn an_unready_sidecar_keeps_the_pod_unready() {
        let p = with_sidecar(pod("Always", &["a"], &["s"]), "s");
        let cs = [sandbox(), running("s"), running("a")];
        let s = status_of(&p, &cs, &HashMap::new());
        assert_eq!(
            (cond(&s, "ContainersReady"), cond(&s, "Ready")),
            ("True".into(), "True".into())
        );
        let probes = |id: &str| {
            (id == "id-s").then_some(ProbeState {
                ready: false,
                started: true,
            })
        };
        let s = with_probes(&p, &cs, &probes);
        assert_eq!(cond(&s, "ContainersReady"), "False");
        assert_eq!(cond(&s, "Ready"), "False");
        assert_eq!(cond(&s, "Initialized"), "True");
        assert!(!s.init_container_statuses.as_ref().unwrap()[0].ready);
        assert_eq!(s.phase.as_deref(), Some("Running"));
    }

    #[test]
    fn a_restarting_sidecar_does_not_uninitialize_a_running_pod() {
        let p = with_sidecar(pod("Always", &["a"], &["s"]), "s");
        let mut w = HashMap::new();
        w.insert(
            "s".to_string(),
            Waiting {
                reason: WaitingReason::CrashLoopBackOff,
                message: "back-off 10s".into(),
            },
        );
        let s = status_of(&p, &[sandbox(), exited("s", 1), running("a")], &w);
        assert_eq!(cond(&s, "Initialized"), "True");
        assert_eq!(s.phase.as_deref(), Some("Running"));
        let st = &s.init_container_statuses.as_ref().unwrap()[0];
        let waiting = st.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        // Before any app ran, it is not.
        let s = status_of(&p, &[sandbox(), exited("s", 1)], &w);
        assert_eq!(cond(&s, "Initialized"), "False");
    }

    #[test]
    fn a_never_pod_is_succeeded_or_failed_by_its_apps_alone() {
        let p = with_sidecar(pod("Never", &["a"], &["s", "i"]), "s");
        // The app is done, the sidecar still runs (about to be stopped).
        let cs = [sandbox(), running("s"), exited("i", 0), exited("a", 0)];
        assert_eq!(
            status_of(&p, &cs, &HashMap::new()).phase.as_deref(),
            Some("Succeeded")
        );
        // The sidecar stopped (SIGTERM'd: 143): still Succeeded, not Failed.
        let cs = [sandbox(), exited("s", 143), exited("i", 0), exited("a", 0)];
        let s = status_of(&p, &cs, &HashMap::new());
        assert_eq!(s.phase.as_deref(), Some("Succeeded"));
        assert_eq!(cond(&s, "Initialized"), "True");
        let cs = [sandbox(), exited("s", 0), exited("i", 0), exited("a", 1)];
        assert_eq!(
            status_of(&p, &cs, &HashMap::new()).phase.as_deref(),
            Some("Failed")
        );
    }
}
