//! The ImagePuller: makes sure an image is present before a container is
//! created from it, as the kubelet's image manager meant to.
//!
//! - **Policy.** `Never` and `IfNotPresent` look for the image first (no
//!   queue, no rate limit: a present image costs one inspect); `Always`, and
//!   a missing image, pull.
//! - **One pull per image.** Requests for an image already queued or being
//!   pulled wait for that pull and all get its answer.
//! - **Order, concurrency, rate.** Pulls are admitted one at a time, in
//!   arrival order, by a single admission task: it takes a concurrency slot
//!   (one with `--serialize-image-pulls`, `--max-parallel-image-pulls`
//!   otherwise) and then a permit from the `--registry-qps`/`--registry-burst`
//!   bucket (governor's GCRA). An empty bucket makes the pull *wait* for its
//!   permit; no pull ever fails because of the limit.
//! - **Back-off.** A failed pull answers `ErrImagePull` and starts a back-off
//!   for that (pod, image): 10 s doubling to 300 s. A request inside the
//!   back-off answers `ImagePullBackOff` without pulling.
//! - **Progress.** While a pull runs, how far it is (layers and bytes done
//!   of the total) revises each waiter's Pulling event and goes to the
//!   waiter's worker for its waiting message, at most once a second.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, Recipient,
    ResponseFuture, WrapFuture,
};
use chrono::{DateTime, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

use super::events::{EventRef, Record};
use crate::decide::backoff::Backoff;
use crate::metrics::Metrics;
use crate::model::clock::Clock;
use crate::model::{PullPolicy, WaitingReason};
use crate::runtime::credentials::CredentialStore;
use crate::runtime::pull_progress::PullProgress;
use crate::runtime::{ContainerRuntime, ImageInfo, RuntimeError};

/// How the puller queues and limits pulls (from the settings).
#[derive(Debug, Clone)]
pub struct PullerConfig {
    /// Pulls per second; 0 = unlimited.
    pub qps: f64,
    pub burst: u32,
    /// At most this many pulls at once (`Some(1)` = serialized); `None` =
    /// unlimited.
    pub max_parallel: Option<usize>,
    pub progress_deadline: Duration,
    pub credentials: CredentialStore,
}

impl PullerConfig {
    /// The kubelet's defaults: serialized, 5 QPS, burst 10, 1 m deadline.
    pub fn kubelet_defaults() -> Self {
        Self {
            qps: 5.0,
            burst: 10,
            max_parallel: Some(1),
            progress_deadline: Duration::from_secs(60),
            credentials: CredentialStore::default(),
        }
    }
}

/// Asks for `image` to be present, per `policy`, for the pod `pod_uid`.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Result<PullOutcome, PullError>")]
pub struct EnsureImage {
    pub image: String,
    pub policy: PullPolicy,
    /// The asking pod's UID: back-off is per (pod, image).
    pub pod_uid: String,
    /// The container the events (Pulling, Pulled, Failed, BackOff) are
    /// recorded against.
    pub object: Option<EventRef>,
    /// Who hears how far the pull is, while it runs.
    pub progress_to: Option<ProgressTo>,
}

/// How often, at most, a running pull's progress is told.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Where a waiter's pull progress goes: its worker, for `container`.
#[derive(Debug, Clone)]
pub struct ProgressTo {
    pub recipient: Recipient<PullNews>,
    pub container: String,
}

/// How far the pull of `image`, which `container` waits for, is.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct PullNews {
    pub container: String,
    pub image: String,
    pub progress: PullProgress,
}

impl PullNews {
    /// The waiting message and Pulling event text.
    pub fn message(&self) -> String {
        pulling_message(&self.image, Some(&self.progress))
    }
}

