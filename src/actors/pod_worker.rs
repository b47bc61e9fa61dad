//! The PodWorker: one per pod. It observes the pod's containers, asks
//! [`plan`](crate::decide::plan::plan) what to do, and does it, one sync at a time.
//!
//! Updates that arrive while a sync runs are not queued: the worker keeps the
//! newest spec and syncs once more when the current sync ends (the kubelet
//! keeps only the last undelivered update too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient,
    SpawnHandle, WrapFuture,
};
use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use super::events::{EventRef, Record};
use super::image_puller::EnsureImage;
use super::prober::{ProbeNews, SyncWatches, Watched};
use super::registries::{ContainerRef, Forget, SetRef};
use super::Deps;
use crate::actors::handlers;
use crate::decide::backoff::Backoff;
use crate::decide::plan::{self, Desired, Observed, PodActions, StartReason};
use crate::decide::status::{self, Waiting};
use crate::host;
use crate::model::naming::{self, ContainerName, Kind, PodLabels};
use crate::runtime::{ContainerDetails, ContainerState, ImageInfo, RuntimeError};
use crate::spec::containers::{self, PodIdentity};
use crate::spec::volumes::PodVolumes;

/// How many plan/execute rounds one sync may take before it yields: a pod
/// converges in one or two; the bound stops a container that dies at once
/// from spinning the worker (its back-off takes over).
const MAX_ROUNDS: usize = 4;
/// When to try again after an engine call failed.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// What a preStop hook leaves of the grace period, at the least.
const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

/// The newest spec for the pod, or `None` when the pod must go.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Update(pub Option<Arc<Pod>>);

/// Something may have changed in the engine: sync now.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct SyncNow;

/// The engine said this container died: sync now, and again shortly if the
/// engine still lists it as running (its `die` event can come before its
/// state changes).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ContainerDied(pub String);

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
        status: Box<PodStatus>,
    },
    /// The pod is gone from the engine; the worker has stopped.
    Stopped {
        uid: String,
    },
}

/// What survives from one sync to the next.
#[derive(Default)]
struct Memory {
    backoff: Backoff,
    waiting: HashMap<String, Waiting>,
    /// Inspect results by container ID, reused while the container's state
    /// is unchanged (a dead container never changes).
    inspected: HashMap<String, ContainerDetails>,
    /// Container ID → termination message, read once after it exited.
    messages: HashMap<String, String>,
    /// Why the node refused the pod (logged when it changes).
    refused: Option<status::Refusal>,
}

pub struct PodWorker {
    uid: String,
    deps: Deps,
    desired: Option<Arc<Pod>>,
    /// The newest spec ever desired, kept while terminating.
    last_pod: Option<Arc<Pod>>,
    supervisor: Recipient<WorkerReport>,
    busy: bool,
    again: bool,
    memory: Memory,
    wake: Option<SpawnHandle>,
    /// Containers the prober asked to kill; dropped once they are dead.
    kill_requests: Vec<String>,
    /// Containers announced dead but maybe still listed running, with the
    /// re-checks left.
    dying: HashMap<String, u32>,
}

impl PodWorker {
    pub fn new(
        uid: String,
        desired: Option<Arc<Pod>>,
        deps: Deps,
        supervisor: Recipient<WorkerReport>,
    ) -> Self {
        Self {
            uid,
            deps,
            last_pod: desired.clone(),
            desired,
            supervisor,
            busy: false,
            again: false,
            memory: Memory::default(),
            wake: None,
            kill_requests: Vec::new(),
            dying: HashMap::new(),
        }
    }

