//! The PodWorker on its own, against `FakeDocker`: no Supervisor, its
//! reports caught by a recorder. Each test pins one path through the
//! worker's sync (`sync.rs`) and execution (`execute.rs`), judged by what it
//! reports and what it asked of the engine. Every wait is bounded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use podvisor::actors::image_puller::PullerConfig;
use podvisor::actors::pod_worker::{
    ContainerDied, PodWorker, Relisted, SyncNow, SyncReason, Update, WorkerReport,
};
use podvisor::actors::{Deps, DesiredPod, NodeConfig};
use podvisor::model::clock::ManualClock;
use podvisor::model::naming::{self, ContainerName};
use podvisor::runtime::fake::{Call, FakeContainer, FakeDocker};
use podvisor::runtime::{ContainerState, CreateSpec};
use podvisor::testing::{pod, BUSYBOX, NODE};

const WAIT: Duration = Duration::from_secs(5);

/// Keeps what the worker reports.
#[derive(Default, Clone)]
struct Reports(Arc<Mutex<Vec<WorkerReport>>>);

impl Actor for Reports {
    type Context = Context<Self>;
}

impl Handler<WorkerReport> for Reports {
    type Result = ();
    fn handle(&mut self, msg: WorkerReport, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg);
    }
}

struct Bench {
    fake: Arc<FakeDocker>,
    clock: ManualClock,
    deps: Deps,
    reports: Reports,
    pod: Arc<Pod>,
    uid: String,
    worker: Addr<PodWorker>,
}

impl Bench {
    /// Starts a worker for `pod` on an engine that has the fixtures' images.
    fn start(pod: Pod) -> Self {
        let clock = ManualClock::default();
        let fake = Arc::new(FakeDocker::with_clock(Arc::new(clock.clone())));
        fake.add_image(BUSYBOX);
        fake.add_image("pause:test");
        Self::start_on(fake, clock, pod)
    }

    fn start_on(fake: Arc<FakeDocker>, clock: ManualClock, pod: Pod) -> Self {
        let mut node = NodeConfig::for_tests();
        node.sync_frequency = Duration::from_secs(3600);
        let deps = Deps::start(
            fake.clone(),
            node,
            PullerConfig::kubelet_defaults(),
            Arc::new(clock.clone()),
        );
        let reports = Reports::default();
        let recipient = reports.clone().start().recipient();
        let uid = pod.metadata.uid.clone().expect("fixture pods have a UID");
        let pod = Arc::new(pod);
        let desired = DesiredPod {
            uid: uid.clone(),
            pod: pod.clone(),
            source: format!(
                "{}.yaml (document 0)",
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
            problem: None,
        };
        let worker = PodWorker::new(uid.clone(), Some(desired), deps.clone(), recipient).start();
        Self {
            fake,
            clock,
            deps,
            reports,
            pod,
            uid,
            worker,
        }
    }

    fn status(&self) -> Option<PodStatus> {
        self.reports
            .0
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|r| match r {
                WorkerReport::Status { status, .. } => Some((**status).clone()),
                _ => None,
            })
    }

    fn phase(&self) -> Option<String> {
        self.status()?.phase
    }

    /// The reported waiting reason of `container` (app or init).
    fn waiting(&self, container: &str) -> Option<String> {
        let s = self.status()?;
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .find(|c| c.name == container)?
            .state
            .as_ref()?
            .waiting
            .as_ref()?
            .reason
            .clone()
    }

    fn running_of(&self, container: &str) -> Vec<FakeContainer> {
        self.fake
            .running()
            .into_iter()
            .filter(|c| {
                ContainerName::parse(&c.spec.name).is_some_and(|n| n.container == container)
            })
            .collect()
    }

    fn creates(&self) -> Vec<String> {
        self.fake
            .calls()
            .iter()
            .filter_map(|c| match c {
                Call::Create(name) => ContainerName::parse(name).map(|n| n.container),
                _ => None,
            })
            .collect()
    }

    fn sync(&self) {
        self.worker.do_send(SyncNow(SyncReason::Relist));
    }

    /// `container` exits with `code`, and the engine's `die` event reaches
    /// the worker (no Supervisor here to forward it).
    fn exit(&self, container: &str, code: i64) {
        let id = self.running_of(container)[0].details.summary.id.clone();
        self.fake.exit_container(&id, code);
        self.worker.do_send(ContainerDied(id, None));
    }

    async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}\nstatus: {:?}\ncalls: {:?}",
                self.status(),
                self.fake.calls()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[actix::test]
