//! The Supervisor: owns the desired set and the observed set and keeps one
//! PodWorker per pod.
//!
//! - A new desired set (from a source) starts workers for new pods, hands
//!   changed specs to their workers, and tells workers of removed pods to
//!   terminate.
//! - An engine event wakes the affected worker at once; the relist tick
//!   (`--sync-frequency`) wakes every worker and finds orphans: containers
//!   with our node label whose pod is not desired. Orphans are only judged
//!   once the sources delivered their first full set, so a restart never
//!   mistakes running pods for orphans.
//! - Admission: a new or edited pod is judged against the node and the pods
//!   already admitted ([`admission::Ledger`]) before its worker hears of
//!   it; the verdict travels with the spec ([`Judged`]). The first desired
//!   sets wait for one listing of the engine, so that pods whose containers
//!   already run are admitted first (and never refused for not fitting).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, WrapFuture};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::events::ForgetPod;
use super::pod_feed::PodStore;
use super::pod_worker::{
    ContainerDied, ContainerStarted, Judged, PodWorker, Relisted, SyncNow, SyncReason, Terminate,
    WorkerReport,
};
use super::{Deps, DesiredPod, StatusView};
use crate::decide::admission::{self, Verdict};
use crate::decide::plan;
use crate::decide::status::{self, Refusal};
use crate::model::{naming, PodExt, PodPhase};
use crate::runtime::{ContainerSummary, EventAction, RuntimeEvent};

/// The full set of pods one source wants now.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SetDesired {
    /// `file` or `http`.
    pub source: &'static str,
    pub pods: Vec<DesiredPod>,
    /// Told once the set is taken in, so that what the API wrote is what
    /// its next read shows.
    pub taken: Vec<Arc<tokio::sync::Notify>>,
}

impl SetDesired {
    /// The manifest directory's set.
    pub fn files(pods: Vec<DesiredPod>) -> Self {
        Self {
            source: "file",
            pods,
            taken: Vec::new(),
        }
    }
}

/// Relist the engine and wake every worker.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Relist;

/// The API deletes the pod `uid`: when it leaves the desired set, its
/// containers get `grace_secs` instead of the spec's grace period (`None`
/// forgets an earlier ask: the delete did not happen).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Deleting {
    pub uid: String,
    pub grace_secs: Option<i64>,
}

/// A pod gone from the desired set whose containers are still stopping:
/// shown `Terminating` (with `deletionTimestamp`) until its worker is done.
#[derive(Debug, Clone)]
struct Leaving {
    pod: DesiredPod,
    since: Time,
    grace_secs: i64,
}

/// An engine event for one of our containers.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct EngineEvent(pub RuntimeEvent);

pub struct Supervisor {
    deps: Deps,
    desired: HashMap<String, DesiredPod>,
    workers: HashMap<String, Addr<PodWorker>>,
    /// Workers told to terminate: a pod that comes back meanwhile gets a new
    /// worker only once the old one is done.
    terminating: HashSet<String>,
    /// The sources that send desired sets, and what each sent last.
    sources: Vec<&'static str>,
    by_source: HashMap<&'static str, Vec<DesiredPod>>,
    /// Whether every source delivered a first full set.
    source_synced: bool,
    /// UID → the pod as shown, with its status; the API reads a view.
    store: PodStore,
    /// The last status each worker reported, before any source problem is
    /// laid over it.
    last_status: HashMap<String, Arc<PodStatus>>,
    /// Pods gone from the desired set, shown until their containers are.
    leaving: HashMap<String, Leaving>,
    /// Grace periods asked by API deletes, by UID, until the pod leaves.
    delete_grace: HashMap<String, i64>,
    subscribe_events: bool,
    /// The admitted pods and what they claim, and the refused ones.
    ledger: admission::Ledger,
    /// The UIDs of the pods that had containers when podvisor started
    /// (`None` until the engine was listed once); a pod in it is admitted
    /// first and whatever it asks (it is never removed for not fitting).
    at_start: Option<HashSet<String>>,
    /// Desired sets that came before that first listing, taken in after it.
    early: Vec<SetDesired>,
    /// That first listing by pod UID, handed to each pod's first worker so
    /// it need not list the engine again (until the first relist); a pod
    /// it does not hold has no container yet.
    seeds: Option<HashMap<String, Vec<ContainerSummary>>>,
    /// When podvisor's code leaves the resident set: after start-up, and
    /// after each burst of container changes once the node settles.
    page_out: crate::host::memory::CodePageOut,
}

