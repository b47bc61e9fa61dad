//! The event recorder: the recent events of each pod, as Kubernetes keeps
//! them (a repeat of the same reason and message on the same object bumps
//! `count` and `lastTimestamp` instead of adding a line), bounded per pod,
//! and written to the log as they happen.

use std::collections::VecDeque;
use std::sync::Arc;

use actix::{Actor, Context, Handler, Message};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::registries::ContainerRef;
use super::shared::{Owned, View};
use crate::model::clock::Clock;

/// Events kept per pod; the oldest go first.
pub const MAX_EVENTS_PER_POD: usize = 100;

/// The object an event is about: a pod, or one container of it
/// (`field_path` `spec.containers{name}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub field_path: Option<String>,
}

/// Records one event.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Record {
    pub object: EventRef,
    /// `Normal` or `Warning`.
    pub warning: bool,
    pub reason: String,
    pub message: String,
    /// Gives the newest event of this reason on the object this message
    /// (a Pulling event saying how far the pull is), instead of adding one;
    /// a new event when there is none.
    pub revise: bool,
}

impl Record {
    /// A `Warning` event when `warning`, else a `Normal` one.
    pub fn of(object: EventRef, warning: bool, reason: &str, message: impl Into<String>) -> Self {
        Self {
            object,
            warning,
            reason: reason.into(),
            message: message.into(),
            revise: false,
        }
    }

    pub fn normal(object: EventRef, reason: &str, message: impl Into<String>) -> Self {
        Self::of(object, false, reason, message)
    }

    pub fn warning(object: EventRef, reason: &str, message: impl Into<String>) -> Self {
        Self::of(object, true, reason, message)
    }

    /// A new message for the newest Normal event of `reason` on `object`.
    pub fn revision(object: EventRef, reason: &str, message: impl Into<String>) -> Self {
        Self {
            revise: true,
            ..Self::normal(object, reason, message)
        }
    }
}

/// Records one event about a container known only by its ID: the
/// reference comes from the ContainerRefs registry (set when the container
/// started, cleared when it was killed). An unknown ID is dropped.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RecordFor {
    pub container_id: String,
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// Records one event about the node itself (image garbage collection), as
/// the kubelet records them: on the `Node`, in the `default` namespace.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct RecordNode {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// The key the node's own events are kept under (no pod UID looks like it).
pub fn node_events_key(node: &str) -> String {
    format!("node:{node}")
}

/// Forgets a pod's events (it was removed).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ForgetPod(pub String);

/// Pod UID → its events in order of last occurrence, oldest first.
/// Written only by the recorder.
/// Pod UID → its recent events, oldest first; written by the Recorder only.
/// Each event is its own allocation (a `v1.Event` is about 1 KB inline, and
/// most pods have a handful), shared with the readers.
pub type EventView = View<String, VecDeque<Arc<Event>>>;

pub struct Recorder {
    store: Owned<String, VecDeque<Arc<Event>>>,
    /// The ContainerRefs registry's view, for [`RecordFor`].
    refs: View<String, ContainerRef>,
    clock: Arc<dyn Clock>,
    node: String,
    seq: u64,
}

/// A new event (count 1) about `object`, recorded by podvisor on `node`.
#[allow(clippy::too_many_arguments)]
fn event(
    node: &str,
    name: String,
    namespace: &str,
    object: ObjectReference,
    reason: String,
    message: String,
    kind: &str,
    now: Option<Time>,
) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        involved_object: object,
        reason: Some(reason),
        message: Some(message),
        type_: Some(kind.into()),
        count: Some(1),
        first_timestamp: now.clone(),
        last_timestamp: now,
        source: Some(EventSource {
            component: Some("podvisor".into()),
            host: Some(node.into()),
        }),
        ..Default::default()
    }
}

impl Recorder {
    pub fn new(clock: Arc<dyn Clock>, node: String, refs: View<String, ContainerRef>) -> Self {
        Self {
            store: Owned::default(),
            refs,
            clock,
            node,
            seq: 0,
        }
    }

    /// The read-only view the HTTP API serves.
    pub fn store(&self) -> EventView {
        self.store.view()
    }
}

impl Actor for Recorder {
    type Context = Context<Self>;
}

fn now_time(clock: &dyn Clock) -> Option<Time> {
    let t = clock
        .now()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    crate::decide::status::time(Some(&t))
}

impl Handler<Record> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: Record, _: &mut Context<Self>) {
        let o = &msg.object;
        let kind = if msg.warning { "Warning" } else { "Normal" };
        let field = o.field_path.as_deref().unwrap_or("");
        let pod = format!("{}/{}", o.namespace, o.pod);
        let now = now_time(&*self.clock);
        let mut events = self.store.entry(o.uid.clone()).or_default();
        let same = |e: &Arc<Event>| {
            e.reason.as_deref() == Some(msg.reason.as_str())
                && e.message.as_deref() == Some(msg.message.as_str())
                && e.involved_object.field_path == o.field_path
                && e.type_.as_deref() == Some(kind)
        };
        if msg.revise {
            let revised = events.iter_mut().rev().find(|e| {
                e.reason.as_deref() == Some(msg.reason.as_str())
                    && e.involved_object.field_path == o.field_path
                    && e.type_.as_deref() == Some(kind)
            });
            if let Some(shared) = revised {
                let e = Arc::make_mut(shared);
                e.message = Some(msg.message.clone());
                e.last_timestamp = now;
                tracing::debug!(%pod, object = field, reason = %msg.reason, "{}", msg.message);
                return;
            }
        }
        if let Some(at) = events.iter().rposition(same) {
            // A repeat is counted, moves to the end (the list stays in
            // order of last occurrence), and is logged at debug level only.
            if let Some(mut shared) = events.remove(at) {
                let e = Arc::make_mut(&mut shared);
                e.count = Some(e.count.unwrap_or(1) + 1);
                e.last_timestamp = now;
                tracing::debug!(%pod, object = field, reason = %msg.reason, count = e.count, "{}", msg.message);
                events.push_back(shared);
            }
            return;
        }
        match msg.warning {
            true => tracing::warn!(%pod, object = field, reason = %msg.reason, "{}", msg.message),
            false => tracing::info!(%pod, object = field, reason = %msg.reason, "{}", msg.message),
        }
        self.seq += 1;
        let name = format!("{}.{:x}", o.pod, self.seq);
        let object = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(o.pod.clone()),
            namespace: Some(o.namespace.clone()),
            uid: Some(o.uid.clone()),
            field_path: o.field_path.clone(),
            ..Default::default()
        };
        events.push_back(Arc::new(event(
            &self.node,
            name,
            &o.namespace,
            object,
            msg.reason.clone(),
            msg.message.clone(),
            kind,
            now,
        )));
        while events.len() > MAX_EVENTS_PER_POD {
            events.pop_front();
        }
    }
}

