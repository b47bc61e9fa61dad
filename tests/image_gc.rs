//! The ImageGc actor against `FakeDocker` with a fake usage reader and the
//! project's clock: least recently used images go down to the low
//! threshold; in-use, infra, young and foreign images stay; pulls count as
//! podvisor's; the order of use survives a restart; events on the node.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr};
use async_trait::async_trait;
use podvisor::actors::events::{node_events_key, Recorder};
use podvisor::actors::image_gc::{
    CollectNow, DiskUsage, GcReport, ImageGc, ImageGcConfig, ImageGcError, ImagePulled, UsageError,
    STATE_FILE,
};
use podvisor::actors::registries::ContainerRefs;
use podvisor::decide::image_gc::{FsUsage, ImageGcPolicy};
use podvisor::model::clock::ManualClock;
use podvisor::model::naming::LABEL_NODE;
use podvisor::runtime::fake::FakeDocker;
use podvisor::runtime::{ContainerState, CreateSpec};

/// Bounds every await: no test can hang CI.
const WAIT: Duration = Duration::from_secs(10);
const MB: u64 = 1 << 20;
const NODE: &str = "test-node";

/// A usage the test sets.
#[derive(Clone, Default)]
struct FakeUsage(Arc<Mutex<FsUsage>>);

impl FakeUsage {
    fn set(&self, used_mb: u64) {
        *self.0.lock().unwrap() = FsUsage {
            used: used_mb * MB,
            capacity: 100 * MB,
        };
    }
}

#[async_trait]
impl DiskUsage for FakeUsage {
    async fn image_fs(&self) -> Result<FsUsage, UsageError> {
        Ok(*self.0.lock().unwrap())
    }
}

