//! The Prober: runs each running container's startup, liveness and
//! readiness probes on their own timers (exec, httpGet over HTTP or
//! HTTPS, tcpSocket, grpc).
//!
//! PodWorkers tell it, after every sync, which of their containers run
//! ([`SyncWatches`]); it starts a probe task for a new container and stops
//! the task of one that is gone. A task waits `initialDelaySeconds` from
//! the container's start, runs the startup probe until it succeeds
//! (liveness and readiness are held off until then), then liveness and
//! readiness side by side. Readiness changes go to the Readiness registry,
//! which stores them and then wakes the worker (status); a liveness (or startup) failure records
//! `Unhealthy` and asks the worker to kill the container, which its restart
//! policy then brings back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, Recipient};
use k8s_openapi::api::core::v1::{Container, Probe};

use super::events::{RecordFor, Recorder};
use super::registries::{Forget, ProbeState, Readiness, SetProbeState};
use crate::actors::grpc_health;
use crate::actors::handlers::{self, Verdict};
use crate::decide::probe::{Counter, ProbeKind, Timing};
use crate::metrics::Metrics;
use crate::runtime::ContainerRuntime;
use crate::settings::ExecHandler;

/// One running container to probe (its events find the container's
/// reference in the ContainerRefs registry).
#[derive(Debug, Clone)]
pub struct Watched {
    pub container_id: String,
    pub container: Container,
}

/// The running containers of one pod, after a sync; containers of the pod
/// not listed stop being probed.
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct SyncWatches {
    pub uid: String,
    /// Where `httpGet` and `tcpSocket` probes connect by default.
    pub pod_ip: String,
    pub containers: Vec<Watched>,
    pub worker: Recipient<ProbeNews>,
}

/// What the prober tells a pod's worker.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub enum ProbeNews {
    /// Readiness or startup changed: rebuild the status.
    Changed { container_id: String },
    /// The liveness (or startup) probe failed: kill the container.
    Unhealthy { container_id: String },
}

struct Task {
    uid: String,
    handle: tokio::task::JoinHandle<()>,
}

pub struct Prober {
    runtime: Arc<dyn ContainerRuntime>,
    exec_handler: ExecHandler,
    readiness: Addr<Readiness>,
    events: Addr<Recorder>,
    tasks: HashMap<String, Task>,
    metrics: Arc<Metrics>,
}

impl Prober {
    pub fn new(
        runtime: Arc<dyn ContainerRuntime>,
        exec_handler: ExecHandler,
        readiness: Addr<Readiness>,
        events: Addr<Recorder>,
    ) -> Self {
        Self {
            runtime,
            exec_handler,
            readiness,
            events,
            tasks: HashMap::new(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// Counts every probe run there (`prober_probe_total`).
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = metrics;
        self
    }
}

impl Actor for Prober {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Context<Self>) {
        for t in self.tasks.values() {
            t.handle.abort();
        }
    }
}

/// Whether a container has anything to probe.
pub fn has_probes(c: &Container) -> bool {
    c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
}

impl Handler<SyncWatches> for Prober {
    type Result = ();

    fn handle(&mut self, msg: SyncWatches, _: &mut Context<Self>) {
        let wanted: HashMap<&str, &Watched> = msg
            .containers
            .iter()
            .filter(|w| has_probes(&w.container))
            .map(|w| (w.container_id.as_str(), w))
            .collect();
        let gone: Vec<String> = self
            .tasks
            .iter()
            .filter(|(id, t)| t.uid == msg.uid && !wanted.contains_key(id.as_str()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(t) = self.tasks.remove(&id) {
                t.handle.abort();
            }
            // A container no longer running has no readiness.
            self.readiness.do_send(Forget { container_id: id });
        }
        for (id, w) in wanted {
            // A task that ended (its startup probe succeeded with nothing
            // else to probe, or it asked for a kill) stays in the map until
            // the container leaves the list: no second task, no second kill.
            if self.tasks.contains_key(id) {
                continue;
            }
            self.readiness.do_send(SetProbeState {
                container_id: id.to_string(),
                state: ProbeState::initial(&w.container),
                notify: None,
            });
            let ctx = ProbeCtx {
                runtime: self.runtime.clone(),
                exec_handler: self.exec_handler,
                readiness: self.readiness.clone(),
                events: self.events.clone(),
                worker: msg.worker.clone(),
                pod_ip: msg.pod_ip.clone(),
                watched: w.clone(),
                metrics: self.metrics.clone(),
            };
            let handle = actix::spawn(ctx.run());
            self.tasks.insert(
                id.to_string(),
                Task {
                    uid: msg.uid.clone(),
                    handle,
                },
            );
        }
    }
}

/// Everything one container's probe task needs.
#[derive(Clone)]
struct ProbeCtx {
    runtime: Arc<dyn ContainerRuntime>,
    exec_handler: ExecHandler,
    readiness: Addr<Readiness>,
    events: Addr<Recorder>,
    worker: Recipient<ProbeNews>,
    pod_ip: String,
    watched: Watched,
    metrics: Arc<Metrics>,
}

impl ProbeCtx {
    /// Runs `probe` once, counted by kind and result.
    async fn attempt(&self, probe: &Probe, kind: ProbeKind, timeout: Duration) -> Verdict {
        let verdict = self.act(probe, timeout).await;
        let kind = match kind {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        };
        self.metrics.probe(kind, verdict.ok());
        verdict
    }

