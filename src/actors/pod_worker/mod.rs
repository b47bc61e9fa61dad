//! The PodWorker: one per pod. It observes the pod's containers, asks
//! [`plan`](crate::decide::plan::plan) what to do, and does it, one sync at a time.
//!
//! Updates that arrive while a sync runs are not queued: the worker keeps the
//! newest spec and syncs once more when the current sync ends (the kubelet
//! keeps only the last undelivered update too).

//!
//! - this module: the actor, its messages, and the one-sync-at-a-time rule;
//! - `sync`: one sync: observe the engine, plan, report status;
//! - `execute`: carrying out a plan, with a typed result per container
//!   ([`SyncResult`]) from which the waiting reasons in status are built.

mod execute;
mod network;
mod sync;

pub(crate) use sync::observed_of;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    SpawnHandle, WrapFuture,
};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tracing::Instrument;

use super::image_puller::PullNews;
use super::prober::ProbeNews;
use super::{Deps, DesiredPod};
use crate::decide::admission::Verdict;
use crate::decide::backoff::Backoff;
use crate::decide::status::{self, Waiting};
use crate::model::PodExt;
use crate::runtime::gate::{self, Lane, Priority};
use crate::runtime::ContainerDetails;
use crate::spec::volumes::PodVolumes;

pub use execute::{ContainerResult, SyncResult};
use sync::{Outcome, SyncJob};

/// The newest spec for the pod (with where it came from), or `None` when
/// the pod must go.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Update(pub Option<DesiredPod>);

/// The newest spec for the pod with the Supervisor's admission verdict on
/// it (`Update` leaves the pod [`Verdict::Unjudged`]: the worker judges it
/// alone).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Judged(pub DesiredPod, pub Verdict);

/// The pod must go, its containers stopped with `grace_secs` when given
/// (an API delete's `gracePeriodSeconds`) instead of the spec's
/// `terminationGracePeriodSeconds`.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Terminate {
    pub grace_secs: Option<i64>,
}

/// Something may have changed: sync now, for this reason.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SyncNow(pub SyncReason);

/// Why a sync ran: carried by its tracing span, so that the log lines of one
/// sync can be grouped and traced back to what caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncReason {
    /// The worker started (a new pod, or one adopted after a restart).
    Start,
    /// A new spec, or the pod was removed from the manifests.
    ManifestChange,
    /// An engine event for one of the pod's containers.
    EngineEvent,
    /// The periodic relist (`--sync-frequency`).
    Relist,
    /// A back-off ended, or work left undone is due.
    Timer,
    /// A probe's verdict changed.
    Probe,
}

impl fmt::Display for SyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncReason::Start => "start",
            SyncReason::ManifestChange => "manifest change",
            SyncReason::EngineEvent => "engine event",
            SyncReason::Relist => "relist",
            SyncReason::Timer => "timer",
            SyncReason::Probe => "probe",
        })
    }
}

/// The engine said this container died: sync now, and again shortly if the
/// engine still lists it as running (its `die` event can come before its
/// state changes).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ContainerDied(pub String, pub Option<crate::runtime::ContainerExit>);

/// The engine started this container: news for the worker unless its own
/// sync started it (then the sync's status already shows it running).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ContainerStarted(pub String);

/// The Supervisor's periodic list of the engine: this pod's containers as
/// listed when the list began. The worker looks at them instead of
/// listing the engine itself, when nothing of its own happened since.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Relisted {
    pub listed_at: std::time::Instant,
    pub containers: Vec<crate::runtime::ContainerSummary>,
}

/// How often a worker looks again for a container whose death was
/// announced but not yet visible, and for how many tries.
const DEATH_RECHECK: Duration = Duration::from_millis(20);
const DEATH_RECHECKS: u32 = 50;

/// What a worker tells the Supervisor.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub enum WorkerReport {
    Status {
        uid: String,
        /// Shared with the worker, which keeps it to compare the next one.
        status: Arc<PodStatus>,
    },
    /// The pod is gone from the engine; the worker has stopped.
    Stopped { uid: String },
}