/// The status of a refused pod, as its worker also reports it.
fn refused_status(pod: &Pod, r: &Refusal, host_ip: &str) -> PodStatus {
    let none = HashMap::new();
    let facts = status::Facts {
        waiting: &none,
        probes: &|_: &str| None,
        messages: &HashMap::new(),
        host_ip,
        refused: Some(r),
    };
    status::pod_status(pod, &[], &facts)
}

/// The pod as the API shows it: the spec with its status and this node's
/// name, and the problem of a broken source as the status message.
fn shown(p: &DesiredPod, status: &PodStatus, node: &str) -> Pod {
    let mut status = status.clone();
    if let Some(problem) = &p.problem {
        status.message = Some(format!("running on the last good spec: {problem}"));
    }
    let mut pod = (*p.pod).clone();
    pod.metadata.uid = Some(p.uid.clone());
    if let Some(spec) = &mut pod.spec {
        spec.node_name = Some(node.to_string());
    }
    pod.status = Some(status);
    pod
}

impl Supervisor {
    pub fn new(deps: Deps) -> Self {
        Self {
            deps,
            desired: HashMap::new(),
            workers: HashMap::new(),
            terminating: HashSet::new(),
            sources: vec!["file"],
            by_source: HashMap::new(),
            source_synced: false,
            store: PodStore::new(),
            last_status: HashMap::new(),
            leaving: HashMap::new(),
            delete_grace: HashMap::new(),
            subscribe_events: true,
            ledger: admission::Ledger::default(),
            at_start: None,
            early: Vec::new(),
            seeds: None,
            page_out: Default::default(),
        }
    }

    /// Now, as the pods' `creationTimestamp` says it.
    fn now(&self) -> Time {
        crate::model::clock::api_time(self.deps.clock.now())
    }

    /// What the HTTP API reads: the pods with their status, by UID.
    pub fn status_view(&self) -> StatusView {
        self.store.view()
    }

    /// The sources to hear from before anything is judged an orphan
    /// (`file` alone by default).
    pub fn with_sources(mut self, sources: Vec<&'static str>) -> Self {
        self.sources = sources;
        self
    }

    /// A pod gone from the desired set: its worker stops its containers
    /// (with the grace an API delete asked for), and it is shown
    /// `Terminating` until the worker is done.
    fn remove(&mut self, old: DesiredPod) {
        let uid = old.uid.clone();
        // What it claimed is free for the next pods at once (its containers
        // may still be stopping).
        self.ledger.forget(&uid);
        let asked = self.delete_grace.remove(&uid);
        tracing::info!(pod = %old.name(), %uid, source = %old.source, grace = ?asked, "pod removed: terminating");
        let Some(w) = self.workers.get(&uid) else {
            self.store.remove(&uid);
            return;
        };
        w.do_send(Terminate { grace_secs: asked });
        self.terminating.insert(uid.clone());
        let leaving = Leaving {
            grace_secs: asked.unwrap_or_else(|| old.pod.grace_period_secs()),
            pod: old,
            since: self.now(),
        };
        self.leaving.insert(uid.clone(), leaving);
        self.show_leaving(&uid);
    }

    /// Shows a leaving pod with its last status, `deletionTimestamp` and
    /// `deletionGracePeriodSeconds` set, as the API server shows a pod
    /// being deleted.
    fn show_leaving(&mut self, uid: &str) {
        let Some(l) = self.leaving.get(uid) else {
            return;
        };
        let node = &self.deps.node.node_name;
        let mut pod = match self.last_status.get(uid) {
            Some(status) => shown(&l.pod, status, node),
            None => shown(&l.pod, &status::pending(&l.pod.pod), node),
        };
        pod.metadata.deletion_timestamp = Some(l.since.clone());
        pod.metadata.deletion_grace_period_seconds = Some(l.grace_secs);
        self.store.put(uid, pod, self.now());
    }

