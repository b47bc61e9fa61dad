//! The resolved settings and their typed values.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

/// How commands are run inside containers (`--docker-exec-handler`).
/// Resources kept from pods (`--system-reserved`, `--kube-reserved`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Reserved {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecHandler {
    /// Docker's own exec API.
    Native,
    /// `nsenter` into the container's namespaces.
    Nsenter,
}

/// What a manifest field the `v1` Pod schema does not know, or a key
/// written twice, does (`--manifest-validation`), as `kubectl apply
/// --validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestValidation {
    /// Refuse the file, naming the document and the field.
    #[default]
    Strict,
    /// Accept it, with a warning log line naming the file, document and field.
    Warn,
}

/// Format of log lines (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// The checked settings of `podvisor run`; each field is named as its flag, in snake_case.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Directory of Pod manifests (exists when resolved).
    pub pod_manifest_path: PathBuf,
    /// Docker endpoint: `unix://…`, `tcp://…` or `http://…`.
    pub docker_endpoint: String,
    /// Directory for podvisor's own state.
    pub root_dir: PathBuf,
    /// Image of each pod's infra (pause) container.
    pub pod_infra_container_image: String,
    /// Image pulls per second; 0 = no limit.
    pub registry_qps: f64,
    /// Largest burst of image pulls (>= 1).
    pub registry_burst: u32,
    /// Pull one image at a time.
    pub serialize_image_pulls: bool,
    /// Most image pulls at once (>= 1); above 1 only when `serialize_image_pulls` is false.
    pub max_parallel_image_pulls: Option<u32>,
    /// How to exec into containers.
    pub docker_exec_handler: ExecHandler,
    /// Enforce CPU limits with CFS quota.
    pub cpu_cfs_quota: bool,
    /// Network plugin, `None` for none.
    pub network_plugin: Option<String>,
    /// Directory of network plugins.
    pub network_plugin_dir: PathBuf,
    /// `--system-reserved`: kept from pods.
    pub system_reserved: Reserved,
    /// `--kube-reserved`: kept from pods.
    pub kube_reserved: Reserved,
    /// A container's log file is rotated past this many bytes.
    pub container_log_max_size: u64,
    /// Log files kept per container (the current one included).
    pub container_log_max_files: u32,
    /// CNI network configurations (`--network-plugin=cni`).
    pub cni_conf_dir: PathBuf,
    /// CNI plugins (`--network-plugin=cni`; `/usr/lib/cni` is searched after it).
    pub cni_bin_dir: PathBuf,
    /// Period between syncs (> 0).
    pub sync_frequency: Duration,
    /// Period between checks of the manifest directory (> 0).
    pub file_check_frequency: Duration,
    /// Largest manifest file read, in bytes (>= 1); larger files are refused unread.
    pub max_manifest_size: u64,
    /// Period between fetches of `manifest_url` (> 0).
    pub http_check_frequency: Duration,
    /// URL of more manifests (http:// or https://).
    pub manifest_url: Option<String>,
    /// Headers sent with `manifest_url` requests, `(name, value)`, in the order given.
    pub manifest_url_header: Vec<(String, String)>,
    /// Cancel an image pull that makes no progress for this long (> 0).
    pub image_pull_progress_deadline: Duration,
    /// Docker `config.json` with registry credentials.
    pub image_credential_file: Option<PathBuf>,
    /// Allow privileged containers.
    pub allow_privileged: bool,
    /// Absolute paths that hostPath volumes may use; empty = none.
    pub allowed_host_paths: Vec<PathBuf>,
    /// `--node-labels`: the node's labels (with the well-known ones it sets
    /// itself), matched by `nodeSelector` and node affinity.
    pub node_labels: Vec<(String, String)>,
    /// Least age of a dead container before it may be removed.
    pub minimum_container_ttl_duration: Duration,
    /// Dead containers kept per container; negative = no limit.
    pub maximum_dead_containers_per_container: i64,
    /// Dead containers kept in all; negative = no limit.
    pub maximum_dead_containers: i64,
    /// Image GC starts at this percent of the image file system (0..=100).
    pub image_gc_high_threshold: u8,
    /// Image GC frees down to this percent (below the high threshold).
    pub image_gc_low_threshold: u8,
    /// Least time since an image was first seen before GC may remove it.
    pub minimum_image_ttl_duration: Duration,
    /// GC may remove images podvisor never pulled nor ran.
    pub image_gc_all_images: bool,
    /// Period of image GC (hidden; the kubelet's is a fixed 5 minutes).
    pub image_gc_period: Duration,
    /// Tests only (hidden): the image file system's usage read from this
    /// file (`USED_BYTES CAPACITY_BYTES`) instead of the engine's disk.
    pub image_gc_usage_file: Option<PathBuf>,
    /// Name of this node (a lowercase DNS-1123 subdomain).
    pub node_name: String,
    /// Address of the HTTP server.
    pub address: IpAddr,
    /// The node's address: the pods' `status.hostIP` and the downward
    /// API's `status.hostIP`.
    pub node_ip: IpAddr,
    /// Port of the secure API (not 0).
    pub port: u16,
    /// Port of the read-only API; 0 = off.
    pub read_only_port: u16,
    /// `--tls-cert-file`/`--tls-private-key-file`: both or neither.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// `--token-auth-file`.
    pub token_auth_file: Option<PathBuf>,
    /// `--write-kubeconfig`; `None`: `<root_dir>/kubeconfig`.
    pub write_kubeconfig: Option<PathBuf>,
    /// Format of log lines.
    pub log_format: LogFormat,
    /// Unknown or duplicate manifest fields: refuse or warn.
    pub manifest_validation: ManifestValidation,
    /// `--seccomp-default`: containers without a `seccompProfile` get the
    /// engine's default profile (`RuntimeDefault`), not `Unconfined`.
    pub seccomp_default: bool,
    /// `--cluster-dns`: the nameservers of `ClusterFirst` pods; empty: those
    /// pods get the node's resolver (with a warning event).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain`; `None`: no cluster search domains, no FQDN.
    pub cluster_domain: Option<String>,
    /// `--resolv-conf`; `None`: an empty base for `Default` pods.
    pub resolv_conf: Option<PathBuf>,
}

