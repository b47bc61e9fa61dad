//! End-to-end tests of Pod fields podvisor used to drop in silence (issue
//! 16): `activeDeadlineSeconds`, `stdin`/`stdinOnce`/`tty`, `qosClass` and
//! the node's address as `hostIP`. Like `tests/e2e.rs` they need the engine
//! and images of `scripts/ensure-env.sh` (`make test`), and fail, never
//! skip, without them.

#[allow(dead_code)]
mod e2e_support;

use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::{json, Value};

fn busybox(name: &str, command: &[&str]) -> Value {
    json!({"name": name, "image": env().busybox_image, "imagePullPolicy": "Never",
           "command": command})
}

#[tokio::test]
async fn a_pod_past_its_active_deadline_is_killed_and_fails_with_deadline_exceeded() {
    let ctx = TestCtx::new("deadline");
    ctx.write_json(
        "deadline.json",
        &pod_json(
            "deadline",
            "Always",
            json!([busybox("app", SLEEP)]),
            json!({"activeDeadlineSeconds": 4}),
        ),
    );
    let pv = Podvisor::spawn(&ctx, &[]);
    let running = ctx.wait_pod_running(&pv, "deadline").await;
    let id = docker_id(container_status(&running, "app").expect("app")).expect("an ID");
    let id = id.to_string();
    let began = Instant::now();
    let status = ctx
        .wait_pod(
            &pv,
            "deadline",
            CONVERGE,
            "Failed with DeadlineExceeded",
            |p| {
                let s = &p["status"];
                (s["phase"] == "Failed" && s["reason"] == "DeadlineExceeded")
                    .then(|| s.clone())
                    .ok_or_else(|| "not yet".to_string())
            },
        )
        .await;
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "a 4 s deadline took {:?} to end the pod",
        began.elapsed()
    );
    assert_eq!(
        status["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(
        inspect(&id, "{{.State.Running}}"),
        "false",
        "the app still runs"
    );
    let app = &status["containerStatuses"][0];
    assert!(
        app["state"]["terminated"].is_object(),
        "the app shows how it ended: {app}"
    );
    let events = pv.events("default", "deadline").await.expect("events");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "DeadlineExceeded" && e["type"] == "Warning"),
        "no DeadlineExceeded event: {events:?}"
    );
    // It stays Failed: nothing is started again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running: Vec<Ctr> = ctx
        .pod_containers("deadline")
        .into_iter()
        .filter(Ctr::running)
        .collect();
    assert!(running.is_empty(), "{}", show(&running));
    let list = pv.pods().await.expect("pods");
    assert_eq!(
        find_pod(&list, "deadline").expect("listed")["status"]["phase"],
        "Failed"
    );
}

#[tokio::test]
async fn a_shell_with_stdin_and_a_tty_keeps_running_and_one_without_exits() {
    let ctx = TestCtx::new("tty");
    let mut shell = busybox("shell", &["sh"]);
    shell["stdin"] = json!(true);
    shell["tty"] = json!(true);
    ctx.write_json(
        "tty.json",
        &pod_json("tty", "Always", json!([shell]), json!({})),
    );
    ctx.write_json(
        "notty.json",
        &pod_json(
            "notty",
            "Never",
            json!([busybox("shell", &["sh"])]),
            json!({}),
        ),
    );
    let pv = Podvisor::spawn(&ctx, &[]);
    // Without stdin, sh reads end-of-file at once and exits 0.
    ctx.wait_pod(&pv, "notty", CONVERGE, "Succeeded", |p| {
        (p["status"]["phase"] == "Succeeded")
            .then_some(())
            .ok_or_else(|| "not yet".into())
    })
    .await;
    let pod = ctx.wait_pod_running(&pv, "tty").await;
    let id = docker_id(container_status(&pod, "shell").expect("shell"))
        .expect("an ID")
        .to_string();
    assert_eq!(
        inspect(
            &id,
            "{{.Config.Tty}} {{.Config.OpenStdin}} {{.Config.StdinOnce}}"
        ),
        "true true false"
    );
    // Still the same, unrestarted container a while later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let list = pv.pods().await.expect("pods");
    let shell = container_status(find_pod(&list, "tty").expect("tty listed"), "shell")
        .expect("shell")
        .clone();
    assert_eq!(shell["restartCount"], 0, "{shell}");
    assert_eq!(docker_id(&shell), Some(id.as_str()), "{shell}");
    assert!(shell["state"]["running"].is_object(), "{shell}");
}

