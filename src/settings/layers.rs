//! The layers of values, merged by the `config` crate: the `--config` file, the environment
//! and the flags over the built-in defaults ([`super::defaults`]), and [`resolve`], which
//! parses the merged values key by key.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, FileFormat, Map, Source, Value, ValueKind};

use super::defaults::default_layer;
use super::keys::KEYS;
use super::{FileError, RunArgs, Settings, SettingsError};

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
    pub(super) fn tag(&self) -> String {
        match self {
            Origin::Default => "default".into(),
            Origin::File(path) => format!("file:{}", path.display()),
            Origin::Env(name) => format!("env:{name}"),
            Origin::Flag => "flag".into(),
        }
    }

    pub(super) fn from_tag(tag: Option<&str>) -> Origin {
        match tag {
            Some("flag") => Origin::Flag,
            Some(t) if t.starts_with("file:") => Origin::File(t["file:".len()..].into()),
            Some(t) if t.starts_with("env:") => Origin::Env(t["env:".len()..].into()),
            _ => Origin::Default,
        }
    }
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
            reason: FileError::Config(Box::new(e)),
        })?;

    let mut settings = Settings::unset();
    let mut origins = HashMap::new();
    for key in KEYS {
        match merged.get(key.name) {
            Some(value) => {
                origins.insert(key.name, Origin::from_tag(value.origin()));
                key.apply(&mut settings, value.clone())?;
            }
            None if key.default.required() => {
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
    if settings.image_gc_low_threshold >= settings.image_gc_high_threshold {
        return Err(SettingsError::ImageGcThresholds {
            low: settings.image_gc_low_threshold,
            high: settings.image_gc_high_threshold,
            low_origin: origins
                .remove("image_gc_low_threshold")
                .unwrap_or(Origin::Default),
            high_origin: origins
                .remove("image_gc_high_threshold")
                .unwrap_or(Origin::Default),
        });
    }
    if settings.tls_cert_file.is_some() != settings.tls_private_key_file.is_some() {
        let (given, missing) = match settings.tls_cert_file {
            Some(_) => ("--tls-cert-file", "--tls-private-key-file"),
            None => ("--tls-private-key-file", "--tls-cert-file"),
        };
        return Err(SettingsError::NeedsBoth { given, missing });
    }
    Ok(settings)
}

/// The `--config` file: TOML parsed by the `config` crate, keys normalized to snake_case.
fn file_layer(path: &Path) -> Result<Layer, SettingsError> {
    let file_error = |reason: FileError| SettingsError::ConfigFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(FileError::Read(e)))?;
    let table = Config::builder()
        .add_source(config::File::from_str(&text, FileFormat::Toml))
        .build()
        .and_then(|config| config.collect())
        .map_err(|e| file_error(FileError::Config(Box::new(e))))?;
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
            return Err(file_error(FileError::SameKey {
                first,
                second: written,
            }));
        }
        values.push((key.name, origin.clone(), value.kind));
    }
    Ok(Layer::new(values))
}

/// One layer of values for the `config` crate, each value tagged with its [`Origin`].
#[derive(Debug, Clone)]
pub(super) struct Layer(Map<String, Value>);

impl Layer {
    pub(super) fn new<'a>(values: impl IntoIterator<Item = (&'a str, Origin, ValueKind)>) -> Layer {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, Fixture};
    use super::super::*;
    use std::path::PathBuf;
    use std::time::Duration;

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
    fn cluster_dns_domain_and_resolv_conf() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        assert!(s.cluster_dns.is_empty());
        assert_eq!(s.cluster_domain, None);
        assert_eq!(s.resolv_conf, Some(PathBuf::from("/etc/resolv.conf")));
        let s = f
            .resolve(
                &[
                    "--cluster-dns=10.0.0.10,fd00::a",
                    "--cluster-domain=Cluster.Local.",
                    "--resolv-conf=",
                ],
                &[],
            )
            .expect("resolves");
        let ips: Vec<String> = s.cluster_dns.iter().map(|i| i.to_string()).collect();
        assert_eq!(ips, ["10.0.0.10", "fd00::a"]);
        assert_eq!(s.cluster_domain.as_deref(), Some("cluster.local"));
        assert_eq!(s.resolv_conf, None);
        let e = err(f.resolve(&["--cluster-dns=10.0.0.10,dns"], &[]));
        assert!(e.contains("--cluster-dns") && e.contains("\"dns\""), "{e}");
        let e = err(f.resolve(&["--cluster-domain=bad_domain"], &[]));
        assert!(e.contains("--cluster-domain"), "{e}");
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
