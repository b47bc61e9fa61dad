//! End-to-end tests of issue 6, event-driven and crash-safe, on the real
//! engine:
//!
//! 1. repeated SIGKILLs of podvisor while 20 pods converge: one set of
//!    containers per pod in the end, nothing healthy restarted;
//! 2. a `docker kill`ed container is replaced through the event stream
//!    (well under a second with `--sync-frequency=60s`);
//! 3. a new manifest is acted on at once through inotify
//!    (`--file-check-frequency=60s`);
//! 4. a broken edit keeps the pod on its last good spec;
//! 5. a pod declared in two files belongs to the first file seen;
//! 6. the engine stopped and started under a running podvisor (a second,
//!    private dockerd of this test, so the shared engine stays up), and
//!    its events followed again once it is back;
//! 7. `--manifest-url` served by the test: headers, ETags, updates, errors.
//!
//! Latencies are printed (`--nocapture` shows them).

#[allow(dead_code)]
mod e2e_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE_LABEL: &str = "podvisor.io/node";
/// How often latency measurements look.
const FAST_POLL: Duration = Duration::from_millis(20);

// --- docker on any engine ----------------------------------------------------

/// A container of the node with the infra container it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    ctr: Ctr,
    /// `io.kubernetes.sandbox.id` (empty for infra containers).
    sandbox: String,
}

impl Row {
    fn pod(&self) -> String {
        self.ctr.k8s_name().map(|n| n.pod).unwrap_or_default()
    }
}

/// Every container of `node` on the engine at `host`.
fn rows_on(host: &str, node: &str) -> Result<Vec<Row>, String> {
    let filter = format!("label={NODE_LABEL}={node}");
    let format = "{{.ID}}\t{{.Names}}\t{{.State}}\t{{.Label \"io.kubernetes.sandbox.id\"}}";
    let out = docker_on(
        host,
        &[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            format,
        ],
    )?;
    let mut rows: Vec<Row> = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let mut next = || f.next().unwrap_or_default().trim().to_string();
            let ctr = Ctr {
                id: next(),
                name: next(),
                state: next(),
            };
            Row {
                ctr,
                sandbox: next(),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.ctr.name.cmp(&b.ctr.name));
    Ok(rows)
}

fn show_rows(rows: &[Row]) -> String {
    show(&rows.iter().map(|r| r.ctr.clone()).collect::<Vec<_>>())
}

