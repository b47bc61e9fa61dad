//! The pod's containers in a kept infra container: the init containers one
//! at a time, in order, each to success (a sidecar: until it is started,
//! then kept running); then every app container kept,
//! replaced (its spec changed), killed (its liveness failed), restarted by
//! the restart policy, or left to wait out its CrashLoopBackOff.

use super::{
    joined, kill, BackingOff, Desired, KillReason, Observed, PodActions, Records, Start,
    StartReason,
};
use k8s_openapi::api::core::v1::Container;

use crate::decide::backoff;
use crate::model::{self, naming};
use crate::model::{PodExt, RestartPolicy};
use crate::runtime::ContainerState;

/// Plans the init containers; whether the pod is initialized in `sandbox`
/// (the app containers may run).
///
/// They are walked in order. A regular init container must succeed before
/// the next one starts. A sidecar (`restartPolicy: Always`) counts as done
/// for the walk once it is started (running, past its startup probe); it is
/// kept running whatever the pod's restart policy: started again when it
/// exits, replaced when its spec changes, killed when its liveness fails.
/// Once an app container ran in `sandbox` the pod stays initialized (the
/// kubelet's `hasAnyRegularContainerCreated`): a sidecar restarting then
/// holds back nothing. When the pod is `finished`, its sidecars are stopped
/// and not started again.
pub(super) fn init_done(
    desired: &Desired<'_>,
    sandbox: &Observed,
    records: &Records<'_>,
    finished: bool,
    actions: &mut PodActions,
) -> bool {
    let previously = apps_ran(desired, sandbox, records);
    for (index, c) in desired.init_containers().iter().enumerate() {
        let last = records
            .get(c.name.as_str())
            .map(|r| r[0])
            .filter(|o| joined(o, Some(sandbox)));
        let target = SpecContainer {
            index,
            init: true,
            name: &c.name,
        };
        if model::is_sidecar(c) {
            let started = sidecar(desired, c, last, records, target, finished, actions);
            if started || previously || finished {
                continue;
            }
            return false;
        }
        match last {
            None => {
                let before = records.get(c.name.as_str()).map(|r| r[0]);
                actions.start.push(target.first_or_again(before));
                return false;
            }
            Some(o) if o.state == ContainerState::Created => {
                actions.start_existing.push(o.id.clone());
                return false;
            }
            Some(o) if o.state != ContainerState::Exited => return false, // running
            Some(o) if o.exit_code == Some(0) => continue,
            Some(o) => {
                if desired.restart_policy() != RestartPolicy::Never {
                    restart_or_back_off(desired, o, target, actions);
                }
                return false;
            }
        }
    }
    true
}

/// Plans one sidecar; whether it is started (running, and past its startup
/// probe if it has one).
fn sidecar(
    desired: &Desired<'_>,
    c: &Container,
    last: Option<&Observed>,
    records: &Records<'_>,
    target: SpecContainer<'_>,
    finished: bool,
    actions: &mut PodActions,
) -> bool {
    let Some(o) = last else {
        if !finished {
            let before = records.get(c.name.as_str()).map(|r| r[0]);
            actions.start.push(target.first_or_again(before));
        }
        return false;
    };
    let live = matches!(o.state, ContainerState::Running | ContainerState::Unknown);
    if finished {
        if live {
            actions.kill.push(kill(o, KillReason::PodFinished));
        }
        return false;
    }
    let fresh = o.labels.hash == naming::container_hash(c);
    match o.state {
        _ if live && !fresh => {
            actions.kill.push(kill(o, KillReason::SpecChanged));
            actions.start.push(target.next(o, StartReason::SpecChanged));
            false
        }
        _ if live && desired.kill_requests.contains(&o.id) => {
            // Liveness (or startup) failed: killed, started again once dead.
            actions.kill.push(kill(o, KillReason::Unhealthy));
            false
        }
        ContainerState::Running => !desired.unstarted.contains(&o.id),
        ContainerState::Unknown => false,
        ContainerState::Created if fresh => {
            actions.start_existing.push(o.id.clone());
            false
        }
        ContainerState::Created => {
            actions.remove.push(o.id.clone());
            actions.start.push(target.next(o, StartReason::SpecChanged));
            false
        }
        ContainerState::Exited if !fresh => {
            actions.start.push(target.next(o, StartReason::SpecChanged));
            false
        }
        ContainerState::Exited => {
            restart_or_back_off(desired, o, target, actions);
            false
        }
    }
}

/// Whether an app container was created in `sandbox`: the pod was
/// initialized there once.
fn apps_ran(desired: &Desired<'_>, sandbox: &Observed, records: &Records<'_>) -> bool {
    desired.containers().iter().any(|c| {
        records
            .get(c.name.as_str())
            .is_some_and(|r| joined(r[0], Some(sandbox)) && r[0].state != ContainerState::Unknown)
    })
}

