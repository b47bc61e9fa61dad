//! Settings of `podvisor run`: the kubelet's flag names, layered with the `config` crate.
//!
//! Precedence, lowest first: built-in defaults < TOML file (`--config`) < environment
//! `PODVISOR_<KEY>` < command-line flags. Every key is known by one name in snake_case
//! (`registry_qps`); the flag is its kebab-case form (`--registry-qps`), the file accepts both
//! forms and the environment variable is `PODVISOR_REGISTRY_QPS`.
//!
//! Every layer hands over strings (or TOML scalars, turned into strings), and [`KEYS`] holds
//! one parser per key, so that a bad value gets the same error whichever layer it came from,
//! naming the flag, the value, the reason and the layer ([`Origin`]).

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use config::{Config, FileFormat, Map, Source, Value, ValueKind};

/// Exit code of `podvisor` when its settings are invalid.
pub const EXIT_CODE: i32 = 2;

/// Runs the Pod manifests of a directory on Docker; the flags are the kubelet's.
///
/// The flags of `podvisor run`. Every value is kept as given (`None` = not given); [`resolve`]
/// parses and checks them. Boolean flags take `--flag`, `--flag=true` or `--flag=false`; a flag
/// given twice keeps its last value, except `--manifest-url-header`, whose values add up.
#[derive(clap::Args, Debug, Default, Clone)]
#[command(args_override_self = true)]
pub struct RunArgs {
    /// TOML file with settings; keys are the flag names in snake_case or kebab-case.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of Pod manifests (YAML or JSON) to run. Required.
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<String>,
    /// Docker engine endpoint, unix://, tcp:// or http:// [default: $DOCKER_HOST, else unix:///var/run/docker.sock]
    #[arg(long, value_name = "URL")]
    pub docker_endpoint: Option<String>,
    /// Directory for podvisor's own state [default: /var/lib/podvisor]
    #[arg(long, value_name = "DIR")]
    pub root_dir: Option<String>,
    /// Image of the container that holds each pod's namespaces [default: registry.k8s.io/pause:3.10]
    #[arg(long, value_name = "IMAGE")]
    pub pod_infra_container_image: Option<String>,
    /// Image pulls per second, 0 for no limit [default: 5]
    #[arg(long, value_name = "QPS")]
    pub registry_qps: Option<String>,
    /// Largest burst of image pulls, at least 1 [default: 10]
    #[arg(long, value_name = "N")]
    pub registry_burst: Option<String>,
    /// Pull one image at a time [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub serialize_image_pulls: Option<String>,
    /// Most image pulls at once; needs --serialize-image-pulls=false when above 1
    #[arg(long, value_name = "N")]
    pub max_parallel_image_pulls: Option<String>,
    /// How to exec into containers: native or nsenter [default: native]
    #[arg(long, value_name = "HANDLER")]
    pub docker_exec_handler: Option<String>,
    /// Enforce CPU limits with CFS quota [default: true]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cpu_cfs_quota: Option<String>,
    /// Network plugin to use; empty for none
    #[arg(long, value_name = "NAME")]
    pub network_plugin: Option<String>,
    /// Directory of network plugins [default: /usr/libexec/kubernetes/kubelet-plugins/net/exec/]
    #[arg(long, value_name = "DIR")]
    pub network_plugin_dir: Option<String>,
    /// Period between syncs of running pods with their manifests [default: 10s]
    #[arg(long, value_name = "DURATION")]
    pub sync_frequency: Option<String>,
    /// Period between checks of the manifest directory [default: 20s]
    #[arg(long, value_name = "DURATION")]
    pub file_check_frequency: Option<String>,
    /// Period between fetches of --manifest-url [default: 20s]
    #[arg(long, value_name = "DURATION")]
    pub http_check_frequency: Option<String>,
    /// http:// or https:// URL of more Pod manifests
    #[arg(long, value_name = "URL")]
    pub manifest_url: Option<String>,
    /// HTTP header for --manifest-url, as Name:Value; repeat it or separate pairs with commas
    #[arg(long, value_name = "NAME:VALUE")]
    pub manifest_url_header: Vec<String>,
    /// Cancel an image pull that makes no progress for this long [default: 1m]
    #[arg(long, value_name = "DURATION")]
    pub image_pull_progress_deadline: Option<String>,
    /// Docker config.json with registry credentials [default: $HOME/.docker/config.json if it exists]
    #[arg(long, value_name = "FILE")]
    pub image_credential_file: Option<String>,
    /// Allow privileged containers [default: false]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_privileged: Option<String>,
    /// Comma-separated absolute paths that hostPath volumes may use (and what is below them)
    #[arg(long, value_name = "PATHS")]
    pub allowed_host_paths: Option<String>,
    /// Least age of a dead container before it may be removed [default: 1m]
    #[arg(long, value_name = "DURATION")]
    pub minimum_container_ttl_duration: Option<String>,
    /// Dead containers kept per container, negative for no limit [default: 2]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub maximum_dead_containers_per_container: Option<String>,
    /// Dead containers kept in all, negative for no limit [default: 100]
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub maximum_dead_containers: Option<String>,
    /// Name of this node, a DNS-1123 subdomain [default: the hostname, lowercased]
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Address the HTTP server listens on [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    pub address: Option<String>,
    /// Port the HTTP server listens on [default: 10250]
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Log format: plain or json [default: plain]
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// How commands are run inside containers (`--docker-exec-handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecHandler {
    /// Docker's own exec API.
    Native,
    /// `nsenter` into the container's namespaces.
    Nsenter,
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
    /// Period between syncs (> 0).
    pub sync_frequency: Duration,
    /// Period between checks of the manifest directory (> 0).
    pub file_check_frequency: Duration,
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
    /// Least age of a dead container before it may be removed.
    pub minimum_container_ttl_duration: Duration,
    /// Dead containers kept per container; negative = no limit.
    pub maximum_dead_containers_per_container: i64,
    /// Dead containers kept in all; negative = no limit.
    pub maximum_dead_containers: i64,
    /// Name of this node (a lowercase DNS-1123 subdomain).
    pub node_name: String,
    /// Address of the HTTP server.
    pub address: IpAddr,
    /// Port of the HTTP server (not 0).
    pub port: u16,
    /// Format of log lines.
    pub log_format: LogFormat,
}

impl Settings {
    /// All built-in defaults, node name `test-node`, manifests in `manifest_dir`; no checks
    /// on the filesystem and no look at the environment.
    pub fn for_tests(manifest_dir: PathBuf) -> Settings {
        Settings {
            pod_manifest_path: manifest_dir,
            docker_endpoint: "unix:///var/run/docker.sock".into(),
            root_dir: "/var/lib/podvisor".into(),
            pod_infra_container_image: "registry.k8s.io/pause:3.10".into(),
            registry_qps: 5.0,
            registry_burst: 10,
            serialize_image_pulls: true,
            max_parallel_image_pulls: None,
            docker_exec_handler: ExecHandler::Native,
            cpu_cfs_quota: true,
            network_plugin: None,
            network_plugin_dir: "/usr/libexec/kubernetes/kubelet-plugins/net/exec/".into(),
            sync_frequency: Duration::from_secs(10),
            file_check_frequency: Duration::from_secs(20),
            http_check_frequency: Duration::from_secs(20),
            manifest_url: None,
            manifest_url_header: Vec::new(),
            image_pull_progress_deadline: Duration::from_secs(60),
            image_credential_file: None,
            allow_privileged: false,
            allowed_host_paths: Vec::new(),
            minimum_container_ttl_duration: Duration::from_secs(60),
            maximum_dead_containers_per_container: 2,
            maximum_dead_containers: 100,
            node_name: "test-node".into(),
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 10250,
            log_format: LogFormat::Plain,
        }
    }
}

/// The layer a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Built into podvisor (or the machine's hostname).
    Default,
    /// The TOML file given with `--config`.
    File(PathBuf),
    /// An environment variable, by name (`PODVISOR_…`, or `DOCKER_HOST` for the default endpoint).
    Env(String),
    /// The command line.
    Flag,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env(name) => write!(f, "environment {name}"),
            Origin::Flag => f.write_str("command line"),
        }
    }
}

