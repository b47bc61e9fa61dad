//! podvisor's HTTP APIs.
//!
//! - The **secure API** ([`secure_router`], HTTPS on `--port`): the node's
//!   Kubernetes API for `kubectl` ([`node`]), every request but `/healthz`
//!   and `/version` with a bearer token ([`auth`]); `kubectl exec` and
//!   `attach` over WebSocket ([`exec`]).
//! - The **read-only API** ([`read_only_router`], plain HTTP on
//!   `--read-only-port`, as the kubelet's 10255): `/healthz`, `/pods` and
//!   `/pods/{namespace}/{name}/events`, no token. It changes nothing but
//!   shows every pod spec, environment values included.

pub mod auth;
pub mod exec;
pub mod kube;
pub mod node;
pub mod openapi;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::actors::events::EventView;
use crate::actors::StatusView;
use crate::runtime::ContainerRuntime;

/// How long `/healthz` waits for the engine.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ApiState {
    pub store: StatusView,
    pub events: EventView,
    pub runtime: Arc<dyn ContainerRuntime>,
    /// How `kubectl exec` runs commands (`--docker-exec-handler`).
    pub exec_handler: crate::settings::ExecHandler,
}

/// The read-only API: no token, nothing changed.
pub fn read_only_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/pods", get(pods))
        .route("/pods/{namespace}/{name}/events", get(pod_events))
        .with_state(state)
}

/// The secure API: `/healthz` and `/version` open, the rest behind a
/// bearer token of `tokens` (401 as a `Status` without one).
pub fn secure_router(state: ApiState, tokens: Arc<auth::Tokens>) -> Router {
    let guarded = node::routes().layer(axum::middleware::from_fn_with_state(tokens, authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(node::open_routes())
        .merge(guarded)
        .with_state(state)
}

/// Lets a request with a known bearer token through; answers 401 otherwise.
async fn authenticate(
    State(tokens): State<Arc<auth::Tokens>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let header = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match tokens.authenticate(header) {
        Ok(user) => {
            tracing::debug!(user = %user.name, %agent, method = %request.method(), uri = %request.uri(), "API request");
            next.run(request).await
        }
        Err(why) => {
            tracing::info!(%why, %agent, method = %request.method(), uri = %request.uri(), "API request refused");
            (StatusCode::UNAUTHORIZED, Json(kube::unauthorized())).into_response()
        }
    }
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
    let rv = s.store.resource_version().to_string();
    Json(node::pod_list(&node::pods_sorted(&s.store, |_| true), &rv))
}

/// A pod's recent events as a `v1` `EventList`, oldest first.
async fn pod_events(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
) -> Response {
    let Some((uid, _)) = node::find_pod(&s.store, &namespace, &name) else {
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