/// `Pulling image "x"`, with how far it is when known.
fn pulling_message(image: &str, progress: Option<&PullProgress>) -> String {
    match progress.filter(|p| p.started()) {
        Some(p) => format!("Pulling image \"{image}\": {p}"),
        None => format!("Pulling image \"{image}\""),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullOutcome {
    AlreadyPresent { image: ImageInfo },
    Pulled { took: Duration, image: ImageInfo },
}

impl PullOutcome {
    /// The image as it is now present (its user decides `runAsNonRoot`).
    pub fn image(&self) -> &ImageInfo {
        match self {
            PullOutcome::AlreadyPresent { image } | PullOutcome::Pulled { image, .. } => image,
        }
    }
}

/// Why an image is not there; `reason` is what the container status shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct PullError {
    /// `ErrImagePull`, `ImagePullBackOff` or `ErrImageNeverPull`.
    pub reason: WaitingReason,
    pub message: String,
    /// When asking again can give another answer.
    pub retry_after: Duration,
}

type Answer = Result<PullOutcome, PullError>;

struct Waiter {
    pod_uid: String,
    object: Option<EventRef>,
    progress_to: Option<ProgressTo>,
    tx: oneshot::Sender<Answer>,
}

/// A pull admitted to the queue.
struct PullJob {
    image: String,
    /// When it was queued (`podvisor_image_pull_wait_seconds`).
    queued: Instant,
}

/// How far a running pull is, from its task to the actor.
#[derive(Message)]
#[rtype(result = "()")]
struct PullProgressed {
    image: String,
    progress: PullProgress,
}

/// A pull's result, from the admission task back to the actor.
#[derive(Message)]
#[rtype(result = "()")]
struct PullDone {
    image: String,
    result: Result<(Duration, ImageInfo), RuntimeError>,
}

pub struct ImagePuller {
    runtime: Arc<dyn ContainerRuntime>,
    config: PullerConfig,
    clock: Arc<dyn Clock>,
    /// Image → the callers waiting for its pull (queued or under way).
    waiting: HashMap<String, Vec<Waiter>>,
    queue: Option<mpsc::UnboundedSender<PullJob>>,
    /// Arrival tickets: presence checks finish in any order, but pulls are
    /// queued in the order their requests arrived. A finished check parks
    /// its request here until every earlier one is settled.
    next_ticket: u64,
    next_release: u64,
    settled: BTreeMap<u64, Option<(String, Waiter)>>,
    /// Back-off per `pod/image`, with the last failure's time and message.
    backoff: Backoff,
    failures: HashMap<String, (DateTime<Utc>, String)>,
    events: Option<Recipient<Record>>,
    metrics: Arc<Metrics>,
    /// Told the ID of every image pulled (image GC: podvisor's images).
    pulled: Option<Recipient<super::image_gc::ImagePulled>>,
}

fn backoff_key(pod_uid: &str, image: &str) -> String {
    format!("{pod_uid}/{image}")
}

impl ImagePuller {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        config: PullerConfig,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            runtime,
            config,
            clock,
            waiting: HashMap::new(),
            queue: None,
            next_ticket: 0,
            next_release: 0,
            settled: BTreeMap::new(),
            backoff: Backoff::default(),
            failures: HashMap::new(),
            events: None,
            metrics: Arc::new(Metrics::new()),
            pulled: None,
        }
    }

    /// Counts the queue, the waits and the pulls there.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Records Pulling, Pulled, Failed and BackOff events there.
    pub fn with_events(mut self, events: Recipient<Record>) -> Self {
        self.events = Some(events);
        self
    }

    /// Tells `pulled` the ID of every image pulled.
    pub fn with_pulled(mut self, pulled: Recipient<super::image_gc::ImagePulled>) -> Self {
        self.pulled = Some(pulled);
        self
    }

    fn record(&self, object: &Option<EventRef>, warning: bool, reason: &str, message: String) {
        if let (Some(events), Some(object)) = (&self.events, object) {
            events.do_send(Record::of(object.clone(), warning, reason, message));
        }
    }

    /// The rate limiter for `qps`/`burst`; `None` when unlimited.
    fn limiter(&self) -> Option<DefaultDirectRateLimiter> {
        let qps = self.config.qps;
        if !(qps > 0.0 && qps.is_finite()) {
            return None;
        }
        let burst = NonZeroU32::new(self.config.burst.max(1))?;
        let quota = Quota::with_period(Duration::from_secs_f64(1.0 / qps))?.allow_burst(burst);
        Some(RateLimiter::direct(quota))
    }

    /// The time left in the back-off of `pod/image`, and the last failure.
    fn in_backoff(&self, key: &str) -> Option<(Duration, String)> {
        let (failed_at, message) = self.failures.get(key)?;
        let left = self.backoff.remaining(key, *failed_at, self.clock.now())?;
        Some((left, message.clone()))
    }

    /// Settles ticket `ticket` (with a pull to queue, or `None` when it was
    /// answered without one) and queues every request now due, in order.
    fn settle(&mut self, ticket: u64, pull: Option<(String, Waiter)>) {
        self.settled.insert(ticket, pull);
        while let Some(due) = self.settled.remove(&self.next_release) {
            self.next_release += 1;
            if let Some((image, waiter)) = due {
                self.enqueue(image, waiter);
            }
        }
    }

    fn enqueue(&mut self, image: String, waiter: Waiter) {
        self.record(
            &waiter.object,
            false,
            "Pulling",
            pulling_message(&image, None),
        );
        if let Some(waiters) = self.waiting.get_mut(&image) {
            waiters.push(waiter);
            return;
        }
        self.waiting.insert(image.clone(), vec![waiter]);
        tracing::info!(%image, "Pulling image");
        if let Some(queue) = &self.queue {
            let job = PullJob {
                image,
                queued: Instant::now(),
            };
            if queue.send(job).is_ok() {
                self.metrics.pull_queue_depth.inc();
            }
        }
    }
}

