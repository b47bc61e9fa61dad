//! The ImagePuller against `FakeDocker` with slow pulls: queue modes, the
//! rate limit, one pull per image, pull policies and per-(pod, image)
//! back-off on the project's clock.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use futures::future::join_all;
use podvisor::actors::image_puller::{
    EnsureImage, ImagePuller, PullError, PullOutcome, PullerConfig,
};
use podvisor::model::clock::ManualClock;
use podvisor::model::PullPolicy;
use podvisor::runtime::credentials::CredentialStore;
use podvisor::runtime::fake::{Call, FakeDocker};

/// Bounds every await: no test can hang CI.
const WAIT: Duration = Duration::from_secs(10);

struct Setup {
    fake: Arc<FakeDocker>,
    clock: ManualClock,
    puller: Addr<ImagePuller>,
}

fn config() -> PullerConfig {
    PullerConfig {
        qps: 0.0,
        ..PullerConfig::kubelet_defaults()
    }
}

fn setup(config: PullerConfig, images: &[&str], pull_delay: Duration) -> Setup {
    let fake = Arc::new(FakeDocker::new());
    for i in images {
        fake.add_to_registry(i);
    }
    if !pull_delay.is_zero() {
        fake.delay("pull", pull_delay);
    }
    let clock = ManualClock::default();
    let puller = ImagePuller::new(fake.clone(), config, Arc::new(clock.clone())).start();
    Setup {
        fake,
        clock,
        puller,
    }
}

impl Setup {
    async fn ensure(&self, pod: &str, image: &str, policy: &str) -> Result<PullOutcome, PullError> {
        let req = EnsureImage {
            image: image.into(),
            policy: policy.parse().expect("a pull policy"),
            pod_uid: pod.into(),
            object: None,
            progress_to: None,
        };
        tokio::time::timeout(WAIT, self.puller.send(req))
            .await
            .expect("the puller answers in time")
            .expect("the puller is alive")
    }

    async fn ensure_all(&self, reqs: &[(&str, &str)]) -> Vec<Result<PullOutcome, PullError>> {
        join_all(
            reqs.iter()
                .map(|(pod, image)| self.ensure(pod, image, "Always")),
        )
        .await
    }

    fn pulls(&self) -> usize {
        self.fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Pull(_)))
            .count()
    }
}

fn images(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("127.0.0.1:5000/img{i}:1")).collect()
}

fn all_pulled(results: &[Result<PullOutcome, PullError>]) -> bool {
    results
        .iter()
        .all(|r| matches!(r, Ok(PullOutcome::Pulled { .. })))
}

#[actix::test]
async fn serialized_mode_never_has_two_pulls_in_flight() {
    let imgs = images(4);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    let s = setup(config(), &refs, Duration::from_millis(40));
    let reqs: Vec<(&str, &str)> = refs.iter().map(|i| ("pod", *i)).collect();
    let results = s.ensure_all(&reqs).await;
    assert!(all_pulled(&results), "{results:?}");
    assert_eq!(s.pulls(), 4);
    assert_eq!(s.fake.max_pulls_in_flight(), 1);
}