impl Handler<RecordFor> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: RecordFor, ctx: &mut Context<Self>) {
        let Some(r) = self.refs.get(&msg.container_id) else {
            tracing::debug!(container = %msg.container_id, reason = %msg.reason, "event for an unknown container dropped");
            return;
        };
        let object = EventRef {
            namespace: r.namespace,
            pod: r.pod,
            uid: r.uid,
            field_path: Some(r.field_path),
        };
        let record = Record::of(object, msg.warning, &msg.reason, msg.message);
        <Self as Handler<Record>>::handle(self, record, ctx);
    }
}

impl Handler<RecordNode> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: RecordNode, _: &mut Context<Self>) {
        let kind = if msg.warning { "Warning" } else { "Normal" };
        match msg.warning {
            true => tracing::warn!(node = %self.node, reason = %msg.reason, "{}", msg.message),
            false => tracing::info!(node = %self.node, reason = %msg.reason, "{}", msg.message),
        }
        let now = now_time(&*self.clock);
        self.seq += 1;
        let name = format!("{}.{:x}", self.node, self.seq);
        let object = ObjectReference {
            kind: Some("Node".into()),
            name: Some(self.node.clone()),
            uid: Some(self.node.clone()),
            ..Default::default()
        };
        let event = Arc::new(event(
            &self.node,
            name,
            "default",
            object,
            msg.reason,
            msg.message,
            kind,
            now,
        ));
        let mut events = self.store.entry(node_events_key(&self.node)).or_default();
        events.push_back(event);
        while events.len() > MAX_EVENTS_PER_POD {
            events.pop_front();
        }
    }
}

impl Handler<ForgetPod> for Recorder {
    type Result = ();

    fn handle(&mut self, msg: ForgetPod, _: &mut Context<Self>) {
        self.store.remove(&msg.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::clock::ManualClock;

    fn pod_ref(field: Option<&str>) -> EventRef {
        EventRef {
            namespace: "default".into(),
            pod: "web".into(),
            uid: "u1".into(),
            field_path: field.map(str::to_string),
        }
    }

    #[actix::test]
    async fn repeats_count_and_distinct_events_line_up() {
        let clock = ManualClock::default();
        let rec = Recorder::new(
            Arc::new(clock.clone()),
            "n".into(),
            crate::actors::registries::ContainerRefs::default().snapshot(),
        );
        let store = rec.store();
        let addr = rec.start();
        let c = Some("spec.containers{app}");
        addr.send(Record::normal(pod_ref(c), "Pulling", "Pulling image \"x\""))
            .await
            .unwrap();
        clock.advance(std::time::Duration::from_secs(5));
        addr.send(Record::warning(pod_ref(c), "BackOff", "Back-off"))
            .await
            .unwrap();
        clock.advance(std::time::Duration::from_secs(5));
        addr.send(Record::warning(pod_ref(c), "BackOff", "Back-off"))
            .await
            .unwrap();
        addr.send(Record::normal(pod_ref(c), "Pulling", "Pulling image \"x\""))
            .await
            .unwrap();
        let events = store.get("u1").unwrap().clone();
        assert_eq!(events.len(), 2);
        // Ordered by last occurrence: the repeated Pulling is now last.
        assert_eq!(events[1].reason.as_deref(), Some("Pulling"));
        assert_eq!(events[1].count, Some(2));
        let events: Vec<_> = events.into_iter().rev().collect();
        assert_eq!(events[1].count, Some(2));
        assert_eq!(events[1].type_.as_deref(), Some("Warning"));
        assert_eq!(
            events[1].involved_object.field_path.as_deref(),
            Some("spec.containers{app}")
        );
        assert!(events[1].last_timestamp > events[1].first_timestamp);
    }

    #[actix::test]
    async fn a_pod_keeps_at_most_the_newest_events() {
        let rec = Recorder::new(
            Arc::new(ManualClock::default()),
            "n".into(),
            crate::actors::registries::ContainerRefs::default().snapshot(),
        );
        let store = rec.store();
        let addr = rec.start();
        for i in 0..(MAX_EVENTS_PER_POD + 5) {
            addr.send(Record::normal(pod_ref(None), "Started", format!("n{i}")))
                .await
                .unwrap();
        }
        let events = store.get("u1").unwrap().clone();
        assert_eq!(events.len(), MAX_EVENTS_PER_POD);
        assert_eq!(events[0].message.as_deref(), Some("n5"));
        addr.send(ForgetPod("u1".into())).await.unwrap();
        assert!(store.get("u1").is_none());
    }
}
