//! End-to-end tests of issue 17, items 5 and 8: a manifest's YAML means
//! what kubectl makes of it (`010` is 8, `yes` and `on` are true), and
//! every regular, non-hidden file of the directory is a manifest (a
//! `*.manifest` file runs) but editor leftovers, each named once in the
//! log. The decoding itself is pinned against the real kubectl by
//! tests/yaml_kubectl.rs.

#[allow(dead_code)]
mod e2e_support;

use std::time::Duration;

use e2e_support::*;

/// A pod in a `*.manifest` file (as GCE's kube-up ships them), written with
/// YAML 1.1 scalars: `terminationGracePeriodSeconds: 010` (8),
/// `hostNetwork: yes`, `stdin: on` (true). It runs with those values.
#[tokio::test]
async fn a_dot_manifest_file_with_yaml_1_1_scalars_runs_as_kubectl_reads_it() {
    let ctx = TestCtx::new("yaml11");
    let image = &env().busybox_image;
    ctx.write_manifest(
        "web.manifest",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: default\n\
             spec:\n  terminationGracePeriodSeconds: 010\n  hostNetwork: yes\n  containers:\n  \
             - name: app\n    image: {image}\n    command: [sleep, \"3600\"]\n    stdin: on\n"
        ),
    );
    let pv = Podvisor::spawn(&ctx, &[]);
    let pod = ctx.wait_pod_running(&pv, "web").await;
    assert_eq!(pod["spec"]["terminationGracePeriodSeconds"], 8, "{pod}");
    assert_eq!(pod["spec"]["hostNetwork"], true, "{pod}");
    let id = docker_id(container_status(&pod, "app").expect("app"))
        .expect("an ID")
        .to_string();
    assert_eq!(inspect(&id, "{{.Config.OpenStdin}}"), "true");
    let sandbox = ctx
        .pod_containers("web")
        .into_iter()
        .find(|c| c.container() == "POD")
        .expect("the sandbox");
    assert_eq!(inspect(&sandbox.id, "{{.HostConfig.NetworkMode}}"), "host");
    let log = ctx.all_logs();
    assert!(!log.contains("bad manifest"), "{}", ctx.log_tail());
}

/// An editor leftover beside a manifest (`web.yaml~`, holding a broken
/// pod) is not read, and the log says so once, not at every rescan; a
/// file without a manifest extension (`db`) is read and runs.
#[tokio::test]
async fn an_editor_leftover_is_skipped_and_named_once_in_the_log() {
    let ctx = TestCtx::new("leftover");
    ctx.write_manifest("web.yaml", &pod_yaml("web", "Always", &[("app", SLEEP)]));
    ctx.write_manifest("db", &pod_yaml("db", "Always", &[("app", SLEEP)]));
    ctx.write_manifest(
        "web.yaml~",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: [broken\n",
    );
    let pv = Podvisor::spawn(&ctx, &["--file-check-frequency=500ms"]);
    ctx.wait_pod_running(&pv, "web").await;
    ctx.wait_pod_running(&pv, "db").await;
    // Several rescans later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = ctx.all_logs();
    let leftover = ctx.manifest_path("web.yaml~");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&leftover)).collect();
    assert_eq!(lines.len(), 1, "named once:\n{}", ctx.log_tail());
    assert!(
        lines[0].contains("editor or package manager leftover") && lines[0].contains("not read"),
        "{}",
        lines[0]
    );
    assert!(!log.contains("bad manifest"), "{}", ctx.log_tail());
    let pods = pv.pods().await.expect("pods");
    assert_eq!(
        pods["items"].as_array().map(Vec::len),
        Some(2),
        "web and db only: {pods}"
    );
}
