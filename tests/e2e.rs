//! End-to-end tests: `podvisor run` against a real Docker engine.
//!
//! They need the engine and the images of `scripts/ensure-env.sh` (`make test`
//! provides both) and fail, never skip, without them. Every test has its own
//! node name, so they run in parallel on one engine; each removes its
//! containers when it ends. See `e2e_support` for the harness.

#[allow(dead_code)] // each test binary uses a part of the shared harness
mod e2e_support;

use std::time::Duration;

use e2e_support::*;
use serde_json::Value;

/// Waits until `pod` shows a running `container` other than `old`.
async fn wait_replaced(ctx: &TestCtx, pod: &str, container: &str, old: &str) -> Ctr {
    let what = format!("a new running {container} container in pod {pod} (old {old})");
    ctx.wait_until(CONVERGE, &what, || async {
        let list = ctx.pod_containers(pod);
        list.iter()
            .find(|c| c.container() == container && c.running() && c.id != old)
            .cloned()
            .ok_or_else(|| show(&list))
    })
    .await
}

/// The pod's running container named `container` (`POD` for the infra one).
fn running(list: &[Ctr], container: &str) -> Ctr {
    let found: Vec<&Ctr> = list
        .iter()
        .filter(|c| c.container() == container && c.running())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one running {container} container:\n{}",
        show(list)
    );
    found[0].clone()
}

// --- 1. the pod's containers share the infra container's namespaces ---------