/// What survives from one sync to the next.
#[derive(Default)]
pub(crate) struct Memory {
    backoff: Backoff,
    waiting: HashMap<String, Waiting>,
    /// Inspect results by container ID, reused while the container's state
    /// is unchanged (a dead container never changes).
    inspected: HashMap<String, ContainerDetails>,
    /// Container ID → termination message, read once after it exited.
    messages: HashMap<String, String>,
    /// Why the node refused the pod (logged when it changes).
    refused: Option<status::Refusal>,
    /// Why the pod's containers cannot be listed, while they cannot
    /// (logged when it starts or changes, not at every retry).
    unobserved: Option<String>,
    /// The pod network's failed setups and next check.
    net: network::NetMemory,
    /// When this worker first had the pod's spec (`activeDeadlineSeconds`
    /// counts from it, or from the pod's oldest container if older).
    first_seen: Option<chrono::DateTime<chrono::Utc>>,
    /// The pod passed its `activeDeadlineSeconds`: it stays `Failed`.
    deadline_exceeded: bool,
    /// The pod ended (`Succeeded`/`Failed`) on its own: no deadline
    /// applies any more.
    ended: bool,
    /// The engine's cgroup driver and version, once asked (pods with
    /// pod-level limits only).
    cgroups: Option<crate::runtime::Cgroups>,
}

pub struct PodWorker {
    uid: String,
    deps: Deps,
    desired: Option<Arc<Pod>>,
    /// The newest spec ever desired, kept while terminating.
    last_pod: Option<Arc<Pod>>,
    /// Where the spec came from (`file (document N)`, a URL), for messages.
    source: String,
    supervisor: Recipient<WorkerReport>,
    /// Set when the last sync left nothing to do and nothing can change
    /// without an engine event or a new spec: a refused pod with no
    /// containers, or a finished pod. The periodic relist then costs
    /// nothing; any other trigger syncs (and clears it).
    idle: bool,
    /// The last status reported, so an unchanged one is not sent again.
    reported: Option<Arc<PodStatus>>,
    busy: bool,
    /// Why to sync again once the running sync ends (the newest reason).
    again: Option<SyncReason>,
    memory: Memory,
    wake: Option<SpawnHandle>,
    /// Containers the prober asked to kill; dropped once they are dead.
    kill_requests: Vec<String>,
    /// Containers announced dead but maybe still listed running, with the
    /// re-checks left.
    dying: HashMap<String, u32>,
    /// When the pod was first desired (the worker's start, or the first
    /// spec it got): `kubelet_pod_start_duration_seconds` counts from it,
    /// once, when all its containers first run.
    first_desired: Option<std::time::Instant>,
    start_observed: bool,
    /// Whether a sync with a spec ran (the first one is a `create`).
    created: bool,
    /// The Supervisor's admission verdict on the desired spec.
    verdict: Verdict,
    /// The warnings about unserved fields told for the current spec (a
    /// new spec tells only those it adds).
    unserved: Vec<crate::decide::unserved::Unserved>,
    /// Containers whose start the engine announced while a sync ran: news
    /// unless that sync started them.
    start_news: Vec<String>,
    /// The containers the last sync started.
    started_by_last: Vec<String>,
    /// The pod's containers as listed by the Supervisor, for the next sync
    /// to look at instead of listing the engine; and when the last sync
    /// ended (a listing begun before is stale).
    seed: Option<Vec<crate::runtime::ContainerSummary>>,
    last_sync_end: Option<std::time::Instant>,
    /// When the last sync's last look at the engine began (none when it
    /// used the Supervisor's listing).
    last_look: Option<std::time::Instant>,
    /// When the latest listing that came while a sync ran was taken.
    relisted_while_busy: Option<std::time::Instant>,
    /// Dead containers known from their `die` event alone, for the next
    /// sync's first look.
    presumed: Vec<String>,
    /// The pod's place among the pods being brought up: its engine calls
    /// that change things go after those of pods seen before it.
    ticket: u64,
}

