//! Harness of the end-to-end tests: a real `podvisor run` against a real
//! Docker engine.
//!
//! - [`env`] checks once that the engine answers and that the project's
//!   images are there, and panics with what to do when not (`make test`, or
//!   `eval "$(scripts/ensure-env.sh)"`): the suite never skips silently.
//! - [`TestCtx`]: one per test: its own node name (`podvisor.io/node` is how
//!   podvisor knows its containers, so tests running in parallel on one engine
//!   never touch each other), manifest directory and tempdir. Dropping it
//!   removes every container of its node(s); on a failure it keeps the
//!   tempdir and prints the podvisor logs and the node's containers (set
//!   `PODVISOR_E2E_KEEP=1` to keep the tempdirs of passing tests too).
//! - [`Podvisor`]: the daemon, on a free port, its stderr in the tempdir.
//!   Declare it *after* the [`TestCtx`] so that it dies first.
//! - Docker through the `docker` CLI; `/pods` and `/healthz` through reqwest.

use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How often [`TestCtx::wait_until`] looks again.
pub const POLL: Duration = Duration::from_millis(100);
/// `--sync-frequency` of every podvisor started here.
pub const SYNC: Duration = Duration::from_secs(1);
/// Long enough for a pod of a few containers to start (or go) on a busy engine.
pub const CONVERGE: Duration = Duration::from_secs(40);

const NODE_LABEL: &str = "podvisor.io/node";
const HOW_TO: &str = "run the end-to-end tests with `make test`, or first run \
    `eval \"$(scripts/ensure-env.sh)\"` in the repository (it starts the private Docker \
    engine and builds the images) and then `PODVISOR_E2E=1 cargo test --features test-util \
    --test e2e`";

/// What the tests need from outside: an engine and the project's images.
#[derive(Debug)]
pub struct Env {
    pub docker_host: String,
    /// The infra (pause) image: `--pod-infra-container-image`.
    pub pause_image: String,
    /// busybox with every applet (sh, sleep, httpd, wget, ...).
    pub busybox_image: String,
}

/// The environment, checked once per test binary; panics with what is
/// missing and how to get it.
pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |name: &str| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => panic!("{name} is not set; {HOW_TO}"),
        };
        let env = Env {
            docker_host: var("DOCKER_HOST"),
            pause_image: var("PODVISOR_PAUSE_IMAGE"),
            busybox_image: var("PODVISOR_BUSYBOX_IMAGE"),
        };
        let version = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .env("DOCKER_HOST", &env.docker_host)
            .output()
            .unwrap_or_else(|e| panic!("cannot run the `docker` CLI ({e}); {HOW_TO}"));
        assert!(
            version.status.success(),
            "the Docker engine at DOCKER_HOST={} does not answer: {}; {HOW_TO}",
            env.docker_host,
            String::from_utf8_lossy(&version.stderr).trim()
        );
        for image in [&env.pause_image, &env.busybox_image] {
            let found = Command::new("docker")
                .args(["image", "inspect", "--format", "{{.Id}}", image])
                .env("DOCKER_HOST", &env.docker_host)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                found,
                "image {image} is missing from the engine at {}; {HOW_TO}",
                env.docker_host
            );
        }
        env
    })
}

// --- docker CLI -------------------------------------------------------------

/// A `Command` for a host program the tests run; panics, naming the entry
/// of `scripts/packages.list` that provides it (which `scripts/setup.sh`
/// installs), when it is not on PATH: a missing tool fails, never skips.
pub fn tool(program: &str) -> Command {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    if !on_path {
        let list = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/packages.list");
        let entry = std::fs::read_to_string(&list)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                l.split('#')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
            })
            .find(|w| w.len() > 2 && w[2..].contains(&program))
            .map(|w| format!("{} {}", w[0], w[1]));
        match entry {
            Some(e) => panic!(
                "{program} is not installed: it comes from `{e}` of scripts/packages.list; \
                 run scripts/setup.sh (as root) or `make test`, which installs the list"
            ),
            None => {
                panic!("{program} is not installed and scripts/packages.list has no entry for it")
            }
        }
    }
    Command::new(program)
}

