//! Dead-container garbage collection, with no I/O: which dead records of a
//! pod the planner removes ([`GcPolicy`], per container name), and which dead
//! containers of the whole node go when there are too many
//! ([`node_garbage`]).

use std::collections::BTreeMap;

use crate::decide::plan::{newest_by_name, Desired, Observed};
use crate::model::naming::{ContainerKind, PodLabels};
use crate::runtime::{ContainerState, ContainerSummary};

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

/// Dead containers of this pod that may go: beyond the newest
/// `max_per_container` records of a name, and dead for at least `min_age`.
/// The newest record of every name is never collected: it carries the
/// restart count and the last exit (and, for an init container, that it
/// succeeded).
pub(crate) fn pod_garbage(desired: &Desired<'_>, observed: &[Observed]) -> Vec<String> {
    let gc = &desired.gc;
    let mut out = Vec::new();
    for kind in [ContainerKind::Sandbox, ContainerKind::Container] {
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
    listed: &[ContainerSummary],
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
    let key = |c: &ContainerSummary| PodLabels::parse(&c.labels).map(|l| (l.uid, l.container_name));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::plan::world::*;

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
                kind: ContainerKind::Container,
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
}