/// Checks that the node converged to `want` (pod → its containers): `/pods`
/// lists exactly these pods, each Running and ready with the IDs of running
/// containers; the engine runs exactly one infra container per pod and one
/// container per spec container, each in that infra container; nothing
/// else of the node runs, and nothing is left created but never started.
fn check_converged(
    list: &Value,
    rows: &[Row],
    want: &BTreeMap<String, Vec<String>>,
) -> Result<(), String> {
    let mut problems = Vec::new();
    let listed: BTreeSet<String> = pod_names(list).into_iter().collect();
    let wanted: BTreeSet<String> = want.keys().cloned().collect();
    if listed != wanted {
        problems.push(format!(
            "/pods lists {} pods; missing {:?}, extra {:?}",
            listed.len(),
            wanted.difference(&listed).collect::<Vec<_>>(),
            listed.difference(&wanted).collect::<Vec<_>>()
        ));
    }
    for r in rows {
        if r.ctr.state == "created" {
            problems.push(format!("{} was created but never started", r.ctr.name));
        }
        let Some(n) = r.ctr.k8s_name() else {
            problems.push(format!("{} has no dockershim name", r.ctr.name));
            continue;
        };
        let desired = want
            .get(&n.pod)
            .is_some_and(|cs| n.container == "POD" || cs.contains(&n.container));
        if r.ctr.running() && !desired {
            problems.push(format!("{} runs but is not desired", r.ctr.name));
        }
    }
    for (pod, containers) in want {
        let running: Vec<&Row> = rows
            .iter()
            .filter(|r| r.ctr.running() && r.pod() == *pod)
            .collect();
        let infra: Vec<&&Row> = running
            .iter()
            .filter(|r| r.ctr.container() == "POD")
            .collect();
        if infra.len() != 1 {
            problems.push(format!(
                "pod {pod}: {} running infra containers",
                infra.len()
            ));
            continue;
        }
        let infra = infra[0];
        let p = find_pod(list, pod);
        if let Some(p) = p {
            let phase = p["status"]["phase"].as_str().unwrap_or_default();
            if phase != "Running" {
                problems.push(format!("pod {pod}: phase {phase} in /pods"));
            }
        }
        for c in containers {
            let runs: Vec<&&Row> = running.iter().filter(|r| r.ctr.container() == *c).collect();
            if runs.len() != 1 {
                problems.push(format!(
                    "pod {pod}: {} running {c} containers: {:?}",
                    runs.len(),
                    runs.iter().map(|r| &r.ctr.name).collect::<Vec<_>>()
                ));
                continue;
            }
            if runs[0].sandbox != infra.ctr.id {
                problems.push(format!(
                    "pod {pod}: {} joined {} rather than the running infra container {}",
                    runs[0].ctr.name, runs[0].sandbox, infra.ctr.id
                ));
            }
            let Some(p) = p else { continue };
            match container_status(p, c) {
                None => problems.push(format!("pod {pod}: no status of {c} in /pods")),
                Some(s) => {
                    if docker_id(s) != Some(runs[0].ctr.id.as_str()) || s["ready"] != true {
                        problems.push(format!(
                            "pod {pod}: /pods shows {c} as {s}, the engine runs {}",
                            runs[0].ctr.id
                        ));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let n = problems.len();
    problems.truncate(15);
    Err(format!(
        "{n} problems:\n  {}\ncontainers:\n{}",
        problems.join("\n  "),
        show_rows(rows)
    ))
}

/// Polls `probe` every [`FAST_POLL`] until it gives `Some`; the value and
/// the time since `start`, or `None` after `timeout`.
async fn measure<T, F, Fut>(
    start: Instant,
    timeout: Duration,
    mut probe: F,
) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    loop {
        if let Some(v) = probe().await {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() >= timeout {
            return None;
        }
        tokio::time::sleep(FAST_POLL).await;
    }
}

/// Checks `check` every 250 ms for `period`; panics with the first failure.
async fn holds_for<F, Fut>(ctx: &TestCtx, period: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        if let Err(e) = check().await {
            panic!(
                "after {:?}, no longer true: {what}\n{e}\n{}",
                start.elapsed(),
                ctx.failure_report()
            );
        }
        if start.elapsed() >= period {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `pod_yaml` with `env` on its last container.
fn pod_with_env(name: &str, containers: &[(&str, &[&str])], env: &[(&str, &str)]) -> String {
    let mut y = pod_yaml(name, "Always", containers);
    y.push_str("      env:\n");
    for (k, v) in env {
        y.push_str(&format!("        - name: {k}\n          value: \"{v}\"\n"));
    }
    y
}

/// The running containers of a pod on the shared engine, by container name.
fn running_by_name(ctx: &TestCtx, pod: &str) -> BTreeMap<String, String> {
    ctx.pod_containers(pod)
        .into_iter()
        .filter(Ctr::running)
        .map(|c| (c.container(), c.id))
        .collect()
}

/// Waits for a running `container` of `pod` whose environment has `var`
/// (`NAME=value`).
async fn wait_env(ctx: &TestCtx, pod: &str, container: &str, var: &str) -> Ctr {
    let what = format!("a running {container} container of pod {pod} with {var}");
    ctx.wait_until(CONVERGE, &what, || async {
        let list = ctx.pod_containers(pod);
        for c in list
            .iter()
            .filter(|c| c.container() == container && c.running())
        {
            if docker_try(&["inspect", "-f", "{{json .Config.Env}}", &c.id])
                .is_ok_and(|e| e.contains(&format!("\"{var}\"")))
            {
                return Ok(c.clone());
            }
        }
        Err(show(&list))
    })
    .await
}

/// The pod's containers (IDs and states) are exactly `before`.
fn unchanged(ctx: &TestCtx, pod: &str, before: &[Ctr]) -> Result<(), String> {
    let now = ctx.pod_containers(pod);
    if now == before && now.iter().all(Ctr::running) {
        Ok(())
    } else {
        Err(format!("before:\n{}\nnow:\n{}", show(before), show(&now)))
    }
}

/// Waits for a log line containing every one of `parts`; returns it.
async fn wait_log_line(ctx: &TestCtx, what: &str, parts: &[&str]) -> String {
    ctx.wait_until(Duration::from_secs(10), what, || async {
        ctx.all_logs()
            .lines()
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .map(str::to_string)
            .ok_or_else(|| format!("no line with all of {parts:?}"))
    })
    .await
}

// --- 1. kill -9 during convergence --------------------------------------------

#[tokio::test]
async fn repeated_sigkill_during_convergence_ends_in_one_set_per_pod() {
    let ctx = TestCtx::new("crash");
    let host = env().docker_host.clone();
    let mut want: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for i in 0..20 {
        let name = format!("p{i:02}");
        let containers: &[(&str, &[&str])] = if i % 2 == 0 {
            &[("a", SLEEP), ("b", SLEEP)]
        } else {
            &[("a", SLEEP)]
        };
        ctx.write_manifest(
            &format!("{name}.yaml"),
            &pod_yaml(&name, "Always", containers),
        );
        want.insert(name, containers.iter().map(|c| c.0.to_string()).collect());
    }
    let total: usize = want.values().map(|c| c.len() + 1).sum();

    // SIGKILL at varied points of convergence, restarting each time; the
    // last kill comes as soon as that podvisor started something (in the
    // middle of its work), or after 1.5 s when nothing is left to start.
    let kill_after_ms = [150u64, 250, 350, 450, 550, 700];
    let kills = kill_after_ms.len() + 1;
    let mut mid_convergence = 0;
    let mut survivors: Vec<Ctr> = Vec::new();
    for i in 0..kills {
        let last = i + 1 == kills;
        let spawned = Instant::now();
        let mut pv = Podvisor::spawn(&ctx, &[]);
        match kill_after_ms.get(i) {
            Some(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
            None => {
                let running = |rows: &[Row]| rows.iter().filter(|r| r.ctr.running()).count();
                let before = running(&rows_on(&host, &ctx.node).expect("list"));
                let deadline = Duration::from_millis(1500);
                measure(spawned, deadline, || async {
                    let now = running(&rows_on(&host, &ctx.node).ok()?);
                    (now > before).then_some(())
                })
                .await;
            }
        }
        if let Some(exit) = pv.exited() {
            panic!(
                "podvisor exited ({exit}) before kill {}\n{}",
                i + 1,
                ctx.failure_report()
            );
        }
        let rows = rows_on(&host, &ctx.node).expect("list the node's containers");
        let running = rows.iter().filter(|r| r.ctr.running()).count();
        let created = rows.iter().filter(|r| r.ctr.state == "created").count();
        println!(
            "kill -9 #{} after {:?}: {} containers, {running} running, {created} created only",
            i + 1,
            spawned.elapsed(),
            rows.len()
        );
        if running > 0 && running < total {
            mid_convergence += 1;
        }
        if last {
            survivors = rows
                .into_iter()
                .filter(|r| r.ctr.running())
                .map(|r| r.ctr)
                .collect();
        }
        pv.kill9();
    }
    assert!(
        mid_convergence > 0,
        "no kill landed while the pods were half started ({total} containers wanted)"
    );

    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    let start = Instant::now();
    let what = format!("the 20 pods to converge after {kills} kills");
    ctx.wait_until(Duration::from_secs(90), &what, || async {
        let list = pv.pods().await?;
        let rows = rows_on(&host, &ctx.node)?;
        check_converged(&list, &rows, &want)
    })
    .await;
    println!("converged {:?} after the last restart", start.elapsed());

    // What ran before the last kill still runs: nothing healthy restarted.
    let rows = rows_on(&host, &ctx.node).expect("list");
    let lost: Vec<&Ctr> = survivors
        .iter()
        .filter(|s| !rows.iter().any(|r| r.ctr.id == s.id && r.ctr.running()))
        .collect();
    assert!(
        lost.is_empty(),
        "containers running before the last kill were replaced:\n{}\nnow:\n{}\n{}",
        show(&lost.into_iter().cloned().collect::<Vec<_>>()),
        show_rows(&rows),
        ctx.failure_report()
    );

    // Distinct UIDs, and two more relists change nothing.
    let list = pv.pods().await.expect("/pods");
    let uids: BTreeSet<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|p| p["metadata"]["uid"].as_str())
        .collect();
    assert_eq!(uids.len(), 20, "pod UIDs: {uids:?}");
    holds_for(
        &ctx,
        2 * SYNC + Duration::from_millis(500),
        "the converged containers stay as they are",
        || {
            let rows = rows.clone();
            let host = host.clone();
            let node = ctx.node.clone();
            async move {
                let now = rows_on(&host, &node)?;
                if now == rows {
                    Ok(())
                } else {
                    Err(format!(
                        "before:\n{}\nnow:\n{}",
                        show_rows(&rows),
                        show_rows(&now)
                    ))
                }
            }
        },
    )
    .await;
}

// --- 2. an engine event brings a replacement at once --------------------------

#[tokio::test]
async fn a_killed_container_is_replaced_through_the_event_stream() {
    let ctx = TestCtx::new("event");
    ctx.write_manifest("ev.yaml", &pod_yaml("ev", "Always", &[("app", SLEEP)]));
    // The relist is a minute away: only an engine event can be quick.
    let mut pv = Podvisor::spawn(&ctx, &["--sync-frequency=60s"]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "ev").await;
    let before = running_by_name(&ctx, "ev");
    let old = before["app"].clone();
    let infra = before["POD"].clone();

    let start = Instant::now();
    docker(&["kill", &old]);
    let found = measure(start, Duration::from_secs(10), || async {
        ctx.pod_containers("ev")
            .into_iter()
            .find(|c| c.container() == "app" && c.running() && c.id != old)
    })
    .await;
    let Some((new, took)) = found else {
        panic!(
            "no replacement of {old} within 10 s\n{}",
            ctx.failure_report()
        );
    };
    println!(
        "event path: killed container replaced after {took:?} ({})",
        new.name
    );
    assert!(
        took < Duration::from_secs(1),
        "the replacement took {took:?} (want < 1 s)\n{}",
        ctx.failure_report()
    );
    assert_eq!(new.attempt(), Some(1), "{}", new.name);
    let now = running_by_name(&ctx, "ev");
    assert_eq!(now.get("POD"), Some(&infra), "the infra container changed");
    let pod = ctx.wait_pod_running(&pv, "ev").await;
    let s = container_status(&pod, "app").expect("status of app");
    assert_eq!(docker_id(s), Some(new.id.as_str()), "{s}");
    assert_eq!(s["restartCount"], 1, "{s}");
}

// --- 3. a new file is seen at once -----------------------------------------------

#[tokio::test]
async fn a_new_manifest_is_acted_on_without_waiting_for_the_rescan() {
    let ctx = TestCtx::new("inotify");
    ctx.write_manifest(
        "first.yaml",
        &pod_yaml("first", "Always", &[("app", SLEEP)]),
    );
    let mut pv = Podvisor::spawn(
        &ctx,
        &["--file-check-frequency=60s", "--sync-frequency=60s"],
    );
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "first").await;

    let start = Instant::now();
    ctx.write_manifest("late.yaml", &pod_yaml("late", "Always", &[("app", SLEEP)]));
    let found = measure(start, Duration::from_secs(10), || async {
        ctx.pod_containers("late").into_iter().next()
    })
    .await;
    let Some((first, took)) = found else {
        panic!(
            "nothing of late.yaml created within 10 s\n{}",
            ctx.failure_report()
        );
    };
    println!(
        "inotify path: first container of a new file after {took:?} ({})",
        first.name
    );
    assert!(
        took < Duration::from_secs(2),
        "the new file was acted on after {took:?} (want < 2 s)\n{}",
        ctx.failure_report()
    );
    ctx.wait_pod_running(&pv, "late").await;

    // Its removal is seen at once too.
    let start = Instant::now();
    ctx.remove_manifest("late.yaml");
    let gone = measure(start, Duration::from_secs(10), || async {
        let list = pv.pods().await.ok()?;
        (pod_names(&list) == ["first"]).then_some(())
    })
    .await;
    let Some(((), took)) = gone else {
        panic!(
            "late still in /pods 10 s after its file went\n{}",
            ctx.failure_report()
        );
    };
    println!("inotify path: a removed file's pod left /pods after {took:?}");
    assert!(took < Duration::from_secs(2), "removal took {took:?}");
    ctx.wait_until(CONVERGE, "the containers of late to go", || async {
        let left = ctx.pod_containers("late");
        left.is_empty().then_some(()).ok_or_else(|| show(&left))
    })
    .await;
}

// --- 4. a broken edit keeps the last good spec -----------------------------------

#[tokio::test]
async fn a_broken_edit_keeps_the_pod_on_its_last_good_spec() {
    let ctx = TestCtx::new("broken");
    let good = |v: &str| pod_with_env("keep", &[("app", SLEEP)], &[("V", v)]);
    ctx.write_manifest("keep.yaml", &good("1"));
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "keep").await;
    let before = ctx.pod_containers("keep");
    assert_eq!(before.len(), 2, "{}", show(&before));

    ctx.write_manifest(
        "keep.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: keep\nspec: [\n",
    );
    let path = ctx.manifest_path("keep.yaml");
    let line = wait_log_line(&ctx, "an error naming the broken file", &["ERROR", &path]).await;
    println!("log: {line}");
    let message = ctx
        .wait_pod(
            &pv,
            "keep",
            Duration::from_secs(10),
            "the last good spec message",
            |p| {
                let m = p["status"]["message"].as_str().unwrap_or_default();
                (m.contains("running on the last good spec") && m.contains(&path))
                    .then(|| m.to_string())
                    .ok_or_else(|| format!("message {m:?}"))
            },
        )
        .await;
    println!("status message: {message}");
    holds_for(
        &ctx,
        Duration::from_secs(3),
        "the pod keeps running on its last good spec",
        || async {
            unchanged(&ctx, "keep", &before)?;
            let list = pv.pods().await?;
            let p = find_pod(&list, "keep").ok_or("keep is gone from /pods")?;
            match p["status"]["phase"].as_str() {
                Some("Running") => Ok(()),
                phase => Err(format!("phase {phase:?}")),
            }
        },
    )
    .await;
    assert_eq!(pv.exited(), None, "podvisor exited\n{}", ctx.log_tail());

    // Fixed with a changed spec: the pod is updated, the message goes.
    ctx.write_manifest("keep.yaml", &good("2"));
    let new = wait_env(&ctx, "keep", "app", "V=2").await;
    let old_app = before.iter().find(|c| c.container() == "app").unwrap();
    assert_ne!(new.id, old_app.id);
    ctx.wait_pod(&pv, "keep", CONVERGE, "running V=2 with no message", |p| {
        let s = container_status(p, "app").ok_or("no status of app")?;
        let m = &p["status"]["message"];
        let fine = docker_id(s) == Some(new.id.as_str())
            && s["ready"] == true
            && !m.as_str().unwrap_or_default().contains("last good spec");
        fine.then_some(())
            .ok_or_else(|| format!("app {s}, message {m}"))
    })
    .await;

    // Removed: the pod goes.
    ctx.remove_manifest("keep.yaml");
    ctx.wait_until(CONVERGE, "pod keep to go", || async {
        let left = ctx.pod_containers("keep");
        let names = pod_names(&pv.pods().await?);
        (left.is_empty() && names.is_empty())
            .then_some(())
            .ok_or_else(|| format!("/pods {names:?}\n{}", show(&left)))
    })
    .await;
}

// --- 5. the first file to declare a pod keeps it --------------------------------

#[tokio::test]
async fn a_duplicate_pod_is_refused_until_the_first_file_lets_go() {
    let ctx = TestCtx::new("dupname");
    let pod = |from: &str| pod_with_env("twice", &[("app", SLEEP)], &[("FROM", from)]);
    ctx.write_manifest("z.yaml", &pod("z"));
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "twice").await;
    let before = ctx.pod_containers("twice");
    let app = before
        .iter()
        .find(|c| c.container() == "app")
        .expect("app container")
        .clone();
    assert!(inspect(&app.id, "{{json .Config.Env}}").contains("\"FROM=z\""));

    ctx.write_manifest("a.yaml", &pod("a"));
    let (a, z) = (ctx.manifest_path("a.yaml"), ctx.manifest_path("z.yaml"));
    let line = wait_log_line(&ctx, "an error naming both files", &["ERROR", &a, &z]).await;
    println!("log: {line}");
    holds_for(
        &ctx,
        Duration::from_secs(3),
        "the pod of z.yaml keeps running",
        || async {
            unchanged(&ctx, "twice", &before)?;
            let list = pv.pods().await?;
            if pod_names(&list) != ["twice"] {
                return Err(format!("/pods lists {:?}", pod_names(&list)));
            }
            let p = find_pod(&list, "twice").ok_or("no pod")?;
            let env = p["spec"]["containers"][0]["env"].to_string();
            env.contains("\"z\"")
                .then_some(())
                .ok_or_else(|| format!("/pods shows the spec env {env}"))
        },
    )
    .await;

    // z.yaml goes: a.yaml's pod takes over.
    ctx.remove_manifest("z.yaml");
    let new = wait_env(&ctx, "twice", "app", "FROM=a").await;
    assert_ne!(new.id, app.id);
    ctx.wait_until(
        CONVERGE,
        "one app container running, from a.yaml",
        || async {
            let list = ctx.pod_containers("twice");
            let running: Vec<&Ctr> = list
                .iter()
                .filter(|c| c.running() && c.container() == "app")
                .collect();
            (running.len() == 1 && running[0].id == new.id)
                .then_some(())
                .ok_or_else(|| show(&list))
        },
    )
    .await;
    let pod = ctx.wait_pod_running(&pv, "twice").await;
    let s = container_status(&pod, "app").expect("status of app");
    assert_eq!(docker_id(s), Some(new.id.as_str()), "{s}");
}

// --- 6. the engine stops and starts under podvisor -------------------------------

/// A dockerd of this test's own (the shared engine must stay up), removed
/// with everything under its directory when dropped.
struct Engine {
    dir: PathBuf,
    host: String,
    child: Option<Child>,
}

impl Engine {
    fn new() -> Self {
        let dir = PathBuf::from(format!("/tmp/podvisor-e2e-dockerd-{}", random_suffix()));
        let host = format!("unix://{}/docker.sock", dir.display());
        Engine {
            dir,
            host,
            child: None,
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("dockerd.log")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Starts dockerd and waits until it answers.
    fn start(&mut self) -> Result<Duration, String> {
        let started = Instant::now();
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("{}: {e}", self.dir.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .map_err(|e| e.to_string())?;
        let d = self.dir.display();
        // Its own network namespace: a daemon with `--bridge=none` in the
        // host's namespace deletes `docker0`, the shared engine's bridge.
        // (`unshare` without `--fork` execs dockerd: the child is dockerd.)
        let child = Command::new("unshare")
            .args(["--net", "--", "dockerd"])
            .arg(format!("--data-root={d}/root"))
            .arg(format!("--exec-root={d}/exec"))
            .arg(format!("--host={}", self.host))
            .arg(format!("--pidfile={d}/pid"))
            .args(["--bridge=none", "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        self.child = Some(child);
        loop {
            if docker_on(&self.host, &["version", "--format", "{{.Server.Version}}"]).is_ok() {
                return Ok(started.elapsed());
            }
            if let Some(exit) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                return Err(format!("dockerd exited ({exit}):\n{}", self.log_tail()));
            }
            if started.elapsed() > Duration::from_secs(40) {
                return Err(format!(
                    "dockerd did not answer within 40 s:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM and waits for dockerd to exit (SIGKILL after 40 s).
    fn stop(&mut self) -> Result<Duration, String> {
        let Some(mut child) = self.child.take() else {
            return Ok(Duration::ZERO);
        };
        let started = Instant::now();
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        loop {
            if child.try_wait().ok().flatten().is_some() {
                return Ok(started.elapsed());
            }
            if started.elapsed() > Duration::from_secs(40) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("dockerd {pid} ignored SIGTERM for 40 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Copies the project's images from the shared engine.
    fn load_images(&self) -> Result<(), String> {
        let e = env();
        let out = Command::new("sh")
            .arg("-c")
            .arg(r#"docker -H "$1" save "$3" "$4" | docker -H "$2" load"#)
            .args([
                "sh",
                &e.docker_host,
                &self.host,
                &e.pause_image,
                &e.busybox_image,
            ])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Processes still naming the engine's directory (its containerd and
    /// shims, when dockerd did not stop them).
    fn leftover_pids(&self) -> Vec<String> {
        let needle = self.dir.display().to_string();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        entries
            .flatten()
            .filter_map(|e| {
                let pid = e.file_name().to_string_lossy().into_owned();
                pid.parse::<u32>().ok()?;
                let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
                String::from_utf8_lossy(&cmdline)
                    .contains(&needle)
                    .then_some(pid)
            })
            .collect()
    }

    /// Mount points under the engine's directory, deepest first.
    fn mounts(&self) -> Vec<String> {
        let prefix = format!("{}/", self.dir.display());
        let text = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut mounts: Vec<String> = text
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(|m| m.replace("\\040", " "))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("engine cleanup: {e}");
        }
        for pid in self.leftover_pids() {
            eprintln!("engine cleanup: killing leftover process {pid}");
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        for m in self.mounts() {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("engine cleanup: rm -rf {}: {e}", self.dir.display());
            }
        }
    }
}

/// Waits until the node's pods on the engine at `host` converged to `want`.
async fn wait_converged_on(
    ctx: &TestCtx,
    pv: &Podvisor,
    host: &str,
    want: &BTreeMap<String, Vec<String>>,
    what: &str,
) -> Vec<Row> {
    ctx.wait_until(CONVERGE, what, || async {
        let list = pv.pods().await?;
        let rows = rows_on(host, &ctx.node)?;
        check_converged(&list, &rows, want)?;
        Ok(rows)
    })
    .await
}

#[tokio::test]
async fn the_engine_stopping_and_starting_under_podvisor() {
    let ctx = TestCtx::new("engine");
    let mut engine = Engine::new();
    let took = engine
        .start()
        .unwrap_or_else(|e| panic!("a second dockerd cannot run here: {e}"));
    println!("second engine {} answers after {took:?}", engine.host);
    engine
        .load_images()
        .unwrap_or_else(|e| panic!("loading the images into the second engine: {e}"));

    // Containers that stop at once on SIGTERM, so that dockerd stops quickly.
    let quick: &[&str] = &["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];
    ctx.write_manifest("e1.yaml", &pod_yaml("e1", "Always", &[("app", quick)]));
    ctx.write_manifest(
        "e2.yaml",
        &pod_yaml("e2", "Always", &[("one", quick), ("two", quick)]),
    );
    let want: BTreeMap<String, Vec<String>> = [
        ("e1".to_string(), vec!["app".to_string()]),
        ("e2".to_string(), vec!["one".to_string(), "two".to_string()]),
    ]
    .into();
    let endpoint = format!("--docker-endpoint={}", engine.host);
    // No relist tick in the test's time: recovery is the workers' and the
    // event stream's doing.
    let mut pv = Podvisor::spawn(&ctx, &[&endpoint, "--sync-frequency=60s"]);
    pv.wait_answering(&ctx, Some(200)).await;
    let before = wait_converged_on(
        &ctx,
        &pv,
        &engine.host,
        &want,
        "the pods on the second engine",
    )
    .await;

    // The engine stops: /healthz says why, podvisor keeps running.
    let took = engine
        .stop()
        .unwrap_or_else(|e| panic!("stopping the second engine: {e}"));
    println!("second engine stopped in {took:?}");
    let socket = engine.host.trim_start_matches("unix://").to_string();
    let body = ctx
        .wait_until(
            Duration::from_secs(10),
            "/healthz to answer 503",
            || async {
                match pv.get("/healthz").await? {
                    (503, body) => Ok(body),
                    (code, body) => Err(format!("{code}: {body}")),
                }
            },
        )
        .await;
    println!("/healthz with the engine down: 503 {}", body.trim());
    assert!(
        body.contains(&socket),
        "the 503 of /healthz does not say which engine is down: {body:?}"
    );
    holds_for(
        &ctx,
        Duration::from_secs(3),
        "podvisor runs on and reports the engine down",
        || async {
            match pv.get("/healthz").await? {
                (503, _) => {}
                (code, body) => return Err(format!("/healthz {code}: {body}")),
            }
            let names = pod_names(&pv.pods().await?);
            (names == ["e1", "e2"])
                .then_some(())
                .ok_or_else(|| format!("/pods lists {names:?}"))
        },
    )
    .await;
    assert_eq!(pv.exited(), None, "podvisor exited\n{}", ctx.log_tail());

    // The engine is back: so are the pods, one set each.
    let took = engine
        .start()
        .unwrap_or_else(|e| panic!("starting the second engine again: {e}"));
    println!("second engine answers again after {took:?}");
    let back = Instant::now();
    pv.wait_answering(&ctx, Some(200)).await;
    let after = wait_converged_on(&ctx, &pv, &engine.host, &want, "the pods to come back").await;
    println!(
        "pods Running again {:?} after the engine answered",
        back.elapsed()
    );
    let renewed = after
        .iter()
        .filter(|r| r.ctr.running() && !before.iter().any(|b| b.ctr.id == r.ctr.id))
        .count();
    println!(
        "{renewed} of {} running containers are new",
        after.iter().filter(|r| r.ctr.running()).count()
    );
    let (code, body) = pv.get("/healthz").await.expect("/healthz");
    assert_eq!(code, 200, "{body}");

    // Events are followed again: e1's infra container, killed as soon as
    // the pods are back, is replaced without waiting for the relist (a
    // minute away). Its death is the only news podvisor gets of it.
    let pod_infra = |rows: &[Row], not: &str| {
        rows.iter()
            .find(|r| r.ctr.running() && r.pod() == "e1" && r.ctr.container() == "POD")
            .filter(|r| r.ctr.id != not)
            .map(|r| r.ctr.clone())
    };
    let old = pod_infra(&after, "").expect("the infra container of e1").id;
    let start = Instant::now();
    docker_on(&engine.host, &["kill", &old]).expect("docker kill");
    let killed_after = back.elapsed();
    let found = measure(start, Duration::from_secs(20), || async {
        pod_infra(&rows_on(&engine.host, &ctx.node).ok()?, &old)
    })
    .await;
    let rows = rows_on(&engine.host, &ctx.node).unwrap_or_default();
    let Some((new, took)) = found else {
        panic!(
            "e1's infra container, killed {killed_after:?} after the engine answered again, \
             was not replaced within 20 s (with --sync-frequency=60s only its die event could \
             tell podvisor)\n{}\n{}",
            show_rows(&rows),
            ctx.failure_report()
        );
    };
    println!(
        "after the engine restart: an infra container killed {killed_after:?} after the engine \
         answered was replaced in {took:?} ({})",
        new.name
    );
    // The reconnection back-off (up to 5 s) and a sync.
    assert!(
        took < Duration::from_secs(6),
        "after the engine restart, the replacement took {took:?}\n{}\n{}",
        show_rows(&rows),
        ctx.failure_report()
    );
    wait_converged_on(&ctx, &pv, &engine.host, &want, "e1 to run again, one set").await;
}

// --- 7. --manifest-url ------------------------------------------------------------

/// What the test's manifest server answers, and what it was asked.
#[derive(Default)]
struct Served {
    body: String,
    etag: String,
    /// Answer this status instead of the body when set.
    fail: Option<u16>,
    requests: Vec<Asked>,
}

#[derive(Debug, Clone)]
struct Asked {
    path: String,
    token: Option<String>,
    if_none_match: Option<String>,
    answered: u16,
}

/// Serves `state` over HTTP/1.1 on `listener`, one request per connection.
async fn serve_manifests(listener: tokio::net::TcpListener, state: Arc<Mutex<Served>>) {
    while let Ok((mut sock, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
                if buf.len() > 65536 {
                    return;
                }
            }
            let head = String::from_utf8_lossy(&buf).into_owned();
            let mut lines = head.split("\r\n");
            let path = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap_or_default()
                .to_string();
            let headers: HashMap<String, String> = lines
                .take_while(|l| !l.is_empty())
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                .collect();
            let response = {
                let mut s = state.lock().unwrap();
                let if_none_match = headers.get("if-none-match").cloned();
                let (answered, response) = match s.fail {
                    Some(code) => (
                        code,
                        format!(
                            "HTTP/1.1 {code} Broken\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom"
                        ),
                    ),
                    None if if_none_match.as_deref() == Some(s.etag.as_str()) => (
                        304,
                        format!(
                            "HTTP/1.1 304 Not Modified\r\nETag: {}\r\nConnection: close\r\n\r\n",
                            s.etag
                        ),
                    ),
                    None => (
                        200,
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/yaml\r\nETag: {}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                            s.etag,
                            s.body.len(),
                            s.body
                        ),
                    ),
                };
                s.requests.push(Asked {
                    path,
                    token: headers.get("x-token").cloned(),
                    if_none_match,
                    answered,
                });
                response
            };
            let _ = sock.write_all(response.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_url_runs_beside_the_files_and_follows_its_server() {
    let ctx = TestCtx::new("url");
    let url_pod = |v: &str| pod_with_env("from-url", &[("app", SLEEP)], &[("V", v)]);
    let state = Arc::new(Mutex::new(Served {
        body: url_pod("1"),
        etag: "\"v1\"".into(),
        ..Default::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve_manifests(listener, state.clone()));
    let asked = || state.lock().unwrap().requests.clone();

    ctx.write_manifest(
        "file.yaml",
        &pod_yaml("from-file", "Always", &[("app", SLEEP)]),
    );
    let url = format!("--manifest-url=http://{addr}/pods.yaml");
    let mut pv = Podvisor::spawn(
        &ctx,
        &[
            &url,
            "--manifest-url-header=X-Token:abc",
            "--http-check-frequency=1s",
        ],
    );
    pv.wait_answering(&ctx, Some(200)).await;
    let url_pod_status = ctx.wait_pod_running(&pv, "from-url").await;
    let file_pod_status = ctx.wait_pod_running(&pv, "from-file").await;
    let (u1, u2) = (
        &url_pod_status["metadata"]["uid"],
        &file_pod_status["metadata"]["uid"],
    );
    assert!(
        u1.is_string() && u2.is_string() && u1 != u2,
        "UIDs {u1} {u2}"
    );
    assert_eq!(
        pod_names(&pv.pods().await.expect("/pods")),
        ["from-file", "from-url"]
    );

    // Every request carried the header; a repeat is answered 304.
    ctx.wait_until(
        Duration::from_secs(10),
        "a 304 to a request with If-None-Match",
        || async {
            let r = asked();
            r.iter()
                .any(|a| a.answered == 304 && a.if_none_match.as_deref() == Some("\"v1\""))
                .then_some(())
                .ok_or_else(|| format!("{r:?}"))
        },
    )
    .await;
    let r = asked();
    assert!(
        r.iter()
            .all(|a| a.token.as_deref() == Some("abc") && a.path == "/pods.yaml"),
        "requests without X-Token: abc: {r:?}"
    );
    let file_before = ctx.pod_containers("from-file");
    let url_before = ctx.pod_containers("from-url");

    // A changed body: the pod follows within a few periods.
    let start = Instant::now();
    {
        let mut s = state.lock().unwrap();
        s.body = url_pod("2");
        s.etag = "\"v2\"".into();
    }
    let new = wait_env(&ctx, "from-url", "app", "V=2").await;
    let took = start.elapsed();
    println!("manifest URL: changed body applied after {took:?}");
    // A few periods, and the old container's 1 s grace period.
    assert!(
        took < Duration::from_secs(6),
        "the changed body took {took:?} with --http-check-frequency=1s"
    );
    ctx.wait_pod(
        &pv,
        "from-url",
        CONVERGE,
        "running the new container",
        |p| {
            let s = container_status(p, "app").ok_or("no status of app")?;
            (docker_id(s) == Some(new.id.as_str()) && s["ready"] == true)
                .then_some(())
                .ok_or_else(|| s.to_string())
        },
    )
    .await;
    let url_now = ctx.pod_containers("from-url");
    let infra = |l: &[Ctr]| {
        l.iter()
            .find(|c| c.container() == "POD")
            .map(|c| c.id.clone())
    };
    assert_eq!(
        infra(&url_now),
        infra(&url_before),
        "the infra container changed"
    );

    // The server fails: the pod keeps running.
    let failing_since = {
        let mut s = state.lock().unwrap();
        s.fail = Some(500);
        s.requests.len()
    };
    let url_running: Vec<Ctr> = ctx
        .pod_containers("from-url")
        .into_iter()
        .filter(Ctr::running)
        .collect();
    ctx.wait_until(
        Duration::from_secs(10),
        "three requests answered 500",
        || async {
            let r = asked();
            let fails = r[failing_since..]
                .iter()
                .filter(|a| a.answered == 500)
                .count();
            (fails >= 3)
                .then_some(())
                .ok_or_else(|| format!("{fails} answered 500"))
        },
    )
    .await;
    wait_log_line(&ctx, "the 500 logged", &["ERROR", "500"]).await;
    holds_for(&ctx, Duration::from_secs(2), "both pods run on", || async {
        let now: Vec<Ctr> = ctx
            .pod_containers("from-url")
            .into_iter()
            .filter(Ctr::running)
            .collect();
        if now != url_running {
            return Err(format!("from-url:\n{}", show(&now)));
        }
        unchanged(&ctx, "from-file", &file_before)?;
        let list = pv.pods().await?;
        for name in ["from-file", "from-url"] {
            let p = find_pod(&list, name).ok_or(format!("{name} gone from /pods"))?;
            if p["status"]["phase"] != "Running" {
                return Err(format!("{name}: {}", p["status"]));
            }
        }
        Ok(())
    })
    .await;
    assert_eq!(pv.exited(), None, "podvisor exited\n{}", ctx.log_tail());
    let r = asked();
    assert!(
        r.iter().all(|a| a.token.as_deref() == Some("abc")),
        "requests without X-Token: abc: {r:?}"
    );
}