    async fn act(&self, probe: &Probe, timeout: Duration) -> Verdict {
        let target = handlers::ActionTarget {
            container_id: &self.watched.container_id,
            pod_ip: &self.pod_ip,
            container: &self.watched.container,
            exec_handler: self.exec_handler,
        };
        if let Some(e) = &probe.exec {
            return handlers::exec(&*self.runtime, &target, e, timeout).await;
        }
        if let Some(h) = &probe.http_get {
            return handlers::http_get(&target, h, timeout).await;
        }
        if let Some(t) = &probe.tcp_socket {
            return handlers::tcp(&target, t, timeout).await;
        }
        if let Some(g) = &probe.grpc {
            // The kubelet dials the pod IP (127.0.0.1 for hostNetwork);
            // the port is a number.
            let Ok(port) = u16::try_from(g.port) else {
                return Verdict::Failure(format!("grpc: invalid port {}", g.port));
            };
            let service = g.service.as_deref().unwrap_or("");
            let ua = handlers::user_agent();
            return grpc_health::check(&self.pod_ip, port, service, &ua, timeout).await;
        }
        Verdict::Failure("probe has no action".into())
    }

    /// Stores the new state; the registry then tells the worker.
    fn state(&self, ready: bool, started: bool) {
        self.readiness.do_send(SetProbeState {
            container_id: self.watched.container_id.clone(),
            state: ProbeState { ready, started },
            notify: Some(self.worker.clone()),
        });
    }

    fn unhealthy(&self, kind: ProbeKind, message: &str) {
        self.events.do_send(RecordFor {
            container_id: self.watched.container_id.clone(),
            warning: true,
            reason: "Unhealthy".into(),
            message: format!("{} probe failed: {}", kind.name(), message.trim_end()),
        });
    }

    /// Runs `probe` every period until its result becomes `until` (a
    /// change to that value); returns false when the task should end.
    async fn run_until(&self, probe: &Probe, kind: ProbeKind, until: bool) -> bool {
        let timing = Timing::of(probe, kind);
        let mut counter = Counter::new(timing, kind);
        loop {
            let verdict = self.attempt(probe, kind, timing.timeout).await;
            if !verdict.ok() {
                self.unhealthy(kind, verdict.message());
            }
            if counter.observe(verdict.ok()) == Some(until) {
                return true;
            }
            tokio::time::sleep(timing.period).await;
        }
    }

    async fn run(self) {
        let c = self.watched.container.clone();
        let delay = |p: &Probe, k: ProbeKind| Timing::of(p, k).initial_delay;
        if let Some(p) = &c.startup_probe {
            tokio::time::sleep(delay(p, ProbeKind::Startup)).await;
            // Either it starts (success) or fails `failureThreshold` times.
            let timing = Timing::of(p, ProbeKind::Startup);
            let mut counter = Counter::new(timing, ProbeKind::Startup);
            loop {
                let verdict = self.attempt(p, ProbeKind::Startup, timing.timeout).await;
                if !verdict.ok() {
                    self.unhealthy(ProbeKind::Startup, verdict.message());
                }
                match counter.observe(verdict.ok()) {
                    Some(true) => break,
                    Some(false) => {
                        self.worker.do_send(ProbeNews::Unhealthy {
                            container_id: self.watched.container_id.clone(),
                        });
                        return;
                    }
                    None => tokio::time::sleep(timing.period).await,
                }
            }
            self.state(c.readiness_probe.is_none(), true);
        }
        // Liveness and readiness side by side; a probe that is absent
        // waits forever, and a liveness verdict ends both (the container is
        // being killed: nothing more to probe).
        let liveness = async {
            let Some(p) = &c.liveness_probe else {
                return futures::future::pending().await;
            };
            tokio::time::sleep(delay(p, ProbeKind::Liveness)).await;
            if self.run_until(p, ProbeKind::Liveness, false).await {
                self.worker.do_send(ProbeNews::Unhealthy {
                    container_id: self.watched.container_id.clone(),
                });
            }
        };
        let readiness = async {
            let Some(p) = &c.readiness_probe else {
                return futures::future::pending().await;
            };
            tokio::time::sleep(delay(p, ProbeKind::Readiness)).await;
            let timing = Timing::of(p, ProbeKind::Readiness);
            let mut counter = Counter::new(timing, ProbeKind::Readiness);
            loop {
                let verdict = self.attempt(p, ProbeKind::Readiness, timing.timeout).await;
                if !verdict.ok() {
                    self.unhealthy(ProbeKind::Readiness, verdict.message());
                }
                if let Some(ready) = counter.observe(verdict.ok()) {
                    self.state(ready, true);
                }
                tokio::time::sleep(timing.period).await;
            }
        };
        tokio::select! {
            () = liveness => {}
            () = readiness => {}
        }
    }
}