impl Origin {
    /// The `origin` string stored in a `config::Value`, read back by [`Origin::from_tag`].
    fn tag(&self) -> String {
        match self {
            Origin::Default => "default".into(),
            Origin::File(path) => format!("file:{}", path.display()),
            Origin::Env(name) => format!("env:{name}"),
            Origin::Flag => "flag".into(),
        }
    }

    fn from_tag(tag: Option<&str>) -> Origin {
        match tag {
            Some("flag") => Origin::Flag,
            Some(t) if t.starts_with("file:") => Origin::File(t["file:".len()..].into()),
            Some(t) if t.starts_with("env:") => Origin::Env(t["env:".len()..].into()),
            _ => Origin::Default,
        }
    }
}

/// Why the settings could not be resolved. Print it and exit with [`EXIT_CODE`].
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A value that does not parse or is out of range.
    #[error("invalid value {value:?} for --{flag}: {reason} (from {origin})")]
    Invalid {
        /// The flag, kebab-case, without `--`.
        flag: String,
        /// The value as given (for lists: the bad item).
        value: String,
        /// What is wrong with it.
        reason: String,
        /// Where it came from.
        origin: Origin,
    },
    /// A setting that has no default and was given nowhere.
    #[error("--{flag} is required (give the flag, PODVISOR_{env} or {key} in the --config file)", env = .flag.replace('-', "_").to_uppercase(), key = .flag.replace('-', "_"))]
    Missing {
        /// The flag, kebab-case, without `--`.
        flag: String,
    },
    /// `--max-parallel-image-pulls` above 1 while image pulls are serialized.
    #[error("--max-parallel-image-pulls={n} requires --serialize-image-pulls=false (max-parallel-image-pulls from {origin}, serialize-image-pulls from {serialize_origin})")]
    ParallelPullsSerialized {
        /// The value of `--max-parallel-image-pulls`.
        n: u32,
        /// Where it came from.
        origin: Origin,
        /// Where `serialize-image-pulls=true` came from.
        serialize_origin: Origin,
    },
    /// A key in the config file that is no setting.
    #[error("unknown key {key:?} in config file {}", .path.display())]
    UnknownKey {
        /// The key as written in the file.
        key: String,
        /// The file.
        path: PathBuf,
    },
    /// The config file cannot be read or is not valid TOML.
    #[error("config file {}: {reason}", .path.display())]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