#[tokio::test]
async fn containers_share_the_infra_network_and_ipc() {
    let ctx = TestCtx::new("net");
    let server = "mkdir -p /w && echo hi > /w/index.html && exec httpd -f -p 8080 -h /w";
    ctx.write_manifest(
        "web.yaml",
        &pod_yaml(
            "web",
            "Always",
            &[("server", &["sh", "-c", server]), ("client", SLEEP)],
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "web").await;
    let uid = pod["metadata"]["uid"].as_str().expect("metadata.uid");

    let list = ctx.pod_containers("web");
    assert_eq!(list.len(), 3, "infra + 2 containers:\n{}", show(&list));
    let infra = running(&list, "POD");
    let server = running(&list, "server");
    let client = running(&list, "client");
    for (c, name) in [(&infra, "POD"), (&server, "server"), (&client, "client")] {
        assert_eq!(
            c.name,
            format!("k8s_{name}_web_default_{uid}_0"),
            "dockershim name"
        );
    }

    // Namespaces: apps join the infra container's network and IPC.
    let join = format!("container:{}", infra.id);
    for app in [&server, &client] {
        assert_eq!(inspect(&app.id, "{{.HostConfig.NetworkMode}}"), join);
        assert_eq!(inspect(&app.id, "{{.HostConfig.IpcMode}}"), join);
    }
    assert_eq!(inspect(&infra.id, "{{.HostConfig.IpcMode}}"), "shareable");

    // The client reaches the server on 127.0.0.1.
    let got = ctx
        .wait_until(
            Duration::from_secs(15),
            "the client to fetch \"hi\" from http://127.0.0.1:8080/",
            || async {
                match docker_try(&[
                    "exec",
                    &client.id,
                    "wget",
                    "-q",
                    "-O",
                    "-",
                    "http://127.0.0.1:8080/",
                ]) {
                    Ok(body) if body == "hi" => Ok(body),
                    Ok(body) => Err(format!("body {body:?}")),
                    Err(e) => Err(e),
                }
            },
        )
        .await;
    assert_eq!(got, "hi");

    // Labels: how a restarted podvisor finds the pod again.
    let infra_labels = labels(&infra.id);
    for (k, v) in [
        ("podvisor.io/node", ctx.node.as_str()),
        ("io.kubernetes.pod.name", "web"),
        ("io.kubernetes.pod.namespace", "default"),
        ("io.kubernetes.pod.uid", uid),
        ("io.kubernetes.docker.type", "podsandbox"),
    ] {
        assert_eq!(
            infra_labels.get(k).map(String::as_str),
            Some(v),
            "infra label {k}: {infra_labels:?}"
        );
    }
    for (app, name) in [(&server, "server"), (&client, "client")] {
        let l = labels(&app.id);
        for (k, v) in [
            ("podvisor.io/node", ctx.node.as_str()),
            ("io.kubernetes.pod.name", "web"),
            ("io.kubernetes.pod.namespace", "default"),
            ("io.kubernetes.pod.uid", uid),
            ("io.kubernetes.docker.type", "container"),
            ("io.kubernetes.container.name", name),
            ("io.kubernetes.container.restartCount", "0"),
            ("io.kubernetes.sandbox.id", infra.id.as_str()),
            ("io.kubernetes.pod.terminationGracePeriod", "1"),
        ] {
            assert_eq!(
                l.get(k).map(String::as_str),
                Some(v),
                "{name} label {k}: {l:?}"
            );
        }
        let hash = l.get("io.kubernetes.container.hash").cloned();
        assert!(
            hash.is_some_and(|h| h.len() == 16),
            "{name}: io.kubernetes.container.hash: {l:?}"
        );
    }
}

// --- 2. an edit replaces only the changed container -------------------------

fn edit_pod(version: &str) -> String {
    let mut y = pod_yaml("edit", "Always", &[("keep", SLEEP), ("change", SLEEP)]);
    y.push_str(&format!(
        "      env:\n        - name: VERSION\n          value: \"{version}\"\n"
    ));
    y
}

#[tokio::test]
async fn an_edit_replaces_only_the_changed_container() {
    let ctx = TestCtx::new("edit");
    ctx.write_manifest("edit.yaml", &edit_pod("1"));
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "edit").await;
    let before = ctx.pod_containers("edit");
    let infra = running(&before, "POD");
    let keep = running(&before, "keep");
    let change = running(&before, "change");

    ctx.write_manifest("edit.yaml", &edit_pod("2"));
    let new = wait_replaced(&ctx, "edit", "change", &change.id).await;
    let env = inspect(&new.id, "{{json .Config.Env}}");
    assert!(env.contains("VERSION=2"), "new container's env: {env}");
    assert_eq!(new.attempt(), Some(1), "attempt of {}", new.name);
    let l = labels(&new.id);
    assert_eq!(
        l.get("io.kubernetes.container.restartCount")
            .map(String::as_str),
        Some("1"),
        "{l:?}"
    );

    // /pods follows: the new ID with restartCount 1, `keep` untouched.
    let what = "/pods to show the replaced container";
    let pod = ctx
        .wait_until(CONVERGE, what, || async {
            let list = pv.pods().await?;
            let p = find_pod(&list, "edit").ok_or("no pod edit")?;
            let s = container_status(p, "change").ok_or("no status of change")?;
            match (docker_id(s), &s["restartCount"], &s["ready"]) {
                (Some(id), rc, Value::Bool(true)) if id == new.id && rc == 1 => Ok(p.clone()),
                _ => Err(format!("{s}")),
            }
        })
        .await;
    let k = container_status(&pod, "keep").expect("status of keep");
    assert_eq!(docker_id(k), Some(keep.id.as_str()), "{k}");
    assert_eq!(k["restartCount"], 0, "{k}");

    // Give it two more syncs: the rest of the pod stays as it was.
    tokio::time::sleep(2 * SYNC).await;
    let after = ctx.pod_containers("edit");
    assert_eq!(
        running(&after, "POD").id,
        infra.id,
        "infra container replaced"
    );
    assert_eq!(
        running(&after, "keep").id,
        keep.id,
        "unchanged container replaced"
    );
    assert_eq!(
        running(&after, "change").id,
        new.id,
        "changed container replaced again"
    );
    assert!(
        after.iter().all(|c| c.id != change.id || !c.running()),
        "the old container still runs:\n{}",
        show(&after)
    );
}

// --- 3. restart policy after a `docker kill` -------------------------------

