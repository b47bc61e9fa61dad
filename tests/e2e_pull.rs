//! End-to-end tests of the image puller: `podvisor run` pulling from real
//! registries (Debian's docker-registry, started per test by
//! `scripts/start-registry.sh` on a free port of 127.0.0.1).
//!
//! Each test has its own registry, in its tempdir, and its own repositories
//! (`127.0.0.1:P/e2e-<random>/...`): the project's busybox image tagged under
//! new names, pushed, and untagged again so that podvisor has to pull. Like
//! `tests/e2e.rs` they need the engine and images of `scripts/ensure-env.sh`
//! (`make test`), and fail, never skip, without them.

#[allow(dead_code)] // the harness has more than these tests use
mod e2e_support;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use e2e_support::*;
use serde_json::Value;

// --- a registry of the test's own ---------------------------------------------

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

/// A docker-registry on 127.0.0.1, its storage under the test's tempdir;
/// stopped when dropped. Declare it after the [`TestCtx`] (whose tempdir it
/// lives in) and before the [`Podvisor`].
struct Registry {
    port: u16,
    dir: PathBuf,
    htpasswd: Option<PathBuf>,
    running: bool,
}

impl Registry {
    /// Starts a registry without auth.
    fn start(ctx: &TestCtx) -> Self {
        Self::start_with(ctx, None)
    }

    /// Starts a registry; with `htpasswd`, it wants basic auth.
    fn start_with(ctx: &TestCtx, htpasswd: Option<PathBuf>) -> Self {
        let mut r = Registry {
            port: free_port(),
            dir: ctx.path().join("registry"),
            htpasswd,
            running: false,
        };
        r.up();
        r
    }

