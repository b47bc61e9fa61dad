//! Actor-level tests: the Supervisor, PodWorkers and ImagePuller against
//! `FakeDocker`. Every wait is bounded, so no test can hang CI.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use k8s_openapi::api::core::v1::Container;
use podvisor::actors::image_puller::PullerConfig;
use podvisor::actors::supervisor::{Deleting, Relist, SetDesired, Supervisor};
use podvisor::actors::{Deps, DesiredPod, NodeConfig, StatusView};
use podvisor::model::clock::ManualClock;
use podvisor::model::naming::{self, ContainerName};
use podvisor::runtime::fake::{Call, FakeContainer, FakeDocker};
use podvisor::runtime::{ContainerState, CreateSpec};
use podvisor::testing::{pod, RecordingPlugin, BUSYBOX};

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    fake: Arc<FakeDocker>,
    clock: ManualClock,
    deps: Deps,
    supervisor: Addr<Supervisor>,
    store: StatusView,
}

impl Harness {
    fn start_with(fake: Arc<FakeDocker>) -> Self {
        Self::start_with_clock(fake, ManualClock::default())
    }

    fn start_with_clock(fake: Arc<FakeDocker>, clock: ManualClock) -> Self {
        Self::start_with_network(fake, clock, None)
    }

    fn start_with_network(
        fake: Arc<FakeDocker>,
        clock: ManualClock,
        network: Option<Arc<podvisor::network::Network>>,
    ) -> Self {
        let mut node = NodeConfig::for_tests();
        // Long enough that no test depends on the relist tick by accident.
        node.sync_frequency = Duration::from_secs(3600);
        let deps = Deps::start(
            fake.clone(),
            node,
            PullerConfig::kubelet_defaults(),
            Arc::new(clock.clone()),
        );
        let mut deps = deps;
        deps.network = network;
        let supervisor = Supervisor::new(deps.clone());
        let store = supervisor.status_view();
        let supervisor = supervisor.start();
        Self {
            fake,
            clock,
            deps,
            supervisor,
            store,
        }
    }

    /// A fake engine and the actors sharing one manual clock.
    fn start() -> Self {
        let clock = ManualClock::default();
        let fake = Arc::new(FakeDocker::with_clock(Arc::new(clock.clone())));
        fake.add_image(BUSYBOX);
        fake.add_image("pause:test");
        Self::start_with_clock(fake, clock)
    }

    fn desire(&self, pods: Vec<DesiredPod>) {
        self.supervisor.do_send(SetDesired::files(pods));
    }

    fn running_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .fake
            .running()
            .iter()
            .map(|c| c.spec.name.clone())
            .collect();
        names.sort();
        names
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

    fn phase(&self, uid: &str) -> Option<String> {
        self.store
            .get(uid)
            .and_then(|p| p.status.as_ref().and_then(|s| s.phase.clone()))
    }

    /// Waits for `cond`, failing with `what` and the fake's call log.
    async fn until(&self, what: &str, cond: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !cond(self) {
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "timed out waiting for: {what}\nrunning: {:?}\nevents: {:?}\ncalls: {:?}",
                    self.running_names(),
                    self.deps
                        .event_store
                        .values()
                        .iter()
                        .map(|e| e
                            .iter()
                            .filter_map(|e| e.reason.clone())
                            .collect::<Vec<_>>())
                        .collect::<Vec<_>>(),
                    self.fake.calls()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lets the actors run for a while (for "nothing happens" checks).
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Waits until `container` runs as another container than `old`.
    async fn replaced(&self, container: &str, old: &str, what: &str) {
        self.until(what, |h| {
            h.running_of(container)
                .first()
                .is_some_and(|c| c.details.summary.id != old)
        })
        .await;
    }

    async fn converged(&self, uid: &str, running: usize) {
        self.until(
            &format!("{running} containers running and pod {uid} Running"),
            |h| h.fake.running().len() == running && h.phase(uid).as_deref() == Some("Running"),
        )
        .await;
    }
}

fn creates(calls: &[Call]) -> Vec<String> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Create(name) => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[actix::test]
async fn a_pod_converges_with_the_infra_container_first() {
    let h = Harness::start();
    let web = pod("web").container("a").container("b").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 3).await;

    let created = creates(&h.fake.calls());
    assert_eq!(
        created,
        vec![
            format!("k8s_POD_web_default_{}_0", web.uid),
            format!("k8s_a_web_default_{}_0", web.uid),
            format!("k8s_b_web_default_{}_0", web.uid),
        ]
    );
    let sandbox = h.running_of("POD").pop().expect("infra container runs");
    assert_eq!(sandbox.spec.ipc_mode.as_deref(), Some("shareable"));
    for app in ["a", "b"] {
        let c = h.running_of(app).pop().expect("app runs");
        let join = format!("container:{}", sandbox.details.summary.id);
        assert_eq!(c.spec.network_mode.as_deref(), Some(join.as_str()));
        assert_eq!(c.spec.ipc_mode.as_deref(), Some(join.as_str()));
        assert_eq!(c.spec.labels[naming::LABEL_NODE], "test-node");
    }
}

#[actix::test]
async fn a_second_sync_of_a_converged_pod_changes_nothing() {
    let h = Harness::start();
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;
    h.settle().await;
    h.fake.clear_calls();

    h.supervisor.do_send(Relist);
    h.until("the relist listed the engine", |h| {
        h.fake.calls().contains(&Call::List)
    })
    .await;
    h.settle().await;
    assert_eq!(h.fake.mutating_calls(), vec![]);
}

fn lists(h: &Harness) -> usize {
    h.fake.calls().iter().filter(|c| **c == Call::List).count()
}

/// A node with six one-container pods running, settled.
async fn six_pods_running() -> (Harness, Vec<DesiredPod>) {
    let h = Harness::start();
    let pods: Vec<_> = (0..6)
        .map(|i| pod(&format!("p{i}")).container("a").build())
        .collect();
    h.desire(pods.clone());
    h.until("every pod runs", |h| h.fake.running().len() == 12)
        .await;
    h.settle().await;
    (h, pods)
}

#[actix::test]
async fn a_relist_lists_the_engine_once_for_every_pod() {
    let (h, _) = six_pods_running().await;
    // A container removed behind podvisor's back, with no event: only the
    // relist can tell p0's worker.
    let gone = h
        .fake
        .running()
        .into_iter()
        .find(|c| c.spec.name.starts_with("k8s_a_p0_"))
        .unwrap();
    h.fake.remove_container_now(&gone.details.summary.id);
    h.fake.clear_calls();
    let syncs_before = syncs(&h);
    h.supervisor.do_send(Relist);
    h.until("p0's app made again", |h| h.fake.running().len() == 12)
        .await;
    h.settle().await;
    // The Supervisor's one list told every worker; only p0's, which made a
    // container, looked again (each of its later rounds lists). A list per
    // worker would be 7 at least.
    assert!(lists(&h) <= 4, "{:?}", h.fake.calls());
    assert_eq!(
        h.fake.mutating_calls().len(),
        2,
        "{:?}",
        h.fake.mutating_calls()
    );
    // The five pods whose containers did not change were not synced at
    // all (a sync of each would be five more).
    let synced = syncs(&h) - syncs_before;
    assert!((1..=2).contains(&synced), "{synced} syncs");
}

#[actix::test]
async fn pods_converge_on_the_start_listing_without_listing_the_engine_again() {
    let (h, pods) = six_pods_running().await;
    // The listing at start told each worker its pod had no container, and
    // after making them each looked at what it made (inspects), not at a
    // list: a list per look would be 13.
    assert!(lists(&h) <= 2, "{} lists: {:?}", lists(&h), h.fake.calls());
    let inspects = h
        .fake
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Inspect(_)))
        .count();
    assert!(inspects >= 12, "each container seen once made: {inspects}");
    h.until("every pod reported Running", |h| {
        pods.iter()
            .all(|p| h.phase(&p.uid).as_deref() == Some("Running"))
    })
    .await;
}