async fn a_listing_taken_before_the_last_look_is_no_news() {
    let before_any_look = std::time::Instant::now();
    let b = Bench::start(pod("stale").container("a").build_pod());
    b.until("running", |b| b.phase().as_deref() == Some("Running"))
        .await;
    b.settle().await;
    let app = b.running_of("a")[0].details.summary.clone();
    let listing = |listed_at| Relisted {
        listed_at,
        // The infra container alone: the app missing.
        containers: b
            .fake
            .running()
            .into_iter()
            .map(|c| c.details.summary)
            .filter(|s| s.id != app.id)
            .collect(),
    };
    b.fake.clear_calls();
    // Listed before the worker's last look: that look saw more recent.
    b.worker.do_send(listing(before_any_look));
    b.settle().await;
    assert_eq!(b.fake.calls(), vec![], "a stale listing made calls");
    // The same listing taken now is news: the worker acts on it (it
    // makes the app again, and finds it already there).
    b.worker.do_send(listing(std::time::Instant::now()));
    b.until("the fresh listing acted on", |b| {
        b.fake
            .calls()
            .iter()
            .any(|c| matches!(c, Call::Create(n) if n.starts_with("k8s_a_stale_")))
    })
    .await;
}

#[actix::test]
async fn a_refused_pod_reports_failed_with_the_reason_and_creates_nothing() {
    // NodeConfig::for_tests gives the node 4 CPUs.
    let p = pod("big")
        .container("app")
        .requests("app", "5", "64Mi")
        .build_pod();
    let b = Bench::start(p);
    b.until("the pod is Failed", |b| {
        b.phase().as_deref() == Some("Failed")
    })
    .await;
    let status = b.status().unwrap();
    assert_eq!(status.reason.as_deref(), Some("OutOfcpu"));
    // Named as a parse error is: file and document, pod, then what.
    let message = status.message.unwrap_or_default();
    assert!(
        message.starts_with(
            "big.yaml (document 0): pod default/big: Node didn't have enough resource: cpu"
        ),
        "{message}"
    );
    let events = b.deps.event_store.get(&b.uid).unwrap_or_default();
    let refused = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("OutOfcpu"))
        .unwrap_or_else(|| panic!("no OutOfcpu event: {events:?}"));
    assert_eq!(refused.type_.as_deref(), Some("Warning"));
    assert_eq!(refused.message.as_deref(), Some(message.as_str()));
    b.sync();
    b.settle().await;
    assert_eq!(
        b.fake.mutating_calls(),
        vec![],
        "a refused pod creates nothing"
    );
}

#[actix::test]
async fn init_containers_run_one_at_a_time_to_success_then_the_apps() {
    let p = pod("init")
        .init("first")
        .init("second")
        .container("app")
        .build_pod();
    let b = Bench::start(p);
    b.until("first runs", |b| b.running_of("first").len() == 1)
        .await;
    b.settle().await;
    assert!(b.running_of("second").is_empty() && b.running_of("app").is_empty());
    assert_eq!(b.waiting("app").as_deref(), Some("PodInitializing"));

    b.exit("first", 0);
    b.until("second runs", |b| b.running_of("second").len() == 1)
        .await;
    assert!(b.running_of("app").is_empty());
    b.exit("second", 0);
    b.until("the pod runs", |b| b.phase().as_deref() == Some("Running"))
        .await;
    assert_eq!(b.creates(), ["POD", "first", "second", "app"]);
}

#[actix::test]
async fn a_failed_pull_waits_with_err_image_pull_then_image_pull_back_off_then_runs() {
    let image = "127.0.0.1:5000/late:1";
    let p = pod("pull")
        .container("app")
        .image("app", image, "IfNotPresent")
        .build_pod();
    let b = Bench::start(p);
    b.until("ErrImagePull", |b| {
        b.waiting("app").as_deref() == Some("ErrImagePull")
    })
    .await;
    assert_eq!(b.phase().as_deref(), Some("Pending"));

    // Within the pull back-off (10 s), a sync does not pull again.
    b.sync();
    b.until("ImagePullBackOff", |b| {
        b.waiting("app").as_deref() == Some("ImagePullBackOff")
    })
    .await;
    let pulls = |b: &Bench| {
        b.fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Pull(_)))
            .count()
    };
    assert_eq!(pulls(&b), 1);

    // The registry gets the image; once the back-off is over, it runs.
    b.fake.add_to_registry(image);
    b.clock.advance(Duration::from_secs(10));
    b.sync();
    b.until("the app runs", |b| b.running_of("app").len() == 1)
        .await;
    b.until("Running", |b| b.phase().as_deref() == Some("Running"))
        .await;
    assert_eq!(pulls(&b), 2);
}