#[tokio::test]
async fn pods_show_their_qos_class_and_the_nodes_address() {
    let ctx = TestCtx::new("qos");
    let mut guaranteed = busybox("app", SLEEP);
    guaranteed["resources"] = json!({"limits": {"cpu": "100m", "memory": "32Mi"}});
    let mut burstable = busybox("app", SLEEP);
    burstable["resources"] = json!({"requests": {"memory": "16Mi"}});
    for (name, c) in [
        ("guaranteed", guaranteed),
        ("burstable", burstable),
        ("besteffort", busybox("app", SLEEP)),
    ] {
        ctx.write_json(
            &format!("{name}.json"),
            &pod_json(name, "Always", json!([c]), json!({})),
        );
    }
    let pv = Podvisor::spawn(&ctx, &["--node-ip", "10.11.12.13"]);
    for (name, class) in [
        ("guaranteed", "Guaranteed"),
        ("burstable", "Burstable"),
        ("besteffort", "BestEffort"),
    ] {
        let pod = ctx.wait_pod_running(&pv, name).await;
        assert_eq!(
            pod["status"]["qosClass"], class,
            "{name}: {}",
            pod["status"]
        );
        assert_eq!(pod["status"]["hostIP"], "10.11.12.13", "{name}");
    }
}

#[tokio::test]
async fn a_sidecars_host_port_is_published() {
    let ctx = TestCtx::new("sidecarport");
    let host_port = free_port();
    let mut proxy = busybox(
        "proxy",
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo from-the-sidecar > /www/index.html && exec httpd -f -p 8080 -h /www",
        ],
    );
    proxy["restartPolicy"] = json!("Always");
    proxy["ports"] = json!([{"containerPort": 8080, "hostPort": host_port}]);
    let mut pod = pod_json(
        "sidecarport",
        "Always",
        json!([busybox("app", SLEEP)]),
        json!({}),
    );
    pod["spec"]["initContainers"] = json!([proxy]);
    ctx.write_json("sidecarport.json", &pod);
    let pv = Podvisor::spawn(&ctx, &[]);
    ctx.wait_pod_running(&pv, "sidecarport").await;
    let url = format!("http://127.0.0.1:{host_port}/");
    let body = ctx
        .wait_until(
            Duration::from_secs(15),
            "the sidecar's hostPort to answer",
            || async {
                let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
                r.text().await.map_err(|e| e.to_string())
            },
        )
        .await;
    assert_eq!(body.trim(), "from-the-sidecar");
}

#[tokio::test]
async fn fields_the_node_cannot_honour_are_refused_by_name_and_the_others_run() {
    let ctx = TestCtx::new("unsupported");
    let app = || json!([busybox("app", SLEEP)]);
    let cases = [
        (
            "windows",
            json!({"os": {"name": "windows"}}),
            "PodOSNotSupported",
            "spec.os.name",
        ),
        (
            "gvisor",
            json!({"runtimeClassName": "gvisor"}),
            "UnsupportedField",
            "spec.runtimeClassName",
        ),
        (
            "dra",
            json!({"resourceClaims": [{"name": "gpu", "resourceClaimName": "gpu-0"}]}),
            "UnsupportedField",
            "spec.resourceClaims",
        ),
    ];
    for (name, extra, ..) in &cases {
        ctx.write_json(
            &format!("{name}.json"),
            &pod_json(name, "Always", app(), extra.clone()),
        );
    }
    ctx.write_json(
        "linux.json",
        &pod_json("linux", "Always", app(), json!({"os": {"name": "linux"}})),
    );
    let pv = Podvisor::spawn(&ctx, &[]);
    ctx.wait_pod_running(&pv, "linux").await;
    for (name, _, reason, field) in cases {
        let message = ctx
            .wait_pod(&pv, name, CONVERGE, "refused", |p| {
                let s = &p["status"];
                (s["phase"] == "Failed" && s["reason"] == reason)
                    .then(|| s["message"].as_str().unwrap_or_default().to_string())
                    .ok_or_else(|| "not yet".to_string())
            })
            .await;
        assert!(message.contains(&format!("{field}: ")), "{name}: {message}");
        assert!(ctx.pod_containers(name).is_empty(), "{name} got containers");
        let events = pv.events("default", name).await.expect("events");
        assert!(
            events.iter().any(|e| e["reason"] == reason),
            "{name}: no {reason} event: {events:?}"
        );
    }
}