/// Resolves the settings from the built-in defaults, the `--config` file, the `PODVISOR_*`
/// variables of `env` and the flags, in this order of precedence (flags win).
///
/// `env` stands for the process environment: besides `PODVISOR_<KEY>`, `DOCKER_HOST` gives the
/// default `--docker-endpoint` and `HOME` the default `--image-credential-file`. Other
/// `PODVISOR_*` variables are ignored.
pub fn resolve(args: &RunArgs, env: &HashMap<String, String>) -> Result<Settings, SettingsError> {
    let mut builder = Config::builder().add_source(default_layer(env));
    if let Some(path) = &args.config {
        builder = builder.add_source(file_layer(path)?);
    }
    let env_layer = KEYS.iter().filter_map(|key| {
        let name = format!("PODVISOR_{}", key.name.to_uppercase());
        let value = env.get(&name)?.clone();
        Some((key.name, Origin::Env(name), ValueKind::String(value)))
    });
    let flag_layer = KEYS.iter().filter_map(|key| {
        let mut values = (key.flag)(args)?;
        let kind = match key.list {
            true => ValueKind::Array(values.into_iter().map(Value::from).collect()),
            false => ValueKind::String(values.pop().unwrap_or_default()),
        };
        Some((key.name, Origin::Flag, kind))
    });
    // Merging only fails on a source's error, and `Layer`s have none.
    let merged = builder
        .add_source(Layer::new(env_layer))
        .add_source(Layer::new(flag_layer))
        .build()
        .and_then(|config| config.collect())
        .map_err(|e| SettingsError::ConfigFile {
            path: args.config.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;

    let mut settings = Settings::for_tests(PathBuf::new());
    let mut origins = HashMap::new();
    for key in KEYS {
        match merged.get(key.name) {
            Some(value) => {
                origins.insert(key.name, Origin::from_tag(value.origin()));
                key.apply(&mut settings, value.clone())?;
            }
            None if key.name == "pod_manifest_path" || key.name == "node_name" => {
                return Err(SettingsError::Missing {
                    flag: key.flag_name(),
                });
            }
            None => {}
        }
    }
    if let (true, Some(n @ 2..)) = (
        settings.serialize_image_pulls,
        settings.max_parallel_image_pulls,
    ) {
        return Err(SettingsError::ParallelPullsSerialized {
            n,
            origin: origins
                .remove("max_parallel_image_pulls")
                .unwrap_or(Origin::Default),
            serialize_origin: origins
                .remove("serialize_image_pulls")
                .unwrap_or(Origin::Default),
        });
    }
    Ok(settings)
}

/// Built-in defaults, and those taken from the machine: `DOCKER_HOST`, the hostname and
/// `$HOME/.docker/config.json`.
fn default_layer(env: &HashMap<String, String>) -> Layer {
    let mut values: Vec<(&str, Origin, String)> = [
        ("docker_endpoint", "unix:///var/run/docker.sock"),
        ("root_dir", "/var/lib/podvisor"),
        ("pod_infra_container_image", "registry.k8s.io/pause:3.10"),
        ("registry_qps", "5"),
        ("registry_burst", "10"),
        ("serialize_image_pulls", "true"),
        ("docker_exec_handler", "native"),
        ("cpu_cfs_quota", "true"),
        (
            "network_plugin_dir",
            "/usr/libexec/kubernetes/kubelet-plugins/net/exec/",
        ),
        ("sync_frequency", "10s"),
        ("file_check_frequency", "20s"),
        ("http_check_frequency", "20s"),
        ("image_pull_progress_deadline", "1m"),
        ("allow_privileged", "false"),
        ("minimum_container_ttl_duration", "1m"),
        ("maximum_dead_containers_per_container", "2"),
        ("maximum_dead_containers", "100"),
        ("address", "127.0.0.1"),
        ("port", "10250"),
        ("log_format", "plain"),
    ]
    .into_iter()
    .map(|(key, value)| (key, Origin::Default, value.to_string()))
    .collect();
    if let Some(host) = env.get("DOCKER_HOST").filter(|h| !h.is_empty()) {
        values.push((
            "docker_endpoint",
            Origin::Env("DOCKER_HOST".into()),
            host.clone(),
        ));
    }
    if let Some(host) = hostname::get().ok().and_then(|h| h.into_string().ok()) {
        values.push(("node_name", Origin::Default, host));
    }
    if let Some(home) = env.get("HOME").filter(|h| !h.is_empty()) {
        let file = Path::new(home).join(".docker/config.json");
        if file.is_file() {
            values.push((
                "image_credential_file",
                Origin::Default,
                file.display().to_string(),
            ));
        }
    }
    Layer::new(
        values
            .into_iter()
            .map(|(key, origin, value)| (key, origin, ValueKind::String(value))),
    )
}

/// The `--config` file: TOML parsed by the `config` crate, keys normalized to snake_case.
fn file_layer(path: &Path) -> Result<Layer, SettingsError> {
    let file_error = |reason: String| SettingsError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let table = Config::builder()
        .add_source(config::File::from_str(&text, FileFormat::Toml))
        .build()
        .and_then(|config| config.collect())
        .map_err(|e| file_error(e.to_string()))?;
    let mut entries: Vec<(String, Value)> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let origin = Origin::File(path.to_path_buf());
    let mut seen: HashMap<&str, String> = HashMap::new();
    let mut values = Vec::new();
    for (written, value) in entries {
        let normalized = written.replace('-', "_");
        let Some(key) = KEYS.iter().find(|key| key.name == normalized) else {
            return Err(SettingsError::UnknownKey {
                key: written,
                path: path.to_path_buf(),
            });
        };
        if let Some(first) = seen.insert(key.name, written.clone()) {
            return Err(file_error(format!(
                "{first:?} and {written:?} are the same key"
            )));
        }
        values.push((key.name, origin.clone(), value.kind));
    }
    Ok(Layer::new(values))
}

/// One layer of values for the `config` crate, each value tagged with its [`Origin`].
#[derive(Debug, Clone)]
struct Layer(Map<String, Value>);

impl Layer {
    fn new<'a>(values: impl IntoIterator<Item = (&'a str, Origin, ValueKind)>) -> Layer {
        Layer(
            values
                .into_iter()
                .map(|(key, origin, kind)| (key.to_string(), Value::new(Some(&origin.tag()), kind)))
                .collect(),
        )
    }
}

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.0.clone())
    }
}

/// A setting: its name, its flag and how to parse and store a value.
struct Key {
    /// snake_case name: file key, field of [`Settings`], `PODVISOR_` + uppercase.
    name: &'static str,
    /// Whether the value is a list (comma-separated, repeated flag or TOML array).
    list: bool,
    /// The flag's value(s), if given.
    flag: fn(&RunArgs) -> Option<Vec<String>>,
    /// Parses one value (one item for lists) and stores it.
    set: fn(&mut Settings, &str) -> Result<(), String>,
}

