//! End-to-end tests of the pod lifecycle (issue 4) on a real Docker engine:
//! init containers and emptyDir volumes, restart policies and
//! CrashLoopBackOff, resources, OOM kills, the environment (`$(VAR)` and the
//! downward API), preStop hooks, admission and termination messages.
//!
//! Like `tests/e2e.rs` they need the engine and images of
//! `scripts/ensure-env.sh` (`make test`) and fail, never skip, without them.
//! Every test has its own node name, so they run in parallel on one engine.

#[allow(dead_code)] // the harness has more than these tests use
mod e2e_support;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use e2e_support::*;
use serde_json::{json, Value};

/// A busybox container running `script` with `sh -c`.
fn ctr(name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "image": env().busybox_image,
        "command": ["sh", "-c", script],
    })
}

/// `base` with the fields of `extra` added (or replaced).
fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The pod's UID as `/pods` shows it.
async fn uid_of(ctx: &TestCtx, pv: &Podvisor, pod: &str) -> String {
    ctx.wait_pod(pv, pod, CONVERGE, "a metadata.uid", |p| {
        p["metadata"]["uid"]
            .as_str()
            .map(String::from)
            .ok_or_else(|| "no uid".into())
    })
    .await
}

/// The terminated state of container `name` once it has one.
fn terminated_of(pod: &Value, name: &str) -> Result<Value, String> {
    let s = container_status(pod, name).ok_or_else(|| format!("no status of {name}"))?;
    let t = &s["state"]["terminated"];
    if t.is_object() {
        Ok(t.clone())
    } else {
        Err(format!("{name} not terminated: {s}"))
    }
}

/// The delay `N` of a CrashLoopBackOff message (`back-off Ns restarting ...`).
fn backoff_secs(message: &str) -> Option<u64> {
    let rest = &message[message.find("back-off ")? + "back-off ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    rest[digits.len()..]
        .starts_with('s')
        .then(|| digits.parse().ok())?
}

// --- 1. init containers, in order, sharing an emptyDir -----------------------

#[tokio::test]
async fn init_containers_run_once_in_order_and_share_an_empty_dir() {
    let ctx = TestCtx::new("init");
    let mount = json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]});
    ctx.write_json(
        "init.json",
        &pod_json(
            "init",
            "Always",
            json!([with(
                ctr("app", "cat /data/log; exec sleep 3600"),
                mount.clone()
            )]),
            json!({
                "initContainers": [
                    with(ctr("first", "echo one > /data/log"), mount.clone()),
                    with(ctr("second", "echo two >> /data/log"), mount.clone()),
                ],
                "volumes": [{"name": "data", "emptyDir": {}}],
            }),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "init").await;
    let uid = pod["metadata"]["uid"].as_str().expect("uid").to_string();
    let app = attempts(&ctx, "init", "app");
    assert_eq!(app.len(), 1, "{}", show(&app));
    let app = app[0].clone();

    // The app sees what both init containers wrote, in their order (the
    // second appends; had it run first, the first's `>` would have erased it).
    let logs = ctx
        .wait_until(
            Duration::from_secs(10),
            "the app to print the log",
            || async {
                match docker_try(&["logs", &app.id]) {
                    Ok(l) if !l.is_empty() => Ok(l),
                    Ok(_) => Err("no output yet".into()),
                    Err(e) => Err(e),
                }
            },
        )
        .await;
    assert_eq!(logs, "one\ntwo", "the app's output");
    assert_eq!(docker(&["exec", &app.id, "cat", "/data/log"]), "one\ntwo");

    // Each init container ran once, exited 0, the first before the second,
    // both before the app started.
    let first = attempts(&ctx, "init", "first");
    let second = attempts(&ctx, "init", "second");
    assert_eq!(first.len(), 1, "first ran once:\n{}", show(&first));
    assert_eq!(second.len(), 1, "second ran once:\n{}", show(&second));
    for c in [&first[0], &second[0]] {
        assert_eq!(c.state, "exited", "{}", c.name);
        assert_eq!(inspect(&c.id, "{{.State.ExitCode}}"), "0", "{}", c.name);
    }
    let finished = |c: &Ctr| inspect_time(&c.id, "{{.State.FinishedAt}}");
    let started = |c: &Ctr| inspect_time(&c.id, "{{.State.StartedAt}}");
    let created = |c: &Ctr| inspect_time(&c.id, "{{.Created}}");
    assert!(
        finished(&first[0]) <= started(&second[0]),
        "second started before first finished"
    );
    assert!(
        finished(&second[0]) <= started(&app),
        "the app started before second finished"
    );
    assert!(created(&first[0]) < created(&second[0]) && created(&second[0]) < created(&app));

    // /pods: Initialized, init statuses Completed.
    assert_eq!(
        condition(&pod, "Initialized"),
        Some("True"),
        "{}",
        pod["status"]
    );
    for (name, c) in [("first", &first[0]), ("second", &second[0])] {
        let s = init_container_status(&pod, name)
            .unwrap_or_else(|| panic!("no init status of {name}: {}", pod["status"]));
        let t = &s["state"]["terminated"];
        assert_eq!(t["reason"], "Completed", "{s}");
        assert_eq!(t["exitCode"], 0, "{s}");
        assert_eq!(s["restartCount"], 0, "{s}");
        assert_eq!(docker_id(s), Some(c.id.as_str()), "{s}");
    }

    // The emptyDir lives under --root-dir/pods/<uid>/volumes/<name>.
    let pod_dir = ctx.path().join("root").join("pods").join(&uid);
    let log = pod_dir.join("volumes").join("data").join("log");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display())),
        "one\ntwo\n"
    );

    // Later syncs run no init container again.
    tokio::time::sleep(3 * SYNC).await;
    assert_eq!(attempts(&ctx, "init", "first"), first);
    assert_eq!(attempts(&ctx, "init", "second"), second);
    let after = attempts(&ctx, "init", "app");
    assert!(
        after.len() == 1 && after[0].id == app.id && after[0].running(),
        "{}",
        show(&after)
    );

    // Removing the manifest removes the containers and the pod's directory.
    ctx.remove_manifest("init.json");
    ctx.wait_until(CONVERGE, "the pod's containers to go", || async {
        let left = ctx.pod_containers("init");
        left.is_empty().then_some(()).ok_or_else(|| show(&left))
    })
    .await;
    ctx.wait_until(
        Duration::from_secs(10),
        "the pod's directory to be removed",
        || async {
            (!pod_dir.exists())
                .then_some(())
                .ok_or_else(|| format!("{} still exists", pod_dir.display()))
        },
    )
    .await;
}

