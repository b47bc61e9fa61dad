//! End-to-end test of `/metrics` (issue 15): the real binary on the real
//! engine runs a pod that keeps running and one whose container exits 1
//! after a moment (restartPolicy Always); the scrapes of the read-only
//! API, parsed by a Prometheus text parser, show the numbers move: pods
//! running, containers started, restarts by reason, engine calls counted
//! without errors, a pod start measured, probes run, HTTP requests by
//! route. The secure API serves the same page behind its token.

#[allow(dead_code)]
mod e2e_support;

use std::time::Duration;

use e2e_support::*;
use prometheus_parse::{Scrape, Value};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// The number of the sample `name` whose labels include `labels` (summed
/// over the others), a histogram's count for `name_count`; `None` when
/// there is no such sample.
fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = s
        .samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
        .collect();
    (!found.is_empty()).then(|| found.iter().sum())
}

/// Whether `name` is exposed with the type `kind` (its samples are).
fn typed(s: &Scrape, name: &str, kind: &str) -> bool {
    s.samples.iter().any(|x| {
        x.metric == name
            && matches!(
                (&x.value, kind),
                (Value::Counter(_), "counter")
                    | (Value::Gauge(_), "gauge")
                    | (Value::Histogram(_), "histogram")
            )
    })
}

async fn scrape(pv: &Podvisor) -> Result<(String, Scrape), String> {
    match pv.get("/metrics").await? {
        (200, body) => {
            let parsed = parse(&body);
            Ok((body, parsed))
        }
        (code, body) => Err(format!("/metrics answered {code}: {body}")),
    }
}