    /// The pod networks whose infra container no longer runs (died,
    /// removed by GC, gone while podvisor was down) are torn down: CNI's
    /// DEL with no namespace, an exec plugin's teardown.
    fn tear_down_dead_networks(
        &self,
        listed: &[crate::runtime::ContainerSummary],
        listed_at: std::time::SystemTime,
        ctx: &mut Context<Self>,
    ) {
        let Some(net) = self.deps.network.clone() else {
            return;
        };
        let running: HashSet<String> = listed
            .iter()
            .filter(|c| {
                c.state == crate::runtime::ContainerState::Running
                    && c.labels.get(naming::LABEL_DOCKER_TYPE).map(String::as_str)
                        == Some(naming::TYPE_SANDBOX)
            })
            .map(|c| c.id.clone())
            .collect();
        let sweep = async move {
            let n = net.tear_down_dead(&running, listed_at).await;
            if n > 0 {
                tracing::info!(count = n, "tore down the networks of gone infra containers");
            }
        };
        ctx.spawn(sweep.into_actor(self));
    }

    /// Tests that drive syncs by hand can leave the event stream alone.
    pub fn without_events(mut self) -> Self {
        self.subscribe_events = false;
        self
    }

    fn start_worker(&mut self, uid: &str, pod: Option<DesiredPod>, ctx: &mut Context<Self>) {
        let verdict = match &pod {
            Some(_) => self.ledger.verdict(uid),
            None => Verdict::Unjudged,
        };
        let worker = PodWorker::new(
            uid.to_string(),
            pod,
            self.deps.clone(),
            ctx.address().recipient(),
        )
        .with_verdict(verdict)
        .with_seed(
            self.seeds
                .as_mut()
                .map(|seeds| seeds.remove(uid).unwrap_or_default()),
        )
        .start();
        self.workers.insert(uid.to_string(), worker);
    }

    fn label_filter(&self) -> Vec<(String, String)> {
        vec![(
            naming::LABEL_NODE.to_string(),
            self.deps.node.node_name.clone(),
        )]
    }

    /// Follows the engine's events, resubscribing when the stream ends. The
    /// task is the Supervisor's own (`ctx.spawn`): it ends with the actor.
    fn follow_events(&self, ctx: &mut Context<Self>) {
        let runtime = self.deps.runtime.clone();
        let metrics = self.deps.metrics.clone();
        let addr = ctx.address();
        let label = format!("{}={}", naming::LABEL_NODE, self.deps.node.node_name);
        let follow = async move {
            let mut delay = Duration::from_millis(200);
            let mut resubscribing = false;
            loop {
                if runtime.version().await.is_ok() {
                    let mut events = runtime.events(&label);
                    // What happened while the stream was down is not
                    // replayed: look at everything once the stream is back.
                    if std::mem::take(&mut resubscribing) {
                        metrics.event_stream_reconnects.inc();
                        addr.do_send(Relist);
                    }
                    while let Some(e) = events.next().await {
                        match e {
                            Ok(e) => {
                                delay = Duration::from_millis(200);
                                if !addr.connected() {
                                    return;
                                }
                                // Not `try_send`: a busy mailbox must not
                                // drop a death.
                                addr.do_send(EngineEvent(e));
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "engine event stream broke");
                                break;
                            }
                        }
                    }
                    // The stream ended: the engine may have restarted, so look
                    // at everything again now, and again once resubscribed.
                    addr.do_send(Relist);
                }
                resubscribing = true;
                if !addr.connected() {
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        };
        ctx.spawn(follow.into_actor(self));
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(self.deps.node.sync_frequency, |_, ctx| ctx.notify(Relist));
        if self.subscribe_events {
            self.follow_events(ctx);
        }
        // Which pods already have containers: they are admitted first.
        let runtime = self.deps.runtime.clone();
        let filter = self.label_filter();
        ctx.spawn(
            async move { runtime.list_containers(&filter).await }
                .into_actor(self)
                .map(|listed, act, ctx| {
                    let uids = match listed {
                        Ok(listed) => {
                            let seeds = by_pod(listed);
                            let uids = seeds.keys().cloned().collect();
                            act.seeds = Some(seeds);
                            uids
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot list the engine at start: pods are admitted in the sources' order");
                            HashSet::new()
                        }
                    };
                    act.at_start = Some(uids);
                    for msg in std::mem::take(&mut act.early) {
                        act.take_desired(msg, ctx);
                    }
                }),
        );
    }
}

impl Handler<SetDesired> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: SetDesired, ctx: &mut Context<Self>) {
        if self.at_start.is_none() {
            self.early.push(msg);
            return;
        }
        self.take_desired(msg, ctx);
    }
}