    fn sync(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            self.again = true;
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
            me: ctx.address().recipient(),
            volumes: PodVolumes::default(),
            memory,
        };
        ctx.spawn(
            job.run()
                .into_actor(self)
                .map(|(memory, outcome), act, ctx| {
                    act.memory = memory;
                    // A kill asked for is done once the container no longer
                    // runs; so is waiting for an announced death.
                    act.kill_requests.retain(|id| outcome.running.contains(id));
                    act.dying.retain(|id, left| {
                        *left = left.saturating_sub(1);
                        *left > 0 && outcome.running.contains(id)
                    });
                    act.busy = false;
                    act.finish(outcome, ctx);
                }),
        );
    }

    fn finish(&mut self, outcome: Outcome, ctx: &mut Context<Self>) {
        if let Some(status) = outcome.status {
            if self.desired.is_some() {
                self.supervisor.do_send(WorkerReport::Status {
                    uid: self.uid.clone(),
                    status: Box::new(status),
                });
            }
        }
        if self.desired.is_none() && outcome.gone && !self.again {
            self.supervisor.do_send(WorkerReport::Stopped {
                uid: self.uid.clone(),
            });
            ctx.stop();
            return;
        }
        if std::mem::take(&mut self.again) {
            self.sync(ctx);
            return;
        }
        // Come back when a back-off ends or work left undone is due, or
        // soon while an announced death is not visible yet.
        let recheck = (!self.dying.is_empty()).then_some(DEATH_RECHECK);
        let wake = [outcome.wake_after, recheck].into_iter().flatten().min();
        if let Some(after) = wake {
            self.wake = Some(ctx.notify_later(SyncNow, after));
        }
    }
}

impl Actor for PodWorker {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.sync(ctx);
    }
}

impl Handler<Update> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: Update, ctx: &mut Context<Self>) {
        if let Some(p) = &msg.0 {
            self.last_pod = Some(p.clone());
        }
        self.desired = msg.0;
        self.sync(ctx);
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
        self.sync(ctx);
    }
}

impl Handler<ContainerDied> for PodWorker {
    type Result = ();
    fn handle(&mut self, msg: ContainerDied, ctx: &mut Context<Self>) {
        self.dying.insert(msg.0, DEATH_RECHECKS);
        self.sync(ctx);
    }
}

impl Handler<SyncNow> for PodWorker {
    type Result = ();
    fn handle(&mut self, _: SyncNow, ctx: &mut Context<Self>) {
        self.sync(ctx);
    }
}

/// What one sync ended with.
#[derive(Default)]
struct Outcome {
    status: Option<PodStatus>,
    /// The pod has no containers left (meaningful when terminating).
    gone: bool,
    /// Sync again after this long (a back-off ends, or work is left undone).
    wake_after: Option<Duration>,
    /// The pod's running containers after the sync.
    running: Vec<String>,
}

/// One sync, run outside the actor with its own copy of what it needs.
struct SyncJob {
    deps: Deps,
    uid: String,
    pod: Option<Arc<Pod>>,
    /// The last spec while terminating (for preStop hooks).
    last_pod: Option<Arc<Pod>>,
    memory: Memory,
    kill_requests: Vec<String>,
    /// The worker itself, for the prober's news.
    me: Recipient<ProbeNews>,
    /// The pod's volumes, once the node admitted it.
    volumes: PodVolumes,
}

