//! One container's status (`state`, `lastState`, readiness, restarts) from
//! its newest record and the one before, and how it counts towards the pod
//! phase.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus,
};

use super::{time, Facts};
use crate::decide::probe::ProbeState;
use crate::model::naming::{ContainerKind, ContainerName, PodLabels};
use crate::model::{TerminatedReason, WaitingReason};
use crate::runtime::{self, ContainerDetails};

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

pub(super) fn waiting(reason: WaitingReason, message: Option<&str>) -> ContainerState {
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
pub(super) fn by_name(
    containers: &[ContainerDetails],
    kind: ContainerKind,
) -> HashMap<String, Vec<(&ContainerDetails, PodLabels)>> {
    let mut out: HashMap<String, Vec<(u32, &ContainerDetails, PodLabels)>> = HashMap::new();
    for d in containers {
        let Some(labels) = PodLabels::parse(&d.summary.labels) else {
            continue;
        };
        if labels.kind != kind {
            continue;
        }
        let attempt = ContainerName::parse(&d.summary.name).map_or(0, |n| n.attempt);
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

/// How one container counts towards the pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Count {
    Running,
    Waiting,
    Succeeded,
    Failed,
}

pub(super) fn container_status(
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

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::*;
    use super::*;

    #[test]
    fn crash_loop_shows_waiting_and_the_last_exit() {
        let p = pod("Always", &["a"], &[]);
        let cs = [
            sandbox(),
            record(
                "a",
                ContainerKind::Container,
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
            ContainerKind::Container,
            runtime::ContainerState::Exited,
            Some(7),
            Some("id-POD"),
        );
        old.summary.id = "old".into();
        let mut new = record(
            "a",
            ContainerKind::Container,
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
            ContainerKind::Container,
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
    fn termination_messages_land_in_the_terminated_state() {
        let p = pod("Never", &["a"], &[]);
        let cs = [
            sandbox(),
            record(
                "a",
                ContainerKind::Container,
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
