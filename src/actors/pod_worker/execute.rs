//! Carrying out a plan: kills (apps in parallel, then the sidecars in
//! reverse order, then the infra container), removals, the sandbox, and each container's start. What
//! happened to each container comes back as a [`SyncResult`] (the kubelet's
//! `SyncResult`), from which the worker's memory, and so the status, is
//! updated in one place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::core::v1::{Container, Pod};

use super::sync::{SyncJob, RETRY_AFTER};
use crate::actors::handlers;
use crate::actors::image_puller::{EnsureImage, ProgressTo};
use crate::actors::registries::{ContainerRef, SetRef};
use crate::decide::plan::{self, Observed, PodActions, StartReason};
use crate::decide::status::Waiting;
use crate::host;
use crate::host::files::PodFile;
use crate::model::naming::ContainerKind;
use crate::model::pod::pull_policy;
use crate::model::{PodExt, PullPolicy, WaitingReason};
use crate::runtime::{ContainerState, ImageInfo, RuntimeError};
use crate::spec::containers::{self, PodIdentity};
use crate::spec::dns;
use crate::spec::volumes::{self, VolumeSource};

/// Why a container's configuration could not be made: the message of its
/// `CreateContainerConfigError`.
#[derive(Debug, thiserror::Error)]
pub(super) enum ConfigureError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] containers::ConfigError),
    #[error(transparent)]
    SubPath(#[from] host::VolumeError),
    /// The blocking check did not finish (it panicked).
    #[error("{0}")]
    Task(String),
}

/// A postStart hook failed: its message (the container is being killed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(super) struct HookFailed(String);

/// What a preStop hook leaves of the grace period, at the least.
const MIN_GRACE_AFTER_HOOK: Duration = Duration::from_secs(2);

/// What happened to one container in an execution.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerResult {
    pub name: String,
    /// The started container's ID, or why it waits.
    pub outcome: Result<String, Waiting>,
}

/// What one execution did, container by container.
#[derive(Debug, Default)]
pub struct SyncResult {
    pub containers: Vec<ContainerResult>,
    /// The soonest time to try again, when some step could not be done.
    pub retry: Option<Duration>,
    /// An engine call that failed outright (kills, removals, the sandbox).
    pub error: Option<RuntimeError>,
    /// The containers this execution started (infra ones included): their
    /// `start` events are no news.
    pub started_ids: Vec<String>,
}

impl SyncResult {
    /// `name` could not start: it waits with `reason`.
    pub fn wait(&mut self, name: &str, reason: WaitingReason, message: impl Into<String>) {
        self.containers.push(ContainerResult {
            name: name.to_string(),
            outcome: Err(Waiting {
                reason,
                message: message.into(),
            }),
        });
    }

    /// Every app container of `pod` waits (the pod did not get past its
    /// volumes or sandbox).
    pub fn wait_all(&mut self, pod: &Pod, reason: WaitingReason, message: &str) {
        for c in pod.containers() {
            self.wait(&c.name, reason, message);
        }
    }

    pub fn started(&mut self, name: &str, id: &str) {
        self.containers.push(ContainerResult {
            name: name.to_string(),
            outcome: Ok(id.to_string()),
        });
    }

    /// Try again after `after` (the soonest of all asked for).
    pub fn again(&mut self, after: Duration) {
        self.retry = Some(self.retry.map_or(after, |r| r.min(after)));
    }

    fn failed(mut self, e: RuntimeError) -> Self {
        self.error = Some(e);
        self.again(RETRY_AFTER);
        self
    }
}

