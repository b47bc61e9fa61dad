//! The test plugin `tests/plugins/record-veth` run through
//! [`ExecPlugin`] against real containers of a real Docker engine: the
//! plugin's contract as the end-to-end tests rely on it, and `ExecPlugin`
//! passing `DOCKER_HOST` and `PATH` through (the plugin's own settings are
//! in `record-veth.env` beside it).
//!
//! Needs root (veth pairs, `nsenter`), `ip`, `nsenter`, the `docker` CLI, and
//! the engine and images of `scripts/ensure-env.sh`: run `make test`, or
//! first `eval "$(scripts/ensure-env.sh)"` in the repository and then
//! `cargo test --features test-util --test exec_plugin_real`. Without them
//! the tests fail saying so; they never skip.
//!
//! Each test copies the plugin into a tempdir of its own (so that its
//! `calls.log` and `state/` are there), runs a busybox container of a unique
//! name and removes it at the end, pass or fail. The pods' subnet
//! (`PODVISOR_TEST_PLUGIN_SUBNET` in the copy's `record-veth.env`) is made
//! once per run from the process id.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use podvisor::network::exec::ExecPlugin;
use podvisor::network::{NetworkError, NetworkPlugin, PodNetwork, CALL_TIMEOUT};

const HOW_TO: &str = "run `make test`, or first `eval \"$(scripts/ensure-env.sh)\"` in the \
    repository (it starts the private Docker engine and builds the images) and then \
    `cargo test --features test-util --test exec_plugin_real` as root";

/// No plugin call of these tests may take longer.
const LIMIT: Duration = Duration::from_secs(60);

/// The engine, the image and the pods' subnet; checked once, panics with
/// what is missing and how to get it.
struct Env {
    busybox_image: String,
    /// `a.b.c`: the pods' IPs are `a.b.c.N`.
    subnet: String,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let var = |name: &str| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => v,
            _ => panic!("{name} is not set; {HOW_TO}"),
        };
        let docker_host = var("DOCKER_HOST");
        let busybox_image = var("PODVISOR_BUSYBOX_IMAGE");
        // SAFETY: geteuid cannot fail and touches no memory.
        let euid = unsafe { libc::geteuid() };
        assert_eq!(
            euid, 0,
            "these tests make veth pairs and enter network namespaces: they need root; {HOW_TO}"
        );
        for tool in ["ip", "nsenter", "docker"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(found, "`{tool}` is not on PATH; {HOW_TO}");
        }
        let version = docker(&["version", "--format", "{{.Server.Version}}"]);
        assert!(
            version.status.success(),
            "the Docker engine at DOCKER_HOST={docker_host} does not answer: {}; {HOW_TO}",
            text(&version.stderr)
        );
        let image = docker(&["image", "inspect", "--format", "{{.Id}}", &busybox_image]);
        assert!(
            image.status.success(),
            "image {busybox_image} is missing from the engine at {docker_host}; {HOW_TO}"
        );
        // Unique per run: 10.200.0 .. 10.249.255, from the process id.
        let pid = std::process::id();
        let subnet = format!("10.{}.{}", 200 + (pid / 256) % 50, pid % 256);
        Env {
            busybox_image,
            subnet,
        }
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).trim().to_string()
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run the `docker` CLI ({e}); {HOW_TO}"))
}

fn host_link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", name])
        .output()
        .map(|o| o.status.success())
        .unwrap_or_else(|e| panic!("cannot run `ip` ({e}); {HOW_TO}"))
}

/// A running busybox container, removed when dropped.
struct Container {
    name: String,
    id: String,
}

impl Container {
    fn run(test: &str) -> Container {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let name = format!("pv-execplug-{test}-{}-{nanos}", std::process::id());
        let out = docker(&[
            "run",
            "-d",
            "--name",
            &name,
            &env().busybox_image,
            "sleep",
            "300",
        ]);
        assert!(
            out.status.success(),
            "docker run {name}: {}",
            text(&out.stderr)
        );
        let id = text(&out.stdout);
        assert!(id.len() == 64, "docker run printed no container ID: {id:?}");
        Container { name, id }
    }

    fn exec(&self, cmd: &[&str]) -> Output {
        let mut args = vec!["exec", self.name.as_str()];
        args.extend_from_slice(cmd);
        docker(&args)
    }

    fn remove(&self) {
        let _ = docker(&["rm", "-f", "-v", &self.name]);
    }

    fn pod(&self) -> PodNetwork {
        PodNetwork {
            namespace: "ns1".into(),
            name: "web".into(),
            uid: "uid-1".into(),
            infra_id: self.id.clone(),
            ..Default::default()
        }
    }

    /// The plugin's host-side veth of this container.
    fn host_link(&self) -> String {
        format!("pv{}", &self.id[..8])
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        self.remove();
    }
}

/// The plugin copied into `<tempdir>/plugins/record-veth/record-veth`.
fn plugin(tmp: &Path) -> (ExecPlugin, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/record-veth/record-veth");
    let dir = tmp.join("plugins/record-veth");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("record-veth");
    std::fs::copy(&src, &exe).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    settings(&dir, "");
    let plugin = ExecPlugin::find(&tmp.join("plugins"), "record-veth", CALL_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    (plugin, dir.join("calls.log"))
}

/// The copy's `record-veth.env`: the run's subnet, and `extra` lines.
fn settings(dir: &Path, extra: &str) {
    let text = format!("PODVISOR_TEST_PLUGIN_SUBNET={}\n{extra}", env().subnet);
    std::fs::write(dir.join("record-veth.env"), text).unwrap();
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(LIMIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what} took over {LIMIT:?}"))
}

/// The recorded calls without their times; checks each line has one.
fn calls(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|line| {
            let (time, args) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("record line without arguments: {line:?}"));
            assert!(
                time.len() >= 19 && time.bytes().all(|b| b.is_ascii_digit()),
                "record line without a time in ns: {line:?}"
            );
            args.to_string()
        })
        .collect()
}