/// How many syncs of running pods the workers did so far.
fn syncs(h: &Harness) -> u64 {
    let text = h.deps.metrics.encode();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("kubelet_pod_worker_duration_seconds_count{operation=\"sync\"} ")
        })
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[actix::test]
async fn removal_kills_apps_before_the_infra_container() {
    let h = Harness::start();
    let web = pod("web").container("a").container("b").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 3).await;
    let sandbox_id = h.running_of("POD")[0].details.summary.id.clone();
    let app_ids: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| h.running_of(n)[0].details.summary.id.clone())
        .collect();
    h.fake.clear_calls();

    h.desire(vec![]);
    h.until("every container removed", |h| {
        h.fake.containers().is_empty()
    })
    .await;
    let calls = h.fake.calls();
    let pos = |call: Call| calls.iter().position(|c| *c == call).expect("call made");
    let infra_stop = pos(Call::Stop(sandbox_id));
    for id in app_ids {
        assert!(
            pos(Call::Stop(id)) < infra_stop,
            "apps stop before the infra: {calls:?}"
        );
    }
    // Listed (Terminating) until its worker reports the containers gone.
    h.until("the removed pod no longer listed", |h| {
        h.store.get(&web.uid).is_none()
    })
    .await;
}

#[actix::test]
async fn a_deleted_pod_is_terminating_until_its_containers_stop_within_the_grace_asked() {
    let h = Harness::start();
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;
    h.fake.delay("stop", Duration::from_millis(300));
    h.fake.clear_calls();

    let asked = Deleting {
        uid: web.uid.clone(),
        grace_secs: Some(3),
    };
    h.supervisor.send(asked).await.unwrap();
    h.desire(vec![]);
    h.until("the pod shown Terminating", |h| {
        h.store
            .get(&web.uid)
            .is_some_and(|p| p.metadata.deletion_timestamp.is_some())
    })
    .await;
    let shown = h.store.get(&web.uid).unwrap();
    assert_eq!(shown.metadata.deletion_grace_period_seconds, Some(3));
    h.until("every container gone and the pod with them", |h| {
        h.fake.containers().is_empty() && h.store.get(&web.uid).is_none()
    })
    .await;
    let graces: Vec<Duration> = h.fake.stops().iter().map(|(_, g)| *g).collect();
    assert_eq!(
        graces,
        [Duration::from_secs(3); 2],
        "the grace asked, not 30 s"
    );
}

/// A harness whose node has a [`RecordingPlugin`] (`mode`: the infra
/// container's network mode it asks for), its records in `root`.
fn with_plugin(
    mode: Option<&'static str>,
    root: &std::path::Path,
) -> (Harness, Arc<RecordingPlugin>) {
    let clock = ManualClock::default();
    let fake = Arc::new(FakeDocker::with_clock(Arc::new(clock.clone())));
    fake.add_image(BUSYBOX);
    fake.add_image("pause:test");
    let plugin = Arc::new(RecordingPlugin {
        engine: Some(fake.clone()),
        mode,
        ..Default::default()
    });
    let net = Arc::new(podvisor::network::Network::new(plugin.clone(), root));
    (Harness::start_with_network(fake, clock, Some(net)), plugin)
}

fn pod_ip(h: &Harness, uid: &str) -> Option<String> {
    h.store
        .get(uid)
        .and_then(|p| p.status.as_ref().and_then(|s| s.pod_ip.clone()))
}

#[actix::test]
async fn the_network_is_set_up_after_the_infra_starts_and_before_any_app() {
    let root = tempfile::tempdir().unwrap();
    let (h, plugin) = with_plugin(Some("none"), root.path());
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;
    let calls = plugin.calls();
    let setup = calls.iter().find(|c| c.call == "setup").expect("a setup");
    let infra = h.running_of("POD")[0].clone();
    assert_eq!(setup.infra_id, infra.details.summary.id);
    assert_eq!(
        setup.netns,
        Some(format!("/proc/{}/ns/net", infra.details.pid.unwrap()).into())
    );
    assert!(
        setup
            .engine_calls
            .contains(&Call::Start(infra.details.summary.id.clone())),
        "the infra container started first: {:?}",
        setup.engine_calls
    );
    let app_created = setup
        .engine_calls
        .iter()
        .any(|c| matches!(c, Call::Create(n) if n.starts_with("k8s_a_")));
    assert!(
        !app_created,
        "no app before the setup: {:?}",
        setup.engine_calls
    );
    // CNI-like: the infra container has no Docker network; the pod's IP
    // is the plugin's.
    assert_eq!(infra.spec.network_mode.as_deref(), Some("none"));
    assert_eq!(pod_ip(&h, &web.uid).as_deref(), Some("10.77.0.1"));
}

#[actix::test]
async fn a_failed_setup_waits_with_back_off_and_starts_no_app() {
    let root = tempfile::tempdir().unwrap();
    let (h, plugin) = with_plugin(None, root.path());
    plugin
        .fail_setup
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.until("the pod waiting on its network", |h| {
        h.store.get(&web.uid).is_some_and(|p| {
            let s = p.status.clone().unwrap_or_default();
            s.container_statuses.iter().flatten().any(|c| {
                c.state
                    .as_ref()
                    .and_then(|st| st.waiting.as_ref())
                    .and_then(|w| w.message.as_deref())
                    .is_some_and(|m| {
                        m.contains("failed to set up the pod network") && m.contains("recording")
                    })
            })
        })
    })
    .await;
    assert!(event_reasons(&h, &web.uid).contains(&"FailedCreatePodSandBox".to_string()));
    h.settle().await;
    let setups = |p: &RecordingPlugin| p.calls().iter().filter(|c| c.call == "setup").count();
    assert_eq!(setups(&plugin), 1, "no retry before the back-off ends");
    assert!(h.running_of("a").is_empty(), "no app on an unwired pod");
    // Fixed, and the back-off over: wired, and the app starts.
    plugin
        .fail_setup
        .store(false, std::sync::atomic::Ordering::SeqCst);
    h.clock.advance(Duration::from_secs(11));
    h.supervisor.do_send(Relist);
    h.converged(&web.uid, 2).await;
    assert_eq!(setups(&plugin), 2);
}

#[actix::test]
async fn a_failed_check_recreates_the_sandbox_and_wires_it_anew() {
    let root = tempfile::tempdir().unwrap();
    let (h, plugin) = with_plugin(Some("none"), root.path());
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;
    let first = h.running_of("POD")[0].details.summary.id.clone();
    let count = |call: &str| plugin.calls().iter().filter(|c| c.call == call).count();
    let checks = count("check");
    // Not due yet: a relist checks nothing.
    h.supervisor.do_send(Relist);
    h.settle().await;
    assert_eq!(count("check"), checks, "checked before it was due");
    plugin
        .fail_check
        .store(true, std::sync::atomic::Ordering::SeqCst);
    h.clock.advance(Duration::from_secs(6 * 60));
    h.supervisor.do_send(Relist);
    h.replaced("POD", &first, "a new sandbox").await;
    assert_eq!(count("check"), checks + 1);
    // The new sandbox is wired just after it starts.
    h.until("the new sandbox wired", |_| count("setup") >= 2)
        .await;
    assert!(
        plugin
            .calls()
            .iter()
            .any(|c| c.call == "teardown" && c.infra_id == first),
        "the old sandbox's network is torn down"
    );
    // The new sandbox runs first, then is wired.
    h.until("the new sandbox wired", |_| count("setup") == 2)
        .await;
    assert!(event_reasons(&h, &web.uid).contains(&"FailedPodNetworkCheck".to_string()));
}

#[actix::test]
async fn the_network_is_torn_down_after_the_apps_and_before_the_infra_stops() {
    let root = tempfile::tempdir().unwrap();
    let (h, plugin) = with_plugin(None, root.path());
    let web = pod("web").container("a").container("b").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 3).await;
    let infra = h.running_of("POD")[0].details.summary.id.clone();
    let apps: Vec<String> = ["a", "b"]
        .iter()
        .map(|n| h.running_of(n)[0].details.summary.id.clone())
        .collect();
    h.fake.clear_calls();
    h.desire(vec![]);
    h.until("every container removed", |h| {
        h.fake.containers().is_empty()
    })
    .await;
    let calls = plugin.calls();
    let down = calls
        .iter()
        .find(|c| c.call == "teardown")
        .expect("a teardown");
    assert_eq!(down.infra_id, infra);
    assert!(down.netns.is_some(), "torn down while the infra runs");
    for app in apps {
        assert!(
            down.engine_calls.contains(&Call::Stop(app)),
            "apps first: {:?}",
            down.engine_calls
        );
    }
    assert!(
        !down.engine_calls.contains(&Call::Stop(infra.clone())),
        "before the infra stops: {:?}",
        down.engine_calls
    );
    assert_eq!(calls.iter().filter(|c| c.call == "teardown").count(), 1);
    assert!(!root
        .path()
        .join("network")
        .join(format!("{infra}.json"))
        .exists());
}

