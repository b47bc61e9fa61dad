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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStatus, Pod, PodSpec, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;
    use crate::actors::pod_feed::PodStore;
    use crate::actors::shared::Owned;
    use crate::runtime::fake::FakeDocker;
    use crate::runtime::{ContainerState as Engine, CreateSpec, LogOptions};

    /// A node API on a plain local port (no TLS, no token: they are not
    /// what is tested here) over a fake engine with one running container
    /// `server` of pod `web`, whose log is `lines`.
    struct Node {
        fake: Arc<FakeDocker>,
        id: String,
        base: String,
        _store: PodStore,
    }

    async fn node(lines: &str) -> Node {
        let fake = Arc::new(FakeDocker::new());
        let id = fake.insert_container(
            CreateSpec {
                name: "k8s_server_web_default_u1_0".into(),
                image: "busybox".into(),
                ..Default::default()
            },
            Engine::Running,
        );
        fake.set_logs(&id, lines);
        let store = PodStore::new();
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "server".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "server".into(),
                    container_id: Some(format!("docker://{id}")),
                    state: Some(ContainerState {
                        running: Some(ContainerStateRunning::default()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        };
        store.put("u1", pod, crate::model::clock::api_time(chrono::Utc::now()));
        let events: Owned<String, _> = Owned::default();
        let state = ApiState {
            store: store.view(),
            events: events.view(),
            runtime: fake.clone(),
            exec_handler: crate::settings::ExecHandler::Native,
            manifests: None,
            machine: None,
            metrics: Default::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = super::super::node::routes().with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Node {
            fake,
            id,
            base,
            _store: store,
        }
    }

    impl Node {
        async fn get(&self, query: &str) -> reqwest::Response {
            let url = format!(
                "{}/api/v1/namespaces/default/pods/web/log{query}",
                self.base
            );
            reqwest::get(url).await.expect("the API answers")
        }

        async fn wait_streams_closed(&self) {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while self.fake.log_streams_open() > 0 {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the engine's log stream is still open"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    #[tokio::test]
    async fn the_log_is_served_as_text_with_the_asked_options() {
        let n = node("one\ntwo\nthree\n").await;
        let resp = n.get("?tailLines=2&timestamps=true").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/plain");
        assert_eq!(resp.text().await.unwrap(), "two\nthree\n");
        let (id, opts) = n.fake.log_requests().pop().expect("the engine was asked");
        assert_eq!(id, n.id);
        assert_eq!(
            opts,
            LogOptions {
                follow: false,
                tail: Some(2),
                since: None,
                timestamps: true,
            }
        );
        n.wait_streams_closed().await;
    }

    #[tokio::test]
    async fn a_follower_that_goes_away_drops_the_engine_stream() {
        let n = node("one\ntwo\n").await;
        let mut resp = n.get("?follow=true&container=server").await;
        assert_eq!(resp.status(), 200);
        let mut got = Vec::new();
        while got.len() < 8 {
            let chunk = tokio::time::timeout(Duration::from_secs(5), resp.chunk())
                .await
                .expect("the log arrives")
                .unwrap()
                .expect("more of the log");
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, b"one\ntwo\n");
        // Still following (the fake's running container writes nothing more).
        assert!(
            tokio::time::timeout(Duration::from_millis(200), resp.chunk())
                .await
                .is_err(),
            "a follow ended while the container runs"
        );
        assert_eq!(n.fake.log_streams_open(), 1);
        drop(resp);
        n.wait_streams_closed().await;
    }

    #[tokio::test]
    async fn limit_bytes_ends_even_a_follow_at_the_limit() {
        let n = node("one\ntwo\n").await;
        let resp = n.get("?follow=true&limitBytes=5").await;
        assert_eq!(resp.status(), 200);
        let body = tokio::time::timeout(Duration::from_secs(5), resp.text())
            .await
            .expect("the response ends at the limit")
            .unwrap();
        assert_eq!(body, "one\nt");
        n.wait_streams_closed().await;
    }

    async fn status_of(resp: reqwest::Response) -> (u16, serde_json::Value) {
        let code = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        (code, v)
    }

    #[tokio::test]
    async fn refusals_are_statuses_and_the_engine_is_not_asked() {
        let n = node("one\n").await;
        let (code, v) = status_of(n.get("?tailLines=-3").await).await;
        assert_eq!((code, v["reason"].as_str()), (400, Some("BadRequest")));
        assert!(
            v["message"].as_str().unwrap().starts_with("tailLines:"),
            "{v}"
        );
        let (code, v) = status_of(n.get("?container=nope").await).await;
        assert_eq!(code, 400);
        assert_eq!(
            v["message"],
            "container nope is not valid for pod web; choose one of: [server]"
        );
        let (code, v) = status_of(n.get("?previous=true").await).await;
        assert_eq!(code, 400);
        assert_eq!(
            v["message"],
            "previous terminated container \"server\" in pod \"web\" not found"
        );
        let url = format!("{}/api/v1/namespaces/default/pods/nope/log", n.base);
        let (code, v) = status_of(reqwest::get(url).await.unwrap()).await;
        assert_eq!(
            (code, v["message"].as_str()),
            (404, Some("pods \"nope\" not found"))
        );
        assert!(n.fake.log_requests().is_empty());
        // The engine lost the container: a 400 saying so, not an empty 200.
        n.fake.remove_container_now(&n.id);
        let (code, v) = status_of(n.get("").await).await;
        assert_eq!(code, 400);
        assert!(
            v["message"].as_str().unwrap().contains("not available"),
            "{v}"
        );
        assert!(n.fake.log_requests().is_empty());
    }
}
