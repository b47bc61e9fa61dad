//! The server-side `meta.k8s.io/v1` `Table` that `kubectl get` prints.
//!
//! `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and
//! prints what the server computed: column definitions, one row of cells
//! per object and, by default (`includeObject=Metadata`), each object's
//! metadata, which `kubectl` reads for the NAMESPACE column of `-A` and
//! for `--show-labels`. The server always sends every column (the API
//! server renders "wide"); `kubectl` hides those of priority above 0 unless
//! `-o wide`.
//!
//! The cells follow the API server's printers (`printPod`, `printEvent` in
//! `pkg/printers/internalversion/printers.go`, Kubernetes 1.32) and its
//! `HumanDuration`, so `kubectl get pods` against this node reads as it
//! does against a cluster.

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, Event, Pod, PodCondition,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use serde_json::{json, Value};

use super::selectors::pod_ip;
use crate::model::PodExt;

/// What each row carries besides its cells (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `meta.k8s.io/v1` `PartialObjectMetadata`: `kubectl`'s default.
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// The `includeObject` query value; absent or empty is `Metadata`. The
    /// API server refuses anything else with this 400 message.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.unwrap_or_default() {
            "" | "Metadata" => Ok(Self::Metadata),
            "None" => Ok(Self::None),
            "Object" => Ok(Self::Object),
            other => Err(format!("unrecognized includeObject value: \"{other}\"")),
        }
    }
}