/// What a queued pull waits for: a concurrency slot, then a rate permit
/// (each `None` when unlimited).
struct Gates {
    slots: Option<Arc<Semaphore>>,
    limiter: Option<DefaultDirectRateLimiter>,
}

/// Admits pulls one by one in arrival order: a concurrency slot, then a rate
/// permit, then the pull runs on its own task.
async fn admit(
    mut jobs: mpsc::UnboundedReceiver<PullJob>,
    runtime: Arc<dyn ContainerRuntime>,
    credentials: CredentialStore,
    deadline: Duration,
    gates: Gates,
    puller: Addr<ImagePuller>,
    metrics: Arc<Metrics>,
) {
    let Gates { slots, limiter } = gates;
    while let Some(job) = jobs.recv().await {
        let slot = match &slots {
            Some(s) => match s.clone().acquire_owned().await {
                Ok(permit) => Some(permit),
                Err(_) => return,
            },
            None => None,
        };
        if let Some(l) = &limiter {
            if l.check().is_err() {
                metrics.rate_limit_waits.inc();
                l.until_ready().await;
            }
        }
        metrics.pull_queue_depth.dec();
        metrics
            .pull_wait
            .observe(job.queued.elapsed().as_secs_f64());
        let pulls = metrics.clone();
        let runtime = runtime.clone();
        let creds = credentials.for_image(&job.image);
        let puller = puller.clone();
        actix::spawn(async move {
            let started = Instant::now();
            let pulled =
                pull_telling_progress(&*runtime, &job.image, creds.as_ref(), deadline, &puller)
                    .await;
            let took = started.elapsed();
            if pulled.is_ok() {
                pulls.image_pull_duration.observe(took.as_secs_f64());
            }
            // What was pulled, as the engine now has it.
            let result = match pulled {
                Ok(()) => match runtime.inspect_image(&job.image).await {
                    Ok(Some(info)) => Ok((took, info)),
                    Ok(None) => Err(RuntimeError::ImageNotFound(job.image.clone())),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            drop(slot);
            puller.do_send(PullDone {
                image: job.image,
                result,
            });
        });
    }
}

/// Pulls `image`, telling the puller how far it is at most every
/// [`PROGRESS_EVERY`] while it runs (only when it moved).
async fn pull_telling_progress(
    runtime: &dyn ContainerRuntime,
    image: &str,
    creds: Option<&crate::runtime::Credentials>,
    deadline: Duration,
    puller: &Addr<ImagePuller>,
) -> Result<(), RuntimeError> {
    let (tx, mut rx) = watch::channel(PullProgress::default());
    let pull = runtime.pull_image(image, creds, deadline, &tx);
    tokio::pin!(pull);
    let mut tick =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            done = &mut pull => return done,
            _ = tick.tick() => {
                if rx.has_changed().unwrap_or(false) {
                    let progress = *rx.borrow_and_update();
                    if progress.started() {
                        tracing::debug!(%image, %progress, "pull progress");
                        puller.do_send(PullProgressed { image: image.to_string(), progress });
                    }
                }
            }
        }
    }
}

impl Actor for ImagePuller {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let (tx, rx) = mpsc::unbounded_channel();
        self.queue = Some(tx);
        let slots = self
            .config
            .max_parallel
            .map(|n| Arc::new(Semaphore::new(n.max(1))));
        actix::spawn(admit(
            rx,
            self.runtime.clone(),
            self.config.credentials.clone(),
            self.config.progress_deadline,
            Gates {
                slots,
                limiter: self.limiter(),
            },
            ctx.address(),
            self.metrics.clone(),
        ));
    }
}

impl Handler<EnsureImage> for ImagePuller {
    type Result = ResponseFuture<Answer>;

