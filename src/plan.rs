//! The pure planner: what one sync of one pod must do.
//!
//! [`plan`] carries every decision of the kubelet's `SyncPod`
//! (`computePodActions`): whether the infra container must be (re)created,
//! which containers to kill, which to start, which dead ones are superseded.
//! It does no I/O; the PodWorker carries its answer out, and a re-plan after
//! that answer has been carried out is empty (convergence).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use chrono::{DateTime, Utc};

use crate::backoff::{self, Backoff};
use crate::naming::{self, Kind, PodLabels};
use crate::runtime::ContainerState;

/// One container of the pod as observed in the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub labels: PodLabels,
    /// The attempt number from the container's name.
    pub attempt: u32,
    pub state: ContainerState,
    /// Known once the container has exited.
    pub exit_code: Option<i64>,
    /// Creation time, seconds since the epoch (orders records of one name).
    pub created: i64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Observed {
    fn running(&self) -> bool {
        self.state == ContainerState::Running
    }

    /// How long it ran before it stopped, when both times are known.
    pub fn ran_for(&self) -> Option<std::time::Duration> {
        (self.finished_at? - self.started_at?).to_std().ok()
    }
}

/// What the pod should look like: the spec plus what the node decides.
#[derive(Debug, Clone)]
pub struct Desired<'a> {
    pub pod: &'a Pod,
    pub infra_image: &'a str,
    /// Restart back-off per container name.
    pub backoff: &'a Backoff,
    pub now: DateTime<Utc>,
}

impl Desired<'_> {
    fn containers(&self) -> &[Container] {
        self.pod
            .spec
            .as_ref()
            .map(|s| s.containers.as_slice())
            .unwrap_or_default()
    }

    fn restart_policy(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.as_deref())
            .unwrap_or("Always")
    }
}

/// Why a container is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// Its spec changed: it is replaced.
    SpecChanged,
    /// The pod's infra container is being recreated.
    PodRecreated,
    /// It no longer appears in the pod spec, or is a duplicate.
    Unwanted,
    /// Its pod was removed.
    PodRemoved,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub id: String,
    pub container_name: String,
    pub kind: Kind,
    pub reason: KillReason,
}

/// Why a container is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartReason {
    /// No record of it yet (or a new infra container).
    FirstStart,
    /// It died and the restart policy says to start it again.
    Restart,
    /// Its spec changed.
    SpecChanged,
}

/// A container to create and start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Index in `spec.containers`.
    pub index: usize,
    pub name: String,
    pub attempt: u32,
    pub restart_count: u32,
    pub reason: StartReason,
}

/// The infra container to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateSandbox {
    pub attempt: u32,
    pub hash: String,
}

/// Everything one sync does, in this order: kill, remove, create the sandbox,
/// start created-but-unstarted containers, start new ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Running containers to stop; apps in parallel, then the infra container.
    pub kill: Vec<Kill>,
    /// Dead (or killed here) containers to remove: superseded records.
    pub remove: Vec<String>,
    pub create_sandbox: Option<CreateSandbox>,
    /// The infra container the app containers join, when it is kept.
    pub sandbox_id: Option<String>,
    /// Containers that were created but never started (the agent stopped
    /// between the two calls): started as they are.
    pub start_existing: Vec<String>,
    pub start: Vec<Start>,
    /// Containers that would restart but are in CrashLoopBackOff, with the
    /// time left and the current delay.
    pub backing_off: Vec<BackingOff>,
}

/// A dead container waiting out its restart back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingOff {
    pub name: String,
    pub remaining: std::time::Duration,
    pub delay: std::time::Duration,
}

impl PodActions {
    /// Whether the sync changes nothing.
    pub fn is_empty(&self) -> bool {
        self.kill.is_empty()
            && self.remove.is_empty()
            && self.create_sandbox.is_none()
            && self.start_existing.is_empty()
            && self.start.is_empty()
    }
}

/// Whether a container that exited with `exit_code` is started again.
pub fn should_restart(policy: &str, exit_code: Option<i64>) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != Some(0),
        _ => true,
    }
}