/// Runs `docker ARGS` against the engine at `host`; the trimmed stdout, or
/// the error with stderr.
pub fn docker_on(host: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", host)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run docker {args:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "docker -H {host} {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `docker ARGS` against the tests' engine.
pub fn docker_try(args: &[&str]) -> Result<String, String> {
    docker_on(&env().docker_host, args)
}

/// Runs `docker ARGS`, panicking when it fails.
pub fn docker(args: &[&str]) -> String {
    docker_try(args).unwrap_or_else(|e| panic!("{e}"))
}

/// A container as `docker ps -a` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ctr {
    /// The full ID.
    pub id: String,
    pub name: String,
    /// `running`, `exited`, `created`, ...
    pub state: String,
}

impl Ctr {
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// The dockershim name's parts: `k8s_<container>_<pod>_<ns>_<uid>_<attempt>`.
    pub fn k8s_name(&self) -> Option<K8sName> {
        let parts: Vec<&str> = self.name.split('_').collect();
        match parts.as_slice() {
            ["k8s", container, pod, namespace, uid, attempt] => Some(K8sName {
                container: container.to_string(),
                pod: pod.to_string(),
                namespace: namespace.to_string(),
                uid: uid.to_string(),
                attempt: attempt.parse().ok()?,
            }),
            _ => None,
        }
    }

    /// The container name in the pod (`POD` for the infra container).
    pub fn container(&self) -> String {
        self.k8s_name().map(|n| n.container).unwrap_or_default()
    }

    pub fn attempt(&self) -> Option<u32> {
        self.k8s_name().map(|n| n.attempt)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct K8sName {
    pub container: String,
    pub pod: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
}

/// Every container (running or not) carrying all these labels.
pub fn containers_with(labels: &[(&str, &str)]) -> Vec<Ctr> {
    let mut args = vec!["ps", "-a", "--no-trunc"];
    let filters: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("label={k}={v}"))
        .collect();
    for f in &filters {
        args.extend(["--filter", f.as_str()]);
    }
    args.extend(["--format", "{{.ID}} {{.Names}} {{.State}}"]);
    let mut list: Vec<Ctr> = docker(&args)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut f = l.split_whitespace();
            let mut next = || f.next().unwrap_or_default().to_string();
            Ctr {
                id: next(),
                name: next(),
                state: next(),
            }
        })
        .collect();
    list.sort_by(|a, b| a.name.cmp(&b.name));
    list
}

/// `docker inspect -f TEMPLATE ID`.
pub fn inspect(id: &str, template: &str) -> String {
    docker(&["inspect", "-f", template, id])
}

/// Whether a container of this ID or name exists at all.
pub fn exists(id: &str) -> bool {
    docker_try(&["inspect", "-f", "{{.Id}}", id]).is_ok()
}

/// A container's labels.
pub fn labels(id: &str) -> BTreeMap<String, String> {
    let json = inspect(id, "{{json .Config.Labels}}");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("labels of {id}: {e}: {json}"))
}