    /// `127.0.0.1:PORT`, what image references start with.
    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn run_script(&self, name: &str, extra: &[&str]) -> String {
        let port = self.port.to_string();
        let dir = self.dir.display().to_string();
        let out = Command::new(script(name))
            .args(["--port", &port, "--dir", &dir])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run scripts/{name}: {e}"));
        assert!(
            out.status.success(),
            "scripts/{name} --port {port} --dir {dir} {extra:?} failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// (Re)starts it on the same port and directory: the images stay.
    fn up(&mut self) {
        let htpasswd = self.htpasswd.as_ref().map(|p| p.display().to_string());
        let extra: Vec<&str> = match &htpasswd {
            Some(f) => vec!["--htpasswd", f.as_str()],
            None => vec![],
        };
        let printed = self.run_script("start-registry.sh", &extra);
        self.running = true;
        assert_eq!(printed, self.addr(), "start-registry.sh printed");
    }

    fn down(&mut self) {
        self.run_script("stop-registry.sh", &[]);
        self.running = false;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if self.running {
            let port = self.port.to_string();
            let dir = self.dir.display().to_string();
            let _ = Command::new(script("stop-registry.sh"))
                .args(["--port", &port, "--dir", &dir])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `docker ARGS` with `DOCKER_CONFIG=config` (so that a `docker login`
/// never touches the caller's ~/.docker) and `stdin` as its input.
fn docker_as(config: Option<&Path>, stdin: Option<&str>, args: &[&str]) -> String {
    use std::io::Write as _;
    let mut cmd = Command::new("docker");
    cmd.args(args)
        .env("DOCKER_HOST", &env().docker_host)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(c) = config {
        cmd.env("DOCKER_CONFIG", c);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("docker {args:?}: {e}"));
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("docker output");
    assert!(
        out.status.success(),
        "docker {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Images the test made locally (the pushed names, and what podvisor
/// pulled): untagged when dropped. Only these names, never busybox itself.
#[derive(Default)]
struct LocalTags(Vec<String>);

impl LocalTags {
    /// Will untag `image` at the end.
    fn own(&mut self, image: &str) {
        self.0.push(image.to_string());
    }
}

impl Drop for LocalTags {
    fn drop(&mut self) {
        for image in &self.0 {
            assert_ne!(image, &env().busybox_image, "never remove busybox");
            let _ = docker_try(&["rmi", image]);
        }
    }
}

/// Whether the engine has an image of this name.
fn present(image: &str) -> bool {
    docker_try(&["image", "inspect", "--format", "{{.Id}}", image]).is_ok()
}

/// Pushes busybox as `image` (with `config`'s login, if any) and removes the
/// local name again, so that only a pull brings it back.
fn push_busybox_as(image: &str, config: Option<&Path>, tags: &mut LocalTags) {
    tags.own(image);
    docker(&["tag", &env().busybox_image, image]);
    docker_as(config, None, &["push", "--quiet", image]);
    docker(&["rmi", image]);
    assert!(!present(image), "{image} is still present after docker rmi");
}

// --- pods and their status ---------------------------------------------------

/// A pod of one container `app` running `sleep 3600` on `image`.
fn image_pod(name: &str, image: &str, policy: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  restartPolicy: Always\n  terminationGracePeriodSeconds: 1\n  containers:\n\
         \x20   - name: app\n      image: {image}\n      imagePullPolicy: {policy}\n\
         \x20     command: [\"sleep\", \"3600\"]\n"
    )
}

/// The waiting reason and message of `app` of `pod`, when it waits.
fn waiting_of(list: &Value, pod: &str) -> Option<(String, String)> {
    let s = container_status(find_pod(list, pod)?, "app")?;
    let w = &s["state"]["waiting"];
    let reason = w["reason"].as_str()?.to_string();
    Some((
        reason,
        w["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// Waits until `app` of `pod` waits with `reason` and a message that
/// `message_ok` accepts; returns the message and every reason seen on the
/// way, in order (each once per stretch).
async fn wait_waiting(
    ctx: &TestCtx,
    pv: &Podvisor,
    pod: &str,
    reason: &str,
    timeout: Duration,
    message_ok: impl Fn(&str) -> bool,
) -> (String, Vec<String>) {
    let seen: RefCell<Vec<String>> = RefCell::default();
    let what = format!("pod {pod} to wait with reason {reason} and the expected message");
    let message = ctx
        .wait_until(timeout, &what, || async {
            let got = waiting_of(&pv.pods().await?, pod);
            let mut seen = seen.borrow_mut();
            match got {
                Some((r, m)) => {
                    if seen.last() != Some(&r) {
                        seen.push(r.clone());
                    }
                    if r == reason && message_ok(&m) {
                        Ok(m)
                    } else {
                        Err(format!("waiting {r}: {m} (reasons so far {seen:?})"))
                    }
                }
                None => Err(format!("{pod} does not wait (reasons so far {seen:?})")),
            }
        })
        .await;
    (message, seen.into_inner())
}

/// The waiting reasons the pod workers logged for pod `uid`, in order
/// (`sync{pod=NS/NAME uid=UID trigger=…}: … container=app reason=ErrImagePull`).
/// `/pods` may skip one that lasted only until the next sync; the log has
/// them all.
fn logged_reasons(log: &str, uid: &str) -> Vec<String> {
    // Inside the worker's sync span: `sync{pod=ns/name uid=<uid> trigger=…}`.
    let pod = format!("uid={uid}");
    log.lines()
        .filter(|l| l.contains("podvisor::actors::pod_worker") && l.contains(&pod))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("reason="))
                .map(String::from)
        })
        .collect()
}

/// The pod's `metadata.uid` from `/pods`.
async fn uid_of(pv: &Podvisor, pod: &str) -> String {
    let list = pv.pods().await.expect("/pods");
    let p = find_pod(&list, pod).unwrap_or_else(|| panic!("{pod} not in /pods: {list}"));
    p["metadata"]["uid"]
        .as_str()
        .expect("metadata.uid")
        .to_string()
}

/// Asserts that the worker of `pod` logged ErrImagePull, and
/// ImagePullBackOff only after it.
async fn assert_errimagepull_then_backoff(ctx: &TestCtx, pv: &Podvisor, pod: &str) {
    let uid = uid_of(pv, pod).await;
    let reasons = logged_reasons(&ctx.all_logs(), &uid);
    let first_err = reasons.iter().position(|r| r == "ErrImagePull");
    let first_backoff = reasons.iter().position(|r| r == "ImagePullBackOff");
    assert!(
        matches!((first_err, first_backoff), (Some(e), Some(b)) if e < b),
        "{pod}: the log should show ErrImagePull, then ImagePullBackOff; \
         reasons logged: {reasons:?}\n{}",
        ctx.failure_report()
    );
}

/// Spawns podvisor with `flags` and waits for its API.
async fn start_podvisor(ctx: &TestCtx, flags: &[&str]) -> Podvisor {
    let mut pv = Podvisor::spawn(ctx, flags);
    pv.wait_answering(ctx, Some(200)).await;
    pv
}

// --- the puller's log ---------------------------------------------------------

/// A line of the log about `image`: `<time> LEVEL target: message image=... took=...`.
struct PullLine {
    at: DateTime<Utc>,
    image: String,
    took: Option<Duration>,
}

/// `Debug` of a `Duration`: `1.5s`, `83.2ms`, `950µs`, `12ns`.
fn parse_debug_duration(s: &str) -> Option<Duration> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ns") {
        (n, 1e-9)
    } else if let Some(n) = s.strip_suffix("µs") {
        (n, 1e-6)
    } else if let Some(n) = s.strip_suffix("ms") {
        (n, 1e-3)
    } else {
        (s.strip_suffix('s')?, 1.0)
    };
    Some(Duration::from_secs_f64(num.parse::<f64>().ok()? * scale))
}

/// The lines of `log` whose message is `message`, with their image.
fn pull_lines(log: &str, message: &str) -> Vec<PullLine> {
    let needle = format!(": {message} ");
    log.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let at = DateTime::parse_from_rfc3339(words.next()?).ok()?.to_utc();
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .map(|v| v.trim_matches('"').to_string())
            };
            Some(PullLine {
                at,
                image: field("image=")?,
                took: field("took=").and_then(|t| parse_debug_duration(&t)),
            })
        })
        .collect()
}

// --- 1. a low QPS makes pulls wait, never fail --------------------------------

#[tokio::test]
async fn pulls_under_a_low_qps_wait_their_turn_and_all_succeed() {
    let ctx = TestCtx::new("pullqps");
    let mut tags = LocalTags::default();
    let registry = Registry::start(&ctx);
    let repo = format!("{}/e2e-{}", registry.addr(), random_suffix());
    let images: Vec<String> = (0..4).map(|i| format!("{repo}/img-{i}:1")).collect();
    for image in &images {
        push_busybox_as(image, None, &mut tags);
    }
    let pods: Vec<String> = (0..4).map(|i| format!("qps-{i}")).collect();
    for (pod, image) in pods.iter().zip(&images) {
        ctx.write_manifest(
            &format!("{pod}.yaml"),
            &image_pod(pod, image, "IfNotPresent"),
        );
    }

    // Parallel pulls, so that only the rate limit spaces them: 2 per
    // second, burst 1, is a pull every 500 ms.
    let pv = start_podvisor(
        &ctx,
        &[
            "--registry-qps=2",
            "--registry-burst=1",
            "--serialize-image-pulls=false",
        ],
    )
    .await;
    // Every waiting reason any pod shows until all run.
    let reasons: RefCell<BTreeSet<String>> = RefCell::default();
    ctx.wait_until(CONVERGE, "all four pods to run", || async {
        let list = pv.pods().await?;
        let mut pending = Vec::new();
        for pod in &pods {
            if let Some((r, m)) = waiting_of(&list, pod) {
                reasons.borrow_mut().insert(format!("{r}: {m}"));
            }
            let phase = find_pod(&list, pod).map(|p| p["status"]["phase"].clone());
            if phase != Some(Value::from("Running")) {
                pending.push(format!("{pod}: {phase:?}"));
            }
        }
        pending.is_empty().then_some(()).ok_or(pending.join(", "))
    })
    .await;
    let reasons = reasons.into_inner();
    for pod in &pods {
        ctx.wait_pod_running(&pv, pod).await;
    }
    let failures: Vec<&String> = reasons
        .iter()
        .filter(|r| !r.starts_with("ContainerCreating"))
        .collect();
    assert!(
        failures.is_empty(),
        "a pod showed a failure while its pull waited for the rate limit: {failures:?}\n{}",
        ctx.failure_report()
    );
    for image in &images {
        assert!(present(image), "{image} is not present after the pods ran");
    }

    // The log: one pull per image, none failed, and the pulls started at
    // least ~500 ms apart (GCRA at 2 QPS, burst 1: t, t+0.5, t+1, t+1.5).
    let log = ctx.all_logs();
    assert!(
        !log.contains("Failed to pull image"),
        "a pull failed\n{}",
        ctx.failure_report()
    );
    let asked = pull_lines(&log, "Pulling image");
    let pulled = pull_lines(&log, "Successfully pulled image");
    let mut starts = Vec::new();
    for image in &images {
        let n = asked.iter().filter(|l| &l.image == image).count();
        assert_eq!(n, 1, "\"Pulling image\" lines for {image}\n{log}");
        let done: Vec<&PullLine> = pulled.iter().filter(|l| &l.image == image).collect();
        assert_eq!(
            done.len(),
            1,
            "\"Successfully pulled\" lines for {image}\n{log}"
        );
        let took = done[0]
            .took
            .unwrap_or_else(|| panic!("no took= on the pull of {image}\n{log}"));
        starts.push(done[0].at - chrono::Duration::from_std(took).expect("took"));
    }
    starts.sort();
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_seconds_f64())
        .collect();
    let span = (starts[3] - starts[0]).as_seconds_f64();
    eprintln!("pull starts {gaps:?} s apart, {span:.3} s from first to last");
    assert!(
        span >= 1.4 && gaps.iter().all(|g| *g >= 0.4),
        "4 pulls at 2 QPS (burst 1) should start ~0.5 s apart over >= 1.5 s; \
         gaps {gaps:?}, span {span:.3} s\n{log}"
    );
}

// --- 2. a missing image backs off; the other pods run -------------------------

#[tokio::test]
async fn a_missing_image_backs_off_and_other_pods_run() {
    let ctx = TestCtx::new("pullmiss");
    let mut tags = LocalTags::default();
    let registry = Registry::start(&ctx);
    let repo = format!("{}/e2e-{}", registry.addr(), random_suffix());
    let good = format!("{repo}/there:1");
    let absent = format!("{repo}/absent:1");
    let wrong_tag = format!("{repo}/there:2");
    push_busybox_as(&good, None, &mut tags);
    tags.own(&absent);
    tags.own(&wrong_tag);
    ctx.write_manifest("good.yaml", &image_pod("good", &good, "IfNotPresent"));
    ctx.write_manifest("absent.yaml", &image_pod("absent", &absent, "IfNotPresent"));
    ctx.write_manifest("tag.yaml", &image_pod("tag", &wrong_tag, "Always"));

    let pv = start_podvisor(&ctx, &["--serialize-image-pulls=false"]).await;
    let not_found = |m: &str| m.contains("manifest unknown") || m.contains("not found");
    for (pod, image) in [("absent", &absent), ("tag", &wrong_tag)] {
        let (message, seen) = wait_waiting(
            &ctx,
            &pv,
            pod,
            "ImagePullBackOff",
            Duration::from_secs(20),
            not_found,
        )
        .await;
        assert!(
            message.contains(image.as_str()),
            "{pod}: the message does not name {image}: {message}"
        );
        assert!(
            seen.iter().all(
                |r| ["ContainerCreating", "ErrImagePull", "ImagePullBackOff"].contains(&r.as_str())
            ),
            "{pod}: waiting reasons seen: {seen:?}"
        );
        assert_errimagepull_then_backoff(&ctx, &pv, pod).await;
        assert!(!present(image), "{image} is present");
    }
    ctx.wait_pod_running(&pv, "good").await;

    // Back-off: a pull comes again no sooner than 10 s after the failure
    // before it (at most one pull so far when the test is quick).
    let log = ctx.all_logs();
    for image in [&absent, &wrong_tag] {
        let pulls = pull_lines(&log, "Pulling image");
        let pulls: Vec<_> = pulls.iter().filter(|l| &l.image == image).collect();
        let fails = pull_lines(&log, "Failed to pull image");
        let fails: Vec<_> = fails.iter().filter(|l| &l.image == image).collect();
        assert!(!fails.is_empty(), "no failed pull of {image} logged\n{log}");
        for (fail, next) in fails.iter().zip(pulls.iter().skip(1)) {
            let gap = (next.at - fail.at).as_seconds_f64();
            assert!(
                gap >= 9.9,
                "{image} was pulled again {gap:.3} s after a failure, inside the 10 s back-off\n{log}"
            );
        }
    }
    let list = pv.pods().await.expect("/pods");
    for pod in ["absent", "tag"] {
        let p = find_pod(&list, pod).expect("pod listed");
        assert_eq!(p["status"]["phase"], "Pending", "{pod}: {}", p["status"]);
        assert!(
            ctx.pod_containers(pod)
                .iter()
                .all(|c| c.container() == "POD"),
            "{pod} has an app container:\n{}",
            show(&ctx.pod_containers(pod))
        );
    }
}

// --- 3. a registry that comes back ------------------------------------------

#[tokio::test]
async fn a_pull_that_failed_while_the_registry_was_down_succeeds_when_it_returns() {
    let ctx = TestCtx::new("pulldown");
    let mut tags = LocalTags::default();
    let mut registry = Registry::start(&ctx);
    let image = format!("{}/e2e-{}/back:1", registry.addr(), random_suffix());
    push_busybox_as(&image, None, &mut tags);
    registry.down();

    ctx.write_manifest("back.yaml", &image_pod("back", &image, "IfNotPresent"));
    let pv = start_podvisor(&ctx, &[]).await;
    let refused = |m: &str| m.contains("connection refused") && m.contains(&registry.addr());
    wait_waiting(
        &ctx,
        &pv,
        "back",
        "ImagePullBackOff",
        Duration::from_secs(20),
        refused,
    )
    .await;
    assert_errimagepull_then_backoff(&ctx, &pv, "back").await;

    let back = Instant::now();
    registry.up();
    let back_at = Utc::now();
    // The next pull comes at the end of the back-off: 10 s after the first
    // failure, 20 s after a second one.
    ctx.wait_pod_running(&pv, "back").await;
    eprintln!(
        "pod ran {:.1} s after the registry returned",
        back.elapsed().as_secs_f64()
    );
    assert!(present(&image), "{image} is not present");

    // From the log: no pull inside a back-off, and the first pull after
    // the registry returned came when the back-off then running ended.
    let log = ctx.all_logs();
    let of_image = |message: &str| -> Vec<DateTime<Utc>> {
        pull_lines(&log, message)
            .into_iter()
            .filter(|l| l.image == image)
            .map(|l| l.at)
            .collect()
    };
    let pulls = of_image("Pulling image");
    let fails = of_image("Failed to pull image");
    let done = of_image("Successfully pulled image");
    assert_eq!(done.len(), 1, "successful pulls of {image}\n{log}");
    assert_eq!(
        pulls.len(),
        fails.len() + 1,
        "every pull but the last failed\n{log}"
    );
    let mut delay = 10.0;
    for (fail, next) in fails.iter().zip(&pulls[1..]) {
        let gap = (*next - *fail).as_seconds_f64();
        assert!(
            gap >= delay - 0.1,
            "a pull {gap:.3} s after a failure, inside the {delay} s back-off\n{log}"
        );
        let ends = *fail + chrono::Duration::milliseconds((delay * 1000.0) as i64);
        if ends > back_at {
            assert!(
                gap <= delay + 2.0,
                "the registry was back before the {delay} s back-off ended, yet the \
                 next pull came only {gap:.3} s after the failure\n{log}"
            );
        }
        delay = (delay * 2.0_f64).min(300.0);
    }
}

// --- 4. credentials ---------------------------------------------------------

#[tokio::test]
async fn an_auth_registry_is_pulled_from_with_credentials_and_refused_without() {
    let ctx = TestCtx::new("pullauth");
    let mut tags = LocalTags::default();
    let htpasswd = ctx.path().join("htpasswd");
    let entry = tool("htpasswd")
        .args(["-Bbn", "e2euser", "e2e-pass"])
        .output()
        .expect("run htpasswd");
    assert!(entry.status.success(), "htpasswd failed: {entry:?}");
    std::fs::write(&htpasswd, &entry.stdout).expect("write htpasswd");
    let registry = Registry::start_with(&ctx, Some(htpasswd));
    let addr = registry.addr();

    // Push with a login of a temporary DOCKER_CONFIG.
    let docker_config = ctx.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).expect("docker config dir");
    docker_as(
        Some(&docker_config),
        Some("e2e-pass"),
        &["login", &addr, "-u", "e2euser", "--password-stdin"],
    );
    let image = format!("{addr}/e2e-{}/secret:1", random_suffix());
    push_busybox_as(&image, Some(&docker_config), &mut tags);

    // Three nodes at once: the right credentials, wrong ones, none. Policy
    // Always, so that each really pulls whatever the others brought.
    let auths = |user_pass: &str| {
        let auth = base64::engine::general_purpose::STANDARD.encode(user_pass);
        serde_json::json!({ "auths": { addr.as_str(): { "auth": auth } } }).to_string()
    };
    let creds = |ctx: &TestCtx, text: String| {
        let file = ctx.path().join("config.json");
        std::fs::write(&file, text).expect("write config.json");
        file.display().to_string()
    };
    let ctx_none = TestCtx::new("pullnoauth");
    let ctx_wrong = TestCtx::new("pullbadauth");
    let right = creds(&ctx, auths("e2euser:e2e-pass"));
    let none = creds(&ctx_none, r#"{"auths":{}}"#.to_string());
    let wrong = creds(&ctx_wrong, auths("e2euser:not-the-password"));
    for c in [&ctx, &ctx_none, &ctx_wrong] {
        c.write_manifest("secret.yaml", &image_pod("secret", &image, "Always"));
    }
    let pv = start_podvisor(&ctx, &["--image-credential-file", &right]).await;
    let pv_none = start_podvisor(&ctx_none, &["--image-credential-file", &none]).await;
    let pv_wrong = start_podvisor(&ctx_wrong, &["--image-credential-file", &wrong]).await;

    let auth_error = |m: &str| {
        let m = m.to_lowercase();
        m.contains("unauthorized") || m.contains("no basic auth credentials")
    };
    let timeout = Duration::from_secs(20);
    let ((none_msg, _), (wrong_msg, _), _) = tokio::join!(
        wait_waiting(
            &ctx_none,
            &pv_none,
            "secret",
            "ImagePullBackOff",
            timeout,
            auth_error
        ),
        wait_waiting(
            &ctx_wrong,
            &pv_wrong,
            "secret",
            "ImagePullBackOff",
            timeout,
            auth_error
        ),
        ctx.wait_pod_running(&pv, "secret"),
    );
    assert!(
        none_msg.contains(&image),
        "no credentials: message: {none_msg}"
    );
    assert!(
        wrong_msg.contains(&image),
        "wrong credentials: message: {wrong_msg}"
    );
    for (c, name) in [(&ctx_none, "no"), (&ctx_wrong, "wrong")] {
        assert!(
            c.pod_containers("secret")
                .iter()
                .all(|x| x.container() == "POD"),
            "with {name} credentials the app container was created:\n{}",
            show(&c.pod_containers("secret"))
        );
    }
    let log = ctx.all_logs();
    assert!(
        pull_lines(&log, "Successfully pulled image")
            .iter()
            .any(|l| l.image == image),
        "no successful pull of {image} with credentials\n{log}"
    );
}

// --- 5. contradictory flags -------------------------------------------------

#[tokio::test]
async fn serialized_pulls_with_a_parallel_limit_refuse_to_start() {
    let ctx = TestCtx::new("pullflags");
    let (code, stderr) = run_expecting_exit(
        &ctx,
        &[
            "--serialize-image-pulls=true",
            "--max-parallel-image-pulls=2",
        ],
    );
    assert_eq!(code, Some(2), "exit code; stderr:\n{stderr}");
    assert!(
        stderr.contains("--serialize-image-pulls") && stderr.contains("--max-parallel-image-pulls"),
        "the message should name both flags:\n{stderr}"
    );
    assert!(
        !stderr.contains("podvisor running"),
        "podvisor started:\n{stderr}"
    );
    assert!(ctx.containers().is_empty());
}

// --- 6. a slow pull says how far it is ------------------------------------------

/// A TCP proxy on 127.0.0.1 in front of `to`, passing what the server sends
/// at `bytes_per_sec` at most: a registry as slow as a distant one.
async fn slow_proxy(to: u16, bytes_per_sec: usize) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the proxy");
    let port = listener.local_addr().expect("proxy address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await else {
                    return;
                };
                let (mut client_in, mut client_out) = client.into_split();
                let (mut server_in, mut server_out) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut client_in, &mut server_out).await;
                    let _ = server_out.shutdown().await;
                });
                // Down, in tenths of a second's worth.
                let chunk = (bytes_per_sec / 10).max(1);
                let mut buf = vec![0u8; chunk];
                loop {
                    let started = tokio::time::Instant::now();
                    let n = match server_in.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if client_out.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let due = Duration::from_secs_f64(n as f64 / bytes_per_sec as f64);
                    tokio::time::sleep_until(started + due).await;
                }
                let _ = client_out.shutdown().await;
                up.abort();
            });
        }
    });
    port
}