/// `time.Duration` as the API server prints ages (apimachinery's
/// `duration.HumanDuration`): seconds up to 2 minutes, then minutes (and
/// seconds under 10 minutes), hours (and minutes under 8 hours), days (and
/// hours under 8 days), years (and days under 8 years). Up to a second in
/// the future is clock skew (`0s`); further is `<invalid>`.
pub fn human_duration(d: Duration) -> String {
    // `num_seconds` truncates toward zero, as Go's `int(d.Seconds())`.
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn to_chrono(t: k8s_openapi::jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

fn time(t: Option<&Time>) -> Option<DateTime<Utc>> {
    t.and_then(|t| to_chrono(t.0))
}

fn micro_time(t: Option<&MicroTime>) -> Option<DateTime<Utc>> {
    t.and_then(|t| to_chrono(t.0))
}

/// How long ago `t` was, `<unknown>` when it is not set (Go's zero time).
fn since(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        Some(t) => human_duration(now - t),
        None => "<unknown>".into(),
    }
}

fn column(name: &str, type_: &str, format: &str, priority: i32, description: &str) -> Value {
    json!({
        "name": name,
        "type": type_,
        "format": format,
        "description": description,
        "priority": priority,
    })
}

const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const CREATION_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The API server's pod columns, in its order and with its priorities.
pub fn pod_columns() -> Vec<Value> {
    vec![
        column("Name", "string", "name", 0, NAME_DOC),
        column("Ready", "string", "", 0, "The aggregate readiness state of this pod for accepting traffic."),
        column("Status", "string", "", 0, "The aggregate status of the containers in this pod."),
        column("Restarts", "string", "", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        column("Age", "string", "", 0, CREATION_DOC),
        column("IP", "string", "", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        column("Node", "string", "", 1, "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"),
        column("Nominated Node", "string", "", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled."),
        column("Readiness Gates", "string", "", 1, "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"),
    ]
}

/// The API server's event columns, in its order and with its priorities.
pub fn event_columns() -> Vec<Value> {
    vec![
        column("Last Seen", "string", "", 0, "The time at which the most recent occurrence of this event was recorded."),
        column("Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
        column("Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        column("Object", "string", "", 0, "The object that this event is about."),
        column("Subobject", "string", "", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object."),
        column("Source", "string", "", 1, "The component reporting this event. Should be a short machine understandable string."),
        column("Message", "string", "", 0, "A human-readable description of the status of this operation."),
        column("First Seen", "string", "", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
        column("Count", "string", "", 1, "The number of times this event has occurred."),
        column("Name", "string", "name", 1, NAME_DOC),
    ]
}

fn state_terminated(s: Option<&ContainerState>) -> Option<&ContainerStateTerminated> {
    s.and_then(|s| s.terminated.as_ref())
}

fn waiting_reason(s: Option<&ContainerState>) -> &str {
    s.and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        .unwrap_or_default()
}

/// When the container last restarted: its last termination's end.
fn last_finish(c: &ContainerStatus) -> Option<DateTime<Utc>> {
    time(state_terminated(c.last_state.as_ref()).and_then(|t| t.finished_at.as_ref()))
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    a.max(b)
}

/// A sidecar: an init container with `restartPolicy: Always`.
fn is_restartable_init(c: Option<&Container>) -> bool {
    c.and_then(|c| c.restart_policy.as_deref()) == Some("Always")
}

fn condition<'a>(conditions: &'a [PodCondition], type_: &str) -> Option<&'a PodCondition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// `Signal:N` or `ExitCode:N` for a termination without a reason.
fn exit_word(t: &ContainerStateTerminated) -> String {
    match t.signal.unwrap_or(0) {
        0 => format!("ExitCode:{}", t.exit_code),
        s => format!("Signal:{s}"),
    }
}

/// The cells of a pod's row: NAME, READY, STATUS, RESTARTS, AGE, IP, NODE,
/// NOMINATED NODE, READINESS GATES, as the API server's `printPod` computes
/// them at `now`.
pub fn pod_cells(pod: &Pod, now: DateTime<Utc>) -> Vec<Value> {
    let empty = Vec::new();
    let no_status = PodStatus::default();
    let status = pod.status.as_ref().unwrap_or(&no_status);
    let conditions = status.conditions.as_ref().unwrap_or(&empty);
    let init_specs = pod.init_containers();
    let init_statuses = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_default();

    let mut total = pod.containers().len();
    let mut ready = 0;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;

    let mut reason = match status.reason.as_deref() {
        Some(r) if !r.is_empty() => r.to_string(),
        _ => phase.clone(),
    };
    if conditions
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.reason.as_deref() == Some("SchedulingGated"))
    {
        reason = "SchedulingGated".into();
    }

    total += init_specs
        .iter()
        .filter(|c| is_restartable_init(Some(c)))
        .count();
    let init_spec = |name: &str| init_specs.iter().find(|c| c.name == name);

    let mut initializing = false;
    for (i, c) in init_statuses.iter().enumerate() {
        restarts += i64::from(c.restart_count);
        last_restart = later(last_restart, last_finish(c));
        let sidecar = is_restartable_init(init_spec(&c.name));
        if sidecar {
            sidecar_restarts += i64::from(c.restart_count);
            last_sidecar_restart = later(last_sidecar_restart, last_finish(c));
        }
        let terminated = state_terminated(c.state.as_ref());
        let waiting = waiting_reason(c.state.as_ref());
        match terminated {
            Some(t) if t.exit_code == 0 => continue,
            _ if sidecar && c.started == Some(true) => {
                if c.ready {
                    ready += 1;
                }
                continue;
            }
            Some(t) => {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => format!("Init:{r}"),
                    _ => format!("Init:{}", exit_word(t)),
                };
            }
            None if !waiting.is_empty() && waiting != "PodInitializing" => {
                reason = format!("Init:{waiting}");
            }
            None => reason = format!("Init:{i}/{}", init_specs.len()),
        }
        initializing = true;
        break;
    }

    let initialized = condition(conditions, "Initialized").is_some_and(|c| c.status == "True");
    if !initializing || initialized {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        // Last to first, so the first container's state has the last word.
        for c in statuses.iter().rev() {
            restarts += i64::from(c.restart_count);
            last_restart = later(last_restart, last_finish(c));
            let waiting = waiting_reason(c.state.as_ref());
            let terminated = state_terminated(c.state.as_ref());
            let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match t.reason.as_deref() {
                    Some(r) if !r.is_empty() => r.to_string(),
                    _ => exit_word(t),
                };
            } else if c.ready && running {
                has_running = true;
                ready += 1;
            }
        }
        // One container completed while another still runs: the pod runs.
        if reason == "Completed" && has_running {
            let pod_ready = condition(conditions, "Ready").is_some_and(|c| c.status == "True");
            reason = if pod_ready { "Running" } else { "NotReady" }.into();
        }
    }

    if pod.metadata.deletion_timestamp.is_some() {
        if status.reason.as_deref() == Some("NodeLost") {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }

    let restarts = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
        _ => restarts.to_string(),
    };

    let none = |v: Option<String>| {
        v.filter(|s| !s.is_empty())
            .unwrap_or_else(|| "<none>".into())
    };
    let spec = pod.spec.as_ref();
    let gates = spec
        .and_then(|s| s.readiness_gates.as_ref())
        .filter(|g| !g.is_empty())
        .map(|gates| {
            let met = gates
                .iter()
                .filter(|g| {
                    condition(conditions, &g.condition_type).is_some_and(|c| c.status == "True")
                })
                .count();
            format!("{met}/{}", gates.len())
        });

    vec![
        pod.name().into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts.into(),
        since(time(pod.metadata.creation_timestamp.as_ref()), now).into(),
        none(pod_ip(pod)).into(),
        none(spec.and_then(|s| s.node_name.clone())).into(),
        none(status.nominated_node_name.clone()).into(),
        none(gates).into(),
    ]
}

/// The cells of an event's row: LAST SEEN, TYPE, REASON, OBJECT, SUBOBJECT,
/// SOURCE, MESSAGE, FIRST SEEN, COUNT, NAME, as `printEvent` computes them.
pub fn event_cells(ev: &Event, now: DateTime<Utc>) -> Vec<Value> {
    let first = match time(ev.first_timestamp.as_ref()) {
        Some(t) => since(Some(t), now),
        None => since(micro_time(ev.event_time.as_ref()), now),
    };
    let mut last = match time(ev.last_timestamp.as_ref()) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut count = ev.count.unwrap_or(0);
    if let Some(series) = &ev.series {
        last = since(micro_time(series.last_observed_time.as_ref()), now);
        count = series.count.unwrap_or(0);
    } else if count == 0 {
        // Events of the newer API that happened once carry no count.
        count = 1;
    }

    let o = &ev.involved_object;
    let kind = o.kind.as_deref().unwrap_or_default().to_lowercase();
    let target = match o.name.as_deref() {
        Some(name) if !name.is_empty() => format!("{kind}/{name}"),
        _ => kind,
    };
    let or = |a: Option<&String>, b: Option<&String>| {
        a.filter(|s| !s.is_empty())
            .or(b)
            .cloned()
            .unwrap_or_default()
    };
    let source = ev.source.as_ref();
    let component = or(
        source.and_then(|s| s.component.as_ref()),
        ev.reporting_component.as_ref(),
    );
    let host = or(
        source.and_then(|s| s.host.as_ref()),
        ev.reporting_instance.as_ref(),
    );
    let source = if host.is_empty() {
        component
    } else {
        format!("{component}, {host}")
    };
    let s = |v: &Option<String>| v.clone().unwrap_or_default();

    vec![
        last.into(),
        s(&ev.type_).into(),
        s(&ev.reason).into(),
        target.into(),
        s(&o.field_path).into(),
        source.into(),
        ev.message.as_deref().unwrap_or_default().trim().into(),
        first.into(),
        // An integer, as the API server sends it, though the column says string.
        count.into(),
        s(&ev.metadata.name).into(),
    ]
}

/// A pod's metadata as served: the namespace filled in when the manifest
/// left it to default.
fn pod_metadata(pod: &Pod) -> ObjectMeta {
    let mut m = pod.metadata.clone();
    m.namespace
        .get_or_insert_with(|| pod.namespace().to_string());
    m
}

fn row_object(
    include: IncludeObject,
    metadata: &ObjectMeta,
    kind: &str,
    full: impl FnOnce() -> Value,
) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
        })),
        IncludeObject::Object => {
            let mut v = full();
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), "v1".into());
                o.insert("kind".into(), kind.into());
            }
            Some(v)
        }
    }
}