impl SyncJob {
    /// Carries out `a`: what happened to each container, and when to try
    /// again if something could not be done.
    pub(super) async fn execute(&mut self, a: &PodActions, observed: &[Observed]) -> SyncResult {
        let mut result = SyncResult::default();
        let rt = self.deps.runtime.clone();
        // Apps die in parallel (each after its preStop hook), then the
        // sidecars one by one in reverse order, in what is left of the
        // grace period, the infra container last.
        let began = std::time::Instant::now();
        let mut unwired = false;
        for (n, wave) in plan::kill_waves(&a.kill, self.spec_pod())
            .into_iter()
            .enumerate()
        {
            let infra = wave.iter().all(|k| k.kind == ContainerKind::Sandbox);
            if infra && !unwired {
                // The containers are dead: the network goes before the
                // infra container does.
                for k in &wave {
                    self.unwire(&k.id, observed.iter().find(|o| o.id == k.id))
                        .await;
                }
                unwired = true;
            }
            let spent = match n {
                0 => Duration::ZERO,
                _ if infra => Duration::ZERO,
                _ => began.elapsed(),
            };
            let kills = wave
                .iter()
                .map(|k| self.kill_one(k, observed.iter().find(|o| o.id == k.id), spent));
            for r in join_all(kills).await {
                if let Err(e) = r {
                    return result.failed(e);
                }
            }
            for k in &wave {
                self.forget(&k.id);
            }
        }
        for id in &a.remove {
            self.unwire(id, None).await;
            if let Err(e) = rt.remove_container(id).await {
                return result.failed(e);
            }
            self.forget(id);
        }
        let Some(pod) = self.pod.clone() else {
            return result;
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
                result.wait_all(&pod, WaitingReason::ContainerCreating, &message);
                result.again(RETRY_AFTER);
                return result;
            }
            if let Err(e) = self.setup_pod_cgroup(&pod).await {
                let message = format!("pod cgroup: {e}");
                result.wait_all(&pod, WaitingReason::ContainerCreating, &message);
                result.again(RETRY_AFTER);
                return result;
            }
            match self.write_resolv_conf(&pod).await {
                // Said once per sandbox, as the kubelet does.
                Ok(warnings) if a.create_sandbox.is_some() => {
                    for (reason, message) in warnings {
                        tracing::warn!(reason, "{message}");
                        self.record_pod(true, reason, message);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let message = format!("cannot write the pod's resolv.conf: {e}");
                    self.record_pod(true, "DNSConfigForming", message.clone());
                    result.wait_all(&pod, WaitingReason::ContainerCreating, &message);
                    result.again(RETRY_AFTER);
                    return result;
                }
            }
        }
        if let Some(cs) = &a.create_sandbox {
            self.memory.inspected.clear();
            if let Err((w, after)) = self
                .ensure_image(&node.infra_image, PullPolicy::IfNotPresent, None)
                .await
            {
                result.wait_all(&pod, WaitingReason::ContainerCreating, &w.message);
                result.again(after);
                return result;
            }
            let mut spec =
                containers::sandbox_spec(&ident, &node.infra_image, cs.attempt, &cs.hash);
            containers::secure_sandbox(&mut spec, &pod, &node.rules);
            if spec.hostname.is_some() {
                // `setHostnameAsFQDN` (admission refused a name too long).
                let domain = node.rules.cluster_domain.as_deref();
                spec.hostname = crate::spec::dns::sandbox_hostname(&pod, domain).ok();
            }
            self.adjust_sandbox(&mut spec);
            match self.create_and_start(&spec).await {
                Ok(id) => {
                    tracing::info!(id = %&id[..id.len().min(12)], "infra container started");
                    self.deps.metrics.container_started("podsandbox");
                    result.started_ids.push(id.clone());
                    sandbox_id = Some(id)
                }
                Err(e) => {
                    let message = format!("infra container: {e}");
                    result.wait_all(&pod, WaitingReason::ContainerCreating, &message);
                    return result.failed(e);
                }
            }
        }
        for id in &a.start_existing {
            if let Err(e) = rt.start_container(id).await {
                return result.failed(e);
            }
            result.started_ids.push(id.clone());
        }
        let Some(sandbox_id) = sandbox_id else {
            return result;
        };
        // Never an app container on an unwired pod.
        if !a.start.is_empty() {
            if let Err(w) = self.wire(&ident, &sandbox_id).await {
                result.wait_all(&pod, WaitingReason::ContainerCreating, &w.message);
                result.again(w.retry_after);
                return result;
            }
        }
        // The pod's IP, for the downward API and httpGet hooks: looked up
        // once for all the containers this sync starts.
        let pod_ip = match a.start.is_empty() {
            true => String::new(),
            false => {
                self.remember(&sandbox_id).await;
                self.pod_ip(Some(&sandbox_id)).await
            }
        };
        // The pod's /etc/hosts needs its IP: without one (yet), the
        // containers keep the engine's, as the kubelet does.
        let hosts = !pod_ip.is_empty() && {
            match self.write_hosts(&pod, &pod_ip).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write the pod's hosts file");
                    false
                }
            }
        };
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
                        o.labels.kind == ContainerKind::Container
                            && o.labels.container_name == s.name
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
            let policy = pull_policy(c);
            let present = match self.ensure_image(&image, policy, Some(&c.name)).await {
                Ok(info) => info,
                Err((w, after)) => {
                    if w.reason == WaitingReason::ErrImageNeverPull {
                        self.record(&c.name, true, w.reason.as_str(), w.message.clone());
                    }
                    result.wait(&c.name, w.reason, w.message);
                    result.again(after);
                    continue;
                }
            };
            let config = match self
                .configure(&pod, c, s.attempt, &pod_ip, &present.user, hosts)
                .await
            {
                Ok(config) => config,
                Err(e) => {
                    let message = e.to_string();
                    self.record(&c.name, true, "Failed", format!("Error: {message}"));
                    result.wait(&c.name, WaitingReason::CreateContainerConfigError, message);
                    result.again(RETRY_AFTER);
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
                    tracing::info!(container = %c.name, id = %&id[..id.len().min(12)], "container started");
                    result.started(&c.name, &id);
                    result.started_ids.push(id.clone());
                    self.deps.metrics.container_started("container");
                    // `podvisor_container_restarts_total{reason}`.
                    match s.reason {
                        StartReason::FirstStart => {}
                        StartReason::Restart => self.deps.metrics.container_restarted("exited"),
                        StartReason::SpecChanged => {
                            self.deps.metrics.container_restarted("spec_changed")
                        }
                    }
                    if self.post_start(c, &id, &pod_ip).await.is_err() {
                        continue;
                    }
                }
                Err(e) => {
                    self.record(&c.name, true, "Failed", format!("Error: {e}"));
                    result.again(RETRY_AFTER);
                    result.wait(&c.name, WaitingReason::CreateContainerError, e.to_string());
                }
            }
        }
        result
    }

    /// Creates the pod's directory and volumes on the host (idempotent),
    /// and writes its downwardAPI volumes.
    async fn setup_volumes(&self) -> std::io::Result<()> {
        let vols = self.volumes.clone();
        let dir = self.deps.node.rules.pod_dir(&self.uid);
        let h = self.deps.host.clone();
        tokio::task::spawn_blocking(move || {
            host::setup_volumes(&*h, &vols, &dir).map_err(std::io::Error::from)
        })
        .await
        .map_err(std::io::Error::other)??;
        self.write_downward().await
    }

    /// Writes the pod's downwardAPI volumes that are set up (their
    /// directory exists) from the current spec: a file changes (atomically)
    /// when the labels or annotations it shows do, without a restart.
    pub(super) async fn write_downward(&self) -> std::io::Result<()> {
        let Some(pod) = self.pod.clone() else {
            return Ok(());
        };
        let vols = self.volumes.clone();
        if !vols
            .volumes
            .values()
            .any(|v| matches!(v, VolumeSource::DownwardApi { .. }))
        {
            return Ok(());
        }
        let (uid, rules) = (self.uid.clone(), self.deps.node.rules.clone());
        tokio::task::spawn_blocking(move || {
            for (name, source) in &vols.volumes {
                let VolumeSource::DownwardApi { host_dir, items } = source else {
                    continue;
                };
                if !host_dir.is_dir() {
                    continue;
                }
                let named = |e: &dyn std::fmt::Display| format!("volume {name:?}: {e}");
                let ctx = containers::env_context(&pod, &uid, &rules, "");
                let files = volumes::downward_files(items, &ctx).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, named(&e))
                })?;
                let files: Vec<PodFile> = files
                    .into_iter()
                    .map(|(path, content, mode)| PodFile {
                        path,
                        content,
                        mode,
                    })
                    .collect();
                if host::files::write_atomic(host_dir, &files, vols.fs_group)
                    .map_err(|e| std::io::Error::new(e.kind(), named(&e)))?
                {
                    tracing::debug!(volume = %name, "downwardAPI volume written");
                }
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Writes the pod's `resolv.conf` (by `dnsPolicy`, with `dnsConfig`)
    /// under its directory; returns the warnings to record.
    async fn write_resolv_conf(&self, pod: &Pod) -> std::io::Result<Vec<(&'static str, String)>> {
        let rules = self.deps.node.rules.clone();
        let path = rules.pod_dir(&self.uid).join(dns::RESOLV_FILE);
        let pod = pod.clone();
        tokio::task::spawn_blocking(move || {
            let node = match &rules.resolv_conf {
                Some(file) => Some(std::fs::read_to_string(file).map_err(|e| {
                    std::io::Error::new(e.kind(), format!("{}: {e}", file.display()))
                })?),
                None => None,
            };
            let r = dns::resolv_conf(
                &pod,
                node.as_deref(),
                &rules.cluster_dns,
                rules.cluster_domain.as_deref(),
            );
            host::files::write_if_changed(&path, &r.text, 0o644)?;
            Ok(r.warnings)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Writes the pod's `/etc/hosts` under its directory (a `hostNetwork`
    /// pod's starts from the node's).
    async fn write_hosts(&self, pod: &Pod, pod_ip: &str) -> std::io::Result<()> {
        let rules = self.deps.node.rules.clone();
        let path = rules.pod_dir(&self.uid).join(dns::HOSTS_FILE);
        let (pod, pod_ip) = (pod.clone(), pod_ip.to_string());
        tokio::task::spawn_blocking(move || {
            let node = match pod.host_network() {
                true => std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
                false => String::new(),
            };
            let text = dns::hosts_file(&pod, &pod_ip, rules.cluster_domain.as_deref(), &node);
            host::files::write_if_changed(&path, &text, 0o644).map(drop)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Makes (or updates) the pod cgroup holding the pod-level limits, when
    /// the pod has any.
    async fn setup_pod_cgroup(&mut self, pod: &Pod) -> std::io::Result<()> {
        let Some(limits) = host::cgroup::limits_of(pod) else {
            return Ok(());
        };
        let cgroups = self.cgroups().await.map_err(std::io::Error::other)?;
        let uid = self.uid.clone();
        tokio::task::spawn_blocking(move || {
            let root = Path::new(host::cgroup::CGROUP_ROOT);
            host::cgroup::create(root, cgroups.version, &uid, limits)
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Removes the pod's directory (volumes, termination logs) once its
    /// containers are gone.
    pub(super) async fn teardown(&self) {
        let dir = self.deps.node.rules.pod_dir(&self.uid);
        let h = self.deps.host.clone();
        let result = tokio::task::spawn_blocking(move || {
            host::teardown_volumes(&*h, &dir).map_err(std::io::Error::from)
        })
        .await;
        if let Ok(Err(e)) | Err(e) = result.map_err(std::io::Error::other) {
            tracing::warn!(error = %e, "cannot remove the pod's directory");
        }
        if self.spec_pod().and_then(host::cgroup::limits_of).is_some() {
            let uid = self.uid.clone();
            let removed = tokio::task::spawn_blocking(move || {
                host::cgroup::remove(Path::new(host::cgroup::CGROUP_ROOT), &uid)
            })
            .await;
            if let Ok(Err(e)) | Err(e) = removed.map_err(std::io::Error::other) {
                tracing::warn!(error = %e, "cannot remove the pod's cgroup");
            }
        }
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
        hosts: bool,
    ) -> Result<containers::ContainerConfig, ConfigureError> {
        let log = self.termination_log(&c.name, attempt);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ConfigureError::Io { path, source }
        };
        if let Some(dir) = log.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
        }
        tokio::fs::write(&log, b"").await.map_err(io(&log))?;
        let (uid, rules, vols) = (&self.uid, &self.deps.node.rules, &self.volumes);
        let mut config =
            containers::configure(pod, uid, c, rules, vols, pod_ip, image_user, Some(&log))?;
        config
            .binds
            .extend(dns::pod_file_binds(c, &rules.pod_dir(uid), hosts));
        let (c2, vols2, h) = (c.clone(), vols.clone(), self.deps.host.clone());
        tokio::task::spawn_blocking(move || host::check_subpaths(&*h, &c2, &vols2))
            .await
            .map_err(|e| ConfigureError::Task(e.to_string()))??;
        Ok(config)
    }

    /// Stops one container: its preStop hook first (app containers and
    /// sidecars), then SIGTERM and SIGKILL at the end of the grace period,
    /// less what was `spent` before (on the app containers, for a sidecar)
    /// and what the hook took (at least 2 s left).
    async fn kill_one(
        &self,
        k: &plan::Kill,
        o: Option<&Observed>,
        spent: Duration,
    ) -> Result<(), RuntimeError> {
        let secs = self
            .spec_pod()
            .map(|p| p.grace_period_secs())
            .or_else(|| o.and_then(|o| o.labels.grace_period_secs))
            .unwrap_or(30);
        let grace = Duration::from_secs(secs.max(0) as u64);
        let grace = grace
            .saturating_sub(spent)
            .max(MIN_GRACE_AFTER_HOOK.min(grace));
        if k.kind == ContainerKind::Container {
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
            tracing::info!(reason = ?k.reason, "Stopping infra container");
        }
        let mut left = grace;
        let pre_stop = self
            .container_spec(&k.container_name)
            .filter(|_| k.kind == ContainerKind::Container)
            .and_then(|c| Some((c, c.lifecycle.as_ref()?.pre_stop.as_ref()?)));
        if let Some((c, hook)) = pre_stop {
            let started = std::time::Instant::now();
            let sandbox = o.and_then(|o| o.labels.sandbox_id.as_deref());
            let ip = self.pod_ip(sandbox).await;
            let target = handlers::ActionTarget {
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
    async fn post_start(&self, c: &Container, id: &str, pod_ip: &str) -> Result<(), HookFailed> {
        let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) else {
            return Ok(());
        };
        let target = handlers::ActionTarget {
            container_id: id,
            pod_ip,
            container: c,
            exec_handler: self.deps.node.exec_handler,
        };
        let grace =
            Duration::from_secs(self.spec_pod().map_or(30, |p| p.grace_period_secs()) as u64);
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
        Err(HookFailed(message))
    }

    /// Creates and starts a container; a name already taken means an earlier
    /// run (or a crash between create and start) made it: it is adopted.
    async fn create_and_start(
        &self,
        spec: &crate::runtime::CreateSpec,
    ) -> Result<String, RuntimeError> {
        let rt = &self.deps.runtime;
        // Every container's output is bounded on disk; a pod with pod-level
        // limits has every container in its pod cgroup.
        let spec = &crate::runtime::CreateSpec {
            log: Some(self.deps.node.container_logs),
            cgroup_parent: self
                .spec_pod()
                .and_then(host::cgroup::limits_of)
                .map(|_| host::cgroup::parent(&self.uid)),
            ..spec.clone()
        };
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
    /// `container` (none for the infra image) is told how far a pull is.
    async fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        container: Option<&str>,
    ) -> Result<ImageInfo, (Waiting, Duration)> {
        let request = EnsureImage {
            image: image.to_string(),
            policy,
            pod_uid: self.uid.clone(),
            object: container.map(|c| self.event_ref(c)),
            progress_to: container.map(|c| ProgressTo {
                recipient: self.pulls.clone(),
                container: c.to_string(),
            }),
        };
        match self.deps.puller.send(request).await {
            Ok(Ok(outcome)) => Ok(outcome.image().clone()),
            Ok(Err(e)) => Err((
                Waiting {
                    reason: e.reason,
                    message: e.message,
                },
                e.retry_after,
            )),
            Err(e) => Err((
                Waiting {
                    reason: WaitingReason::ErrImagePull,
                    message: format!("image puller unavailable: {e}"),
                },
                RETRY_AFTER,
            )),
        }
    }
}
