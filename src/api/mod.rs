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
//!
//! Both serve `/metrics` (the read-only API without a token, the secure one
//! with one) and count every request they answer in
//! `kubelet_http_requests_total` ([`count_requests`]).

pub mod auth;
pub mod exec;
pub mod kube;
pub mod logs;
pub mod node;
pub mod openapi;
pub mod write;

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
    /// The manifest directory, for the writes (`None`: writes are not
    /// served, 405).
    pub manifests: Option<Arc<write::Manifests>>,
    /// What the machine is (`/spec`), read at start.
    pub machine: Option<Arc<crate::host::machine::MachineInfo>>,
    /// What `/metrics` shows; the API counts its requests there.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The read-only API: no token, nothing changed.
pub fn read_only_router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/spec", get(spec))
        .route("/spec/", get(spec))
        .route("/pods", get(pods))
        .route("/pods/{namespace}/{name}/events", get(pod_events))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The secure API: `/healthz` and `/version` open, the rest behind a
/// bearer token of `tokens` (401 as a `Status` without one).
pub fn secure_router(state: ApiState, tokens: Arc<auth::Tokens>) -> Router {
    let guarded = node::routes()
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(tokens, authenticate));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(node::open_routes())
        .merge(guarded)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            count_requests,
        ))
        .with_state(state)
}

/// The group whose users may change things (create, replace, patch and
/// delete pods, exec and attach into them): podvisor's own token is in
/// it; other users of `--token-auth-file` only read.
pub const WRITERS_GROUP: &str = "system:masters";

/// A request that changes something, as the API server's authorizer sees
/// it: the verb, the resource (`pods`, `pods/exec`), and the namespace
/// and name the path gives. Reads (and an exec's or attach's WebSocket
/// upgrade, which is a GET) are told apart by the method and the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteRequest {
    pub verb: &'static str,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl WriteRequest {
    pub fn of(method: &axum::http::Method, path: &str) -> Option<Self> {
        use axum::http::Method;
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (namespace, rest) = match parts.as_slice() {
            ["api", "v1", "namespaces", ns, rest @ ..] => (ns.to_string(), rest),
            ["api", "v1", rest @ ..] => (String::new(), rest),
            _ => (String::new(), &parts[..0]),
        };
        let (resource, name) = match rest {
            [plural] => (plural.to_string(), String::new()),
            [plural, name] => (plural.to_string(), name.to_string()),
            [plural, name, sub] => (format!("{plural}/{sub}"), name.to_string()),
            _ => (String::new(), String::new()),
        };
        let interactive = ["pods/exec", "pods/attach", "pods/portforward"].contains(&&*resource);
        let verb = match *method {
            Method::GET | Method::HEAD | Method::OPTIONS if !interactive => return None,
            Method::GET | Method::POST if interactive => "create",
            Method::POST => "create",
            Method::PUT => "update",
            Method::PATCH => "patch",
            Method::DELETE => "delete",
            _ => "create",
        };
        Some(Self {
            verb,
            resource,
            namespace,
            name,
        })
    }
}

/// Lets a request with a known bearer token through (a write only for
/// [`WRITERS_GROUP`], 403 otherwise); answers 401 otherwise.
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
            if let Some(w) = WriteRequest::of(request.method(), request.uri().path()) {
                if !user.groups.iter().any(|g| g == WRITERS_GROUP) {
                    tracing::info!(user = %user.name, verb = w.verb, resource = %w.resource, uri = %request.uri(), "API write forbidden");
                    let body =
                        kube::forbidden(&user.name, w.verb, &w.resource, &w.name, &w.namespace);
                    return (StatusCode::FORBIDDEN, Json(body)).into_response();
                }
            }
            next.run(request).await
        }
        Err(why) => {
            tracing::info!(%why, %agent, method = %request.method(), uri = %request.uri(), "API request refused");
            (StatusCode::UNAUTHORIZED, Json(kube::unauthorized())).into_response()
        }
    }
}

/// Counts the request by method, route template (never the raw path:
/// pod names would make the label values grow without bound) and code.
async fn count_requests(
    State(metrics): State<Arc<crate::metrics::Metrics>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(request).await;
    metrics.http_request(method.as_str(), &route, response.status().as_u16());
    response
}

