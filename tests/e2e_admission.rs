//! End-to-end tests of node admission (issue 16): pods add up against the
//! node's allocatable, host ports and node labels are checked against the
//! other pods and the node, pod-level limits do not stop a pod, and a
//! refusal shows as `Failed` with a Warning event at once.

#[allow(dead_code)]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::{json, Value};

/// `--system-reserved` leaving exactly 2 CPUs to pods, whatever the
/// machine's size.
fn two_cpus_left() -> String {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    assert!(cores >= 2, "the admission tests need 2 cores");
    format!("--system-reserved=cpu={}m", (cores - 2) * 1000)
}

fn sleeper(name: &str, resources: Value, spec_extra: Value) -> Value {
    let image = &env().busybox_image;
    pod_json(
        name,
        "Always",
        json!([{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
            "resources": resources}]),
        spec_extra,
    )
}

/// Waits until the pod is `Failed` with `reason`; returns its message.
async fn refused(ctx: &TestCtx, pv: &Podvisor, pod: &str, reason: &str) -> String {
    ctx.wait_pod(pv, pod, CONVERGE, &format!("Failed with {reason}"), |p| {
        if p["status"]["phase"] == "Failed" && p["status"]["reason"] == reason {
            Ok(p["status"]["message"].as_str().unwrap_or("").to_string())
        } else {
            Err("not refused".into())
        }
    })
    .await
}

/// The Warning event of the refusal, recorded once.
async fn refusal_event(ctx: &TestCtx, pv: &Podvisor, pod: &str, reason: &str) -> Value {
    ctx.wait_until(CONVERGE, &format!("a {reason} event on {pod}"), || async {
        let events = pv.events("default", pod).await?;
        let of_reason: Vec<&Value> = events.iter().filter(|e| e["reason"] == reason).collect();
        match of_reason.as_slice() {
            [one] if one["type"] == "Warning" && one["count"].as_i64().unwrap_or(1) == 1 => {
                Ok((*one).clone())
            }
            _ => Err(format!("{events:?}")),
        }
    })
    .await
}

#[tokio::test]
async fn two_pods_that_each_fit_do_not_fit_together() {
    let ctx = TestCtx::new("adm-cpu");
    let cpu = json!({"requests": {"cpu": "1500m"}});
    ctx.write_json("a.json", &sleeper("a", cpu.clone(), json!({})));
    let mut pv = Podvisor::spawn(&ctx, &[&two_cpus_left()]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "a").await;
    ctx.write_json("b.json", &sleeper("b", cpu, json!({})));
    let message = refused(&ctx, &pv, "b", "OutOfcpu").await;
    assert!(
        message.ends_with(
            "pod default/b: Node didn't have enough resource: cpu, requested: 1500, used: 1500, capacity: 2000"
        ),
        "{message}"
    );
    let event = refusal_event(&ctx, &pv, "b", "OutOfcpu").await;
    assert_eq!(event["message"], message.as_str());
    assert!(
        ctx.pod_containers("b").is_empty(),
        "{}",
        show(&ctx.pod_containers("b"))
    );
    // The admitted pod keeps running.
    ctx.wait_pod_running(&pv, "a").await;
    assert!(
        ctx.log_tail().contains("pod refused"),
        "a log line says so:\n{}",
        ctx.log_tail()
    );
}

#[tokio::test]
async fn a_host_port_held_by_another_pod_refuses_the_second() {
    let ctx = TestCtx::new("adm-ports");
    let port = free_port();
    let with_port = |name: &str| {
        let image = &env().busybox_image;
        pod_json(
            name,
            "Always",
            json!([{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
                "ports": [{"containerPort": 80, "hostPort": port}]}]),
            json!({}),
        )
    };
    ctx.write_json("first.json", &with_port("first"));
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "first").await;
    ctx.write_json("second.json", &with_port("second"));
    let message = refused(&ctx, &pv, "second", "NodePorts").await;
    assert!(
        message.contains(
            "Predicate NodePorts failed: node(s) didn't have free ports for the requested pod ports"
        ),
        "{message}"
    );
    refusal_event(&ctx, &pv, "second", "NodePorts").await;
    assert!(ctx.pod_containers("second").is_empty());
}