impl Key {
    fn flag_name(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Parses a merged value and stores it in `settings`.
    fn apply(&self, settings: &mut Settings, value: Value) -> Result<(), SettingsError> {
        let origin = Origin::from_tag(value.origin());
        let invalid = |value: String, reason: String| SettingsError::Invalid {
            flag: self.flag_name(),
            value,
            reason,
            origin: origin.clone(),
        };
        let shown = show(&value);
        // Scalars of any type (TOML numbers, booleans, ...) become strings.
        let text = |v: Value| match v.kind {
            ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => {
                Err(invalid(shown.clone(), "expected a single value".into()))
            }
            _ => v
                .into_string()
                .map_err(|e| invalid(shown.clone(), e.to_string())),
        };
        if !self.list {
            let one = text(value)?;
            return (self.set)(settings, &one).map_err(|reason| invalid(one, reason));
        }
        let values = match value.kind {
            ValueKind::Array(values) => values,
            kind => vec![Value::new(None, kind)],
        };
        for value in values {
            let value = text(value)?;
            for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                (self.set)(settings, item).map_err(|reason| invalid(item.into(), reason))?;
            }
        }
        Ok(())
    }
}

/// A value as written, for error messages: lists as `[a, b]`.
fn show(value: &Value) -> String {
    match &value.kind {
        ValueKind::Array(items) => format!(
            "[{}]",
            items.iter().map(show).collect::<Vec<_>>().join(", ")
        ),
        ValueKind::Table(_) => "{table}".into(),
        kind => kind.to_string(),
    }
}

/// Anything a flag field can hold: `None` or an empty `Vec` means not given.
trait FlagValue {
    fn raw(&self) -> Option<Vec<String>>;
}

impl FlagValue for Option<String> {
    fn raw(&self) -> Option<Vec<String>> {
        self.clone().map(|v| vec![v])
    }
}

impl FlagValue for Vec<String> {
    fn raw(&self) -> Option<Vec<String>> {
        (!self.is_empty()).then(|| self.clone())
    }
}

/// A [`Key`] row: `key!(field, parser)` stores `parser(value)?` in `Settings::field`;
/// `key!(field, optional parser)` stores `None` for an empty value, else `Some(parser(value)?)`;
/// `key!(field, list parser)` pushes `parser(item)?` for every item.
macro_rules! key {
    ($field:ident, optional $parse:expr) => {
        key!($field, |v: &str| optional(v, $parse))
    };
    ($field:ident, list $parse:expr) => {
        Key {
            name: stringify!($field),
            list: true,
            flag: |args| args.$field.raw(),
            set: |settings, item| Ok(settings.$field.push($parse(item)?)),
        }
    };
    ($field:ident, $parse:expr) => {
        Key {
            name: stringify!($field),
            list: false,
            flag: |args| args.$field.raw(),
            set: |settings, value| Ok(settings.$field = $parse(value)?),
        }
    };
}

/// Every setting, in the order they are checked.
const KEYS: &[Key] = &[
    key!(pod_manifest_path, manifest_dir),
    key!(docker_endpoint, docker_endpoint),
    key!(root_dir, path),
    key!(pod_infra_container_image, non_empty),
    key!(registry_qps, qps),
    key!(registry_burst, at_least_one),
    key!(serialize_image_pulls, boolean),
    key!(max_parallel_image_pulls, optional at_least_one),
    key!(docker_exec_handler, exec_handler),
    key!(cpu_cfs_quota, boolean),
    key!(network_plugin, optional non_empty),
    key!(network_plugin_dir, path),
    key!(sync_frequency, positive_duration),
    key!(file_check_frequency, positive_duration),
    key!(http_check_frequency, positive_duration),
    key!(manifest_url, optional http_url),
    key!(manifest_url_header, list header),
    key!(image_pull_progress_deadline, positive_duration),
    key!(image_credential_file, optional existing_file),
    key!(allow_privileged, boolean),
    key!(allowed_host_paths, list absolute_path),
    key!(minimum_container_ttl_duration, parse_duration),
    key!(maximum_dead_containers_per_container, integer),
    key!(maximum_dead_containers, integer),
    key!(node_name, node_name),
    key!(address, ip_address),
    key!(port, port),
    key!(log_format, log_format),
];

// Parsers: each takes the value as given and returns the typed value or the reason it is bad.

type Parsed<T> = Result<T, String>;

fn non_empty(v: &str) -> Parsed<String> {
    if v.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(v.to_string())
}

fn path(v: &str) -> Parsed<PathBuf> {
    non_empty(v).map(PathBuf::from)
}

/// An empty value is `None`, anything else goes through `parse`.
fn optional<T>(v: &str, parse: fn(&str) -> Parsed<T>) -> Parsed<Option<T>> {
    if v.is_empty() {
        return Ok(None);
    }
    parse(v).map(Some)
}

fn manifest_dir(v: &str) -> Parsed<PathBuf> {
    let dir = path(v)?;
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => Ok(dir),
        Ok(_) => Err("not a directory".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such directory".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn ip_address(v: &str) -> Parsed<IpAddr> {
    v.parse()
        .map_err(|_| "must be an IPv4 or IPv6 address".into())
}

fn existing_file(v: &str) -> Parsed<PathBuf> {
    let file = PathBuf::from(v);
    if !file.is_file() {
        return Err("no such file".into());
    }
    Ok(file)
}

fn absolute_path(v: &str) -> Parsed<PathBuf> {
    let p = PathBuf::from(v);
    if !p.is_absolute() {
        return Err("must be an absolute path".into());
    }
    Ok(p)
}

fn docker_endpoint(v: &str) -> Parsed<String> {
    let rest = ["unix://", "tcp://", "http://"]
        .iter()
        .find_map(|scheme| v.strip_prefix(scheme));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(v.to_string()),
        _ => Err("must be unix://PATH, tcp://HOST:PORT or http://HOST:PORT".into()),
    }
}

fn http_url(v: &str) -> Parsed<String> {
    let rest = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"));
    match rest {
        Some(rest) if !rest.is_empty() => Ok(v.to_string()),
        _ => Err("must be an http:// or https:// URL".into()),
    }
}

fn qps(v: &str) -> Parsed<f64> {
    match v.parse::<f64>() {
        Ok(q) if q.is_finite() && q >= 0.0 => Ok(q),
        _ => Err("must be a number >= 0".into()),
    }
}

fn at_least_one(v: &str) -> Parsed<u32> {
    match v.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("must be an integer >= 1".into()),
    }
}

