//! End-to-end tests of the probes and events (issue 5) on a real Docker
//! engine: exec liveness restarts (native exec and nsenter), httpGet and
//! tcpSocket readiness, startup probes holding liveness off, and the events
//! of a liveness restart in order.
//!
//! Like `tests/e2e.rs` they need the engine and images of
//! `scripts/ensure-env.sh` (`make test`) and fail, never skip, without them.
//! Every test has its own node name, so they run in parallel on one engine.

#[allow(dead_code)] // the harness has more than these tests use
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::{json, Value};

/// A busybox container running `script` with `sh -c`, `extra` fields added.
fn ctr(name: &str, script: &str, extra: Value) -> Value {
    let mut c = json!({
        "name": name,
        "image": env().busybox_image,
        "command": ["sh", "-c", script],
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

fn exec_probe(command: &[&str], period: i32, failures: i32) -> Value {
    json!({
        "exec": {"command": command},
        "periodSeconds": period,
        "failureThreshold": failures,
    })
}

fn with_delay(mut probe: Value, secs: i32) -> Value {
    probe["initialDelaySeconds"] = json!(secs);
    probe
}

/// A running container's `ready` and `started`.
fn ready_started(pod: &Value, name: &str) -> Result<(bool, bool), String> {
    let s = container_status(pod, name).ok_or_else(|| format!("no status of {name}"))?;
    if !s["state"]["running"].is_object() {
        return Err(format!("{name} not running: {s}"));
    }
    let flag = |k: &str| {
        s[k].as_bool()
            .ok_or_else(|| format!("{name}: no boolean {k}: {s}"))
    };
    Ok((flag("ready")?, flag("started")?))
}

/// Where an event is in the list (`reason`, with `message` containing
/// `text`).
fn position(events: &[Value], reason: &str, text: &str) -> Option<usize> {
    events.iter().position(|e| {
        e["reason"] == reason && e["message"].as_str().is_some_and(|m| m.contains(text))
    })
}

/// Now as `docker events --since` takes it: Unix seconds with nanoseconds.
fn unix_time() -> String {
    let t = chrono::Utc::now();
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

fn brief(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "  {} {} {} x{}: {}",
                e["type"].as_str().unwrap_or("?"),
                e["reason"].as_str().unwrap_or("?"),
                e["involvedObject"]["fieldPath"].as_str().unwrap_or("-"),
                e["count"],
                e["message"].as_str().unwrap_or("?")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

// --- 1, 5, 6. exec liveness restarts the container; its events ---------------

async fn liveness_failure_restarts_the_container(tag: &str, flags: &[&str]) {
    let ctx = TestCtx::new(tag);
    let app = ctr(
        "app",
        "touch /tmp/healthy; sleep 8; rm /tmp/healthy; exec sleep 3600",
        // The initial delay lets the shell create the file before the
        // first probe (a new container's first probe must not fail).
        json!({"livenessProbe": with_delay(exec_probe(&["cat", "/tmp/healthy"], 1, 2), 1)}),
    );
    ctx.write_json(
        "live.json",
        &pod_json("live", "Always", json!([app]), json!({})),
    );
    let mut pv = Podvisor::spawn(&ctx, flags);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "live").await;
    let first = docker_id(container_status(&pod, "app").expect("app"))
        .expect("id")
        .to_string();
    let started = Instant::now();

    // Healthy for 8 s: no restart meanwhile.
    let new = ctx
        .wait_pod(&pv, "live", CONVERGE, "app restarted once", |p| {
            let s = container_status(p, "app").ok_or("no status of app")?;
            let id = docker_id(s).unwrap_or_default();
            let ok = s["restartCount"] == 1 && id != first && s["state"]["running"].is_object();
            ok.then(|| id.to_string())
                .ok_or_else(|| format!("app: {s}"))
        })
        .await;
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(6),
        "restarted after {after:?}, while /tmp/healthy still existed"
    );
    let old_exit = inspect(&first, "{{.State.Status}}");
    assert_eq!(old_exit, "exited", "the old container");
    let list = attempts(&ctx, "live", "app");
    assert_eq!(list.len(), 2, "{}", show(&list));
    assert_eq!(list[1].id, new);
    assert_eq!(list[1].attempt(), Some(1));

    // Events: Unhealthy, then Killing, then the new container's Started.
    let events = ctx
        .wait_until(Duration::from_secs(10), "the restart's events", || async {
            let events = pv.events("default", "live").await?;
            let short = &new[..12];
            match position(&events, "Started", short) {
                Some(_) => Ok(events),
                None => Err(brief(&events)),
            }
        })
        .await;
    let shown = brief(&events);
    let unhealthy = position(&events, "Unhealthy", "Liveness probe failed")
        .unwrap_or_else(|| panic!("no Unhealthy event:\n{shown}"));
    let killing = position(
        &events,
        "Killing",
        "Container app failed liveness probe, will be restarted",
    )
    .unwrap_or_else(|| panic!("no Killing event:\n{shown}"));
    let restarted = position(&events, "Started", &new[..12]).expect("Started");
    let first_start = position(&events, "Started", &first[..12])
        .unwrap_or_else(|| panic!("no Started event of the first container:\n{shown}"));
    assert!(
        first_start < killing && killing < restarted,
        "expected Started(first) < Killing < Started(new), by last occurrence:\n{shown}"
    );
    // The killed container is not probed any more (the kubelet holds its
    // probes until the container is replaced): every Unhealthy comes
    // before the Killing.
    let last_unhealthy = events
        .iter()
        .rposition(|e| e["reason"] == "Unhealthy")
        .expect("an Unhealthy event");
    assert!(
        last_unhealthy < killing,
        "the old container was probed again after the kill was asked for \
         (Unhealthy after Killing):\n{shown}"
    );
    // The probe failed failureThreshold (2) times before the kill: one
    // event, counted.
    let u = &events[unhealthy];
    assert!(u["count"].as_i64().unwrap_or(0) >= 2, "{u}");
    for i in [unhealthy, killing, restarted] {
        let e = &events[i];
        assert_eq!(
            e["involvedObject"]["fieldPath"], "spec.containers{app}",
            "{e}"
        );
        assert_eq!(e["involvedObject"]["name"], "live", "{e}");
    }
    assert_eq!(u["type"], "Warning", "{u}");
    assert_eq!(events[killing]["type"], "Normal");
    let probe_message = u["message"].as_str().unwrap_or_default();
    assert!(
        probe_message.contains("cat") || probe_message.contains("healthy"),
        "the Unhealthy message should say what failed: {probe_message}"
    );
    // Each event's timestamps are in order.
    for e in &events {
        let first_ts = e["firstTimestamp"].as_str().unwrap_or_default();
        let last_ts = e["lastTimestamp"].as_str().unwrap_or_default();
        assert!(!first_ts.is_empty() && first_ts <= last_ts, "{e}");
    }
    let lasts: Vec<&str> = events
        .iter()
        .map(|e| e["lastTimestamp"].as_str().unwrap_or_default())
        .collect();
    assert!(
        lasts.windows(2).all(|w| w[0] <= w[1]),
        "events not ordered by last occurrence:\n{shown}"
    );
}

#[tokio::test]
async fn a_failing_exec_liveness_probe_restarts_the_container() {
    liveness_failure_restarts_the_container("live", &[]).await;
}

#[tokio::test]
async fn a_failing_exec_liveness_probe_restarts_the_container_under_nsenter() {
    liveness_failure_restarts_the_container("livens", &["--docker-exec-handler=nsenter"]).await;
}

// --- 2. httpGet readiness ----------------------------------------------------

#[tokio::test]
async fn an_http_readiness_probe_turns_ready_when_the_server_answers() {
    let ctx = TestCtx::new("httpready");
    let server = |port: u16| {
        format!("sleep 5; mkdir -p /w; echo ok > /w/index.html; exec httpd -f -p {port} -h /w")
    };
    let by_number = ctr(
        "bynumber",
        &server(8080),
        json!({"readinessProbe": {
            "httpGet": {"path": "/index.html", "port": 8080},
            "periodSeconds": 1,
        }}),
    );
    let by_name = ctr(
        "byname",
        &server(8081),
        json!({
            "ports": [{"name": "web", "containerPort": 8081}],
            "readinessProbe": {
                "httpGet": {"path": "/index.html", "port": "web"},
                "periodSeconds": 1,
            },
        }),
    );
    ctx.write_json(
        "web.json",
        &pod_json("web", "Always", json!([by_number, by_name]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;

    // Running but not ready while the server is not up.
    ctx.wait_pod(&pv, "web", CONVERGE, "running, not ready", |p| {
        for c in ["bynumber", "byname"] {
            if ready_started(p, c)? != (false, true) {
                return Err(format!("{c} not (ready false, started true)"));
            }
        }
        let ok = condition(p, "Ready") == Some("False")
            && condition(p, "ContainersReady") == Some("False")
            && p["status"]["phase"] == "Running";
        ok.then_some(()).ok_or_else(|| "conditions".into())
    })
    .await;
    let before = Instant::now();
    ctx.wait_pod(&pv, "web", CONVERGE, "ready", |p| {
        for c in ["bynumber", "byname"] {
            if ready_started(p, c)? != (true, true) {
                return Err(format!("{c} not ready"));
            }
        }
        let ok = condition(p, "Ready") == Some("True")
            && condition(p, "ContainersReady") == Some("True");
        ok.then_some(()).ok_or_else(|| "conditions".into())
    })
    .await;
    // Not ready, then ready, without a restart.
    assert!(before.elapsed() < Duration::from_secs(20));
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "web").expect("web");
    for c in ["bynumber", "byname"] {
        assert_eq!(container_status(p, c).unwrap()["restartCount"], 0);
    }
    // The probe failed while nothing listened: Unhealthy events say so.
    let events = pv.events("default", "web").await.expect("events");
    assert!(
        position(&events, "Unhealthy", "Readiness probe failed").is_some(),
        "no readiness Unhealthy event:\n{}",
        brief(&events)
    );
}

// --- 3. tcpSocket readiness --------------------------------------------------

#[tokio::test]
async fn a_tcp_readiness_probe_follows_the_listening_port() {
    let ctx = TestCtx::new("tcpready");
    let listening = ctr(
        "listening",
        "sleep 3; exec httpd -f -p 9000",
        json!({"readinessProbe": {"tcpSocket": {"port": 9000}, "periodSeconds": 1}}),
    );
    // Nothing listens on 9001: never ready.
    let closed = ctr(
        "closed",
        "exec sleep 3600",
        json!({"readinessProbe": {"tcpSocket": {"port": 9001}, "periodSeconds": 1}}),
    );
    ctx.write_json(
        "tcp.json",
        &pod_json("tcp", "Always", json!([listening, closed]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod(
        &pv,
        "tcp",
        CONVERGE,
        "listening ready",
        |p| match ready_started(p, "listening")? {
            (true, true) => Ok(()),
            other => Err(format!("listening (ready, started) = {other:?}")),
        },
    )
    .await;
    // Two more probe periods: the closed port stays not ready, so the pod is.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "tcp").expect("tcp");
    assert_eq!(
        ready_started(p, "closed"),
        Ok((false, true)),
        "{}",
        p["status"]
    );
    assert_eq!(ready_started(p, "listening"), Ok((true, true)));
    assert_eq!(condition(p, "Ready"), Some("False"), "{}", p["status"]);
    let events = pv.events("default", "tcp").await.expect("events");
    let closed_failed = events.iter().any(|e| {
        e["reason"] == "Unhealthy"
            && e["involvedObject"]["fieldPath"] == "spec.containers{closed}"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Readiness probe failed"))
    });
    assert!(
        closed_failed,
        "no Unhealthy event of closed:\n{}",
        brief(&events)
    );
}

// --- 4. a startup probe holds liveness off -----------------------------------

#[tokio::test]
async fn a_slow_start_is_not_killed_while_the_startup_probe_may_still_fail() {
    let ctx = TestCtx::new("startup");
    let slow = ctr(
        "slow",
        "sleep 6; touch /tmp/started; exec sleep 3600",
        json!({
            "startupProbe": exec_probe(&["cat", "/tmp/started"], 1, 15),
            // Would kill it at once were it not held off.
            "livenessProbe": exec_probe(&["cat", "/tmp/started"], 1, 1),
        }),
    );
    ctx.write_json(
        "slow.json",
        &pod_json("slow", "Always", json!([slow]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;
    let first = ctx
        .wait_pod(
            &pv,
            "slow",
            CONVERGE,
            "running, not started",
            |p| match ready_started(p, "slow")? {
                (false, false) => Ok(docker_id(container_status(p, "slow").unwrap())
                    .unwrap_or_default()
                    .to_string()),
                other => Err(format!("slow (ready, started) = {other:?}")),
            },
        )
        .await;
    let t0 = Instant::now();
    ctx.wait_pod(
        &pv,
        "slow",
        CONVERGE,
        "started and ready",
        |p| match ready_started(p, "slow")? {
            (true, true) => Ok(()),
            other => Err(format!("slow (ready, started) = {other:?}")),
        },
    )
    .await;
    // Well past the 6 s and with liveness now running: never restarted.
    let wait = Duration::from_secs(10).saturating_sub(t0.elapsed());
    tokio::time::sleep(wait).await;
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, "slow").expect("slow");
    let s = container_status(p, "slow").expect("status of slow");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert_eq!(docker_id(s), Some(first.as_str()), "{s}");
    assert_eq!(ready_started(p, "slow"), Ok((true, true)));
    let all = attempts(&ctx, "slow", "slow");
    assert_eq!(all.len(), 1, "{}", show(&all));
    let events = pv.events("default", "slow").await.expect("events");
    let shown = brief(&events);
    assert!(
        position(&events, "Unhealthy", "Startup probe failed").is_some(),
        "the startup probe failed while the file was missing:\n{shown}"
    );
    assert!(
        position(&events, "Killing", "").is_none(),
        "nothing may be killed:\n{shown}"
    );
    assert!(
        position(&events, "Unhealthy", "Liveness probe failed").is_none(),
        "liveness ran before the startup probe succeeded:\n{shown}"
    );
}

// --- 4b. a startup probe that succeeded is done ------------------------------

#[tokio::test]
async fn a_container_past_its_startup_probe_stays_started_and_is_not_probed_again() {
    let ctx = TestCtx::new("started");
    let app = ctr(
        "app",
        "sleep 2; touch /tmp/started; exec sleep 3600",
        json!({"startupProbe": exec_probe(&["cat", "/tmp/started"], 1, 30)}),
    );
    ctx.write_json(
        "once.json",
        &pod_json("once", "Always", json!([app]), json!({})),
    );
    let pv = Podvisor::start(&ctx).await;
    let id = ctx
        .wait_pod(
            &pv,
            "once",
            CONVERGE,
            "started and ready",
            |p| match ready_started(p, "app")? {
                (true, true) => Ok(docker_id(container_status(p, "app").unwrap())
                    .unwrap_or_default()
                    .to_string()),
                other => Err(format!("app (ready, started) = {other:?}")),
            },
        )
        .await;
    // A moment for a probe that was already under way to end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let since = unix_time();

    // For 5 s (five probe periods) it stays started and ready ...
    let mut seen = std::collections::BTreeMap::<String, u32>::new();
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        let list = pv.pods().await.expect("/pods");
        let p = find_pod(&list, "once").expect("once");
        let key = format!("{:?}", ready_started(p, "app"));
        *seen.entry(key).or_default() += 1;
        tokio::time::sleep(POLL).await;
    }
    let until = unix_time();
    // ... and its startup probe no longer runs (no exec into it).
    let execs = docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        &format!("container={id}"),
        "--filter",
        "event=exec_start",
        "--format",
        "{{.Action}}",
    ]);
    let execs = execs.lines().filter(|l| !l.trim().is_empty()).count();
    let flapped = seen.keys().any(|k| k != "Ok((true, true))");
    assert!(
        !flapped && execs == 0,
        "over the 5 s after its startup probe succeeded, app (which has no other probe) \
         showed (ready, started) {seen:?} in /pods and had {execs} execs (expected only \
         (true, true) and 0 execs)\n{}",
        ctx.failure_report()
    );
    let s = container_status(
        find_pod(&pv.pods().await.expect("/pods"), "once").expect("once"),
        "app",
    )
    .cloned()
    .expect("status of app");
    assert_eq!(s["restartCount"], 0, "{s}");
}
