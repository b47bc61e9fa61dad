//! The pure planner: what one sync of one pod must do.
//!
//! [`plan`] carries every decision of the kubelet's `SyncPod`
//! (`computePodActions`): whether the infra container must be (re)created,
//! which containers to kill, which to start, which dead ones are superseded.
//! It does no I/O; the PodWorker carries its answer out, and a re-plan after
//! that answer has been carried out is empty (convergence).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use chrono::{DateTime, Utc};

use crate::decide::backoff::{self, Backoff};
use crate::model::naming::{self, Kind, PodLabels};
use crate::model::{PodExt, RestartPolicy};
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
    /// Running containers the prober asked to kill (liveness failed).
    pub kill_requests: &'a [String],
    pub gc: GcPolicy,
}

/// Which dead containers of a pod may be removed (the kubelet's
/// `--minimum-container-ttl-duration` and
/// `--maximum-dead-containers-per-container`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcPolicy {
    pub min_age: std::time::Duration,
    /// Records kept per container name (at least 1); `None` = all.
    pub max_per_container: Option<usize>,
}

impl Default for GcPolicy {
    fn default() -> Self {
        Self {
            min_age: std::time::Duration::from_secs(60),
            max_per_container: Some(2),
        }
    }
}

impl PodExt for Desired<'_> {
    fn pod(&self) -> &Pod {
        self.pod
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
    /// Its liveness probe failed.
    Unhealthy,
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
    /// Index in `spec.containers`, or in `spec.initContainers` when `init`.
    pub index: usize,
    pub init: bool,
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
    let sandboxes = newest_by_name(observed, Kind::Sandbox);
    let sandbox_records = sandboxes
        .get(naming::INFRA_NAME)
        .cloned()
        .unwrap_or_default();
    let records = newest_by_name(observed, Kind::Container);
    let known = |name: &str| {
        desired.containers().iter().any(|c| c.name == name)
            || desired.init_containers().iter().any(|c| c.name == name)
    };

    // Housekeeping: a running duplicate (an older record still running) is
    // killed, and a container no longer in the spec is killed and removed.
    // Dead older records are left to the garbage collector.
    for old in sandbox_records.iter().skip(1).filter(|o| o.running()) {
        actions.kill.push(kill(old, KillReason::Unwanted));
    }
    for (name, recs) in &records {
        for old in recs.iter().skip(1).filter(|o| o.running()) {
            actions.kill.push(kill(old, KillReason::Unwanted));
        }
        if !known(name) {
            if recs[0].running() {
                actions.kill.push(kill(recs[0], KillReason::Unwanted));
            }
            actions.remove.push(recs[0].id.clone());
        }
    }
    actions.remove.extend(collect_garbage(desired, observed));

    let current = sandbox_records.first().copied();
    let in_current = |o: &Observed| {
        current.is_some_and(|s| o.labels.sandbox_id.as_deref() == Some(s.id.as_str()))
    };
    // An init container whose spec changed after it ran: the pod must be
    // initialised again, in a new sandbox.
    let init_changed = desired.init_containers().iter().any(|c| {
        records
            .get(c.name.as_str())
            .is_some_and(|r| in_current(r[0]) && r[0].labels.hash != naming::container_hash(c))
    });
    // An infra container created but never started (the agent stopped
    // between the two calls) is started, not replaced.
    let created_only = current.filter(|s| {
        s.state == ContainerState::Created && s.labels.hash == sandbox_hash && !init_changed
    });
    if let Some(s) = created_only {
        actions.start_existing.push(s.id.clone());
    }
    let sandbox_ok = !init_changed
        && current.is_some_and(|s| {
            (s.running() || created_only.is_some()) && s.labels.hash == sandbox_hash
        });

    if !sandbox_ok {
        plan_new_sandbox(desired, current, &records, sandbox_hash, &mut actions);
        return actions;
    }
    let sandbox = current.expect("sandbox_ok implies a sandbox");
    actions.sandbox_id = Some(sandbox.id.clone());

    // Init containers: one at a time, in order, each to success.
    for (index, c) in desired.init_containers().iter().enumerate() {
        let last = records
            .get(c.name.as_str())
            .map(|r| r[0])
            .filter(|o| in_current(o));
        let target = Target {
            index,
            init: true,
            name: &c.name,
        };
        match last {
            None => {
                let before = records.get(c.name.as_str()).map(|r| r[0]);
                actions.start.push(target.first_or_again(before));
                return actions;
            }
            Some(o) if o.state == ContainerState::Created => {
                actions.start_existing.push(o.id.clone());
                return actions;
            }
            Some(o) if o.state != ContainerState::Exited => return actions, // running
            Some(o) if o.exit_code == Some(0) => continue,
            Some(o) => {
                if desired.restart_policy() != RestartPolicy::Never {
                    restart_or_back_off(desired, o, target, &mut actions);
                }
                return actions;
            }
        }
    }

    let policy = desired.restart_policy();
    for (index, c) in desired.containers().iter().enumerate() {
        let hash = naming::container_hash(c);
        let target = Target {
            index,
            init: false,
            name: &c.name,
        };
        let Some(last) = records.get(c.name.as_str()).map(|r| r[0]) else {
            actions.start.push(target.first_or_again(None));
            continue;
        };
        let fresh = last.labels.hash == hash && in_current(last);
        let asked_to_kill = desired.kill_requests.contains(&last.id);
        match last.state {
            ContainerState::Running | ContainerState::Unknown if !fresh => {
                actions.kill.push(kill(last, KillReason::SpecChanged));
                actions
                    .start
                    .push(target.next(last, StartReason::SpecChanged));
            }
            ContainerState::Running | ContainerState::Unknown if asked_to_kill => {
                // Liveness failed: killed, then restarted by the policy once
                // it has exited (the next sync sees it dead).
                actions.kill.push(kill(last, KillReason::Unhealthy));
            }
            ContainerState::Running | ContainerState::Unknown => {}
            ContainerState::Created if fresh => {
                actions.start_existing.push(last.id.clone());
            }
            ContainerState::Created => {
                actions.remove.push(last.id.clone());
                actions
                    .start
                    .push(target.next(last, StartReason::SpecChanged));
            }
            ContainerState::Exited if last.labels.hash != hash => {
                // A changed spec replaces a dead container whatever the
                // policy says (the user asked for a new one).
                actions
                    .start
                    .push(target.next(last, StartReason::SpecChanged));
            }
            ContainerState::Exited if policy.restarts(last.exit_code) => {
                restart_or_back_off(desired, last, target, &mut actions);
            }
            ContainerState::Exited => {}
        }
    }
    actions
}