/// Whether the pod is done for good, so its sidecars must stop (the
/// kubelet kills a pod with no app container to keep or start): a
/// `Never`/`OnFailure` pod whose app containers have all ended (or are
/// being killed for their liveness) and none is started again, or a
/// `Never` pod whose regular init container failed. Sidecars keep nothing
/// alive.
/// Without a `sandbox` (a new one is made, the running containers killed),
/// only the app containers count.
pub(super) fn finished(
    desired: &Desired<'_>,
    sandbox: Option<&Observed>,
    records: &Records<'_>,
) -> bool {
    let policy = desired.restart_policy();
    if policy == RestartPolicy::Always {
        return false;
    }
    let init_failed = policy == RestartPolicy::Never
        && desired.init_containers().iter().any(|c| {
            !model::is_sidecar(c)
                && records.get(c.name.as_str()).is_some_and(|r| {
                    let o = r[0];
                    joined(o, sandbox)
                        && o.state == ContainerState::Exited
                        && o.exit_code != Some(0)
                })
        });
    if init_failed {
        return true;
    }
    !desired.containers().is_empty()
        && desired.containers().iter().all(|c| {
            let Some(o) = records.get(c.name.as_str()).map(|r| r[0]) else {
                return false;
            };
            let live = matches!(o.state, ContainerState::Running | ContainerState::Unknown);
            let exit = match o.state {
                ContainerState::Exited => o.exit_code,
                // Killed now: for its liveness, or (no sandbox kept) with
                // the old infra container.
                _ if live && (sandbox.is_none() || desired.kill_requests.contains(&o.id)) => None,
                _ => return false,
            };
            o.labels.hash == naming::container_hash(c) && !policy.restarts(exit)
        })
}

/// Plans the app containers, once the init containers are done.
pub(super) fn apps(
    desired: &Desired<'_>,
    sandbox: &Observed,
    records: &Records<'_>,
    actions: &mut PodActions,
) {
    let policy = desired.restart_policy();
    for (index, c) in desired.containers().iter().enumerate() {
        let hash = naming::container_hash(c);
        let target = SpecContainer {
            index,
            init: false,
            name: &c.name,
        };
        let Some(last) = records.get(c.name.as_str()).map(|r| r[0]) else {
            actions.start.push(target.first_or_again(None));
            continue;
        };
        let fresh = last.labels.hash == hash && joined(last, Some(sandbox));
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
                restart_or_back_off(desired, last, target, actions);
            }
            ContainerState::Exited => {}
        }
    }
}

/// Which container of the spec a start is for.
#[derive(Clone, Copy)]
pub(super) struct SpecContainer<'a> {
    pub(super) index: usize,
    pub(super) init: bool,
    pub(super) name: &'a str,
}