#[actix::test]
async fn a_name_conflict_on_create_adopts_the_container_already_there() {
    let clock = ManualClock::default();
    let fake = Arc::new(FakeDocker::with_clock(Arc::new(clock.clone())));
    fake.add_image(BUSYBOX);
    fake.add_image("pause:test");
    let p = pod("race").container("a").build_pod();
    let uid = p.metadata.uid.clone().unwrap();
    // Made by an earlier run after our list was taken: the list does not
    // show it, the create hits its name.
    let mut spec = CreateSpec {
        name: format!("k8s_POD_race_default_{uid}_0"),
        image: "pause:test".into(),
        ..Default::default()
    };
    spec.labels = naming::PodLabels {
        pod_name: "race".into(),
        namespace: "default".into(),
        uid: uid.clone(),
        kind: naming::ContainerKind::Sandbox,
        container_name: naming::INFRA_NAME.into(),
        hash: naming::sandbox_hash(&p, "pause:test"),
        restart_count: 0,
        grace_period_secs: Some(2),
        sandbox_id: None,
    }
    .render(NODE);
    let existing = fake.insert_container(spec, ContainerState::Created);
    fake.hide(&existing);
    let b = Bench::start_on(fake, clock, p);
    b.until("the app runs", |b| b.running_of("a").len() == 1)
        .await;
    let sandboxes: Vec<FakeContainer> = b
        .fake
        .containers()
        .into_iter()
        .filter(|c| c.spec.name.starts_with("k8s_POD_race"))
        .collect();
    assert_eq!(sandboxes.len(), 1, "no second infra container");
    assert_eq!(sandboxes[0].details.summary.id, existing);
    assert_eq!(sandboxes[0].details.summary.state, ContainerState::Running);
    assert_eq!(
        b.running_of("a")[0].spec.labels[naming::LABEL_SANDBOX_ID],
        existing
    );
}

#[actix::test]
async fn pre_stop_runs_before_the_stop_and_the_stop_gets_what_is_left_of_the_grace() {
    let p = pod("hooks")
        .container("a")
        .container("b")
        .grace(7)
        .pre_stop("a", &["drain"])
        .build_pod();
    let b = Bench::start(p);
    b.until("Running", |b| b.phase().as_deref() == Some("Running"))
        .await;
    let id = |name: &str| b.running_of(name)[0].details.summary.id.clone();
    let (a, bb, sandbox) = (id("a"), id("b"), id("POD"));
    b.fake.clear_calls();
    b.worker.do_send(Update(None));
    b.until("everything stopped", |b| b.fake.running().is_empty())
        .await;

    let calls = b.fake.calls();
    let pos = |c: &Call| calls.iter().position(|x| x == c).expect("call made");
    assert!(pos(&Call::Exec(a.clone(), vec!["drain".into()])) < pos(&Call::Stop(a.clone())));
    assert!(pos(&Call::Stop(a.clone())) < pos(&Call::Stop(sandbox.clone())));
    assert!(pos(&Call::Stop(bb.clone())) < pos(&Call::Stop(sandbox.clone())));
    let stops = b.fake.stops();
    let grace = |id: &str| {
        stops
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, g)| *g)
            .unwrap()
    };
    assert_eq!(grace(&bb), Duration::from_secs(7));
    assert!(grace(&a) <= Duration::from_secs(7) && grace(&a) >= Duration::from_secs(6));
}

#[actix::test]
async fn a_crash_looping_init_container_backs_off_with_an_event_on_its_own_field() {
    let p = pod("initloop").init("setup").container("app").build_pod();
    let b = Bench::start(p);
    b.until("setup runs", |b| b.running_of("setup").len() == 1)
        .await;
    b.exit("setup", 1); // restarted at once
    b.until("setup runs again", |b| b.running_of("setup").len() == 1)
        .await;
    b.exit("setup", 1); // now it backs off
    b.until("CrashLoopBackOff", |b| {
        b.waiting("setup").as_deref() == Some("CrashLoopBackOff")
    })
    .await;
    let events = b.deps.event_store.get(&b.uid).unwrap_or_default();
    let backoff = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("BackOff"))
        .unwrap_or_else(|| panic!("no BackOff event: {events:?}"));
    assert_eq!(
        backoff.involved_object.field_path.as_deref(),
        Some("spec.initContainers{setup}")
    );
    assert!(b.running_of("app").is_empty());
    assert_eq!(b.pod.metadata.name.as_deref(), Some("initloop"));
}