fn row(cells: Vec<Value>, conditions: Option<Value>, object: Option<Value>) -> Value {
    let mut r = json!({ "cells": cells });
    if let Some(c) = conditions {
        r["conditions"] = c;
    }
    if let Some(o) = object {
        r["object"] = o;
    }
    r
}

fn table(columns: Vec<Value>, rows: Vec<Value>, resource_version: &str) -> Value {
    let mut metadata = json!({});
    if !resource_version.is_empty() {
        metadata["resourceVersion"] = resource_version.into();
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The `Table` for `kubectl get pods` (or one pod): one row per pod in the
/// order given. Succeeded and Failed pods carry the API server's
/// `Completed` row condition.
pub fn pod_table(
    pods: &[&Pod],
    now: DateTime<Utc>,
    include_object: IncludeObject,
    resource_version: &str,
) -> Value {
    let rows = pods
        .iter()
        .map(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            let conditions = match phase {
                Some("Succeeded") => Some(json!([{
                    "type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully.",
                }])),
                Some("Failed") => Some(json!([{
                    "type": "Completed", "status": "True", "reason": "Failed",
                    "message": "The pod failed.",
                }])),
                _ => None,
            };
            let metadata = pod_metadata(pod);
            let object = row_object(include_object, &metadata, "Pod", || {
                let mut full = (*pod).clone();
                full.metadata = metadata.clone();
                serde_json::to_value(full).unwrap_or_default()
            });
            row(pod_cells(pod, now), conditions, object)
        })
        .collect();
    table(pod_columns(), rows, resource_version)
}

/// The `Table` for `kubectl get events` (and the events `kubectl describe`
/// lists): one row per event in the order given.
pub fn event_table(
    events: &[&Event],
    now: DateTime<Utc>,
    include_object: IncludeObject,
    resource_version: &str,
) -> Value {
    let rows = events
        .iter()
        .map(|ev| {
            let object = row_object(include_object, &ev.metadata, "Event", || {
                serde_json::to_value(ev).unwrap_or_default()
            });
            row(event_cells(ev, now), None, object)
        })
        .collect();
    table(event_columns(), rows, resource_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::pod;
    use k8s_openapi::api::core::v1::{
        ContainerStateRunning, ContainerStateWaiting, EventSeries, EventSource, ObjectReference,
        PodIP, PodReadinessGate,
    };
    use k8s_openapi::jiff::Timestamp;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_000, 0).unwrap()
    }

    fn ago(secs: i64) -> Time {
        Time(Timestamp::from_second(now().timestamp() - secs).unwrap())
    }

    fn secs(s: i64) -> Duration {
        Duration::seconds(s)
    }

    #[test]
    fn human_duration_follows_apimachinery() {
        let m = 60;
        let h = 60 * m;
        let d = 24 * h;
        let y = 365 * d;
        let cases = [
            (secs(-3), "<invalid>"),
            (secs(-2), "<invalid>"),
            (Duration::milliseconds(-2500), "<invalid>"),
            (Duration::milliseconds(-1999), "0s"),
            (secs(-1), "0s"),
            (Duration::milliseconds(-500), "0s"),
            (secs(0), "0s"),
            (secs(5), "5s"),
            (Duration::milliseconds(119_999), "119s"),
            (secs(119), "119s"),
            (secs(120), "2m"),
            (secs(121), "2m1s"),
            (secs(2 * m + 3), "2m3s"),
            (secs(9 * m + 59), "9m59s"),
            (secs(10 * m), "10m"),
            (secs(10 * m + 59), "10m"),
            (secs(65 * m), "65m"),
            (secs(179 * m + 59), "179m"),
            (secs(3 * h), "3h"),
            (secs(3 * h + 10 * m), "3h10m"),
            (secs(7 * h + 59 * m + 59), "7h59m"),
            (secs(8 * h), "8h"),
            (secs(8 * h + 30 * m), "8h"),
            (secs(47 * h + 59 * m), "47h"),
            (secs(48 * h), "2d"),
            (secs(2 * d + 3 * h), "2d3h"),
            (secs(7 * d + 23 * h), "7d23h"),
            (secs(8 * d), "8d"),
            (secs(729 * d + 23 * h), "729d"),
            (secs(2 * y), "2y"),
            (secs(2 * y + 100 * d), "2y100d"),
            (secs(7 * y + 364 * d), "7y364d"),
            (secs(8 * y), "8y"),
            (secs(8 * y + 100 * d), "8y"),
            (secs(20 * y), "20y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(d), want, "{d:?}");
        }
    }

    fn status(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            image: "busybox:1".into(),
            image_id: "sha256:1".into(),
            ..Default::default()
        }
    }

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            ready: true,
            started: Some(true),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(ago(50)),
                }),
                ..Default::default()
            }),
            ..status(name)
        }
    }

    fn waiting(name: &str, reason: &str) -> ContainerStatus {
        ContainerStatus {
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..status(name)
        }
    }

    fn terminated(
        name: &str,
        exit_code: i32,
        reason: Option<&str>,
        signal: Option<i32>,
    ) -> ContainerStatus {
        ContainerStatus {
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code,
                    reason: reason.map(Into::into),
                    signal,
                    finished_at: Some(ago(10)),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..status(name)
        }
    }

    /// `c` restarted `n` times, the last one ending `secs` ago.
    fn restarted(mut c: ContainerStatus, n: i32, secs: i64) -> ContainerStatus {
        c.restart_count = n;
        c.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 1,
                reason: Some("Error".into()),
                finished_at: Some(ago(secs)),
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    }

    fn cond(type_: &str, status: &str) -> PodCondition {
        PodCondition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    /// A pod created 300 s ago with the given phase and statuses.
    fn with_status(
        b: crate::testing::PodBuilder,
        phase: &str,
        init: Vec<ContainerStatus>,
        app: Vec<ContainerStatus>,
    ) -> Pod {
        let phase = phase.to_string();
        b.with(move |p| {
            p.metadata.creation_timestamp = Some(ago(300));
            p.status = Some(PodStatus {
                phase: Some(phase),
                init_container_statuses: (!init.is_empty()).then_some(init),
                container_statuses: Some(app),
                ..Default::default()
            });
        })
        .build_pod()
    }

    fn cells(p: &Pod) -> Vec<String> {
        pod_cells(p, now())
            .into_iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect()
    }

    /// NAME, READY, STATUS, RESTARTS, AGE: what plain `kubectl get pods` shows.
    fn narrow(p: &Pod) -> Vec<String> {
        cells(p)[..5].to_vec()
    }

    #[test]
    fn a_running_pod() {
        let p = with_status(
            pod("web").container("app"),
            "Running",
            vec![],
            vec![running("app")],
        );
        assert_eq!(narrow(&p), ["web", "1/1", "Running", "0", "5m"]);
    }

    #[test]
    fn a_pod_with_one_of_two_containers_ready() {
        let mut app = running("b");
        app.ready = false;
        let p = with_status(
            pod("web").container("a").container("b"),
            "Running",
            vec![],
            vec![running("a"), app],
        );
        assert_eq!(narrow(&p), ["web", "1/2", "Running", "0", "5m"]);
    }

    #[test]
    fn a_crash_looping_pod_shows_restarts_and_when() {
        let c = restarted(waiting("app", "CrashLoopBackOff"), 3, 302);
        let p = with_status(pod("web").container("app"), "Running", vec![], vec![c]);
        assert_eq!(
            narrow(&p),
            ["web", "0/1", "CrashLoopBackOff", "3 (5m2s ago)", "5m"]
        );
    }

    #[test]
    fn restarts_without_a_last_termination_time_have_no_ago() {
        let mut c = running("app");
        c.restart_count = 2;
        let p = with_status(pod("web").container("app"), "Running", vec![], vec![c]);
        assert_eq!(cells(&p)[3], "2");
    }

    #[test]
    fn the_latest_restart_of_any_container_is_the_ago() {
        let a = restarted(running("a"), 1, 4000);
        let b = restarted(running("b"), 2, 65);
        let p = with_status(
            pod("web").container("a").container("b"),
            "Running",
            vec![],
            vec![a, b],
        );
        assert_eq!(cells(&p)[3], "3 (65s ago)");
    }

    #[test]
    fn waiting_reasons_show_as_status() {
        for reason in ["ContainerCreating", "ImagePullBackOff", "ErrImagePull"] {
            let p = with_status(
                pod("web").container("app"),
                "Pending",
                vec![],
                vec![waiting("app", reason)],
            );
            assert_eq!(cells(&p)[2], reason);
        }
    }

    #[test]
    fn the_first_container_has_the_last_word() {
        let p = with_status(
            pod("web").container("a").container("b"),
            "Pending",
            vec![],
            vec![
                waiting("a", "ImagePullBackOff"),
                waiting("b", "ContainerCreating"),
            ],
        );
        assert_eq!(cells(&p)[2], "ImagePullBackOff");
    }

    #[test]
    fn a_terminated_container_without_reason_shows_exit_code_or_signal() {
        let p = with_status(
            pod("web").container("app"),
            "Running",
            vec![],
            vec![terminated("app", 2, None, None)],
        );
        assert_eq!(cells(&p)[2], "ExitCode:2");
        let p = with_status(
            pod("web").container("app"),
            "Running",
            vec![],
            vec![terminated("app", 137, None, Some(9))],
        );
        assert_eq!(cells(&p)[2], "Signal:9");
        let p = with_status(
            pod("web").container("app"),
            "Failed",
            vec![],
            vec![terminated("app", 137, Some("OOMKilled"), None)],
        );
        assert_eq!(cells(&p)[2], "OOMKilled");
    }

    #[test]
    fn a_succeeded_pod_is_completed_with_the_row_condition() {
        let p = with_status(
            pod("job").container("app").restart("Never"),
            "Succeeded",
            vec![],
            vec![terminated("app", 0, Some("Completed"), None)],
        );
        assert_eq!(narrow(&p), ["job", "0/1", "Completed", "0", "5m"]);
        let t = pod_table(&[&p], now(), IncludeObject::None, "");
        assert_eq!(
            t["rows"][0]["conditions"],
            json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
        );
    }

    #[test]
    fn a_failed_pod_carries_the_failed_row_condition() {
        let p = with_status(
            pod("job").container("app"),
            "Failed",
            vec![],
            vec![terminated("app", 1, Some("Error"), None)],
        );
        let t = pod_table(&[&p], now(), IncludeObject::None, "");
        assert_eq!(cells(&p)[2], "Error");
        assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Failed");
        let running = with_status(
            pod("web").container("app"),
            "Running",
            vec![],
            vec![running("app")],
        );
        let t = pod_table(&[&running], now(), IncludeObject::None, "");
        assert!(t["rows"][0].get("conditions").is_none());
    }

    #[test]
    fn completed_beside_a_running_container_is_running_or_not_ready() {
        let statuses = vec![terminated("a", 0, Some("Completed"), None), running("b")];
        let b = pod("web").container("a").container("b");
        let p = with_status(b, "Running", vec![], statuses);
        assert_eq!(cells(&p)[2], "NotReady");
        let mut ready = p.clone();
        ready.status.as_mut().unwrap().conditions = Some(vec![cond("Ready", "True")]);
        assert_eq!(cells(&ready)[2], "Running");
        assert_eq!(cells(&ready)[1], "1/2");
    }

    #[test]
    fn a_running_init_container_is_init_n_of_m() {
        let p = with_status(
            pod("web").init("one").init("two").container("app"),
            "Pending",
            vec![
                terminated("one", 0, Some("Completed"), None),
                running("two"),
            ],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(narrow(&p), ["web", "0/1", "Init:1/2", "0", "5m"]);
        let p = with_status(
            pod("web").init("one").init("two").container("app"),
            "Pending",
            vec![
                waiting("one", "PodInitializing"),
                waiting("two", "PodInitializing"),
            ],
            vec![waiting("app", "PodInitializing")],
        );
        assert_eq!(cells(&p)[2], "Init:0/2");
    }

    #[test]
    fn a_failing_init_container_says_how() {
        let b = pod("web").init("setup").container("app");
        let app = vec![waiting("app", "PodInitializing")];
        let p = with_status(
            b.clone(),
            "Pending",
            vec![terminated("setup", 1, Some("Error"), None)],
            app.clone(),
        );
        assert_eq!(cells(&p)[2], "Init:Error");
        let p = with_status(
            b.clone(),
            "Pending",
            vec![terminated("setup", 3, None, None)],
            app.clone(),
        );
        assert_eq!(cells(&p)[2], "Init:ExitCode:3");
        let p = with_status(
            b.clone(),
            "Pending",
            vec![terminated("setup", 137, None, Some(9))],
            app.clone(),
        );
        assert_eq!(cells(&p)[2], "Init:Signal:9");
        let crash = restarted(waiting("setup", "CrashLoopBackOff"), 4, 30);
        let p = with_status(b, "Pending", vec![crash], app);
        assert_eq!(
            narrow(&p),
            ["web", "0/1", "Init:CrashLoopBackOff", "4 (30s ago)", "5m"]
        );
    }

    #[test]
    fn init_restarts_are_dropped_once_the_app_containers_run() {
        let init = restarted(terminated("setup", 0, Some("Completed"), None), 2, 200);
        let p = with_status(
            pod("web").init("setup").container("app"),
            "Running",
            vec![init],
            vec![running("app")],
        );
        assert_eq!(narrow(&p), ["web", "1/1", "Running", "0", "5m"]);
    }

    #[test]
    fn a_started_sidecar_counts_as_a_container() {
        let b = pod("web").init("proxy").container("app").with(|p| {
            let init = &mut p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0];
            init.restart_policy = Some("Always".into());
        });
        let sidecar = restarted(running("proxy"), 1, 90);
        let mut p = with_status(b, "Running", vec![sidecar], vec![running("app")]);
        p.status.as_mut().unwrap().conditions = Some(vec![cond("Initialized", "True")]);
        assert_eq!(narrow(&p), ["web", "2/2", "Running", "1 (90s ago)", "5m"]);
    }

    #[test]
    fn a_deleted_pod_is_terminating_unless_finished() {
        let deleted = |phase: &str, reason: Option<&str>| {
            let app = match phase {
                "Succeeded" => terminated("app", 0, Some("Completed"), None),
                _ => running("app"),
            };
            let mut p = with_status(pod("web").container("app"), phase, vec![], vec![app]);
            p.metadata.deletion_timestamp = Some(ago(1));
            p.status.as_mut().unwrap().reason = reason.map(Into::into);
            cells(&p)[2].clone()
        };
        assert_eq!(deleted("Running", None), "Terminating");
        assert_eq!(deleted("Running", Some("NodeLost")), "Unknown");
        // A finished pod keeps saying how it finished.
        assert_eq!(deleted("Succeeded", None), "Completed");
    }

    #[test]
    fn status_reason_and_scheduling_gates_override_the_phase() {
        let mut p = with_status(pod("web").container("app"), "Failed", vec![], vec![]);
        p.status.as_mut().unwrap().reason = Some("Evicted".into());
        assert_eq!(cells(&p)[2], "Evicted");
        let mut p = with_status(pod("web").container("app"), "Pending", vec![], vec![]);
        p.status.as_mut().unwrap().conditions = Some(vec![PodCondition {
            reason: Some("SchedulingGated".into()),
            ..cond("PodScheduled", "False")
        }]);
        assert_eq!(cells(&p)[2], "SchedulingGated");
    }

    #[test]
    fn a_pod_without_status_or_timestamps() {
        let p = pod("web").container("app").build_pod();
        assert_eq!(
            cells(&p),
            [
                "web",
                "0/1",
                "",
                "0",
                "<unknown>",
                "<none>",
                "<none>",
                "<none>",
                "<none>"
            ]
        );
    }

    #[test]
    fn wide_cells_show_ip_node_nomination_and_gates() {
        let mut p = with_status(
            pod("web").container("app"),
            "Running",
            vec![],
            vec![running("app")],
        );
        let spec = p.spec.as_mut().unwrap();
        spec.node_name = Some("node-1".into());
        spec.readiness_gates = Some(vec![
            PodReadinessGate {
                condition_type: "example.com/lb".into(),
            },
            PodReadinessGate {
                condition_type: "example.com/dns".into(),
            },
        ]);
        let st = p.status.as_mut().unwrap();
        st.pod_ips = Some(vec![PodIP {
            ip: "172.17.0.5".into(),
        }]);
        st.nominated_node_name = Some("node-2".into());
        st.conditions = Some(vec![
            cond("example.com/lb", "True"),
            cond("example.com/dns", "False"),
        ]);
        assert_eq!(cells(&p)[5..], ["172.17.0.5", "node-1", "node-2", "1/2"]);
    }

    #[test]
    fn pod_columns_are_the_api_server_ones() {
        let cols = pod_columns();
        let names: Vec<_> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ]
        );
        let priorities: Vec<_> = cols
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
        assert_eq!(cols[0]["format"], "name");
        assert!(cols.iter().all(|c| c["type"] == "string"));
        assert!(cols
            .iter()
            .all(|c| !c["description"].as_str().unwrap().is_empty()));
    }

    #[test]
    fn pod_table_rows_carry_metadata_for_the_namespace_column() {
        let p = with_status(
            pod("web").namespace("shop").container("app").with(|p| {
                p.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
            }),
            "Running",
            vec![],
            vec![running("app")],
        );
        let t = pod_table(&[&p], now(), IncludeObject::Metadata, "42");
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(t["metadata"], json!({"resourceVersion": "42"}));
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 9);
        let row = &t["rows"][0];
        assert_eq!(row["cells"].as_array().unwrap().len(), 9);
        let o = &row["object"];
        assert_eq!(o["kind"], "PartialObjectMetadata");
        assert_eq!(o["apiVersion"], "meta.k8s.io/v1");
        assert_eq!(o["metadata"]["name"], "web");
        assert_eq!(o["metadata"]["namespace"], "shop");
        assert_eq!(o["metadata"]["uid"], p.metadata.uid.clone().unwrap());
        assert_eq!(o["metadata"]["labels"], json!({"app": "web"}));
        assert!(o["metadata"]["creationTimestamp"].is_string());
        assert!(o.get("spec").is_none());
    }

    #[test]
    fn a_pod_without_namespace_is_served_in_default() {
        let p = pod("web")
            .container("app")
            .with(|p| p.metadata.namespace = None)
            .build_pod();
        let t = pod_table(&[&p], now(), IncludeObject::Metadata, "");
        assert_eq!(t["rows"][0]["object"]["metadata"]["namespace"], "default");
        assert_eq!(t["metadata"], json!({}));
    }

    #[test]
    fn include_object_picks_what_rows_carry() {
        let p = with_status(
            pod("web").container("app"),
            "Running",
            vec![],
            vec![running("app")],
        );
        let t = pod_table(&[&p], now(), IncludeObject::None, "1");
        assert!(t["rows"][0].get("object").is_none());
        let t = pod_table(&[&p], now(), IncludeObject::Object, "1");
        let o = &t["rows"][0]["object"];
        assert_eq!(o["kind"], "Pod");
        assert_eq!(o["apiVersion"], "v1");
        assert_eq!(o["spec"]["containers"][0]["name"], "app");
        assert_eq!(o["status"]["phase"], "Running");
    }

    #[test]
    fn rows_keep_the_given_order() {
        let a = pod("a").container("app").build_pod();
        let b = pod("b").container("app").build_pod();
        let t = pod_table(&[&b, &a], now(), IncludeObject::None, "");
        assert_eq!(t["rows"][0]["cells"][0], "b");
        assert_eq!(t["rows"][1]["cells"][0], "a");
        assert_eq!(
            pod_table(&[], now(), IncludeObject::None, "")["rows"],
            json!([])
        );
    }

    #[test]
    fn include_object_parses_the_query_value() {
        assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
        assert_eq!(IncludeObject::parse(Some("")), Ok(IncludeObject::Metadata));
        assert_eq!(
            IncludeObject::parse(Some("Metadata")),
            Ok(IncludeObject::Metadata)
        );
        assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
        assert_eq!(
            IncludeObject::parse(Some("Object")),
            Ok(IncludeObject::Object)
        );
        assert_eq!(
            IncludeObject::parse(Some("all")),
            Err("unrecognized includeObject value: \"all\"".into())
        );
    }

    fn event() -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some("web.17f".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("web".into()),
                namespace: Some("default".into()),
                field_path: Some("spec.containers{app}".into()),
                ..Default::default()
            },
            type_: Some("Warning".into()),
            reason: Some("BackOff".into()),
            message: Some("  Back-off restarting failed container app\n".into()),
            count: Some(4),
            first_timestamp: Some(ago(600)),
            last_timestamp: Some(ago(12)),
            source: Some(EventSource {
                component: Some("podvisor".into()),
                host: Some("node-1".into()),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn event_cells_follow_print_event() {
        assert_eq!(
            event_cells(&event(), now()),
            vec![
                json!("12s"),
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{app}"),
                json!("podvisor, node-1"),
                json!("Back-off restarting failed container app"),
                json!("10m"),
                json!(4),
                json!("web.17f"),
            ]
        );
    }

    #[test]
    fn event_columns_are_the_api_server_ones() {
        let cols = event_columns();
        let names: Vec<_> = cols.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "Last Seen",
                "Type",
                "Reason",
                "Object",
                "Subobject",
                "Source",
                "Message",
                "First Seen",
                "Count",
                "Name"
            ]
        );
        let priorities: Vec<_> = cols
            .iter()
            .map(|c| c["priority"].as_i64().unwrap())
            .collect();
        assert_eq!(priorities, [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]);
        assert_eq!(cols[9]["format"], "name");
    }

    #[test]
    fn event_times_fall_back_and_series_win() {
        let mut ev = event();
        ev.last_timestamp = None;
        assert_eq!(event_cells(&ev, now())[0], "10m");
        ev.first_timestamp = None;
        assert_eq!(event_cells(&ev, now())[7], "<unknown>");
        ev.event_time = Some(MicroTime(ago(125).0));
        assert_eq!(event_cells(&ev, now())[0], "2m5s");
        ev.series = Some(EventSeries {
            count: Some(9),
            last_observed_time: Some(MicroTime(ago(3).0)),
        });
        let c = event_cells(&ev, now());
        assert_eq!((c[0].clone(), c[8].clone()), (json!("3s"), json!(9)));
    }

    #[test]
    fn an_event_without_count_happened_once() {
        let mut ev = event();
        ev.count = None;
        assert_eq!(event_cells(&ev, now())[8], 1);
    }

    #[test]
    fn event_source_falls_back_to_the_reporting_fields() {
        let mut ev = event();
        ev.source = None;
        ev.reporting_component = Some("podvisor".into());
        assert_eq!(event_cells(&ev, now())[5], "podvisor");
        ev.reporting_instance = Some("node-9".into());
        assert_eq!(event_cells(&ev, now())[5], "podvisor, node-9");
    }

    #[test]
    fn an_event_about_a_kind_names_only_the_kind() {
        let mut ev = event();
        ev.involved_object.kind = Some("Node".into());
        ev.involved_object.name = None;
        assert_eq!(event_cells(&ev, now())[3], "node");
    }

    #[test]
    fn event_table_rows_carry_event_metadata() {
        let ev = event();
        let t = event_table(&[&ev], now(), IncludeObject::Metadata, "7");
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(t["columnDefinitions"].as_array().unwrap().len(), 10);
        let o = &t["rows"][0]["object"];
        assert_eq!(o["kind"], "PartialObjectMetadata");
        assert_eq!(o["metadata"]["namespace"], "default");
        assert_eq!(o["metadata"]["name"], "web.17f");
        let t = event_table(&[&ev], now(), IncludeObject::Object, "7");
        assert_eq!(t["rows"][0]["object"]["kind"], "Event");
        assert_eq!(t["rows"][0]["object"]["reason"], "BackOff");
    }
}