impl Settings {
    /// Nothing given yet: what [`resolve`](super::resolve) fills in key by key, from the
    /// default layer up. Empty, zero, `false` or the first variant everywhere; none of these
    /// is a default: a key with a built-in value always gets it from the default layer, and
    /// the others (no default, or none on this machine) are `None` or empty here, or must
    /// be given.
    pub(super) fn unset() -> Settings {
        Settings {
            pod_manifest_path: PathBuf::new(),
            docker_endpoint: String::new(),
            root_dir: PathBuf::new(),
            pod_infra_container_image: String::new(),
            registry_qps: 0.0,
            registry_burst: 0,
            serialize_image_pulls: false,
            max_parallel_image_pulls: None,
            docker_exec_handler: ExecHandler::Native,
            cpu_cfs_quota: false,
            network_plugin: None,
            network_plugin_dir: PathBuf::new(),
            system_reserved: Reserved::default(),
            kube_reserved: Reserved::default(),
            container_log_max_size: 0,
            container_log_max_files: 0,
            cni_conf_dir: PathBuf::new(),
            cni_bin_dir: PathBuf::new(),
            sync_frequency: Duration::ZERO,
            file_check_frequency: Duration::ZERO,
            max_manifest_size: 0,
            http_check_frequency: Duration::ZERO,
            manifest_url: None,
            manifest_url_header: Vec::new(),
            image_pull_progress_deadline: Duration::ZERO,
            image_credential_file: None,
            allow_privileged: false,
            allowed_host_paths: Vec::new(),
            node_labels: Vec::new(),
            minimum_container_ttl_duration: Duration::ZERO,
            maximum_dead_containers_per_container: 0,
            maximum_dead_containers: 0,
            image_gc_high_threshold: 0,
            image_gc_low_threshold: 0,
            minimum_image_ttl_duration: Duration::ZERO,
            image_gc_all_images: false,
            image_gc_period: Duration::ZERO,
            image_gc_usage_file: None,
            node_name: String::new(),
            address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            node_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port: 0,
            read_only_port: 0,
            tls_cert_file: None,
            tls_private_key_file: None,
            token_auth_file: None,
            write_kubeconfig: None,
            log_format: LogFormat::Plain,
            manifest_validation: ManifestValidation::Strict,
            seccomp_default: false,
            cluster_dns: Vec::new(),
            cluster_domain: None,
            resolv_conf: None,
        }
    }
}