impl Supervisor {
    /// Judges a new or edited pod (see [`admission`]); a refused one shows
    /// `Failed` with the reason at once, whatever its worker still does.
    fn admit(&mut self, p: &DesiredPod) -> Verdict {
        let keep = self
            .at_start
            .as_mut()
            .is_some_and(|uids| uids.remove(&p.uid));
        let verdict = self
            .ledger
            .judge(&p.uid, &p.pod, &self.deps.node.rules, keep, &p.source);
        match &verdict {
            Verdict::Refused(r) => {
                let status = refused_status(&p.pod, r, &self.deps.node.host_ip);
                self.last_status.insert(p.uid.clone(), Arc::new(status));
            }
            _ => {
                tracing::debug!(pod = %p.name(), uid = %p.uid, used = ?self.ledger.used(), "pod admitted");
            }
        }
        verdict
    }

    fn take_desired(&mut self, msg: SetDesired, ctx: &mut Context<Self>) {
        // A pod unchanged since the last set keeps the spec already held
        // (by this actor and its worker): one copy per pod, not one more
        // per rescan.
        let pods = msg
            .pods
            .into_iter()
            .map(|mut p| {
                if let Some(old) = self.desired.get(&p.uid).filter(|old| old.pod == p.pod) {
                    p.pod = old.pod.clone();
                }
                p
            })
            .collect();
        self.by_source.insert(msg.source, pods);
        // The sources' pods have distinct UIDs (the source is part of a
        // derived UID); the desired set is their union.
        let new: HashMap<String, DesiredPod> = self
            .by_source
            .values()
            .flatten()
            .map(|p| (p.uid.clone(), p.clone()))
            .collect();
        let removed: Vec<DesiredPod> = self
            .desired
            .iter()
            .filter(|(uid, _)| !new.contains_key(*uid))
            .map(|(_, p)| p.clone())
            .collect();
        for old in removed {
            self.remove(old);
        }
        // Admitted in the sources' order, the pods whose containers already
        // ran when podvisor started first.
        let mut order: Vec<&DesiredPod> = Vec::with_capacity(new.len());
        let mut seen = HashSet::new();
        let mut sources: Vec<&'static str> = self.sources.clone();
        sources.extend(self.by_source.keys().filter(|s| !self.sources.contains(s)));
        for p in sources
            .iter()
            .filter_map(|s| self.by_source.get(s))
            .flatten()
        {
            if seen.insert(p.uid.as_str()) {
                order.push(p);
            }
        }
        let at_start = self.at_start.clone().unwrap_or_default();
        order.sort_by_key(|p| !at_start.contains(&p.uid));
        let order: Vec<DesiredPod> = order.into_iter().cloned().collect();
        for p in &order {
            let uid = &p.uid;
            self.leaving.remove(uid);
            let old = self.desired.get(uid);
            if old.is_some_and(|old| old == p) {
                continue;
            }
            let changed = old.is_none_or(|old| old.pod != p.pod);
            let verdict = changed.then(|| self.admit(p));
            let node = &self.deps.node.node_name;
            let shown = match self.last_status.get(uid) {
                Some(status) => shown(p, status, node),
                None => shown(p, &status::pending(&p.pod), node),
            };
            self.store.put(uid, shown, self.now());
            let Some(verdict) = verdict else {
                continue; // only the problem changed
            };
            if self.terminating.contains(uid) {
                continue; // started again when the old worker stops
            }
            match self.workers.get(uid) {
                Some(w) => w.do_send(Judged(p.clone(), verdict)),
                None => {
                    tracing::info!(pod = %p.name(), %uid, source = %p.source, "new pod");
                    self.start_worker(uid, Some(p.clone()), ctx);
                }
            }
        }
        self.desired = new;
        let all_spoke = self.sources.iter().all(|s| self.by_source.contains_key(s));
        if !self.source_synced && all_spoke {
            self.source_synced = true;
            ctx.notify(Relist);
        }
        for taken in msg.taken {
            taken.notify_one();
        }
    }
}