/// Removes these containers (`docker rm -f`), ignoring ones already gone.
fn remove_all(ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    let mut args = vec!["rm", "-f"];
    args.extend(ids.iter().map(String::as_str));
    if let Err(e) = docker_try(&args) {
        if !e.contains("No such container") {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Containers one a line, for messages.
pub fn show(list: &[Ctr]) -> String {
    if list.is_empty() {
        return "  (no containers)".into();
    }
    list.iter()
        .map(|c| format!("  {} {} {}", &c.id[..c.id.len().min(12)], c.name, c.state))
        .collect::<Vec<_>>()
        .join("\n")
}

// --- per-test context -------------------------------------------------------

/// A random-enough suffix: per-process random hasher keys, time and a counter.
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:08x}", h.finish() as u32)
}

/// One test's world: node name, manifest directory, tempdir, logs.
pub struct TestCtx {
    /// `e2e-<tag>-<random>`: the `--node-name`, and the label that owns our containers.
    pub node: String,
    /// The `--pod-manifest-path`.
    pub manifests: PathBuf,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    /// Every podvisor log of this test, oldest first.
    logs: Mutex<Vec<PathBuf>>,
    /// Other nodes whose containers this test made (removed at the end too).
    other_nodes: Mutex<Vec<String>>,
    /// Whether a panic message already carried [`TestCtx::report`].
    reported: AtomicBool,
}

impl TestCtx {
    /// `tag`: a short DNS-1123 label naming the test.
    pub fn new(tag: &str) -> Self {
        env();
        let dir = tempfile::Builder::new()
            .prefix(&format!("podvisor-e2e-{tag}-"))
            .tempdir()
            .expect("tempdir");
        let path = dir.path().to_path_buf();
        let manifests = path.join("manifests");
        std::fs::create_dir_all(&manifests).expect("manifest dir");
        std::fs::create_dir_all(path.join("root")).expect("root dir");
        TestCtx {
            node: format!("e2e-{tag}-{}", random_suffix()),
            manifests,
            dir: Some(dir),
            path,
            logs: Mutex::new(Vec::new()),
            other_nodes: Mutex::new(Vec::new()),
            reported: AtomicBool::new(false),
        }
    }

    /// The test's tempdir.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a manifest atomically: a dot-file (ignored by the scanner),
    /// then a rename.
    pub fn write_manifest(&self, file: &str, text: &str) {
        let tmp = self.manifests.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write manifest");
        std::fs::rename(&tmp, self.manifests.join(file)).expect("rename manifest");
    }

    pub fn remove_manifest(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).expect("remove manifest");
    }

    /// The full path of a manifest file, as podvisor names it.
    pub fn manifest_path(&self, file: &str) -> String {
        self.manifests.join(file).display().to_string()
    }

    /// Every container of this node.
    pub fn containers(&self) -> Vec<Ctr> {
        containers_with(&[(NODE_LABEL, &self.node)])
    }

    /// The containers of one pod of this node (by its name label).
    pub fn pod_containers(&self, pod: &str) -> Vec<Ctr> {
        containers_with(&[(NODE_LABEL, &self.node), ("io.kubernetes.pod.name", pod)])
    }

    /// Removes `node`'s containers too when the test ends.
    pub fn clean_up_node(&self, node: &str) {
        self.other_nodes.lock().unwrap().push(node.to_string());
    }

    pub fn new_log(&self) -> PathBuf {
        let mut logs = self.logs.lock().unwrap();
        let log = self.path.join(format!("podvisor-{}.log", logs.len() + 1));
        logs.push(log.clone());
        log
    }

    /// The last lines of the newest podvisor log.
    pub fn log_tail(&self) -> String {
        let logs = self.logs.lock().unwrap();
        match logs.last() {
            None => "(podvisor was not started)".into(),
            Some(log) => {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(60)..].join("\n");
                format!("--- {} (last 60 lines) ---\n{tail}", log.display())
            }
        }
    }

    /// The text of every podvisor log of this test.
    pub fn all_logs(&self) -> String {
        let logs = self.logs.lock().unwrap();
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// What a failure message needs: the node's containers and the log tail.
    pub fn report(&self) -> String {
        let containers = docker_try(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={NODE_LABEL}={}", self.node),
            "--format",
            "{{.ID}} {{.Names}} {{.Status}}",
        ])
        .unwrap_or_else(|e| e);
        format!(
            "node {}: containers:\n{containers}\n{}",
            self.node,
            self.log_tail()
        )
    }

    /// [`TestCtx::report`] for a panic message (not printed again at the end).
    pub fn failure_report(&self) -> String {
        self.reported.store(true, Ordering::Relaxed);
        self.report()
    }

    /// Polls `probe` every [`POLL`] until it gives `Ok`; panics after
    /// `timeout` saying what was awaited, what was seen last, and the
    /// containers and podvisor log.
    pub async fn wait_until<T, F, Fut>(&self, timeout: Duration, what: &str, probe: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        match self.wait_until_or(timeout, probe).await {
            Ok(v) => v,
            Err(last) => panic!(
                "timed out after {timeout:?} waiting for {what}\nlast seen: {last}\n{}",
                self.failure_report()
            ),
        }
    }

    /// Polls `probe` until it answers `Ok` or `timeout` passes; then the
    /// last thing it saw.
    pub async fn wait_until_or<T, F, Fut>(
        &self,
        timeout: Duration,
        mut probe: F,
    ) -> Result<T, String>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let start = Instant::now();
        loop {
            let last = match probe().await {
                Ok(v) => return Ok(v),
                Err(seen) => seen,
            };
            if start.elapsed() >= timeout {
                return Err(last);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until `/pods` shows `pod` Running with every container ready,
    /// each with a `docker://` ID of a container that runs; returns the pod.
    pub async fn wait_pod_running(&self, pv: &Podvisor, pod: &str) -> Value {
        let what = format!("pod {pod} to be Running with all containers ready");
        self.wait_until(CONVERGE, &what, || async {
            let list = pv.pods().await?;
            let p = find_pod(&list, pod).ok_or_else(|| format!("{pod} not in /pods: {list}"))?;
            let statuses = p["status"]["containerStatuses"]
                .as_array()
                .filter(|s| !s.is_empty())
                .ok_or_else(|| format!("no containerStatuses: {}", p["status"]))?;
            let phase = p["status"]["phase"].as_str().unwrap_or_default();
            let ready = statuses.iter().all(|s| s["ready"] == Value::Bool(true));
            if phase != "Running" || !ready {
                return Err(format!("phase {phase}, status {}", p["status"]));
            }
            let running: Vec<String> = self
                .pod_containers(pod)
                .into_iter()
                .filter(Ctr::running)
                .map(|c| c.id)
                .collect();
            for s in statuses {
                let id = docker_id(s).ok_or_else(|| format!("no containerID: {s}"))?;
                if !running.iter().any(|r| r == id) {
                    return Err(format!("{id} of /pods is not a running container"));
                }
            }
            Ok(p.clone())
        })
        .await
    }
}

impl Drop for TestCtx {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        let mut nodes = vec![self.node.clone()];
        nodes.extend(
            self.other_nodes
                .lock()
                .map(|n| n.clone())
                .unwrap_or_default(),
        );
        if failed && !self.reported.load(Ordering::Relaxed) {
            eprintln!("=== test failed; {}", self.report());
        }
        for node in nodes {
            let ids: Vec<String> = containers_with(&[(NODE_LABEL, &node)])
                .into_iter()
                .map(|c| c.id)
                .collect();
            remove_all(&ids);
        }
        if let Some(dir) = self.dir.take() {
            if failed || std::env::var_os("PODVISOR_E2E_KEEP").is_some() {
                eprintln!("=== kept the test's files in {}", dir.keep().display());
            }
        }
    }
}