#[tokio::test]
async fn a_killed_container_of_an_always_pod_is_restarted() {
    let ctx = TestCtx::new("always");
    ctx.write_manifest(
        "always.yaml",
        &pod_yaml("always", "Always", &[("app", SLEEP)]),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "always").await;
    let before = ctx.pod_containers("always");
    let infra = running(&before, "POD");
    let app = running(&before, "app");

    docker(&["kill", &app.id]);
    let new = wait_replaced(&ctx, "always", "app", &app.id).await;
    assert_eq!(new.attempt(), Some(1), "attempt of {}", new.name);
    assert_eq!(
        labels(&new.id)
            .get("io.kubernetes.container.restartCount")
            .map(String::as_str),
        Some("1")
    );
    let what = "/pods to show app restarted once";
    ctx.wait_until(CONVERGE, what, || async {
        let list = pv.pods().await?;
        let p = find_pod(&list, "always").ok_or("no pod always")?;
        let s = container_status(p, "app").ok_or("no status of app")?;
        let ok = docker_id(s) == Some(new.id.as_str())
            && s["restartCount"] == 1
            && s["ready"] == true
            && p["status"]["phase"] == "Running";
        ok.then_some(()).ok_or_else(|| p["status"].to_string())
    })
    .await;
    let after = ctx.pod_containers("always");
    assert_eq!(
        running(&after, "POD").id,
        infra.id,
        "infra container replaced"
    );
}

#[tokio::test]
async fn a_killed_container_of_a_never_pod_stays_dead() {
    let ctx = TestCtx::new("never");
    ctx.write_manifest("never.yaml", &pod_yaml("never", "Never", &[("app", SLEEP)]));
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "never").await;
    let app = running(&ctx.pod_containers("never"), "app");

    docker(&["kill", &app.id]);
    let failed = |list: &Value| -> Result<(), String> {
        let p = find_pod(list, "never").ok_or("no pod never")?;
        let s = container_status(p, "app").ok_or("no status of app")?;
        let ok = p["status"]["phase"] == "Failed"
            && s["state"]["terminated"]["exitCode"] == 137
            && s["restartCount"] == 0
            && docker_id(s) == Some(app.id.as_str());
        ok.then_some(()).ok_or_else(|| p["status"].to_string())
    };
    ctx.wait_until(
        CONVERGE,
        "/pods to show the pod Failed, exit code 137",
        || async { failed(&pv.pods().await?) },
    )
    .await;

    // A few sync periods later: still dead, nothing new.
    tokio::time::sleep(4 * SYNC).await;
    let apps: Vec<Ctr> = ctx
        .pod_containers("never")
        .into_iter()
        .filter(|c| c.container() == "app")
        .collect();
    assert_eq!(apps.len(), 1, "app containers:\n{}", show(&apps));
    assert_eq!(apps[0].id, app.id);
    assert_eq!(apps[0].state, "exited");
    let list = pv.pods().await.expect("/pods");
    if let Err(seen) = failed(&list) {
        panic!("the pod no longer shows Failed/137: {seen}");
    }
}

// --- 4. a podvisor restart adopts what runs --------------------------------

async fn restart_keeps_every_container(tag: &str, sigkill: bool) {
    let ctx = TestCtx::new(tag);
    ctx.write_manifest(
        "keeper.yaml",
        &pod_yaml("keeper", "Always", &[("one", SLEEP), ("two", SLEEP)]),
    );
    ctx.write_manifest("solo.yaml", &pod_yaml("solo", "Never", &[("app", SLEEP)]));
    let mut pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "keeper").await;
    ctx.wait_pod_running(&pv, "solo").await;
    let before = ctx.containers();
    assert_eq!(before.len(), 5, "2 pods, 5 containers:\n{}", show(&before));
    assert!(before.iter().all(Ctr::running), "{}", show(&before));

    let status = if sigkill { pv.kill9() } else { pv.stop() };
    if !sigkill {
        assert!(
            status.success(),
            "podvisor exit on SIGTERM: {status}\n{}",
            ctx.log_tail()
        );
    }
    let left = ctx.containers();
    assert_eq!(left, before, "podvisor's exit changed the containers");

    let pv = Podvisor::start(&ctx).await;
    let keeper = ctx.wait_pod_running(&pv, "keeper").await;
    let solo = ctx.wait_pod_running(&pv, "solo").await;
    // Two more syncs and relists, in which orphan removal runs too.
    tokio::time::sleep(2 * SYNC).await;
    let after = ctx.containers();
    assert_eq!(
        after,
        before,
        "the restarted podvisor replaced containers\nbefore:\n{}\nafter:\n{}\n{}",
        show(&before),
        show(&after),
        ctx.log_tail()
    );
    for (pod, name) in [(&keeper, "one"), (&keeper, "two"), (&solo, "app")] {
        let s = container_status(pod, name).expect("status");
        let id = docker_id(s).expect("containerID");
        assert!(
            before.iter().any(|c| c.id == id),
            "{name}: {id} not adopted"
        );
        assert_eq!(s["restartCount"], 0, "{s}");
    }
}

