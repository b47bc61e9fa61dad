//! End-to-end tests of `kubectl logs` (issue 13) with the machine's real
//! `kubectl` against the real binary on the real engine: `--tail`,
//! `--timestamps`, `--since`, `--limit-bytes`, `-c` with init containers,
//! the API server's refusals (no container named in a pod of several, an
//! unknown one, bad parameters, an unknown pod), `-f` seeing a line written
//! after it started and ending with the container, a follower killed
//! without harm, and `--previous` after a crash; another pod runs
//! undisturbed throughout.

#[allow(dead_code)]
mod e2e_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use e2e_support::*;
use serde_json::{json, Value};

/// A busybox container running `sh -c script`.
fn ctr(name: &str, script: &str) -> Value {
    json!({
        "name": name,
        "image": env().busybox_image,
        "command": ["sh", "-c", script],
    })
}

/// `kubectl logs ARGS`' stdout, or a panic with its stderr.
fn logs(ctx: &TestCtx, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    kubectl(ctx, &all)
}

/// The refusal kubectl prints for `args` (which must fail).
fn refused(ctx: &TestCtx, args: &[&str]) -> String {
    match kubectl_try(ctx, args) {
        Ok(out) => panic!("kubectl {args:?} succeeded: {out}"),
        Err(stderr) => stderr,
    }
}

/// The numbers of `tick N` lines.
fn ticks(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
        .collect()
}

/// How many unix sockets process `pid` holds open (podvisor's are its
/// connections to the engine).
fn unix_sockets(pid: u32) -> usize {
    let unix = std::fs::read_to_string("/proc/net/unix").expect("/proc/net/unix");
    let inodes: std::collections::HashSet<&str> = unix
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6))
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("podvisor's fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|link| {
            let link = link.to_string_lossy().into_owned();
            let inode = link
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .to_string();
            Some(inode)
        })
        .filter(|inode| inodes.contains(inode.as_str()))
        .count()
}

