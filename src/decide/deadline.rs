//! `activeDeadlineSeconds`: how long a pod may be active on the node. Past
//! it, the kubelet kills every container of the pod and ends it `Failed`
//! with reason `DeadlineExceeded`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::plan::Observed;
use crate::model::PodPhase;

/// The kubelet's reason and message for a pod past its deadline.
pub const REASON: &str = "DeadlineExceeded";
pub const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Where a pod stands against its `activeDeadlineSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// The pod has none.
    None,
    /// This long is left.
    Left(Duration),
    Exceeded,
}

/// When the pod became active on the node: the earliest of when this agent
/// first saw it (`first_seen`) and the first start of any of its containers
/// still in the engine (which survives a restart of the agent).
pub fn active_since(first_seen: DateTime<Utc>, observed: &[Observed]) -> DateTime<Utc> {
    observed
        .iter()
        .filter_map(|o| o.started_at)
        .chain([first_seen])
        .min()
        .unwrap_or(first_seen)
}

/// Where `pod`, active since `since`, stands at `now`.
pub fn check(pod: &Pod, since: DateTime<Utc>, now: DateTime<Utc>) -> Deadline {
    let Some(secs) = pod.spec.as_ref().and_then(|s| s.active_deadline_seconds) else {
        return Deadline::None;
    };
    let active = (now - since).to_std().unwrap_or_default();
    match Duration::from_secs(secs.max(0) as u64).checked_sub(active) {
        Some(left) if !left.is_zero() => Deadline::Left(left),
        _ => Deadline::Exceeded,
    }
}

/// The status of a pod past its deadline: its containers as they are,
/// the pod `Failed` with the kubelet's reason and message.
pub fn exceeded(mut status: PodStatus) -> PodStatus {
    status.phase = Some(PodPhase::Failed.as_str().to_string());
    status.reason = Some(REASON.to_string());
    status.message = Some(MESSAGE.to_string());
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    fn pod(deadline: Option<i64>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                active_deadline_seconds: deadline,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn the_deadline_counts_from_the_start_and_ends_exactly_at_it() {
        assert_eq!(check(&pod(None), at(0), at(1_000_000)), Deadline::None);
        assert_eq!(
            check(&pod(Some(30)), at(0), at(10)),
            Deadline::Left(Duration::from_secs(20))
        );
        assert_eq!(check(&pod(Some(30)), at(0), at(30)), Deadline::Exceeded);
        assert_eq!(check(&pod(Some(30)), at(0), at(31)), Deadline::Exceeded);
        // A clock behind the start: nothing has elapsed yet.
        assert_eq!(
            check(&pod(Some(30)), at(10), at(0)),
            Deadline::Left(Duration::from_secs(30))
        );
    }

    #[test]
    fn the_oldest_container_dates_the_pod_across_restarts_of_the_agent() {
        let mut w = crate::decide::plan::world::World::new("Always", &["a"]);
        w.sandbox(crate::runtime::ContainerState::Exited);
        let mut observed = w.observed.clone();
        observed[0].started_at = Some(at(-100));
        assert_eq!(active_since(at(0), &observed), at(-100));
        assert_eq!(active_since(at(0), &[]), at(0));
        observed[0].started_at = Some(at(50));
        assert_eq!(active_since(at(0), &observed), at(0));
        observed[0].started_at = None;
        assert_eq!(active_since(at(0), &observed), at(0), "never started");
    }

    #[test]
    fn a_pod_past_its_deadline_fails_with_the_kubelets_reason() {
        let s = exceeded(PodStatus {
            phase: Some("Running".into()),
            ..Default::default()
        });
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        assert_eq!(s.reason.as_deref(), Some("DeadlineExceeded"));
        assert_eq!(s.message.as_deref(), Some(MESSAGE));
    }
}
