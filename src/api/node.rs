//! The node's Kubernetes API, as much of it as `kubectl` needs to read the
//! node's pods with no API server anywhere: version and discovery, pods
//! (list, get, watch, with label and field selectors and the tables kubectl
//! prints) and events. The answers are shaped by [`super::kube`]; this
//! module reads the stores and speaks HTTP.
//!
//! Served on the secure port behind a bearer token (see [`super::auth`]);
//! `/version` and `/healthz` need none, as on the API server.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, Pod};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use super::kube::selectors::{EVENT_FIELDS, POD_FIELDS};
use super::kube::{self, event_field, pod_field, FieldSelector, IncludeObject, LabelSelector};
use super::{write, ApiState};
use crate::actors::pod_feed::{PodChange, TooOld};
use crate::actors::StatusView;

/// The Kubernetes minor version the API follows: `kubectl` (a dispatcher on
/// these machines) picks the client of the server's minor version.
pub const KUBE_MINOR: &str = "32";

/// A watch without `timeoutSeconds` ends after this long (the API server
/// picks 30 to 60 minutes); the client watches again.
const WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Routes that need no token.
pub fn open_routes() -> Router<ApiState> {
    Router::new().route("/version", get(version))
}

/// Routes behind the token.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api", get(api_versions))
        .route("/apis", get(api_groups))
        .route("/api/v1", get(api_resources))
        .route(
            "/openapi/v3",
            get(|| async { Json(super::openapi::index()) }),
        )
        .route(
            "/openapi/v3/api/v1",
            get(|| async { Json(super::openapi::api_v1().clone()) }),
        )
        .route("/spec", get(super::spec))
        .route("/spec/", get(super::spec))
        .route("/api/v1/pods", get(list_pods_all))
        .route(
            "/api/v1/namespaces/{namespace}/pods",
            get(list_pods_in).post(write::create_pod),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}",
            get(get_pod)
                .put(write::replace_pod)
                .patch(write::patch_pod)
                .delete(write::delete_pod),
        )
        .route(super::logs::ROUTE, get(super::logs::pod_log))
        .route("/api/v1/namespaces", get(list_namespaces))
        .route("/api/v1/namespaces/{namespace}", get(get_namespace))
        .route("/api/v1/events", get(list_events_all))
        .route("/api/v1/namespaces/{namespace}/events", get(list_events_in))
        .merge(super::exec::routes())
        .fallback(not_served)
}

fn answer(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    answer(StatusCode::BAD_REQUEST, kube::bad_request(message))
}

async fn not_served(uri: axum::http::Uri) -> Response {
    answer(
        StatusCode::NOT_FOUND,
        kube::status(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({uri})"),
        ),
    )
}

async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0-podvisor.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, go_arch()),
    }))
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn api_versions(headers: HeaderMap) -> Json<Value> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
    }))
}

async fn api_groups() -> Json<Value> {
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}))
}

/// Only what is served.
async fn api_resources() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"], "categories": ["all"],
            },
            {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": ["get"]},
            {"name": "pods/exec", "singularName": "", "namespaced": true, "kind": "PodExecOptions", "verbs": ["create", "get"]},
            {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions", "verbs": ["create", "get"]},
            {
                "name": "events", "singularName": "event", "namespaced": true, "kind": "Event",
                "verbs": ["get", "list", "watch"], "shortNames": ["ev"],
            },
            {
                "name": "namespaces", "singularName": "namespace", "namespaced": false,
                "kind": "Namespace", "verbs": ["get", "list"], "shortNames": ["ns"],
            },
        ],
    }))
}

/// What a list or watch asked for.
struct ListQuery {
    labels: LabelSelector,
    fields: FieldSelector,
    watch: bool,
    resource_version: u64,
    timeout: Duration,
    table: Option<IncludeObject>,
}

impl ListQuery {
    fn parse(
        q: &HashMap<String, String>,
        headers: &HeaderMap,
        supported: &[&str],
    ) -> Result<Self, Box<Response>> {
        let bad_request = |m: String| Box::new(bad_request(m));
        let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))
            .map_err(bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").map_or("", String::as_str))
            .map_err(bad_request)?;
        fields.check(supported).map_err(bad_request)?;
        let watch = matches!(q.get("watch").map(String::as_str), Some("true" | "1"));
        let resource_version = match q.get("resourceVersion").map(String::as_str) {
            None | Some("") | Some("0") => 0,
            Some(v) => v.parse().map_err(|_| {
                bad_request(format!(
                    "resourceVersion: Invalid value: {v:?}: must be a number"
                ))
            })?,
        };
        let timeout = match q.get("timeoutSeconds") {
            Some(t) => Duration::from_secs(
                t.parse()
                    .map_err(|_| bad_request(format!("timeoutSeconds: Invalid value: {t:?}")))?,
            ),
            None => WATCH_TIMEOUT,
        };
        let table = wants_table(headers)
            .then(|| IncludeObject::parse(q.get("includeObject").map(String::as_str)))
            .transpose()
            .map_err(bad_request)?;
        Ok(Self {
            labels,
            fields,
            watch,
            resource_version,
            timeout,
            table,
        })
    }

    fn pod_matches(&self, namespace: Option<&str>, pod: &Pod) -> bool {
        let m = &pod.metadata;
        namespace.is_none_or(|ns| m.namespace.as_deref() == Some(ns))
            && self.labels.matches(&m.labels.clone().unwrap_or_default())
            && self.fields.matches(|f| pod_field(pod, f)).unwrap_or(false)
    }
}

