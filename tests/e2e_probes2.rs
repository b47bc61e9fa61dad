//! End-to-end tests of issue 17's probe items on a real Docker engine:
//! gRPC probes (`grpc.health.v1.Health/Check`: SERVING keeps a pod Ready
//! and unrestarted, NOT_SERVING fails readiness, an unknown service fails
//! liveness), HTTPS httpGet probes against a self-signed certificate, and
//! the fields with nowhere to go (`imagePullSecrets`, `serviceAccountName`,
//! `readinessGates`) told once as Warning events, with the unset gate
//! keeping the pod's Ready condition False.
//!
//! The gRPC and HTTPS servers run in the test process on 127.0.0.1 and the
//! pods use `hostNetwork: true`, whose probes go to 127.0.0.1: the code
//! under test is podvisor's probe client, and this needs no server binary
//! built into an image.
//!
//! Like `tests/e2e.rs` they need the engine and images of
//! `scripts/ensure-env.sh` (`make test`) and fail, never skip, without them.
//! Every test has its own node name, so they run in parallel on one engine.

#[allow(dead_code)] // the harness has more than these tests use
mod e2e_support;

use std::time::Duration;

use e2e_support::*;
use podvisor::actors::grpc_health::{test_server as grpc_server, ServingStatus};
use podvisor::actors::handlers::test_server as http_server;
use serde_json::{json, Value};

