//! The pods as the API shows them, versioned, with a feed of their changes
//! for watches (`kubectl get pods -w`).
//!
//! The Supervisor owns the one [`PodStore`] and is its only writer; the API
//! reads through [`StatusView`]s. Every change that shows (a pod added, a
//! status that really changed, a pod gone) gets the next `resourceVersion`
//! of a counter that only grows; a status reported again unchanged changes
//! nothing and wakes no watch. The changes of the last [`HISTORY_AGE`]
//! (at most [`HISTORY`] of them) are kept, so a watch may start from the
//! `resourceVersion` of a list it just read without missing what happened
//! in between; one older than that is told so ([`TooOld`], a `410 Gone`
//! for the client, which lists again). Kept longer, the history would hold
//! an old copy of every pod that changed, for nothing.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::broadcast;

use super::shared::{Owned, View};

/// How many changes are kept for watches that start from an older version.
pub const HISTORY: usize = 1024;

/// How long a change is kept for them: a client watches right after it
/// lists (kubectl within milliseconds), and one that comes back later
/// lists again.
pub const HISTORY_AGE: Duration = Duration::from_secs(15);

/// What happened to a pod, in a watch's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// The watch event's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One change: the pod as it is after it (as it was last, for a deletion),
/// with its new `resourceVersion`.
#[derive(Clone, Debug)]
pub struct PodChange {
    pub kind: ChangeKind,
    pub version: u64,
    pub pod: Arc<Pod>,
}

/// A watch asked to start before the kept history.
#[derive(Debug, PartialEq, Eq)]
pub struct TooOld {
    /// The oldest version a watch may start from now.
    pub oldest: u64,
}

struct Shared {
    version: AtomicU64,
    /// The newest changes, oldest first. Held while a change is published
    /// and while a watch subscribes, so a watch misses nothing between the
    /// history it copies and the feed it follows.
    history: Mutex<VecDeque<(Instant, PodChange)>>,
    feed: broadcast::Sender<PodChange>,
}

/// The writing side, held by the Supervisor.
pub struct PodStore {
    pods: Owned<String, Arc<Pod>>,
    shared: Arc<Shared>,
}

/// A reading side: the pods by UID (it derefs to a [`View`]), their
/// version, and their changes.
#[derive(Clone)]
pub struct StatusView {
    pods: View<String, Arc<Pod>>,
    shared: Arc<Shared>,
}

impl Default for PodStore {
    fn default() -> Self {
        Self::new()
    }
}

impl PodStore {
    pub fn new() -> Self {
        let (feed, _) = broadcast::channel(HISTORY);
        Self {
            pods: Owned::default(),
            shared: Arc::new(Shared {
                version: AtomicU64::new(0),
                history: Mutex::new(VecDeque::with_capacity(HISTORY)),
                feed,
            }),
        }
    }

    pub fn view(&self) -> StatusView {
        StatusView {
            pods: self.pods.view(),
            shared: self.shared.clone(),
        }
    }

    /// Shows `pod` under `uid`. Nothing happens when it is what is shown
    /// already (its `resourceVersion` aside); otherwise it gets the next
    /// version and is `ADDED` or `MODIFIED`. A pod keeps the
    /// `creationTimestamp` it was first shown with (`now` then, unless the
    /// spec has one).
    pub fn put(&self, uid: &str, mut pod: Pod, now: Time) {
        let old = self.pods.get(uid).map(|p| p.clone());
        match &old {
            Some(old) => {
                pod.metadata.creation_timestamp = old.metadata.creation_timestamp.clone();
                pod.metadata.resource_version = old.metadata.resource_version.clone();
                if **old == pod {
                    return;
                }
            }
            None => {
                if pod.metadata.creation_timestamp.is_none() {
                    pod.metadata.creation_timestamp = Some(now);
                }
            }
        }
        let kind = match old {
            Some(_) => ChangeKind::Modified,
            None => ChangeKind::Added,
        };
        self.publish(kind, uid, pod);
    }

    /// Shows `uid` no more: `DELETED`, with a new version.
    pub fn remove(&self, uid: &str) {
        if let Some((_, pod)) = self.pods.remove(uid) {
            self.publish(ChangeKind::Deleted, uid, (*pod).clone());
        }
    }

    fn publish(&self, kind: ChangeKind, uid: &str, mut pod: Pod) {
        let mut history = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let version = self.shared.version.fetch_add(1, Ordering::SeqCst) + 1;
        pod.metadata.resource_version = Some(version.to_string());
        let pod = Arc::new(pod);
        if kind != ChangeKind::Deleted {
            self.pods.insert(uid.to_string(), pod.clone());
        }
        let change = PodChange { kind, version, pod };
        let now = Instant::now();
        forget(&mut history, now);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back((now, change.clone()));
        // No watcher is fine; a lagging one learns it from its receiver.
        let _ = self.shared.feed.send(change);
    }
}

impl PodStore {
    /// Drops the changes older than [`HISTORY_AGE`] at `now` (the
    /// Supervisor calls it on each relist; a change does it too).
    pub fn forget_old_changes(&self, now: Instant) {
        let mut history = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        forget(&mut history, now);
    }
}

fn forget(history: &mut VecDeque<(Instant, PodChange)>, now: Instant) {
    while history
        .front()
        .is_some_and(|(at, _)| now.saturating_duration_since(*at) > HISTORY_AGE)
    {
        history.pop_front();
    }
}

