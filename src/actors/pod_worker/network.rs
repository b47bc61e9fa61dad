//! The pod's network through `--network-plugin`, as the worker drives it:
//! wired after the infra container starts and before any app container
//! (a failed setup waits with back-off and an event, never with apps
//! started on an unwired pod), checked about every 5 minutes (a failed
//! check recreates the sandbox), torn down after the apps die and before
//! the infra container goes. `hostNetwork` pods skip the plugin.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::sync::SyncJob;
use crate::decide::plan::Observed;
use crate::model::naming::ContainerKind;
use crate::model::PodExt;
use crate::network::{Network, PodNetwork};
use crate::runtime::{ContainerDetails, ContainerState, PortMapping};
use crate::spec::containers::{self, PodIdentity};

/// The first wait after a failed setup; doubled per failure up to
/// [`SETUP_BACKOFF_MAX`], as the kubelet's pod back-off.
const SETUP_BACKOFF: Duration = Duration::from_secs(10);
const SETUP_BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How often a wired pod's network is checked (plus a spread of up to a
/// minute by pod, so that the pods of a node are not checked at once).
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(300);

/// What the worker remembers of its pod's network between syncs.
#[derive(Debug, Default, Clone)]
pub(crate) struct NetMemory {
    /// Failed setups in a row, the last one's message, and when to try
    /// again.
    failed: Option<(u32, String, DateTime<Utc>)>,
    /// When the network is due for a check.
    next_check: Option<DateTime<Utc>>,
}

/// A setup that failed: why, and how long before the next try.
pub(super) struct NotWired {
    pub(super) message: String,
    pub(super) retry_after: Duration,
}

/// `/proc/<pid>/ns/net` of a running container.
fn netns_of(d: &ContainerDetails) -> Option<PathBuf> {
    let pid = d.pid.filter(|p| *p > 0)?;
    (d.summary.state == ContainerState::Running)
        .then(|| PathBuf::from(format!("/proc/{pid}/ns/net")))
}

/// The spread of a pod's checks: 0 to 59 s, from its UID.
fn spread(uid: &str) -> Duration {
    let n = uid
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    Duration::from_secs(n % 60)
}

impl SyncJob {
    /// The node's network plugin for this pod: `None` without one, or for
    /// a `hostNetwork` pod.
    pub(super) fn network(&self) -> Option<Arc<Network>> {
        let net = self.deps.network.clone()?;
        (!self.spec_pod().is_some_and(|p| p.host_network())).then_some(net)
    }

    /// The infra container's create request, as the plugin wants it: with
    /// CNI no Docker network (`none`) and so no Docker-published ports
    /// (the `portmap` plugin serves them).
    pub(super) fn adjust_sandbox(&self, spec: &mut crate::runtime::CreateSpec) {
        let Some(net) = self.network() else {
            return;
        };
        if let Some(mode) = net.plugin().infra_network_mode() {
            spec.network_mode = Some(mode.to_string());
            spec.ports.clear();
        }
    }

    /// The IP the plugin gave the infra container, when it gave one.
    pub(super) fn plugin_ip(&self, infra_id: &str) -> Option<String> {
        let ips = self.deps.network.as_ref()?.ips(infra_id)?;
        ips.first().map(|ip| ip.to_string())
    }