#[tokio::test]
async fn a_restart_after_sigterm_keeps_every_container() {
    restart_keeps_every_container("term", false).await;
}

#[tokio::test]
async fn a_restart_after_sigkill_keeps_every_container() {
    restart_keeps_every_container("kill", true).await;
}

// --- 5. removing the file removes the pod -----------------------------------

#[tokio::test]
async fn removing_the_manifest_removes_the_pod() {
    let ctx = TestCtx::new("remove");
    ctx.write_manifest(
        "gone.yaml",
        &pod_yaml("gone", "Always", &[("a", SLEEP), ("b", SLEEP)]),
    );
    ctx.write_manifest("stay.yaml", &pod_yaml("stay", "Always", &[("app", SLEEP)]));
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "gone").await;
    ctx.wait_pod_running(&pv, "stay").await;
    let stay = ctx.pod_containers("stay");

    ctx.remove_manifest("gone.yaml");
    ctx.wait_until(
        CONVERGE,
        "every container of pod gone to be removed",
        || async {
            let left = ctx.pod_containers("gone");
            left.is_empty().then_some(()).ok_or_else(|| show(&left))
        },
    )
    .await;
    ctx.wait_until(CONVERGE, "/pods to list only stay", || async {
        let names = pod_names(&pv.pods().await?);
        (names == ["stay"])
            .then_some(())
            .ok_or(format!("{names:?}"))
    })
    .await;
    assert_eq!(ctx.pod_containers("stay"), stay, "the other pod changed");
}

// --- 6. the API -------------------------------------------------------------

#[tokio::test]
async fn pods_and_healthz_answer() {
    let ctx = TestCtx::new("api");
    ctx.write_manifest("api.yaml", &pod_yaml("api", "Always", &[("app", SLEEP)]));
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "api").await;

    let (code, body) = pv.get("/healthz").await.expect("/healthz");
    assert_eq!(code, 200, "{body}");
    assert!(
        body.to_lowercase().contains("docker"),
        "healthz body: {body}"
    );

    let list = pv.pods().await.expect("/pods");
    assert_eq!(list["kind"], "PodList", "{list}");
    assert_eq!(list["apiVersion"], "v1", "{list}");
    assert_eq!(pod_names(&list), ["api"], "{list}");
    let pod = find_pod(&list, "api").unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["namespace"], "default");
    assert_eq!(pod["status"]["phase"], "Running", "{pod}");

    let containers = ctx.pod_containers("api");
    let infra = running(&containers, "POD");
    let app = running(&containers, "app");
    let s = container_status(pod, "app").expect("status of app");
    assert_eq!(s["containerID"], format!("docker://{}", app.id), "{s}");
    assert_eq!(s["ready"], true, "{s}");
    assert_eq!(s["restartCount"], 0, "{s}");
    assert_eq!(s["image"], env().busybox_image.as_str(), "{s}");
    assert!(s["state"]["running"]["startedAt"].is_string(), "{s}");

    let ip = inspect(
        &infra.id,
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    assert!(!ip.is_empty(), "the infra container has no IP");
    assert_eq!(pod["status"]["podIP"], ip.as_str(), "{}", pod["status"]);
    // The node's address (its default route's, without --node-ip): one
    // of this machine's.
    let host_ip: std::net::IpAddr = pod["status"]["hostIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no hostIP: {}", pod["status"]));
    assert!(
        std::net::UdpSocket::bind((host_ip, 0)).is_ok(),
        "hostIP {host_ip} is not an address of this machine"
    );
    let ready = pod["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    assert_eq!(
        ready.map(|c| &c["status"]),
        Some(&Value::from("True")),
        "{}",
        pod["status"]
    );
}