impl SyncJob {
    async fn run(mut self) -> (Memory, Outcome) {
        let mut outcome = Outcome::default();
        // A pod the node refuses gets nothing created (what runs of an
        // earlier spec is removed) and reports why.
        let mut refused = None;
        if let Some(pod) = &self.pod {
            match containers::admit_pod(pod, &self.uid, &self.deps.node.rules) {
                Ok(vols) => self.volumes = vols,
                Err(r) => {
                    if self.memory.refused.as_ref() != Some(&r) {
                        tracing::warn!(pod = %self.uid, reason = %r.reason, "pod refused: {}", r.message);
                    }
                    refused = Some(r);
                }
            }
        }
        self.memory.refused = refused.clone();
        // Set when a round could not do all it planned: the next round only
        // observes (for the status) instead of retrying at once.
        let mut held_back = None;
        for round in 0..MAX_ROUNDS {
            let details = match self.observe().await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(pod = %self.uid, error = %e, "cannot observe pod containers");
                    outcome.wake_after = Some(RETRY_AFTER);
                    return (self.memory, outcome);
                }
            };
            let observed: Vec<Observed> = details.iter().filter_map(observed_of).collect();
            let actions = match self.pod.clone().filter(|_| refused.is_none()) {
                Some(pod) => {
                    let actions = plan::plan(
                        &Desired {
                            pod: &pod,
                            infra_image: &self.deps.node.infra_image,
                            backoff: &self.memory.backoff,
                            now: self.deps.clock.now(),
                            kill_requests: &self.kill_requests,
                            gc: self.deps.node.gc,
                        },
                        &observed,
                    );
                    self.note_backoff(&pod, &actions);
                    actions
                }
                None => plan::plan_removal(&observed),
            };
            self.read_termination_messages(&details).await;
            if actions.is_empty() || held_back.is_some() || round + 1 == MAX_ROUNDS {
                outcome.gone = observed.is_empty();
                if outcome.gone && self.pod.is_none() {
                    self.teardown().await;
                }
                let backoff_ends = actions.backing_off.iter().map(|b| b.remaining).min();
                // Work left undone (a failed pull, a container that keeps
                // dying at once) is tried again after a pause.
                let undone = (!actions.is_empty()).then(|| held_back.unwrap_or(RETRY_AFTER));
                outcome.wake_after = [backoff_ends, undone].into_iter().flatten().min();
                outcome.running = details
                    .iter()
                    .filter(|d| d.summary.state == ContainerState::Running)
                    .map(|d| d.summary.id.clone())
                    .collect();
                self.watch_probes(&details);
                if let Some(pod) = &self.pod {
                    let view = &self.deps.readiness_view;
                    let facts = status::Facts {
                        waiting: &self.memory.waiting,
                        probes: &|id: &str| view.get(id).map(|s| *s),
                        messages: &self.memory.messages,
                        host_ip: &self.deps.node.host_ip,
                        refused: refused.as_ref(),
                    };
                    outcome.status = Some(status::pod_status(pod, &details, &facts));
                }
                return (self.memory, outcome);
            }
            match self.execute(&actions, &observed).await {
                Ok(None) => {}
                Ok(Some(after)) => held_back = Some(after),
                Err(e) => {
                    tracing::warn!(pod = %self.uid, error = %e, "sync failed");
                    held_back = Some(RETRY_AFTER);
                }
            }
        }
        unreachable!("the last round always returns")
    }

    /// Tells the prober which app containers run now (none when the pod is
    /// going), with the pod IP its httpGet and tcpSocket probes use.
    fn watch_probes(&self, details: &[ContainerDetails]) {
        let spec = self.pod.as_deref().and_then(|p| p.spec.clone());
        let host_network = spec.as_ref().and_then(|s| s.host_network).unwrap_or(false);
        let mut pod_ip = String::new();
        let mut containers = Vec::new();
        for d in details
            .iter()
            .filter(|d| d.summary.state == ContainerState::Running)
        {
            let Some(labels) = PodLabels::parse(&d.summary.labels) else {
                continue;
            };
            if labels.kind == Kind::Sandbox {
                pod_ip = if host_network {
                    "127.0.0.1".into()
                } else {
                    d.ip_address.clone()
                };
                continue;
            }
            let spec_container = spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .find(|c| c.name == labels.container_name);
            if let Some(c) = spec_container {
                // Adopted containers (after a restart of podvisor) get their
                // reference too; setting it again is harmless.
                self.deps.refs.do_send(SetRef {
                    container_id: d.summary.id.clone(),
                    reference: ContainerRef {
                        namespace: labels.namespace.clone(),
                        pod: labels.pod_name.clone(),
                        uid: self.uid.clone(),
                        field_path: self.field_path(&c.name),
                    },
                });
                containers.push(Watched {
                    container_id: d.summary.id.clone(),
                    container: c.clone(),
                });
            }
        }
        self.deps.prober.do_send(SyncWatches {
            uid: self.uid.clone(),
            pod_ip,
            containers,
            worker: self.me.clone(),
        });
    }

    /// Lists the pod's containers and inspects those whose state is new.
    async fn observe(&mut self) -> Result<Vec<ContainerDetails>, RuntimeError> {
        let rt = &self.deps.runtime;
        let filter = [
            (
                naming::LABEL_NODE.to_string(),
                self.deps.node.node_name.clone(),
            ),
            (naming::LABEL_POD_UID.to_string(), self.uid.clone()),
        ];
        let summaries = rt.list_containers(&filter).await?;
        let mut details = Vec::with_capacity(summaries.len());
        let mut cache = std::mem::take(&mut self.memory.inspected);
        for s in summaries {
            let cached = cache.remove(&s.id).filter(|d| d.summary.state == s.state);
            let d = match cached {
                Some(d) => d,
                None => match rt.inspect_container(&s.id).await? {
                    Some(d) => d,
                    None => continue, // removed meanwhile
                },
            };
            self.memory.inspected.insert(s.id.clone(), d.clone());
            details.push(d);
        }
        Ok(details)
    }

    /// Turns the planner's back-off verdicts into waiting reasons.
    fn note_backoff(&mut self, pod: &Pod, actions: &PodActions) {
        for b in &actions.backing_off {
            let fresh = self
                .memory
                .waiting
                .get(&b.name)
                .is_none_or(|w| w.reason != "CrashLoopBackOff");
            if fresh {
                self.deps.events.do_send(Record::warning(
                    EventRef {
                        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                        pod: pod.metadata.name.clone().unwrap_or_default(),
                        uid: self.uid.clone(),
                        field_path: Some(format!("spec.containers{{{}}}", b.name)),
                    },
                    "BackOff",
                    format!("Back-off restarting failed container {}", b.name),
                ));
            }
            self.set_waiting(
                &b.name,
                Waiting {
                    reason: "CrashLoopBackOff".into(),
                    message: format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        b.delay.as_secs(),
                        b.name,
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        pod.metadata.namespace.as_deref().unwrap_or_default(),
                        self.uid
                    ),
                },
            );
        }
    }

    /// Carries out `a`; when some container could not be started, returns
    /// when to try again.
    async fn execute(
        &mut self,
        a: &PodActions,
        observed: &[Observed],
    ) -> Result<Option<Duration>, RuntimeError> {
        let rt = self.deps.runtime.clone();
        // Apps die in parallel (each after its preStop hook), the infra
        // container last.
        for kind in [Kind::Container, Kind::Sandbox] {
            let kills = a
                .kill
                .iter()
                .filter(|k| k.kind == kind)
                .map(|k| self.kill_one(k, observed.iter().find(|o| o.id == k.id)));
            for r in join_all(kills).await {
                r?;
            }
            for k in a.kill.iter().filter(|k| k.kind == kind) {
                self.forget(&k.id);
            }
        }
        for id in &a.remove {
            rt.remove_container(id).await?;
            self.forget(id);
        }
        let Some(pod) = self.pod.clone() else {
            return Ok(None);
        };
        let node = self.deps.node.clone();
        let uid = self.uid.clone();
        let ident = PodIdentity {
            pod: &pod,
            uid: &uid,
            node: &node.node_name,
        };
        let mut sandbox_id = a.sandbox_id.clone();
        if a.create_sandbox.is_some() || !a.start.is_empty() {
            if let Err(e) = self.setup_volumes().await {
                let message = format!("MountVolume.SetUp failed: {e}");
                self.record_pod(true, "FailedMount", message.clone());
                self.wait_all(&pod, "ContainerCreating", &message);
                return Ok(Some(RETRY_AFTER));
            }
        }
        if let Some(cs) = &a.create_sandbox {
            self.memory.inspected.clear();
            if let Err((w, after)) = self
                .ensure_image(&node.infra_image, "IfNotPresent", None)
                .await
            {
                self.wait_all(&pod, "ContainerCreating", &w.message);
                return Ok(Some(after));
            }
            let spec = containers::sandbox_spec(&ident, &node.infra_image, cs.attempt, &cs.hash);
            match self.create_and_start(&spec).await {
                Ok(id) => sandbox_id = Some(id),
                Err(e) => {
                    self.wait_all(&pod, "ContainerCreating", &format!("infra container: {e}"));
                    return Err(e);
                }
            }
        }
        for id in &a.start_existing {
            rt.start_container(id).await?;
        }
        let Some(sandbox_id) = sandbox_id else {
            return Ok(None);
        };
        // The pod's IP, for the downward API and httpGet hooks: looked up
        // once for all the containers this sync starts.
        let pod_ip = match a.start.is_empty() {
            true => String::new(),
            false => self.pod_ip(Some(&sandbox_id)).await,
        };
        let mut retry: Option<Duration> = None;
        let mut again = |after: Duration| retry = Some(retry.map_or(after, |r| r.min(after)));
        let spec = pod.spec.clone().unwrap_or_default();
        let init_containers = spec.init_containers.unwrap_or_default();
        for s in &a.start {
            let list = if s.init {
                &init_containers
            } else {
                &spec.containers
            };
            let Some(c) = list.get(s.index) else {
                continue;
            };
            if s.reason == StartReason::Restart {
                if let Some(last) = observed
                    .iter()
                    .filter(|o| {
                        o.labels.kind == Kind::Container && o.labels.container_name == s.name
                    })
                    .max_by_key(|o| (o.attempt, o.created))
                {
                    if let Some(ran) = last.ran_for() {
                        self.memory.backoff.reset_if_ran_cleanly(&s.name, ran);
                    }
                }
                self.memory.backoff.record_restart(&s.name);
            }
            let image = c.image.clone().unwrap_or_default();
            let policy = c
                .image_pull_policy
                .clone()
                .unwrap_or_else(|| "IfNotPresent".into());
            let object = Some(self.event_ref(&c.name));
            let present = match self.ensure_image(&image, &policy, object).await {
                Ok(info) => info,
                Err((w, after)) => {
                    if w.reason == "ErrImageNeverPull" {
                        self.record(&c.name, true, "ErrImageNeverPull", w.message.clone());
                    }
                    self.set_waiting(&c.name, w);
                    again(after);
                    continue;
                }
            };
            let config = match self
                .configure(&pod, c, s.attempt, &pod_ip, &present.user)
                .await
            {
                Ok(config) => config,
                Err(message) => {
                    self.record(&c.name, true, "Failed", format!("Error: {message}"));
                    self.set_waiting(
                        &c.name,
                        Waiting {
                            reason: "CreateContainerConfigError".into(),
                            message,
                        },
                    );
                    again(RETRY_AFTER);
                    continue;
                }
            };
            let spec =
                containers::app_spec(&ident, c, s.attempt, s.restart_count, &sandbox_id, &config);
            match self.create_and_start(&spec).await {
                Ok(id) => {
                    self.deps.refs.do_send(SetRef {
                        container_id: id.clone(),
                        reference: ContainerRef {
                            namespace: ident.namespace().to_string(),
                            pod: ident.name().to_string(),
                            uid: self.uid.clone(),
                            field_path: self.field_path(&c.name),
                        },
                    });
                    self.record(
                        &c.name,
                        false,
                        "Created",
                        format!("Created container {}", c.name),
                    );
                    self.record(
                        &c.name,
                        false,
                        "Started",
                        // The short ID tells the starts of one container
                        // apart (each restart is its own event).
                        format!("Started container {} ({})", c.name, &id[..id.len().min(12)]),
                    );
                    self.memory.waiting.remove(&c.name);
                    if self.post_start(c, &id, &pod_ip).await.is_err() {
                        continue;
                    }
                }
                Err(e) => {
                    self.record(&c.name, true, "Failed", format!("Error: {e}"));
                    again(RETRY_AFTER);
                    self.set_waiting(
                        &c.name,
                        Waiting {
                            reason: "CreateContainerError".into(),
                            message: e.to_string(),
                        },
                    );
                }
            }
        }
        Ok(retry)
    }

    /// `spec.containers{name}` or `spec.initContainers{name}`.
    fn field_path(&self, name: &str) -> String {
        let init = self
            .spec_pod()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.init_containers.as_ref())
            .is_some_and(|i| i.iter().any(|c| c.name == name));
        match init {
            true => format!("spec.initContainers{{{name}}}"),
            false => format!("spec.containers{{{name}}}"),
        }
    }

    /// The event reference of one of the pod's containers.
    fn event_ref(&self, container: &str) -> EventRef {
        let meta = self.spec_pod().map(|p| &p.metadata);
        EventRef {
            namespace: meta
                .and_then(|m| m.namespace.clone())
                .unwrap_or_else(|| "default".into()),
            pod: meta.and_then(|m| m.name.clone()).unwrap_or_default(),
            uid: self.uid.clone(),
            field_path: Some(self.field_path(container)),
        }
    }

    /// Records an event against one of the pod's containers.
    fn record(&self, container: &str, warning: bool, reason: &str, message: String) {
        self.deps.events.do_send(Record {
            object: self.event_ref(container),
            warning,
            reason: reason.into(),
            message,
        });
    }

    /// Creates the pod's directory and volumes on the host (idempotent).
    async fn setup_volumes(&self) -> std::io::Result<()> {
        let vols = self.volumes.clone();
        let dir = self.deps.node.rules.pod_dir(&self.uid);
        let h = self.deps.host.clone();
        tokio::task::spawn_blocking(move || {
            host::setup_volumes(&*h, &vols, &dir).map_err(std::io::Error::from)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Removes the pod's directory (volumes, termination logs) once its
    /// containers are gone.
    async fn teardown(&self) {
        let dir = self.deps.node.rules.pod_dir(&self.uid);
        let h = self.deps.host.clone();
        let result = tokio::task::spawn_blocking(move || {
            host::teardown_volumes(&*h, &dir).map_err(std::io::Error::from)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = result.map_err(std::io::Error::other) {
            tracing::warn!(pod = %self.uid, error = %e, "cannot remove the pod's directory");
        }
    }

    /// Where a container attempt's termination log lives on the host.
    fn termination_log(&self, container: &str, attempt: u32) -> std::path::PathBuf {
        self.deps
            .node
            .rules
            .pod_dir(&self.uid)
            .join("containers")
            .join(format!("{container}-{attempt}"))
            .join("termination-log")
    }

    /// Decides a container's configuration (environment, resources,
    /// security, mounts) and prepares its termination log.
    async fn configure(
        &self,
        pod: &Pod,
        c: &Container,
        attempt: u32,
        pod_ip: &str,
        image_user: &str,
    ) -> Result<containers::ContainerConfig, String> {
        let log = self.termination_log(&c.name, attempt);
        if let Some(dir) = log.parent() {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        tokio::fs::write(&log, b"")
            .await
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let (uid, rules, vols) = (&self.uid, &self.deps.node.rules, &self.volumes);
        let config =
            containers::configure(pod, uid, c, rules, vols, pod_ip, image_user, Some(&log))
                .map_err(|e| e.to_string())?;
        let (c2, vols2, h) = (c.clone(), vols.clone(), self.deps.host.clone());
        tokio::task::spawn_blocking(move || host::check_subpaths(&*h, &c2, &vols2))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Reads the termination message of every container that exited since
    /// the last look: the file at `terminationMessagePath`, or with
    /// `FallbackToLogsOnError` and a failure, the tail of its log.
    async fn read_termination_messages(&mut self, details: &[ContainerDetails]) {
        const MAX_BYTES: usize = 4096;
        for d in details {
            if d.summary.state != ContainerState::Exited
                || self.memory.messages.contains_key(&d.summary.id)
            {
                continue;
            }
            let Some(labels) = PodLabels::parse(&d.summary.labels) else {
                continue;
            };
            if labels.kind != Kind::Container {
                continue;
            }
            let attempt = ContainerName::parse(&d.summary.name).map_or(0, |n| n.attempt);
            let path = self.termination_log(&labels.container_name, attempt);
            let mut text = tokio::fs::read(&path)
                .await
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(MAX_BYTES)]).into_owned())
                .unwrap_or_default();
            let fallback = self
                .container_spec(&labels.container_name)
                .and_then(|c| c.termination_message_policy.as_deref())
                == Some("FallbackToLogsOnError");
            if text.is_empty() && fallback && d.exit_code.unwrap_or(0) != 0 {
                if let Ok(tail) = self.deps.runtime.logs_tail(&d.summary.id, 80).await {
                    let start = tail.len().saturating_sub(2048);
                    let start = (start..tail.len())
                        .find(|i| tail.is_char_boundary(*i))
                        .unwrap_or(tail.len());
                    text = tail[start..].to_string();
                }
            }
            self.memory.messages.insert(d.summary.id.clone(), text);
        }
        // Forget the messages of containers that are gone.
        self.memory
            .messages
            .retain(|id, _| details.iter().any(|d| d.summary.id == *id));
    }

    /// Records an event against the pod itself.
    fn record_pod(&self, warning: bool, reason: &str, message: String) {
        let mut object = self.event_ref("");
        object.field_path = None;
        self.deps.events.do_send(Record {
            object,
            warning,
            reason: reason.into(),
            message,
        });
    }

    /// The pod spec to act on: the desired one, or while terminating the
    /// last one this worker knew (so preStop hooks still run).
    fn spec_pod(&self) -> Option<&Pod> {
        self.pod.as_deref().or(self.last_pod.as_deref())
    }

    /// The spec of the container named `name` (app or init).
    fn container_spec(&self, name: &str) -> Option<&Container> {
        let spec = self.spec_pod()?.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
    }

    /// Where hooks and probes reach the pod: its IP, or 127.0.0.1 for
    /// `hostNetwork` pods.
    async fn pod_ip(&self, sandbox_id: Option<&str>) -> String {
        let host_network = self
            .spec_pod()
            .and_then(|p| p.spec.as_ref())
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            return "127.0.0.1".into();
        }
        let Some(id) = sandbox_id else {
            return String::new();
        };
        match self.deps.runtime.inspect_container(id).await {
            Ok(Some(d)) => d.ip_address,
            _ => String::new(),
        }
    }

    /// Stops one container: its preStop hook first (app containers), then
    /// SIGTERM and SIGKILL at the end of the grace period, less what the
    /// hook took (at least 2 s left).
    async fn kill_one(&self, k: &plan::Kill, o: Option<&Observed>) -> Result<(), RuntimeError> {
        let secs = self
            .spec_pod()
            .map(containers::grace_period_secs)
            .or_else(|| o.and_then(|o| o.labels.grace_period_secs))
            .unwrap_or(30);
        let grace = Duration::from_secs(secs.max(0) as u64);
        if k.kind == Kind::Container {
            self.record(
                &k.container_name,
                false,
                "Killing",
                match k.reason {
                    plan::KillReason::Unhealthy => format!(
                        "Container {} failed liveness probe, will be restarted",
                        k.container_name
                    ),
                    plan::KillReason::SpecChanged => format!(
                        "Container {} definition changed, will be restarted",
                        k.container_name
                    ),
                    _ => format!("Stopping container {}", k.container_name),
                },
            );
        } else {
            tracing::info!(pod = %self.uid, reason = ?k.reason, "Stopping infra container");
        }
        let mut left = grace;
        let pre_stop = self
            .container_spec(&k.container_name)
            .filter(|_| k.kind == Kind::Container)
            .and_then(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)));
        if let Some((c, hook)) = pre_stop {
            let started = std::time::Instant::now();
            let sandbox = o.and_then(|o| o.labels.sandbox_id.as_deref());
            let ip = self.pod_ip(sandbox).await;
            let target = handlers::Target {
                container_id: &k.id,
                pod_ip: &ip,
                container: c,
                exec_handler: self.deps.node.exec_handler,
            };
            let verdict = handlers::run_hook(&*self.deps.runtime, &target, hook, grace).await;
            if !verdict.ok() {
                self.record(
                    &k.container_name,
                    true,
                    "FailedPreStopHook",
                    format!("PreStopHook failed: {}", verdict.message()),
                );
            }
            left = grace
                .saturating_sub(started.elapsed())
                .max(MIN_GRACE_AFTER_HOOK);
        }
        self.deps.runtime.stop_container(&k.id, left).await
    }

    /// Runs a started container's postStart hook; on failure the container
    /// is killed and the restart policy decides what follows.
    async fn post_start(&self, c: &Container, id: &str, pod_ip: &str) -> Result<(), String> {
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return Ok(());
        };
        let target = handlers::Target {
            container_id: id,
            pod_ip,
            container: c,
            exec_handler: self.deps.node.exec_handler,
        };
        let grace =
            Duration::from_secs(self.spec_pod().map_or(30, containers::grace_period_secs) as u64);
        let verdict = handlers::run_hook(
            &*self.deps.runtime,
            &target,
            hook,
            grace.max(MIN_GRACE_AFTER_HOOK),
        )
        .await;
        if verdict.ok() {
            return Ok(());
        }
        let message = verdict.message().to_string();
        self.record(
            &c.name,
            true,
            "FailedPostStartHook",
            format!("PostStartHook failed: {message}"),
        );
        let _ = self.deps.runtime.stop_container(id, grace).await;
        Err(message)
    }

    /// Creates and starts a container; a name already taken means an earlier
    /// run (or a crash between create and start) made it: it is adopted.
    async fn create_and_start(
        &self,
        spec: &crate::runtime::CreateSpec,
    ) -> Result<String, RuntimeError> {
        let rt = &self.deps.runtime;
        let id = match rt.create_container(spec).await {
            Ok(id) => id,
            Err(RuntimeError::NameConflict(_)) => match rt.inspect_container(&spec.name).await? {
                Some(d) if d.summary.state == ContainerState::Running => return Ok(d.summary.id),
                Some(d) => d.summary.id,
                None => rt.create_container(spec).await?,
            },
            Err(e) => return Err(e),
        };
        rt.start_container(&id).await?;
        Ok(id)
    }

    /// Asks the puller for `image`; on failure, the waiting state to show and
    /// when to ask again.
    async fn ensure_image(
        &self,
        image: &str,
        policy: &str,
        object: Option<EventRef>,
    ) -> Result<ImageInfo, (Waiting, Duration)> {
        let request = EnsureImage {
            image: image.to_string(),
            policy: policy.to_string(),
            pod_uid: self.uid.clone(),
            object,
        };
        match self.deps.puller.send(request).await {
            Ok(Ok(outcome)) => Ok(outcome.image().clone()),
            Ok(Err(e)) => Err((
                Waiting {
                    reason: e.reason.to_string(),
                    message: e.message,
                },
                e.retry_after,
            )),
            Err(e) => Err((
                Waiting {
                    reason: "ErrImagePull".into(),
                    message: format!("image puller unavailable: {e}"),
                },
                RETRY_AFTER,
            )),
        }
    }

    /// Records why a container waits; a new reason is logged (the same one
    /// again is not, so a back-off does not flood the log).
    fn set_waiting(&mut self, container: &str, w: Waiting) {
        let changed = self
            .memory
            .waiting
            .get(container)
            .is_none_or(|old| old.reason != w.reason);
        if changed {
            tracing::info!(pod = %self.uid, container, reason = %w.reason, "container waiting: {}", w.message);
        }
        self.memory.waiting.insert(container.to_string(), w);
    }

    fn wait_all(&mut self, pod: &Pod, reason: &str, message: &str) {
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            self.set_waiting(
                &c.name,
                Waiting {
                    reason: reason.into(),
                    message: message.into(),
                },
            );
        }
    }

    fn forget(&mut self, id: &str) {
        self.memory.inspected.remove(id);
        let msg = Forget {
            container_id: id.to_string(),
        };
        self.deps.refs.do_send(msg.clone());
        self.deps.readiness.do_send(msg);
    }
}

fn parse_time(t: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The planner's view of one container; `None` for one without our labels.
fn observed_of(d: &ContainerDetails) -> Option<Observed> {
    Some(Observed {
        id: d.summary.id.clone(),
        labels: PodLabels::parse(&d.summary.labels)?,
        attempt: ContainerName::parse(&d.summary.name).map_or(0, |n| n.attempt),
        state: d.summary.state,
        exit_code: d.exit_code,
        created: d.summary.created,
        started_at: parse_time(d.started_at.as_deref()),
        finished_at: parse_time(d.finished_at.as_deref()),
    })
}