fn integer(v: &str) -> Parsed<i64> {
    v.parse().map_err(|_| "must be an integer".into())
}

fn port(v: &str) -> Parsed<u16> {
    match v.parse::<u16>() {
        Ok(p) if p != 0 => Ok(p),
        _ => Err("must be a port number from 1 to 65535".into()),
    }
}

/// Booleans as Go's `strconv.ParseBool` (the kubelet's) reads them.
fn boolean(v: &str) -> Parsed<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err("must be true or false".into()),
    }
}

fn exec_handler(v: &str) -> Parsed<ExecHandler> {
    match v {
        "native" => Ok(ExecHandler::Native),
        "nsenter" => Ok(ExecHandler::Nsenter),
        _ => Err("must be native or nsenter".into()),
    }
}

fn log_format(v: &str) -> Parsed<LogFormat> {
    match v {
        "plain" => Ok(LogFormat::Plain),
        "json" => Ok(LogFormat::Json),
        _ => Err("must be plain or json".into()),
    }
}

/// `Name:Value`; both sides are trimmed, the name must be an HTTP token.
fn header(v: &str) -> Parsed<(String, String)> {
    let Some((name, value)) = v.split_once(':') else {
        return Err("must be Name:Value".into());
    };
    let (name, value) = (name.trim(), value.trim());
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err("must be Name:Value with a valid header name".into());
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("header value must not hold control characters".into());
    }
    Ok((name.to_string(), value.to_string()))
}

/// Lowercased, then checked as a DNS-1123 subdomain, as the kubelet does with hostnames.
fn node_name(v: &str) -> Parsed<String> {
    let name = v.trim().to_lowercase();
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(
            "must be a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', \
                    starting and ending with a letter or digit, at most 253 characters"
                .into(),
        );
    }
    Ok(name)
}

fn positive_duration(v: &str) -> Parsed<Duration> {
    match parse_duration(v)? {
        Duration::ZERO => Err("must be greater than 0".into()),
        d => Ok(d),
    }
}

