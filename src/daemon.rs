//! `podvisor run`: starts the actors and the HTTP API on one actix System
//! and runs until SIGTERM or SIGINT. On the way out the actors stop and the
//! pods are left running, as the kubelet leaves them; the next start adopts
//! them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;

use crate::actors::events::EventView;
use crate::actors::image_gc::{self, DiskUsage, EngineDiskUsage, FileDiskUsage, ImageGcConfig};
use crate::actors::image_puller::PullerConfig;
use crate::actors::source::{ManifestSource, SourceConfig};
use crate::actors::supervisor::Supervisor;
use crate::actors::url_source::UrlSource;
use crate::actors::{Deps, ImageGcSetup, NodeConfig, StatusView};
use crate::api::{self, ApiState};
use crate::decide::image_gc::ImageGcPolicy;
use crate::decide::plan::GcPolicy;
use crate::network::{Network, NetworkPlugin};
use crate::runtime::bounded::Bounded;
use crate::runtime::bounded::Budgets;
use crate::runtime::credentials::CredentialStore;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::ContainerRuntime;
use crate::settings::Settings;
use crate::spec::containers::NodeRules;

/// The budget of an ordinary engine call: a hung call fails after this and
/// delays only the pod that made it.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The budget of a call that changes things (create, start, remove), from
/// when the engine gets it (the wait for its turn is not counted): what
/// such a call took on a 2-core engine while 500 pods converged, with room.
pub const CHANGE_BUDGET: Duration = Duration::from_secs(10);
/// The budget of a whole pull (on top of its progress deadline).
pub const PULL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Every engine call's budget.
pub const BUDGETS: Budgets = Budgets {
    call: CALL_TIMEOUT,
    change: CHANGE_BUDGET,
    pull: PULL_TIMEOUT,
};

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

/// What the API reads and writes through, once the actors run.
pub struct Started {
    pub store: StatusView,
    pub events: EventView,
    pub manifests: api::write::Manifests,
    pub machine: crate::host::machine::MachineInfo,
}

/// Starts every actor on the current System; returns what the API reads
/// and writes through. `engine_security` is the engine's `SecurityOptions`
/// (`docker info`), which say whether AppArmor, user-namespace remapping
/// and SELinux are there to honour a pod's requests.
pub fn start(
    settings: &Settings,
    runtime: Arc<dyn ContainerRuntime>,
    credentials: CredentialStore,
    network: Option<Arc<Network>>,
    metrics: Arc<crate::metrics::Metrics>,
    engine_security: &[String],
) -> Started {
    let capacity = crate::host::node_capacity(&crate::host::RealHost);
    let allocatable = crate::host::machine::allocatable(
        capacity,
        &[settings.system_reserved, settings.kube_reserved],
    );
    let machine = crate::host::machine::MachineInfo::read(
        &crate::host::RealHost,
        &settings.root_dir,
        capacity,
        allocatable,
    );
    // Negative OOM scores (infra, Guaranteed) need CAP_SYS_RESOURCE; an
    // engine without it could start none of those containers.
    let lower_oom_scores = std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| crate::spec::security::has_sys_resource(&s));
    if !lower_oom_scores {
        tracing::warn!("no CAP_SYS_RESOURCE: OOM score adjustments below 0 (infra -998, Guaranteed -997) are applied as 0");
    }
    let node = NodeConfig {
        node_name: settings.node_name.clone(),
        infra_image: settings.pod_infra_container_image.clone(),
        sync_frequency: settings.sync_frequency,
        host_ip: settings.node_ip.to_string(),
        gc: GcPolicy {
            min_age: settings.minimum_container_ttl_duration,
            max_per_container: usize::try_from(settings.maximum_dead_containers_per_container).ok(),
        },
        max_dead: usize::try_from(settings.maximum_dead_containers).ok(),
        exec_handler: settings.docker_exec_handler,
        page_out_code: true,
        container_logs: crate::runtime::LogLimits {
            max_size_bytes: settings.container_log_max_size,
            max_files: settings.container_log_max_files,
        },
        rules: NodeRules {
            node_name: settings.node_name.clone(),
            host_ip: settings.node_ip.to_string(),
            root_dir: settings.root_dir.clone(),
            cfs_quota: settings.cpu_cfs_quota,
            allow_privileged: settings.allow_privileged,
            allowed_host_paths: settings.allowed_host_paths.clone(),
            capacity: allocatable,
            host_ports: network
                .as_ref()
                .is_none_or(|n| n.plugin().serves_host_ports()),
            labels: crate::decide::admission::node_labels(
                &settings.node_name,
                &settings.node_labels,
            ),
            security: crate::spec::security::NodeSecurity {
                lower_oom_scores,
                seccomp_default: settings.seccomp_default,
                memory_capacity: capacity.memory_bytes,
                seccomp_dir: settings.root_dir.join("seccomp"),
                ..Default::default()
            }
            .with_engine_options(engine_security),
            cluster_dns: settings
                .cluster_dns
                .iter()
                .map(|ip| ip.to_string())
                .collect(),
            cluster_domain: settings.cluster_domain.clone(),
            resolv_conf: settings.resolv_conf.clone(),
        },
    };
    let puller = puller_config(settings, credentials);
    let usage: Arc<dyn DiskUsage> = match &settings.image_gc_usage_file {
        Some(file) => Arc::new(FileDiskUsage(file.clone())),
        None => Arc::new(EngineDiskUsage(runtime.clone())),
    };
    let image_gc = ImageGcSetup {
        config: ImageGcConfig {
            policy: ImageGcPolicy {
                high_percent: settings.image_gc_high_threshold,
                low_percent: settings.image_gc_low_threshold,
                min_age: settings.minimum_image_ttl_duration,
                all_images: settings.image_gc_all_images,
            },
            period: settings.image_gc_period,
            infra_image: settings.pod_infra_container_image.clone(),
            node_name: settings.node_name.clone(),
            state_file: settings.root_dir.join(image_gc::STATE_FILE),
        },
        usage,
    };
    let mut deps = Deps::start_with(
        runtime,
        node,
        puller,
        crate::model::clock::system(),
        metrics.clone(),
        Some(image_gc),
    );
    deps.network = network;
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
        .with_metrics(metrics.clone())
        .start();
    }
    let files = SourceConfig {
        dir: settings.pod_manifest_path.clone(),
        node_name: settings.node_name.clone(),
        every: settings.file_check_frequency,
        root_dir: settings.root_dir.clone(),
        max_size: settings.max_manifest_size,
    };
    let source = ManifestSource::new(files, supervisor.clone().recipient())
        .with_validation(settings.manifest_validation)
        .with_metrics(metrics)
        .start();
    let manifests = api::write::Manifests::new(
        settings.pod_manifest_path.clone(),
        settings.node_name.clone(),
        settings.manifest_validation,
        source,
        supervisor.recipient(),
    );
    Started {
        store,
        events,
        manifests,
        machine,
    }
}

