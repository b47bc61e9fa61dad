//! One sync of a pod: observe its containers, ask the planner, carry the
//! plan out ([`execute`](super::execute)) and build the status.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};

use super::{Memory, SyncResult};
use crate::actors::events::{EventRef, Record};
use crate::actors::image_puller::PullNews;
use crate::actors::prober::{ProbeNews, SyncWatches, Watched};
use crate::actors::registries::{ContainerRef, Forget, SetRef};
use crate::actors::Deps;
use crate::decide::admission::Verdict;
use crate::decide::deadline::{self, Deadline};
use crate::decide::plan::{self, Desired, Observed, PodActions};
use crate::decide::probe::ProbeState;
use crate::decide::status;
use crate::model::naming::{self, ContainerKind, ContainerName, PodLabels};
use crate::model::{PodExt, PodPhase, WaitingReason};
use crate::runtime::{ContainerDetails, ContainerState, RuntimeError};
use crate::spec::containers;
use crate::spec::volumes::PodVolumes;

/// How many plan/execute rounds one sync may take before it yields: a pod
/// converges in one or two; the bound stops a container that dies at once
/// from spinning the worker (its back-off takes over).
const MAX_ROUNDS: usize = 4;
/// When to try again after an engine call failed.
pub(super) const RETRY_AFTER: Duration = Duration::from_secs(2);

/// What one sync ended with.
#[derive(Default)]
pub(super) struct Outcome {
    pub(super) status: Option<PodStatus>,
    /// The pod has no containers left (meaningful when terminating).
    pub(super) gone: bool,
    /// Sync again after this long (a back-off ends, or work is left undone).
    pub(super) wake_after: Option<Duration>,
    /// The pod's running containers after the sync.
    pub(super) running: Vec<String>,
    /// Nothing was left to do and nothing will be without an engine event
    /// or a new spec: the pod is refused and has no containers, or it
    /// finished.
    pub(super) settled: bool,
    /// The containers the sync started.
    pub(super) started: Vec<String>,
    /// When the sync's last look at the engine began (none when it was
    /// the Supervisor's listing, taken earlier).
    pub(super) looked_at: Option<std::time::Instant>,
}

/// One sync, run outside the actor with its own copy of what it needs.
pub(super) struct SyncJob {
    pub(super) deps: Deps,
    pub(super) uid: String,
    pub(super) pod: Option<Arc<Pod>>,
    /// The last spec while terminating (for preStop hooks).
    pub(super) last_pod: Option<Arc<Pod>>,
    pub(super) memory: Memory,
    pub(super) kill_requests: Vec<String>,
    /// Where the spec came from, for refusal messages.
    pub(super) source: String,
    /// The worker itself, for the prober's news.
    pub(super) me: Recipient<ProbeNews>,
    /// The worker itself, for how far its pulls are.
    pub(super) pulls: Recipient<PullNews>,
    /// The pod's volumes, once the node admitted it.
    pub(super) volumes: PodVolumes,
    /// The Supervisor's admission verdict on `pod`.
    pub(super) verdict: Verdict,
    /// Containers the engine announced dead: inspected afresh whatever the
    /// list says (the engine lists a container as running until its exit
    /// is handled, which its inspect waits for).
    pub(super) dying: Vec<String>,
    /// The pod's containers as the Supervisor just listed them: the first
    /// look uses them instead of listing the engine.
    pub(super) seed: Option<Vec<crate::runtime::ContainerSummary>>,
    /// After an execution that did all it planned: the containers it
    /// touched (killed, removed, started). The next look is then the
    /// containers known, these inspected afresh, instead of a list (which
    /// costs the engine a walk over every container on the node).
    pub(super) touched: Option<HashSet<String>>,
    /// Dead containers known from their `die` event alone: the first look
    /// takes them as known instead of inspecting them; every later look
    /// inspects them.
    pub(super) presumed: Vec<String>,
}