/// The next worker's ticket.
static TICKETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl PodWorker {
    pub fn new(
        uid: String,
        desired: Option<DesiredPod>,
        deps: Deps,
        supervisor: Recipient<WorkerReport>,
    ) -> Self {
        let source = desired
            .as_ref()
            .map(|d| d.source.clone())
            .unwrap_or_default();
        let desired = desired.map(|d| d.pod);
        let first_desired = desired.as_ref().map(|_| std::time::Instant::now());
        Self {
            uid,
            deps,
            last_pod: desired.clone(),
            desired,
            source,
            supervisor,
            idle: false,
            reported: None,
            busy: false,
            again: None,
            memory: Memory::default(),
            wake: None,
            kill_requests: Vec::new(),
            dying: HashMap::new(),
            first_desired,
            start_observed: false,
            created: false,
            verdict: Verdict::Unjudged,
            unserved: Vec::new(),
            start_news: Vec::new(),
            started_by_last: Vec::new(),
            seed: None,
            last_sync_end: None,
            last_look: None,
            relisted_while_busy: None,
            presumed: Vec::new(),
            ticket: TICKETS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Tells once per spec, as a Warning event on the pod (logged by the
    /// recorder), each field of it the node cannot honour.
    fn warn_unserved(&mut self) {
        let Some(pod) = self.desired.clone() else {
            return;
        };
        let now = crate::decide::unserved::unserved(&pod);
        for w in now.iter().filter(|w| !self.unserved.contains(w)) {
            let object = super::events::EventRef {
                namespace: pod.namespace().to_string(),
                pod: pod.name().to_string(),
                uid: self.uid.clone(),
                field_path: None,
            };
            self.deps.events.do_send(super::events::Record::warning(
                object,
                w.reason,
                w.message.clone(),
            ));
        }
        self.unserved = now;
    }

    /// The pod's containers as the Supervisor listed them at start (its
    /// first sync looks at them instead of listing the engine).
    pub fn with_seed(mut self, seed: Option<Vec<crate::runtime::ContainerSummary>>) -> Self {
        self.seed = seed;
        self
    }

    /// The Supervisor's admission verdict on the pod it starts with.
    pub fn with_verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }

    fn sync(&mut self, reason: SyncReason, ctx: &mut Context<Self>) {
        // Good for this sync only, if it starts now.
        let seed = self.seed.take();
        if reason == SyncReason::Relist && self.idle {
            return;
        }
        self.idle = false;
        if self.busy {
            self.again = Some(reason);
            return;
        }
        self.busy = true;
        if let Some(h) = self.wake.take() {
            ctx.cancel_future(h);
        }
        let memory = std::mem::take(&mut self.memory);
        let job = SyncJob {
            deps: self.deps.clone(),
            uid: self.uid.clone(),
            pod: self.desired.clone(),
            last_pod: self.last_pod.clone(),
            kill_requests: self.kill_requests.clone(),
            source: self.source.clone(),
            me: ctx.address().recipient(),
            pulls: ctx.address().recipient(),
            volumes: PodVolumes::default(),
            verdict: self.verdict.clone(),
            dying: self.dying.keys().cloned().collect(),
            seed,
            presumed: std::mem::take(&mut self.presumed),
            touched: None,
            memory,
        };
        // `kubelet_pod_worker_duration_seconds{operation}`: what this sync
        // is for, as the worker knows it.
        let operation = match (&self.desired, self.created, reason) {
            (None, _, _) => "kill",
            (Some(_), false, _) => "create",
            (Some(_), true, SyncReason::ManifestChange) => "update",
            (Some(_), true, _) => "sync",
        };
        self.created |= self.desired.is_some();
        let began = std::time::Instant::now();
        let pod = self.last_pod.as_deref();
        let span = tracing::info_span!(
            "sync",
            pod = %pod.map(|p| format!("{}/{}", p.namespace(), p.name())).unwrap_or_default(),
            uid = %self.uid,
            trigger = %reason,
        );
        // A pod that ran (a replacement, an update) or is going has its
        // engine calls go ahead of pods coming up for the first time.
        let lane = match self.desired.is_none() || self.start_observed {
            true => Lane::Urgent,
            false => Lane::Steady,
        };
        let priority = Priority {
            lane,
            ticket: self.ticket,
        };
        let job = gate::with_priority(priority, job.run());
        ctx.spawn(
            job.instrument(span)
                .into_actor(self)
                .map(move |(memory, outcome), act, ctx| {
                    act.memory = memory;
                    // A kill asked for is done once the container no longer
                    // runs; so is waiting for an announced death.
                    act.kill_requests.retain(|id| outcome.running.contains(id));
                    act.dying.retain(|id, left| {
                        *left = left.saturating_sub(1);
                        *left > 0 && outcome.running.contains(id)
                    });
                    act.busy = false;
                    act.last_sync_end = Some(std::time::Instant::now());
                    act.last_look = outcome.looked_at;
                    // A relist that came during the sync and listed before
                    // its last look tells nothing that look did not see.
                    if let Some(listed_at) = act.relisted_while_busy.take() {
                        if outcome.looked_at.is_none_or(|looked| listed_at > looked) {
                            act.again.get_or_insert(SyncReason::Relist);
                        }
                    }
                    // The engine's news of starts this sync made is no
                    // news; of any other start, it is (one more sync).
                    act.started_by_last = outcome.started.clone();
                    let news = std::mem::take(&mut act.start_news);
                    if news.iter().any(|id| !act.started_by_last.contains(id)) {
                        act.again.get_or_insert(SyncReason::EngineEvent);
                    }
                    act.deps
                        .metrics
                        .pod_worker_duration
                        .get_or_create(&[("operation", operation)])
                        .observe(began.elapsed().as_secs_f64());
                    act.finish(outcome, ctx);
                }),
        );
    }

    fn finish(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        if let Some(status) = &outcome.status {
            self.observe_start(status);
        }
        if let Some(status) = outcome.status {
            if self.desired.is_some() && self.reported.as_deref() != Some(&status) {
                let status = Arc::new(status);
                self.reported = Some(status.clone());
                self.supervisor.do_send(WorkerReport::Status {
                    uid: self.uid.clone(),
                    status,
                });
            }
        }
        if self.desired.is_none() && outcome.gone && self.again.is_none() {
            self.supervisor.do_send(WorkerReport::Stopped {
                uid: self.uid.clone(),
            });
            ctx.stop();
            return;
        }
        if let Some(reason) = self.again.take() {
            self.sync(reason, ctx);
            return;
        }
        // Come back when a back-off ends or work left undone is due, or
        // soon while an announced death is not visible yet.
        let recheck = (!self.dying.is_empty()).then_some(DEATH_RECHECK);
        let wake = [outcome.wake_after, recheck].into_iter().flatten().min();
        if let Some(after) = wake {
            self.wake = Some(ctx.notify_later(SyncNow(SyncReason::Timer), after));
        }
        self.idle = wake.is_none() && outcome.settled;
    }
}

impl PodWorker {
    /// The first time all the pod's containers run, how long since it was
    /// first desired (`kubelet_pod_start_duration_seconds`), once per pod.
    fn observe_start(&mut self, status: &PodStatus) {
        let (Some(since), Some(pod)) = (self.first_desired, &self.desired) else {
            return;
        };
        if self.start_observed {
            return;
        }
        let wanted = pod.spec.as_ref().map_or(0, |s| s.containers.len());
        let running = status
            .container_statuses
            .iter()
            .flatten()
            .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            .count();
        if wanted > 0 && running == wanted {
            self.start_observed = true;
            self.deps
                .metrics
                .pod_start_duration
                .observe(since.elapsed().as_secs_f64());
        }
    }
}

impl Actor for PodWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.warn_unserved();
        self.sync(SyncReason::Start, ctx);
    }
}

