//! `podvisor run`: starts the actors and the HTTP API on one actix System
//! and runs until SIGTERM or SIGINT. On the way out the actors stop and the
//! pods are left running, as the kubelet leaves them; the next start adopts
//! them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;

use crate::actors::events::EventView;
use crate::actors::image_puller::PullerConfig;
use crate::actors::source::{ManifestSource, SourceConfig};
use crate::actors::supervisor::Supervisor;
use crate::actors::url_source::UrlSource;
use crate::actors::{Deps, NodeConfig, StatusView};
use crate::api::{self, ApiState};
use crate::decide::plan::GcPolicy;
use crate::runtime::bounded::Bounded;
use crate::runtime::credentials::CredentialStore;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::ContainerRuntime;
use crate::settings::Settings;
use crate::spec::containers::NodeRules;

/// The budget of an ordinary engine call: a hung call fails after this and
/// delays only the pod that made it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The budget of a whole pull (on top of its progress deadline).
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// How the puller is set up, from the settings and the credential file.
pub fn puller_config(settings: &Settings, credentials: CredentialStore) -> PullerConfig {
    PullerConfig {
        qps: settings.registry_qps,
        burst: settings.registry_burst,
        max_parallel: if settings.serialize_image_pulls {
            Some(1)
        } else {
            settings.max_parallel_image_pulls.map(|n| n as usize)
        },
        progress_deadline: settings.image_pull_progress_deadline,
        credentials,
    }
}

/// Starts every actor on the current System; returns what the API reads.
pub fn start(
    settings: &Settings,
    runtime: Arc<dyn ContainerRuntime>,
    credentials: CredentialStore,
) -> (StatusView, EventView) {
    let node = NodeConfig {
        node_name: settings.node_name.clone(),
        infra_image: settings.pod_infra_container_image.clone(),
        sync_frequency: settings.sync_frequency,
        host_ip: settings.address.to_string(),
        gc: GcPolicy {
            min_age: settings.minimum_container_ttl_duration,
            max_per_container: usize::try_from(settings.maximum_dead_containers_per_container).ok(),
        },
        max_dead: usize::try_from(settings.maximum_dead_containers).ok(),
        exec_handler: settings.docker_exec_handler,
        rules: NodeRules {
            node_name: settings.node_name.clone(),
            host_ip: settings.address.to_string(),
            root_dir: settings.root_dir.clone(),
            cfs_quota: settings.cpu_cfs_quota,
            allow_privileged: settings.allow_privileged,
            allowed_host_paths: settings.allowed_host_paths.clone(),
            capacity: crate::host::node_capacity(&crate::host::RealHost),
        },
    };
    let puller = puller_config(settings, credentials);
    let deps = Deps::start(runtime, node, puller, crate::model::clock::system());
    let events = deps.event_store.clone();
    let mut sources = vec!["file"];
    if settings.manifest_url.is_some() {
        sources.push("http");
    }
    let supervisor = Supervisor::new(deps).with_sources(sources);
    let store = supervisor.status_view();
    let supervisor = supervisor.start();
    if let Some(url) = &settings.manifest_url {
        UrlSource::new(
            url.clone(),
            settings.manifest_url_header.clone(),
            settings.http_check_frequency,
            settings.node_name.clone(),
            supervisor.clone().recipient(),
        )
        .with_validation(settings.manifest_validation)
        .start();
    }
    let files = SourceConfig {
        dir: settings.pod_manifest_path.clone(),
        node_name: settings.node_name.clone(),
        every: settings.file_check_frequency,
        root_dir: settings.root_dir.clone(),
        max_size: settings.max_manifest_size,
    };
    ManifestSource::new(files, supervisor.recipient())
        .with_validation(settings.manifest_validation)
        .start();
    (store, events)
}

/// Runs the daemon until a termination signal.
pub async fn run(settings: Settings, credentials: CredentialStore) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;

    let docker = Arc::new(DockerRuntime::new(settings.docker_endpoint.clone()));
    let runtime: Arc<dyn ContainerRuntime> =
        Arc::new(Bounded::new(docker, CALL_TIMEOUT, PULL_TIMEOUT));
    match runtime.version().await {
        Ok(v) => {
            tracing::info!(endpoint = %settings.docker_endpoint, version = %v, "Docker engine answers")
        }
        Err(e) => tracing::warn!(error = %e, "Docker engine does not answer yet; will keep trying"),
    }
    // Bind before any actor starts: a taken port stops start-up cleanly.
    let addr = SocketAddr::new(settings.address, settings.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    let (store, events) = start(&settings, runtime.clone(), credentials);
    tracing::info!(%addr, node = %settings.node_name, manifests = %settings.pod_manifest_path.display(), "podvisor running");
    let app = api::router(ApiState {
        store,
        events,
        runtime,
    });
    let server = actix::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    });
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping; pods keep running"),
        _ = int.recv() => tracing::info!("SIGINT: stopping; pods keep running"),
    }
    server.abort();
    Ok(())
}