#[tokio::test]
async fn metrics_move_as_a_pod_starts_crashes_and_restarts() {
    let ctx = TestCtx::new("metrics");
    // web runs, with a readiness probe (`true`, every second).
    let web = format!(
        "{}      readinessProbe:\n        exec:\n          command: [\"true\"]\n        \
         periodSeconds: 1\n",
        pod_yaml("web", "Always", &[("app", SLEEP)])
    );
    ctx.write_manifest("web.yaml", &web);
    ctx.write_manifest(
        "crash.yaml",
        &pod_yaml(
            "crash",
            "Always",
            &[("app", &["sh", "-c", "sleep 2; exit 1"])],
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "web").await;
    let (_, first) = scrape(&pv).await.expect("a first scrape");
    let started_before = sum(
        &first,
        "kubelet_started_containers_total",
        &[("container_type", "container")],
    )
    .unwrap_or(0.0);
    assert!(started_before >= 1.0, "web's app was started");
    assert!(
        sum(
            &first,
            "kubelet_started_containers_total",
            &[("container_type", "podsandbox")]
        ) >= Some(1.0),
        "the infra containers were started"
    );

    // The crashing container exits after 2 s and is started again after
    // its 10 s back-off; the relist (1 s) counts the running pods.
    let (text, last) = ctx
        .wait_until(
            Duration::from_secs(60),
            "a restart counted and the running pods relisted",
            || async {
                let (text, s) = scrape(&pv).await?;
                let restarts = sum(
                    &s,
                    "podvisor_container_restarts_total",
                    &[("reason", "exited")],
                );
                let pods = sum(&s, "kubelet_running_pods", &[]);
                if restarts >= Some(1.0) && pods >= Some(1.0) {
                    Ok((text, s))
                } else {
                    Err(format!("restarts {restarts:?}, running pods {pods:?}"))
                }
            },
        )
        .await;

    let report = || format!("{text}\n{}", ctx.failure_report());
    assert!(
        sum(
            &last,
            "prober_probe_total",
            &[("probe_type", "readiness"), ("result", "successful")]
        ) >= Some(1.0),
        "{}",
        report()
    );
    // Types as the kubelet exposes them.
    for (name, kind) in [
        ("kubelet_running_pods", "gauge"),
        ("kubelet_running_containers", "gauge"),
        ("kubelet_started_containers_total", "counter"),
        ("kubelet_runtime_operations_total", "counter"),
        ("kubelet_pod_start_duration_seconds", "histogram"),
        ("kubelet_pod_worker_duration_seconds", "histogram"),
        ("kubelet_runtime_operations_duration_seconds", "histogram"),
        ("kubelet_http_requests_total", "counter"),
        ("prober_probe_total", "counter"),
        ("podvisor_container_restarts_total", "counter"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        assert!(
            typed(&last, name, kind),
            "{name} is no {kind}\n{}",
            report()
        );
    }
    assert!(
        sum(&last, "kubelet_running_pods", &[]) >= Some(1.0),
        "{}",
        report()
    );
    assert!(
        sum(
            &last,
            "kubelet_running_containers",
            &[("container_state", "running")]
        ) >= Some(1.0),
        "{}",
        report()
    );
    let started_after = sum(
        &last,
        "kubelet_started_containers_total",
        &[("container_type", "container")],
    )
    .unwrap_or(0.0);
    assert!(
        started_after > started_before,
        "started containers grew: {started_before} → {started_after}\n{}",
        report()
    );
    let restarts_before = sum(
        &first,
        "podvisor_container_restarts_total",
        &[("reason", "exited")],
    )
    .unwrap_or(0.0);
    let restarts_after = sum(
        &last,
        "podvisor_container_restarts_total",
        &[("reason", "exited")],
    )
    .unwrap_or(0.0);
    assert!(restarts_after > restarts_before, "{}", report());

    // Engine calls: creates counted, none failed.
    let creates = [("operation_type", "create_container")];
    assert!(
        sum(&last, "kubelet_runtime_operations_total", &creates) >= Some(3.0),
        "two infra, two apps, one restart\n{}",
        report()
    );
    assert_eq!(
        sum(&last, "kubelet_runtime_operations_errors_total", &creates).unwrap_or(0.0),
        0.0,
        "{}",
        report()
    );
    assert!(
        sum(
            &last,
            "kubelet_runtime_operations_duration_seconds_count",
            &creates
        ) >= Some(3.0),
        "{}",
        report()
    );
    assert!(
        sum(&last, "kubelet_pod_start_duration_seconds_count", &[]) >= Some(1.0),
        "{}",
        report()
    );
    assert!(
        sum(
            &last,
            "kubelet_pod_worker_duration_seconds_count",
            &[("operation", "create")]
        ) >= Some(2.0),
        "{}",
        report()
    );

    // HTTP requests by route: /pods (the waits above) and /metrics, and
    // never a path with a pod's name in it.
    let get_ok = |path| [("method", "GET"), ("path", path), ("code", "200")];
    assert!(
        sum(&last, "kubelet_http_requests_total", &get_ok("/pods")) >= Some(1.0),
        "{}",
        report()
    );
    assert!(
        sum(&last, "kubelet_http_requests_total", &get_ok("/metrics")) >= Some(1.0),
        "{}",
        report()
    );
    for s in &last.samples {
        for v in s.labels.values() {
            assert!(
                !v.contains("web") && !v.contains("crash"),
                "a pod name as a label value: {} {:?}",
                s.metric,
                s.labels
            );
        }
    }

    // The secure API: the same page, behind the token.
    let ca_pem = std::fs::read(ctx.path().join("root").join("pki").join("ca.crt")).expect("CA");
    let token = std::fs::read_to_string(ctx.path().join("root").join("token")).expect("token");
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("CA PEM"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("https client");
    let url = format!("https://127.0.0.1:{}/metrics", pv.secure_port);
    let refused = https.get(&url).send().await.expect("GET /metrics");
    assert_eq!(refused.status().as_u16(), 401);
    let resp = https
        .get(&url)
        .bearer_auth(token.trim())
        .send()
        .await
        .expect("GET /metrics with the token");
    assert_eq!(resp.status().as_u16(), 200);
    let secure = parse(&resp.text().await.expect("a body"));
    assert!(sum(&secure, "kubelet_running_pods", &[]) >= Some(1.0));
    assert!(
        sum(
            &secure,
            "kubelet_http_requests_total",
            &[("method", "GET"), ("path", "/metrics"), ("code", "401")]
        ) >= Some(1.0),
        "the refused scrape is counted too"
    );
}
