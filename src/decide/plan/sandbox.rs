//! The infra container: kept when it runs (or was created and never
//! started) with the desired hash; otherwise the pod starts over in a new
//! one, and its init containers run again.

use super::containers::SpecContainer;
use super::{joined, kill, CreateSandbox, Desired, KillReason, Observed, PodActions, Records};
use crate::model::naming;
use crate::model::{PodExt, RestartPolicy};
use crate::runtime::ContainerState;

/// The infra container the pod's containers join this sync: `current` when
/// it is kept (started first when it was created but never started), `None`
/// when a new one is planned instead.
pub(super) fn keep_or_replace<'a>(
    desired: &Desired<'_>,
    current: Option<&'a Observed>,
    records: &Records<'_>,
    actions: &mut PodActions,
) -> Option<&'a Observed> {
    let sandbox_hash = naming::sandbox_hash(desired.pod, desired.infra_image);
    // An init container whose spec changed after it ran: the pod must be
    // initialised again, in a new sandbox. (A sidecar is replaced in place.)
    let init_changed = desired.init_containers().iter().any(|c| {
        !crate::model::is_sidecar(c)
            && records.get(c.name.as_str()).is_some_and(|r| {
                joined(r[0], current) && r[0].labels.hash != naming::container_hash(c)
            })
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
        plan_new_sandbox(desired, current, records, sandbox_hash, actions);
        return None;
    }
    current
}

/// The infra container is missing, dead or changed: the pod starts over in a
/// new one (init containers run again).
fn plan_new_sandbox(
    desired: &Desired<'_>,
    current: Option<&Observed>,
    records: &Records<'_>,
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
        // A sidecar would be stopped at once in a pod whose app containers
        // have all ended for good.
        if crate::model::is_sidecar(first) && super::containers::finished(desired, None, records) {
            return;
        }
        let before = records.get(first.name.as_str()).map(|r| r[0]);
        let target = SpecContainer {
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
        let target = SpecContainer {
            index,
            init: false,
            name: &c.name,
        };
        actions.start.push(target.first_or_again(last));
    }
}

#[cfg(test)]
mod tests {
    use super::super::world::*;
    use super::super::*;

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
        assert!(killed.contains(&(sb.as_str(), ContainerKind::Sandbox)));
        assert!(killed.iter().any(|(_, k)| *k == ContainerKind::Container));
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
    fn a_new_sandbox_starts_the_first_init_container_only() {
        let w = with_init(World::new("Always", &["app"]), &["i1", "i2"]);
        let a = w.plan();
        assert!(a.create_sandbox.is_some());
        assert_eq!(started_full(&a), vec![("i1", true)]);
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
}
