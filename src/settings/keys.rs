//! The table of settings: one row per key, naming its flag and its parser.

use config::{Value, ValueKind};

use super::parse::*;
use super::{Origin, RunArgs, Settings, SettingsError, ValueError};

/// A setting: its name, its flag and how to parse and store a value.
pub(super) struct Key {
    /// snake_case name: file key, field of [`Settings`], `PODVISOR_` + uppercase.
    pub(super) name: &'static str,
    /// Whether the value is a list (comma-separated, repeated flag or TOML array).
    pub(super) list: bool,
    /// The flag's value(s), if given.
    pub(super) flag: fn(&RunArgs) -> Option<Vec<String>>,
    /// Parses one value (one item for lists) and stores it.
    pub(super) set: fn(&mut Settings, &str) -> Result<(), ValueError>,
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
pub(super) const KEYS: &[Key] = &[
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