impl SyncJob {
    pub(super) async fn run(mut self) -> (Memory, Outcome) {
        let mut outcome = Outcome::default();
        // A pod the node refuses gets nothing created (what runs of an
        // earlier spec is removed) and reports why.
        let mut refused = None;
        if let Some(pod) = self.pod.clone() {
            let pod = &*pod;
            // Judged against the other pods by the Supervisor, or alone
            // when no Supervisor judged it (a worker on its own).
            let judged = match &self.verdict {
                Verdict::Refused(r) => Err(r.clone()),
                Verdict::Admitted => {
                    containers::admit_pod_alone(pod, &self.uid, &self.deps.node.rules)
                        .map_err(|r| containers::named_refusal(r, &self.source, pod))
                }
                Verdict::Unjudged => containers::admit_pod(pod, &self.uid, &self.deps.node.rules)
                    .map_err(|r| containers::named_refusal(r, &self.source, pod)),
            };
            let judged = match judged {
                Ok(vols) => self.pod_cgroup_refusal(pod).await.map_or(Ok(vols), Err),
                Err(r) => Err(r),
            };
            match judged {
                Ok(vols) => self.volumes = vols,
                Err(r) => {
                    // Once per refusal: a Warning event on the pod and a log
                    // line, not again at every sync.
                    if self.memory.refused.as_ref() != Some(&r) {
                        tracing::warn!(reason = %r.reason, "pod refused: {}", r.message);
                        self.record_pod(true, r.reason.as_str(), r.message.clone());
                    }
                    refused = Some(r);
                }
            }
        }
        self.memory.refused = refused.clone();
        // The downwardAPI files follow the spec's metadata, which changes
        // no container hash: refreshed at every sync.
        if refused.is_none() {
            if let Err(e) = self.write_downward().await {
                tracing::warn!(error = %e, "cannot update the pod's downwardAPI volumes");
            }
        }
        // Set when a round could not do all it planned: the next round only
        // observes (for the status) instead of retrying at once.
        let mut held_back = None;
        for round in 0..MAX_ROUNDS {
            outcome.looked_at = self.seed.is_none().then(std::time::Instant::now);
            let presumed = !self.presumed.is_empty();
            let details = match self.observe().await {
                Ok(d) => d,
                Err(e) => {
                    // Once per outage, not at every retry: with the engine
                    // gone every pod fails alike (`/healthz` says why).
                    if self.memory.unobserved.as_deref() != Some(&e.to_string()) {
                        tracing::warn!(error = %e, "cannot observe pod containers; retrying");
                    } else {
                        tracing::debug!(error = %e, "cannot observe pod containers; retrying");
                    }
                    self.memory.unobserved = Some(e.to_string());
                    outcome.wake_after = Some(RETRY_AFTER);
                    return (self.memory, outcome);
                }
            };
            if self.memory.unobserved.take().is_some() {
                tracing::info!("pod containers observed again");
            }
            let observed: Vec<Observed> = details.iter().filter_map(observed_of).collect();
            self.memory.forget_waiting_of_running(&observed);
            let deadline_left = match refused {
                None => self.check_deadline(&observed),
                Some(_) => None,
            };
            let actions = match self.pod.clone().filter(|_| refused.is_none()) {
                Some(_) if self.memory.deadline_exceeded => {
                    plan::plan_stop(&observed, plan::KillReason::DeadlineExceeded)
                }
                Some(pod) => {
                    let unstarted = self.unstarted(&pod, &details);
                    let actions = plan::plan(
                        &Desired {
                            pod: &pod,
                            infra_image: &self.deps.node.infra_image,
                            backoff: &self.memory.backoff,
                            now: self.deps.clock.now(),
                            kill_requests: &self.kill_requests,
                            unstarted: &unstarted,
                            gc: self.deps.node.gc,
                        },
                        &observed,
                    );
                    let backoff = self.note_backoff(&pod, &actions);
                    self.memory.apply(&backoff);
                    actions
                }
                None => plan::plan_removal(&observed),
            };
            self.read_termination_messages(&details).await;
            if self.pod.is_some() {
                self.check_network(&details).await;
            }
            if actions.is_empty() && presumed && round + 2 < MAX_ROUNDS {
                // Nothing to do about a death known from its event alone:
                // what the status shows of it is inspected first.
                continue;
            }
            if actions.is_empty() || held_back.is_some() || round + 1 == MAX_ROUNDS {
                outcome.gone = observed.is_empty();
                if outcome.gone && self.pod.is_none() {
                    self.teardown().await;
                }
                let backoff_ends = actions.backing_off.iter().map(|b| b.remaining).min();
                // Work left undone (a failed pull, a container that keeps
                // dying at once) is tried again after a pause.
                let undone = (!actions.is_empty()).then(|| held_back.unwrap_or(RETRY_AFTER));
                outcome.wake_after = [backoff_ends, undone, deadline_left]
                    .into_iter()
                    .flatten()
                    .min();
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
                        probes: &|id: &str| view.get(id),
                        messages: &self.memory.messages,
                        host_ip: &self.deps.node.host_ip,
                        refused: refused.as_ref(),
                    };
                    let shown = status::pod_status(pod, &details, &facts);
                    outcome.status =
                        Some(match self.memory.deadline_exceeded && refused.is_none() {
                            true => deadline::exceeded(shown),
                            false => {
                                self.memory.ended |= terminal(&shown);
                                shown
                            }
                        });
                }
                outcome.settled = actions.is_empty()
                    && held_back.is_none()
                    && self.finished(outcome.status.as_ref(), &observed);
                return (self.memory, outcome);
            }
            // Boxed: its state (about 8 KB) then exists only while a pod
            // has work, instead of in every pod's sync, idle ones included.
            let result = Box::pin(self.execute(&actions, &observed)).await;
            let complete = result.error.is_none()
                && result.retry.is_none()
                && result.containers.iter().all(|c| c.outcome.is_ok());
            self.touched = complete.then(|| touched_by(&actions, &result));
            self.memory.apply(&result);
            outcome.started.extend(result.started_ids.iter().cloned());
            if let Some(e) = &result.error {
                tracing::warn!(error = %e, "sync failed");
            }
            held_back = result.retry;
        }
        unreachable!("the last round always returns")
    }

    /// The engine's cgroup driver and version, asked once per worker.
    pub(super) async fn cgroups(&mut self) -> Result<crate::runtime::Cgroups, RuntimeError> {
        if let Some(c) = &self.memory.cgroups {
            return Ok(c.clone());
        }
        let c = self.deps.runtime.cgroups().await?;
        self.memory.cgroups = Some(c.clone());
        Ok(c)
    }

    /// Pod-level limits need a pod cgroup, which podvisor makes only for
    /// the engine's `cgroupfs` driver: with another, the pod is refused.
    /// (When the engine cannot be asked, the sync that makes the cgroup
    /// waits and retries.)
    async fn pod_cgroup_refusal(&mut self, pod: &Pod) -> Option<status::Refusal> {
        crate::host::cgroup::limits_of(pod)?;
        let driver = self.cgroups().await.ok()?.driver;
        (driver != "cgroupfs").then(|| {
            containers::named_refusal(
                status::Refusal {
                    reason: crate::model::RefusalReason::UnsupportedPodResources,
                    message: format!(
                        "spec.resources.limits: the engine's cgroup driver is {driver}; podvisor holds pod-level limits in a pod cgroup with the cgroupfs driver only: set the limits on the containers"
                    ),
                },
                &self.source,
                pod,
            )
        })
    }

    /// Checks the pod's `activeDeadlineSeconds`: once past it, the pod is
    /// stopped for good (an event says why); until then, how long is left.
    fn check_deadline(&mut self, observed: &[Observed]) -> Option<Duration> {
        let pod = self.pod.clone()?;
        let now = self.deps.clock.now();
        let first_seen = *self.memory.first_seen.get_or_insert(now);
        if self.memory.deadline_exceeded || self.memory.ended {
            return None;
        }
        let since = deadline::active_since(first_seen, observed);
        match deadline::check(&pod, since, now) {
            Deadline::None => None,
            Deadline::Left(left) => Some(left),
            Deadline::Exceeded => {
                self.memory.deadline_exceeded = true;
                tracing::warn!("pod stopped: {}", deadline::MESSAGE);
                self.record_pod(true, deadline::REASON, deadline::MESSAGE.to_string());
                None
            }
        }
    }

    /// Whether the pod is done for good (refused, or `Succeeded`/`Failed`)
    /// and no dead record of it will ever be garbage: then only a new spec
    /// or an engine event can change anything.
    fn finished(&self, status: Option<&PodStatus>, observed: &[Observed]) -> bool {
        let terminal = status.is_some_and(terminal);
        let keep = self.deps.node.gc.max_per_container.unwrap_or(usize::MAX);
        let mut records: HashMap<(ContainerKind, &str), usize> = HashMap::new();
        for o in observed {
            *records
                .entry((o.labels.kind, o.labels.container_name.as_str()))
                .or_default() += 1;
        }
        self.pod.is_some() && terminal && records.values().all(|n| *n <= keep)
    }

    /// The running sidecars of `pod` whose startup probe has not succeeded
    /// yet (what the prober says, or nothing yet: not started when it has
    /// a startup probe).
    fn unstarted(&self, pod: &Pod, details: &[ContainerDetails]) -> Vec<String> {
        let view = &self.deps.readiness_view;
        details
            .iter()
            .filter(|d| d.summary.state == ContainerState::Running)
            .filter_map(|d| {
                let labels = PodLabels::parse(&d.summary.labels)?;
                let c = pod
                    .init_containers()
                    .iter()
                    .find(|c| c.name == labels.container_name && crate::model::is_sidecar(c))?;
                let state = view
                    .get(&d.summary.id)
                    .unwrap_or_else(|| ProbeState::initial(c));
                (!state.started).then(|| d.summary.id.clone())
            })
            .collect()
    }

    /// Tells the prober which app containers and sidecars run now (none when the pod is
    /// going), with the pod IP its httpGet and tcpSocket probes use.
    fn watch_probes(&self, details: &[ContainerDetails]) {
        let spec = self.pod.as_deref().and_then(|p| p.spec.clone());
        let host_network = self.pod.as_deref().is_some_and(|p| p.host_network());
        let mut pod_ip = String::new();
        let mut containers = Vec::new();
        for d in details
            .iter()
            .filter(|d| d.summary.state == ContainerState::Running)
        {
            let Some(labels) = PodLabels::parse(&d.summary.labels) else {
                continue;
            };
            if labels.kind == ContainerKind::Sandbox {
                pod_ip = if host_network {
                    "127.0.0.1".into()
                } else {
                    d.ip_address.clone()
                };
                continue;
            }
            let sidecars = spec
                .iter()
                .flat_map(|s| s.init_containers.iter().flatten())
                .filter(|c| crate::model::is_sidecar(c));
            let spec_container = spec
                .iter()
                .flat_map(|s| s.containers.iter())
                .chain(sidecars)
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
        let touched = self.touched.take().unwrap_or_default();
        let presumed = std::mem::take(&mut self.presumed);
        let summaries = match self.seed.take() {
            Some(listed) => listed,
            // Every container of the pod is known but those touched, which
            // the loop below inspects (one removed meanwhile is skipped).
            None if !touched.is_empty() => {
                let known = self.memory.inspected.values().map(|d| d.summary.clone());
                let new = touched
                    .iter()
                    .filter(|id| !self.memory.inspected.contains_key(*id))
                    .map(|id| crate::runtime::ContainerSummary {
                        id: id.clone(),
                        name: String::new(),
                        image: String::new(),
                        labels: Default::default(),
                        state: ContainerState::Unknown,
                        created: 0,
                    });
                known.chain(new).collect()
            }
            None => rt.list_containers(&filter).await?,
        };
        let mut details = Vec::with_capacity(summaries.len());
        let mut cache = std::mem::take(&mut self.memory.inspected);
        for s in summaries {
            let cached = cache.remove(&s.id).filter(|d| {
                d.summary.state == s.state
                    && (!self.dying.contains(&s.id) || presumed.contains(&s.id))
                    && !touched.contains(&s.id)
            });
            let d = match cached {
                Some(d) => d,
                None => match rt.inspect_container(&s.id).await? {
                    Some(d) => d,
                    None => continue, // removed meanwhile
                },
            };
            let mut d = d;
            // A plugin's IP is the pod's (with CNI the engine has none).
            if let Some(ip) = self.plugin_ip(&d.summary.id) {
                d.ip_address = ip;
            }
            self.memory.inspected.insert(s.id.clone(), d.clone());
            details.push(d);
        }
        Ok(details)
    }

    /// Turns the planner's back-off verdicts into waiting reasons, with a
    /// BackOff event when a container starts backing off (against the
    /// container, init or app, that backs off).
    fn note_backoff(&self, pod: &Pod, actions: &PodActions) -> SyncResult {
        let mut result = SyncResult::default();
        for b in &actions.backing_off {
            let fresh = self
                .memory
                .waiting
                .get(&b.name)
                .is_none_or(|w| w.reason != WaitingReason::CrashLoopBackOff);
            if fresh {
                self.deps.events.do_send(Record::warning(
                    self.event_ref(&b.name),
                    "BackOff",
                    format!("Back-off restarting failed container {}", b.name),
                ));
            }
            let message = format!(
                "back-off {}s restarting failed container={} pod={}_{}({})",
                b.delay.as_secs(),
                b.name,
                pod.name(),
                pod.namespace(),
                self.uid
            );
            result.wait(&b.name, WaitingReason::CrashLoopBackOff, message);
        }
        result
    }

    /// `spec.containers{name}` or `spec.initContainers{name}`.
    pub(super) fn field_path(&self, name: &str) -> String {
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
    pub(super) fn event_ref(&self, container: &str) -> EventRef {
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
    pub(super) fn record(&self, container: &str, warning: bool, reason: &str, message: String) {
        self.deps.events.do_send(Record::of(
            self.event_ref(container),
            warning,
            reason,
            message,
        ));
    }

    /// Where a container attempt's termination log lives on the host.
    pub(super) fn termination_log(&self, container: &str, attempt: u32) -> std::path::PathBuf {
        self.deps
            .node
            .rules
            .pod_dir(&self.uid)
            .join("containers")
            .join(format!("{container}-{attempt}"))
            .join("termination-log")
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
            if labels.kind != ContainerKind::Container {
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
    pub(super) fn record_pod(&self, warning: bool, reason: &str, message: String) {
        let mut object = self.event_ref("");
        object.field_path = None;
        self.deps
            .events
            .do_send(Record::of(object, warning, reason, message));
    }

    /// The pod spec to act on: the desired one, or while terminating the
    /// last one this worker knew (so preStop hooks still run).
    pub(super) fn spec_pod(&self) -> Option<&Pod> {
        self.pod.as_deref().or(self.last_pod.as_deref())
    }

    /// The spec of the container named `name` (app or init).
    pub(super) fn container_spec(&self, name: &str) -> Option<&Container> {
        let spec = self.spec_pod()?.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
    }

    /// Where hooks and probes reach the pod: its IP, or 127.0.0.1 for
    /// `hostNetwork` pods.
    pub(super) async fn pod_ip(&self, sandbox_id: Option<&str>) -> String {
        if self.spec_pod().is_some_and(|p| p.host_network()) {
            return "127.0.0.1".into();
        }
        let Some(id) = sandbox_id else {
            return String::new();
        };
        if let Some(ip) = self.plugin_ip(id) {
            return ip;
        }
        // Inspected by this sync's look at the pod (a running infra
        // container keeps its address).
        if let Some(d) = self
            .memory
            .inspected
            .get(id)
            .filter(|d| d.summary.state == ContainerState::Running && !d.ip_address.is_empty())
        {
            return d.ip_address.clone();
        }
        match self.deps.runtime.inspect_container(id).await {
            Ok(Some(d)) => d.ip_address,
            _ => String::new(),
        }
    }

    /// Inspects a container this sync has not looked at (an infra
    /// container it just started) and keeps what it saw for the next look,
    /// which then need not inspect it again while its state holds.
    pub(super) async fn remember(&mut self, id: &str) {
        if self.memory.inspected.contains_key(id) {
            return;
        }
        if let Ok(Some(d)) = self.deps.runtime.inspect_container(id).await {
            self.memory.inspected.insert(id.to_string(), d);
        }
    }

    pub(super) fn forget(&mut self, id: &str) {
        self.memory.inspected.remove(id);
        let msg = Forget {
            container_id: id.to_string(),
        };
        self.deps.refs.do_send(msg.clone());
        self.deps.readiness.do_send(msg);
    }
}

/// Whether a pod in `status` is done (`Succeeded` or `Failed`).
fn terminal(status: &PodStatus) -> bool {
    status
        .phase
        .as_deref()
        .is_some_and(|p| p == PodPhase::Succeeded.as_str() || p == PodPhase::Failed.as_str())
}

fn parse_time(t: Option<&str>) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t?)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The containers an execution changed: those it killed, removed or
/// started (infra ones included).
fn touched_by(actions: &PodActions, result: &SyncResult) -> HashSet<String> {
    actions
        .kill
        .iter()
        .map(|k| k.id.clone())
        .chain(actions.remove.iter().cloned())
        .chain(actions.start_existing.iter().cloned())
        .chain(result.started_ids.iter().cloned())
        .collect()
}

/// The planner's view of one container; `None` for one without our labels.
pub(crate) fn observed_of(d: &ContainerDetails) -> Option<Observed> {
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