/// The metrics in the Prometheus text format, encoded off the actors'
/// thread (it reads `/proc/self`).
async fn metrics(State(s): State<ApiState>) -> Response {
    let m = s.metrics.clone();
    match tokio::task::spawn_blocking(move || m.encode()).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                crate::metrics::CONTENT_TYPE,
            )],
            text,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the metrics: {e}\n"),
        )
            .into_response(),
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

/// The machine (cAdvisor's `MachineInfo` names), with the engine's
/// version asked now.
pub(crate) async fn spec(State(s): State<ApiState>) -> Response {
    let Some(machine) = &s.machine else {
        return (StatusCode::NOT_FOUND, "no machine information\n").into_response();
    };
    let mut m = (**machine).clone();
    if let Ok(Ok(v)) = tokio::time::timeout(HEALTH_TIMEOUT, s.runtime.version()).await {
        m.docker_version = v;
    }
    Json(m).into_response()
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Method;

    use super::{ApiState, WriteRequest};
    use crate::actors::pod_feed::PodStore;
    use crate::actors::shared::Owned;
    use crate::runtime::fake::FakeDocker;

    #[tokio::test]
    async fn the_read_only_api_serves_metrics_and_counts_requests_by_route() {
        let store = PodStore::new();
        let events: Owned<String, _> = Owned::default();
        let state = ApiState {
            store: store.view(),
            events: events.view(),
            runtime: Arc::new(FakeDocker::new()),
            exec_handler: crate::settings::ExecHandler::Native,
            manifests: None,
            machine: None,
            metrics: Default::default(),
        };
        let metrics = state.metrics.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = super::read_only_router(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        let get = |path: &str| reqwest::get(format!("{base}{path}"));
        assert_eq!(get("/pods").await.unwrap().status().as_u16(), 200);
        let events = get("/pods/default/web/events").await.unwrap();
        assert_eq!(events.status().as_u16(), 404);
        assert_eq!(get("/nothing/here").await.unwrap().status().as_u16(), 404);
        let page = get("/metrics").await.unwrap();
        assert_eq!(page.headers()["content-type"], crate::metrics::CONTENT_TYPE);
        let text = page.text().await.unwrap();
        for line in [
            r#"kubelet_http_requests_total{method="GET",path="/pods",code="200"} 1"#,
            r#"kubelet_http_requests_total{method="GET",path="/pods/:namespace/:name/events",code="404"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line}\n{text}");
        }
        assert!(!text.contains("web"), "a pod name in a label: {text}");
        // The scrape itself is counted once answered.
        let counted = |path: &str, code: &str| {
            metrics
                .http_requests
                .get_or_create(&[
                    ("method", "GET".to_string()),
                    ("path", path.to_string()),
                    ("code", code.to_string()),
                ])
                .get()
        };
        assert_eq!(counted("/metrics", "200"), 1);
        assert_eq!(counted("unmatched", "404"), 1, "{text}");
    }

    #[test]
    fn writes_are_told_from_reads_by_method_and_path() {
        assert_eq!(
            WriteRequest::of(&Method::GET, "/api/v1/namespaces/default/pods/web"),
            None
        );
        assert_eq!(WriteRequest::of(&Method::GET, "/api/v1/pods?watch=1"), None);
        assert_eq!(
            WriteRequest::of(&Method::GET, "/api/v1/namespaces/default/pods/web/log"),
            None
        );
        let w = WriteRequest::of(&Method::DELETE, "/api/v1/namespaces/team/pods/db").unwrap();
        assert_eq!(
            (w.verb, &*w.resource, &*w.namespace, &*w.name),
            ("delete", "pods", "team", "db")
        );
        let w = WriteRequest::of(&Method::POST, "/api/v1/namespaces/default/pods").unwrap();
        assert_eq!((w.verb, &*w.resource, &*w.name), ("create", "pods", ""));
        let w = WriteRequest::of(&Method::PATCH, "/api/v1/namespaces/default/pods/web").unwrap();
        assert_eq!(w.verb, "patch");
        let w = WriteRequest::of(&Method::PUT, "/api/v1/namespaces/default/pods/web").unwrap();
        assert_eq!(w.verb, "update");
        // An exec's WebSocket upgrade is a GET, and a write.
        let w = WriteRequest::of(&Method::GET, "/api/v1/namespaces/default/pods/web/exec").unwrap();
        assert_eq!(
            (w.verb, &*w.resource, &*w.name),
            ("create", "pods/exec", "web")
        );
    }
}