/// Whether the client asked for a `meta.k8s.io/v1` `Table` (kubectl's `get`).
fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.contains("as=Table") && t.contains("g=meta.k8s.io"))
}

/// The pods of `store` that `keep` keeps, by namespace and name.
pub(super) fn pods_sorted(store: &StatusView, keep: impl Fn(&Pod) -> bool) -> Vec<Arc<Pod>> {
    let mut pods: Vec<Arc<Pod>> = store.values().into_iter().filter(|p| keep(p)).collect();
    pods.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    pods
}

/// A `v1` `PodList` of `pods` at resourceVersion `rv`.
pub(super) fn pod_list(pods: &[Arc<Pod>], rv: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {"resourceVersion": rv},
        "items": pods.iter().map(|p| pod_object(p)).collect::<Vec<_>>(),
    })
}

/// The pod `namespace/name`, with its UID.
pub(super) fn find_pod(
    store: &StatusView,
    namespace: &str,
    name: &str,
) -> Option<(String, Arc<Pod>)> {
    store.find_map(|uid, p| {
        let m = &p.metadata;
        (m.namespace.as_deref() == Some(namespace) && m.name.as_deref() == Some(name))
            .then(|| (uid.clone(), p.clone()))
    })
}

/// A pod as the API serves it.
pub(super) fn pod_object(pod: &Pod) -> Value {
    let mut v = serde_json::to_value(pod).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("apiVersion".into(), "v1".into());
        o.insert("kind".into(), "Pod".into());
    }
    v
}

async fn list_pods_all(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_pods(s, None, q, headers).await
}

async fn list_pods_in(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_pods(s, Some(namespace), q, headers).await
}

async fn list_pods(
    s: ApiState,
    namespace: Option<String>,
    q: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let query = match ListQuery::parse(&q, &headers, POD_FIELDS) {
        Ok(query) => query,
        Err(r) => return *r,
    };
    if query.watch {
        return watch_pods(s, namespace, query);
    }
    let rv = s.store.resource_version().to_string();
    let pods = pods_sorted(&s.store, |p| query.pod_matches(namespace.as_deref(), p));
    match query.table {
        Some(include) => {
            let refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
            Json(kube::pod_table(&refs, chrono::Utc::now(), include, &rv)).into_response()
        }
        None => Json(pod_list(&pods, &rv)).into_response(),
    }
}

async fn get_pod(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let Some((_, pod)) = find_pod(&s.store, &namespace, &name) else {
        return answer(StatusCode::NOT_FOUND, kube::not_found("pods", &name));
    };
    if wants_table(&headers) {
        let include = match IncludeObject::parse(q.get("includeObject").map(String::as_str)) {
            Ok(i) => i,
            Err(e) => return bad_request(e),
        };
        let rv = pod.metadata.resource_version.clone().unwrap_or_default();
        return Json(kube::pod_table(&[&pod], chrono::Utc::now(), include, &rv)).into_response();
    }
    Json(pod_object(&pod)).into_response()
}

/// One line of a watch: `{"type": …, "object": …}` and a newline.
fn watch_line(kind: &str, object: Value) -> Result<axum::body::Bytes, Infallible> {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Ok(line.into())
}

/// Streams the pods' changes after `query.resource_version` that match the
/// query, until the timeout or the client goes. A version older than the
/// kept history gets the API server's `410 Gone` as an `ERROR` event.
fn watch_pods(s: ApiState, namespace: Option<String>, query: ListQuery) -> Response {
    let (backlog, mut receiver) = match s.store.watch_from(query.resource_version) {
        Ok(w) => w,
        Err(TooOld { oldest }) => {
            let status = kube::status(
                410,
                "Expired",
                format!(
                    "too old resource version: {} ({})",
                    query.resource_version,
                    oldest.saturating_sub(1)
                ),
            );
            let body = Body::from_stream(futures::stream::iter([watch_line("ERROR", status)]));
            return watch_response(body);
        }
    };
    let deadline = tokio::time::Instant::now() + query.timeout;
    let render = move |change: &PodChange| -> Option<Result<axum::body::Bytes, Infallible>> {
        if !query.pod_matches(namespace.as_deref(), &change.pod) {
            return None;
        }
        let object = match query.table {
            Some(include) => kube::pod_table(
                &[&change.pod],
                chrono::Utc::now(),
                include,
                &change.version.to_string(),
            ),
            None => pod_object(&change.pod),
        };
        Some(watch_line(change.kind.as_str(), object))
    };
    let stream = async_stream(backlog, move |tx| async move {
        loop {
            let next = tokio::time::timeout_at(deadline, receiver.recv()).await;
            match next {
                Ok(Ok(change)) => {
                    if tx.send(change).await.is_err() {
                        return; // the client went away
                    }
                }
                // Lagged: this watch missed changes; ending it makes the
                // client list and watch again. Closed: shutting down.
                Ok(Err(RecvError::Lagged(_) | RecvError::Closed)) | Err(_) => return,
            }
        }
    })
    .filter_map(move |change| std::future::ready(render(&change)));
    watch_response(Body::from_stream(stream))
}