/// A busybox container that sleeps, with `extra` fields added.
fn sleeper(name: &str, extra: Value) -> Value {
    let mut c = json!({
        "name": name,
        "image": env().busybox_image,
        "command": ["sh", "-c", "exec sleep 3600"],
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn every_second(action: Value, failures: i32) -> Value {
    let mut p = action;
    p["periodSeconds"] = json!(1);
    p["failureThreshold"] = json!(failures);
    p
}

/// The container's `ready` and `restartCount` while it runs.
fn ready_restarts(pod: &Value, name: &str) -> Result<(bool, i64), String> {
    let s = container_status(pod, name).ok_or_else(|| format!("no status of {name}"))?;
    if !s["state"]["running"].is_object() {
        return Err(format!("{name} not running: {s}"));
    }
    Ok((
        s["ready"].as_bool().unwrap_or(false),
        s["restartCount"].as_i64().unwrap_or(-1),
    ))
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

async fn listener() -> (tokio::net::TcpListener, u16) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1");
    let port = l.local_addr().expect("local addr").port();
    (l, port)
}

fn messages(events: &[Value], reason: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["reason"] == reason)
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn grpc_probes_keep_a_serving_server_ready_and_fail_the_others() {
    let ctx = TestCtx::new("grpc");
    let (l, port) = listener().await;
    let server = tokio::spawn(grpc_server::serve(l, |service| match service {
        "" | "app" => Some(ServingStatus::Serving),
        "down" => Some(ServingStatus::NotServing),
        _ => None,
    }));
    let grpc = |service: Option<&str>| match service {
        Some(s) => json!({"grpc": {"port": port, "service": s}}),
        None => json!({"grpc": {"port": port}}),
    };
    // Healthy: readiness on the default service, liveness on "app".
    ctx.write_json(
        "ok.json",
        &pod_json(
            "grpc-ok",
            "Always",
            json!([sleeper(
                "app",
                json!({
                    "readinessProbe": every_second(grpc(None), 1),
                    "livenessProbe": every_second(grpc(Some("app")), 1),
                })
            )]),
            json!({"hostNetwork": true}),
        ),
    );
    // NOT_SERVING fails readiness; an unknown service fails liveness.
    ctx.write_json(
        "bad.json",
        &pod_json(
            "grpc-bad",
            "Always",
            json!([
                sleeper(
                    "unready",
                    json!({"readinessProbe": every_second(grpc(Some("down")), 1)})
                ),
                sleeper(
                    "dead",
                    json!({"livenessProbe": every_second(grpc(Some("nope")), 1)})
                ),
            ]),
            json!({"hostNetwork": true}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "grpc-ok").await;

    // The liveness probe of `dead` fails: it is restarted.
    ctx.wait_pod(&pv, "grpc-bad", CONVERGE, "dead restarted", |p| {
        let s = container_status(p, "dead").ok_or("no status of dead")?;
        match s["restartCount"].as_i64() {
            Some(n) if n >= 1 => Ok(()),
            other => Err(format!("restartCount {other:?}")),
        }
    })
    .await;
    // Meanwhile the serving pod stayed Ready and was never restarted.
    let list = pv.pods().await.expect("/pods");
    let ok = find_pod(&list, "grpc-ok").expect("grpc-ok listed");
    assert_eq!(ready_restarts(ok, "app"), Ok((true, 0)), "{}", ok["status"]);
    assert_eq!(
        condition(ok, "Ready").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    // `unready` runs, never ready, never restarted (readiness only).
    let bad = find_pod(&list, "grpc-bad").expect("grpc-bad listed");
    assert_eq!(
        ready_restarts(bad, "unready"),
        Ok((false, 0)),
        "{}",
        bad["status"]
    );

    let events = pv.events("default", "grpc-bad").await.expect("events");
    let unhealthy = messages(&events, "Unhealthy");
    assert!(
        unhealthy.iter().any(|m| m.contains(
            "Readiness probe failed: service unhealthy (responded with \"NOT_SERVING\")"
        )),
        "{unhealthy:?}"
    );
    assert!(
        unhealthy
            .iter()
            .any(|m| m.starts_with("Liveness probe failed:") && m.contains("NotFound")),
        "{unhealthy:?}"
    );
    let ok_events = pv.events("default", "grpc-ok").await.expect("events");
    assert!(
        messages(&ok_events, "Unhealthy").is_empty(),
        "{ok_events:?}"
    );
    server.abort();
}

#[tokio::test]
async fn an_https_probe_accepts_a_self_signed_certificate() {
    let ctx = TestCtx::new("https");
    let (l, port) = listener().await;
    let (tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let tls = http_server::self_signed_acceptor();
    let server = tokio::spawn(http_server::serve(
        l,
        Some(tls),
        |path| match path {
            "/healthz" => (200, String::new()),
            _ => (500, String::new()),
        },
        Some(tx),
    ));
    let get = |path: &str| json!({"httpGet": {"scheme": "HTTPS", "port": port, "path": path}});
    ctx.write_json(
        "tls.json",
        &pod_json(
            "tls",
            "Always",
            json!([
                sleeper(
                    "app",
                    json!({
                        "readinessProbe": every_second(get("/healthz"), 1),
                        "livenessProbe": every_second(get("/healthz"), 1),
                    })
                ),
                sleeper(
                    "sick",
                    json!({"readinessProbe": every_second(get("/broken"), 1)})
                ),
            ]),
            json!({"hostNetwork": true}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod(
        &pv,
        "tls",
        CONVERGE,
        "app ready, sick running unready",
        |p| match (ready_restarts(p, "app")?, ready_restarts(p, "sick")?) {
            ((true, 0), (false, 0)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .await;
    // A few more periods: liveness over TLS keeps passing.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "tls").expect("tls listed");
    assert_eq!(ready_restarts(p, "app"), Ok((true, 0)), "{}", p["status"]);
    let req = seen.recv().await.expect("a request over TLS");
    assert!(req.contains("User-Agent: kube-probe/1."), "{req}");
    let events = pv.events("default", "tls").await.expect("events");
    let unhealthy = messages(&events, "Unhealthy");
    assert!(
        unhealthy.iter().all(|m| m.contains("statuscode: 500")) && !unhealthy.is_empty(),
        "only sick's probe fails: {unhealthy:?}"
    );
    server.abort();
}

#[tokio::test]
async fn fields_with_nowhere_to_go_are_told_once_and_an_unset_gate_keeps_the_pod_unready() {
    let ctx = TestCtx::new("unserved");
    ctx.write_json(
        "pod.json",
        &pod_json(
            "gated",
            "Always",
            json!([sleeper("app", json!({}))]),
            json!({
                "imagePullSecrets": [{"name": "regcred"}],
                "serviceAccountName": "robot",
                "readinessGates": [{"conditionType": "example.com/lb-ready"}],
            }),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "gated").await;
    let ready = ctx
        .wait_pod(&pv, "gated", CONVERGE, "Ready False by the gate", |p| {
            let c = condition(p, "Ready").ok_or("no Ready condition")?;
            match condition(p, "ContainersReady").map(|c| c["status"].clone()) {
                Some(s) if s == "True" => Ok(c.clone()),
                other => Err(format!("ContainersReady {other:?}")),
            }
        })
        .await;
    assert_eq!(ready["status"], "False", "{ready}");
    assert_eq!(ready["reason"], "ReadinessGatesNotReady", "{ready}");
    assert_eq!(
        ready["message"],
        "corresponding condition of pod readiness gate \"example.com/lb-ready\" does not exist.",
    );
    // Let a few syncs pass: the warnings are still one each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = pv.events("default", "gated").await.expect("events");
    let warnings: Vec<&Value> = events.iter().filter(|e| e["type"] == "Warning").collect();
    let find = |reason: &str, text: &str| -> Vec<&Value> {
        warnings
            .iter()
            .copied()
            .filter(|e| {
                e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text))
            })
            .collect()
    };
    for (reason, text) in [
        ("FailedToRetrieveImagePullSecret", "spec.imagePullSecrets"),
        ("FieldIgnored", "spec.serviceAccountName \"robot\""),
        (
            "FieldIgnored",
            "spec.readinessGates (\"example.com/lb-ready\")",
        ),
    ] {
        let found = find(reason, text);
        assert_eq!(found.len(), 1, "{reason} {text}: {warnings:?}");
        assert_eq!(found[0]["count"], 1, "{:?}", found[0]);
        assert!(ctx.all_logs().contains(text), "log line with {text}");
    }
}