#[actix::test]
async fn a_hash_change_replaces_only_that_container() {
    let h = Harness::start();
    let v1 = pod("web").container("a").container("b").build();
    h.desire(vec![v1.clone()]);
    h.converged(&v1.uid, 3).await;
    let before = |n: &str| h.running_of(n)[0].details.summary.id.clone();
    let (sandbox, a, b) = (before("POD"), before("a"), before("b"));

    let v2 = pod("web")
        .container("a")
        .container("b")
        .args("b", &["changed"])
        .build();
    h.desire(vec![v2.clone()]);
    h.replaced("b", &b, "b replaced").await;
    h.converged(&v2.uid, 3).await;
    assert_eq!(h.running_of("POD")[0].details.summary.id, sandbox);
    assert_eq!(h.running_of("a")[0].details.summary.id, a);
    let new_b = &h.running_of("b")[0];
    assert_eq!(new_b.spec.cmd, Some(vec!["changed".to_string()]));
    assert_eq!(new_b.spec.labels[naming::LABEL_RESTART_COUNT], "1");
    assert!(
        new_b.spec.name.ends_with("_1"),
        "attempt 1: {}",
        new_b.spec.name
    );
}

async fn after_exit(policy: &str, code: i64) -> (Harness, DesiredPod) {
    let h = Harness::start();
    let p = pod("job").container("a").restart(policy).build();
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    let id = h.running_of("a")[0].details.summary.id.clone();
    h.fake.exit_container(&id, code);
    (h, p)
}

#[actix::test]
async fn restart_policy_always_restarts_a_clean_exit() {
    let (h, p) = after_exit("Always", 0).await;
    h.until("a restarted", |h| h.running_of("a").len() == 1)
        .await;
    h.converged(&p.uid, 2).await;
    assert_eq!(
        h.running_of("a")[0].spec.labels[naming::LABEL_RESTART_COUNT],
        "1"
    );
    let status = h
        .store
        .get(&p.uid)
        .and_then(|p| p.status.clone())
        .expect("status");
    let restarts = status.container_statuses.expect("statuses")[0].restart_count;
    assert_eq!(restarts, 1);
}

#[actix::test]
async fn restart_policy_on_failure_restarts_a_failure() {
    let (h, _) = after_exit("OnFailure", 3).await;
    h.until("a restarted", |h| h.running_of("a").len() == 1)
        .await;
}

#[actix::test]
async fn restart_policy_on_failure_leaves_a_success_and_the_pod_succeeds() {
    let (h, p) = after_exit("OnFailure", 0).await;
    h.until("pod Succeeded", |h| {
        h.phase(&p.uid).as_deref() == Some("Succeeded")
    })
    .await;
    h.settle().await;
    assert!(h.running_of("a").is_empty());
}

#[actix::test]
async fn restart_policy_never_leaves_a_failure_and_the_pod_fails() {
    let (h, p) = after_exit("Never", 1).await;
    h.until("pod Failed", |h| {
        h.phase(&p.uid).as_deref() == Some("Failed")
    })
    .await;
    h.settle().await;
    assert!(h.running_of("a").is_empty());
    assert_eq!(creates(&h.fake.calls()).len(), 2, "no new container");
}

#[actix::test]
async fn orphans_are_removed_and_other_nodes_are_left_alone() {
    let fake = Arc::new(FakeDocker::new());
    fake.add_image(BUSYBOX);
    fake.add_image("pause:test");
    let labels = |node: &str| {
        naming::PodLabels {
            pod_name: "ghost".into(),
            namespace: "default".into(),
            uid: "ghost-uid".into(),
            kind: naming::ContainerKind::Container,
            container_name: "c".into(),
            hash: "x".into(),
            restart_count: 0,
            grace_period_secs: Some(1),
            sandbox_id: None,
        }
        .render(node)
    };
    let ours = fake.insert_container(
        CreateSpec {
            name: "k8s_c_ghost_default_ghost-uid_0".into(),
            image: BUSYBOX.into(),
            labels: labels("test-node"),
            ..Default::default()
        },
        ContainerState::Running,
    );
    let theirs = fake.insert_container(
        CreateSpec {
            name: "k8s_c_ghost_default_ghost-uid_1".into(),
            image: BUSYBOX.into(),
            labels: labels("another-node"),
            ..Default::default()
        },
        ContainerState::Running,
    );
    let h = Harness::start_with(fake);
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.until("orphan removed", |h| {
        !h.fake
            .containers()
            .iter()
            .any(|c| c.details.summary.id == ours)
    })
    .await;
    h.converged(&web.uid, 3).await;
    let left = h.fake.running();
    assert!(left.iter().any(|c| c.details.summary.id == theirs));
    assert!(!h.fake.calls().contains(&Call::Stop(theirs)));
}

#[actix::test]
async fn nothing_is_judged_an_orphan_before_the_source_speaks() {
    let h = Harness::start();
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;

    // A new agent on the same engine, before any desired set arrives.
    let fake = h.fake.clone();
    fake.clear_calls();
    let second = Harness::start_with(fake.clone());
    second.supervisor.do_send(Relist);
    second.settle().await;
    assert_eq!(fake.mutating_calls(), vec![]);
}

#[actix::test]
async fn adoption_after_a_restart_makes_no_mutating_call() {
    let first = Harness::start();
    let web = pod("web").container("a").container("b").build();
    let job = pod("job").container("x").restart("Never").build();
    first.desire(vec![web.clone(), job.clone()]);
    first.converged(&web.uid, 5).await;
    let id = first.running_of("x")[0].details.summary.id.clone();
    first.fake.exit_container(&id, 0);
    first
        .until("job Succeeded", |h| {
            h.phase(&job.uid).as_deref() == Some("Succeeded")
        })
        .await;

    // "Restart" podvisor: a new set of actors on the same engine.
    let fake = first.fake.clone();
    drop(first);
    fake.clear_calls();
    let second = Harness::start_with(fake.clone());
    second.desire(vec![web.clone(), job.clone()]);
    second.converged(&web.uid, 4).await;
    second
        .until("job status known", |h| {
            h.phase(&job.uid).as_deref() == Some("Succeeded")
        })
        .await;
    second.settle().await;
    assert_eq!(fake.mutating_calls(), vec![]);
}

#[actix::test]
async fn a_missing_image_waits_with_err_image_never_pull_and_others_run() {
    let h = Harness::start();
    let mut bad = pod("bad").container("a").build();
    Arc::make_mut(&mut bad.pod)
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image_pull_policy = Some("Never".into());
    Arc::make_mut(&mut bad.pod)
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .image = Some("missing:1".into());
    let good = pod("good").container("a").build();
    h.desire(vec![bad.clone(), good.clone()]);
    h.until("good pod Running", |h| {
        h.phase(&good.uid).as_deref() == Some("Running")
    })
    .await;
    h.until("bad pod reports ErrImageNeverPull", |h| {
        h.store
            .get(&bad.uid)
            .and_then(|p| p.status.clone())
            .and_then(|s| s.container_statuses)
            .and_then(|cs| cs[0].state.clone())
            .and_then(|s| s.waiting)
            .and_then(|w| w.reason)
            .as_deref()
            == Some("ErrImageNeverPull")
    })
    .await;
    assert_eq!(h.phase(&bad.uid).as_deref(), Some("Pending"));
}

