//! The actors, and what they share.
//!
//! - [`supervisor::Supervisor`]: owns the desired and observed sets, starts a
//!   [`pod_worker::PodWorker`] per pod, wakes workers on engine events and on
//!   the relist tick, removes orphans.
//! - [`pod_worker::PodWorker`]: one per pod; runs `plan()` and carries it out,
//!   one sync at a time, collapsing updates that arrive meanwhile.
//! - [`image_puller::ImagePuller`]: ensures images are present; one pull per
//!   image however many pods want it.
//! - [`registries::Readiness`] and [`registries::ContainerRefs`]: container ID
//!   → ready/started, and container ID → reference.
//! - [`prober::Prober`]: startup, liveness and readiness probes per
//!   container, on their own timers.
//! - [`source::ManifestSource`]: scans the manifest directory and sends the
//!   full desired set.
//! - [`url_source::UrlSource`]: `--manifest-url`, polled with `ETag`s.
//! - [`events::Recorder`]: the recent events of each pod (and the node's).
//! - [`image_gc::ImageGc`]: removes unused images when the image disk is
//!   full, every `--image-gc-period` (5 minutes).

pub mod events;
pub mod grpc_health;
pub mod handlers;
pub mod image_gc;
pub mod image_puller;
pub mod pod_feed;
pub mod pod_worker;
pub mod prober;
pub mod registries;
pub mod shared;
pub mod source;
pub mod supervisor;
pub mod url_source;

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};
use k8s_openapi::api::core::v1::Pod;

use crate::model::PodExt;
use crate::runtime::ContainerRuntime;

/// What the node decides, as the actors need it (a slice of the settings, so
/// tests build it in one line).
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub node_name: String,
    pub infra_image: String,
    pub sync_frequency: Duration,
    /// The node's IP as reported in `status.hostIP`.
    pub host_ip: String,
    /// Which dead containers a pod's worker may remove.
    pub gc: crate::decide::plan::GcPolicy,
    /// Dead containers kept node-wide (`--maximum-dead-containers`);
    /// `None`: no limit.
    pub max_dead: Option<usize>,
    /// How hooks and probes run commands in containers.
    pub exec_handler: crate::settings::ExecHandler,
    /// Admission, volumes, resources and security rules.
    pub rules: crate::spec::containers::NodeRules,
    /// The limits of every container's log files
    /// (`--container-log-max-size`, `--container-log-max-files`).
    pub container_logs: crate::runtime::LogLimits,
    /// Page the start-up code out of the resident set once the sources
    /// delivered their pods (the daemon does; tests, whose process is not
    /// podvisor, do not).
    pub page_out_code: bool,
}

impl NodeConfig {
    pub fn for_tests() -> Self {
        Self {
            node_name: "test-node".into(),
            infra_image: "pause:test".into(),
            sync_frequency: Duration::from_secs(10),
            host_ip: "127.0.0.1".into(),
            gc: crate::decide::plan::GcPolicy::default(),
            max_dead: Some(100),
            exec_handler: crate::settings::ExecHandler::Native,
            page_out_code: false,
            rules: crate::spec::containers::NodeRules {
                node_name: "test-node".into(),
                host_ip: "127.0.0.1".into(),
                root_dir: std::env::temp_dir()
                    .join(format!("podvisor-tests-{}", std::process::id())),
                cfs_quota: true,
                allow_privileged: false,
                allowed_host_paths: vec![],
                capacity: crate::spec::resources::NodeCapacity {
                    cpu_millis: 4000,
                    memory_bytes: 8 << 30,
                },
                host_ports: true,
                labels: crate::decide::admission::node_labels("test-node", &[]),
                security: crate::spec::security::NodeSecurity {
                    memory_capacity: 8 << 30,
                    ..Default::default()
                },
                cluster_dns: vec![],
                cluster_domain: None,
                resolv_conf: None,
            },
            container_logs: crate::runtime::LogLimits {
                max_size_bytes: 10 << 20,
                max_files: 5,
            },
        }
    }
}

/// A pod the sources want running, with its UID settled.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPod {
    pub uid: String,
    pub pod: Arc<Pod>,
    /// Where it came from (a file path or URL), for messages.
    pub source: String,
    /// Set when its source is broken and the pod runs on its last good
    /// spec: shown as the status message.
    pub problem: Option<String>,
}