    fn handle(&mut self, msg: EnsureImage, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let runtime = self.runtime.clone();
        let image = msg.image.clone();
        let look = msg.policy != PullPolicy::Always;
        let presence = async move {
            match look {
                true => runtime.inspect_image(&image).await,
                false => Ok(None),
            }
        };
        ctx.spawn(presence.into_actor(self).map(move |present, act, _| {
            let image = msg.image;
            let verdict = match (msg.policy, present) {
                (_, Err(e)) => Err(PullError {
                    reason: WaitingReason::ErrImagePull,
                    message: format!("cannot inspect image \"{image}\": {e}"),
                    retry_after: Duration::from_secs(2),
                }),
                (PullPolicy::Never, Ok(None)) => Err(PullError {
                    // Recorded by the caller, which shows the reason.
                    reason: WaitingReason::ErrImageNeverPull,
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    ),
                    retry_after: crate::decide::backoff::INITIAL,
                }),
                (_, Ok(Some(info))) => {
                    act.record(
                        &msg.object,
                        false,
                        "Pulled",
                        format!("Container image \"{image}\" already present on machine"),
                    );
                    Ok(PullOutcome::AlreadyPresent { image: info })
                }
                (_, Ok(None)) => {
                    let key = backoff_key(&msg.pod_uid, &image);
                    let Some((left, last)) = act.in_backoff(&key) else {
                        let waiter = Waiter {
                            pod_uid: msg.pod_uid,
                            object: msg.object,
                            progress_to: msg.progress_to,
                            tx,
                        };
                        act.settle(ticket, Some((image, waiter)));
                        return;
                    };
                    act.record(
                        &msg.object,
                        false,
                        "BackOff",
                        format!("Back-off pulling image \"{image}\""),
                    );
                    Err(PullError {
                        reason: WaitingReason::ImagePullBackOff,
                        message: format!("Back-off pulling image \"{image}\": {last}"),
                        retry_after: left,
                    })
                }
            };
            act.settle(ticket, None);
            let _ = tx.send(verdict);
        }));
        Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(PullError {
                    reason: WaitingReason::ErrImagePull,
                    message: "the image puller stopped".into(),
                    retry_after: Duration::from_secs(2),
                })
            })
        })
    }
}

impl Handler<PullProgressed> for ImagePuller {
    type Result = ();

    fn handle(&mut self, msg: PullProgressed, _: &mut Context<Self>) {
        let message = pulling_message(&msg.image, Some(&msg.progress));
        for w in self.waiting.get(&msg.image).into_iter().flatten() {
            if let (Some(events), Some(object)) = (&self.events, &w.object) {
                events.do_send(Record::revision(object.clone(), "Pulling", message.clone()));
            }
            if let Some(to) = &w.progress_to {
                to.recipient.do_send(PullNews {
                    container: to.container.clone(),
                    image: msg.image.clone(),
                    progress: msg.progress,
                });
            }
        }
    }
}

impl Handler<PullDone> for ImagePuller {
    type Result = ();

    fn handle(&mut self, msg: PullDone, _: &mut Context<Self>) {
        let image = msg.image;
        match &msg.result {
            Ok((took, info)) => {
                tracing::info!(%image, took = ?took, "Successfully pulled image");
                if let Some(pulled) = &self.pulled {
                    pulled.do_send(super::image_gc::ImagePulled(info.id.clone()));
                }
            }
            Err(e) => tracing::warn!(%image, error = %e, "Failed to pull image"),
        }
        let now = self.clock.now();
        for w in self.waiting.remove(&image).unwrap_or_default() {
            let key = backoff_key(&w.pod_uid, &image);
            let answer = match &msg.result {
                Ok((took, info)) => {
                    self.backoff.forget(&key);
                    self.failures.remove(&key);
                    self.record(
                        &w.object,
                        false,
                        "Pulled",
                        format!("Successfully pulled image \"{image}\" in {took:.3?}"),
                    );
                    Ok(PullOutcome::Pulled {
                        took: *took,
                        image: info.clone(),
                    })
                }
                Err(e) => {
                    let message = format!("failed to pull image \"{image}\": {e}");
                    self.record(
                        &w.object,
                        true,
                        "Failed",
                        format!("Failed to pull image \"{image}\": {e}"),
                    );
                    self.backoff.record_restart(&key);
                    self.failures.insert(key.clone(), (now, message.clone()));
                    Err(PullError {
                        reason: WaitingReason::ErrImagePull,
                        message,
                        retry_after: self.backoff.delay(&key).unwrap_or_default(),
                    })
                }
            };
            let _ = w.tx.send(answer);
        }
    }
}