#[tokio::test]
async fn healthz_reports_a_dead_engine_and_podvisor_keeps_running() {
    let ctx = TestCtx::new("dead");
    ctx.write_manifest("lost.yaml", &pod_yaml("lost", "Always", &[("app", SLEEP)]));
    let mut pv = Podvisor::spawn(&ctx, &["--docker-endpoint", "unix:///nonexistent.sock"]);
    pv.wait_answering(&ctx, None).await;

    let (code, body) = pv.get("/healthz").await.expect("/healthz");
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("/nonexistent.sock"),
        "healthz names no reason: {body}"
    );

    // Several sync periods later it still runs and answers.
    tokio::time::sleep(3 * SYNC).await;
    assert_eq!(pv.exited(), None, "podvisor exited\n{}", ctx.log_tail());
    let (code, body) = pv.get("/healthz").await.expect("/healthz");
    assert_eq!(code, 503, "{body}");
    let list = pv.pods().await.expect("/pods");
    let pod = find_pod(&list, "lost").unwrap_or_else(|| panic!("pod lost not listed: {list}"));
    assert_eq!(pod["status"]["phase"], "Pending", "{pod}");
    assert!(ctx.containers().is_empty());
    let status = pv.stop();
    assert!(
        status.success(),
        "exit on SIGTERM: {status}\n{}",
        ctx.log_tail()
    );
}

// --- 7. bad input -----------------------------------------------------------

#[tokio::test]
async fn bad_manifests_are_reported_and_the_good_pod_runs() {
    let ctx = TestCtx::new("badfile");
    let image = &env().busybox_image;
    ctx.write_manifest("good.yaml", &pod_yaml("good", "Always", &[("app", SLEEP)]));
    ctx.write_manifest(
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: broken\nspec: [\n",
    );
    ctx.write_manifest(
        "deploy.yaml",
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: deploy\nspec:\n  \
             containers:\n    - name: app\n      image: {image}\n"
        ),
    );
    ctx.write_manifest(
        "noimage.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: noimage\nspec:\n  containers:\n    \
         - name: app\n      command: [\"sleep\", \"3600\"]\n",
    );
    ctx.write_manifest(
        "dup.yaml",
        &pod_yaml("dup", "Always", &[("app", SLEEP), ("app", SLEEP)]),
    );
    let mut pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "good").await;

    // Each bad file is named in the log, with the field where there is one.
    let expect = [
        ("broken.yaml", None),
        ("deploy.yaml", Some("Deployment")),
        ("noimage.yaml", Some("spec.containers[0].image")),
        ("dup.yaml", Some("spec.containers[1].name")),
    ];
    for (file, field) in expect {
        let path = ctx.manifest_path(file);
        let what = format!("a log line naming {path} (and {field:?})");
        ctx.wait_until(Duration::from_secs(5), &what, || async {
            let log = ctx.all_logs();
            log.lines()
                .find(|l| l.contains(&path) && field.is_none_or(|f| l.contains(f)))
                .map(|_| ())
                .ok_or_else(|| "no such line".to_string())
        })
        .await;
    }
    assert_eq!(pv.exited(), None, "podvisor exited\n{}", ctx.log_tail());
    let list = pv.pods().await.expect("/pods");
    assert_eq!(pod_names(&list), ["good"], "{list}");
    let containers = ctx.containers();
    assert!(
        containers
            .iter()
            .all(|c| c.k8s_name().is_some_and(|n| n.pod == "good")),
        "containers of bad pods:\n{}",
        show(&containers)
    );
}

#[tokio::test]
async fn bad_flags_stop_podvisor_before_it_starts() {
    let ctx = TestCtx::new("badflag");
    let missing = ctx.path().join("no-such-dir").display().to_string();
    let missing_flag = format!("--pod-manifest-path={missing}");
    let cases: [(&str, &str, &str); 4] = [
        ("--registry-qps=-1", "--registry-qps", "\"-1\""),
        ("--sync-frequency=ten", "--sync-frequency", "\"ten\""),
        (
            "--docker-exec-handler=bogus",
            "--docker-exec-handler",
            "\"bogus\"",
        ),
        (
            missing_flag.as_str(),
            "--pod-manifest-path",
            missing.as_str(),
        ),
    ];
    for (arg, flag, value) in cases {
        let (code, stderr) = run_expecting_exit(&ctx, &[arg]);
        assert_eq!(
            code,
            Some(2),
            "podvisor run {arg}: exit code; stderr:\n{stderr}"
        );
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "podvisor run {arg}: the message should name {flag} and {value}:\n{stderr}"
        );
        assert!(
            !stderr.contains("podvisor running"),
            "podvisor run {arg} started:\n{stderr}"
        );
    }
    assert!(ctx.containers().is_empty());
}