/// A `kubectl logs -f` running, its stdout lines sent to a channel.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    fn start(ctx: &TestCtx, args: &[&str]) -> Self {
        let mut child = tool("kubectl")
            .env("KUBECONFIG", kubeconfig(ctx))
            .arg("logs")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl logs -f runs");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// Waits up to `within` for a line `want` accepts; returns it.
    fn expect_line(&self, within: Duration, what: &str, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no line {what} within {within:?} ({e}); seen: {seen:?}"),
            }
        }
    }

    /// Waits up to `within` for kubectl to exit; its exit status.
    fn expect_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("kubectl's status") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl logs -f still runs after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn kubectl_logs_reads_tails_follows_and_refuses_like_the_api_server() {
    let ctx = TestCtx::new("logs");
    ctx.write_json(
        "web.json",
        &pod_json(
            "web",
            "Always",
            json!([ctr(
                "server",
                "for i in 1 2 3 4 5; do echo \"line $i\"; done; exec sleep 3600"
            )]),
            json!({}),
        ),
    );
    ctx.write_json(
        "two.json",
        &pod_json(
            "two",
            "Always",
            json!([
                ctr("a", "echo from-a; exec sleep 3600"),
                ctr("b", "echo from-b; exec sleep 3600"),
            ]),
            json!({"initContainers": [ctr("setup", "echo setup-done")]}),
        ),
    );
    ctx.write_json(
        "ticker.json",
        &pod_json(
            "ticker",
            "Always",
            json!([ctr(
                "tick",
                "i=0; while true; do i=$((i+1)); echo \"tick $i\"; sleep 1; done"
            )]),
            json!({}),
        ),
    );
    ctx.write_json(
        "follow.json",
        &pod_json(
            "follow",
            "Never",
            json!([ctr(
                "main",
                "echo waiting; while [ ! -f /tmp/go ]; do sleep 0.2; done; echo after-trigger; \
                 while [ ! -f /tmp/stop ]; do sleep 0.2; done; echo bye"
            )]),
            json!({}),
        ),
    );
    ctx.write_json(
        "other.json",
        &pod_json(
            "other",
            "Always",
            json!([ctr("app", "exec sleep 3600")]),
            json!({}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    for pod in ["web", "two", "ticker", "follow"] {
        ctx.wait_pod_running(&pv, pod).await;
    }
    let other = ctx.wait_pod_running(&pv, "other").await;
    let other_id = docker_id(container_status(&other, "app").expect("other's app"))
        .expect("other's app has an ID")
        .to_string();

    // The whole log, then the last two lines, of a named container.
    let whole = ctx
        .wait_until(Duration::from_secs(10), "web's five lines", || async {
            let out = logs(&ctx, &["web"]);
            if out.lines().count() == 5 {
                Ok(out)
            } else {
                Err(out)
            }
        })
        .await;
    assert_eq!(whole, "line 1\nline 2\nline 3\nline 4\nline 5\n");
    assert_eq!(
        logs(&ctx, &["web", "-c", "server", "--tail=2"]),
        "line 4\nline 5\n"
    );
    assert_eq!(logs(&ctx, &["web", "--tail=0"]), "");

    // --timestamps: each line starts with the engine's RFC 3339 time.
    let stamped = logs(&ctx, &["web", "--timestamps"]);
    let lines: Vec<&str> = stamped.lines().collect();
    assert_eq!(lines.len(), 5, "{stamped}");
    for (i, line) in lines.iter().enumerate() {
        let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let t = chrono::DateTime::parse_from_rfc3339(time)
            .unwrap_or_else(|e| panic!("{time:?} of {line:?}: {e}"));
        let age = chrono::Utc::now().signed_duration_since(t);
        assert!(
            age >= chrono::Duration::zero() && age < chrono::Duration::minutes(5),
            "{line:?}"
        );
        assert_eq!(rest, format!("line {}", i + 1));
    }

    // --limit-bytes: cut after that many bytes, mid-line if need be.
    assert_eq!(logs(&ctx, &["web", "--limit-bytes=10"]), "line 1\nlin");

    // --since: only the last seconds of a container writing every second.
    let all_ticks = ctx
        .wait_until(Duration::from_secs(20), "eight ticks", || async {
            let t = ticks(&logs(&ctx, &["ticker"]));
            if t.len() >= 8 {
                Ok(t)
            } else {
                Err(format!("{t:?}"))
            }
        })
        .await;
    let recent = ticks(&logs(&ctx, &["ticker", "--since=3s"]));
    let last = *all_ticks.last().unwrap_or(&0);
    assert!(
        (1..=6).contains(&recent.len()),
        "--since=3s gave {recent:?}, all {all_ticks:?}"
    );
    assert!(
        recent[0] + 6 > last && recent[0] > all_ticks[0],
        "--since=3s gave {recent:?} after {all_ticks:?}"
    );
    assert_eq!(
        ticks(&logs(&ctx, &["ticker", "--since=1h"]))[..all_ticks.len()],
        all_ticks[..],
        "--since=1h is everything"
    );
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        logs(&ctx, &["web", &format!("--since-time={later}")]),
        "",
        "nothing was written after an hour from now"
    );

    // Several containers: kubectl picks the first itself; -c any, init
    // containers included.
    assert_eq!(logs(&ctx, &["two"]), "from-a\n");
    assert_eq!(logs(&ctx, &["two", "-c", "b"]), "from-b\n");
    assert_eq!(logs(&ctx, &["two", "-c", "setup"]), "setup-done\n");

    // The API server's refusals, as kubectl prints them.
    let e = refused(
        &ctx,
        &["get", "--raw", "/api/v1/namespaces/default/pods/two/log"],
    );
    assert!(
        e.contains(
            "a container name must be specified for pod two, choose one of: [a b] \
             or one of the init containers: [setup]"
        ),
        "{e}"
    );
    // (kubectl checks -c itself, so the server's answer is asked raw.)
    let e = refused(
        &ctx,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/two/log?container=nope",
        ],
    );
    assert!(
        e.contains("BadRequest") && e.contains("container nope is not valid for pod two"),
        "{e}"
    );
    let e = refused(
        &ctx,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/log?tailLines=abc",
        ],
    );
    assert!(e.contains("tailLines: Invalid value: \"abc\""), "{e}");
    let e = refused(
        &ctx,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/log?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z",
        ],
    );
    assert!(
        e.contains("at most one of `sinceTime` or `sinceSeconds` may be specified"),
        "{e}"
    );
    let e = refused(
        &ctx,
        &["get", "--raw", "/api/v1/namespaces/default/pods/nope/log"],
    );
    assert!(
        e.contains("NotFound") && e.contains("pods \"nope\" not found"),
        "{e}"
    );
    let e = refused(&ctx, &["logs", "web", "--previous"]);
    assert!(
        e.contains("previous terminated container \"server\" in pod \"web\" not found"),
        "{e}"
    );

    // -f: a line written after kubectl started arrives, and kubectl ends
    // when the container does.
    let mut follower = Follower::start(&ctx, &["-f", "follow"]);
    follower.expect_line(Duration::from_secs(20), "\"waiting\"", |l| l == "waiting");
    let main = ctx
        .pod_containers("follow")
        .into_iter()
        .find(|c| c.container() == "main" && c.running())
        .expect("follow's main runs");
    docker(&["exec", &main.id, "touch", "/tmp/go"]);
    follower.expect_line(Duration::from_secs(10), "\"after-trigger\"", |l| {
        l == "after-trigger"
    });
    docker(&["exec", &main.id, "touch", "/tmp/stop"]);
    follower.expect_line(Duration::from_secs(10), "\"bye\"", |l| l == "bye");
    let status = follower.expect_exit(Duration::from_secs(15));
    assert!(status.success(), "kubectl logs -f ended with {status}");

    // A follower killed mid-stream: the node serves on.
    let before = ticks(&logs(&ctx, &["ticker"]));
    let follower = Follower::start(&ctx, &["-f", "ticker", "--tail=1"]);
    let first = before.last().copied().unwrap_or(0);
    follower.expect_line(Duration::from_secs(20), "a new tick", |l| {
        ticks(l).first().is_some_and(|n| *n > first)
    });
    drop(follower);
    let tail = ticks(&logs(&ctx, &["ticker", "--tail=1"]));
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert!(tail[0] > first, "{tail:?} after {first}");

    // Followers of a container that writes nothing more, killed: each one's
    // engine stream (a connection to the engine's socket of its own, since a
    // followed log holds one) is closed, not left waiting for output.
    let engine_connections = || unix_sockets(pv.pid());
    let followers: Vec<Follower> = (0..6)
        .map(|_| Follower::start(&ctx, &["-f", "web"]))
        .collect();
    for f in &followers {
        f.expect_line(Duration::from_secs(20), "\"line 5\"", |l| l == "line 5");
    }
    let during = engine_connections();
    drop(followers);
    let start = Instant::now();
    loop {
        let now = engine_connections();
        if now + 5 <= during {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "podvisor holds {now} unix sockets 10 s after 6 followers went, {during} with them"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The other pod ran undisturbed all along.
    let list = pv.pods().await.expect("/pods");
    let other = find_pod(&list, "other").expect("other is listed");
    let app = container_status(other, "app").expect("other's app");
    assert_eq!(docker_id(app), Some(other_id.as_str()), "{app}");
    assert_eq!(app["restartCount"], 0, "{app}");
    assert!(app["state"]["running"].is_object(), "{app}");
    let (code, _) = pv.get("/healthz").await.expect("/healthz");
    assert_eq!(code, 200);
}

#[tokio::test]
async fn kubectl_logs_previous_shows_the_run_before_a_crash() {
    let ctx = TestCtx::new("logsprev");
    // The first run prints its marker and fails; the restarted one (the
    // emptyDir outlives it) prints its own and stays up.
    let script = "id=$(cat /proc/sys/kernel/random/uuid); \
                  if [ -f /data/ran ]; then echo \"second run $id\"; exec sleep 3600; fi; \
                  touch /data/ran; echo \"first run $id\"; exit 1";
    let mut app = ctr("app", script);
    app["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    ctx.write_json(
        "crash.json",
        &pod_json(
            "crash",
            "Always",
            json!([app]),
            json!({"volumes": [{"name": "data", "emptyDir": {}}]}),
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    let (now_id, last_id) = ctx
        .wait_pod(
            &pv,
            "crash",
            Duration::from_secs(60),
            "app restarted once and running",
            |p| {
                let s = container_status(p, "app").ok_or("no status for app")?;
                let last = s["lastState"]["terminated"]["containerID"]
                    .as_str()
                    .and_then(|id| id.strip_prefix("docker://"));
                match (s["restartCount"].as_i64(), docker_id(s), last) {
                    (Some(1), Some(now), Some(last)) if s["state"]["running"].is_object() => {
                        Ok((now.to_string(), last.to_string()))
                    }
                    _ => Err(format!("app: {s}")),
                }
            },
        )
        .await;
    assert_ne!(now_id, last_id);

    let marker = |text: &str, run: &str| -> String {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{run}: {text:?}");
        lines[0]
            .strip_prefix(&format!("{run} run "))
            .unwrap_or_else(|| panic!("{run}: {text:?}"))
            .to_string()
    };
    let previous = logs(&ctx, &["crash", "--previous"]);
    let current = ctx
        .wait_until(Duration::from_secs(10), "the second run's line", || async {
            let out = logs(&ctx, &["crash"]);
            if out.is_empty() {
                Err("nothing yet".to_string())
            } else {
                Ok(out)
            }
        })
        .await;
    let first = marker(&previous, "first");
    let second = marker(&current, "second");
    assert_ne!(first, second);
    // Each is what the engine holds for that instance.
    assert_eq!(docker(&["logs", &last_id]), format!("first run {first}"));
    assert_eq!(docker(&["logs", &now_id]), format!("second run {second}"));
    // -p with a container name, as kubectl spells it too.
    assert_eq!(logs(&ctx, &["crash", "-c", "app", "-p"]), previous);
}