/// The network plugin of `--network-plugin`, initialised, with its kept
/// records: `None` without one. A plugin that cannot be found or whose
/// `init` fails stops the start, naming the plugin and why.
async fn network(settings: &Settings) -> std::io::Result<Option<Arc<Network>>> {
    let Some(name) = &settings.network_plugin else {
        return Ok(None);
    };
    let fail = |e: crate::network::NetworkError| std::io::Error::other(e.to_string());
    let plugin: Arc<dyn NetworkPlugin> = match name.as_str() {
        "cni" => Arc::new(crate::network::cni::CniPlugin::new(
            settings.cni_conf_dir.clone(),
            vec![settings.cni_bin_dir.clone(), "/usr/lib/cni".into()],
            crate::network::CALL_TIMEOUT,
        )),
        _ => Arc::new(
            crate::network::exec::ExecPlugin::find(
                &settings.network_plugin_dir,
                name,
                crate::network::CALL_TIMEOUT,
            )
            .map_err(fail)?,
        ),
    };
    plugin.init().await.map_err(fail)?;
    tracing::info!(plugin = %name, "network plugin initialised");
    Ok(Some(Arc::new(Network::new(plugin, &settings.root_dir))))
}

/// Runs the daemon until a termination signal.
pub async fn run(mut settings: Settings, credentials: CredentialStore) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // The engine binds paths under it (volumes, termination logs): a
    // relative `--root-dir` would reach Docker as a volume name.
    settings.root_dir = std::path::absolute(&settings.root_dir)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;

    let docker = Arc::new(DockerRuntime::new(settings.docker_endpoint.clone()));
    // One registry for all: the engine calls, the actors and the API.
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let runtime: Arc<dyn ContainerRuntime> =
        Arc::new(Bounded::new(docker, BUDGETS).with_metrics(metrics.clone()));
    match runtime.version().await {
        Ok(v) => {
            tracing::info!(endpoint = %settings.docker_endpoint, version = %v, "Docker engine answers")
        }
        Err(e) => tracing::warn!(error = %e, "Docker engine does not answer yet; will keep trying"),
    }
    // Credentials and ports before any actor starts: a bad certificate or
    // a taken port stops start-up cleanly.
    let secure = SecureApi::prepare(&settings)?;
    let listen_error = |addr: SocketAddr, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"))
    };
    let addr = SocketAddr::new(settings.address, settings.port);
    let secure_listener = std::net::TcpListener::bind(addr).map_err(|e| listen_error(addr, e))?;
    secure_listener.set_nonblocking(true)?;
    let read_only = match settings.read_only_port {
        0 => None,
        port => {
            let addr = SocketAddr::new(settings.address, port);
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| listen_error(addr, e))?;
            Some((addr, l))
        }
    };
    let network = network(&settings).await?;
    // What the engine can enforce (AppArmor, user namespaces, SELinux),
    // read once: pods asking for what it lacks are refused.
    let engine_security = match runtime.security_options().await {
        Ok(options) => {
            tracing::info!(options = ?options, "engine security options");
            options
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the engine's security options: AppArmor, user namespaces and SELinux count as absent");
            Vec::new()
        }
    };
    let started = start(
        &settings,
        runtime.clone(),
        credentials,
        network,
        metrics.clone(),
        &engine_security,
    );
    let state = ApiState {
        store: started.store,
        events: started.events,
        runtime,
        exec_handler: settings.docker_exec_handler,
        manifests: Some(Arc::new(started.manifests)),
        machine: Some(Arc::new(started.machine)),
        metrics,
    };
    tracing::info!(
        secure = %addr,
        read_only = %read_only.as_ref().map_or("off".to_string(), |(a, _)| a.to_string()),
        node = %settings.node_name,
        manifests = %settings.pod_manifest_path.display(),
        "podvisor running"
    );
    if let Some(kubeconfig) = &secure.kubeconfig {
        tracing::info!(
            "kubectl against this node: KUBECONFIG={} kubectl get pods -A",
            kubeconfig.display()
        );
    }
    let app = api::secure_router(state.clone(), secure.tokens.clone());
    let tls = axum_server::tls_rustls::RustlsConfig::from_config(secure.tls.clone());
    let secure_server = axum_server::tls_rustls::from_tcp_rustls(secure_listener, tls)?;
    let mut servers = vec![actix::spawn(async move {
        if let Err(e) = secure_server.serve(app.into_make_service()).await {
            tracing::error!(error = %e, "secure API stopped");
        }
    })];
    if let Some((_, listener)) = read_only {
        let app = api::read_only_router(state);
        servers.push(actix::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "read-only API stopped");
            }
        }));
    }
    // systemd's `Type=notify`: ready once the APIs listen and the actors
    // run (nothing happens without NOTIFY_SOCKET).
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd that podvisor is ready");
    }
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: stopping; pods keep running"),
        _ = int.recv() => tracing::info!("SIGINT: stopping; pods keep running"),
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    for s in servers {
        s.abort();
    }
    Ok(())
}