// --- podvisor ---------------------------------------------------------------

/// A free TCP port on 127.0.0.1 (bound, read, released), never one this
/// test binary handed out before: the tests run in parallel, each podvisor
/// takes two ports, and the system may give a port just released again.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// A running `podvisor run`.
pub struct Podvisor {
    child: Option<Child>,
    /// The read-only API's port (`/healthz`, `/pods`).
    pub port: u16,
    /// The secure API's port (HTTPS, kubectl).
    pub secure_port: u16,
    /// Its stderr.
    pub log: PathBuf,
    http: reqwest::Client,
}

impl Podvisor {
    /// The command line of the tests' podvisor, `extra` appended (a flag
    /// given twice keeps its last value).
    pub fn command(ctx: &TestCtx, port: u16, secure_port: u16, extra: &[&str]) -> Command {
        let env = env();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_podvisor"));
        cmd.arg("run")
            .arg("--pod-manifest-path")
            .arg(&ctx.manifests)
            .args(["--node-name", &ctx.node])
            .args(["--read-only-port", &port.to_string()])
            .args(["--port", &secure_port.to_string()])
            .args(["--pod-infra-container-image", &env.pause_image])
            .args(["--sync-frequency", "1s", "--file-check-frequency", "500ms"])
            // Image GC off: the engine is shared, and a full disk must not
            // make one test's podvisor remove the images others use
            // (tests/e2e_image_gc.rs turns it on again).
            .args(["--image-gc-high-threshold", "100"])
            .arg("--root-dir")
            .arg(ctx.path().join("root"))
            .args(extra);
        // Hermetic: no PODVISOR_* setting from the caller's environment.
        for (k, _) in std::env::vars() {
            if k.starts_with("PODVISOR_") {
                cmd.env_remove(k);
            }
        }
        // No NO_COLOR: plain text in a log file is podvisor's own doing.
        cmd.env_remove("NO_COLOR")
            .env("DOCKER_HOST", &env.docker_host)
            .env("RUST_LOG", "info,podvisor=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    /// Starts podvisor without waiting for it.
    pub fn spawn(ctx: &TestCtx, extra: &[&str]) -> Self {
        let (port, secure_port) = (free_port(), free_port());
        let log = ctx.new_log();
        let file = std::fs::File::create(&log).expect("log file");
        let child = Self::command(ctx, port, secure_port, extra)
            .stderr(file)
            .spawn()
            .expect("spawn podvisor");
        Podvisor {
            child: Some(child),
            port,
            secure_port,
            log,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http client"),
        }
    }

    /// Starts podvisor and waits until `/healthz` says 200.
    pub async fn start(ctx: &TestCtx) -> Self {
        let mut pv = Self::spawn(ctx, &[]);
        pv.wait_answering(ctx, Some(200)).await;
        pv
    }

    /// Waits until the API answers (with `status` when given); panics when
    /// podvisor exits meanwhile.
    pub async fn wait_answering(&mut self, ctx: &TestCtx, status: Option<u16>) {
        let what = match status {
            Some(s) => format!("/healthz on port {} to answer {s}", self.port),
            None => format!("/healthz on port {} to answer", self.port),
        };
        let start = Instant::now();
        loop {
            if let Some(exit) = self.exited() {
                panic!(
                    "podvisor exited ({exit}) while waiting for {what}\n{}",
                    ctx.failure_report()
                );
            }
            let last = match self.get("/healthz").await {
                Ok((code, _)) if status.is_none_or(|s| s == code) => return,
                Ok((code, body)) => format!("{code}: {body}"),
                Err(e) => e,
            };
            if start.elapsed() > Duration::from_secs(30) {
                panic!(
                    "timed out waiting for {what}; last: {last}\n{}",
                    ctx.failure_report()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path`: status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, String), String> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        let code = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| format!("GET {path}: {e}"))?;
        Ok((code, body))
    }

    /// `GET /pods`, which must answer 200 with JSON.
    pub async fn pods(&self) -> Result<Value, String> {
        match self.get("/pods").await? {
            (200, body) => serde_json::from_str(&body).map_err(|e| format!("/pods: {e}: {body}")),
            (code, body) => Err(format!("/pods answered {code}: {body}")),
        }
    }

    /// The exit status when podvisor has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut()?.try_wait().expect("try_wait")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("podvisor was stopped").id()
    }

    /// Waits (up to 20 s) for the process to end.
    fn reap(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("podvisor was stopped");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                return s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "podvisor (pid {}) did not exit within 20 s; log {}",
                    child.id(),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.reap()
    }

    /// SIGKILL, then waits for the exit.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child
            .as_mut()
            .expect("podvisor was stopped")
            .kill()
            .expect("SIGKILL podvisor");
        self.reap()
    }
}

impl Drop for Podvisor {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `podvisor run` with `args` that must make it refuse to start:
/// returns its exit code and stderr, panicking if it still runs after 10 s.
pub fn run_expecting_exit(ctx: &TestCtx, extra: &[&str]) -> (Option<i32>, String) {
    let log = ctx.new_log();
    let file = std::fs::File::create(&log).expect("log file");
    let mut child = Podvisor::command(ctx, free_port(), free_port(), extra)
        .stderr(file)
        .spawn()
        .expect("spawn podvisor");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "podvisor {extra:?} still ran after 10 s; it should have refused to start\n{}",
                ctx.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status.code(),
        std::fs::read_to_string(&log).unwrap_or_default(),
    )
}

// --- /pods ------------------------------------------------------------------

/// The pod named `name` in a `PodList`.
pub fn find_pod<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list["items"]
        .as_array()?
        .iter()
        .find(|p| p["metadata"]["name"] == name)
}

/// The names of the pods of a `PodList`.
pub fn pod_names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// A container's status in a pod, by name.
pub fn container_status<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["status"]["containerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// The Docker ID of a container status (`docker://<id>`).
pub fn docker_id(status: &Value) -> Option<&str> {
    status["containerID"].as_str()?.strip_prefix("docker://")
}

// --- manifests --------------------------------------------------------------

/// A pod manifest of `containers` (name, command) on busybox, with a grace
/// period of 1 s so that kills are quick.
pub fn pod_yaml(name: &str, policy: &str, containers: &[(&str, &[&str])]) -> String {
    let image = &env().busybox_image;
    let mut y = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: default\n\
         spec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n  containers:\n"
    );
    for (c, command) in containers {
        let command = serde_json::to_string(command).expect("json");
        let _ = write!(
            y,
            "    - name: {c}\n      image: {image}\n      command: {command}\n"
        );
    }
    y
}

/// `sleep 3600`, for containers that only need to run.
pub const SLEEP: &[&str] = &["sleep", "3600"];

// --- lifecycle and probe tests ------------------------------------------------
//
// Used by tests/e2e_lifecycle.rs and tests/e2e_probes.rs, not by every test
// binary that includes this module (hence the `allow(dead_code)`s).

#[allow(dead_code)]
impl Podvisor {
    /// `GET /pods/{namespace}/{name}/events`: the `EventList`'s items,
    /// ordered by last occurrence (oldest first).
    pub async fn events(&self, namespace: &str, name: &str) -> Result<Vec<Value>, String> {
        let path = format!("/pods/{namespace}/{name}/events");
        match self.get(&path).await? {
            (200, body) => {
                let list: Value =
                    serde_json::from_str(&body).map_err(|e| format!("{path}: {e}: {body}"))?;
                if list["kind"] != "EventList" {
                    return Err(format!("{path} is no EventList: {body}"));
                }
                list["items"]
                    .as_array()
                    .cloned()
                    .ok_or_else(|| format!("{path}: no items: {body}"))
            }
            (code, body) => Err(format!("{path} answered {code}: {body}")),
        }
    }
}

#[allow(dead_code)]
impl TestCtx {
    /// Writes a manifest given as JSON (`file` should end in `.json`).
    pub fn write_json(&self, file: &str, manifest: &Value) {
        self.write_manifest(file, &manifest.to_string());
    }

    /// Polls `/pods` until `check` accepts the pod named `pod`; returns
    /// what `check` gave.
    pub async fn wait_pod<T>(
        &self,
        pv: &Podvisor,
        pod: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Value) -> Result<T, String>,
    ) -> T {
        let what = format!("pod {pod}: {what}");
        self.wait_until(timeout, &what, || async {
            let list = pv.pods().await?;
            let p = find_pod(&list, pod).ok_or_else(|| format!("{pod} not in /pods: {list}"))?;
            check(p).map_err(|e| format!("{e}\n  status: {}", p["status"]))
        })
        .await
    }
}

/// The `status` (`"True"`/`"False"`) of a pod condition.
#[allow(dead_code)]
pub fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a str> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)?["status"]
        .as_str()
}

/// An init container's status in a pod, by name.
#[allow(dead_code)]
pub fn init_container_status<'a>(pod: &'a Value, name: &str) -> Option<&'a Value> {
    pod["status"]["initContainerStatuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// A pod manifest (as JSON) of these containers, `spec_extra` merged into
/// its spec; a grace period of 1 s unless `spec_extra` says otherwise.
#[allow(dead_code)]
pub fn pod_json(name: &str, policy: &str, containers: Value, spec_extra: Value) -> Value {
    let mut spec = serde_json::json!({
        "restartPolicy": policy,
        "terminationGracePeriodSeconds": 1,
        "containers": containers,
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec,
    })
}

/// Every container of `pod` named `container` (app or init), oldest
/// attempt first.
#[allow(dead_code)]
pub fn attempts(ctx: &TestCtx, pod: &str, container: &str) -> Vec<Ctr> {
    let mut list: Vec<Ctr> = ctx
        .pod_containers(pod)
        .into_iter()
        .filter(|c| c.container() == container)
        .collect();
    list.sort_by_key(|c| c.attempt());
    list
}

/// A container's time field (`{{.State.StartedAt}}`, `{{.Created}}`, ...).
#[allow(dead_code)]
pub fn inspect_time(id: &str, template: &str) -> chrono::DateTime<chrono::Utc> {
    let t = inspect(id, template);
    chrono::DateTime::parse_from_rfc3339(&t)
        .unwrap_or_else(|e| panic!("{template} of {id}: {t:?}: {e}"))
        .with_timezone(&chrono::Utc)
}

// --- kubectl against the node ---------------------------------------------

/// `kubectl ARGS` (the machine's real one) with the kubeconfig podvisor wrote; stdout, or a panic
/// with stderr.
pub fn kubectl(ctx: &TestCtx, args: &[&str]) -> String {
    let out = kubectl_try(ctx, args);
    match out {
        Ok(stdout) => stdout,
        Err(e) => panic!("kubectl {args:?}: {e}\n{}", ctx.failure_report()),
    }
}

pub fn kubeconfig(ctx: &TestCtx) -> PathBuf {
    ctx.path().join("root").join("kubeconfig")
}

pub fn kubectl_try(ctx: &TestCtx, args: &[&str]) -> Result<String, String> {
    let out = tool("kubectl")
        .env("KUBECONFIG", kubeconfig(ctx))
        .args(["--request-timeout=20s"])
        .args(args)
        .output()
        .expect("kubectl runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}
