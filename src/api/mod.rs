//! The local HTTP API (read-only for now): `/healthz` and `/pods`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::core::v1::Pod;

use crate::actors::events::EventStore;
use crate::actors::StatusStore;
use crate::runtime::ContainerRuntime;

/// How long `/healthz` waits for the engine.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ApiState {
    pub store: StatusStore,
    pub events: EventStore,
    pub runtime: Arc<dyn ContainerRuntime>,
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pods", get(pods))
        .route("/pods/{namespace}/{name}/events", get(pod_events))
        .with_state(state)
}

/// 200 when the engine answers, 503 with the reason otherwise.
async fn healthz(State(s): State<ApiState>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, s.runtime.version()).await {
        Ok(Ok(v)) => (StatusCode::OK, format!("ok: docker {v}\n")).into_response(),
        Ok(Err(e)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the Docker engine did not answer within {HEALTH_TIMEOUT:?}\n"),
        )
            .into_response(),
    }
}

/// The desired pods with their status, as a `v1` `PodList`.
async fn pods(State(s): State<ApiState>) -> Json<serde_json::Value> {
    let mut items: Vec<Pod> = s.store.iter().map(|p| (**p.value()).clone()).collect();
    items.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    let items: Vec<serde_json::Value> = items
        .into_iter()
        .map(|p| {
            let mut v = serde_json::to_value(&p).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("apiVersion".into(), "v1".into());
                o.insert("kind".into(), "Pod".into());
            }
            v
        })
        .collect();
    Json(serde_json::json!({
        "apiVersion": "v1",
        "kind": "PodList",
        "metadata": {},
        "items": items,
    }))
}

/// The UID of the desired pod `namespace/name`.
fn uid_of(store: &StatusStore, namespace: &str, name: &str) -> Option<String> {
    store.iter().find_map(|p| {
        let m = &p.value().metadata;
        (m.namespace.as_deref() == Some(namespace) && m.name.as_deref() == Some(name))
            .then(|| p.key().clone())
    })
}

/// A pod's recent events as a `v1` `EventList`, oldest first.
async fn pod_events(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let Some(uid) = uid_of(&s.store, &namespace, &name) else {
        return (
            StatusCode::NOT_FOUND,
            format!("pod {namespace}/{name} is not known\n"),
        )
            .into_response();
    };
    let items: Vec<serde_json::Value> = s
        .events
        .get(&uid)
        .map(|e| {
            e.iter()
                .map(|e| serde_json::to_value(e).unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    Json(serde_json::json!({
        "apiVersion": "v1",
        "kind": "EventList",
        "metadata": {},
        "items": items,
    }))
    .into_response()
}

/// Binds and serves until the process ends.
pub async fn serve(addr: SocketAddr, state: ApiState) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP API listening");
    axum::serve(listener, router(state)).await
}