/// A stream of `backlog` then of whatever `feed` sends into its channel.
fn async_stream<F, Fut>(
    backlog: Vec<PodChange>,
    feed: F,
) -> impl futures::Stream<Item = PodChange> + Send + 'static
where
    F: FnOnce(tokio::sync::mpsc::Sender<PodChange>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(feed(tx));
    futures::stream::iter(backlog).chain(tokio_stream_of(rx))
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

fn watch_response(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Every event of the node, with the pod's namespace.
fn all_events(s: &ApiState) -> Vec<Arc<Event>> {
    let mut events: Vec<Arc<Event>> = s
        .events
        .entries()
        .into_iter()
        .flat_map(|(_, evs)| evs.into_iter())
        .collect();
    events.sort_by(|a, b| {
        let key = |e: &Event| {
            (
                e.last_timestamp.as_ref().map(|t| t.0),
                e.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    events
}

async fn list_events_all(
    State(s): State<ApiState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_events(s, None, q, headers)
}

async fn list_events_in(
    State(s): State<ApiState>,
    Path(namespace): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    list_events(s, Some(namespace), q, headers)
}

fn list_events(
    s: ApiState,
    namespace: Option<String>,
    q: HashMap<String, String>,
    headers: HeaderMap,
) -> Response {
    let query = match ListQuery::parse(&q, &headers, EVENT_FIELDS) {
        Ok(query) => query,
        Err(r) => return *r,
    };
    if query.watch {
        // Events are not versioned: a watch ends at once and the client
        // lists again when it wants.
        return watch_response(Body::empty());
    }
    let events: Vec<Arc<Event>> = all_events(&s)
        .into_iter()
        .filter(|e| {
            namespace
                .as_deref()
                .is_none_or(|ns| e.metadata.namespace.as_deref() == Some(ns))
                && query.fields.matches(|f| event_field(e, f)).unwrap_or(false)
        })
        .collect();
    let rv = s.store.resource_version().to_string();
    match query.table {
        Some(include) => {
            let refs: Vec<&Event> = events.iter().map(|e| &**e).collect();
            Json(kube::event_table(&refs, chrono::Utc::now(), include, &rv)).into_response()
        }
        None => Json(json!({
            "apiVersion": "v1",
            "kind": "EventList",
            "metadata": {"resourceVersion": rv},
            "items": events.iter().map(|e| {
                let mut v = serde_json::to_value(&**e).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("apiVersion".into(), "v1".into());
                    o.insert("kind".into(), "Event".into());
                }
                v
            }).collect::<Vec<_>>(),
        }))
        .into_response(),
    }
}

/// The namespaces: `default` and those of the node's pods, each `Active`
/// (there is no API server to create or delete them).
fn namespaces(s: &ApiState) -> Vec<String> {
    let mut names: Vec<String> = s
        .store
        .values()
        .into_iter()
        .filter_map(|p| p.metadata.namespace.clone())
        .chain(["default".to_string()])
        .collect();
    names.sort();
    names.dedup();
    names
}

fn namespace_object(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

/// `kubectl get ns`'s table: NAME, STATUS (AGE is not known: `<unknown>`).
fn namespace_table(names: &[String], rv: &str) -> Value {
    let column = |name: &str, format: &str| json!({"name": name, "type": "string", "format": format, "description": "", "priority": 0});
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [column("Name", "name"), column("Status", ""), column("Age", "")],
        "rows": names.iter().map(|n| json!({
            "cells": [n, "Active", "<unknown>"],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": n},
            },
        })).collect::<Vec<_>>(),
    })
}

async fn list_namespaces(State(s): State<ApiState>, headers: HeaderMap) -> Response {
    let names = namespaces(&s);
    let rv = s.store.resource_version().to_string();
    if wants_table(&headers) {
        return Json(namespace_table(&names, &rv)).into_response();
    }
    Json(json!({
        "apiVersion": "v1",
        "kind": "NamespaceList",
        "metadata": {"resourceVersion": rv},
        "items": names.iter().map(|n| namespace_object(n)).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn get_namespace(
    State(s): State<ApiState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !namespaces(&s).contains(&name) {
        return answer(StatusCode::NOT_FOUND, kube::not_found("namespaces", &name));
    }
    if wants_table(&headers) {
        let rv = s.store.resource_version().to_string();
        return Json(namespace_table(&[name], &rv)).into_response();
    }
    Json(namespace_object(&name)).into_response()
}