#[actix::test]
async fn a_created_but_unstarted_container_is_started_not_duplicated() {
    let h = Harness::start();
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;
    // Simulate a crash between create and start on the next attempt.
    let a = h.running_of("a")[0].clone();
    let sandbox = h.running_of("POD")[0].details.summary.id.clone();
    h.fake.remove_container_now(&a.details.summary.id);
    let mut spec = a.spec.clone();
    spec.labels.insert(naming::LABEL_SANDBOX_ID.into(), sandbox);
    let created = h.fake.insert_container(spec, ContainerState::Created);
    h.fake.clear_calls();
    h.supervisor.do_send(Relist);
    h.until("the created container runs", |h| {
        h.running_of("a")
            .first()
            .is_some_and(|c| c.details.summary.id == created)
    })
    .await;
    assert!(creates(&h.fake.calls()).is_empty(), "{:?}", h.fake.calls());
}

fn waiting_reason(h: &Harness, uid: &str, container: &str) -> Option<(String, String)> {
    let pod = h.store.get(uid)?;
    let statuses = pod.status.as_ref()?.container_statuses.clone()?;
    let w = statuses
        .into_iter()
        .find(|s| s.name == container)?
        .state?
        .waiting?;
    Some((w.reason?, w.message.unwrap_or_default()))
}

fn creates_of(h: &Harness, container: &str) -> usize {
    creates(&h.fake.calls())
        .iter()
        .filter(|n| ContainerName::parse(n).is_some_and(|n| n.container == container))
        .count()
}

#[actix::test]
async fn crash_loop_backoff_waits_10_then_20_seconds_on_the_clock() {
    let h = Harness::start();
    let p = pod("loop").container("a").build();
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    let die = |h: &Harness| {
        let id = h.running_of("a")[0].details.summary.id.clone();
        h.fake.exit_container(&id, 1);
    };

    // The first death restarts at once.
    die(&h);
    h.until("first restart", |h| {
        creates_of(h, "a") == 2 && h.running_of("a").len() == 1
    })
    .await;

    for delay in [10u64, 20] {
        die(&h);
        h.until("CrashLoopBackOff reported", |h| {
            waiting_reason(h, &p.uid, "a").is_some_and(|(r, m)| {
                r == "CrashLoopBackOff" && m.contains(&format!("back-off {delay}s"))
            })
        })
        .await;
        let before = creates_of(&h, "a");
        // Just short of the back-off: still waiting.
        h.clock.advance(Duration::from_secs(delay - 1));
        h.supervisor.do_send(Relist);
        h.settle().await;
        assert_eq!(
            creates_of(&h, "a"),
            before,
            "restarted early at {}s of {delay}s",
            delay - 1
        );
        // At the end of the back-off: restarted, with the count carried.
        h.clock.advance(Duration::from_secs(1));
        h.supervisor.do_send(Relist);
        h.until("restart after the back-off", |h| {
            creates_of(h, "a") == before + 1 && h.running_of("a").len() == 1
        })
        .await;
    }
    let restarts = h.running_of("a")[0].spec.labels[naming::LABEL_RESTART_COUNT].clone();
    assert_eq!(restarts, "3");
    let status = h.store.get(&p.uid).and_then(|p| p.status.clone()).unwrap();
    let last = status.container_statuses.unwrap()[0].clone();
    assert_eq!(last.restart_count, 3);
}

#[actix::test]
async fn init_containers_run_in_order_before_the_apps() {
    let h = Harness::start();
    let mut p = pod("init").container("app").build();
    {
        let spec = Arc::make_mut(&mut p.pod).spec.as_mut().unwrap();
        spec.init_containers = Some(
            ["first", "second"]
                .iter()
                .map(|n| Container {
                    name: n.to_string(),
                    image: Some(BUSYBOX.into()),
                    image_pull_policy: Some("IfNotPresent".into()),
                    ..Default::default()
                })
                .collect(),
        );
    }
    h.desire(vec![p.clone()]);
    h.until("first init runs", |h| h.running_of("first").len() == 1)
        .await;
    h.settle().await;
    assert!(h.running_of("second").is_empty() && h.running_of("app").is_empty());
    assert_eq!(h.phase(&p.uid).as_deref(), Some("Pending"));

    let first = h.running_of("first")[0].details.summary.id.clone();
    h.fake.exit_container(&first, 0);
    h.until("second init runs", |h| h.running_of("second").len() == 1)
        .await;
    assert!(h.running_of("app").is_empty());
    let second = h.running_of("second")[0].details.summary.id.clone();
    h.fake.exit_container(&second, 0);
    h.converged(&p.uid, 2).await;
    let order: Vec<String> = creates(&h.fake.calls())
        .iter()
        .filter_map(|n| ContainerName::parse(n).map(|n| n.container))
        .collect();
    assert_eq!(order, vec!["POD", "first", "second", "app"]);

    // Done init containers do not run again on later syncs.
    h.supervisor.do_send(Relist);
    h.settle().await;
    assert_eq!(creates(&h.fake.calls()).len(), 4);
}

#[actix::test]
async fn a_failing_init_container_of_a_never_pod_fails_it_and_no_app_starts() {
    let h = Harness::start();
    let mut p = pod("initfail").container("app").restart("Never").build();
    Arc::make_mut(&mut p.pod)
        .spec
        .as_mut()
        .unwrap()
        .init_containers = Some(vec![Container {
        name: "setup".into(),
        image: Some(BUSYBOX.into()),
        image_pull_policy: Some("IfNotPresent".into()),
        ..Default::default()
    }]);
    h.desire(vec![p.clone()]);
    h.until("init runs", |h| h.running_of("setup").len() == 1)
        .await;
    let id = h.running_of("setup")[0].details.summary.id.clone();
    h.fake.exit_container(&id, 2);
    h.until("pod Failed", |h| {
        h.phase(&p.uid).as_deref() == Some("Failed")
    })
    .await;
    h.settle().await;
    assert_eq!(creates_of(&h, "app"), 0);
    assert_eq!(creates_of(&h, "setup"), 1);
}