#[actix::test]
async fn a_failed_container_with_fallback_to_logs_reports_the_tail_of_its_log() {
    let p = pod("msg")
        .container("app")
        .restart("Never")
        .with(|p| {
            let c = &mut p.spec.as_mut().unwrap().containers[0];
            c.termination_message_policy = Some("FallbackToLogsOnError".into());
        })
        .build_pod();
    let b = Bench::start(p);
    b.until("the app runs", |b| b.running_of("app").len() == 1)
        .await;
    let id = b.running_of("app")[0].details.summary.id.clone();
    b.fake.set_logs(&id, "starting\npanic: the disk is full\n");
    b.exit("app", 3);
    b.until("the pod Failed", |b| b.phase().as_deref() == Some("Failed"))
        .await;
    let status = b.status().unwrap();
    let app = &status.container_statuses.unwrap()[0];
    let t = app.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(t.exit_code, 3);
    assert_eq!(t.reason.as_deref(), Some("Error"));
    assert!(
        t.message
            .as_deref()
            .is_some_and(|m| m.contains("panic: the disk is full")),
        "{t:?}"
    );
}

#[actix::test]
async fn a_refused_or_finished_pod_costs_no_engine_call_on_relist() {
    let refused = Bench::start(
        pod("big")
            .container("app")
            .requests("app", "5", "64Mi")
            .build_pod(),
    );
    refused
        .until("Failed", |b| b.phase().as_deref() == Some("Failed"))
        .await;
    refused.settle().await;
    refused.fake.clear_calls();
    for _ in 0..3 {
        refused.sync();
    }
    refused.settle().await;
    assert_eq!(
        refused.fake.calls(),
        vec![],
        "a refused pod's relists call the engine"
    );
    let reports = refused.reports.0.lock().unwrap().len();

    let done = Bench::start(pod("job").container("app").restart("Never").build_pod());
    done.until("the app runs", |b| b.running_of("app").len() == 1)
        .await;
    done.exit("app", 0);
    done.until("Succeeded", |b| b.phase().as_deref() == Some("Succeeded"))
        .await;
    done.settle().await;
    done.fake.clear_calls();
    done.sync();
    done.settle().await;
    assert_eq!(
        done.fake.calls(),
        vec![],
        "a finished pod's relist calls the engine"
    );

    // Anything else still syncs: an engine event, or a new spec.
    done.worker.do_send(SyncNow(SyncReason::EngineEvent));
    done.until("the event's sync lists", |b| {
        b.fake.calls().contains(&Call::List)
    })
    .await;
    // And an unchanged status is not reported again.
    assert_eq!(refused.reports.0.lock().unwrap().len(), reports);
}

/// A `tracing` writer into a shared buffer, for tests that read the log.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn lines(&self, needle: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).to_string();
        text.lines().filter(|l| l.contains(needle)).count()
    }
}

#[actix::test]
async fn an_engine_outage_is_logged_once_per_pod_not_at_every_retry() {
    let log = LogBuffer::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let clock = ManualClock::default();
    let fake = Arc::new(FakeDocker::with_clock(Arc::new(clock.clone())));
    fake.add_image(BUSYBOX);
    fake.add_image("pause:test");
    let down = || podvisor::runtime::RuntimeError::Unreachable {
        endpoint: "unix:///x.sock".into(),
        reason: "connection refused".into(),
    };
    for _ in 0..4 {
        fake.fail_next("list", down());
    }
    let b = Bench::start_on(fake, clock, pod("out").container("app").build_pod());
    b.settle().await;
    for _ in 0..3 {
        b.worker.do_send(SyncNow(SyncReason::EngineEvent));
        b.settle().await;
    }
    assert_eq!(
        log.lines("cannot observe pod containers"),
        1,
        "four failed syncs, one line"
    );
    assert_eq!(log.lines("pod containers observed again"), 0);
    // The engine answers again: said once, and the pod converges.
    b.worker.do_send(SyncNow(SyncReason::EngineEvent));
    b.until("the app runs", |b| b.running_of("app").len() == 1)
        .await;
    assert_eq!(log.lines("pod containers observed again"), 1);
    assert_eq!(log.lines("cannot observe pod containers"), 1);
}