// --- 8. orphans -------------------------------------------------------------

fn run_ghost(node: &str, uid: &str) -> String {
    let name = format!("k8s_c_ghost_default_{uid}_0");
    let labels = [
        format!("podvisor.io/node={node}"),
        format!("io.kubernetes.pod.uid={uid}"),
        "io.kubernetes.pod.name=ghost".into(),
        "io.kubernetes.pod.namespace=default".into(),
        "io.kubernetes.docker.type=container".into(),
        "io.kubernetes.container.name=c".into(),
        // Stopped in 1 s instead of the default 30 s.
        "io.kubernetes.pod.terminationGracePeriod=1".into(),
    ];
    let mut args = vec!["run", "-d", "--name", &name];
    for l in &labels {
        args.extend(["--label", l.as_str()]);
    }
    args.extend([env().busybox_image.as_str(), "sleep", "600"]);
    docker(&args)
}

#[tokio::test]
async fn orphans_are_removed_and_other_nodes_left_alone() {
    let ctx = TestCtx::new("orphan");
    let other = format!("e2e-other-{}", random_suffix());
    ctx.clean_up_node(&other);
    let orphan = run_ghost(&ctx.node, &format!("orphan-{}", random_suffix()));
    let foreign = run_ghost(&other, &format!("foreign-{}", random_suffix()));
    ctx.write_manifest("real.yaml", &pod_yaml("real", "Always", &[("app", SLEEP)]));

    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "real").await;
    ctx.wait_until(CONVERGE, "the orphan to be removed", || async {
        (!exists(&orphan)).then_some(()).ok_or_else(|| {
            docker_try(&["inspect", "-f", "{{.Name}} {{.State.Status}}", &orphan])
                .unwrap_or_else(|e| e)
        })
    })
    .await;
    // Two more relists: the other node's container stays as it was.
    tokio::time::sleep(2 * SYNC).await;
    assert_eq!(
        inspect(&foreign, "{{.State.Status}}"),
        "running",
        "another node's container was touched\n{}",
        ctx.log_tail()
    );
    assert_eq!(pod_names(&pv.pods().await.expect("/pods")), ["real"]);
}

// --- 9. logs ----------------------------------------------------------------

/// With `--log-format json`, every line a pod's worker logs during a sync
/// carries the sync's span: the pod, its UID and what started the sync.
#[tokio::test]
async fn json_log_lines_of_a_sync_carry_the_pod_its_uid_and_the_trigger() {
    let ctx = TestCtx::new("spans");
    ctx.write_manifest("web.yaml", &pod_yaml("web", "Always", &[("app", SLEEP)]));
    let mut pv = Podvisor::spawn(&ctx, &["--log-format", "json"]);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "web").await;
    let uid = pod["metadata"]["uid"].as_str().expect("metadata.uid");

    let lines: Vec<Value> = ctx
        .all_logs()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let worker: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("podvisor::actors::pod_worker"))
        })
        .collect();
    assert!(
        !worker.is_empty(),
        "the worker logged nothing:\n{}",
        ctx.log_tail()
    );
    for l in &worker {
        let span = &l["span"];
        assert_eq!(span["name"], "sync", "{l}");
        assert_eq!(span["uid"], uid, "{l}");
        assert_eq!(span["pod"], "default/web", "{l}");
        assert!(span["trigger"].is_string(), "{l}");
    }
    // A pod's first sync ran because its worker started.
    assert!(
        worker.iter().any(|l| l["span"]["trigger"] == "start"),
        "no sync with trigger=start:\n{}",
        ctx.log_tail()
    );
}

/// A log that goes to a file (not a terminal) has no colour codes.
#[tokio::test]
async fn plain_logs_to_a_file_carry_no_colour_codes() {
    let ctx = TestCtx::new("nocolour");
    ctx.write_manifest("web.yaml", &pod_yaml("web", "Always", &[("app", SLEEP)]));
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "web").await;
    let logs = ctx.all_logs();
    assert!(logs.contains("container started"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "escape codes in the log:\n{logs}");
}