/// Which container of the spec a start is for.
#[derive(Clone, Copy)]
struct Target<'a> {
    index: usize,
    init: bool,
    name: &'a str,
}

impl Target<'_> {
    /// The next attempt after `last`.
    fn next(&self, last: &Observed, reason: StartReason) -> Start {
        Start {
            index: self.index,
            init: self.init,
            name: self.name.to_string(),
            attempt: last.attempt + 1,
            restart_count: last.labels.restart_count + 1,
            reason,
        }
    }

    /// A first start, or the next attempt after an earlier record.
    fn first_or_again(&self, before: Option<&Observed>) -> Start {
        match before {
            Some(b) => self.next(b, StartReason::Restart),
            None => Start {
                index: self.index,
                init: self.init,
                name: self.name.to_string(),
                attempt: 0,
                restart_count: 0,
                reason: StartReason::FirstStart,
            },
        }
    }
}

/// Restarts a dead container unless its CrashLoopBackOff is still running.
fn restart_or_back_off(
    desired: &Desired<'_>,
    last: &Observed,
    target: Target<'_>,
    actions: &mut PodActions,
) {
    let remaining = last
        .finished_at
        .filter(|_| last.ran_for().is_none_or(|d| d < backoff::RESET_AFTER))
        .and_then(|f| desired.backoff.remaining(target.name, f, desired.now));
    match remaining {
        Some(remaining) => actions.backing_off.push(BackingOff {
            name: target.name.to_string(),
            remaining,
            delay: desired.backoff.delay(target.name).unwrap_or_default(),
        }),
        None => actions.start.push(target.next(last, StartReason::Restart)),
    }
}

