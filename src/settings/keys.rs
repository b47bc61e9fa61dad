//! The table of settings: one row per key, naming its flag, its parser and its default.

use config::{Value, ValueKind};

use super::defaults::Builtin::{
    self, DefaultRouteIp, EnvOr, Fixed, HomeFile, Hostname, Required, Unset,
};
use super::parse::*;
use super::{Origin, RunArgs, Settings, SettingsError, ValueError};

/// A setting: its name, its flag, how to parse and store a value, and its default.
pub(super) struct Key {
    /// snake_case name: file key, field of [`Settings`], `PODVISOR_` + uppercase.
    pub(super) name: &'static str,
    /// Whether the value is a list (comma-separated, repeated flag or TOML array).
    pub(super) list: bool,
    /// The flag's value(s), if given.
    pub(super) flag: fn(&RunArgs) -> Option<Vec<String>>,
    /// Parses one value (one item for lists) and stores it.
    pub(super) set: fn(&mut Settings, &str) -> Result<(), ValueError>,
    /// The built-in default: the lowest layer.
    pub(super) default: Builtin,
}

impl Key {
    pub(super) fn flag_name(&self) -> String {
        self.name.replace('_', "-")
    }

    /// Parses a merged value and stores it in `settings`.
    pub(super) fn apply(&self, settings: &mut Settings, value: Value) -> Result<(), SettingsError> {
        let origin = Origin::from_tag(value.origin());
        let invalid = |value: String, reason: ValueError| SettingsError::Invalid {
            flag: self.flag_name(),
            value,
            reason,
            origin: origin.clone(),
        };
        let shown = show(&value);
        // Scalars of any type (TOML numbers, booleans, ...) become strings.
        let text = |v: Value| match v.kind {
            ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => {
                Err(invalid(shown.clone(), ValueError::NotSingle))
            }
            _ => v
                .into_string()
                .map_err(|e| invalid(shown.clone(), ValueError::NotText(Box::new(e)))),
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

/// A [`Key`] row: `key!(field, parser, default)` stores `parser(value)?` in `Settings::field`;
/// `key!(field, optional parser, default)` stores `None` for an empty value, else
/// `Some(parser(value)?)`; `key!(field, list parser, default)` pushes `parser(item)?` for every
/// item. `default` is the key's [`Builtin`] default.
macro_rules! key {
    ($field:ident, optional $parse:expr, $default:expr) => {
        key!($field, |v: &str| optional(v, $parse), $default)
    };
    ($field:ident, list $parse:expr, $default:expr) => {
        Key {
            name: stringify!($field),
            list: true,
            flag: |args| args.$field.raw(),
            set: |settings, item| Ok(settings.$field.push($parse(item)?)),
            default: $default,
        }
    };
    ($field:ident, $parse:expr, $default:expr) => {
        Key {
            name: stringify!($field),
            list: false,
            flag: |args| args.$field.raw(),
            set: |settings, value| Ok(settings.$field = $parse(value)?),
            default: $default,
        }
    };
}

/// Every setting, in the order they are checked, with its parser and its built-in default:
/// the one place where each default is written. The default layer, `--help` and
/// [`Settings::for_tests`] all read it from here.
pub(super) const KEYS: &[Key] = &[
    key!(pod_manifest_path, manifest_dir, Required),
    key!(
        docker_endpoint,
        docker_endpoint,
        EnvOr {
            var: "DOCKER_HOST",
            otherwise: "unix:///var/run/docker.sock",
        }
    ),
    key!(root_dir, path, Fixed("/var/lib/podvisor")),
    key!(
        pod_infra_container_image,
        non_empty,
        Fixed("registry.k8s.io/pause:3.10")
    ),
    key!(registry_qps, qps, Fixed("5")),
    key!(registry_burst, at_least_one, Fixed("10")),
    key!(serialize_image_pulls, boolean, Fixed("true")),
    key!(max_parallel_image_pulls, optional at_least_one, Unset),
    key!(docker_exec_handler, exec_handler, Fixed("native")),
    key!(cpu_cfs_quota, boolean, Fixed("true")),
    key!(network_plugin, optional non_empty, Unset),
    key!(
        network_plugin_dir,
        path,
        Fixed("/usr/libexec/kubernetes/kubelet-plugins/net/exec/")
    ),
    key!(cni_conf_dir, path, Fixed("/etc/cni/net.d")),
    key!(container_log_max_size, byte_size, Fixed("10Mi")),
    key!(system_reserved, reserved, Fixed("")),
    key!(kube_reserved, reserved, Fixed("")),
    key!(container_log_max_files, at_least_one, Fixed("5")),
    key!(cni_bin_dir, path, Fixed("/opt/cni/bin")),
    key!(sync_frequency, positive_duration, Fixed("10s")),
    key!(file_check_frequency, positive_duration, Fixed("20s")),
    key!(max_manifest_size, byte_size, Fixed("4Mi")),
    key!(http_check_frequency, positive_duration, Fixed("20s")),
    key!(manifest_url, optional http_url, Unset),
    key!(manifest_url_header, list header, Unset),
    key!(image_pull_progress_deadline, positive_duration, Fixed("1m")),
    key!(
        image_credential_file,
        optional existing_file,
        HomeFile(".docker/config.json")
    ),
    key!(allow_privileged, boolean, Fixed("false")),
    key!(allowed_host_paths, list absolute_path, Unset),
    key!(node_labels, list node_label, Unset),
    key!(minimum_container_ttl_duration, parse_duration, Fixed("1m")),
    key!(maximum_dead_containers_per_container, integer, Fixed("2")),
    key!(maximum_dead_containers, integer, Fixed("100")),
    key!(image_gc_high_threshold, percent, Fixed("85")),
    key!(image_gc_low_threshold, percent, Fixed("80")),
    key!(minimum_image_ttl_duration, parse_duration, Fixed("2m")),
    key!(image_gc_all_images, boolean, Fixed("false")),
    key!(image_gc_period, positive_duration, Fixed("5m")),
    key!(image_gc_usage_file, optional path, Unset),
    key!(node_name, node_name, Hostname),
    key!(address, ip_address, Fixed("127.0.0.1")),
    key!(
        node_ip,
        ip_address,
        DefaultRouteIp {
            otherwise: "127.0.0.1"
        }
    ),
    key!(port, port, Fixed("10250")),
    key!(read_only_port, port_or_zero, Fixed("10255")),
    key!(tls_cert_file, optional existing_file, Unset),
    key!(tls_private_key_file, optional existing_file, Unset),
    key!(token_auth_file, optional existing_file, Unset),
    key!(write_kubeconfig, optional path, Unset),
    key!(log_format, log_format, Fixed("plain")),
    key!(manifest_validation, manifest_validation, Fixed("strict")),
    key!(seccomp_default, boolean, Fixed("false")),
    key!(cluster_dns, list ip_address, Unset),
    key!(cluster_domain, optional domain_name, Unset),
    key!(resolv_conf, optional path, Fixed("/etc/resolv.conf")),
];
