//! `make bench`: podvisor's speed targets, each as a ratio against a baseline
//! measured in the same run.
//!
//! 1. Queue overhead: 50 pods converge on `FakeDocker` (with a small engine
//!    latency per call) through the ImagePuller with QPS unlimited and the
//!    images present, against the same with a stand-in that only checks
//!    presence (no queue). Target: ratio ≈ 1.
//! 2. Rate limiter schedule: 20 pulls at 50 QPS, burst 1; the largest
//!    deviation of a pull's start from its ideal slot. Target: a few ms.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler, ResponseFuture};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use podvisor::actors::image_puller::{
    EnsureImage, ImagePuller, PullError, PullOutcome, PullerConfig,
};
use podvisor::actors::supervisor::{SetDesired, Supervisor};
use podvisor::actors::{Deps, DesiredPod, NodeConfig};
use podvisor::model::clock::{self, ManualClock};
use podvisor::runtime::fake::FakeDocker;
use podvisor::runtime::ContainerRuntime;

const PODS: usize = 50;
const RUNS: usize = 5;
const ENGINE_LATENCY: Duration = Duration::from_millis(1);

/// The baseline: answers from a presence check alone, no queue.
struct PresenceOnly(Arc<dyn ContainerRuntime>);

impl Actor for PresenceOnly {
    type Context = Context<Self>;
}

impl Handler<EnsureImage> for PresenceOnly {
    type Result = ResponseFuture<Result<PullOutcome, PullError>>;
    fn handle(&mut self, msg: EnsureImage, _: &mut Context<Self>) -> Self::Result {
        let rt = self.0.clone();
        Box::pin(async move {
            match rt.inspect_image(&msg.image).await {
                Ok(Some(image)) => Ok(PullOutcome::AlreadyPresent { image }),
                _ => Err(PullError {
                    reason: podvisor::model::WaitingReason::ErrImagePull,
                    message: "absent".into(),
                    retry_after: Duration::from_secs(10),
                }),
            }
        })
    }
}

fn pods() -> Vec<DesiredPod> {
    (0..PODS)
        .map(|i| {
            let name = format!("pod-{i}");
            let uid = format!("uid-{i}");
            DesiredPod {
                uid: uid.clone(),
                source: name.clone(),
                problem: None,
                pod: Arc::new(Pod {
                    metadata: ObjectMeta {
                        name: Some(name),
                        namespace: Some("default".into()),
                        uid: Some(uid),
                        ..Default::default()
                    },
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "app".into(),
                            image: Some(format!("img{}:1", i % 5)),
                            image_pull_policy: Some("IfNotPresent".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }
        })
        .collect()
}

/// Time for 50 pods to reach Running.
async fn converge(with_puller: bool) -> Duration {
    let fake = Arc::new(FakeDocker::new());
    fake.add_image("pause:test");
    for i in 0..5 {
        fake.add_image(&format!("img{i}:1"));
    }
    for call in ["create", "start", "list", "inspect", "image_id"] {
        fake.delay(call, ENGINE_LATENCY);
    }
    let mut node = NodeConfig::for_tests();
    node.sync_frequency = Duration::from_secs(3600);
    let config = PullerConfig {
        qps: 0.0,
        ..PullerConfig::kubelet_defaults()
    };
    let mut deps = Deps::start(fake.clone(), node, config, clock::system());
    if !with_puller {
        deps.puller = PresenceOnly(fake.clone()).start().recipient();
    }
    let supervisor = Supervisor::new(deps).without_events();
    let store = supervisor.status_view();
    let supervisor = supervisor.start();
    let started = Instant::now();
    supervisor.do_send(SetDesired::files(pods()));
    loop {
        let running = store
            .values()
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if running == PODS {
            return started.elapsed();
        }
        if started.elapsed() > Duration::from_secs(60) {
            panic!("only {running} of {PODS} pods converged in 60 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The largest distance of a pull's start from its ideal 20 ms slot.
async fn schedule_error() -> (Duration, usize) {
    let fake = Arc::new(FakeDocker::new());
    let images: Vec<String> = (0..20).map(|i| format!("r/img{i}:1")).collect();
    for i in &images {
        fake.add_to_registry(i);
    }
    let config = PullerConfig {
        qps: 50.0,
        burst: 1,
        max_parallel: None,
        ..PullerConfig::kubelet_defaults()
    };
    let puller = ImagePuller::new(fake.clone(), config, Arc::new(ManualClock::default())).start();
    let asks = images.iter().map(|i| {
        puller.send(EnsureImage {
            image: i.clone(),
            policy: podvisor::model::PullPolicy::Always,
            pod_uid: "p".into(),
            object: None,
            progress_to: None,
        })
    });
    for r in futures::future::join_all(asks).await {
        r.expect("puller alive").expect("pull succeeds");
    }
    let starts = fake.pull_starts();
    let t0 = starts[0].1;
    let worst = starts
        .iter()
        .enumerate()
        .map(|(k, (_, t))| {
            let ideal = Duration::from_millis(20 * k as u64);
            let actual = t.duration_since(t0);
            actual.abs_diff(ideal)
        })
        .max()
        .unwrap_or_default();
    (worst, starts.len())
}

fn main() {
    actix::System::new().block_on(async {
        // Warm-up, then alternate the two so drift hits both alike.
        converge(true).await;
        let (mut with, mut without) = (vec![], vec![]);
        for _ in 0..RUNS {
            with.push(converge(true).await);
            without.push(converge(false).await);
        }
        let (w, wo) = (median(with), median(without));
        println!(
            "converge {PODS} pods, images present, QPS unlimited: with ImagePuller {:.1} ms, presence-only baseline {:.1} ms, ratio {:.2}",
            w.as_secs_f64() * 1e3,
            wo.as_secs_f64() * 1e3,
            w.as_secs_f64() / wo.as_secs_f64()
        );
        let (worst, n) = schedule_error().await;
        println!(
            "rate limiter: {n} pulls at 50 QPS burst 1, worst deviation from the ideal schedule {:.2} ms (of a 20 ms period: ratio {:.3})",
            worst.as_secs_f64() * 1e3,
            worst.as_secs_f64() / 0.020
        );
    });
}