/// The infra container is missing, dead or changed: the pod starts over in a
/// new one (init containers run again).
fn plan_new_sandbox(
    desired: &Desired<'_>,
    current: Option<&Observed>,
    records: &BTreeMap<&str, Vec<&Observed>>,
    sandbox_hash: String,
    actions: &mut PodActions,
) {
    let policy = desired.restart_policy();
    let running = || {
        records
            .values()
            .map(|r| r[0])
            .filter(|o| o.running() || o.state == ContainerState::Unknown)
    };
    // A Never pod whose containers already ran is finished: its infra
    // container is not brought back (the kubelet does the same).
    if policy == RestartPolicy::Never && current.is_some() && !records.is_empty() {
        for o in running() {
            actions.kill.push(kill(o, KillReason::PodRecreated));
        }
        return;
    }
    if let Some(s) = current.filter(|s| s.running()) {
        actions.kill.push(kill(s, KillReason::PodRecreated));
    }
    for o in running() {
        actions.kill.push(kill(o, KillReason::PodRecreated));
    }
    actions.create_sandbox = Some(CreateSandbox {
        attempt: current.map_or(0, |s| s.attempt + 1),
        hash: sandbox_hash,
    });
    if let Some(first) = desired.init_containers().first() {
        let before = records.get(first.name.as_str()).map(|r| r[0]);
        let target = Target {
            index: 0,
            init: true,
            name: &first.name,
        };
        actions.start.push(target.first_or_again(before));
        return;
    }
    for (index, c) in desired.containers().iter().enumerate() {
        let last = records.get(c.name.as_str()).map(|r| r[0]);
        // OnFailure: a container that already succeeded stays done.
        if last.is_some_and(|l| !l.running() && !policy.restarts(l.exit_code)) {
            continue;
        }
        let target = Target {
            index,
            init: false,
            name: &c.name,
        };
        actions.start.push(target.first_or_again(last));
    }
}

/// Dead containers of this pod that may go: beyond the newest
/// `max_per_container` records of a name, and dead for at least `min_age`.
/// The newest record of every name is never collected: it carries the
/// restart count and the last exit (and, for an init container, that it
/// succeeded).
fn collect_garbage(desired: &Desired<'_>, observed: &[Observed]) -> Vec<String> {
    let gc = &desired.gc;
    let mut out = Vec::new();
    for kind in [Kind::Sandbox, Kind::Container] {
        for recs in newest_by_name(observed, kind).values() {
            let keep = gc.max_per_container.map_or(usize::MAX, |m| m.max(1));
            for old in recs.iter().skip(keep) {
                let dead_long_enough = old.state == ContainerState::Exited
                    && old.finished_at.is_none_or(|f| {
                        (desired.now - f).to_std().unwrap_or_default() >= gc.min_age
                    });
                if dead_long_enough {
                    out.push(old.id.clone());
                }
            }
        }
    }
    out
}