impl Handler<Judged> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: Judged, ctx: &mut Context<Self>) {
        let Judged(desired, verdict) = msg;
        self.update(Some(desired), verdict, ctx);
    }
}

impl Handler<Update> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: Update, ctx: &mut Context<Self>) {
        self.update(msg.0, Verdict::Unjudged, ctx);
    }
}

impl PodWorker {
    fn update(&mut self, desired: Option<DesiredPod>, verdict: Verdict, ctx: &mut Context<Self>) {
        self.verdict = verdict;
        if let Some(d) = &desired {
            self.first_desired
                .get_or_insert_with(std::time::Instant::now);
            self.last_pod = Some(d.pod.clone());
            self.source = d.source.clone();
        }
        self.desired = desired.map(|d| d.pod);
        self.warn_unserved();
        self.sync(SyncReason::ManifestChange, ctx);
    }
}

impl Handler<Terminate> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: Terminate, ctx: &mut Context<Self>) {
        if let (Some(secs), Some(pod)) = (msg.grace_secs, &self.last_pod) {
            let mut pod = Pod::clone(pod);
            pod.spec
                .get_or_insert_with(Default::default)
                .termination_grace_period_seconds = Some(secs.max(0));
            self.last_pod = Some(Arc::new(pod));
        }
        self.desired = None;
        self.sync(SyncReason::ManifestChange, ctx);
    }
}

impl Handler<PullNews> for PodWorker {
    type Result = ();
    /// A pull this pod waits for moved: its container's waiting message
    /// says how far it is, until the sync that pulls ends and reports.
    fn handle(&mut self, msg: PullNews, _: &mut Context<Self>) {
        let Some(pod) = self.desired.as_ref().filter(|_| self.busy) else {
            return;
        };
        let base = match &self.reported {
            Some(s) => Arc::clone(s),
            None => Arc::new(status::pending(pod)),
        };
        if let Some(shown) = status::pulling(&base, &msg.container, &msg.message()) {
            let shown = Arc::new(shown);
            self.reported = Some(shown.clone());
            self.supervisor.do_send(WorkerReport::Status {
                uid: self.uid.clone(),
                status: shown,
            });
        }
    }
}

impl Handler<ProbeNews> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: ProbeNews, ctx: &mut Context<Self>) {
        if let ProbeNews::Unhealthy { container_id } = msg {
            if !self.kill_requests.contains(&container_id) {
                self.kill_requests.push(container_id);
            }
        }
        self.sync(SyncReason::Probe, ctx);
    }
}