impl Handler<Relist> for Supervisor {
    type Result = ();

    fn handle(&mut self, _: Relist, ctx: &mut Context<Self>) {
        // What the last period freed (a burst of syncs, a rescan) leaves
        // the resident set now rather than never.
        self.store.forget_old_changes(std::time::Instant::now());
        crate::host::memory::return_free_memory();
        self.seeds = None;
        if self.deps.node.page_out_code
            && self
                .page_out
                .due(self.source_synced, std::time::Instant::now())
        {
            // Start-up is over (every source delivered its pods), or the
            // node settled after a burst: the code that ran leaves the
            // resident set; what runs from now on comes back.
            tokio::task::spawn_blocking(|| {
                let bytes = crate::host::memory::page_out_code();
                tracing::debug!(bytes, "code paged out");
            });
        }
        if !self.source_synced {
            for w in self.workers.values() {
                w.do_send(SyncNow(SyncReason::Relist));
            }
            return;
        }
        let runtime = self.deps.runtime.clone();
        let filter = self.label_filter();
        let listed_at = std::time::SystemTime::now();
        let began = std::time::Instant::now();
        ctx.spawn(
            async move { runtime.list_containers(&filter).await }
                .into_actor(self)
                .map(move |listed, act, ctx| {
                    let Ok(listed) = listed else {
                        // The engine is down (/healthz says so): each
                        // worker looks itself and reports it.
                        for w in act.workers.values() {
                            w.do_send(SyncNow(SyncReason::Relist));
                        }
                        return;
                    };
                    act.tear_down_dead_networks(&listed, listed_at, ctx);
                    act.deps.metrics.set_relisted(listed.iter().map(|c| {
                        let uid = c.labels.get(naming::LABEL_POD_UID).map_or("", |u| u.as_str());
                        let infra = c.labels.get(naming::LABEL_DOCKER_TYPE).map(String::as_str)
                            == Some(naming::TYPE_SANDBOX);
                        (uid, infra, c.state)
                    }));
                    // Re-check against the state as it is now: other
                    // messages ran while the list was in flight.
                    let orphans: HashSet<String> = listed
                        .iter()
                        .filter_map(|c| c.labels.get(naming::LABEL_POD_UID).cloned())
                        .filter(|uid| {
                            !act.desired.contains_key(uid) && !act.workers.contains_key(uid)
                        })
                        .collect();
                    let node = &act.deps.node;
                    let garbage = plan::node_garbage(
                        &listed,
                        node.max_dead,
                        node.gc.min_age,
                        act.deps.clock.now().timestamp(),
                    );
                    // One list for every worker: each gets its pod's
                    // containers instead of listing the engine itself.
                    let mut pods = by_pod(listed);
                    for (uid, w) in &act.workers {
                        w.do_send(Relisted {
                            listed_at: began,
                            containers: pods.remove(uid).unwrap_or_default(),
                        });
                    }
                    for uid in orphans {
                        tracing::info!(pod = %uid, "removing orphaned containers");
                        act.terminating.insert(uid.clone());
                        act.start_worker(&uid, None, ctx);
                    }
                    if !garbage.is_empty() {
                        tracing::info!(
                            count = garbage.len(),
                            "removing dead containers over --maximum-dead-containers"
                        );
                        let runtime = act.deps.runtime.clone();
                        let removals = async move {
                            for id in garbage {
                                if let Err(e) = runtime.remove_container(&id).await {
                                    tracing::warn!(container = %id, error = %e, "cannot remove a dead container");
                                }
                            }
                        };
                        ctx.spawn(removals.into_actor(act));
                    }
                }),
        );
    }
}