/// `Pulling image "…": D of T layers, X MiB of Y MiB`: (D, T, X, Y).
fn pull_progress_of(message: &str) -> Option<(u32, u32, f64, f64)> {
    let (_, told) = message.split_once("\": ")?;
    let (layers, bytes) = told.split_once(" layers, ")?;
    let (done, total) = layers.split_once(" of ")?;
    let (x, y) = bytes.split_once(" of ")?;
    let mib = |s: &str| s.strip_suffix(" MiB")?.parse::<f64>().ok();
    Some((done.parse().ok()?, total.parse().ok()?, mib(x)?, mib(y)?))
}

#[tokio::test]
async fn a_slow_pull_shows_its_progress_in_the_waiting_message_and_the_pulling_event() {
    let ctx = TestCtx::new("pullprogress");
    let mut tags = LocalTags::default();
    let registry = Registry::start(&ctx);
    let repo = format!("e2e-{}/big:1", random_suffix());
    // Busybox plus a layer of 12 MiB that does not compress: two layers, the
    // first already on the engine.
    let pushed = format!("{}/{repo}", registry.addr());
    let maker = format!("pullprogress-{}", random_suffix());
    docker(&[
        "run",
        "--name",
        &maker,
        &env().busybox_image,
        "dd",
        "if=/dev/urandom",
        "of=/blob",
        "bs=1048576",
        "count=12",
    ]);
    tags.own(&pushed);
    docker(&["commit", &maker, &pushed]);
    docker(&["rm", &maker]);
    docker_as(None, None, &["push", "--quiet", &pushed]);
    docker(&["rmi", &pushed]);
    assert!(!present(&pushed), "{pushed} is still present");

    // Pulled through a proxy at 3 MiB/s: about 4 s.
    let slow = slow_proxy(registry.port, 3 * 1024 * 1024).await;
    let image = format!("127.0.0.1:{slow}/{repo}");
    tags.own(&image);
    ctx.write_manifest("big.yaml", &image_pod("big", &image, "IfNotPresent"));
    let pv = start_podvisor(&ctx, &[]).await;

    // Every distinct waiting message, until the pod runs.
    let seen: RefCell<Vec<String>> = RefCell::default();
    ctx.wait_until(CONVERGE, "pod big to run", || async {
        let list = pv.pods().await?;
        if let Some((_, m)) = waiting_of(&list, "big") {
            let mut seen = seen.borrow_mut();
            if seen.last() != Some(&m) {
                seen.push(m);
            }
        }
        let phase = find_pod(&list, "big").map(|p| p["status"]["phase"].clone());
        (phase == Some(Value::from("Running")))
            .then_some(())
            .ok_or(format!("phase {phase:?}"))
    })
    .await;
    let seen = seen.into_inner();
    eprintln!("waiting messages while pulling: {seen:?}");
    let progress: Vec<(u32, u32, f64, f64)> =
        seen.iter().filter_map(|m| pull_progress_of(m)).collect();
    assert!(
        progress.len() >= 2,
        "a ~4 s pull told its progress fewer than twice; messages {seen:?}\n{}",
        ctx.failure_report()
    );
    for (done, total, x, y) in &progress {
        assert_eq!(*total, 2, "busybox and the blob: {seen:?}");
        assert!(
            *done <= 1,
            "the blob layer is not done while waiting: {seen:?}"
        );
        assert!(*y >= 11.9 && *y <= 12.5, "the blob's size: {seen:?}");
        assert!(x <= y, "{seen:?}");
    }
    assert!(
        progress.windows(2).all(|w| w[1].2 > w[0].2),
        "the bytes done grow: {seen:?}"
    );

    // The Pulling event says how far the pull got; Pulled follows it.
    let events = pv.events("default", "big").await.expect("events");
    let messages: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let pulling: Vec<&String> = messages
        .iter()
        .filter(|(r, _)| r == "Pulling")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(pulling.len(), 1, "{messages:?}");
    assert!(
        pull_progress_of(pulling[0]).is_some(),
        "the Pulling event does not say how far: {messages:?}"
    );
    assert!(messages.iter().any(|(r, _)| r == "Pulled"), "{messages:?}");
}