impl SpecContainer<'_> {
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
    pub(super) fn first_or_again(&self, before: Option<&Observed>) -> Start {
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
    target: SpecContainer<'_>,
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

#[cfg(test)]
mod tests {
    use super::super::world::*;
    use super::super::*;

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
    fn created_but_unstarted_container_is_started_not_duplicated() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        let id = w.app("a", ContainerState::Created, None);
        let a = w.plan();
        assert_eq!(a.start_existing, vec![id]);
        assert!(a.start.is_empty());
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

    /// A pod with a sidecar `s`, then a regular init container `i`, then
    /// the app `app`, in a running sandbox.
    fn sidecar_world(policy: &str) -> World {
        let mut w = sidecar(with_init(World::new(policy, &["app"]), &["s", "i"]), "s");
        w.sandbox(ContainerState::Running);
        w
    }

    #[test]
    fn a_started_sidecar_lets_the_next_init_container_start() {
        let mut w = sidecar_world("Always");
        assert_eq!(started_full(&w.plan()), vec![("s", true)]);
        let s = w.app("s", ContainerState::Running, None);
        assert_eq!(started_full(&w.plan()), vec![("i", true)]);
        // Its startup probe has not succeeded yet: the walk waits.
        w.unstarted = vec![s];
        assert!(w.plan().is_empty(), "{:?}", w.plan());
        w.unstarted.clear();
        w.app("i", ContainerState::Exited, Some(0));
        assert_eq!(started_full(&w.plan()), vec![("app", false)]);
        w.app("app", ContainerState::Running, None);
        assert!(w.plan().is_empty(), "converged: {:?}", w.plan());
    }

    #[test]
    fn a_dead_sidecar_is_restarted_whatever_the_pod_policy() {
        for policy in ["Always", "OnFailure", "Never"] {
            for code in [0, 1] {
                let mut w = sidecar_world(policy);
                w.app("s", ContainerState::Exited, Some(code));
                w.app("i", ContainerState::Exited, Some(0));
                w.app("app", ContainerState::Running, None);
                let a = w.plan();
                assert_eq!(
                    started(&a),
                    vec![("s", 1, StartReason::Restart)],
                    "{policy} exit {code}"
                );
                assert!(a.kill.is_empty(), "the app keeps running");
            }
        }
    }

    #[test]
    fn a_dead_sidecar_waits_out_its_backoff_without_holding_the_app_back() {
        let mut w = sidecar_world("Always");
        w.app("s", ContainerState::Exited, Some(1));
        w.app("i", ContainerState::Exited, Some(0));
        let app = w.app("app", ContainerState::Exited, Some(1));
        let finished = w.observed.iter().filter_map(|o| o.finished_at).max();
        w.backoff.record_restart("s");
        w.now = finished.unwrap() + chrono::Duration::seconds(1);
        let a = w.plan();
        assert_eq!(
            a.backing_off
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>(),
            vec!["s"]
        );
        // The app (initialized before) is restarted meanwhile.
        assert_eq!(started(&a), vec![("app", 1, StartReason::Restart)]);
        assert!(!a.kill.iter().any(|k| k.id == app));
    }

    #[test]
    fn before_initialization_a_dead_sidecar_holds_the_next_init_container() {
        let mut w = sidecar_world("Always");
        w.app("s", ContainerState::Exited, Some(1));
        assert_eq!(started(&w.plan()), vec![("s", 1, StartReason::Restart)]);
    }

    #[test]
    fn a_sidecar_failing_liveness_is_killed_and_its_changed_spec_replaced_in_place() {
        let mut w = sidecar_world("Always");
        let s = w.app("s", ContainerState::Running, None);
        w.app("i", ContainerState::Exited, Some(0));
        w.app("app", ContainerState::Running, None);
        w.kill_requests = vec![s.clone()];
        let a = w.plan();
        assert_eq!(a.kill.len(), 1);
        assert_eq!(
            (a.kill[0].id.as_str(), a.kill[0].reason),
            (s.as_str(), KillReason::Unhealthy)
        );
        assert!(a.start.is_empty(), "started again once dead");
        w.kill_requests.clear();
        let spec = w.pod.spec.as_mut().unwrap();
        spec.init_containers.as_mut().unwrap()[0].args = Some(vec!["new".into()]);
        let a = w.plan();
        assert!(a.create_sandbox.is_none(), "the pod is not started over");
        assert_eq!(a.kill.len(), 1);
        assert_eq!(a.kill[0].reason, KillReason::SpecChanged);
        assert_eq!(started(&a), vec![("s", 1, StartReason::SpecChanged)]);
    }

    #[test]
    fn a_finished_pod_stops_its_sidecars_and_starts_them_no_more() {
        for (policy, code) in [("Never", 0), ("Never", 1), ("OnFailure", 0)] {
            let mut w = sidecar_world(policy);
            let s = w.app("s", ContainerState::Running, None);
            w.app("i", ContainerState::Exited, Some(0));
            w.app("app", ContainerState::Exited, Some(code));
            let a = w.plan();
            assert_eq!(a.kill.len(), 1, "{policy} {code}: {a:?}");
            assert_eq!(
                (a.kill[0].id.as_str(), a.kill[0].reason),
                (s.as_str(), KillReason::PodFinished)
            );
            assert!(a.start.is_empty());
            // Once dead, it stays dead.
            w.observed.retain(|o| o.id != s);
            w.app("s", ContainerState::Exited, Some(137));
            assert!(w.plan().is_empty(), "{policy} {code}: {:?}", w.plan());
        }
        // OnFailure with a failed app: the app restarts, the sidecar stays.
        let mut w = sidecar_world("OnFailure");
        w.app("s", ContainerState::Running, None);
        w.app("i", ContainerState::Exited, Some(0));
        w.app("app", ContainerState::Exited, Some(1));
        let a = w.plan();
        assert!(a.kill.is_empty());
        assert_eq!(started(&a), vec![("app", 1, StartReason::Restart)]);
    }

    #[test]
    fn a_never_pod_whose_init_container_failed_stops_its_sidecars() {
        let mut w = sidecar_world("Never");
        let s = w.app("s", ContainerState::Running, None);
        w.app("i", ContainerState::Exited, Some(1));
        let a = w.plan();
        assert_eq!(
            a.kill.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            vec![s.as_str()]
        );
        assert!(a.start.is_empty());
    }

    #[test]
    fn a_liveness_kill_that_ends_a_never_pod_stops_its_sidecars_too() {
        let mut w = sidecar_world("Never");
        let s = w.app("s", ContainerState::Running, None);
        w.app("i", ContainerState::Exited, Some(0));
        let app = w.app("app", ContainerState::Running, None);
        w.kill_requests = vec![app.clone()];
        let mut killed: Vec<_> = w.plan().kill.iter().map(|k| k.id.clone()).collect();
        killed.sort();
        let mut want = vec![app, s];
        want.sort();
        assert_eq!(killed, want);
    }

    #[test]
    fn a_changed_regular_init_container_still_restarts_the_pod() {
        let mut w = sidecar_world("Always");
        w.app("s", ContainerState::Running, None);
        w.app("i", ContainerState::Exited, Some(0));
        w.app("app", ContainerState::Running, None);
        let spec = w.pod.spec.as_mut().unwrap();
        spec.init_containers.as_mut().unwrap()[1].args = Some(vec!["new".into()]);
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        assert_eq!(started_full(&a), vec![("s", true)], "the sidecar first");
    }
}