// --- 2. OnFailure: success is final ------------------------------------------

#[tokio::test]
async fn an_on_failure_container_that_succeeds_is_not_restarted() {
    let ctx = TestCtx::new("onfail");
    ctx.write_json(
        "job.json",
        &pod_json(
            "job",
            "OnFailure",
            json!([ctr("work", "echo done")]),
            json!({}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let succeeded = |p: &Value| -> Result<(), String> {
        let t = terminated_of(p, "work")?;
        let s = container_status(p, "work").unwrap();
        let ok = p["status"]["phase"] == "Succeeded"
            && t["exitCode"] == 0
            && t["reason"] == "Completed"
            && s["restartCount"] == 0;
        ok.then_some(()).ok_or_else(|| "not Succeeded yet".into())
    };
    ctx.wait_pod(&pv, "job", CONVERGE, "Succeeded, exit 0", succeeded)
        .await;
    let work = attempts(&ctx, "job", "work");
    assert_eq!(work.len(), 1, "{}", show(&work));

    // Several syncs later: still one container, still Succeeded.
    tokio::time::sleep(4 * SYNC).await;
    assert_eq!(
        attempts(&ctx, "job", "work"),
        work,
        "the container was restarted"
    );
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "job").expect("pod job");
    if let Err(e) = succeeded(p) {
        panic!("the pod no longer shows Succeeded: {e}: {}", p["status"]);
    }
}

// --- 3. CrashLoopBackOff -----------------------------------------------------

#[tokio::test]
async fn a_crashing_container_backs_off() {
    let ctx = TestCtx::new("crash");
    ctx.write_json(
        "crash.json",
        &pod_json("crash", "Always", json!([ctr("boom", "exit 1")]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;

    // /pods: waiting CrashLoopBackOff, naming the delay, the last exit 1.
    let (message, restarts) = ctx
        .wait_pod(&pv, "crash", CONVERGE, "CrashLoopBackOff", |p| {
            let s = container_status(p, "boom").ok_or("no status of boom")?;
            let w = &s["state"]["waiting"];
            if w["reason"] != "CrashLoopBackOff" {
                return Err(format!("not backing off: {s}"));
            }
            let last = &s["lastState"]["terminated"];
            if last["exitCode"] != 1 || last["reason"] != "Error" {
                return Err(format!("lastState: {s}"));
            }
            let message = w["message"].as_str().unwrap_or_default().to_string();
            Ok((message, s["restartCount"].as_i64().unwrap_or(-1)))
        })
        .await;
    let delay = backoff_secs(&message);
    assert!(
        matches!(delay, Some(10 | 20)),
        "the message should name the back-off delay (10 s or 20 s by now): {message:?}"
    );
    assert!(message.contains("boom"), "{message:?}");
    assert!(restarts >= 1, "restartCount {restarts}");
    let phase = ctx
        .wait_pod(&pv, "crash", CONVERGE, "a phase", |p| {
            p["status"]["phase"]
                .as_str()
                .map(String::from)
                .ok_or_else(|| "no phase".into())
        })
        .await;
    assert_eq!(
        phase, "Running",
        "an Always pod in CrashLoopBackOff is Running"
    );

    // 25 s after the first start: restarts at ~0 s, ~10 s (and ~30 s), so at
    // most 3 (2 expected).
    let first = attempts(&ctx, "crash", "boom")
        .into_iter()
        .find(|c| c.attempt() == Some(0))
        .expect("attempt 0 of boom");
    let t0 = inspect_time(&first.id, "{{.State.StartedAt}}");
    let wait = (t0 + chrono::Duration::seconds(25) - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "crash").expect("pod crash");
    let s = container_status(p, "boom").expect("status of boom");
    let restarts = s["restartCount"].as_i64().expect("restartCount");
    let all = attempts(&ctx, "crash", "boom");
    assert!(
        (1..=3).contains(&restarts),
        "25 s after the first start: restartCount {restarts} (expected 1..=3, back-off 10 s then 20 s)\n{}\n{}",
        show(&all),
        ctx.failure_report()
    );
    assert!(
        all.len() <= 4,
        "too many attempts in 25 s:\n{}\n{}",
        show(&all),
        ctx.failure_report()
    );

    // The pauses between attempts: the first restart at once, then >= 10 s.
    let times: Vec<_> = all
        .iter()
        .map(|c| {
            (
                inspect_time(&c.id, "{{.State.StartedAt}}"),
                inspect_time(&c.id, "{{.State.FinishedAt}}"),
            )
        })
        .collect();
    for (i, pair) in times.windows(2).enumerate() {
        let gap = (pair[1].0 - pair[0].1).num_milliseconds() as f64 / 1000.0;
        let (min, max) = match i {
            0 => (0.0, 5.0),
            1 => (9.0, 18.0),
            _ => (19.0, 28.0),
        };
        assert!(
            (min..=max).contains(&gap),
            "pause before restart {}: {gap:.1} s, expected {min}..{max} s\n{}",
            i + 1,
            show(&all)
        );
    }

    // A BackOff event on the container.
    let events = pv.events("default", "crash").await.expect("events");
    let backoff = events
        .iter()
        .find(|e| e["reason"] == "BackOff")
        .unwrap_or_else(|| panic!("no BackOff event: {events:?}"));
    assert_eq!(backoff["type"], "Warning", "{backoff}");
    assert_eq!(
        backoff["involvedObject"]["fieldPath"], "spec.containers{boom}",
        "{backoff}"
    );
}

// --- 3b. the last termination of a restarted container ----------------------

#[tokio::test]
async fn a_restarted_container_shows_its_last_termination() {
    let ctx = TestCtx::new("laststate");
    // Fails once (exit 7), then runs: the emptyDir remembers the first run.
    let app = with(
        ctr(
            "app",
            "test -f /data/ran && exec sleep 3600; touch /data/ran; exit 7",
        ),
        json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
    );
    ctx.write_json(
        "again.json",
        &pod_json(
            "again",
            "Always",
            json!([app]),
            json!({"volumes": [{"name": "data", "emptyDir": {}}]}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx
        .wait_pod(&pv, "again", CONVERGE, "app running after a restart", |p| {
            let s = container_status(p, "app").ok_or("no status of app")?;
            let ok = s["restartCount"] == 1 && s["state"]["running"].is_object();
            ok.then(|| p.clone()).ok_or_else(|| format!("app: {s}"))
        })
        .await;
    let all = attempts(&ctx, "again", "app");
    assert_eq!(all.len(), 2, "{}", show(&all));
    let s = container_status(&pod, "app").unwrap();
    assert_eq!(docker_id(s), Some(all[1].id.as_str()), "{s}");
    // As the kubelet reports it: lastState.terminated is the previous
    // container's exit while the new one runs.
    let last = &s["lastState"]["terminated"];
    assert!(
        last.is_object(),
        "a running container with restartCount 1 has no lastState.terminated: {s}"
    );
    assert_eq!(last["exitCode"], 7, "{s}");
    assert_eq!(last["reason"], "Error", "{s}");
    assert_eq!(
        last["containerID"],
        format!("docker://{}", all[0].id),
        "{s}"
    );
}

// --- 4. resources ------------------------------------------------------------

#[tokio::test]
async fn resources_become_cpu_shares_quota_and_memory_limits() {
    let ctx = TestCtx::new("res");
    let sized = with(
        ctr("sized", "exec sleep 3600"),
        json!({"resources": {
            "requests": {"cpu": "250m", "memory": "64Mi"},
            "limits": {"cpu": "500m", "memory": "128Mi"},
        }}),
    );
    ctx.write_json(
        "res.json",
        &pod_json(
            "res",
            "Always",
            json!([sized, ctr("bare", "exec sleep 3600")]),
            json!({}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "res").await;
    let template = "{{.HostConfig.CpuShares}} {{.HostConfig.CpuQuota}} {{.HostConfig.CpuPeriod}} \
                    {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}";
    let sized = docker_id(container_status(&pod, "sized").expect("sized")).expect("id");
    assert_eq!(
        inspect(sized, template),
        "256 50000 100000 134217728 134217728",
        "CpuShares CpuQuota CpuPeriod Memory MemorySwap of sized"
    );
    // The kernel got the memory limit (cgroup v1 or v2).
    let limit = docker(&[
        "exec",
        sized,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max",
    ]);
    assert_eq!(limit, "134217728", "the container's cgroup memory limit");
    // Nothing asked for: the minimum shares, no quota, no memory limit.
    let bare = docker_id(container_status(&pod, "bare").expect("bare")).expect("id");
    assert_eq!(
        inspect(
            bare,
            "{{.HostConfig.CpuShares}} {{.HostConfig.CpuQuota}} {{.HostConfig.Memory}}"
        ),
        "2 0 0",
        "CpuShares CpuQuota Memory of bare"
    );
}

// --- 5. OOMKilled ------------------------------------------------------------

#[tokio::test]
async fn an_oom_killed_container_is_reported_as_such() {
    let ctx = TestCtx::new("oom");
    // `tail` keeps the whole (newline-free) input in memory.
    let hog = with(
        ctr("hog", "head -c 100m /dev/zero | tail"),
        json!({"resources": {"limits": {"memory": "16Mi"}}}),
    );
    ctx.write_json(
        "oom.json",
        &pod_json("oom", "Never", json!([hog]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;
    let t = ctx
        .wait_pod(&pv, "oom", CONVERGE, "hog terminated", |p| {
            terminated_of(p, "hog")
        })
        .await;
    let hog = attempts(&ctx, "oom", "hog");
    assert_eq!(hog.len(), 1, "{}", show(&hog));
    let engine = inspect(&hog[0].id, "{{.State.OOMKilled}} {{.State.ExitCode}}");
    assert_eq!(
        engine, "true 137",
        "the engine's OOMKilled and exit code (the kernel did not OOM-kill here?)"
    );
    assert_eq!(t["reason"], "OOMKilled", "{t}");
    assert_eq!(t["exitCode"], 137, "{t}");
    ctx.wait_pod(&pv, "oom", CONVERGE, "Failed", |p| {
        (p["status"]["phase"] == "Failed")
            .then_some(())
            .ok_or_else(|| "not Failed".into())
    })
    .await;
}

// --- 6. the environment: $(VAR) and the downward API -------------------------

#[tokio::test]
async fn env_expands_references_and_the_downward_api() {
    let ctx = TestCtx::new("env");
    let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
    let app = json!({
        "name": "app",
        "image": env().busybox_image,
        "command": ["sh", "-c"],
        // Expanded by podvisor, not by the shell (to which `$(A)` would be a
        // command substitution); `$$(A)` is the escaped, literal `$(A)`.
        "args": ["echo \"arg=$(A)\" 'esc=$$(A)' \"b=$B c=$C d=$D\"; exec sleep 3600"],
        "resources": {"limits": {"memory": "64Mi"}},
        "env": [
            {"name": "A", "value": "x"},
            {"name": "B", "value": "$(A)-y"},
            {"name": "C", "value": "$$(A)"},
            {"name": "D", "value": "$(NOT_DEFINED)"},
            {"name": "POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
            {"name": "POD_UID", "valueFrom": field("metadata.uid")},
            {"name": "POD_IP", "valueFrom": field("status.podIP")},
            {"name": "NODE", "valueFrom": field("spec.nodeName")},
            {"name": "MEM_MI", "valueFrom": {"resourceFieldRef": {
                "resource": "limits.memory", "divisor": "1Mi"}}},
        ],
    });
    ctx.write_json(
        "env.json",
        &pod_json("envy", "Always", json!([app]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "envy").await;
    let id = docker_id(container_status(&pod, "app").expect("app"))
        .expect("id")
        .to_string();

    // What the engine was given: args already expanded.
    assert_eq!(
        inspect(&id, "{{json .Config.Entrypoint}}"),
        r#"["sh","-c"]"#
    );
    let cmd: Vec<String> =
        serde_json::from_str(&inspect(&id, "{{json .Config.Cmd}}")).expect("Cmd");
    assert_eq!(
        cmd,
        ["echo \"arg=x\" 'esc=$(A)' \"b=$B c=$C d=$D\"; exec sleep 3600"],
        "the args as created"
    );
    let logs = ctx
        .wait_until(Duration::from_secs(10), "the app's output", || async {
            match docker_try(&["logs", &id]) {
                Ok(l) if !l.is_empty() => Ok(l),
                Ok(_) => Err("no output yet".into()),
                Err(e) => Err(e),
            }
        })
        .await;
    assert_eq!(logs, "arg=x esc=$(A) b=x-y c=$(A) d=$(NOT_DEFINED)");

    // The environment inside the container.
    let env: std::collections::BTreeMap<String, String> = docker(&["exec", &id, "env"])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let infra = ctx
        .pod_containers("envy")
        .into_iter()
        .find(|c| c.container() == "POD" && c.running())
        .expect("infra container");
    let ip = inspect(
        &infra.id,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    assert!(!ip.is_empty(), "the infra container has no IP");
    assert_eq!(pod["status"]["podIP"], ip.as_str());
    let uid = pod["metadata"]["uid"].as_str().expect("uid");
    for (k, v) in [
        ("A", "x"),
        ("B", "x-y"),
        ("C", "$(A)"),
        ("D", "$(NOT_DEFINED)"),
        ("POD_NAME", "envy"),
        ("POD_NAMESPACE", "default"),
        ("POD_UID", uid),
        ("POD_IP", ip.as_str()),
        ("NODE", ctx.node.as_str()),
        ("MEM_MI", "64"),
    ] {
        assert_eq!(
            env.get(k).map(String::as_str),
            Some(v),
            "env {k} in the container: {env:?}"
        );
    }
}

// --- 7. preStop --------------------------------------------------------------

#[tokio::test]
async fn pre_stop_runs_before_the_container_is_signalled() {
    let ctx = TestCtx::new("prestop");
    let host_dir = ctx.path().join("host-data");
    // The container notes SIGTERM in the same file the hook writes to.
    let app = with(
        ctr(
            "app",
            "trap 'echo term >> /data/order; exit 0' TERM; \
             while true; do sleep 1 & wait $!; done",
        ),
        json!({
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "lifecycle": {"preStop": {"exec": {"command":
                ["sh", "-c", "echo stopped > /data/marker; echo prestop >> /data/order"]}}},
        }),
    );
    ctx.write_json(
        "stop.json",
        &pod_json(
            "stopper",
            "Always",
            json!([app]),
            json!({
                "terminationGracePeriodSeconds": 10,
                "volumes": [{"name": "data", "hostPath": {
                    "path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}}],
            }),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "stopper").await;
    assert!(
        host_dir.is_dir(),
        "DirectoryOrCreate made {}",
        host_dir.display()
    );
    assert!(!host_dir.join("marker").exists(), "the hook ran early");

    ctx.remove_manifest("stop.json");
    ctx.wait_until(CONVERGE, "the pod's containers to go", || async {
        let left = ctx.pod_containers("stopper");
        left.is_empty().then_some(()).ok_or_else(|| show(&left))
    })
    .await;
    let marker = std::fs::read_to_string(host_dir.join("marker"))
        .unwrap_or_else(|e| panic!("no marker from the preStop hook: {e}\n{}", ctx.log_tail()));
    assert_eq!(marker, "stopped\n");
    let order = std::fs::read_to_string(host_dir.join("order")).expect("order file");
    assert_eq!(
        order, "prestop\nterm\n",
        "the preStop hook must finish before the container gets SIGTERM"
    );
    // The hostPath survives the pod.
    assert!(Path::new(&host_dir).is_dir());
}

// --- 8. Never: a failure is final -------------------------------------------

#[tokio::test]
async fn a_never_pod_whose_container_fails_is_failed() {
    let ctx = TestCtx::new("fail");
    ctx.write_json(
        "fail.json",
        &pod_json("failing", "Never", json!([ctr("app", "exit 3")]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;
    let failed = |p: &Value| -> Result<(), String> {
        let t = terminated_of(p, "app")?;
        let s = container_status(p, "app").unwrap();
        let ok = p["status"]["phase"] == "Failed"
            && t["exitCode"] == 3
            && t["reason"] == "Error"
            && s["restartCount"] == 0;
        ok.then_some(()).ok_or_else(|| "not Failed with 3".into())
    };
    ctx.wait_pod(&pv, "failing", CONVERGE, "Failed, exit 3", failed)
        .await;
    let apps = attempts(&ctx, "failing", "app");
    assert_eq!(apps.len(), 1, "{}", show(&apps));
    tokio::time::sleep(4 * SYNC).await;
    assert_eq!(
        attempts(&ctx, "failing", "app"),
        apps,
        "the container was restarted"
    );
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "failing").expect("pod failing");
    if let Err(e) = failed(p) {
        panic!("the pod no longer shows Failed/3: {e}: {}", p["status"]);
    }
}

// --- 8b. Never: a failed init container fails the pod -------------------------

#[tokio::test]
async fn a_failed_init_container_fails_a_never_pod_and_the_app_never_starts() {
    let ctx = TestCtx::new("initfail");
    ctx.write_json(
        "initfail.json",
        &pod_json(
            "initfail",
            "Never",
            json!([ctr("app", "exec sleep 3600")]),
            json!({"initContainers": [ctr("setup", "exit 4")]}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx
        .wait_pod(&pv, "initfail", CONVERGE, "Failed", |p| {
            (p["status"]["phase"] == "Failed")
                .then(|| p.clone())
                .ok_or_else(|| "not Failed".into())
        })
        .await;
    let s = init_container_status(&pod, "setup").expect("status of setup");
    assert_eq!(s["state"]["terminated"]["exitCode"], 4, "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert_eq!(
        condition(&pod, "Initialized"),
        Some("False"),
        "{}",
        pod["status"]
    );
    let app = container_status(&pod, "app").expect("status of app");
    assert_eq!(
        app["state"]["waiting"]["reason"], "PodInitializing",
        "{app}"
    );
    tokio::time::sleep(3 * SYNC).await;
    let setup = attempts(&ctx, "initfail", "setup");
    assert_eq!(setup.len(), 1, "setup ran once:\n{}", show(&setup));
    let apps = attempts(&ctx, "initfail", "app");
    assert!(apps.is_empty(), "the app was created:\n{}", show(&apps));
}

// --- 9. admission --------------------------------------------------------------

#[tokio::test]
async fn pods_the_node_cannot_take_are_failed_and_others_run() {
    let ctx = TestCtx::new("admit");
    let greedy = with(
        ctr("app", "exec sleep 3600"),
        json!({"resources": {"requests": {"cpu": "1000"}}}),
    );
    ctx.write_json(
        "greedy.json",
        &pod_json("greedy", "Always", json!([greedy]), json!({})),
    );
    let cm = with(
        ctr("app", "exec sleep 3600"),
        json!({"volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}]}),
    );
    ctx.write_json(
        "cm.json",
        &pod_json(
            "cm",
            "Always",
            json!([cm]),
            json!({"volumes": [{"name": "cfg", "configMap": {"name": "settings"}}]}),
        ),
    );
    ctx.write_json(
        "fine.json",
        &pod_json(
            "fine",
            "Always",
            json!([ctr("app", "exec sleep 3600")]),
            json!({}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "fine").await;

    let refused = |want_reason: Option<&'static str>, want_message: &'static str| {
        move |p: &Value| -> Result<(), String> {
            let st = &p["status"];
            let message = st["message"].as_str().unwrap_or_default();
            let ok = st["phase"] == "Failed"
                && want_reason.is_none_or(|r| st["reason"] == r)
                && message.contains(want_message);
            ok.then_some(()).ok_or_else(|| "not refused".into())
        }
    };
    ctx.wait_pod(
        &pv,
        "greedy",
        CONVERGE,
        "Failed with OutOfcpu",
        refused(Some("OutOfcpu"), "cpu"),
    )
    .await;
    ctx.wait_pod(
        &pv,
        "cm",
        CONVERGE,
        "Failed: configMap not supported",
        refused(None, "volume type configMap is not supported"),
    )
    .await;

    // A few syncs later: nothing was ever created for the refused pods.
    tokio::time::sleep(3 * SYNC).await;
    for pod in ["greedy", "cm"] {
        let uid = uid_of(&ctx, &pv, pod).await;
        let made = containers_with(&[("io.kubernetes.pod.uid", uid.as_str())]);
        assert!(
            made.is_empty(),
            "containers of refused pod {pod}:\n{}",
            show(&made)
        );
        assert!(ctx.pod_containers(pod).is_empty());
        let list = pv.pods().await.expect("/pods");
        assert_eq!(
            find_pod(&list, pod).expect(pod)["status"]["phase"],
            "Failed"
        );
    }
    let fine = ctx.wait_pod_running(&pv, "fine").await;
    assert_eq!(container_status(&fine, "app").unwrap()["restartCount"], 0);
}

// --- 10. termination messages ------------------------------------------------

#[tokio::test]
async fn termination_messages_are_reported() {
    let ctx = TestCtx::new("termmsg");
    let fallback = with(
        ctr("fallback", "echo some output; echo last words; exit 2"),
        json!({"terminationMessagePolicy": "FallbackToLogsOnError"}),
    );
    let custom = with(
        ctr("custom", "printf 'see you' > /tmp/done"),
        json!({"terminationMessagePath": "/tmp/done"}),
    );
    ctx.write_json(
        "msg.json",
        &pod_json(
            "msg",
            "Never",
            json!([
                ctr("writer", "printf bye > /dev/termination-log"),
                custom,
                fallback
            ]),
            json!({}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let (writer, custom, fallback) = ctx
        .wait_pod(&pv, "msg", CONVERGE, "every container terminated", |p| {
            Ok((
                terminated_of(p, "writer")?,
                terminated_of(p, "custom")?,
                terminated_of(p, "fallback")?,
            ))
        })
        .await;
    assert_eq!(writer["exitCode"], 0, "{writer}");
    assert_eq!(writer["message"], "bye", "{writer}");
    assert_eq!(custom["exitCode"], 0, "{custom}");
    assert_eq!(custom["message"], "see you", "{custom}");
    assert_eq!(fallback["exitCode"], 2, "{fallback}");
    let m = fallback["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("last words"),
        "FallbackToLogsOnError: the log's tail: {fallback}"
    );
}

// --- 12. sidecars: init containers with restartPolicy Always -----------------

#[tokio::test]
async fn a_sidecar_runs_beside_the_app_restarts_and_stops_after_it() {
    let ctx = TestCtx::new("sidecar");
    let host_dir = ctx.path().join("side-data");
    let data = json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]});
    // Each notes its SIGTERM in one file; the app takes a second to do so,
    // so a sidecar stopped alongside it (not after) would write first.
    let proxy = with(
        ctr(
            "proxy",
            "trap 'echo proxy >> /data/order; exit 0' TERM; \
             while true; do sleep 1 & wait $!; done",
        ),
        with(data.clone(), json!({"restartPolicy": "Always"})),
    );
    let app = with(
        ctr(
            "app",
            "trap 'sleep 1; echo app >> /data/order; exit 0' TERM; \
             while true; do sleep 1 & wait $!; done",
        ),
        data.clone(),
    );
    ctx.write_json(
        "side.json",
        &pod_json(
            "side",
            "Always",
            json!([app]),
            json!({
                "terminationGracePeriodSeconds": 10,
                "initContainers": [proxy, with(ctr("setup", "true"), data.clone())],
                "volumes": [{"name": "data", "hostPath": {
                    "path": host_dir.display().to_string(), "type": "DirectoryOrCreate"}}],
            }),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "side").await;

    // The sidecar started first and still runs; setup ran after it started,
    // the app after setup.
    let proxy = attempts(&ctx, "side", "proxy");
    let setup = attempts(&ctx, "side", "setup");
    let app = attempts(&ctx, "side", "app");
    assert!(proxy.len() == 1 && proxy[0].running(), "{}", show(&proxy));
    assert_eq!(setup.len(), 1, "{}", show(&setup));
    assert_eq!(app.len(), 1, "{}", show(&app));
    let started = |c: &Ctr| inspect_time(&c.id, "{{.State.StartedAt}}");
    let finished = |c: &Ctr| inspect_time(&c.id, "{{.State.FinishedAt}}");
    assert!(started(&proxy[0]) <= started(&setup[0]));
    assert!(finished(&setup[0]) <= started(&app[0]));
    assert_eq!(
        condition(&pod, "Initialized"),
        Some("True"),
        "{}",
        pod["status"]
    );
    let s = init_container_status(&pod, "proxy").expect("proxy status");
    assert_eq!(s["started"], true, "{s}");
    assert_eq!(s["ready"], true, "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert!(s["state"]["running"].is_object(), "{s}");
    assert_eq!(docker_id(s), Some(proxy[0].id.as_str()), "{s}");

    // Killed behind podvisor's back: started again, the app untouched.
    docker(&["kill", &proxy[0].id]);
    let restarted = |p: &Value| -> Result<String, String> {
        let s = init_container_status(p, "proxy").ok_or("no proxy status")?;
        let id = docker_id(s).unwrap_or_default().to_string();
        let ok =
            s["restartCount"] == 1 && s["state"]["running"].is_object() && s["started"] == true;
        (ok && id != proxy[0].id)
            .then_some(id)
            .ok_or_else(|| format!("proxy: {s}"))
    };
    let new_proxy = ctx
        .wait_pod(&pv, "side", CONVERGE, "the sidecar restarted", restarted)
        .await;
    assert!(ctx
        .pod_containers("side")
        .iter()
        .any(|c| c.id == new_proxy && c.running()));
    let app_now = attempts(&ctx, "side", "app");
    assert!(
        app_now.len() == 1 && app_now[0].id == app[0].id && app_now[0].running(),
        "the app kept running: {}",
        show(&app_now)
    );
    assert_eq!(attempts(&ctx, "side", "setup"), setup, "setup ran once");

    // Removed: the app stops first, the sidecar after it.
    ctx.remove_manifest("side.json");
    ctx.wait_until(CONVERGE, "the pod's containers to go", || async {
        let left = ctx.pod_containers("side");
        left.is_empty().then_some(()).ok_or_else(|| show(&left))
    })
    .await;
    let order = std::fs::read_to_string(host_dir.join("order"))
        .unwrap_or_else(|e| panic!("no order file: {e}\n{}", ctx.log_tail()));
    assert_eq!(order, "app\nproxy\n", "the sidecar must stop after the app");
}

#[tokio::test]
async fn a_never_pod_with_a_sidecar_succeeds_and_its_sidecar_stops() {
    let ctx = TestCtx::new("sidejob");
    let logger = with(
        ctr("logger", "while true; do sleep 1; done"),
        json!({"restartPolicy": "Always"}),
    );
    ctx.write_json(
        "job.json",
        &pod_json(
            "job",
            "Never",
            json!([ctr("app", "sleep 2; exit 0")]),
            json!({"initContainers": [logger]}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let succeeded = |p: &Value| -> Result<(), String> {
        let t = terminated_of(p, "app")?;
        (p["status"]["phase"] == "Succeeded" && t["exitCode"] == 0)
            .then_some(())
            .ok_or_else(|| "not Succeeded".into())
    };
    ctx.wait_pod(&pv, "job", CONVERGE, "Succeeded", succeeded)
        .await;
    ctx.wait_until(CONVERGE, "the sidecar to stop", || async {
        let l = attempts(&ctx, "job", "logger");
        (l.len() == 1 && !l[0].running())
            .then_some(())
            .ok_or_else(|| show(&l))
    })
    .await;
    tokio::time::sleep(3 * SYNC).await;
    let l = attempts(&ctx, "job", "logger");
    assert!(
        l.len() == 1 && !l[0].running(),
        "not started again: {}",
        show(&l)
    );
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "job").expect("pod job");
    assert_eq!(p["status"]["phase"], "Succeeded", "{}", p["status"]);
    let s = init_container_status(p, "logger").expect("logger status");
    assert!(s["state"]["terminated"].is_object(), "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
}