/// Node-wide dead-container collection (`--maximum-dead-containers`): when
/// more than `max_dead` containers of the node are dead, the oldest go first
/// (by creation: the engine's list carries no finish time), but never the
/// newest record of a (pod, container), which a restart count and the last
/// exit still need, and never one created less than `min_age` ago.
pub fn node_garbage(
    listed: &[crate::runtime::ContainerSummary],
    max_dead: Option<usize>,
    min_age: std::time::Duration,
    now_secs: i64,
) -> Vec<String> {
    let Some(max_dead) = max_dead else {
        return Vec::new();
    };
    let dead: Vec<_> = listed
        .iter()
        .filter(|c| c.state == ContainerState::Exited)
        .collect();
    if dead.len() <= max_dead {
        return Vec::new();
    }
    let key = |c: &crate::runtime::ContainerSummary| {
        PodLabels::parse(&c.labels).map(|l| (l.uid, l.container_name))
    };
    let mut newest: BTreeMap<(String, String), i64> = BTreeMap::new();
    for c in listed {
        if let Some(k) = key(c) {
            let e = newest.entry(k).or_insert(c.created);
            *e = (*e).max(c.created);
        }
    }
    let min_age = i64::try_from(min_age.as_secs()).unwrap_or(i64::MAX);
    let mut candidates: Vec<_> = dead
        .iter()
        .filter(|c| key(c).is_some_and(|k| newest.get(&k) != Some(&c.created)))
        .filter(|c| now_secs.saturating_sub(c.created) >= min_age)
        .collect();
    candidates.sort_by_key(|c| c.created);
    candidates
        .into_iter()
        .take(dead.len() - max_dead)
        .map(|c| c.id.clone())
        .collect()
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
    use k8s_openapi::api::core::v1::{Container, PodSpec};

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
        kill_requests: Vec<String>,
        gc: GcPolicy,
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
                kill_requests: vec![],
                gc: GcPolicy::default(),
            }
        }

        fn desired(&self) -> Desired<'_> {
            Desired {
                pod: &self.pod,
                infra_image: INFRA,
                backoff: &self.backoff,
                now: self.now,
                kill_requests: &self.kill_requests,
                gc: self.gc,
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
        // Two records are kept per container; the oldest dead one goes.
        assert_eq!(a.remove, vec!["a-2".to_string()]);
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
    fn a_created_but_unstarted_sandbox_is_started_not_replaced() {
        let mut w = World::new("Always", &["a"]);
        let sb = w.sandbox(ContainerState::Created);
        let a = w.plan();
        assert!(a.create_sandbox.is_none());
        assert_eq!(a.start_existing, vec![sb.clone()]);
        assert_eq!(a.sandbox_id, Some(sb));
        assert_eq!(started(&a), vec![("a", 0, StartReason::FirstStart)]);
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

    fn with_init(mut w: World, names: &[&str]) -> World {
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

    fn started_full(a: &PodActions) -> Vec<(&str, bool)> {
        a.start.iter().map(|s| (s.name.as_str(), s.init)).collect()
    }

    #[test]
    fn a_new_sandbox_starts_the_first_init_container_only() {
        let w = with_init(World::new("Always", &["app"]), &["i1", "i2"]);
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        assert_eq!(started_full(&a), vec![("i1", true)]);
    }

    #[test]
    fn init_containers_run_one_at_a_time_in_order() {
        let mut w = with_init(World::new("Always", &["app"]), &["i1", "i2"]);
        w.sandbox(ContainerState::Running);
        assert_eq!(started_full(&w.plan()), vec![("i1", true)]);
        let i1 = w.app("i1", ContainerState::Running, None);
        assert!(w.plan().is_empty(), "waits for the running init container");
        w.observed.retain(|o| o.id != i1);
        w.app("i1", ContainerState::Exited, Some(0));
        assert_eq!(started_full(&w.plan()), vec![("i2", true)]);
        w.app("i2", ContainerState::Exited, Some(0));
        assert_eq!(started_full(&w.plan()), vec![("app", false)]);
    }

    #[test]
    fn done_init_containers_do_not_run_again() {
        let mut w = with_init(World::new("Always", &["app"]), &["i1"]);
        w.sandbox(ContainerState::Running);
        w.app("i1", ContainerState::Exited, Some(0));
        w.app("app", ContainerState::Running, None);
        assert!(w.plan().is_empty());
    }

    #[test]
    fn a_failed_init_container_is_retried_by_policy() {
        let mut w = with_init(World::new("OnFailure", &["app"]), &["i1"]);
        w.sandbox(ContainerState::Running);
        w.app("i1", ContainerState::Exited, Some(1));
        assert_eq!(started(&w.plan()), vec![("i1", 1, StartReason::Restart)]);
        // Never: no retry, no app container.
        let mut w = with_init(World::new("Never", &["app"]), &["i1"]);
        w.sandbox(ContainerState::Running);
        w.app("i1", ContainerState::Exited, Some(1));
        assert!(w.plan().is_empty());
    }

    #[test]
    fn a_recreated_sandbox_runs_init_containers_again() {
        let mut w = with_init(World::new("Always", &["app"]), &["i1"]);
        w.sandbox(ContainerState::Exited);
        w.app("i1", ContainerState::Exited, Some(0));
        w.app("app", ContainerState::Running, None);
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        assert_eq!(started(&a), vec![("i1", 1, StartReason::Restart)]);
        // Init records of the old sandbox do not count in the new one.
        let mut w2 = with_init(World::new("Always", &["app"]), &["i1"]);
        w2.sandbox(ContainerState::Exited);
        w2.app("i1", ContainerState::Exited, Some(0));
        w2.sandbox(ContainerState::Running);
        w2.observed[0].attempt = 0;
        w2.observed[2].attempt = 1;
        assert_eq!(started_full(&w2.plan()), vec![("i1", true)]);
    }

    #[test]
    fn a_changed_init_container_recreates_the_pod() {
        let mut w = with_init(World::new("Always", &["app"]), &["i1"]);
        w.sandbox(ContainerState::Running);
        w.app("i1", ContainerState::Exited, Some(0));
        w.app("app", ContainerState::Running, None);
        w.pod
            .spec
            .as_mut()
            .unwrap()
            .init_containers
            .as_mut()
            .unwrap()[0]
            .args = Some(vec!["new".into()]);
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        assert_eq!(a.kill.len(), 2, "infra and app killed: {:?}", a.kill);
    }

    #[test]
    fn liveness_kill_requests_kill_a_running_container() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        let id = w.app("a", ContainerState::Running, None);
        w.kill_requests = vec![id.clone()];
        let a = w.plan();
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].id, id);
        assert_eq!(a.kill[0].reason, KillReason::Unhealthy);
        assert!(a.start.is_empty(), "restarted once dead, by policy");
    }

    #[test]
    fn gc_keeps_the_newest_records_and_young_dead_ones() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        for _ in 0..4 {
            w.app("a", ContainerState::Exited, Some(1));
        }
        w.app("a", ContainerState::Running, None);
        // 5 records, 2 kept: the 3 oldest go (all dead long ago).
        assert_eq!(w.plan().remove, vec!["a-4", "a-3", "a-2"]);
        // Within the minimum age nothing goes.
        w.gc.min_age = std::time::Duration::from_secs(10_000);
        assert!(w.plan().remove.is_empty());
        // No per-container limit: nothing goes.
        w.gc = GcPolicy {
            min_age: std::time::Duration::ZERO,
            max_per_container: None,
        };
        assert!(w.plan().remove.is_empty());
        // A limit of 0 still keeps the newest record (the restart count).
        w.gc.max_per_container = Some(0);
        assert_eq!(w.plan().remove.len(), 4);
    }

    #[test]
    fn node_garbage_removes_the_oldest_dead_beyond_the_limit() {
        use crate::runtime::ContainerSummary;
        let c = |id: &str, pod: &str, name: &str, created: i64, state| ContainerSummary {
            id: id.into(),
            name: String::new(),
            image: String::new(),
            labels: PodLabels {
                pod_name: pod.into(),
                namespace: "default".into(),
                uid: pod.into(),
                kind: Kind::Container,
                container_name: name.into(),
                hash: String::new(),
                restart_count: 0,
                grace_period_secs: None,
                sandbox_id: None,
            }
            .render("n"),
            state,
            created,
        };
        use ContainerState::{Exited, Running};
        let listed = vec![
            c("p1-a-1", "p1", "a", 100, Exited),
            c("p1-a-2", "p1", "a", 200, Exited),
            c("p1-a-3", "p1", "a", 300, Running),
            c("p2-b-1", "p2", "b", 150, Exited),
            c("p2-b-2", "p2", "b", 250, Exited),
            c("p3-c-1", "p3", "c", 50, Exited), // newest of its name: kept
        ];
        let age = std::time::Duration::from_secs(60);
        // 5 dead, at most 2: three go, oldest first, never a newest record.
        assert_eq!(
            node_garbage(&listed, Some(2), age, 1000),
            vec!["p1-a-1", "p2-b-1", "p1-a-2"]
        );
        assert!(node_garbage(&listed, Some(5), age, 1000).is_empty());
        assert!(node_garbage(&listed, None, age, 1000).is_empty());
        // Too young to go.
        assert_eq!(
            node_garbage(&listed, Some(0), age, 210),
            vec!["p1-a-1", "p2-b-1"]
        );
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
