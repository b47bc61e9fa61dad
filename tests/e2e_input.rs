//! End-to-end tests of issue 11, a manifest directory that cannot hurt the
//! node, on the real engine:
//!
//! 1. a file truncated and written back in place (`: > p.yaml; sleep 1;
//!    cat good > p.yaml`, as `kubectl get pod p -o yaml > p.yaml` does)
//!    leaves its pod alone: same containers, no restart, never gone from
//!    `/pods`;
//! 2. a file broken while podvisor is down (SIGKILL) does not lose its pod
//!    at the next start: the last good spec was kept under `--root-dir`.

#[allow(dead_code)]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::*;

/// Writes `text` over the manifest in place (truncate, then write), as a
/// shell redirection does: the file is empty for a moment.
fn overwrite_in_place(ctx: &TestCtx, file: &str, text: &str) {
    std::fs::write(ctx.manifest_path(file), text).expect("write manifest in place");
}

/// IDs of the pod's containers, by container name (`POD` for the infra).
fn ids(ctx: &TestCtx, pod: &str) -> Vec<(String, String, String)> {
    let mut ids: Vec<_> = ctx
        .pod_containers(pod)
        .into_iter()
        .map(|c| (c.container(), c.id.clone(), c.state.clone()))
        .collect();
    ids.sort();
    ids
}

/// Watches `pod` for `period`: it must stay in `/pods` and keep exactly
/// the containers `before`, all running.
async fn stays(
    ctx: &TestCtx,
    pv: &Podvisor,
    pod: &str,
    before: &[(String, String, String)],
    period: Duration,
) {
    let start = Instant::now();
    while start.elapsed() < period {
        let list = pv.pods().await.unwrap_or_else(|e| panic!("/pods: {e}"));
        assert!(
            find_pod(&list, pod).is_some(),
            "{pod} left /pods after {:?}: {list}\n{}",
            start.elapsed(),
            ctx.failure_report()
        );
        let now = ids(ctx, pod);
        assert_eq!(
            now,
            before,
            "the containers of {pod} changed after {:?}\n{}",
            start.elapsed(),
            ctx.failure_report()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn restart_counts(pod: &serde_json::Value) -> Vec<i64> {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["restartCount"].as_i64().unwrap_or(-1))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_file_truncated_and_written_back_leaves_its_pod_alone() {
    let ctx = TestCtx::new("trunc");
    let good = pod_yaml("p", "Always", &[("app", SLEEP)]);
    ctx.write_manifest("p.yaml", &good);
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "p").await;
    assert_eq!(restart_counts(&pod), [0]);
    let before = ids(&ctx, "p");
    assert_eq!(before.len(), 2, "{before:?}");

    // `: > p.yaml; sleep 1; cat good > p.yaml`
    overwrite_in_place(&ctx, "p.yaml", "");
    stays(&ctx, &pv, "p", &before, Duration::from_secs(1)).await;
    overwrite_in_place(&ctx, "p.yaml", &good);
    // Several sync periods and rescans (`--file-check-frequency` 500ms).
    stays(&ctx, &pv, "p", &before, Duration::from_secs(3)).await;
    let pod = ctx.wait_pod_running(&pv, "p").await;
    assert_eq!(restart_counts(&pod), [0], "{pod}");
    assert!(
        !pod["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("last good spec"),
        "the problem is gone once the file is back: {pod}"
    );
    let path = ctx.manifest_path("p.yaml");
    let logs = ctx.all_logs();
    let empty: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&path) && l.contains("empty"))
        .collect();
    assert_eq!(empty.len(), 1, "one log line for the empty file: {empty:?}");

    // Written in place with no pause at all: nothing happens either.
    overwrite_in_place(&ctx, "p.yaml", &good);
    stays(&ctx, &pv, "p", &before, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_file_broken_while_podvisor_is_down_keeps_its_pod() {
    let ctx = TestCtx::new("downbreak");
    ctx.write_manifest("p.yaml", &pod_yaml("p", "Always", &[("app", SLEEP)]));
    let mut pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "p").await;
    let before = ids(&ctx, "p");
    assert_eq!(before.len(), 2, "{before:?}");
    // The memory is saved right after the scan that found the pod; give it
    // a moment (the assertions below judge whether it was).
    let state = ctx.path().join("root").join("manifest-source.state");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !std::fs::read_to_string(&state).is_ok_and(|t| t.contains("p.yaml"))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pv.kill9();

    // Broken while down, then podvisor starts again.
    overwrite_in_place(
        &ctx,
        "p.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p\nspec: [\n",
    );
    let pv = Podvisor::start(&ctx).await;
    let path = ctx.manifest_path("p.yaml");
    ctx.wait_pod(
        &pv,
        "p",
        Duration::from_secs(20),
        "the pod on its last good spec",
        |p| {
            let m = p["status"]["message"].as_str().unwrap_or_default();
            (m.contains("running on the last good spec") && m.contains(&path))
                .then_some(())
                .ok_or_else(|| format!("message {m:?}"))
        },
    )
    .await;
    // Several sync periods: orphan removal would have come by now.
    stays(&ctx, &pv, "p", &before, Duration::from_secs(4)).await;
    let pod = ctx.wait_pod_running(&pv, "p").await;
    assert_eq!(restart_counts(&pod), [0], "{pod}");
}