#[actix::test]
async fn pre_stop_runs_before_the_stop_within_the_grace_period() {
    let h = Harness::start();
    let mut p = pod("hooks").container("a").container("b").build();
    {
        let spec = Arc::make_mut(&mut p.pod).spec.as_mut().unwrap();
        spec.termination_grace_period_seconds = Some(7);
        spec.containers[0].lifecycle = Some(k8s_openapi::api::core::v1::Lifecycle {
            pre_stop: Some(k8s_openapi::api::core::v1::LifecycleHandler {
                exec: Some(k8s_openapi::api::core::v1::ExecAction {
                    command: Some(vec!["drain".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 3).await;
    let a = h.running_of("a")[0].details.summary.id.clone();
    let b = h.running_of("b")[0].details.summary.id.clone();
    let sandbox = h.running_of("POD")[0].details.summary.id.clone();
    h.fake.clear_calls();
    h.desire(vec![]);
    h.until("pod gone", |h| h.fake.containers().is_empty())
        .await;

    let calls = h.fake.calls();
    let pos = |c: &Call| calls.iter().position(|x| x == c).expect("call made");
    let hook = pos(&Call::Exec(a.clone(), vec!["drain".into()]));
    assert!(
        hook < pos(&Call::Stop(a.clone())),
        "preStop before stop: {calls:?}"
    );
    assert!(pos(&Call::Stop(b.clone())) < pos(&Call::Stop(sandbox.clone())));
    assert!(pos(&Call::Stop(a.clone())) < pos(&Call::Stop(sandbox.clone())));
    let stops = h.fake.stops();
    let grace = |id: &str| {
        stops
            .iter()
            .find(|(s, _)| s == id)
            .map(|(_, g)| *g)
            .unwrap()
    };
    assert_eq!(grace(&b), Duration::from_secs(7));
    // The hook took (next to) nothing: the grace is what is left of 7 s.
    assert!(grace(&a) <= Duration::from_secs(7) && grace(&a) >= Duration::from_secs(6));
}

#[actix::test]
async fn a_failing_post_start_hook_kills_the_container_and_it_restarts() {
    let h = Harness::start();
    let mut p = pod("post").container("a").build();
    Arc::make_mut(&mut p.pod).spec.as_mut().unwrap().containers[0].lifecycle =
        Some(k8s_openapi::api::core::v1::Lifecycle {
            post_start: Some(k8s_openapi::api::core::v1::LifecycleHandler {
                exec: Some(k8s_openapi::api::core::v1::ExecAction {
                    command: Some(vec!["setup".into()]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
    h.fake.answer_exec(
        "setup",
        podvisor::runtime::ExecOutput {
            exit_code: 1,
            stdout: b"no config".to_vec(),
            stderr: vec![],
        },
    );
    h.desire(vec![p.clone()]);
    h.until(
        "the container was killed after its hook and started again",
        |h| creates_of(h, "a") >= 2,
    )
    .await;
    let first_stop = h
        .fake
        .calls()
        .iter()
        .position(|c| matches!(c, Call::Stop(_)))
        .expect("a stop after the failed hook");
    let first_exec = h
        .fake
        .calls()
        .iter()
        .position(|c| matches!(c, Call::Exec(..)))
        .unwrap();
    assert!(first_exec < first_stop);
}

fn exec_probe(cmd: &str, failure_threshold: i32) -> k8s_openapi::api::core::v1::Probe {
    k8s_openapi::api::core::v1::Probe {
        exec: Some(k8s_openapi::api::core::v1::ExecAction {
            command: Some(vec![cmd.into()]),
        }),
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn exit(code: i64) -> podvisor::runtime::ExecOutput {
    podvisor::runtime::ExecOutput {
        exit_code: code,
        stdout: format!("exit {code}").into_bytes(),
        stderr: vec![],
    }
}

fn ready_condition(h: &Harness, uid: &str) -> Option<String> {
    let pod = h.store.get(uid)?;
    pod.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

fn event_reasons(h: &Harness, uid: &str) -> Vec<String> {
    h.deps
        .event_store
        .get(uid)
        .map(|e| e.iter().filter_map(|e| e.reason.clone()).collect())
        .unwrap_or_default()
}

#[actix::test]
async fn a_failing_liveness_probe_restarts_the_container_with_events_in_order() {
    let h = Harness::start();
    let mut p = pod("live").container("a").build();
    Arc::make_mut(&mut p.pod).spec.as_mut().unwrap().containers[0].liveness_probe =
        Some(exec_probe("alive", 2));
    h.fake.answer_exec("alive", exit(0));
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    let first = h.running_of("a")[0].details.summary.id.clone();
    h.until("the probe ran", |h| {
        h.fake
            .calls()
            .contains(&Call::Exec(first.clone(), vec!["alive".into()]))
    })
    .await;
    assert!(h.fake.stops().is_empty(), "a passing probe kills nothing");

    h.fake.answer_exec("alive", exit(1));
    h.replaced("a", &first, "the container was replaced").await;
    // The replacement passes its probe.
    h.fake.answer_exec("alive", exit(0));
    let new = h.running_of("a")[0].clone();
    assert_eq!(new.spec.labels[naming::LABEL_RESTART_COUNT], "1");
    assert!(h.fake.stops().iter().any(|(id, _)| *id == first));
    // Events are listed by last occurrence: the kill comes before the
    // restart's Started, and says why.
    let ordered = |h: &Harness| {
        let reasons = event_reasons(h, &p.uid);
        let killing = reasons.iter().position(|x| x == "Killing");
        let started = reasons.iter().rposition(|x| x == "Started");
        matches!((killing, started), (Some(k), Some(s)) if k < s)
    };
    h.until("events Killing, then Started", ordered).await;
    let events = h.deps.event_store.get(&p.uid).unwrap().clone();
    let killing = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("Killing"))
        .unwrap();
    assert_eq!(
        killing.message.as_deref(),
        Some("Container a failed liveness probe, will be restarted")
    );
    assert_eq!(
        killing.involved_object.field_path.as_deref(),
        Some("spec.containers{a}")
    );
    let unhealthy_msg = h
        .deps
        .event_store
        .get(&p.uid)
        .unwrap()
        .iter()
        .find(|e| e.reason.as_deref() == Some("Unhealthy"))
        .and_then(|e| e.message.clone())
        .unwrap();
    assert!(
        unhealthy_msg.contains("Liveness probe failed") && unhealthy_msg.contains("exit 1"),
        "{unhealthy_msg}"
    );
}

#[actix::test]
async fn readiness_flips_the_ready_condition_and_the_registry_forgets_dead_containers() {
    let h = Harness::start();
    let mut p = pod("ready").container("a").build();
    Arc::make_mut(&mut p.pod).spec.as_mut().unwrap().containers[0].readiness_probe =
        Some(exec_probe("ready", 1));
    h.fake.answer_exec("ready", exit(1));
    h.desire(vec![p.clone()]);
    h.until("pod running, not ready", |h| {
        h.phase(&p.uid).as_deref() == Some("Running")
            && ready_condition(h, &p.uid).as_deref() == Some("False")
    })
    .await;
    let id = h.running_of("a")[0].details.summary.id.clone();
    h.fake.answer_exec("ready", exit(0));
    h.until("ready", |h| {
        ready_condition(h, &p.uid).as_deref() == Some("True")
    })
    .await;
    assert!(h.deps.readiness_view.get(&id).is_some_and(|s| s.ready));
    h.fake.answer_exec("ready", exit(1));
    h.until("not ready again", |h| {
        ready_condition(h, &p.uid).as_deref() == Some("False")
    })
    .await;
    // No restart for readiness.
    assert_eq!(h.running_of("a")[0].details.summary.id, id);

    h.desire(vec![]);
    h.until("pod gone", |h| h.fake.containers().is_empty())
        .await;
    h.until("registry forgot the container", |h| {
        h.deps.readiness_view.get(&id).is_none()
    })
    .await;
}

#[actix::test]
async fn a_startup_probe_holds_liveness_off_until_it_succeeds() {
    let h = Harness::start();
    let mut p = pod("slow").container("a").build();
    {
        let c = &mut Arc::make_mut(&mut p.pod).spec.as_mut().unwrap().containers[0];
        c.startup_probe = Some(exec_probe("started", 30));
        c.liveness_probe = Some(exec_probe("alive", 1));
    }
    h.fake.answer_exec("started", exit(1));
    h.fake.answer_exec("alive", exit(1));
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    let id = h.running_of("a")[0].details.summary.id.clone();
    h.until("two startup attempts", |h| {
        h.fake
            .calls()
            .iter()
            .filter(|c| **c == Call::Exec(id.clone(), vec!["started".into()]))
            .count()
            >= 2
    })
    .await;
    let calls = h.fake.calls();
    assert!(
        !calls.contains(&Call::Exec(id.clone(), vec!["alive".into()])),
        "liveness ran before startup succeeded"
    );
    assert!(
        h.fake.stops().is_empty(),
        "killed while its startup probe may still fail"
    );
    let status = h.store.get(&p.uid).and_then(|p| p.status.clone()).unwrap();
    assert_eq!(status.container_statuses.unwrap()[0].started, Some(false));

    // Once started, the failing liveness probe restarts it.
    h.fake.answer_exec("started", exit(0));
    h.until("liveness killed it", |h| {
        h.fake.stops().iter().any(|(s, _)| *s == id)
    })
    .await;
}

#[actix::test]
async fn a_die_event_restarts_the_container_without_a_relist() {
    // The relist period is an hour: only the event can bring the restart.
    let h = Harness::start();
    let p = pod("evt").container("a").build();
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    let relists_before = lists(&h);
    let id = h.running_of("a")[0].details.summary.id.clone();
    let started = tokio::time::Instant::now();
    h.fake.exit_container(&id, 137);
    h.replaced("a", &id, "replacement running").await;
    assert!(started.elapsed() < Duration::from_secs(1));
    // The worker lists its own pod's containers; no node-wide relist ran.
    let supervisor_relists = lists(&h) - relists_before;
    assert!(
        supervisor_relists <= 3,
        "{supervisor_relists} lists for one restart"
    );
}

#[actix::test]
async fn a_death_known_from_its_event_is_replaced_before_the_dead_container_is_inspected() {
    let h = Harness::start();
    let p = pod("evt").container("a").build();
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    let id = h.running_of("a")[0].details.summary.id.clone();
    h.settle().await;
    h.fake.clear_calls();
    h.fake.exit_container(&id, 3);
    h.replaced("a", &id, "replacement running").await;
    // The die event's exit code and time were enough to plan the restart:
    // no call waited on the engine's handling of the exit before the
    // create; the dead container was inspected afterwards, for the status.
    let calls = h.fake.calls();
    let create = calls
        .iter()
        .position(|c| matches!(c, Call::Create(name) if name.starts_with("k8s_a_evt_")))
        .expect("a replacement created");
    let inspected = |c: &Call| *c == Call::Inspect(id.clone());
    assert!(
        !calls[..create].iter().any(inspected),
        "the dead container was inspected before its replacement's create: {calls:?}"
    );
    h.until("the dead container inspected for the status", |h| {
        h.fake.calls().iter().any(inspected)
    })
    .await;
    h.until("the status shows the death", |h| {
        h.store.get(&p.uid).is_some_and(|pod| {
            let statuses = pod
                .status
                .as_ref()
                .and_then(|s| s.container_statuses.clone());
            statuses.unwrap_or_default().iter().any(|c| {
                c.restart_count == 1
                    && c.last_state
                        .as_ref()
                        .and_then(|l| l.terminated.as_ref())
                        .is_some_and(|t| t.exit_code == 3)
            })
        })
    })
    .await;
}

#[actix::test]
async fn a_hung_engine_call_times_out_and_other_pods_proceed() {
    let clock = ManualClock::default();
    let fake = Arc::new(FakeDocker::with_clock(Arc::new(clock.clone())));
    fake.add_image(BUSYBOX);
    fake.add_image("pause:test");
    fake.hang("create", "k8s_app_stuck_");
    let bounded = Arc::new(podvisor::runtime::bounded::Bounded::new(
        fake.clone(),
        podvisor::runtime::bounded::Budgets::uniform(
            Duration::from_millis(200),
            Duration::from_secs(60),
        ),
    ));
    let mut node = NodeConfig::for_tests();
    node.sync_frequency = Duration::from_secs(3600);
    let deps = Deps::start(
        bounded,
        node,
        PullerConfig::kubelet_defaults(),
        Arc::new(clock.clone()),
    );
    let supervisor = Supervisor::new(deps.clone());
    let store = supervisor.status_view();
    let supervisor = supervisor.start();
    let h = Harness {
        fake,
        clock,
        deps,
        supervisor,
        store,
    };
    let stuck = pod("stuck").container("app").build();
    let fine = pod("fine").container("app").build();
    h.desire(vec![stuck.clone(), fine.clone()]);
    h.until("the other pod runs", |h| {
        h.phase(&fine.uid).as_deref() == Some("Running")
    })
    .await;
    h.until("the stuck container reports the timeout", |h| {
        waiting_reason(h, &stuck.uid, "app")
            .is_some_and(|(r, m)| r == "CreateContainerError" && m.contains("timed out"))
    })
    .await;
}

#[actix::test]
async fn a_name_conflict_on_create_adopts_the_container_already_there() {
    let h = Harness::start();
    let p = pod("race").container("a").build();
    // Another run created the infra container after our list was taken:
    // the list does not show it, the create hits its name.
    let mut spec = CreateSpec {
        name: format!("k8s_POD_race_default_{}_0", p.uid),
        image: "pause:test".into(),
        ..Default::default()
    };
    spec.labels = naming::PodLabels {
        pod_name: "race".into(),
        namespace: "default".into(),
        uid: p.uid.clone(),
        kind: naming::ContainerKind::Sandbox,
        container_name: naming::INFRA_NAME.into(),
        hash: naming::sandbox_hash(&p.pod, "pause:test"),
        restart_count: 0,
        grace_period_secs: Some(2),
        sandbox_id: None,
    }
    .render("test-node");
    let existing = h.fake.insert_container(spec, ContainerState::Created);
    h.fake.hide(&existing);
    h.desire(vec![p.clone()]);
    h.until("the app runs", |h| h.running_of("a").len() == 1)
        .await;
    let sandboxes = h
        .fake
        .containers()
        .into_iter()
        .filter(|c| c.spec.name.starts_with("k8s_POD_race"))
        .count();
    assert_eq!(sandboxes, 1, "no duplicate infra container");
    let app = &h.running_of("a")[0];
    assert_eq!(app.spec.labels[naming::LABEL_SANDBOX_ID], existing);
    assert!(h
        .fake
        .containers()
        .iter()
        .any(|c| c.details.summary.id == existing
            && c.details.summary.state == ContainerState::Running));
}

/// The count of a histogram of `m` with these labels, as `/metrics` shows it.
fn histogram_count(m: &podvisor::metrics::Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = m.encode();
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parsed");
    let name = format!("{name}_count");
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map_or(0.0, |s| match s.value {
            prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        })
}

#[actix::test]
async fn metrics_count_starts_restarts_and_the_relisted_pods() {
    let h = Harness::start();
    let web = pod("web").container("a").build();
    h.desire(vec![web.clone()]);
    h.converged(&web.uid, 2).await;
    let m = h.deps.metrics.clone();
    let started = |t: &'static str| {
        m.started_containers
            .get_or_create(&[("container_type", t)])
            .get()
    };
    let restarts = || {
        m.container_restarts
            .get_or_create(&[("reason", "exited")])
            .get()
    };
    assert_eq!((started("podsandbox"), started("container")), (1, 1));
    let starts = || histogram_count(&m, "kubelet_pod_start_duration_seconds", &[]);
    assert_eq!(starts(), 1.0);
    assert!(
        histogram_count(
            &m,
            "kubelet_pod_worker_duration_seconds",
            &[("operation", "create")]
        ) >= 1.0
    );
    assert_eq!(restarts(), 0);

    // The app dies: started again, counted as a restart; the pod's start
    // is not measured twice.
    let id = h.running_of("a")[0].details.summary.id.clone();
    h.fake.exit_container(&id, 1);
    h.until("the app restarted", |_| restarts() == 1).await;
    assert_eq!(started("container"), 2);
    h.converged(&web.uid, 2).await;
    assert_eq!(starts(), 1.0);

    // A relist counts the pods and containers by state.
    h.supervisor.do_send(Relist);
    h.until("the relist counted the pod", |_| m.running_pods.get() == 1)
        .await;
    let state = |s: &'static str| {
        m.running_containers
            .get_or_create(&[("container_state", s)])
            .get()
    };
    assert_eq!((state("running"), state("exited")), (1, 1));
}

#[actix::test]
async fn a_pull_shows_how_far_it_is_in_the_waiting_message_and_event_at_most_once_a_second() {
    use podvisor::runtime::pull_progress::PullProgress;
    let h = Harness::start();
    h.fake.add_to_registry("slow:1");
    let mib = 1024 * 1024;
    // Twelve steps of 200 ms: a 2.4 s pull, told at 1 s and 2 s.
    let steps = (1..=12)
        .map(|n| PullProgress {
            layers_done: usize::from(n == 12) + usize::from(n >= 6),
            layers_total: 2,
            bytes_done: n * mib,
            bytes_total: 12 * mib,
        })
        .collect();
    h.fake.pull_in_steps(steps, Duration::from_millis(200));
    let mut p = pod("slow").container("a").build();
    Arc::make_mut(&mut p.pod).spec.as_mut().unwrap().containers[0].image = Some("slow:1".into());
    h.desire(vec![p.clone()]);
    let began = tokio::time::Instant::now();
    // Each waiting message of `a`, with when it was first seen.
    let mut seen: Vec<(String, tokio::time::Instant)> = Vec::new();
    while h.phase(&p.uid).as_deref() != Some("Running") {
        assert!(began.elapsed() < WAIT, "no Running pod; messages {seen:?}");
        if let Some((reason, message)) = waiting_reason(&h, &p.uid, "a") {
            if seen.last().is_none_or(|(m, _)| *m != message) {
                assert_eq!(reason, "ContainerCreating", "{message}");
                seen.push((message, tokio::time::Instant::now()));
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let progress: Vec<&(String, tokio::time::Instant)> = seen
        .iter()
        .filter(|(m, _)| m.starts_with("Pulling image \"slow:1\": "))
        .collect();
    assert!(progress.len() >= 2, "two updates in 2.4 s: {seen:?}");
    assert!(
        progress[0].0.contains(" of 2 layers, ") && progress[0].0.ends_with(" of 12.0 MiB"),
        "{}",
        progress[0].0
    );
    for pair in progress.windows(2) {
        let apart = pair[1].1 - pair[0].1;
        assert!(
            apart >= Duration::from_millis(800),
            "updates {apart:?} apart: {seen:?}"
        );
    }
    // The one Pulling event says how far the pull got when last told.
    let events = h.deps.event_store.get(&p.uid).unwrap_or_default();
    let pulling: Vec<_> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Pulling"))
        .collect();
    assert_eq!(pulling.len(), 1, "{pulling:?}");
    let told = pulling[0].message.clone().unwrap_or_default();
    assert!(
        told.starts_with("Pulling image \"slow:1\": ") && told.contains(" of 12.0 MiB"),
        "{told}"
    );
    assert_eq!(pulling[0].count, Some(1), "revised, not counted");
}

#[actix::test]
async fn a_pod_past_its_active_deadline_is_stopped_and_fails_with_deadline_exceeded() {
    let h = Harness::start();
    let mut p = pod("deadline").container("a").build();
    Arc::make_mut(&mut p.pod)
        .spec
        .as_mut()
        .unwrap()
        .active_deadline_seconds = Some(30);
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    // Just short of the deadline: nothing changes.
    h.clock.advance(Duration::from_secs(29));
    h.supervisor.do_send(Relist);
    h.settle().await;
    assert_eq!(h.fake.running().len(), 2);
    assert_eq!(h.phase(&p.uid).as_deref(), Some("Running"));
    // Past it: every container stops, the pod fails with the kubelet's reason.
    h.clock.advance(Duration::from_secs(2));
    h.supervisor.do_send(Relist);
    h.until(
        "the pod Failed with DeadlineExceeded and nothing running",
        |h| {
            let reason = h
                .store
                .get(&p.uid)
                .and_then(|p| p.status.as_ref().and_then(|s| s.reason.clone()));
            h.fake.running().is_empty()
                && h.phase(&p.uid).as_deref() == Some("Failed")
                && reason.as_deref() == Some("DeadlineExceeded")
        },
    )
    .await;
    assert!(
        event_reasons(&h, &p.uid).contains(&"DeadlineExceeded".to_string()),
        "{:?}",
        event_reasons(&h, &p.uid)
    );
    // It stays so: a later sync starts nothing again.
    let created = creates(&h.fake.calls()).len();
    h.clock.advance(Duration::from_secs(600));
    h.supervisor.do_send(Relist);
    h.settle().await;
    assert_eq!(
        creates(&h.fake.calls()).len(),
        created,
        "{:?}",
        h.fake.calls()
    );
    assert!(h.fake.running().is_empty());
    assert_eq!(h.phase(&p.uid).as_deref(), Some("Failed"));
}

#[actix::test]
async fn a_start_that_timed_out_but_went_through_leaves_no_stale_message() {
    use podvisor::runtime::RuntimeError;
    let h = Harness::start();
    let p = pod("late").restart("OnFailure").container("a").build();
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 2).await;
    // The app fails and is restarted; that start times out (the engine
    // goes on and leaves the container created): the next sync starts it.
    h.fake.fail_next(
        "start",
        RuntimeError::Timeout {
            call: "start",
            after: Duration::from_secs(10),
        },
    );
    let first = h.running_of("a")[0].details.summary.id.clone();
    h.fake.exit_container(&first, 1);
    h.replaced(
        "a",
        &first,
        "the restarted app runs after its start timed out",
    )
    .await;
    assert!(
        h.fake.calls().iter().any(|c| matches!(c, Call::Start(_))),
        "{:?}",
        h.fake.calls()
    );
    let id = h.running_of("a")[0].details.summary.id.clone();
    h.fake.exit_container(&id, 0);
    h.until("the pod Succeeded", |h| {
        h.phase(&p.uid).as_deref() == Some("Succeeded")
    })
    .await;
    let status = h.store.get(&p.uid).and_then(|p| p.status.clone()).unwrap();
    let state = status.container_statuses.unwrap()[0].state.clone().unwrap();
    assert!(
        state.waiting.is_none() && state.terminated.is_some(),
        "the ended container shows how it ended, not the old timeout: {state:?}"
    );
}

/// The reason and message of a pod's status.
fn refusal(h: &Harness, uid: &str) -> Option<(String, String)> {
    let p = h.store.get(uid)?;
    let s = p.status.as_ref()?;
    Some((s.reason.clone()?, s.message.clone().unwrap_or_default()))
}

#[actix::test]
async fn admission_adds_up_the_pods_and_refuses_the_one_that_does_not_fit() {
    // NodeConfig::for_tests gives the node 4 CPUs.
    let h = Harness::start();
    let first = pod("first")
        .container("a")
        .requests("a", "3", "64Mi")
        .build();
    let second = pod("second")
        .container("a")
        .requests("a", "3", "64Mi")
        .build();
    h.desire(vec![first.clone(), second.clone()]);
    h.converged(&first.uid, 2).await;
    h.until("second refused", |h| {
        h.phase(&second.uid).as_deref() == Some("Failed")
    })
    .await;
    let (reason, message) = refusal(&h, &second.uid).unwrap();
    assert_eq!(reason, "OutOfcpu");
    assert_eq!(
        message,
        "second.yaml: pod default/second: Node didn't have enough resource: cpu, requested: 3000, used: 3000, capacity: 4000"
    );
    let events = h.deps.event_store.get(&second.uid).unwrap_or_default();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason.as_deref() == Some("OutOfcpu"))
            .count(),
        1,
        "one Warning event per refusal: {events:?}"
    );
    // A relist does not refuse it again, nor touch the admitted pod.
    h.supervisor.do_send(Relist);
    h.settle().await;
    assert_eq!(h.fake.running().len(), 2);
    let events = h.deps.event_store.get(&second.uid).unwrap_or_default();
    assert_eq!(events.len(), 1, "{events:?}");

    // Once the first leaves, what it held is free: an edit of the second
    // is judged again and admitted.
    h.desire(vec![second.clone()]);
    h.until("first gone", |h| h.store.get(&first.uid).is_none())
        .await;
    let edited = pod("second")
        .container("a")
        .requests("a", "2", "64Mi")
        .build();
    h.desire(vec![edited.clone()]);
    h.converged(&edited.uid, 2).await;
}

#[actix::test]
async fn pods_running_at_start_are_admitted_first_and_never_refused() {
    let first = Harness::start();
    let big = pod("big").container("a").requests("a", "3", "64Mi").build();
    first.desire(vec![big.clone()]);
    first.converged(&big.uid, 2).await;

    // "Restart": the new pod comes first in the set, but the running one
    // is admitted first.
    let fake = first.fake.clone();
    drop(first);
    fake.clear_calls();
    let second = Harness::start_with(fake.clone());
    let newcomer = pod("newcomer")
        .container("a")
        .requests("a", "2", "64Mi")
        .build();
    second.desire(vec![newcomer.clone(), big.clone()]);
    second.converged(&big.uid, 2).await;
    second
        .until("newcomer refused", |h| {
            h.phase(&newcomer.uid).as_deref() == Some("Failed")
        })
        .await;
    assert_eq!(refusal(&second, &newcomer.uid).unwrap().0, "OutOfcpu");
    second.settle().await;
    assert_eq!(fake.mutating_calls(), vec![], "the running pod is adopted");
}

#[actix::test]
async fn a_finished_pod_frees_its_requests() {
    let h = Harness::start();
    let job = pod("job")
        .container("x")
        .restart("Never")
        .requests("x", "3", "64Mi")
        .build();
    h.desire(vec![job.clone()]);
    h.converged(&job.uid, 2).await;
    let id = h.running_of("x")[0].details.summary.id.clone();
    h.fake.exit_container(&id, 0);
    h.until("job Succeeded", |h| {
        h.phase(&job.uid).as_deref() == Some("Succeeded")
    })
    .await;
    let next = pod("next")
        .container("a")
        .requests("a", "3", "64Mi")
        .build();
    h.desire(vec![job.clone(), next.clone()]);
    h.until("next Running", |h| {
        h.phase(&next.uid).as_deref() == Some("Running")
    })
    .await;
}

#[actix::test]
async fn host_port_clashes_and_node_selectors_are_refused_with_their_reason() {
    use k8s_openapi::api::core::v1::ContainerPort;
    let h = Harness::start();
    let with_port = |name: &str| {
        pod(name).container("a").with(|p| {
            p.spec.as_mut().unwrap().containers[0].ports = Some(vec![ContainerPort {
                container_port: 80,
                host_port: Some(18080),
                ..Default::default()
            }])
        })
    };
    let web = with_port("web").build();
    let clash = with_port("clash").build();
    let elsewhere = pod("elsewhere")
        .container("a")
        .with(|p| {
            p.spec.as_mut().unwrap().node_selector =
                Some([("disk".to_string(), "ssd".to_string())].into())
        })
        .build();
    let here = pod("here")
        .container("a")
        .with(|p| {
            p.spec.as_mut().unwrap().node_selector = Some(
                [(
                    "kubernetes.io/hostname".to_string(),
                    "test-node".to_string(),
                )]
                .into(),
            )
        })
        .build();
    h.desire(vec![
        web.clone(),
        clash.clone(),
        elsewhere.clone(),
        here.clone(),
    ]);
    h.converged(&web.uid, 4).await;
    h.until("here Running", |h| {
        h.phase(&here.uid).as_deref() == Some("Running")
    })
    .await;
    let (reason, message) = refusal(&h, &clash.uid).unwrap();
    assert_eq!(reason, "NodePorts");
    assert!(message.contains("Predicate NodePorts failed"), "{message}");
    let (reason, message) = refusal(&h, &elsewhere.uid).unwrap();
    assert_eq!(reason, "NodeAffinity");
    assert!(message.ends_with("node(s) didn't match Pod's node affinity/selector"));
    assert_eq!(
        creates(&h.fake.calls()).len(),
        4,
        "two pods of two containers"
    );
}

fn init_status(
    h: &Harness,
    uid: &str,
    name: &str,
) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    let pod = h.store.get(uid)?;
    let status = pod.status.as_ref()?;
    status
        .init_container_statuses
        .iter()
        .flatten()
        .find(|c| c.name == name)
        .cloned()
}

#[actix::test]
async fn a_sidecar_starts_before_the_next_init_container_restarts_and_dies_after_the_app() {
    let h = Harness::start();
    let mut p = pod("side").sidecar("s").init("i").container("app").build();
    Arc::make_mut(&mut p.pod)
        .spec
        .as_mut()
        .unwrap()
        .init_containers
        .as_mut()
        .unwrap()[0]
        .startup_probe = Some(exec_probe("s-started", 30));
    h.fake.answer_exec("s-started", exit(1));
    h.desire(vec![p.clone()]);
    h.until("the sidecar runs", |h| h.running_of("s").len() == 1)
        .await;
    let s_id = h.running_of("s")[0].details.summary.id.clone();
    h.until("two startup attempts", |h| {
        h.fake
            .calls()
            .iter()
            .filter(|c| **c == Call::Exec(s_id.clone(), vec!["s-started".into()]))
            .count()
            >= 2
    })
    .await;
    assert_eq!(creates_of(&h, "i"), 0, "i waits for the sidecar's startup");
    assert_eq!(h.phase(&p.uid).as_deref(), Some("Pending"));

    // Started: the regular init container runs, then the app.
    h.fake.answer_exec("s-started", exit(0));
    h.until("i runs", |h| h.running_of("i").len() == 1).await;
    let i_id = h.running_of("i")[0].details.summary.id.clone();
    h.fake.exit_container(&i_id, 0);
    h.converged(&p.uid, 3).await;
    let order: Vec<String> = creates(&h.fake.calls())
        .iter()
        .filter_map(|n| ContainerName::parse(n).map(|n| n.container))
        .collect();
    assert_eq!(order, vec!["POD", "s", "i", "app"]);
    let s = init_status(&h, &p.uid, "s").expect("sidecar status");
    assert_eq!(s.started, Some(true));
    assert!(s.ready && s.state.unwrap().running.is_some());

    // It dies: started again (restartCount 1), the app left running.
    let app_id = h.running_of("app")[0].details.summary.id.clone();
    h.fake.exit_container(&s_id, 0);
    h.replaced("s", &s_id, "the sidecar runs again").await;
    h.until("restartCount 1", |h| {
        init_status(h, &p.uid, "s").is_some_and(|s| s.restart_count == 1)
    })
    .await;
    assert_eq!(h.running_of("app")[0].details.summary.id, app_id);
    assert_eq!(creates_of(&h, "i"), 1, "i does not run again");
    let s_id = h.running_of("s")[0].details.summary.id.clone();
    let sandbox_id = h.running_of("POD")[0].details.summary.id.clone();

    // Removal: the app, then the sidecar, then the infra container.
    h.fake.clear_calls();
    h.desire(vec![]);
    h.until("every container removed", |h| {
        h.fake.containers().is_empty()
    })
    .await;
    let calls = h.fake.calls();
    let pos = |id: &str| {
        calls
            .iter()
            .position(|c| *c == Call::Stop(id.to_string()))
            .unwrap_or_else(|| panic!("{id} stopped: {calls:?}"))
    };
    assert!(pos(&app_id) < pos(&s_id), "app before sidecar: {calls:?}");
    assert!(
        pos(&s_id) < pos(&sandbox_id),
        "sidecar before infra: {calls:?}"
    );
}

#[actix::test]
async fn a_never_pod_with_a_sidecar_succeeds_when_its_app_ends_and_the_sidecar_stops() {
    let h = Harness::start();
    let p = pod("job")
        .restart("Never")
        .sidecar("s")
        .container("app")
        .build();
    h.desire(vec![p.clone()]);
    h.converged(&p.uid, 3).await;
    let app_id = h.running_of("app")[0].details.summary.id.clone();
    let s_id = h.running_of("s")[0].details.summary.id.clone();
    h.fake.exit_container(&app_id, 0);
    h.until("pod Succeeded", |h| {
        h.phase(&p.uid).as_deref() == Some("Succeeded")
    })
    .await;
    h.until("the sidecar stopped", |h| h.running_of("s").is_empty())
        .await;
    assert!(h.fake.stops().iter().any(|(id, _)| *id == s_id));
    h.settle().await;
    assert_eq!(creates_of(&h, "s"), 1, "not started again");
    assert_eq!(h.phase(&p.uid).as_deref(), Some("Succeeded"));
}

#[actix::test]
async fn calls_that_ran_out_of_budget_but_went_through_leave_no_duplicate_or_restart() {
    let h = Harness::start();
    let p = pod("late").container("a").container("b").build();
    // The infra's create and an app's start time out after the engine did
    // them; so does the removal later.
    h.fake.answer_late("create", 1);
    h.fake.answer_late("start", 2);
    h.desire(vec![p.clone()]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !(h.fake.running().len() == 3 && h.phase(&p.uid).as_deref() == Some("Running")) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not converged: {:?}\n{:?}",
            h.running_names(),
            h.fake.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.settle().await;
    // One container per name, each started once: nothing made twice,
    // nothing restarted.
    let mut names: Vec<String> = h
        .fake
        .containers()
        .iter()
        .map(|c| c.spec.name.clone())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().all(|n| n.ends_with("_0")), "{names:?}");
    let status = h.store.get(&p.uid).and_then(|p| p.status.clone()).unwrap();
    for c in status.container_statuses.unwrap() {
        assert_eq!(c.restart_count, 0, "{c:?}");
        assert!(c.state.unwrap().running.is_some());
    }
    let starts = h
        .fake
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::Start(_)))
        .count();
    assert_eq!(starts, 3, "{:?}", h.fake.calls());
    h.fake.answer_late("remove", 1);
    h.desire(vec![]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !h.fake.containers().is_empty() || h.store.get(&p.uid).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not removed: {:?}",
            h.fake.calls()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