impl DesiredPod {
    /// `namespace/name`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.pod.namespace(), self.pod.name())
    }
}

/// The pods as the API shows them, by UID: the desired spec with its latest
/// status, versioned, with their changes. Written only by the Supervisor;
/// read by the HTTP API without a mailbox.
pub use pod_feed::StatusView;

/// Everything an actor needs from outside itself.
#[derive(Clone)]
pub struct Deps {
    pub runtime: Arc<dyn ContainerRuntime>,
    pub node: Arc<NodeConfig>,
    /// The ImagePuller (a `Recipient`, so a benchmark or test can stand in
    /// another answerer).
    pub puller: Recipient<image_puller::EnsureImage>,
    pub readiness: Addr<registries::Readiness>,
    /// What the readiness registry holds, read without a mailbox.
    pub readiness_view: registries::ReadinessView,
    pub prober: Addr<prober::Prober>,
    pub refs: Addr<registries::ContainerRefs>,
    /// Wall time for back-off decisions (a `ManualClock` in tests).
    pub clock: Arc<dyn crate::model::clock::Clock>,
    /// The event recorder, and the events it keeps (for readers).
    pub events: Addr<events::Recorder>,
    pub event_store: events::EventView,
    /// The node's file system and mounts (pod directories, volumes).
    pub host: Arc<dyn crate::host::Host>,
    /// The pod network plugin (`--network-plugin`), with its kept records;
    /// `None`: Docker's own network.
    pub network: Option<Arc<crate::network::Network>>,
    /// What `/metrics` shows: the daemon's, shared with the API.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The image garbage collector, when one was started.
    pub image_gc: Option<Addr<image_gc::ImageGc>>,
}

/// What the image garbage collector is started with ([`Deps::start_with`]).
pub struct ImageGcSetup {
    pub config: image_gc::ImageGcConfig,
    pub usage: Arc<dyn image_gc::DiskUsage>,
}

impl Deps {
    /// Starts the puller and the registries on the current System and
    /// gathers what the Supervisor and workers need, with metrics of their
    /// own.
    pub fn start(
        runtime: Arc<dyn ContainerRuntime>,
        node: NodeConfig,
        puller: image_puller::PullerConfig,
        clock: Arc<dyn crate::model::clock::Clock>,
    ) -> Self {
        Self::start_with(
            runtime,
            node,
            puller,
            clock,
            Arc::new(crate::metrics::Metrics::new()),
            None,
        )
    }

    /// As [`Deps::start`], counting into `metrics` (the daemon's), with the
    /// image garbage collector too when given (told of every pull,
    /// recording its events on the node).
    pub fn start_with(
        runtime: Arc<dyn ContainerRuntime>,
        node: NodeConfig,
        puller: image_puller::PullerConfig,
        clock: Arc<dyn crate::model::clock::Clock>,
        metrics: Arc<crate::metrics::Metrics>,
        image_gc: Option<ImageGcSetup>,
    ) -> Self {
        use actix::Actor;
        let refs = registries::ContainerRefs::default();
        let recorder =
            events::Recorder::new(clock.clone(), node.node_name.clone(), refs.snapshot());
        let event_store = recorder.store();
        let events = recorder.start();
        let readiness = registries::Readiness::default();
        let readiness_view = readiness.snapshot();
        let readiness = readiness.start();
        let prober = prober::Prober::new(
            runtime.clone(),
            node.exec_handler,
            readiness.clone(),
            events.clone(),
        )
        .with_metrics(metrics.clone())
        .start();
        let image_gc = image_gc.map(|setup| {
            image_gc::ImageGc::new(setup.config, runtime.clone(), setup.usage, clock.clone())
                .with_events(events.clone().recipient())
                .start()
        });
        let mut puller = image_puller::ImagePuller::new(runtime.clone(), puller, clock.clone())
            .with_events(events.clone().recipient())
            .with_metrics(metrics.clone());
        if let Some(gc) = &image_gc {
            puller = puller.with_pulled(gc.clone().recipient());
        }
        Self {
            readiness_view,
            prober,
            puller: puller.start().recipient(),
            events,
            event_store,
            readiness,
            refs: refs.start(),
            runtime,
            node: Arc::new(node),
            clock,
            host: Arc::new(crate::host::RealHost),
            network: None,
            metrics,
            image_gc,
        }
    }
}