impl Handler<ContainerDied> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: ContainerDied, ctx: &mut Context<Self>) {
        // What changed is known: the sync looks at the pod's containers as
        // its last one left them, that one inspected afresh, instead of
        // listing the engine first (the replacement is created sooner; the
        // sync's later looks list as usual).
        if !self.busy && self.memory.inspected.contains_key(&msg.0) {
            // With the exit its event tells, the dead container is known
            // without waiting for the engine to finish handling the exit
            // (its inspect waits): the sync's first round presumes it,
            // its later looks inspect it.
            if let (Some(exit), Some(d)) = (&msg.1, self.memory.inspected.get_mut(&msg.0)) {
                if d.summary.state == crate::runtime::ContainerState::Running {
                    d.summary.state = crate::runtime::ContainerState::Exited;
                    d.exit_code = Some(exit.code);
                    d.finished_at = Some(exit.finished_at.clone());
                    d.pid = None;
                    self.presumed.push(msg.0.clone());
                }
            }
            let known = self.memory.inspected.values();
            self.seed = Some(known.map(|d| d.summary.clone()).collect());
        }
        self.dying.insert(msg.0, DEATH_RECHECKS);
        self.sync(SyncReason::EngineEvent, ctx);
    }
}

impl Handler<ContainerStarted> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: ContainerStarted, ctx: &mut Context<Self>) {
        if self.busy {
            self.start_news.push(msg.0);
        } else if !self.started_by_last.contains(&msg.0) {
            self.sync(SyncReason::EngineEvent, ctx);
        }
    }
}

impl Handler<Relisted> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: Relisted, ctx: &mut Context<Self>) {
        if self.busy {
            // Judged when the sync ends: news only if listed after the
            // sync's last look.
            self.relisted_while_busy = self.relisted_while_busy.max(Some(msg.listed_at));
            return;
        }
        if self.last_look.is_some_and(|looked| msg.listed_at <= looked) {
            // The last sync looked after this listing was taken.
            return;
        }
        let fresh = self.last_sync_end.is_none_or(|end| msg.listed_at >= end);
        if fresh && self.steady(&msg.containers) {
            return;
        }
        self.seed = fresh.then_some(msg.containers);
        self.sync(SyncReason::Relist, ctx);
    }
}

impl PodWorker {
    /// Whether a sync would find nothing to do and nothing new to report:
    /// the pod's containers are those of its last sync, all running, and
    /// it waits for nothing (no timer, no announced death, no kill, no
    /// network check that comes with the relist). Then a relist costs the
    /// pod nothing. (A dead container keeps the pod syncing at each relist:
    /// its record becomes garbage with age.)
    fn steady(&self, listed: &[crate::runtime::ContainerSummary]) -> bool {
        let seen = &self.memory.inspected;
        let running = crate::runtime::ContainerState::Running;
        self.desired.is_some()
            && self.reported.is_some()
            && self.wake.is_none()
            && self.again.is_none()
            && self.dying.is_empty()
            && self.kill_requests.is_empty()
            && self.deps.network.is_none()
            && listed.len() == seen.len()
            && listed.iter().all(|c| {
                c.state == running && seen.get(&c.id).is_some_and(|d| d.summary.state == running)
            })
    }
}

impl Handler<SyncNow> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: SyncNow, ctx: &mut Context<Self>) {
        self.sync(msg.0, ctx);
    }
}

impl Memory {
    /// Takes in what an execution did: a started container waits no more,
    /// one that could not start waits with its reason. A new reason is
    /// logged (the same one again is not, so a back-off does not flood the
    /// log).
    fn apply(&mut self, result: &SyncResult) {
        for r in &result.containers {
            match &r.outcome {
                Ok(_) => {
                    self.waiting.remove(&r.name);
                }
                Err(w) => self.set_waiting(&r.name, w.clone()),
            }
        }
    }

    /// A container that runs waits for nothing: why it waited before (a
    /// start that timed out but went through) is forgotten, so it never
    /// shows again once it stops.
    fn forget_waiting_of_running(&mut self, observed: &[crate::decide::plan::Observed]) {
        for o in observed {
            if o.state == crate::runtime::ContainerState::Running
                && o.labels.kind == crate::model::naming::ContainerKind::Container
            {
                self.waiting.remove(&o.labels.container_name);
            }
        }
    }

    fn set_waiting(&mut self, container: &str, w: Waiting) {
        let changed = self
            .waiting
            .get(container)
            .is_none_or(|old| old.reason != w.reason);
        if changed {
            tracing::info!(container, reason = %w.reason, "container waiting: {}", w.message);
        }
        self.waiting.insert(container.to_string(), w);
    }
}
