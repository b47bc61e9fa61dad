//! [`Metrics`]: what `/metrics` shows, in the Prometheus text format
//! (`text/plain; version=0.0.4`, as the kubelet serves it).
//!
//! One registry, made by the daemon (or [`crate::actors::Deps::start`] in
//! tests) and shared as an `Arc`: the actors, the bounded runtime and the
//! API update it with atomic operations only (no lock is held across an
//! `.await`, nothing blocks). The names are the kubelet's where it has one;
//! podvisor's own start with `podvisor_`.
//!
//! Label values are bounded: engine call names, probe kinds, restart
//! reasons, manifest error kinds, HTTP methods and route templates. Never a
//! container ID, a pod name or a file name.
//!
//! The crate encodes OpenMetrics, where a counter's family is named without
//! `_total`; [`Metrics::encode`] turns that into the Prometheus text format,
//! where the `# HELP`/`# TYPE` lines name the samples (`…_total`).

use std::collections::HashSet;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type One = [(&'static str, &'static str); 1];
type Two = [(&'static str, &'static str); 2];
type HttpLabels = [(&'static str, String); 3];

/// Every metric podvisor shows; fields are the handles to update.
pub struct Metrics {
    registry: Registry,
    /// `kubelet_running_pods`: pods with a running infra container, at the
    /// last relist.
    pub running_pods: Gauge,
    /// `kubelet_running_containers{container_state}`: app containers by
    /// state, at the last relist.
    pub running_containers: Family<One, Gauge>,
    pub pod_start_duration: Histogram,
    pub pod_worker_duration: Family<One, Histogram, fn() -> Histogram>,
    pub runtime_operations: Family<One, Counter>,
    pub runtime_errors: Family<One, Counter>,
    pub runtime_duration: Family<One, Histogram, fn() -> Histogram>,
    pub image_pull_duration: Histogram,
    pub started_containers: Family<One, Counter>,
    pub probes: Family<Two, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub pull_queue_depth: Gauge,
    pub pull_wait: Histogram,
    pub rate_limit_waits: Counter,
    pub container_restarts: Family<One, Counter>,
    pub event_stream_reconnects: Counter,
    pub manifest_errors: Family<One, Counter>,
    pub manifest_broken_files: Gauge,
    /// The engine gate's limit and calls in flight, its queue's waits, and
    /// the calls that ran out of their budget.
    pub engine_limit: Gauge,
    pub engine_in_flight: Gauge,
    pub engine_wait: Histogram,
    pub runtime_timeouts: Family<One, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// The container states of `kubelet_running_containers`, all shown (0
/// when none).
pub const CONTAINER_STATES: [&str; 4] = ["running", "exited", "created", "unknown"];

fn histogram(buckets: &[f64]) -> Histogram {
    Histogram::new(buckets.iter().copied())
}

fn worker_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 12))
}