#[tokio::test]
async fn node_selectors_and_affinity_match_the_node_labels() {
    let ctx = TestCtx::new("adm-labels");
    let selector = |name: &str, sel: Value| sleeper(name, json!({}), json!({"nodeSelector": sel}));
    ctx.write_json("ssd.json", &selector("ssd", json!({"disk": "ssd"})));
    ctx.write_json(
        "mine.json",
        &selector(
            "mine",
            json!({"kubernetes.io/hostname": ctx.node, "kubernetes.io/os": "linux"}),
        ),
    );
    ctx.write_json("hdd.json", &selector("hdd", json!({"disk": "hdd"})));
    let affinity = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
        {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]}]}}}});
    ctx.write_json("notssd.json", &sleeper("notssd", json!({}), affinity));
    let mut pv = Podvisor::spawn(&ctx, &["--node-labels=disk=ssd,example.com/zone=a"]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "ssd").await;
    ctx.wait_pod_running(&pv, "mine").await;
    for pod in ["hdd", "notssd"] {
        let message = refused(&ctx, &pv, pod, "NodeAffinity").await;
        assert!(
            message.ends_with(
                "Predicate NodeAffinity failed: node(s) didn't match Pod's node affinity/selector"
            ),
            "{message}"
        );
        refusal_event(&ctx, &pv, pod, "NodeAffinity").await;
    }
}

#[tokio::test]
async fn an_edit_that_no_longer_fits_is_failed_at_once() {
    let ctx = TestCtx::new("adm-edit");
    // The container ignores SIGTERM: stopping it takes the whole grace
    // period, and the status must not wait for it.
    let stubborn = |cpu: &str| {
        let image = &env().busybox_image;
        pod_json(
            "grows",
            "Always",
            json!([{"name": "app", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
                "resources": {"requests": {"cpu": cpu}}}]),
            json!({"terminationGracePeriodSeconds": 30}),
        )
    };
    ctx.write_json("grows.json", &stubborn("100m"));
    ctx.write_json(
        "other.json",
        &sleeper("other", json!({"requests": {"cpu": "1500m"}}), json!({})),
    );
    let mut pv = Podvisor::spawn(&ctx, &[&two_cpus_left()]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "grows").await;
    ctx.wait_pod_running(&pv, "other").await;
    let edited = Instant::now();
    ctx.write_json("grows.json", &stubborn("1"));
    let message = ctx
        .wait_pod(
            &pv,
            "grows",
            Duration::from_secs(10),
            "Failed at once",
            |p| {
                if p["status"]["phase"] == "Failed" {
                    Ok(p["status"]["message"].as_str().unwrap_or("").to_string())
                } else {
                    Err("not Failed yet".into())
                }
            },
        )
        .await;
    assert!(
        edited.elapsed() < Duration::from_secs(10),
        "{:?}",
        edited.elapsed()
    );
    assert!(
        message.ends_with("requested: 1000, used: 1500, capacity: 2000"),
        "{message}"
    );
    refusal_event(&ctx, &pv, "grows", "OutOfcpu").await;
    // It stays Failed while its container stops, and the other pod runs on.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = pv.pods().await.expect("pods");
    assert_eq!(
        find_pod(&list, "grows").unwrap()["status"]["phase"],
        "Failed"
    );
    ctx.wait_pod_running(&pv, "other").await;
}

#[tokio::test]
async fn pod_level_requests_count_and_a_pod_with_pod_level_limits_runs() {
    let ctx = TestCtx::new("adm-podres");
    let pod_level =
        |name: &str, resources: Value| sleeper(name, json!({}), json!({"resources": resources}));
    ctx.write_json(
        "whole.json",
        &pod_level("whole", json!({"requests": {"cpu": "1500m"}})),
    );
    ctx.write_json(
        "limited.json",
        &pod_level("limited", json!({"limits": {"memory": "64Mi"}})),
    );
    let mut pv = Podvisor::spawn(&ctx, &[&two_cpus_left()]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "whole").await;
    // Held by a pod cgroup (tests/e2e_pod_fields.rs looks inside it).
    ctx.wait_pod_running(&pv, "limited").await;
    ctx.write_json(
        "more.json",
        &sleeper("more", json!({"requests": {"cpu": "1"}}), json!({})),
    );
    let message = refused(&ctx, &pv, "more", "OutOfcpu").await;
    assert!(message.contains("used: 1500"), "{message}");
}