    /// Wires the pod's network on `sandbox_id` unless it is wired: the
    /// plugin's setup, or the wait left by the last failure.
    pub(super) async fn wire(
        &mut self,
        ident: &PodIdentity<'_>,
        sandbox_id: &str,
    ) -> Result<(), NotWired> {
        let Some(net) = self.network() else {
            return Ok(());
        };
        if net.ips(sandbox_id).is_some() {
            return Ok(());
        }
        let now = self.deps.clock.now();
        if let Some((_, message, at)) = &self.memory.net.failed {
            if let Ok(left) = (*at - now).to_std() {
                if !left.is_zero() {
                    return Err(NotWired {
                        message: message.clone(),
                        retry_after: left,
                    });
                }
            }
        }
        let netns = match self.deps.runtime.inspect_container(sandbox_id).await {
            Ok(Some(d)) => netns_of(&d),
            _ => None,
        };
        let Some(netns) = netns else {
            return Err(NotWired {
                message: "the infra container is not running: no network namespace to wire".into(),
                retry_after: super::sync::RETRY_AFTER,
            });
        };
        let ports: Vec<PortMapping> = containers::pod_ports(ident.pod)
            .into_iter()
            .filter(|p| p.host_port.is_some())
            .collect();
        let pod = PodNetwork {
            namespace: ident.namespace().to_string(),
            name: ident.name().to_string(),
            uid: self.uid.clone(),
            infra_id: sandbox_id.to_string(),
            netns: Some(netns),
            ports,
            record: None,
        };
        match net.setup(&pod).await {
            Ok(wired) => {
                tracing::info!(plugin = %net.plugin().name(), ips = ?wired.ips, "pod network set up");
                self.memory.net.failed = None;
                Ok(())
            }
            Err(e) => {
                let failures = self.memory.net.failed.as_ref().map_or(0, |f| f.0) + 1;
                let wait = SETUP_BACKOFF
                    .saturating_mul(1 << (failures - 1).min(8))
                    .min(SETUP_BACKOFF_MAX);
                let message = format!("failed to set up the pod network: {e}");
                tracing::warn!(failures, retry_in = ?wait, "{message}");
                self.record_pod(true, "FailedCreatePodSandBox", message.clone());
                let at = now + chrono::Duration::from_std(wait).unwrap_or_default();
                self.memory.net.failed = Some((failures, message.clone(), at));
                Err(NotWired {
                    message,
                    retry_after: wait,
                })
            }
        }
    }

    /// Tears down the network of an infra container about to be stopped
    /// (`observed`: its namespace while it runs) or removed. A failure is
    /// logged; the record stays and the Supervisor's relist tries again.
    pub(super) async fn unwire(&self, infra_id: &str, observed: Option<&Observed>) {
        let Some(net) = &self.deps.network else {
            return;
        };
        let netns = observed
            .filter(|o| o.labels.kind == ContainerKind::Sandbox)
            .and_then(|o| self.memory.inspected.get(&o.id))
            .and_then(netns_of);
        if let Err(e) = net.teardown(infra_id, netns).await {
            tracing::warn!(infra = %&infra_id[..infra_id.len().min(12)], error = %e, "pod network teardown failed; tried again at the next relist");
            self.record_pod(
                true,
                "FailedKillPod",
                format!("failed to tear down the pod network: {e}"),
            );
        }
    }

    /// Checks the wired network of the running infra container when due
    /// (at the first sync of a worker, so at adoption, then every
    /// [`CHECK_EVERY`]). A failed check stops the infra container: the
    /// next sync makes a new sandbox, wired anew, and checked a period
    /// later.
    pub(super) async fn check_network(&mut self, details: &[ContainerDetails]) {
        let Some(net) = self.network() else {
            return;
        };
        let now = self.deps.clock.now();
        if self.memory.net.next_check.is_some_and(|due| now < due) {
            return;
        }
        let infra = details.iter().find(|d| {
            d.summary.state == ContainerState::Running
                && d.summary
                    .labels
                    .get(crate::model::naming::LABEL_DOCKER_TYPE)
                    .map(String::as_str)
                    == Some(crate::model::naming::TYPE_SANDBOX)
        });
        let Some((infra, netns)) = infra.and_then(|d| Some((d, netns_of(d)?))) else {
            return;
        };
        if net.ips(&infra.summary.id).is_none() {
            return; // not wired yet: the next execution wires it
        }
        let every = CHECK_EVERY + spread(&self.uid);
        self.memory.net.next_check =
            Some(now + chrono::Duration::from_std(every).unwrap_or_default());
        if let Err(e) = net.check(&infra.summary.id, netns).await {
            let message = format!("the pod network check failed: {e}; recreating the sandbox");
            tracing::warn!("{message}");
            self.record_pod(true, "FailedPodNetworkCheck", message);
            self.unwire(&infra.summary.id, None).await;
            // The new sandbox is checked in its turn, not at once: a check
            // that keeps failing recreates a sandbox every period, not
            // every sync.
            let _ = self
                .deps
                .runtime
                .stop_container(&infra.summary.id, Duration::from_secs(0))
                .await;
        }
    }
}
