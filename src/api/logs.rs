//! `GET /api/v1/namespaces/{namespace}/pods/{name}/log`: `kubectl logs`.
//!
//! The query and the choice of container are [`super::kube::logs`]'s; this
//! module finds the pod, asks the engine and streams its answer as
//! `text/plain`. The engine's stream is owned by the response body and
//! nothing else (no task is spawned): when the client goes away the body is
//! dropped, and with it the request to the engine. An engine error in the
//! middle of a log aborts the response, so the client sees it cut rather
//! than ended.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;

use super::kube;
use super::kube::logs::{choose_container, BadLogRequest, ByteBudget, LogQuery};
use super::ApiState;

/// Where it is served (registered in [`super::node::routes`]).
pub const ROUTE: &str = "/api/v1/namespaces/{namespace}/pods/{name}/log";

fn refuse(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

fn bad_request(e: BadLogRequest) -> Response {
    refuse(StatusCode::BAD_REQUEST, kube::bad_request(e.to_string()))
}

fn engine_failed(e: crate::runtime::RuntimeError) -> Response {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        kube::status(503, "ServiceUnavailable", e.to_string()),
    )
}

/// The log of one container of a pod.
pub async fn pod_log(
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let query = match LogQuery::parse(&q) {
        Ok(query) => query,
        Err(e) => return bad_request(e),
    };
    let Some((_, pod)) = super::node::find_pod(&s.store, &namespace, &name) else {
        return refuse(StatusCode::NOT_FOUND, kube::not_found("pods", &name));
    };
    let chosen = match choose_container(&pod, query.container.as_deref(), query.previous) {
        Ok(c) => c,
        Err(e) => return bad_request(e),
    };
    // The status can name an instance the engine no longer has (removed
    // by garbage collection or by hand): say so rather than start a 200.
    match s.runtime.inspect_container(&chosen.id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return bad_request(BadLogRequest(format!(
                "container {:?} in pod {name:?} is not available: the engine has no container {}",
                chosen.name, chosen.id
            )))
        }
        Err(e) => return engine_failed(e),
    }
    let opts = query.runtime_options(chrono::Utc::now());
    let stream = match s.runtime.logs(&chosen.id, &opts).await {
        Ok(stream) => stream,
        Err(e) => return engine_failed(e),
    };
    tracing::debug!(pod = %name, %namespace, container = %chosen.name, id = %chosen.id, ?opts, "serving a log");
    let budget = ByteBudget::new(query.limit_bytes);
    // Ends as soon as the budget is spent, without waiting for another
    // chunk (with `follow` there may never be one).
    let body = futures::stream::unfold((stream, budget), |(mut stream, mut budget)| async move {
        if budget.spent() {
            return None;
        }
        match stream.next().await? {
            Ok(chunk) => {
                let chunk = budget.take(chunk)?;
                Some((Ok(chunk), (stream, budget)))
            }
            Err(e) => {
                tracing::warn!(error = %e, "a log stream failed");
                Some((Err(e), (stream, ByteBudget::new(Some(0)))))
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/plain")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}