fn runtime_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.5, 14))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        let m = Self {
            running_pods: Gauge::default(),
            running_containers: Family::default(),
            pod_start_duration: histogram(&[
                0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0,
                240.0, 300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
            ]),
            pod_worker_duration: Family::new_with_constructor(worker_histogram),
            runtime_operations: Family::default(),
            runtime_errors: Family::default(),
            runtime_duration: Family::new_with_constructor(runtime_histogram),
            image_pull_duration: histogram(&[
                0.5, 1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0,
            ]),
            started_containers: Family::default(),
            probes: Family::default(),
            http_requests: Family::default(),
            pull_queue_depth: Gauge::default(),
            pull_wait: Histogram::new(exponential_buckets(0.01, 4.0, 9)),
            rate_limit_waits: Counter::default(),
            container_restarts: Family::default(),
            event_stream_reconnects: Counter::default(),
            manifest_errors: Family::default(),
            manifest_broken_files: Gauge::default(),
            engine_limit: Gauge::default(),
            engine_in_flight: Gauge::default(),
            engine_wait: Histogram::new(exponential_buckets(0.001, 4.0, 9)),
            runtime_timeouts: Family::default(),
            registry: Registry::default(),
        };
        for state in CONTAINER_STATES {
            m.running_containers
                .get_or_create(&[("container_state", state)])
                .set(0);
        }
        // Counters are registered without `_total`: the crate adds it.
        r.register(
            "kubelet_running_pods",
            "Number of pods that have a running pod sandbox",
            m.running_pods.clone(),
        );
        r.register(
            "kubelet_running_containers",
            "Number of containers currently running, by state",
            m.running_containers.clone(),
        );
        r.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the pod first desired to all its containers running",
            m.pod_start_duration.clone(),
        );
        r.register(
            "kubelet_pod_worker_duration_seconds",
            "Duration in seconds to sync a single pod, by operation: create, update, sync or kill",
            m.pod_worker_duration.clone(),
        );
        r.register(
            "kubelet_runtime_operations",
            "Cumulative number of runtime operations by operation type",
            m.runtime_operations.clone(),
        );
        r.register(
            "kubelet_runtime_operations_errors",
            "Cumulative number of runtime operation errors by operation type",
            m.runtime_errors.clone(),
        );
        r.register(
            "kubelet_runtime_operations_duration_seconds",
            "Duration in seconds of runtime operations, by operation type",
            m.runtime_duration.clone(),
        );
        r.register(
            "kubelet_image_pull_duration_seconds",
            "Duration in seconds to pull an image",
            m.image_pull_duration.clone(),
        );
        r.register(
            "kubelet_started_containers",
            "Cumulative number of containers started, by container type",
            m.started_containers.clone(),
        );
        r.register(
            "prober_probe",
            "Cumulative number of probes of containers, by probe type and result",
            m.probes.clone(),
        );
        r.register(
            "kubelet_http_requests",
            "Number of HTTP requests received, by method, route and status code",
            m.http_requests.clone(),
        );
        r.register(
            "podvisor_image_pull_queue_depth",
            "Image pulls waiting for their turn (parallel cap or registry QPS)",
            m.pull_queue_depth.clone(),
        );
        r.register(
            "podvisor_image_pull_wait_seconds",
            "Seconds a pull waited in the queue before it started",
            m.pull_wait.clone(),
        );
        r.register(
            "podvisor_registry_rate_limit_waits",
            "Pulls that had to wait for the registry QPS limit",
            m.rate_limit_waits.clone(),
        );
        r.register(
            "podvisor_container_restarts",
            "Containers started again, by reason",
            m.container_restarts.clone(),
        );
        r.register(
            "podvisor_engine_event_stream_reconnects",
            "Times the engine's event stream ended and was subscribed again",
            m.event_stream_reconnects.clone(),
        );
        r.register(
            "podvisor_manifest_errors",
            "Manifest documents that could not be used, by kind of error",
            m.manifest_errors.clone(),
        );
        r.register(
            "podvisor_manifest_broken_files",
            "Manifest files that are broken at the last scan",
            m.manifest_broken_files.clone(),
        );
        r.register(
            "podvisor_engine_calls_limit",
            "How many engine calls that change things (create, start, remove) may be in flight, as adapted to the engine's pace",
            m.engine_limit.clone(),
        );
        r.register(
            "podvisor_engine_calls_in_flight",
            "Engine calls that change things in flight now",
            m.engine_in_flight.clone(),
        );
        r.register(
            "podvisor_engine_call_wait_seconds",
            "Seconds an engine call that changes things waited for its turn (not part of its budget)",
            m.engine_wait.clone(),
        );
        r.register(
            "podvisor_runtime_operations_timeouts",
            "Engine calls that ran out of their budget, by operation type",
            m.runtime_timeouts.clone(),
        );
        r.register_collector(Box::new(ProcessCollector));
        Self { registry: r, ..m }
    }

    /// Counts one engine call (`operation_type`), its error if any, and its
    /// duration.
    pub fn runtime_call(&self, operation: &'static str, took: Duration, ok: bool) {
        let l = [("operation_type", operation)];
        self.runtime_operations.get_or_create(&l).inc();
        if !ok {
            self.runtime_errors.get_or_create(&l).inc();
        }
        self.runtime_duration
            .get_or_create(&l)
            .observe(took.as_secs_f64());
    }

    /// One container started: `container` or `podsandbox`.
    pub fn container_started(&self, container_type: &'static str) {
        self.started_containers
            .get_or_create(&[("container_type", container_type)])
            .inc();
    }

    /// One probe run: `liveness`/`readiness`/`startup`, passed or not.
    pub fn probe(&self, probe_type: &'static str, success: bool) {
        let result = if success { "successful" } else { "failed" };
        self.probes
            .get_or_create(&[("probe_type", probe_type), ("result", result)])
            .inc();
    }

    /// One HTTP request answered: `path` is the route template, its
    /// parameters written `:name` (`/pods/:namespace/:name/events`): a
    /// brace in a label value trips simple text parsers.
    pub fn http_request(&self, method: &str, path: &str, code: u16) {
        let path: String = path
            .chars()
            .filter_map(|c| match c {
                '{' => Some(':'),
                '}' => None,
                c => Some(c),
            })
            .collect();
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "other",
        };
        self.http_requests
            .get_or_create(&[
                ("method", method.to_string()),
                ("path", path),
                ("code", code.to_string()),
            ])
            .inc();
    }

    /// One container started again, for `reason`.
    pub fn container_restarted(&self, reason: &'static str) {
        self.container_restarts
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// One manifest document or file that could not be used.
    pub fn manifest_error(&self, kind: &'static str) {
        self.manifest_errors.get_or_create(&[("kind", kind)]).inc();
    }

    /// The app containers by state and the pods with a running sandbox, as
    /// one relist saw them: `(pod uid, is infra, state)`.
    pub fn set_relisted<'a>(
        &self,
        containers: impl IntoIterator<Item = (&'a str, bool, crate::runtime::ContainerState)>,
    ) {
        use crate::runtime::ContainerState as S;
        let mut counts = [0i64; 4];
        let mut pods = HashSet::new();
        for (uid, infra, state) in containers {
            if infra {
                if state == S::Running {
                    pods.insert(uid);
                }
                continue;
            }
            let i = match state {
                S::Running => 0,
                S::Exited => 1,
                S::Created => 2,
                S::Unknown => 3,
            };
            counts[i] += 1;
        }
        for (state, n) in CONTAINER_STATES.iter().zip(counts) {
            self.running_containers
                .get_or_create(&[("container_state", state)])
                .set(n);
        }
        self.running_pods.set(pods.len() as i64);
    }

    /// The exposition text (Prometheus 0.0.4). Reads `/proc/self` for the
    /// `process_*` metrics: call it off the actors' threads
    /// (`spawn_blocking`).
    pub fn encode(&self) -> String {
        let mut open = String::new();
        // Writing to a String does not fail; an encoder error would be a
        // bug in a metric, shown as a shorter page.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut open, &self.registry) {
            tracing::warn!(error = %e, "cannot encode a metric");
        }
        to_prometheus_text(&open)
    }
}

