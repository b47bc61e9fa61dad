//! The planner's test world: a pod and what the engine shows of it, built
//! one container at a time with a clock that only moves forward.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use super::{plan, Desired, Observed, PodActions, StartReason};
use crate::decide::backoff::Backoff;
use crate::decide::gc::GcPolicy;
use crate::model::naming::{self, ContainerKind, PodLabels};
use crate::runtime::ContainerState;

pub(crate) const INFRA: &str = "pause:1";

pub(crate) fn pod(policy: &str, names: &[&str]) -> Pod {
    Pod {
        spec: Some(PodSpec {
            restart_policy: Some(policy.into()),
            containers: names
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    image: Some("busybox:1".into()),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub(crate) struct World {
    pub(crate) pod: Pod,
    pub(crate) observed: Vec<Observed>,
    pub(crate) clock: i64,
    pub(crate) backoff: Backoff,
    pub(crate) now: DateTime<Utc>,
    pub(crate) kill_requests: Vec<String>,
    pub(crate) unstarted: Vec<String>,
    pub(crate) gc: GcPolicy,
}

pub(crate) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
}

impl World {
    pub(crate) fn new(policy: &str, names: &[&str]) -> Self {
        Self {
            pod: pod(policy, names),
            observed: vec![],
            clock: 0,
            backoff: Backoff::default(),
            now: at(1000),
            kill_requests: vec![],
            unstarted: vec![],
            gc: GcPolicy::default(),
        }
    }

    pub(crate) fn desired(&self) -> Desired<'_> {
        Desired {
            pod: &self.pod,
            infra_image: INFRA,
            backoff: &self.backoff,
            now: self.now,
            kill_requests: &self.kill_requests,
            unstarted: &self.unstarted,
            gc: self.gc,
        }
    }

    pub(crate) fn plan(&self) -> PodActions {
        plan(&self.desired(), &self.observed)
    }

    pub(crate) fn sandbox(&mut self, state: ContainerState) -> String {
        let hash = naming::sandbox_hash(&self.pod, INFRA);
        self.add(
            ContainerKind::Sandbox,
            naming::INFRA_NAME,
            &hash,
            0,
            state,
            None,
        )
    }

    pub(crate) fn app(&mut self, name: &str, state: ContainerState, exit: Option<i64>) -> String {
        let spec = self.pod.spec.as_ref().unwrap();
        let spec = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
            .unwrap_or_default();
        let hash = naming::container_hash(&spec);
        let attempt = self
            .observed
            .iter()
            .filter(|o| o.labels.container_name == name)
            .count() as u32;
        self.add(ContainerKind::Container, name, &hash, attempt, state, exit)
    }

    pub(crate) fn add(
        &mut self,
        kind: ContainerKind,
        name: &str,
        hash: &str,
        attempt: u32,
        state: ContainerState,
        exit_code: Option<i64>,
    ) -> String {
        self.clock += 1;
        let id = format!("{name}-{}", self.clock);
        let sandbox_id = self
            .observed
            .iter()
            .rev()
            .find(|o| o.labels.kind == ContainerKind::Sandbox)
            .map(|o| o.id.clone());
        self.observed.push(Observed {
            id: id.clone(),
            labels: PodLabels {
                pod_name: "p".into(),
                namespace: "default".into(),
                uid: "u".into(),
                kind,
                container_name: name.into(),
                hash: hash.into(),
                restart_count: attempt,
                grace_period_secs: Some(30),
                sandbox_id: if kind == ContainerKind::Container {
                    sandbox_id
                } else {
                    None
                },
            },
            attempt,
            state,
            exit_code,
            created: self.clock,
            started_at: Some(at(self.clock)),
            finished_at: (state == ContainerState::Exited).then(|| at(self.clock + 1)),
        });
        id
    }
}

pub(crate) fn started(a: &PodActions) -> Vec<(&str, u32, StartReason)> {
    a.start
        .iter()
        .map(|s| (s.name.as_str(), s.restart_count, s.reason))
        .collect()
}

pub(crate) fn with_init(mut w: World, names: &[&str]) -> World {
    w.pod.spec.as_mut().unwrap().init_containers = Some(
        names
            .iter()
            .map(|n| Container {
                name: n.to_string(),
                image: Some("busybox:1".into()),
                ..Default::default()
            })
            .collect(),
    );
    w
}

/// Makes the init container `name` a sidecar (`restartPolicy: Always`).
pub(crate) fn sidecar(mut w: World, name: &str) -> World {
    let spec = w.pod.spec.as_mut().unwrap();
    let c = spec
        .init_containers
        .iter_mut()
        .flatten()
        .find(|c| c.name == name)
        .unwrap();
    c.restart_policy = Some("Always".into());
    w
}

pub(crate) fn started_full(a: &PodActions) -> Vec<(&str, bool)> {
    a.start.iter().map(|s| (s.name.as_str(), s.init)).collect()
}
