//! `make bench`, on the real engine: what pods that need nothing cost.
//!
//! A file of 1000 pods the node refuses (each asks for 1000 CPUs) is what a
//! careless or hostile manifest can leave on a node for days. Once each is
//! refused, podvisor must hold them for nearly nothing (issue 11, item 7):
//! under 40 MiB resident and under 1 % of a core, with a relist every 2 s
//! and a rescan every 5 s to make idling hard.
//!
//! Measured once idle: after the watch history (`HISTORY_AGE`) no longer
//! keeps the changes of the start. The baseline, measured in the same run: the same
//! binary with the same flags on an empty directory. Printed: both RSS (`VmRSS`, and the peak
//! `VmHWM`), the cost per refused pod, both CPU shares over 20 s. Exits
//! non-zero when a target is missed.
//!
//! Needs `DOCKER_HOST` and `PODVISOR_PAUSE_IMAGE` / `PODVISOR_BUSYBOX_IMAGE`
//! (`make bench` sets them up); refuses to run without them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use podvisor::actors::pod_feed::HISTORY_AGE;

mod support;
use support::{cpu_ticks, env, status_kib, TICKS_PER_SEC};

const PODS: usize = 1000;
const RSS_TARGET_KIB: u64 = 40 * 1024;
const CPU_TARGET: f64 = 0.01;
const MEASURE: Duration = Duration::from_secs(20);

struct Agent {
    child: Child,
    node: String,
    log: std::path::PathBuf,
}

impl Agent {
    fn start(dir: &Path, name: &str, manifests: &Path) -> Agent {
        let node = format!("bench-idle-{name}-{}", std::process::id());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(support::podvisor_bin())
            .args(["run", "--pod-manifest-path"])
            .arg(manifests)
            .args(["--node-name", &node, "--port", &port.to_string()])
            .arg("--read-only-port=0")
            .args(["--pod-infra-container-image", &env("PODVISOR_PAUSE_IMAGE")])
            .args(["--sync-frequency=2s", "--file-check-frequency=5s"])
            .arg("--root-dir")
            .arg(dir.join(format!("{name}-root")))
            .env("DOCKER_HOST", env("DOCKER_HOST"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("podvisor starts");
        Agent { child, node, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many pods the log says were refused.
    fn refusals(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("pod refused:")
            .count()
    }

    /// (VmRSS, VmHWM, CPU share) once settled (`settle`), over [`MEASURE`].
    fn measure(&mut self, settle: Duration) -> (u64, u64, f64) {
        std::thread::sleep(settle);
        let t0 = Instant::now();
        let ticks0 = cpu_ticks(self.pid());
        std::thread::sleep(MEASURE);
        let ticks = cpu_ticks(self.pid()) - ticks0;
        let cpu = ticks as f64 / TICKS_PER_SEC / t0.elapsed().as_secs_f64();
        assert!(
            self.child.try_wait().expect("wait").is_none(),
            "podvisor exited; see {}",
            self.log.display()
        );
        (
            status_kib(self.pid(), "VmRSS"),
            status_kib(self.pid(), "VmHWM"),
            cpu,
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Refused pods create nothing; anything found is removed all the same.
        let out = Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label=podvisor.io/node={}", self.node))
            .output();
        if let Ok(out) = out {
            for id in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
}

fn refused_pods(busybox: &str) -> String {
    (0..PODS)
        .map(|i| {
            format!(
                "# {i}: asks for more CPU than any node has: refused, nothing created\n\
                 apiVersion: v1\nkind: Pod\nmetadata:\n  name: refused-{i}\nspec:\n  containers:\n  \
                 - name: app\n    image: {busybox}\n    resources:\n      requests:\n        cpu: \"1000\"\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn main() {
    let busybox = env("PODVISOR_BUSYBOX_IMAGE");
    let dir = tempfile::tempdir().expect("tempdir");

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let mut base = Agent::start(dir.path(), "baseline", &empty);
    let (base_rss, base_hwm, base_cpu) = base.measure(Duration::from_secs(5));
    drop(base);

    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("refused.yaml"), refused_pods(&busybox)).unwrap();
    let mut agent = Agent::start(dir.path(), "refused", &manifests);
    let t0 = Instant::now();
    while agent.refusals() < PODS {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "only {} of {PODS} pods refused after 120 s; see {}",
            agent.refusals(),
            agent.log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let refused_after = t0.elapsed();
    // Idle means once the watch history no longer keeps the changes of the
    // start (podvisor::actors::pod_feed::HISTORY_AGE), after a relist.
    let (rss, hwm, cpu) = agent.measure(HISTORY_AGE + Duration::from_secs(5));
    let refusals = agent.refusals();

    let mib = |kib: u64| kib as f64 / 1024.0;
    println!("idle: {PODS} refused pods, relist every 2 s, rescan every 5 s");
    println!(
        "  baseline (no pods): RSS {:.1} MiB (peak {:.1}), CPU {:.2} % of a core",
        mib(base_rss),
        mib(base_hwm),
        base_cpu * 100.0
    );
    println!(
        "  {PODS} refused pods:   RSS {:.1} MiB (peak {:.1}), CPU {:.2} % of a core; all refused after {:.1} s",
        mib(rss),
        mib(hwm),
        cpu * 100.0,
        refused_after.as_secs_f64()
    );
    println!(
        "  per refused pod: {:.1} KiB; RSS ratio to baseline {:.2}",
        rss.saturating_sub(base_rss) as f64 / PODS as f64,
        rss as f64 / base_rss as f64
    );
    let mut missed = Vec::new();
    if rss > RSS_TARGET_KIB {
        missed.push(format!("RSS {:.1} MiB over 40 MiB", mib(rss)));
    }
    if cpu > CPU_TARGET {
        missed.push(format!("CPU {:.2} % over 1 %", cpu * 100.0));
    }
    if refusals != PODS {
        // Each refusal is logged once; more lines mean a pod was re-judged.
        missed.push(format!("{refusals} refusals logged for {PODS} pods"));
    }
    if !missed.is_empty() {
        eprintln!("idle: targets missed: {}", missed.join("; "));
        std::process::exit(1);
    }
    println!("  targets met: under 40 MiB and 1 % of a core");
}