struct Setup {
    fake: Arc<FakeDocker>,
    clock: ManualClock,
    usage: FakeUsage,
    state_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(images: &[&str]) -> Self {
        let fake = Arc::new(FakeDocker::new());
        for i in images {
            fake.add_image(i);
            fake.set_image_size(i, 5 * MB);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::default();
        Setup {
            fake,
            usage: FakeUsage::default(),
            state_file: dir.path().join(STATE_FILE),
            clock,
            _dir: dir,
        }
    }

    fn start(&self, policy: ImageGcPolicy, events: Option<&Addr<Recorder>>) -> Addr<ImageGc> {
        let config = ImageGcConfig {
            policy,
            period: Duration::from_secs(3600),
            infra_image: "pause:test".into(),
            node_name: NODE.into(),
            state_file: self.state_file.clone(),
        };
        let gc = ImageGc::new(
            config,
            self.fake.clone(),
            Arc::new(self.usage.clone()),
            Arc::new(self.clock.clone()),
        );
        match events {
            Some(r) => gc.with_events(r.clone().recipient()).start(),
            None => gc.start(),
        }
    }

    /// A container of `image`, podvisor's (`ours`) or a user's.
    fn container(&self, name: &str, image: &str, ours: bool, state: ContainerState) -> String {
        let mut labels = BTreeMap::new();
        if ours {
            labels.insert(LABEL_NODE.to_string(), NODE.to_string());
        }
        self.fake.insert_container(
            CreateSpec {
                name: name.into(),
                image: image.into(),
                labels,
                ..Default::default()
            },
            state,
        )
    }

    fn id(&self, image: &str) -> String {
        self.fake.image_id_of(image)
    }
}

async fn collect(gc: &Addr<ImageGc>) -> Result<GcReport, ImageGcError> {
    tokio::time::timeout(WAIT, gc.send(CollectNow))
        .await
        .expect("a collection within 10 s")
        .expect("the collector answers")
}

fn policy() -> ImageGcPolicy {
    ImageGcPolicy::default()
}

#[actix::test]
async fn lru_unused_images_go_down_to_the_low_threshold_and_the_others_stay() {
    let images = [
        "pause:test",
        "used:1",
        "old:1",
        "older:1",
        "pulled:1",
        "foreign:1",
    ];
    let s = Setup::new(&images);
    let recorder = Recorder::new(
        Arc::new(s.clock.clone()),
        NODE.into(),
        ContainerRefs::default().snapshot(),
    );
    let events = recorder.store();
    let recorder = recorder.start();
    let gc = s.start(policy(), Some(&recorder));
    let ids: BTreeMap<&str, String> = images.iter().map(|i| (*i, s.id(i))).collect();
    s.container("infra", "pause:test", true, ContainerState::Running);
    s.container("app", "used:1", true, ContainerState::Running);
    let old = s.container("old", "old:1", true, ContainerState::Exited);
    let older = s.container("older", "older:1", true, ContainerState::Exited);
    let users = s.container("users", "foreign:1", false, ContainerState::Exited);
    gc.do_send(ImagePulled(s.id("pulled:1")));

    // Under the high threshold: records made, nothing removed.
    s.usage.set(50);
    let r = collect(&gc).await.expect("collects");
    assert!(r.removed.is_empty() && r.to_free == 0, "{r:?}");

    // A minute later `old` is still used, `older` no longer.
    s.clock.advance(Duration::from_secs(60));
    s.fake.remove_container_now(&older);
    s.usage.set(50);
    collect(&gc).await.expect("collects");
    s.clock.advance(Duration::from_secs(60));
    s.fake.remove_container_now(&old);
    s.fake.remove_container_now(&users);

    // 95 MB of 100: free 15 MB, 5 MB each: three go, LRU first: `pulled`
    // (never used), then `older`, then `old`.
    s.clock.advance(Duration::from_secs(60));
    s.usage.set(95);
    let r = collect(&gc).await.expect("collects");
    assert_eq!(
        r.removed,
        [
            ids["pulled:1"].clone(),
            ids["older:1"].clone(),
            ids["old:1"].clone()
        ],
        "{r:?}"
    );
    let names = s.fake.image_names();
    assert_eq!(names, ["foreign:1", "pause:test", "used:1"], "{r:?}");
    assert_eq!(r.to_free, 15 * MB);
    assert_eq!(r.freed, 15 * MB);

    // The order: the calls to the engine, by name.
    let removals: Vec<String> = s
        .fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            podvisor::runtime::fake::Call::RemoveImage(n) if !n.starts_with("sha256:") => Some(n),
            _ => None,
        })
        .collect();
    assert_eq!(removals, ["pulled:1", "older:1", "old:1"]);

    // One Normal event on the node per image, naming it.
    let node_events = tokio::time::timeout(WAIT, async {
        loop {
            let got = events.get(&node_events_key(NODE)).unwrap_or_default();
            if got.len() >= 3 {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("three events");
    let messages: Vec<String> = node_events
        .iter()
        .map(|e| {
            assert_eq!(e.reason.as_deref(), Some("FreeDiskSpace"));
            assert_eq!(e.involved_object.kind.as_deref(), Some("Node"));
            e.message.clone().unwrap_or_default()
        })
        .collect();
    assert!(messages[0].contains("pulled:1"), "{messages:?}");
    assert!(messages[2].contains("old:1"), "{messages:?}");
}

#[actix::test]
async fn young_images_stay_and_too_little_to_free_is_an_image_gc_failed_event() {
    let s = Setup::new(&["pause:test", "young:1", "foreign:1"]);
    let recorder = Recorder::new(
        Arc::new(s.clock.clone()),
        NODE.into(),
        ContainerRefs::default().snapshot(),
    );
    let events = recorder.store();
    let recorder = recorder.start();
    let gc = s.start(policy(), Some(&recorder));
    gc.do_send(ImagePulled(s.id("young:1")));
    s.usage.set(95);
    // First seen now: younger than 2 minutes.
    let e = collect(&gc).await.expect_err("nothing may go");
    assert!(matches!(e, ImageGcError::Short { .. }), "{e}");
    assert_eq!(s.fake.image_names().len(), 3);
    let warning = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(e) = events
                .get(&node_events_key(NODE))
                .unwrap_or_default()
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("ImageGCFailed"))
            {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("an ImageGCFailed event");
    assert_eq!(warning.type_.as_deref(), Some("Warning"));
    // Two minutes later it may go; the foreign one still stays.
    s.clock.advance(Duration::from_secs(120));
    let _ = collect(&gc).await;
    assert_eq!(s.fake.image_names(), ["foreign:1", "pause:test"]);
}

#[actix::test]
async fn all_images_removes_images_podvisor_never_used_too() {
    let s = Setup::new(&["pause:test", "foreign:1"]);
    let gc = s.start(
        ImageGcPolicy {
            all_images: true,
            ..policy()
        },
        None,
    );
    s.usage.set(50);
    collect(&gc).await.expect("collects");
    s.clock.advance(Duration::from_secs(600));
    s.usage.set(90);
    let r = collect(&gc).await;
    assert_eq!(s.fake.image_names(), ["pause:test"], "{r:?}");
}

#[actix::test]
async fn the_order_of_use_survives_a_restart() {
    let s = Setup::new(&["pause:test", "a:1", "b:1"]);
    let b_id = s.id("b:1");
    let gc = s.start(policy(), None);
    // `b` is used first, `a` later: `b` is the least recently used.
    let b = s.container("b", "b:1", true, ContainerState::Exited);
    let a = s.container("a", "a:1", true, ContainerState::Exited);
    s.fake.remove_container_now(&a);
    s.usage.set(50);
    collect(&gc).await.expect("collects");
    s.fake.remove_container_now(&b);
    s.container("a2", "a:1", true, ContainerState::Exited);
    s.clock.advance(Duration::from_secs(60));
    collect(&gc).await.expect("collects");
    assert!(s.state_file.exists(), "the records are written");
    // A new collector (podvisor restarted) reads them back.
    let a2 = s
        .fake
        .containers()
        .into_iter()
        .find(|c| c.spec.name == "a2")
        .expect("a2")
        .details
        .summary
        .id;
    s.fake.remove_container_now(&a2);
    let gc = s.start(policy(), None);
    // Its first collection (at start) reads the records back.
    collect(&gc).await.expect("collects");
    s.clock.advance(Duration::from_secs(600));
    s.usage.set(84 + 1); // 85 MB: free 5 MB, one image
    let r = collect(&gc).await.expect("collects");
    assert_eq!(r.removed, [b_id], "{r:?}");
    assert_eq!(s.fake.image_names(), ["a:1", "pause:test"]);
}

#[actix::test]
async fn an_image_a_container_started_using_is_refused_by_the_engine_and_reported() {
    let s = Setup::new(&["pause:test", "x:1"]);
    let gc = s.start(policy(), None);
    gc.do_send(ImagePulled(s.id("x:1")));
    s.usage.set(50);
    collect(&gc).await.expect("collects");
    s.clock.advance(Duration::from_secs(600));
    // The engine answers a container made after the list was taken.
    s.fake.fail_next(
        "remove_image",
        podvisor::runtime::RuntimeError::Engine {
            call: "remove image",
            message: "conflict: image is being used".into(),
        },
    );
    s.usage.set(90);
    let e = collect(&gc).await.expect_err("the removal failed");
    assert!(e.to_string().contains("x:1"), "{e}");
    assert_eq!(s.fake.image_names(), ["pause:test", "x:1"]);
}

#[actix::test]
async fn an_image_the_puller_pulled_is_podvisors() {
    use podvisor::actors::image_puller::{EnsureImage, ImagePuller, PullerConfig};
    let s = Setup::new(&["pause:test", "foreign:1"]);
    s.fake.add_to_registry("pulled:1");
    let gc = s.start(policy(), None);
    let puller = ImagePuller::new(
        s.fake.clone(),
        PullerConfig {
            qps: 0.0,
            ..PullerConfig::kubelet_defaults()
        },
        Arc::new(s.clock.clone()),
    )
    .with_pulled(gc.clone().recipient())
    .start();
    let pulled = tokio::time::timeout(
        WAIT,
        puller.send(EnsureImage {
            image: "pulled:1".into(),
            policy: "Always".parse().expect("a pull policy"),
            pod_uid: "u1".into(),
            object: None,
            progress_to: None,
        }),
    )
    .await
    .expect("answers in time")
    .expect("the puller answers");
    assert!(pulled.is_ok(), "{pulled:?}");
    s.fake.set_image_size("pulled:1", 5 * MB);
    s.usage.set(50);
    // The puller's news reaches the collector before this collection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    collect(&gc).await.expect("collects");
    s.clock.advance(Duration::from_secs(600));
    s.usage.set(90);
    let _ = collect(&gc).await;
    assert_eq!(s.fake.image_names(), ["foreign:1", "pause:test"]);
}

/// A usage that cannot be read, counting the attempts.
#[derive(Clone, Default)]
struct BrokenUsage(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl DiskUsage for BrokenUsage {
    async fn image_fs(&self) -> Result<FsUsage, UsageError> {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Err(UsageError::File {
            path: "/nowhere".into(),
            reason: "broken".into(),
        })
    }
}

#[actix::test]
async fn a_high_threshold_of_100_is_off_and_reads_no_usage() {
    let s = Setup::new(&["pause:test", "x:1"]);
    let broken = BrokenUsage::default();
    let config = |high: u8| ImageGcConfig {
        policy: ImageGcPolicy {
            high_percent: high,
            ..policy()
        },
        period: Duration::from_secs(3600),
        infra_image: "pause:test".into(),
        node_name: NODE.into(),
        state_file: s.state_file.clone(),
    };
    let start = |high: u8| {
        ImageGc::new(
            config(high),
            s.fake.clone(),
            Arc::new(broken.clone()),
            Arc::new(s.clock.clone()),
        )
        .start()
    };
    let r = collect(&start(100)).await.expect("off: no failure");
    assert!(r.removed.is_empty(), "{r:?}");
    let reads = || broken.0.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(reads(), 0, "off: the disk is not looked at");
    let e = collect(&start(99))
        .await
        .expect_err("on: the usage is read");
    assert!(matches!(e, ImageGcError::Usage(_)), "{e}");
}