/// The newest record of each name, and the older ones.
fn newest_by_name(observed: &[Observed], kind: Kind) -> BTreeMap<&str, Vec<&Observed>> {
    let mut by_name: BTreeMap<&str, Vec<&Observed>> = BTreeMap::new();
    for o in observed.iter().filter(|o| o.labels.kind == kind) {
        by_name
            .entry(o.labels.container_name.as_str())
            .or_default()
            .push(o);
    }
    for records in by_name.values_mut() {
        // Newest first: by attempt, then by creation time.
        records.sort_by_key(|r| std::cmp::Reverse((r.attempt, r.created)));
    }
    by_name
}

fn kill(o: &Observed, reason: KillReason) -> Kill {
    Kill {
        id: o.id.clone(),
        container_name: o.labels.container_name.clone(),
        kind: o.labels.kind,
        reason,
    }
}

/// Plans one sync of a pod that should run.
pub fn plan(desired: &Desired<'_>, observed: &[Observed]) -> PodActions {
    let mut actions = PodActions::default();
    let sandbox_hash = naming::sandbox_hash(desired.pod, desired.infra_image);
    let policy = desired.restart_policy();
    let sandboxes = newest_by_name(observed, Kind::Sandbox);
    let sandbox_records = sandboxes
        .get(naming::INFRA_NAME)
        .cloned()
        .unwrap_or_default();
    let apps = newest_by_name(observed, Kind::Container);

    // Older sandboxes: killed if somehow running, removed once dead.
    for old in sandbox_records.iter().skip(1) {
        if old.running() {
            actions.kill.push(kill(old, KillReason::Unwanted));
        }
        actions.remove.push(old.id.clone());
    }
    // Older records of each app container: removed (the newest keeps the
    // restart count and the last exit); a running duplicate is killed.
    for records in apps.values() {
        for old in records.iter().skip(1) {
            if old.running() {
                actions.kill.push(kill(old, KillReason::Unwanted));
            }
            actions.remove.push(old.id.clone());
        }
    }
    // Containers no longer in the spec.
    for (name, records) in &apps {
        if !desired.containers().iter().any(|c| c.name == *name) {
            if records[0].running() {
                actions.kill.push(kill(records[0], KillReason::Unwanted));
            }
            actions.remove.push(records[0].id.clone());
        }
    }

    let current = sandbox_records.first().copied();
    let sandbox_ok = current.is_some_and(|s| s.running() && s.labels.hash == sandbox_hash);

    if !sandbox_ok {
        // A Never pod whose containers already ran is finished: its infra
        // container is not brought back (the kubelet does the same).
        let ran_before = current.is_some() && !apps.is_empty();
        if policy == "Never" && ran_before {
            for records in apps.values() {
                if records[0].running() {
                    actions
                        .kill
                        .push(kill(records[0], KillReason::PodRecreated));
                }
            }
            return actions;
        }
        if let Some(s) = current {
            if s.running() {
                actions.kill.push(kill(s, KillReason::PodRecreated));
            }
        }
        for records in apps.values() {
            if records[0].running() {
                actions
                    .kill
                    .push(kill(records[0], KillReason::PodRecreated));
            }
        }
        actions.create_sandbox = Some(CreateSandbox {
            attempt: current.map_or(0, |s| s.attempt + 1),
            hash: sandbox_hash,
        });
        for (index, c) in desired.containers().iter().enumerate() {
            let last = apps.get(c.name.as_str()).map(|r| r[0]);
            // OnFailure: a container that already succeeded stays done.
            if last.is_some_and(|l| !l.running() && !should_restart(policy, l.exit_code)) {
                continue;
            }
            actions.start.push(Start {
                index,
                name: c.name.clone(),
                attempt: last.map_or(0, |l| l.attempt + 1),
                restart_count: last.map_or(0, |l| l.labels.restart_count + 1),
                reason: if last.is_some() {
                    StartReason::Restart
                } else {
                    StartReason::FirstStart
                },
            });
        }
        return actions;
    }

    let sandbox = current.expect("sandbox_ok implies a sandbox");
    actions.sandbox_id = Some(sandbox.id.clone());
    for (index, c) in desired.containers().iter().enumerate() {
        let hash = naming::container_hash(c);
        let Some(last) = apps.get(c.name.as_str()).map(|r| r[0]) else {
            actions.start.push(Start {
                index,
                name: c.name.clone(),
                attempt: 0,
                restart_count: 0,
                reason: StartReason::FirstStart,
            });
            continue;
        };
        let in_sandbox = last.labels.sandbox_id.as_deref() == Some(sandbox.id.as_str());
        let next = |reason| Start {
            index,
            name: c.name.clone(),
            attempt: last.attempt + 1,
            restart_count: last.labels.restart_count + 1,
            reason,
        };
        match last.state {
            ContainerState::Running | ContainerState::Unknown
                if last.labels.hash != hash || !in_sandbox =>
            {
                actions.kill.push(kill(last, KillReason::SpecChanged));
                actions.start.push(next(StartReason::SpecChanged));
            }
            ContainerState::Running | ContainerState::Unknown => {}
            ContainerState::Created if last.labels.hash == hash && in_sandbox => {
                actions.start_existing.push(last.id.clone());
            }
            ContainerState::Created => {
                actions.remove.push(last.id.clone());
                actions.start.push(next(StartReason::SpecChanged));
            }
            ContainerState::Exited if last.labels.hash != hash => {
                // A changed spec replaces a dead container whatever the
                // policy says (the user asked for a new one).
                actions.start.push(next(StartReason::SpecChanged));
            }
            ContainerState::Exited if should_restart(policy, last.exit_code) => {
                let remaining = last
                    .finished_at
                    .filter(|_| last.ran_for().is_none_or(|d| d < backoff::RESET_AFTER))
                    .and_then(|f| desired.backoff.remaining(&c.name, f, desired.now));
                match remaining {
                    Some(remaining) => actions.backing_off.push(BackingOff {
                        name: c.name.clone(),
                        remaining,
                        delay: desired.backoff.delay(&c.name).unwrap_or_default(),
                    }),
                    None => actions.start.push(next(StartReason::Restart)),
                }
            }
            ContainerState::Exited => {}
        }
    }
    actions
}