#[actix::test]
async fn serialized_pulls_run_in_arrival_order() {
    let imgs = images(5);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    let s = setup(config(), &refs, Duration::from_millis(10));
    // Sent one after the other without waiting: arrival order is send order.
    let pending: Vec<_> = refs
        .iter()
        .map(|i| {
            s.puller.send(EnsureImage {
                image: i.to_string(),
                policy: PullPolicy::Always,
                pod_uid: "pod".into(),
                object: None,
                progress_to: None,
            })
        })
        .collect();
    for p in pending {
        tokio::time::timeout(WAIT, p)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let order: Vec<String> = s.fake.pull_starts().into_iter().map(|(i, _)| i).collect();
    assert_eq!(order, imgs);
}

#[actix::test]
async fn parallel_mode_never_exceeds_the_cap() {
    let imgs = images(6);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    let s = setup(
        PullerConfig {
            max_parallel: Some(2),
            ..config()
        },
        &refs,
        Duration::from_millis(40),
    );
    let reqs: Vec<(&str, &str)> = refs.iter().map(|i| ("pod", *i)).collect();
    let results = s.ensure_all(&reqs).await;
    assert!(all_pulled(&results), "{results:?}");
    assert_eq!(s.fake.max_pulls_in_flight(), 2);
}

#[actix::test]
async fn parallel_mode_without_a_cap_runs_every_pull_at_once() {
    let imgs = images(5);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    let s = setup(
        PullerConfig {
            max_parallel: None,
            ..config()
        },
        &refs,
        Duration::from_millis(60),
    );
    let reqs: Vec<(&str, &str)> = refs.iter().map(|i| ("pod", *i)).collect();
    let results = s.ensure_all(&reqs).await;
    assert!(all_pulled(&results), "{results:?}");
    assert_eq!(s.fake.max_pulls_in_flight(), 5);
}

#[actix::test]
async fn a_tight_qps_makes_pulls_wait_their_turn_and_all_succeed() {
    let imgs = images(5);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    // 20 pulls/s, burst 1: one permit every 50 ms.
    let s = setup(
        PullerConfig {
            qps: 20.0,
            burst: 1,
            max_parallel: None,
            ..config()
        },
        &refs,
        Duration::ZERO,
    );
    let reqs: Vec<(&str, &str)> = refs.iter().map(|i| ("pod", *i)).collect();
    let results = s.ensure_all(&reqs).await;
    assert!(
        all_pulled(&results),
        "no pull fails for the limit: {results:?}"
    );
    let starts = s.fake.pull_starts();
    assert_eq!(starts.len(), 5);
    for pair in starts.windows(2) {
        let gap = pair[1].1.duration_since(pair[0].1);
        // GCRA is exact to the clock; allow a few ms of scheduling slack.
        assert!(
            gap >= Duration::from_millis(45),
            "a pull started early: {gap:?} after the previous one"
        );
    }
    let span = starts[4].1.duration_since(starts[0].1);
    assert!(
        span >= Duration::from_millis(195),
        "5 pulls at 20 QPS took {span:?}"
    );
}

#[actix::test]
async fn the_burst_is_spent_before_anyone_waits() {
    let imgs = images(3);
    let refs: Vec<&str> = imgs.iter().map(String::as_str).collect();
    let s = setup(
        PullerConfig {
            qps: 1.0,
            burst: 3,
            max_parallel: None,
            ..config()
        },
        &refs,
        Duration::ZERO,
    );
    let reqs: Vec<(&str, &str)> = refs.iter().map(|i| ("pod", *i)).collect();
    let results = s.ensure_all(&reqs).await;
    assert!(all_pulled(&results));
    let starts = s.fake.pull_starts();
    let span = starts[2].1.duration_since(starts[0].1);
    assert!(
        span < Duration::from_millis(200),
        "burst of 3 waited {span:?}"
    );
}

#[actix::test]
async fn five_pods_on_one_image_make_one_pull() {
    let image = "127.0.0.1:5000/shared:1";
    let s = setup(config(), &[image], Duration::from_millis(50));
    let reqs: Vec<(&str, &str)> = ["a", "b", "c", "d", "e"]
        .iter()
        .map(|p| (*p, image))
        .collect();
    let results = s.ensure_all(&reqs).await;
    assert!(all_pulled(&results), "{results:?}");
    assert_eq!(s.pulls(), 1);
}

#[actix::test]
async fn pull_policies() {
    let present = "present:1";
    let s = setup(config(), &[present], Duration::ZERO);
    s.fake.add_image(present);
    s.fake.set_image_user(present, "app");

    // The answer carries the image as present, its user included.
    let expected = podvisor::runtime::ImageInfo {
        id: s.fake.image_id_of(present),
        user: "app".into(),
    };
    assert_eq!(
        s.ensure("p", present, "IfNotPresent").await,
        Ok(PullOutcome::AlreadyPresent {
            image: expected.clone()
        })
    );
    assert_eq!(
        s.ensure("p", present, "Never").await,
        Ok(PullOutcome::AlreadyPresent { image: expected })
    );
    assert_eq!(s.pulls(), 0, "a present image is not pulled");
    assert!(matches!(
        s.ensure("p", present, "Always").await,
        Ok(PullOutcome::Pulled { .. })
    ));
    assert_eq!(s.pulls(), 1, "Always pulls even when present");

    let never = s.ensure("p", "absent:1", "Never").await.unwrap_err();
    assert_eq!(never.reason.as_str(), "ErrImageNeverPull");
    assert!(never.message.contains("absent:1"), "{}", never.message);
    assert_eq!(s.pulls(), 1, "Never never pulls");
}

#[actix::test]
async fn backoff_grows_10_20_40_seconds_per_pod_and_image() {
    let s = setup(config(), &[], Duration::ZERO);
    let image = "127.0.0.1:5000/missing:1";

    let first = s.ensure("pod-a", image, "IfNotPresent").await.unwrap_err();
    assert_eq!(first.reason.as_str(), "ErrImagePull");
    assert!(
        first.message.contains("manifest unknown"),
        "{}",
        first.message
    );
    assert_eq!(first.retry_after, Duration::from_secs(10));
    assert_eq!(s.pulls(), 1);

    let mut expected_pulls = 1;
    for delay in [10u64, 20, 40] {
        // Inside the back-off: no pull, ImagePullBackOff with the registry's
        // error.
        s.clock.advance(Duration::from_secs(delay - 1));
        let waiting = s.ensure("pod-a", image, "IfNotPresent").await.unwrap_err();
        assert_eq!(
            waiting.reason.as_str(),
            "ImagePullBackOff",
            "at {}s of {delay}s",
            delay - 1
        );
        assert!(
            waiting.message.contains("manifest unknown"),
            "{}",
            waiting.message
        );
        assert_eq!(waiting.retry_after, Duration::from_secs(1));
        assert_eq!(s.pulls(), expected_pulls);
        // At the end of the back-off: one more pull, which fails again.
        s.clock.advance(Duration::from_secs(1));
        let again = s.ensure("pod-a", image, "IfNotPresent").await.unwrap_err();
        expected_pulls += 1;
        assert_eq!(again.reason.as_str(), "ErrImagePull");
        assert_eq!(again.retry_after, Duration::from_secs(delay * 2));
        assert_eq!(s.pulls(), expected_pulls);
    }

    // The back-off is per (pod, image): another pod pulls at once.
    let other = s.ensure("pod-b", image, "IfNotPresent").await.unwrap_err();
    assert_eq!(other.reason.as_str(), "ErrImagePull");
    assert_eq!(other.retry_after, Duration::from_secs(10));
    assert_eq!(s.pulls(), expected_pulls + 1);
}

#[actix::test]
async fn a_pod_recovers_when_the_registry_has_the_image_again() {
    let s = setup(config(), &[], Duration::ZERO);
    let image = "127.0.0.1:5000/late:1";
    assert_eq!(
        s.ensure("p", image, "IfNotPresent")
            .await
            .unwrap_err()
            .reason
            .as_str(),
        "ErrImagePull"
    );
    s.fake.add_to_registry(image);
    assert_eq!(
        s.ensure("p", image, "IfNotPresent")
            .await
            .unwrap_err()
            .reason
            .as_str(),
        "ImagePullBackOff"
    );
    s.clock.advance(Duration::from_secs(10));
    assert!(matches!(
        s.ensure("p", image, "IfNotPresent").await,
        Ok(PullOutcome::Pulled { .. })
    ));
    // Success clears the back-off: the next failure starts at 10 s again.
    s.fake.fail_next(
        "pull",
        podvisor::runtime::RuntimeError::Engine {
            call: "pull",
            message: "connection refused".into(),
        },
    );
    let e = s.ensure("p", image, "Always").await.unwrap_err();
    assert_eq!(e.retry_after, Duration::from_secs(10));
    assert!(e.message.contains("connection refused"), "{}", e.message);
}

#[actix::test]
async fn a_pull_without_progress_is_cancelled_at_the_deadline() {
    let image = "127.0.0.1:5000/slow:1";
    let s = setup(
        PullerConfig {
            progress_deadline: Duration::from_millis(50),
            ..config()
        },
        &[image],
        Duration::from_secs(30),
    );
    let started = std::time::Instant::now();
    let e = s.ensure("p", image, "IfNotPresent").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(e.reason.as_str(), "ErrImagePull");
    assert!(e.message.contains("made no progress"), "{}", e.message);
}

#[actix::test]
async fn credentials_go_with_pulls_from_their_registry_only() {
    let ours = "127.0.0.1:5000/private:1";
    let public = "quay.io/public:1";
    let creds = CredentialStore::parse(
        r#"{"auths":{"127.0.0.1:5000":{"username":"u","password":"p"}}}"#,
        "config.json",
    )
    .unwrap();
    let s = setup(
        PullerConfig {
            credentials: creds,
            ..config()
        },
        &[ours, public],
        Duration::ZERO,
    );
    s.ensure("p", ours, "Always").await.unwrap();
    s.ensure("p", public, "Always").await.unwrap();
    let sent = s.fake.pull_credentials();
    assert_eq!(sent.len(), 2);
    let first = sent[0].as_ref().expect("credentials for our registry");
    assert_eq!(
        (first.username.as_str(), first.password.as_str()),
        ("u", "p")
    );
    assert_eq!(sent[1], None);
}

#[actix::test]
async fn the_queue_the_rate_limit_waits_and_the_pulls_are_counted() {
    let imgs = images(3);
    let fake = Arc::new(FakeDocker::new());
    for i in &imgs {
        fake.add_to_registry(i);
    }
    let metrics = Arc::new(podvisor::metrics::Metrics::new());
    // 5 pulls/s, burst 1: the first pull goes at once, the others wait
    // 200 ms each for a permit.
    let config = PullerConfig {
        qps: 5.0,
        burst: 1,
        max_parallel: None,
        ..config()
    };
    let puller = ImagePuller::new(fake.clone(), config, Arc::new(ManualClock::default()))
        .with_metrics(metrics.clone())
        .start();
    let s = Setup {
        fake,
        clock: ManualClock::default(),
        puller,
    };
    let reqs: Vec<(&str, &str)> = imgs.iter().map(|i| ("pod", i.as_str())).collect();
    let all = s.ensure_all(&reqs);
    let watch = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        metrics.pull_queue_depth.get()
    };
    let (results, depth) = futures::join!(all, watch);
    assert!(all_pulled(&results), "{results:?}");
    // At 100 ms the first pull is done, the second waits for its permit
    // (due at 200 ms) and the third behind it.
    assert_eq!(depth, 2, "two pulls not admitted yet");
    assert_eq!(metrics.pull_queue_depth.get(), 0);
    assert_eq!(metrics.rate_limit_waits.get(), 2);
    let text = metrics.encode();
    for line in [
        "kubelet_image_pull_duration_seconds_count 3",
        "podvisor_image_pull_wait_seconds_count 3",
        "podvisor_registry_rate_limit_waits_total 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line}\n{text}");
    }
}
