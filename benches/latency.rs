//! `make bench`, on the real engine: how fast podvisor notices and acts.
//!
//! 1. From a container's death (`docker kill`) to its replacement running:
//!    the old container's `FinishedAt` to the new one's `StartedAt`, both
//!    stamped by the engine.
//! 2. From a new manifest file to its first container created: the file's
//!    write time to the infra container's `Created`.
//!
//! The baseline, measured in the same run on the same engine: a
//! `docker run -d` of the same image (create + start by the engine alone,
//! through its CLI). The ratios say how much podvisor adds to what the
//! engine needs anyway. Targets (issue 6): under 250 ms and 300 ms.
//!
//! Needs `DOCKER_HOST` and `PODVISOR_PAUSE_IMAGE` / `PODVISOR_BUSYBOX_IMAGE`
//! (`make bench` sets them up); refuses to run without them.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod support;
use support::{env, ms, write_manifest};

const ROUNDS: usize = 5;

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("the docker CLI runs");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An engine timestamp (RFC 3339 with nanoseconds) as a `SystemTime`.
fn engine_time(text: &str) -> SystemTime {
    let t = chrono::DateTime::parse_from_rfc3339(text.trim())
        .unwrap_or_else(|e| panic!("bad engine time {text:?}: {e}"));
    SystemTime::UNIX_EPOCH + Duration::from_nanos(t.timestamp_nanos_opt().unwrap_or(0) as u64)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// IDs of the node's running containers named `k8s_<container>_<pod>_…`.
fn running(node: &str, container: &str, pod: &str) -> Vec<String> {
    let out = docker(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=podvisor.io/node={node}"),
        "--filter",
        &format!("name=^/k8s_{container}_{pod}_"),
    ]);
    out.lines().map(str::to_string).collect()
}

struct Agent(Child, String);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label=podvisor.io/node={}", self.1),
        ]);
        for id in ids.lines() {
            let _ = Command::new("docker").args(["rm", "-f", id]).output();
        }
    }
}

fn main() {
    let host = env("DOCKER_HOST");
    let pause = env("PODVISOR_PAUSE_IMAGE");
    let busybox = env("PODVISOR_BUSYBOX_IMAGE");
    let dir = tempfile::tempdir().expect("tempdir");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let node = format!("bench-{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let child = Command::new(support::podvisor_bin())
        .args(["run", "--pod-manifest-path"])
        .arg(&manifests)
        .args(["--node-name", &node, "--port", &port.to_string()])
        .arg("--read-only-port=0")
        .args(["--pod-infra-container-image", &pause])
        .args(["--sync-frequency=60s", "--file-check-frequency=60s"])
        .arg("--root-dir")
        .arg(dir.path().join("root"))
        .env("DOCKER_HOST", &host)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("podvisor starts");
    let _agent = Agent(child, node.clone());
    std::thread::sleep(Duration::from_millis(500));

    // Baseline: the engine alone creating and starting the same container.
    let mut baseline = Vec::new();
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        let id = docker(&[
            "run",
            "-d",
            "--label",
            &format!("podvisor.io/node={node}-baseline"),
            &busybox,
            "sleep",
            "3600",
        ]);
        baseline.push(t0.elapsed());
        docker(&["rm", "-f", &id]);
    }

    let mut new_file = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("new{round}");
        let written = SystemTime::now();
        write_manifest(&manifests, &name, &busybox);
        let infra = wait_for("the infra container", Duration::from_secs(20), || {
            running(&node, "POD", &name).into_iter().next()
        });
        let created = engine_time(&docker(&["inspect", "-f", "{{.Created}}", &infra]));
        new_file.push(created.duration_since(written).unwrap_or_default());
        wait_for("the app container", Duration::from_secs(20), || {
            running(&node, "app", &name).into_iter().next()
        });
    }

    let mut replacement = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("new{round}");
        let old = running(&node, "app", &name)
            .into_iter()
            .next()
            .expect("app running");
        docker(&["kill", &old]);
        let new = wait_for("the replacement", Duration::from_secs(20), || {
            running(&node, "app", &name)
                .into_iter()
                .find(|id| *id != old)
        });
        let died = engine_time(&docker(&["inspect", "-f", "{{.State.FinishedAt}}", &old]));
        let started = engine_time(&docker(&["inspect", "-f", "{{.State.StartedAt}}", &new]));
        replacement.push(started.duration_since(died).unwrap_or_default());
        // Let the restart back-off of the next round start from scratch.
        let _ = new;
    }

    let base = median(baseline);
    let (nf, rp) = (median(new_file), median(replacement));
    println!(
        "engine baseline (docker run -d, create+start): median {:.1} ms over {ROUNDS}",
        ms(base)
    );
    println!(
        "new manifest -> first container created: median {:.1} ms (target < 300 ms), ratio to baseline {:.2}",
        ms(nf),
        nf.as_secs_f64() / base.as_secs_f64()
    );
    println!(
        "container death -> replacement running: median {:.1} ms (target < 250 ms), ratio to baseline {:.2}",
        ms(rp),
        rp.as_secs_f64() / base.as_secs_f64()
    );
}