#[tokio::test]
async fn record_veth_gives_a_real_container_eth1_with_the_ip_status_reports() {
    let env = env();
    let tmp = tempfile::tempdir().unwrap();
    let (plugin, log) = plugin(tmp.path());
    let c = Container::run("wire");
    let pod = c.pod();

    within("init", plugin.init()).await.unwrap();
    let wired = within("setup", plugin.setup(&pod))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(wired.ips.len(), 1, "{wired:?}");
    let ip = wired.ips[0];
    assert!(
        matches!(ip, IpAddr::V4(v4) if v4.to_string().starts_with(&format!("{}.", env.subnet))),
        "{ip} is not in {}.0/24 (PODVISOR_TEST_PLUGIN_SUBNET not passed through?)",
        env.subnet
    );
    assert_eq!(wired.record, serde_json::json!({"plugin": "record-veth"}));

    // In the container: eth1 with that address, up; on the host, its pair.
    let addr = c.exec(&["ip", "-4", "addr", "show", "eth1"]);
    let addr_text = text(&addr.stdout);
    assert!(addr.status.success(), "no eth1: {}", text(&addr.stderr));
    assert!(addr_text.contains(&format!("inet {ip}/24")), "{addr_text}");
    assert!(addr_text.contains("UP"), "{addr_text}");
    assert!(
        host_link_exists(&c.host_link()),
        "no host veth {}",
        c.host_link()
    );

    let status = within("status", plugin.status(&pod)).await.unwrap();
    assert_eq!(status.ips, vec![ip]);
    within("check", plugin.check(&pod)).await.unwrap();

    // Teardown removes the pair, and again succeeds.
    within("teardown", plugin.teardown(&pod)).await.unwrap();
    within("second teardown", plugin.teardown(&pod))
        .await
        .unwrap_or_else(|e| panic!("a second teardown failed: {e}"));
    assert!(!host_link_exists(&c.host_link()), "host veth left behind");
    let gone = c.exec(&["ip", "addr", "show", "eth1"]);
    assert!(!gone.status.success(), "eth1 left in the container");
    let after = within("status after teardown", plugin.status(&pod))
        .await
        .unwrap();
    assert!(after.ips.is_empty(), "{after:?}");

    let id = &c.id;
    let want: Vec<String> = [
        "init".to_string(),
        format!("setup ns1 web {id}"),
        format!("status ns1 web {id}"),
        format!("status ns1 web {id}"),
        format!("status ns1 web {id}"),
        format!("teardown ns1 web {id}"),
        format!("teardown ns1 web {id}"),
        format!("status ns1 web {id}"),
    ]
    .into();
    assert_eq!(calls(&log), want);

    // init fails when asked, naming the plugin and quoting its stderr.
    let plugin_dir = log.parent().unwrap().to_path_buf();
    settings(&plugin_dir, "PODVISOR_TEST_PLUGIN_FAIL_INIT=1\n");
    let failed = within("failing init", plugin.init()).await;
    settings(&plugin_dir, "");
    match failed {
        Err(NetworkError::Failed {
            plugin,
            call,
            message,
        }) => {
            assert_eq!((plugin.as_str(), call), ("record-veth", "init"));
            assert!(message.starts_with("exited with code 1: "), "{message}");
            assert!(message.contains("failing as asked"), "{message}");
        }
        other => panic!("want init to fail, got {other:?}"),
    }
    c.remove();
}

#[tokio::test]
async fn record_veth_teardown_of_a_container_already_gone_succeeds() {
    env();
    let tmp = tempfile::tempdir().unwrap();
    let (plugin, log) = plugin(tmp.path());
    let c = Container::run("gone");
    let pod = c.pod();
    within("setup", plugin.setup(&pod))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(host_link_exists(&c.host_link()));

    c.remove();
    let gone = PodNetwork { netns: None, ..pod };
    within("teardown", plugin.teardown(&gone))
        .await
        .unwrap_or_else(|e| panic!("teardown of a removed container failed: {e}"));
    assert!(!host_link_exists(&c.host_link()), "host veth left behind");
    let status = within("status", plugin.status(&gone)).await.unwrap();
    assert!(status.ips.is_empty(), "{status:?}");
    assert_eq!(
        calls(&log).last().map(String::as_str),
        Some(&*format!("status ns1 web {}", c.id))
    );
}

#[tokio::test]
async fn record_veth_setup_of_a_stopped_container_fails_with_its_message() {
    env();
    let tmp = tempfile::tempdir().unwrap();
    let (plugin, _log) = plugin(tmp.path());
    let c = Container::run("stopped");
    let stop = docker(&["kill", &c.name]);
    assert!(stop.status.success(), "docker kill: {}", text(&stop.stderr));
    match within("setup", plugin.setup(&c.pod())).await {
        Err(NetworkError::Failed {
            plugin,
            call,
            message,
        }) => {
            assert_eq!((plugin.as_str(), call), ("record-veth", "setup"));
            assert!(message.contains("is not running"), "{message}");
        }
        other => panic!("want setup to fail, got {other:?}"),
    }
}