/// The engine's cgroup version (1 or 2).
fn cgroup_version() -> u8 {
    match docker(&["info", "--format", "{{.CgroupVersion}}"]).trim() {
        "2" => 2,
        _ => 1,
    }
}

#[tokio::test]
async fn pod_level_limits_are_held_by_a_pod_cgroup_around_every_container() {
    let ctx = TestCtx::new("podcgroup");
    ctx.write_json(
        "limited.json",
        &pod_json(
            "limited",
            "Always",
            json!([busybox("app", SLEEP)]),
            json!({"resources": {"limits": {"cpu": "500m", "memory": "64Mi"}}}),
        ),
    );
    let pv = Podvisor::spawn(&ctx, &[]);
    let pod = ctx.wait_pod_running(&pv, "limited").await;
    let uid = pod["metadata"]["uid"].as_str().expect("a uid").to_string();
    let parent = format!("/podvisor/pod{uid}");
    let containers = ctx.pod_containers("limited");
    assert_eq!(containers.len(), 2, "{}", show(&containers));
    for c in &containers {
        assert_eq!(
            inspect(&c.id, "{{.HostConfig.CgroupParent}}"),
            parent,
            "{}",
            c.name
        );
        // The container's processes are in the pod's cgroup.
        let pid = inspect(&c.id, "{{.State.Pid}}");
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("cgroup");
        assert!(
            cgroups.contains(&format!("{parent}/")),
            "{}: {cgroups}",
            c.name
        );
    }
    let root = std::path::Path::new("/sys/fs/cgroup");
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .trim()
            .to_string()
    };
    let dirs = match cgroup_version() {
        2 => {
            let dir = root.join(parent.trim_start_matches('/'));
            assert_eq!(read(dir.join("memory.max")), "67108864");
            assert_eq!(read(dir.join("cpu.max")), "50000 100000");
            vec![dir]
        }
        _ => {
            let mem = root.join("memory").join(parent.trim_start_matches('/'));
            let cpu = root.join("cpu").join(parent.trim_start_matches('/'));
            assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
            assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
            vec![mem, cpu]
        }
    };
    // Gone with the pod.
    ctx.remove_manifest("limited.json");
    ctx.wait_until(CONVERGE, "the pod cgroup removed", || async {
        let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
        left.is_empty()
            .then_some(())
            .ok_or_else(|| format!("{left:?}"))
    })
    .await;
}

#[tokio::test]
async fn the_pods_host_is_named_as_asked_fqdn_or_override() {
    let ctx = TestCtx::new("fqdn");
    ctx.write_json(
        "fqdn.json",
        &pod_json(
            "fqdn",
            "Always",
            json!([busybox("app", SLEEP)]),
            json!({"hostname": "h", "subdomain": "s", "setHostnameAsFQDN": true}),
        ),
    );
    ctx.write_json(
        "over.json",
        &pod_json(
            "over",
            "Always",
            json!([busybox("app", SLEEP)]),
            json!({"hostnameOverride": "chosen"}),
        ),
    );
    let pv = Podvisor::spawn(&ctx, &["--cluster-domain", "cluster.local"]);
    for (pod, want) in [
        ("fqdn", "h.s.default.svc.cluster.local"),
        ("over", "chosen"),
    ] {
        let p = ctx.wait_pod_running(&pv, pod).await;
        let id = docker_id(container_status(&p, "app").expect("app")).expect("an ID");
        assert_eq!(docker(&["exec", id, "hostname"]).trim(), want, "{pod}");
    }
}