/// OpenMetrics text into Prometheus text: counters' `# HELP` and `# TYPE`
/// lines name the `_total` samples; no `# UNIT`, no `# EOF`.
fn to_prometheus_text(open: &str) -> String {
    let counters: HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 16 * counters.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let header = ["# HELP ", "# TYPE "]
            .into_iter()
            .find(|p| line.starts_with(p));
        if let Some(prefix) = header {
            let rest = &line[prefix.len()..];
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(&format!("{prefix}{name}_total {tail}\n"));
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The `process_*` metrics, read from `/proc/self` at each scrape.
#[derive(Debug)]
struct ProcessCollector;

/// What `/proc/self` tells: CPU seconds, resident bytes, open fds, start
/// time (seconds since the epoch).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct ProcessStats {
    cpu_seconds: f64,
    resident_bytes: f64,
    open_fds: f64,
    start_time: f64,
}

/// Fields of `/proc/self/stat` after the command: utime (14), stime (15),
/// starttime (22), rss (24), counted from 1 over the whole line.
fn parse_stat(stat: &str, ticks: f64, page: f64, boot_time: f64) -> Option<ProcessStats> {
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state).
    let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    Some(ProcessStats {
        cpu_seconds: (field(14)? + field(15)?) / ticks,
        resident_bytes: field(24)? * page,
        open_fds: 0.0,
        start_time: boot_time + field(22)? / ticks,
    })
}

fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn process_stats() -> Option<ProcessStats> {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    let mut s = parse_stat(&stat, ticks.max(1.0), page.max(1.0), boot)?;
    s.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
    Some(s)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = process_stats() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        for (name, help, v) in [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                s.open_fds,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                s.start_time,
            ),
        ] {
            let g = ConstGauge::new(v);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_the_command() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 \
                    1000 123456 300 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096.0, 1_700_000_000.0).unwrap();
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 300.0 * 4096.0);
        assert_eq!(s.start_time, 1_700_000_010.0);
        assert_eq!(
            boot_time("cpu 1 2\nbtime 1700000000\n"),
            Some(1_700_000_000.0)
        );
    }

    fn scrape(m: &Metrics) -> prometheus_parse::Scrape {
        let text = m.encode();
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    /// The value of `name` with exactly `labels`, or `None`.
    fn value(
        s: &prometheus_parse::Scrape,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<prometheus_parse::Value> {
        s.samples
            .iter()
            .find(|x| {
                x.metric == name
                    && x.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| x.labels.get(k) == Some(v))
            })
            .map(|x| x.value.clone())
    }

    #[test]
    fn every_metric_is_exposed_with_its_type_and_labels() {
        use crate::runtime::ContainerState as S;
        use prometheus_parse::Value as V;
        let m = Metrics::new();
        m.set_relisted([
            ("a", true, S::Running),
            ("a", false, S::Running),
            ("a", false, S::Exited),
            ("b", true, S::Exited),
            ("b", false, S::Created),
        ]);
        m.pod_start_duration.observe(2.5);
        m.pod_worker_duration
            .get_or_create(&[("operation", "create")])
            .observe(0.1);
        m.runtime_call("create_container", Duration::from_millis(20), true);
        m.runtime_call("start_container", Duration::from_millis(20), false);
        m.image_pull_duration.observe(3.0);
        m.container_started("container");
        m.container_started("podsandbox");
        m.probe("liveness", true);
        m.probe("readiness", false);
        m.http_request("GET", "/pods/{namespace}/{name}/events", 404);
        m.http_request("BREW", "/metrics", 200);
        m.pull_queue_depth.set(2);
        m.pull_wait.observe(0.5);
        m.rate_limit_waits.inc();
        m.container_restarted("container_exited");
        m.event_stream_reconnects.inc();
        m.manifest_error("parse");
        m.manifest_broken_files.set(1);
        let s = scrape(&m);
        let g = |n: &str, l: &[(&str, &str)]| value(&s, n, l);
        assert_eq!(g("kubelet_running_pods", &[]), Some(V::Gauge(1.0)));
        for (state, n) in [
            ("running", 1.0),
            ("exited", 1.0),
            ("created", 1.0),
            ("unknown", 0.0),
        ] {
            assert_eq!(
                g("kubelet_running_containers", &[("container_state", state)]),
                Some(V::Gauge(n)),
                "{state}"
            );
        }
        let count = |n: &str, l: &[(&str, &str)]| match value(&s, &format!("{n}_count"), l) {
            Some(V::Untyped(c)) => c,
            other => panic!("{n}_count: {other:?}"),
        };
        for (name, labels) in [
            ("kubelet_pod_start_duration_seconds", vec![]),
            (
                "kubelet_pod_worker_duration_seconds",
                vec![("operation", "create")],
            ),
            (
                "kubelet_runtime_operations_duration_seconds",
                vec![("operation_type", "create_container")],
            ),
            ("kubelet_image_pull_duration_seconds", vec![]),
            ("podvisor_image_pull_wait_seconds", vec![]),
        ] {
            assert!(
                matches!(g(name, &labels), Some(V::Histogram(ref b)) if !b.is_empty()),
                "{name} is a histogram"
            );
            assert_eq!(count(name, &labels), 1.0, "{name}");
        }
        let c = |n: &str, l: &[(&str, &str)]| g(n, l);
        let op = |o| [("operation_type", o)];
        assert_eq!(
            c("kubelet_runtime_operations_total", &op("create_container")),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "kubelet_runtime_operations_errors_total",
                &op("create_container")
            ),
            None
        );
        assert_eq!(
            c(
                "kubelet_runtime_operations_errors_total",
                &op("start_container")
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "kubelet_started_containers_total",
                &[("container_type", "podsandbox")]
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "prober_probe_total",
                &[("probe_type", "readiness"), ("result", "failed")]
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "prober_probe_total",
                &[("probe_type", "liveness"), ("result", "successful")]
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "kubelet_http_requests_total",
                &[
                    ("method", "GET"),
                    ("path", "/pods/:namespace/:name/events"),
                    ("code", "404")
                ]
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "kubelet_http_requests_total",
                &[("method", "other"), ("path", "/metrics"), ("code", "200")]
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c("podvisor_image_pull_queue_depth", &[]),
            Some(V::Gauge(2.0))
        );
        assert_eq!(
            c("podvisor_registry_rate_limit_waits_total", &[]),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c(
                "podvisor_container_restarts_total",
                &[("reason", "container_exited")]
            ),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c("podvisor_engine_event_stream_reconnects_total", &[]),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c("podvisor_manifest_errors_total", &[("kind", "parse")]),
            Some(V::Counter(1.0))
        );
        assert_eq!(
            c("podvisor_manifest_broken_files", &[]),
            Some(V::Gauge(1.0))
        );
        assert!(matches!(c("process_cpu_seconds_total", &[]), Some(V::Counter(v)) if v >= 0.0));
        assert!(matches!(c("process_resident_memory_bytes", &[]), Some(V::Gauge(v)) if v > 0.0));
        assert!(matches!(c("process_open_fds", &[]), Some(V::Gauge(v)) if v >= 3.0));
        assert!(matches!(c("process_start_time_seconds", &[]), Some(V::Gauge(v)) if v > 1.6e9));
        // Every sample has a HELP under its own name (its family's).
        for name in [
            "kubelet_runtime_operations_total",
            "prober_probe_total",
            "kubelet_running_pods",
        ] {
            assert!(s.docs.contains_key(name), "{name}: {:?}", s.docs.keys());
        }
        let text = m.encode();
        assert!(
            !text.contains("# EOF") && !text.contains("_total_total"),
            "{text}"
        );
    }
}