impl StatusView {
    /// The version of the newest change (0 before any).
    pub fn resource_version(&self) -> u64 {
        self.shared.version.load(Ordering::SeqCst)
    }

    /// The changes after `version`, and a receiver of every later one.
    /// `version` 0 (or none given) means "from now on".
    pub fn watch_from(
        &self,
        version: u64,
    ) -> Result<(Vec<PodChange>, broadcast::Receiver<PodChange>), TooOld> {
        let history = self
            .shared
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let receiver = self.shared.feed.subscribe();
        let now = self.shared.version.load(Ordering::SeqCst);
        if version == 0 || version >= now {
            return Ok((Vec::new(), receiver));
        }
        // The history must hold the change right after `version` (the
        // newest is `now`: an empty history holds nothing after it).
        let oldest = history.front().map_or(now + 1, |(_, c)| c.version);
        if version + 1 < oldest {
            return Err(TooOld { oldest });
        }
        let after = history
            .iter()
            .map(|(_, c)| c)
            .filter(|c| c.version > version)
            .cloned()
            .collect();
        Ok((after, receiver))
    }
}

/// The pods by UID, as a read-only map.
impl Deref for StatusView {
    type Target = View<String, Arc<Pod>>;
    fn deref(&self) -> &Self::Target {
        &self.pods
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod;
    use k8s_openapi::api::core::v1::PodStatus;

    fn time(s: i64) -> Time {
        crate::model::clock::api_time(chrono::DateTime::from_timestamp(s, 0).unwrap())
    }

    fn with_phase(phase: &str) -> Pod {
        let mut p = pod("web").container("app").build_pod();
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            ..Default::default()
        });
        p
    }

    #[test]
    fn only_real_changes_get_a_version_and_reach_a_watch() {
        let store = PodStore::new();
        let view = store.view();
        let (_, mut rx) = view.watch_from(0).unwrap();
        store.put("u1", with_phase("Pending"), time(100));
        store.put("u1", with_phase("Pending"), time(200)); // the same again
        store.put("u1", with_phase("Running"), time(300));
        store.remove("u1");
        store.remove("u1"); // gone already
        let seen: Vec<(ChangeKind, u64)> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|c| (c.kind, c.version))
            .collect();
        assert_eq!(
            seen,
            [
                (ChangeKind::Added, 1),
                (ChangeKind::Modified, 2),
                (ChangeKind::Deleted, 3)
            ]
        );
        assert_eq!(view.resource_version(), 3);
        assert!(view.get("u1").is_none());
    }

    #[test]
    fn a_pod_keeps_the_time_it_was_first_shown_and_carries_its_version() {
        let store = PodStore::new();
        store.put("u1", with_phase("Pending"), time(100));
        store.put("u1", with_phase("Running"), time(300));
        let shown = store.view().get("u1").unwrap();
        assert_eq!(shown.metadata.creation_timestamp, Some(time(100)));
        assert_eq!(shown.metadata.resource_version.as_deref(), Some("2"));
    }

    #[test]
    fn a_watch_from_a_listed_version_gets_what_happened_since() {
        let store = PodStore::new();
        let view = store.view();
        store.put("u1", with_phase("Pending"), time(1));
        let listed = view.resource_version();
        store.put("u1", with_phase("Running"), time(2));
        store.put("u2", pod("db").container("a").build_pod(), time(2));
        let (since, mut rx) = view.watch_from(listed).unwrap();
        let kinds: Vec<_> = since.iter().map(|c| (c.kind, c.version)).collect();
        assert_eq!(kinds, [(ChangeKind::Modified, 2), (ChangeKind::Added, 3)]);
        assert!(rx.try_recv().is_err(), "nothing twice");
        store.remove("u2");
        assert_eq!(rx.try_recv().unwrap().kind, ChangeKind::Deleted);
    }

    #[test]
    fn changes_are_kept_for_history_age_only() {
        let store = PodStore::new();
        let view = store.view();
        store.put("u1", with_phase("Pending"), time(1));
        store.put("u1", with_phase("Running"), time(2));
        store.forget_old_changes(Instant::now());
        assert_eq!(view.watch_from(1).unwrap().0.len(), 1, "kept while young");
        store.forget_old_changes(Instant::now() + HISTORY_AGE + Duration::from_secs(1));
        // Version 1 needs change 2, forgotten: list again.
        assert_eq!(view.watch_from(1).unwrap_err(), TooOld { oldest: 3 });
        // The newest version needs nothing kept.
        assert!(view.watch_from(2).unwrap().0.is_empty());
        store.put("u1", with_phase("Failed"), time(3));
        assert_eq!(view.watch_from(2).unwrap().0[0].version, 3);
    }

    #[test]
    fn a_watch_from_before_the_history_is_too_old() {
        let store = PodStore::new();
        for i in 0..(HISTORY as i64 + 10) {
            store.put("u1", with_phase(&format!("P{i}")), time(i));
        }
        let view = store.view();
        let now = view.resource_version();
        assert_eq!(
            view.watch_from(5).unwrap_err(),
            TooOld {
                oldest: now - HISTORY as u64 + 1
            }
        );
        assert!(view.watch_from(now - HISTORY as u64).is_ok());
        assert!(view.watch_from(now).unwrap().0.is_empty());
    }
}
