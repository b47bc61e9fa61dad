//! The seam to pod network plugins: what wires a pod's network namespace
//! (the infra container's) when `--network-plugin` is set.
//!
//! - [`exec`]: the kubelet v1.1's exec plugins
//!   (`<network-plugin-dir>/<name>/<name> init|setup|teardown|status`).
//! - [`cni`]: CNI (`--network-plugin=cni`): the first configuration of
//!   `--cni-conf-dir`, the plugins of `--cni-bin-dir`, ADD/DEL/CHECK.
//!
//! - [`Network`]: a plugin with its kept records (`--root-dir/network`),
//!   what the pod workers and the Supervisor use.
//!
//! A [`NetworkPlugin`] keeps no state of its own between calls: what a
//! `setup` returns to be kept ([`Wired::record`]) is handed back in
//! [`PodNetwork::record`] to `status`, `check` and `teardown`, so that the
//! caller can keep it on disk (under `--root-dir`) and a teardown after a
//! restart has what it needs (CNI's DEL wants the ADD's result).

pub mod cni;
pub mod exec;
mod kept;

pub use kept::Network;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;

use crate::runtime::PortMapping;

/// How long one plugin call may take before it is killed and failed.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One pod's network, as a plugin needs to know it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodNetwork {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// The infra (pause) container's ID.
    pub infra_id: String,
    /// The infra container's network namespace (`/proc/<pid>/ns/net`);
    /// `None` when the container is gone (a teardown after a crash).
    pub netns: Option<PathBuf>,
    /// The pod's `hostPort`s (CNI: the `portmap` plugin's
    /// `runtimeConfig.portMappings`).
    pub ports: Vec<PortMapping>,
    /// What the `setup` of this infra container returned to be kept
    /// ([`Wired::record`]), when known.
    pub record: Option<serde_json::Value>,
}

/// What a `setup` (or `status`) says of a wired pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Wired {
    /// The pod's IPs, the first one its `status.podIP`; empty: the
    /// plugin does not say (exec plugins may leave it to Docker's IP).
    pub ips: Vec<IpAddr>,
    /// What to keep for the later calls of this infra container (CNI:
    /// the configuration's name and version and the ADD result).
    pub record: serde_json::Value,
}

/// A plugin call that failed, naming the plugin, the call and why (the
/// plugin's stderr or error message, a file that does not parse, ...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    /// The plugin or its configuration cannot be used at all (missing
    /// executable, a configuration that does not parse, ...).
    #[error("network plugin {plugin}: {message}")]
    Config { plugin: String, message: String },
    /// A call ran and failed (non-zero exit, an error result, output
    /// that does not parse).
    #[error("network plugin {plugin}: {call} failed: {message}")]
    Failed {
        plugin: String,
        call: &'static str,
        message: String,
    },
    /// A call did not end in time; it was killed.
    #[error("network plugin {plugin}: {call} did not finish within {after:?}; killed")]
    Timeout {
        plugin: String,
        call: &'static str,
        after: Duration,
    },
}

#[cfg(test)]
impl NetworkError {
    /// The plugin, call and message of a `Failed` (tests: panics on any
    /// other error).
    pub(crate) fn into_failed(self) -> (String, &'static str, String) {
        match self {
            NetworkError::Failed {
                plugin,
                call,
                message,
            } => (plugin, call, message),
            other => panic!("expected Failed, got {other:?}"),
        }
    }
}

/// A network plugin. Implementations put a timeout on every call
/// ([`CALL_TIMEOUT`] unless told otherwise) and never panic on bad plugin
/// output.
#[async_trait]
pub trait NetworkPlugin: Send + Sync + 'static {
    /// `--network-plugin`'s value, for messages and events.
    fn name(&self) -> &str;
    /// The infra container's Docker network mode: `Some("none")` when the
    /// plugin makes the namespace's interfaces itself (CNI); `None` to keep
    /// Docker's default network, which the plugin then changes (exec
    /// plugins, as in the kubelet).
    fn infra_network_mode(&self) -> Option<&'static str>;
    /// Whether the pod's `hostPort`s are served (CNI: only with a
    /// `portmap` plugin in the chain; a pod with one is refused
    /// otherwise). Exec plugins: Docker publishes them on the infra
    /// container.
    fn serves_host_ports(&self) -> bool;
    /// Once, at start; an error stops podvisor from starting.
    async fn init(&self) -> Result<(), NetworkError>;
    /// After the infra container started, before any app container.
    async fn setup(&self, pod: &PodNetwork) -> Result<Wired, NetworkError>;
    /// The pod's network as the plugin sees it now (exec: `status`; CNI:
    /// the kept result).
    async fn status(&self, pod: &PodNetwork) -> Result<Wired, NetworkError>;
    /// Whether the pod's network is still as set up (CNI: CHECK); a
    /// failure makes the caller recreate the pod's sandbox.
    async fn check(&self, pod: &PodNetwork) -> Result<(), NetworkError>;
    /// After the app containers died, before the infra container is
    /// removed; also for an infra container already gone (`netns` `None`).
    /// Idempotent: a second teardown of the same pod succeeds.
    async fn teardown(&self, pod: &PodNetwork) -> Result<(), NetworkError>;
}