/// Plans the end of a pod that is no longer wanted: every running container
/// is killed (apps first, infra last: the worker orders them) and every
/// record removed.
pub fn plan_removal(observed: &[Observed]) -> PodActions {
    let mut actions = PodActions::default();
    for o in observed {
        if o.running() || o.state == ContainerState::Unknown {
            actions.kill.push(kill(o, KillReason::PodRemoved));
        }
        actions.remove.push(o.id.clone());
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    const INFRA: &str = "pause:1";

    fn pod(policy: &str, names: &[&str]) -> Pod {
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

    struct World {
        pod: Pod,
        observed: Vec<Observed>,
        clock: i64,
        backoff: Backoff,
        now: DateTime<Utc>,
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    impl World {
        fn new(policy: &str, names: &[&str]) -> Self {
            Self {
                pod: pod(policy, names),
                observed: vec![],
                clock: 0,
                backoff: Backoff::default(),
                now: at(1000),
            }
        }

        fn desired(&self) -> Desired<'_> {
            Desired {
                pod: &self.pod,
                infra_image: INFRA,
                backoff: &self.backoff,
                now: self.now,
            }
        }

        fn plan(&self) -> PodActions {
            plan(&self.desired(), &self.observed)
        }

        fn sandbox(&mut self, state: ContainerState) -> String {
            let hash = naming::sandbox_hash(&self.pod, INFRA);
            self.add(Kind::Sandbox, naming::INFRA_NAME, &hash, 0, state, None)
        }

        fn app(&mut self, name: &str, state: ContainerState, exit: Option<i64>) -> String {
            let spec = self
                .pod
                .spec
                .as_ref()
                .unwrap()
                .containers
                .iter()
                .find(|c| c.name == name)
                .cloned()
                .unwrap_or_default();
            let hash = naming::container_hash(&spec);
            let attempt = self
                .observed
                .iter()
                .filter(|o| o.labels.container_name == name)
                .count() as u32;
            self.add(Kind::Container, name, &hash, attempt, state, exit)
        }

        fn add(
            &mut self,
            kind: Kind,
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
                .find(|o| o.labels.kind == Kind::Sandbox)
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
                    sandbox_id: if kind == Kind::Container {
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

    fn started(a: &PodActions) -> Vec<(&str, u32, StartReason)> {
        a.start
            .iter()
            .map(|s| (s.name.as_str(), s.restart_count, s.reason))
            .collect()
    }

    #[test]
    fn empty_pod_creates_sandbox_then_every_container() {
        let w = World::new("Always", &["a", "b"]);
        let a = w.plan();
        assert_eq!(a.create_sandbox.as_ref().map(|s| s.attempt), Some(0));
        assert_eq!(
            started(&a),
            vec![
                ("a", 0, StartReason::FirstStart),
                ("b", 0, StartReason::FirstStart)
            ]
        );
        assert!(a.kill.is_empty() && a.remove.is_empty());
    }

    #[test]
    fn converged_pod_plans_nothing() {
        let mut w = World::new("Always", &["a", "b"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Running, None);
        w.app("b", ContainerState::Running, None);
        let a = w.plan();
        assert!(a.is_empty(), "{a:?}");
        assert_eq!(a.sandbox_id.as_deref(), Some(w.observed[0].id.as_str()));
    }

    #[test]
    fn missing_container_is_started_in_the_running_sandbox() {
        let mut w = World::new("Always", &["a", "b"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Running, None);
        let a = w.plan();
        assert!(a.create_sandbox.is_none());
        assert_eq!(started(&a), vec![("b", 0, StartReason::FirstStart)]);
    }

    #[test]
    fn restart_policy_always_restarts_any_exit() {
        for code in [0, 1, 137] {
            let mut w = World::new("Always", &["a"]);
            w.sandbox(ContainerState::Running);
            w.app("a", ContainerState::Exited, Some(code));
            assert_eq!(
                started(&w.plan()),
                vec![("a", 1, StartReason::Restart)],
                "exit {code}"
            );
        }
    }

    #[test]
    fn crash_loop_waits_out_the_backoff_from_the_finish_time() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(1));
        let finished = w.observed[1].finished_at.unwrap();
        w.backoff.record_restart("a");
        w.backoff.record_restart("a"); // 20 s
        w.now = finished + chrono::Duration::seconds(5);
        let a = w.plan();
        assert!(a.start.is_empty());
        assert_eq!(
            a.backing_off,
            vec![BackingOff {
                name: "a".into(),
                remaining: std::time::Duration::from_secs(15),
                delay: std::time::Duration::from_secs(20),
            }]
        );
        w.now = finished + chrono::Duration::seconds(20);
        assert_eq!(started(&w.plan()), vec![("a", 1, StartReason::Restart)]);
    }

    #[test]
    fn a_long_clean_run_ignores_the_backoff() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(1));
        w.observed[1].started_at = Some(at(-700));
        w.backoff.record_restart("a");
        w.now = w.observed[1].finished_at.unwrap();
        assert_eq!(started(&w.plan()), vec![("a", 1, StartReason::Restart)]);
    }

    #[test]
    fn restart_policy_on_failure_restarts_only_failures() {
        let mut w = World::new("OnFailure", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(0));
        assert!(w.plan().is_empty());
        let mut w = World::new("OnFailure", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(2));
        assert_eq!(started(&w.plan()), vec![("a", 1, StartReason::Restart)]);
    }

    #[test]
    fn restart_policy_never_restarts_nothing() {
        for code in [0, 1] {
            let mut w = World::new("Never", &["a"]);
            w.sandbox(ContainerState::Running);
            w.app("a", ContainerState::Exited, Some(code));
            assert!(w.plan().is_empty(), "exit {code}");
        }
    }

    #[test]
    fn restart_count_carries_over() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(1));
        w.app("a", ContainerState::Exited, Some(1));
        w.app("a", ContainerState::Exited, Some(1));
        let a = w.plan();
        assert_eq!(started(&a), vec![("a", 3, StartReason::Restart)]);
        assert_eq!(a.start[0].attempt, 3);
        // The two older records are superseded; the newest stays.
        assert_eq!(a.remove, vec!["a-3".to_string(), "a-2".to_string()]);
    }

    #[test]
    fn hash_change_replaces_only_that_container() {
        let mut w = World::new("Always", &["a", "b"]);
        w.sandbox(ContainerState::Running);
        let a_id = w.app("a", ContainerState::Running, None);
        w.app("b", ContainerState::Running, None);
        w.pod.spec.as_mut().unwrap().containers[0].args = Some(vec!["new".into()]);
        let a = w.plan();
        assert!(a.create_sandbox.is_none());
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].id, a_id);
        assert_eq!(a.kill[0].reason, KillReason::SpecChanged);
        assert_eq!(started(&a), vec![("a", 1, StartReason::SpecChanged)]);
    }

    #[test]
    fn hash_change_replaces_a_dead_never_container() {
        let mut w = World::new("Never", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(0));
        w.pod.spec.as_mut().unwrap().containers[0].args = Some(vec!["new".into()]);
        assert_eq!(started(&w.plan()), vec![("a", 1, StartReason::SpecChanged)]);
    }

    #[test]
    fn dead_sandbox_recreates_the_pod() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Exited);
        let a_id = w.app("a", ContainerState::Running, None);
        let a = w.plan();
        assert_eq!(a.create_sandbox.as_ref().map(|s| s.attempt), Some(1));
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].id, a_id);
        assert_eq!(a.kill[0].reason, KillReason::PodRecreated);
        assert_eq!(started(&a), vec![("a", 1, StartReason::Restart)]);
    }

    #[test]
    fn sandbox_hash_change_kills_infra_and_apps() {
        let mut w = World::new("Always", &["a"]);
        let sb = w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Running, None);
        w.pod.spec.as_mut().unwrap().host_network = Some(true);
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        let killed: Vec<_> = a.kill.iter().map(|k| (k.id.as_str(), k.kind)).collect();
        assert!(killed.contains(&(sb.as_str(), Kind::Sandbox)));
        assert!(killed.iter().any(|(_, k)| *k == Kind::Container));
    }

    #[test]
    fn finished_never_pod_is_not_recreated() {
        let mut w = World::new("Never", &["a"]);
        w.sandbox(ContainerState::Exited);
        w.app("a", ContainerState::Exited, Some(1));
        assert!(w.plan().is_empty());
    }

    #[test]
    fn on_failure_pod_with_dead_sandbox_restarts_only_failed_containers() {
        let mut w = World::new("OnFailure", &["ok", "bad"]);
        w.sandbox(ContainerState::Exited);
        w.app("ok", ContainerState::Exited, Some(0));
        w.app("bad", ContainerState::Exited, Some(3));
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        assert_eq!(started(&a), vec![("bad", 1, StartReason::Restart)]);
    }

    #[test]
    fn created_but_unstarted_container_is_started_not_duplicated() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        let id = w.app("a", ContainerState::Created, None);
        let a = w.plan();
        assert_eq!(a.start_existing, vec![id]);
        assert!(a.start.is_empty());
    }

    #[test]
    fn container_removed_from_spec_is_killed() {
        let mut w = World::new("Always", &["a", "b"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Running, None);
        let b = w.app("b", ContainerState::Running, None);
        w.pod.spec.as_mut().unwrap().containers.pop();
        let a = w.plan();
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].id, b);
        assert_eq!(a.kill[0].reason, KillReason::Unwanted);
        assert_eq!(a.remove, vec![b]);
    }

    #[test]
    fn container_of_an_old_sandbox_is_replaced() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        let a_id = w.app("a", ContainerState::Running, None);
        w.observed
            .iter_mut()
            .find(|o| o.id == a_id)
            .unwrap()
            .labels
            .sandbox_id = Some("gone".into());
        let a = w.plan();
        assert_eq!(a.kill.len(), 1);
        assert_eq!(started(&a), vec![("a", 1, StartReason::SpecChanged)]);
    }

    #[test]
    fn removal_kills_running_and_removes_all() {
        let mut w = World::new("Always", &["a", "b"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Running, None);
        w.app("b", ContainerState::Exited, Some(0));
        let a = plan_removal(&w.observed);
        assert_eq!(a.kill.len(), 2);
        assert_eq!(a.remove.len(), 3);
        assert!(a.start.is_empty() && a.create_sandbox.is_none());
    }
}
