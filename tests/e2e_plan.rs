//! End-to-end tests of `podvisor plan`: the real binary against the real
//! engine, before podvisor ran, after it converged, after an app container
//! was killed behind its back (podvisor stopped), and after a manifest was
//! removed. Needs the engine and images of `scripts/ensure-env.sh`.

#[allow(dead_code)]
mod e2e_support;

use std::process::Command;

use e2e_support::*;

/// Runs `podvisor plan` on the test's node and directory, asking for a
/// daemon on `read_only_port`: exit code, stdout, stderr.
fn plan(ctx: &TestCtx, read_only_port: u16) -> (Option<i32>, String, String) {
    let env = env();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_podvisor"));
    cmd.arg("plan")
        .arg("--pod-manifest-path")
        .arg(&ctx.manifests)
        .args(["--node-name", &ctx.node])
        .args(["--pod-infra-container-image", &env.pause_image])
        .args(["--read-only-port", &read_only_port.to_string()])
        .arg("--root-dir")
        .arg(ctx.path().join("root"));
    for (k, _) in std::env::vars() {
        if k.starts_with("PODVISOR_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("DOCKER_HOST", &env.docker_host)
        .env_remove("RUST_LOG")
        .output()
        .expect("run podvisor plan");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn plan_follows_the_node_from_nothing_to_converged_to_broken_to_removed() {
    let ctx = TestCtx::new("plan");
    ctx.write_manifest(
        "web.yaml",
        &pod_yaml("web", "Always", &[("app", SLEEP), ("side", SLEEP)]),
    );
    let nobody = free_port();

    // Nothing runs yet: everything would be created.
    let (code, out, err) = plan(&ctx, nobody);
    assert_eq!(code, Some(2), "{out}{err}");
    let source = ctx.manifest_path("web.yaml");
    assert!(
        out.contains("pod default/web (uid ") && out.contains(&source),
        "{out}"
    );
    for step in [
        "  create sandbox (attempt 0, image ",
        "  create and start container app (attempt 0): first start\n",
        "  create and start container side (attempt 0): first start\n",
    ] {
        assert!(out.contains(step), "{step:?} missing:\n{out}");
    }
    assert!(out.contains("back-off times are estimates"), "{out}");
    assert!(ctx.containers().is_empty(), "plan created nothing");

    // Converged: nothing to do, and the daemon is asked.
    let mut pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "web").await;
    let (code, out, err) = plan(&ctx, pv.port);
    assert_eq!(code, Some(0), "{out}{err}\n{}", ctx.report());
    assert!(out.contains("  nothing to do\n"), "{out}");
    assert!(
        out.contains("back-off times are the running daemon's"),
        "{out}"
    );

    // podvisor stopped (its pods keep running), then app killed: restart.
    pv.stop();
    let app = ctx
        .pod_containers("web")
        .into_iter()
        .find(|c| c.container() == "app" && c.running())
        .unwrap_or_else(|| panic!("no running app\n{}", show(&ctx.containers())));
    docker(&["kill", &app.id]);
    let (code, out, err) = plan(&ctx, nobody);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains(
            "  create and start container app (attempt 1): restart, it exited with code 137\n"
        ),
        "{out}"
    );
    assert!(
        !out.contains("container side"),
        "side is left alone:\n{out}"
    );

    // The manifest removed: the pod's containers would be killed and removed.
    ctx.remove_manifest("web.yaml");
    let (code, out, err) = plan(&ctx, nobody);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(out.contains("no longer in the manifests"), "{out}");
    for step in [
        "  kill sandbox (",
        "  kill container side (",
        "  remove dead container app (attempt 0, ",
        "  remove the killed sandbox (attempt 0, ",
    ] {
        assert!(out.contains(step), "{step:?} missing:\n{out}");
    }
    assert!(
        !out.contains("kill container app"),
        "app is dead already:\n{out}"
    );
    assert!(out.contains("its pod is no longer desired"), "{out}");
}

#[test]
fn an_engine_that_does_not_answer_is_named() {
    let ctx = TestCtx::new("plan-noengine");
    let out = Command::new(env!("CARGO_BIN_EXE_podvisor"))
        .arg("plan")
        .arg("--pod-manifest-path")
        .arg(&ctx.manifests)
        .args(["--node-name", &ctx.node])
        .args(["--docker-endpoint", "unix:///nonexistent/docker.sock"])
        .arg("--root-dir")
        .arg(ctx.path().join("root"))
        .output()
        .expect("run podvisor plan");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("unix:///nonexistent/docker.sock"), "{err}");
}

#[tokio::test]
async fn plan_shows_the_running_daemons_back_off() {
    let ctx = TestCtx::new("plan-backoff");
    ctx.write_manifest(
        "crash.yaml",
        &pod_yaml(
            "crash",
            "Always",
            &[("app", SLEEP), ("crash", &["sh", "-c", "exit 3"])],
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    // Restarted twice: the next restart waits 20 s, long enough for plan
    // to see the container dead.
    ctx.wait_until(CONVERGE, "crash to back off after two restarts", || async {
        let list = pv.pods().await?;
        let pod = find_pod(&list, "crash").ok_or("no pod crash")?;
        let s = container_status(pod, "crash").ok_or("no status of crash")?;
        let waiting = s["state"]["waiting"]["reason"].as_str().unwrap_or_default();
        match (s["restartCount"].as_u64(), waiting) {
            (Some(n), "CrashLoopBackOff") if n >= 2 => Ok(()),
            _ => Err(format!("{s}")),
        }
    })
    .await;
    let (code, out, err) = plan(&ctx, pv.port);
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.contains("  note: the daemon reports container crash in CrashLoopBackOff: back-off "),
        "{out}"
    );
    assert!(out.contains("  restart container crash at "), "{out}");
    assert!(out.contains("s, as the running daemon reports)"), "{out}");
    assert!(!out.contains("container app"), "app runs:\n{out}");
}
