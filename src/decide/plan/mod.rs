//! The pure planner: what one sync of one pod must do.
//!
//! [`plan`] carries every decision of the kubelet's `SyncPod`
//! (`computePodActions`): whether the infra container must be (re)created,
//! which containers to kill, which to start, which dead ones are superseded.
//! It does no I/O; the PodWorker carries its answer out, and a re-plan after
//! that answer has been carried out is empty (convergence).
//!
//! - this module: the types, the housekeeping of duplicates and containers
//!   no longer in the spec, and [`plan`] itself, which asks in turn:
//! - `sandbox`: is the infra container kept, or is the pod started over in
//!   a new one;
//! - `containers`: the init containers (one at a time, to success), then the
//!   app containers (kept, replaced, restarted or backing off);
//! - [`gc`]: which dead records go.

mod containers;
#[cfg(test)]
mod props;
mod sandbox;
#[cfg(test)]
pub(crate) mod world;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use chrono::{DateTime, Utc};

use crate::decide::backoff::Backoff;
use crate::decide::gc;
use crate::model::naming::{self, ContainerKind, PodLabels};
use crate::model::PodExt;
use crate::runtime::ContainerState;

pub use crate::decide::gc::{node_garbage, GcPolicy};

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
    /// Running containers whose startup probe has not succeeded yet: a
    /// sidecar among them holds back the init containers after it.
    pub unstarted: &'a [String],
    pub gc: GcPolicy,
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
    /// Its pod's `activeDeadlineSeconds` passed.
    DeadlineExceeded,
    /// A sidecar of a pod whose app containers have all ended for good.
    PodFinished,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub id: String,
    pub container_name: String,
    pub kind: ContainerKind,
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
pub(crate) fn newest_by_name(observed: &[Observed], kind: ContainerKind) -> Records<'_> {
    let mut by_name: Records<'_> = BTreeMap::new();
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

/// Each container name's records of one kind, newest first.
pub(crate) type Records<'a> = BTreeMap<&'a str, Vec<&'a Observed>>;

/// Whether `o` was started in the infra container `sandbox`.
fn joined(o: &Observed, sandbox: Option<&Observed>) -> bool {
    sandbox.is_some_and(|s| o.labels.sandbox_id.as_deref() == Some(s.id.as_str()))
}

/// Plans one sync of a pod that should run.
pub fn plan(desired: &Desired<'_>, observed: &[Observed]) -> PodActions {
    let mut actions = PodActions::default();
    let sandboxes = newest_by_name(observed, ContainerKind::Sandbox);
    let sandbox_records = sandboxes
        .get(naming::INFRA_NAME)
        .cloned()
        .unwrap_or_default();
    let records = newest_by_name(observed, ContainerKind::Container);
    housekeeping(desired, &sandbox_records, &records, &mut actions);
    actions.remove.extend(gc::pod_garbage(desired, observed));

    let current = sandbox_records.first().copied();
    let Some(sandbox) = sandbox::keep_or_replace(desired, current, &records, &mut actions) else {
        return actions;
    };
    actions.sandbox_id = Some(sandbox.id.clone());
    let finished = containers::finished(desired, Some(sandbox), &records);
    if containers::init_done(desired, sandbox, &records, finished, &mut actions) {
        containers::apps(desired, sandbox, &records, &mut actions);
    }
    actions
}

/// A running duplicate (an older record still running) is killed, and a
/// container no longer in the spec is killed and removed. Dead older records
/// are left to the garbage collector.
fn housekeeping(
    desired: &Desired<'_>,
    sandbox_records: &[&Observed],
    records: &Records<'_>,
    actions: &mut PodActions,
) {
    let known = |name: &str| {
        desired.containers().iter().any(|c| c.name == name)
            || desired.init_containers().iter().any(|c| c.name == name)
    };
    for old in sandbox_records.iter().skip(1).filter(|o| o.running()) {
        actions.kill.push(kill(old, KillReason::Unwanted));
    }
    for (name, recs) in records {
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
}

/// The order in which kills are carried out, wave after wave (the kills of
/// one wave run in parallel): app containers (and anything not a sidecar of
/// `pod`), then the sidecars one at a time in the reverse order of their
/// declaration, then infra containers. `pod` is the spec the kills are
/// for (the last one known while the pod terminates).
pub fn kill_waves<'k>(kills: &'k [Kill], pod: Option<&Pod>) -> Vec<Vec<&'k Kill>> {
    let sidecars: Vec<&str> = pod
        .map(|p| p.init_containers())
        .unwrap_or_default()
        .iter()
        .filter(|c| crate::model::is_sidecar(c))
        .map(|c| c.name.as_str())
        .collect();
    let containers = kills.iter().filter(|k| k.kind == ContainerKind::Container);
    let sidecar_index = |k: &Kill| sidecars.iter().position(|n| *n == k.container_name);
    let mut waves = vec![containers
        .clone()
        .filter(|k| sidecar_index(k).is_none())
        .collect::<Vec<_>>()];
    for name in sidecars.iter().rev() {
        waves.push(
            containers
                .clone()
                .filter(|k| k.container_name == *name)
                .collect(),
        );
    }
    waves.push(
        kills
            .iter()
            .filter(|k| k.kind == ContainerKind::Sandbox)
            .collect(),
    );
    waves.retain(|w| !w.is_empty());
    waves
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

/// Plans the end of a pod that is done but still wanted (past its
/// `activeDeadlineSeconds`): every running container is killed, apps first,
/// and the records are kept for its status.
pub fn plan_stop(observed: &[Observed], reason: KillReason) -> PodActions {
    let mut actions = PodActions::default();
    for o in observed {
        if o.running() || o.state == ContainerState::Unknown {
            actions.kill.push(kill(o, reason));
        }
    }
    actions
}

#[cfg(test)]
mod tests {
    use super::world::*;
    use super::*;

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
    fn a_stopped_pod_kills_what_runs_and_keeps_every_record() {
        let mut w = World::new("Always", &["a", "b"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Running, None);
        w.app("b", ContainerState::Exited, Some(1));
        let a = plan_stop(&w.observed, KillReason::DeadlineExceeded);
        let killed: Vec<&str> = a.kill.iter().map(|k| k.container_name.as_str()).collect();
        assert_eq!(killed, vec!["POD", "a"]);
        assert!(a
            .kill
            .iter()
            .all(|k| k.reason == KillReason::DeadlineExceeded));
        assert!(a.remove.is_empty() && a.start.is_empty() && a.create_sandbox.is_none());
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

    #[test]
    fn kill_waves_put_apps_first_then_sidecars_in_reverse_then_infra() {
        let mut w = sidecar(
            sidecar(
                with_init(World::new("Always", &["a", "b"]), &["s1", "i", "s2"]),
                "s1",
            ),
            "s2",
        );
        w.sandbox(ContainerState::Running);
        for n in ["s1", "s2", "a", "b"] {
            w.app(n, ContainerState::Running, None);
        }
        let a = plan_removal(&w.observed);
        let names = |p: Option<&Pod>| {
            kill_waves(&a.kill, p)
                .iter()
                .map(|wave| {
                    let mut n: Vec<&str> = wave.iter().map(|k| k.container_name.as_str()).collect();
                    n.sort();
                    n
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Some(&w.pod)),
            vec![vec!["a", "b"], vec!["s2"], vec!["s1"], vec!["POD"]]
        );
        // Without a spec nothing is known of sidecars: all at once.
        assert_eq!(names(None), vec![vec!["a", "b", "s1", "s2"], vec!["POD"]]);
    }
}