/// Listed containers by their pod's UID.
fn by_pod(listed: Vec<ContainerSummary>) -> HashMap<String, Vec<ContainerSummary>> {
    let mut pods: HashMap<String, Vec<ContainerSummary>> = HashMap::new();
    for c in listed {
        if let Some(uid) = c.labels.get(naming::LABEL_POD_UID) {
            pods.entry(uid.clone()).or_default().push(c);
        }
    }
    pods
}

impl Handler<EngineEvent> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: EngineEvent, ctx: &mut Context<Self>) {
        let e = msg.0;
        // What changes a pod: a container's start, death or removal. (A
        // `kill` is followed by its `die`.)
        if matches!(e.action, EventAction::Other(_)) {
            return;
        }
        self.page_out.changed(std::time::Instant::now());
        let Some(uid) = e.labels.get(naming::LABEL_POD_UID) else {
            return;
        };
        match self.workers.get(uid) {
            Some(w) if e.action == EventAction::Die => {
                w.do_send(ContainerDied(e.container_id.clone(), e.exit.clone()))
            }
            Some(w) if e.action == EventAction::Start => {
                w.do_send(ContainerStarted(e.container_id.clone()))
            }
            Some(w) => w.do_send(SyncNow(SyncReason::EngineEvent)),
            None if self.source_synced
                && !self.desired.contains_key(uid)
                && e.action != EventAction::Destroy =>
            {
                ctx.notify(Relist);
            }
            None => {}
        }
    }
}

impl Handler<Deleting> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Deleting, _: &mut Context<Self>) {
        match msg.grace_secs {
            Some(secs) => self.delete_grace.insert(msg.uid, secs),
            None => self.delete_grace.remove(&msg.uid),
        };
    }
}

impl Handler<WorkerReport> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: WorkerReport, ctx: &mut Context<Self>) {
        match msg {
            WorkerReport::Status { uid, status } => {
                // Once refused, the pod shows the refusal: a status of the
                // spec before (a sync still running) is stale.
                if let Verdict::Refused(r) = self.ledger.verdict(&uid) {
                    if status.reason.as_deref() != Some(r.reason.as_str()) {
                        return;
                    }
                }
                let phase = status.phase.as_deref();
                if phase == Some(PodPhase::Succeeded.as_str())
                    || phase == Some(PodPhase::Failed.as_str())
                {
                    self.ledger.finished(&uid);
                }
                if let Some(p) = self.desired.get(&uid) {
                    let shown = shown(p, &status, &self.deps.node.node_name);
                    self.store.put(&uid, shown, self.now());
                    self.last_status.insert(uid, status);
                } else if self.leaving.contains_key(&uid) {
                    self.last_status.insert(uid.clone(), status);
                    self.show_leaving(&uid);
                }
            }
            WorkerReport::Stopped { uid } => {
                if self.leaving.remove(&uid).is_some() && !self.desired.contains_key(&uid) {
                    self.store.remove(&uid);
                }
                self.workers.remove(&uid);
                self.last_status.remove(&uid);
                self.terminating.remove(&uid);
                if !self.desired.contains_key(&uid) {
                    self.deps.events.do_send(ForgetPod(uid.clone()));
                }
                if let Some(p) = self.desired.get(&uid).cloned() {
                    self.start_worker(&uid, Some(p), ctx);
                }
            }
        }
    }
}