/// Parses a duration as Go's `time.ParseDuration` does, negative ones excepted: a sequence of
/// decimal numbers, each with a unit among `ns`, `us`/`µs`, `ms`, `s`, `m`, `h` (`1m30s`,
/// `1.5h`, `500ms`). A number without a unit is refused, except `0`.
pub fn parse_duration(v: &str) -> Result<Duration, String> {
    const BAD: &str = "must be a duration such as 500ms, 10s, 1m30s or 2h";
    if v == "0" {
        return Ok(Duration::ZERO);
    }
    if v.starts_with('-') {
        return Err("must not be negative".into());
    }
    let mut rest = v.strip_prefix('+').unwrap_or(v);
    if rest.is_empty() {
        return Err(BAD.into());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let int_len = digits(rest);
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(after) => after.split_at(digits(after)),
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(BAD.into());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let nanos: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(BAD.into()),
        };
        let int: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| BAD.to_string())?
        };
        let frac = &frac[..frac.len().min(18)];
        let frac_value: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| BAD.to_string())?
        };
        let scaled = frac_value * nanos / 10u128.pow(frac.len() as u32);
        total = int
            .checked_mul(nanos)
            .and_then(|n| n.checked_add(scaled))
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= u128::from(u64::MAX))
            .ok_or_else(|| "duration too large".to_string())?;
        rest = after;
    }
    // `total` is at most u64::MAX by the filter above.
    Ok(Duration::from_nanos(
        u64::try_from(total).unwrap_or(u64::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tempfile::TempDir;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    /// A manifest directory, a HOME without docker config, and helpers to resolve.
    struct Fixture {
        dir: TempDir,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: TempDir::new().expect("tempdir"),
            }
        }

        fn manifests(&self) -> PathBuf {
            let path = self.dir.path().join("manifests");
            std::fs::create_dir_all(&path).expect("mkdir");
            path
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, text).expect("write");
            path
        }

        fn env(&self, vars: &[(&str, &str)]) -> HashMap<String, String> {
            let mut env: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            env.entry("HOME".into())
                .or_insert_with(|| self.dir.path().display().to_string());
            env
        }

        /// Resolves `flags` after `--pod-manifest-path=<tempdir> --node-name=n1` (a flag given
        /// twice: the last wins).
        fn resolve(
            &self,
            flags: &[&str],
            vars: &[(&str, &str)],
        ) -> Result<Settings, SettingsError> {
            let mut argv = vec![
                "podvisor".to_string(),
                format!("--pod-manifest-path={}", self.manifests().display()),
                "--node-name=n1".to_string(),
            ];
            argv.extend(flags.iter().map(|f| f.to_string()));
            let args = Cli::try_parse_from(argv).expect("flags parse").run;
            resolve(&args, &self.env(vars))
        }
    }

    fn err(result: Result<Settings, SettingsError>) -> String {
        result.expect_err("should be refused").to_string()
    }

    #[test]
    fn defaults() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        let mut expected = Settings::for_tests(f.manifests());
        expected.node_name = "n1".into();
        assert_eq!(s, expected);
    }

    #[test]
    fn default_node_name_is_lowercased_hostname() {
        let f = Fixture::new();
        let args = RunArgs {
            pod_manifest_path: Some(f.manifests().display().to_string()),
            ..Default::default()
        };
        let host = hostname::get()
            .expect("hostname")
            .into_string()
            .expect("utf-8");
        let s = resolve(&args, &f.env(&[])).expect("resolves");
        assert_eq!(s.node_name, host.to_lowercase());
    }

    #[test]
    fn docker_host_gives_default_endpoint() {
        let f = Fixture::new();
        let s = f
            .resolve(&[], &[("DOCKER_HOST", "tcp://10.0.0.1:2375")])
            .expect("resolves");
        assert_eq!(s.docker_endpoint, "tcp://10.0.0.1:2375");
        let s = f
            .resolve(
                &["--docker-endpoint=unix:///x.sock"],
                &[("DOCKER_HOST", "tcp://h:1")],
            )
            .expect("resolves");
        assert_eq!(s.docker_endpoint, "unix:///x.sock");
        let e = err(f.resolve(&[], &[("DOCKER_HOST", "ssh://h")]));
        assert!(
            e.contains("--docker-endpoint")
                && e.contains("\"ssh://h\"")
                && e.contains("environment DOCKER_HOST"),
            "{e}"
        );
    }

    #[test]
    fn credential_file_defaults_to_home_docker_config() {
        let f = Fixture::new();
        assert_eq!(
            f.resolve(&[], &[]).expect("resolves").image_credential_file,
            None
        );
        std::fs::create_dir_all(f.dir.path().join(".docker")).expect("mkdir");
        let file = f.file(".docker/config.json", "{}");
        assert_eq!(
            f.resolve(&[], &[]).expect("resolves").image_credential_file,
            Some(file)
        );
        let s = f
            .resolve(&["--image-credential-file="], &[])
            .expect("resolves");
        assert_eq!(
            s.image_credential_file, None,
            "an empty flag turns the default off"
        );
        let e = err(f.resolve(&["--image-credential-file=/nope.json"], &[]));
        assert!(
            e.contains("--image-credential-file") && e.contains("/nope.json"),
            "{e}"
        );
    }

    #[test]
    fn precedence_file_env_flag() {
        let f = Fixture::new();
        let cfg = f.file(
            "p.toml",
            "registry_qps = 0.5\nregistry_burst = 3\nroot_dir = \"/from/file\"\n",
        );
        let config = format!("--config={}", cfg.display());
        let s = f.resolve(&[&config], &[]).expect("resolves");
        assert_eq!(
            (s.registry_qps, s.registry_burst, s.root_dir.clone()),
            (0.5, 3, "/from/file".into())
        );
        let env = [
            ("PODVISOR_REGISTRY_QPS", "2"),
            ("PODVISOR_REGISTRY_BURST", "4"),
        ];
        let s = f.resolve(&[&config], &env).expect("resolves");
        assert_eq!(
            (s.registry_qps, s.registry_burst, s.root_dir.clone()),
            (2.0, 4, "/from/file".into())
        );
        let s = f
            .resolve(&[&config, "--registry-qps=7"], &env)
            .expect("resolves");
        assert_eq!(
            (s.registry_qps, s.registry_burst, s.root_dir),
            (7.0, 4, "/from/file".into())
        );
    }

    #[test]
    fn env_overrides_default_and_flag_overrides_env() {
        let f = Fixture::new();
        let s = f
            .resolve(&[], &[("PODVISOR_LOG_FORMAT", "json")])
            .expect("resolves");
        assert_eq!(s.log_format, LogFormat::Json);
        let s = f
            .resolve(&["--log-format=plain"], &[("PODVISOR_LOG_FORMAT", "json")])
            .expect("resolves");
        assert_eq!(s.log_format, LogFormat::Plain);
    }

    #[test]
    fn manifest_path_from_env_or_file() {
        let f = Fixture::new();
        let dir = f.manifests().display().to_string();
        let args = RunArgs {
            node_name: Some("n1".into()),
            ..Default::default()
        };
        let env = f.env(&[("PODVISOR_POD_MANIFEST_PATH", &dir)]);
        assert_eq!(
            resolve(&args, &env).expect("resolves").pod_manifest_path,
            f.manifests()
        );
        let cfg = f.file("m.toml", &format!("pod_manifest_path = {dir:?}\n"));
        let args = RunArgs {
            config: Some(cfg),
            ..args
        };
        assert_eq!(
            resolve(&args, &f.env(&[]))
                .expect("resolves")
                .pod_manifest_path,
            f.manifests()
        );
    }

    #[test]
    fn missing_manifest_path_is_required() {
        let f = Fixture::new();
        let args = RunArgs {
            node_name: Some("n1".into()),
            ..Default::default()
        };
        let e = resolve(&args, &f.env(&[]))
            .expect_err("required")
            .to_string();
        assert!(e.contains("--pod-manifest-path is required"), "{e}");
    }

    #[test]
    fn missing_or_file_manifest_dir_refused() {
        let f = Fixture::new();
        let missing = f.dir.path().join("nope");
        let e = err(f.resolve(
            &[&format!("--pod-manifest-path={}", missing.display())],
            &[],
        ));
        assert!(
            e.contains("--pod-manifest-path") && e.contains(&missing.display().to_string()),
            "{e}"
        );
        assert!(e.contains("no such directory"), "{e}");
        let file = f.file("plain", "");
        let e = err(f.resolve(&[&format!("--pod-manifest-path={}", file.display())], &[]));
        assert!(
            e.contains("not a directory") && e.contains(&file.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn bool_flag_forms() {
        let f = Fixture::new();
        let s = f.resolve(
            &[
                "--serialize-image-pulls=false",
                "--allow-privileged",
                "--cpu-cfs-quota=false",
            ],
            &[],
        );
        let s = s.expect("resolves");
        assert!(!s.serialize_image_pulls && s.allow_privileged && !s.cpu_cfs_quota);
        let s = f
            .resolve(&["--allow-privileged=true", "--serialize-image-pulls"], &[])
            .expect("resolves");
        assert!(s.allow_privileged && s.serialize_image_pulls);
        let e = err(f.resolve(&["--allow-privileged=yes"], &[]));
        assert!(
            e.contains("--allow-privileged") && e.contains("\"yes\""),
            "{e}"
        );
    }

    #[test]
    fn bool_flag_does_not_take_next_word() {
        let r = Cli::try_parse_from(["podvisor", "--allow-privileged", "false"]);
        assert!(r.is_err(), "`false` is no value of a bare boolean flag");
    }

    #[test]
    fn last_flag_wins_but_headers_add_up() {
        let argv = [
            "podvisor",
            "--port=1",
            "--port=2",
            "--allow-privileged",
            "--allow-privileged=false",
        ];
        let args = Cli::try_parse_from(argv).expect("parses").run;
        assert_eq!(
            (args.port.as_deref(), args.allow_privileged.as_deref()),
            (Some("2"), Some("false"))
        );
        let argv = [
            "podvisor",
            "--manifest-url-header=a:1",
            "--manifest-url-header=b:2",
        ];
        assert_eq!(
            Cli::try_parse_from(argv)
                .expect("parses")
                .run
                .manifest_url_header,
            ["a:1", "b:2"]
        );
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("1m", 60_000),
            ("1m30s", 90_000),
            ("2h", 7_200_000),
            ("1.5s", 1_500),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, millis) in ok {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(millis)),
                "{text}"
            );
        }
        for bad in ["10", "ten", "-1s", "", "1x", "s", "1m30", "1d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn duration_flags() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &[
                    "--sync-frequency=1m30s",
                    "--minimum-container-ttl-duration=0s",
                ],
                &[],
            )
            .expect("resolves");
        assert_eq!(s.sync_frequency, Duration::from_secs(90));
        assert_eq!(s.minimum_container_ttl_duration, Duration::ZERO);
        let e = err(f.resolve(&["--file-check-frequency=10"], &[]));
        assert!(
            e.starts_with("invalid value \"10\" for --file-check-frequency:"),
            "{e}"
        );
        let e = err(f.resolve(&["--sync-frequency=0s"], &[]));
        assert!(e.contains("must be greater than 0"), "{e}");
        let e = err(f.resolve(&[], &[("PODVISOR_HTTP_CHECK_FREQUENCY", "-1s")]));
        assert!(
            e.contains("negative") && e.contains("PODVISOR_HTTP_CHECK_FREQUENCY"),
            "{e}"
        );
    }

    #[test]
    fn negative_qps_names_flag_value_and_env() {
        let f = Fixture::new();
        let e = err(f.resolve(&[], &[("PODVISOR_REGISTRY_QPS", "-1")]));
        assert_eq!(
            e,
            "invalid value \"-1\" for --registry-qps: must be a number >= 0 (from environment PODVISOR_REGISTRY_QPS)"
        );
        let e = err(f.resolve(&["--registry-qps=-1"], &[]));
        assert!(e.ends_with("(from command line)"), "{e}");
        for bad in ["NaN", "inf", "fast"] {
            assert!(
                f.resolve(&[&format!("--registry-qps={bad}")], &[]).is_err(),
                "{bad}"
            );
        }
        let s = f.resolve(&["--registry-qps=0"], &[]).expect("0 = no limit");
        assert_eq!(s.registry_qps, 0.0);
    }

    #[test]
    fn burst_must_be_positive() {
        let f = Fixture::new();
        let e = err(f.resolve(&["--registry-burst=0"], &[]));
        assert!(e.contains("--registry-burst") && e.contains("\"0\""), "{e}");
    }

    #[test]
    fn exec_handler_values() {
        let f = Fixture::new();
        let s = f
            .resolve(&["--docker-exec-handler=nsenter"], &[])
            .expect("resolves");
        assert_eq!(s.docker_exec_handler, ExecHandler::Nsenter);
        let e = err(f.resolve(&["--docker-exec-handler=ssh"], &[]));
        assert!(
            e.contains("--docker-exec-handler")
                && e.contains("\"ssh\"")
                && e.contains("native or nsenter"),
            "{e}"
        );
    }

    #[test]
    fn max_parallel_pulls_needs_unserialized() {
        let f = Fixture::new();
        let e = err(f.resolve(&["--max-parallel-image-pulls=3"], &[]));
        assert!(
            e.starts_with("--max-parallel-image-pulls=3 requires --serialize-image-pulls=false"),
            "{e}"
        );
        let s = f
            .resolve(
                &[
                    "--max-parallel-image-pulls=3",
                    "--serialize-image-pulls=false",
                ],
                &[],
            )
            .expect("ok");
        assert_eq!(s.max_parallel_image_pulls, Some(3));
        let s = f
            .resolve(&["--max-parallel-image-pulls=1"], &[])
            .expect("1 is what serialized means");
        assert_eq!(s.max_parallel_image_pulls, Some(1));
        let e = err(f.resolve(
            &[
                "--max-parallel-image-pulls=0",
                "--serialize-image-pulls=false",
            ],
            &[],
        ));
        assert!(
            e.contains("--max-parallel-image-pulls") && e.contains(">= 1"),
            "{e}"
        );
    }

    #[test]
    fn file_accepts_kebab_case_and_toml_types() {
        let f = Fixture::new();
        let cfg = f.file(
            "k.toml",
            "registry-qps = 1\nserialize-image-pulls = false\nmax_parallel_image_pulls = 4\n\
             allowed-host-paths = [\"/var/log\", \"/data\"]\nsync-frequency = \"1m\"\n",
        );
        let s = f
            .resolve(&[&format!("--config={}", cfg.display())], &[])
            .expect("resolves");
        assert_eq!(s.registry_qps, 1.0);
        assert!(!s.serialize_image_pulls);
        assert_eq!(s.max_parallel_image_pulls, Some(4));
        assert_eq!(
            s.allowed_host_paths,
            vec![PathBuf::from("/var/log"), PathBuf::from("/data")]
        );
        assert_eq!(s.sync_frequency, Duration::from_secs(60));
    }

    #[test]
    fn file_bad_value_names_file() {
        let f = Fixture::new();
        let cfg = f.file("b.toml", "sync_frequency = 10\n");
        let e = err(f.resolve(&[&format!("--config={}", cfg.display())], &[]));
        assert!(
            e.contains("--sync-frequency") && e.contains("\"10\""),
            "{e}"
        );
        assert!(e.contains(&format!("config file {}", cfg.display())), "{e}");
        let cfg = f.file("l.toml", "port = [1, 2]\n");
        let e = err(f.resolve(&[&format!("--config={}", cfg.display())], &[]));
        assert!(
            e.starts_with("invalid value \"[1, 2]\" for --port: expected a single value"),
            "{e}"
        );
    }

    #[test]
    fn unknown_key_in_file_refused() {
        let f = Fixture::new();
        let cfg = f.file("u.toml", "registry_qps = 1\nregistry_qsp = 2\n");
        let e = err(f.resolve(&[&format!("--config={}", cfg.display())], &[]));
        assert_eq!(
            e,
            format!(
                "unknown key \"registry_qsp\" in config file {}",
                cfg.display()
            )
        );
        let cfg = f.file("t.toml", "[docker]\nendpoint = \"unix:///x\"\n");
        assert!(
            err(f.resolve(&[&format!("--config={}", cfg.display())], &[])).contains("\"docker\"")
        );
    }

    #[test]
    fn same_key_twice_in_file_refused() {
        let f = Fixture::new();
        let cfg = f.file("d.toml", "registry_qps = 1\nregistry-qps = 2\n");
        let e = err(f.resolve(&[&format!("--config={}", cfg.display())], &[]));
        assert!(
            e.contains("same key") && e.contains(&cfg.display().to_string()),
            "{e}"
        );
    }

    #[test]
    fn broken_or_missing_file_names_file() {
        let f = Fixture::new();
        let cfg = f.file("x.toml", "registry_qps = = 1\n");
        let e = err(f.resolve(&[&format!("--config={}", cfg.display())], &[]));
        assert!(
            e.starts_with(&format!("config file {}:", cfg.display())),
            "{e}"
        );
        let missing = f.dir.path().join("missing.toml");
        let e = err(f.resolve(&[&format!("--config={}", missing.display())], &[]));
        assert!(
            e.starts_with(&format!("config file {}:", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn unknown_env_vars_ignored() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[("PODVISOR_STATE", "/tmp/x"), ("PODVISOR_NOPE", "1")]);
        assert!(s.is_ok());
    }

    #[test]
    fn headers_repeated_or_comma_separated() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &[
                    "--manifest-url-header=A:1",
                    "--manifest-url-header=B: two,C:x:y",
                ],
                &[],
            )
            .expect("resolves");
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            s.manifest_url_header,
            pairs(&[("A", "1"), ("B", "two"), ("C", "x:y")])
        );
        let s = f
            .resolve(&[], &[("PODVISOR_MANIFEST_URL_HEADER", "X-Token:abc")])
            .expect("resolves");
        assert_eq!(s.manifest_url_header, pairs(&[("X-Token", "abc")]));
        let e = err(f.resolve(&["--manifest-url-header=novalue"], &[]));
        assert!(
            e.contains("--manifest-url-header") && e.contains("\"novalue\""),
            "{e}"
        );
        assert!(f
            .resolve(&["--manifest-url-header=Bad Name:1"], &[])
            .is_err());
    }

    #[test]
    fn flag_list_replaces_lower_layers() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &["--allowed-host-paths=/a, /b,"],
                &[("PODVISOR_ALLOWED_HOST_PATHS", "/c")],
            )
            .expect("resolves");
        assert_eq!(
            s.allowed_host_paths,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        let e = err(f.resolve(&["--allowed-host-paths=/a,relative"], &[]));
        assert!(e.contains("\"relative\"") && e.contains("absolute"), "{e}");
    }

    #[test]
    fn optional_strings() {
        let f = Fixture::new();
        let s = f
            .resolve(&["--network-plugin=", "--manifest-url="], &[])
            .expect("resolves");
        assert_eq!((s.network_plugin, s.manifest_url), (None, None));
        let s = f
            .resolve(
                &["--network-plugin=cni", "--manifest-url=https://x/pods"],
                &[],
            )
            .expect("resolves");
        assert_eq!(s.network_plugin.as_deref(), Some("cni"));
        assert_eq!(s.manifest_url.as_deref(), Some("https://x/pods"));
        let e = err(f.resolve(&["--manifest-url=ftp://x"], &[]));
        assert!(
            e.contains("--manifest-url") && e.contains("\"ftp://x\""),
            "{e}"
        );
    }

    #[test]
    fn node_name_rules() {
        let f = Fixture::new();
        assert_eq!(
            f.resolve(&["--node-name=Node-1.Example"], &[])
                .expect("ok")
                .node_name,
            "node-1.example"
        );
        for bad in ["my_host", "-a", "a..b", "a-"] {
            let e = err(f.resolve(&[&format!("--node-name={bad}")], &[]));
            assert!(e.contains("--node-name") && e.contains("DNS-1123"), "{e}");
        }
    }

    #[test]
    fn address_port_endpoint() {
        let f = Fixture::new();
        let s = f
            .resolve(&["--address=::1", "--port=8080"], &[])
            .expect("resolves");
        assert_eq!((s.address, s.port), ("::1".parse().expect("ip"), 8080));
        assert!(err(f.resolve(&["--port=0"], &[])).contains("--port"));
        assert!(err(f.resolve(&["--port=70000"], &[])).contains("\"70000\""));
        assert!(err(f.resolve(&["--address=localhost"], &[])).contains("--address"));
        let e = err(f.resolve(&["--docker-endpoint=/var/run/docker.sock"], &[]));
        assert!(
            e.contains("--docker-endpoint") && e.contains("unix://"),
            "{e}"
        );
    }

    #[test]
    fn dead_container_limits_take_any_integer() {
        let f = Fixture::new();
        let s = f
            .resolve(
                &[
                    "--maximum-dead-containers=-1",
                    "--maximum-dead-containers-per-container=0",
                ],
                &[],
            )
            .expect("resolves");
        assert_eq!(
            (
                s.maximum_dead_containers,
                s.maximum_dead_containers_per_container
            ),
            (-1, 0)
        );
        assert!(err(f.resolve(&["--maximum-dead-containers=1.5"], &[])).contains("integer"));
    }

    #[test]
    fn missing_error_names_env_and_key() {
        let e = SettingsError::Missing {
            flag: "pod-manifest-path".into(),
        }
        .to_string();
        assert!(
            e.contains("PODVISOR_POD_MANIFEST_PATH") && e.contains("pod_manifest_path"),
            "{e}"
        );
    }
}