/// What the secure API serves with: its TLS configuration, the tokens it
/// accepts, and the kubeconfig written for the generated token.
struct SecureApi {
    tls: Arc<rustls::ServerConfig>,
    tokens: Arc<api::auth::Tokens>,
    kubeconfig: Option<std::path::PathBuf>,
}

impl SecureApi {
    /// The certificate from `--tls-cert-file`/`--tls-private-key-file`, or
    /// the one kept under `--root-dir/pki`; the tokens of
    /// `--token-auth-file`, or one generated and kept under `--root-dir`
    /// with a kubeconfig for it at `--write-kubeconfig`. Blocking (small
    /// files, once at start).
    fn prepare(settings: &Settings) -> std::io::Result<Self> {
        use api::auth;
        let fail = |e: auth::AuthError| std::io::Error::other(e.to_string());
        let cert = match (&settings.tls_cert_file, &settings.tls_private_key_file) {
            (Some(cert), Some(key)) => auth::load_serving_cert(cert, key),
            _ => {
                auth::ensure_serving_cert(&settings.root_dir, &settings.node_name, settings.address)
            }
        }
        .map_err(fail)?;
        let tls = auth::server_config(&cert).map_err(fail)?;
        let (tokens, kubeconfig) = match &settings.token_auth_file {
            Some(file) => (auth::Tokens::from_csv_file(file).map_err(fail)?, None),
            None => {
                let token = auth::ensure_token(&settings.root_dir).map_err(fail)?;
                let path = settings
                    .write_kubeconfig
                    .clone()
                    .unwrap_or_else(|| settings.root_dir.join("kubeconfig"));
                let host = match settings.address {
                    a if a.is_unspecified() => "127.0.0.1".to_string(),
                    std::net::IpAddr::V6(a) => format!("[{a}]"),
                    a => a.to_string(),
                };
                let server = format!("https://{host}:{}", settings.port);
                auth::write_kubeconfig(&path, &server, &cert.ca_pem, &token, &settings.node_name)
                    .map_err(fail)?;
                (auth::Tokens::single(token, auth::User::admin()), Some(path))
            }
        };
        Ok(Self {
            tls,
            tokens: Arc::new(tokens),
            kubeconfig,
        })
    }
}
