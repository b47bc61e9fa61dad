//! The CNI network configuration: which file of the configuration
//! directory is used, and its serde types.
//!
//! As libcni and the kubelet do, the first file in lexical order among
//! `*.conflist`, `*.conf` and `*.json` is the network; a `.conf`/`.json`
//! holds one plugin and is wrapped as a one-plugin list (one that has a
//! `plugins` array is read as a list). Unlike the kubelet, a first file
//! that does not parse is an error naming it, not skipped for the next.
//!
//! Each plugin's object is kept whole (its unknown fields in a
//! `serde_json::Map`) so that it reaches the plugin unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::network::NetworkError;

/// The CNI spec versions this runtime speaks (CHECK exists in both).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["0.4.0", "1.0.0"];

/// The capability whose runtime argument is the pod's `hostPort`s.
pub const PORT_MAPPINGS: &str = "portMappings";

/// One network: a list of plugins run in order on ADD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConfList {
    pub cni_version: String,
    pub name: String,
    /// The administrator's "never CHECK this network".
    #[serde(default)]
    pub disable_check: bool,
    pub plugins: Vec<PluginConf>,
}

/// One plugin of the list: its `type` and `capabilities` read, everything
/// else passed through as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginConf {
    #[serde(rename = "type")]
    pub plugin_type: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capabilities: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl PluginConf {
    /// Whether the plugin declares `capabilities: {<name>: true}`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.get(name) == Some(&Value::Bool(true))
    }
}

impl NetConfList {
    /// Whether a plugin of the chain is `portmap` with the `portMappings`
    /// capability (the pod's `hostPort`s are then served).
    pub fn serves_host_ports(&self) -> bool {
        self.plugins
            .iter()
            .any(|p| p.plugin_type == "portmap" && p.has_capability(PORT_MAPPINGS))
    }

    /// Parses one configuration file's text; `path` names it in errors and
    /// its extension says whether it is a list or one plugin.
    pub fn parse(path: &Path, text: &str) -> Result<NetConfList, NetworkError> {
        let bad = |message: String| config_error(format!("{}: {message}", path.display()));
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(bad("not a JSON object".into()));
        };
        let is_list =
            path.extension().is_some_and(|e| e == "conflist") || object.contains_key("plugins");
        let list: NetConfList = if is_list {
            serde_json::from_value(Value::Object(object))
                .map_err(|e| bad(format!("not a CNI network configuration list: {e}")))?
        } else {
            // One plugin: the list's name and version are the plugin's own;
            // the plugin keeps every field (they are injected again on a call).
            let field = |object: &Map<String, Value>, key: &str| match object.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => Err(bad(format!("no string {key:?}"))),
            };
            let name = field(&object, "name")?;
            let cni_version = field(&object, "cniVersion")?;
            object.remove("name");
            object.remove("cniVersion");
            let plugin: PluginConf = serde_json::from_value(Value::Object(object))
                .map_err(|e| bad(format!("not a CNI plugin configuration: {e}")))?;
            NetConfList {
                cni_version,
                name,
                disable_check: false,
                plugins: vec![plugin],
            }
        };
        list.validate(path)?;
        Ok(list)
    }

    fn validate(&self, path: &Path) -> Result<(), NetworkError> {
        let bad = |message: String| config_error(format!("{}: {message}", path.display()));
        if !SUPPORTED_VERSIONS.contains(&self.cni_version.as_str()) {
            return Err(bad(format!(
                "cniVersion {:?} is not supported (supported: {})",
                self.cni_version,
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        if self.name.is_empty() {
            return Err(bad("the network has an empty \"name\"".into()));
        }
        if self.plugins.is_empty() {
            return Err(bad("\"plugins\" is empty".into()));
        }
        for (i, plugin) in self.plugins.iter().enumerate() {
            let t = &plugin.plugin_type;
            // The type names an executable of a bin dir, nothing else.
            if t.is_empty() || t.contains('/') || t == "." || t == ".." || t.contains('\0') {
                return Err(bad(format!("plugin {i} has an invalid \"type\" {t:?}")));
            }
        }
        Ok(())
    }
}

/// The configuration file to use: the first of `dir` in lexical order
/// whose name ends in `.conflist`, `.conf` or `.json`.
pub fn choose_file(dir: &Path) -> Result<PathBuf, NetworkError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        config_error(format!(
            "cannot read the CNI configuration directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            config_error(format!(
                "cannot read the CNI configuration directory {}: {e}",
                dir.display()
            ))
        })?;
        let path = entry.path();
        let wanted = path
            .extension()
            .is_some_and(|e| e == "conflist" || e == "conf" || e == "json");
        // A directory named `x.conf` is not a configuration.
        if wanted && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files.into_iter().next().ok_or_else(|| {
        config_error(format!(
            "no CNI network configuration (*.conflist, *.conf, *.json) in {}",
            dir.display()
        ))
    })
}

/// Reads the configuration of `dir` (blocking: call it off the actor
/// threads). Returns the file used with the list.
pub fn load(dir: &Path) -> Result<(PathBuf, NetConfList), NetworkError> {
    let path = choose_file(dir)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| config_error(format!("cannot read {}: {e}", path.display())))?;
    let list = NetConfList::parse(&path, &text)?;
    Ok((path, list))
}

fn config_error(message: String) -> NetworkError {
    NetworkError::Config {
        plugin: "cni".into(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn message(err: NetworkError) -> String {
        match err {
            NetworkError::Config { plugin, message } => {
                assert_eq!(plugin, "cni");
                message
            }
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    const LIST: &str = r#"{"cniVersion":"1.0.0","name":"net-a","plugins":[
        {"type":"bridge","bridge":"br0","ipam":{"type":"host-local","subnet":"10.1.0.0/24"}},
        {"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}"#;

    #[test]
    fn the_first_file_in_lexical_order_is_used_and_others_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "20-b.conflist", LIST);
        write(
            dir.path(),
            "10-a.conf",
            r#"{"cniVersion":"0.4.0","name":"one","type":"bridge"}"#,
        );
        write(dir.path(), "05-notes.txt", "not a config");
        write(dir.path(), "00-editor.conf~", "{");
        std::fs::create_dir(dir.path().join("01-dir.conf")).unwrap();
        let (path, list) = load(dir.path()).unwrap();
        assert_eq!(path, dir.path().join("10-a.conf"));
        assert_eq!(list.name, "one");
    }

    #[test]
    fn a_conf_is_wrapped_as_a_one_plugin_list_keeping_its_fields() {
        let path = Path::new("/x/10-one.conf");
        let text = r#"{"cniVersion":"0.4.0","name":"one","type":"bridge","isGateway":true,
                      "ipam":{"type":"host-local","subnet":"10.2.0.0/16"}}"#;
        let list = NetConfList::parse(path, text).unwrap();
        assert_eq!(list.cni_version, "0.4.0");
        assert_eq!(list.name, "one");
        assert!(!list.disable_check);
        assert_eq!(list.plugins.len(), 1);
        let plugin = &list.plugins[0];
        assert_eq!(plugin.plugin_type, "bridge");
        assert_eq!(plugin.rest.get("isGateway"), Some(&json!(true)));
        assert_eq!(plugin.rest["ipam"]["subnet"], json!("10.2.0.0/16"));
        // name and cniVersion are the list's: injected per call, not kept twice.
        assert!(!plugin.rest.contains_key("name"));
    }

    #[test]
    fn a_conflist_keeps_unknown_plugin_fields_and_reads_capabilities() {
        let list = NetConfList::parse(Path::new("a.conflist"), LIST).unwrap();
        assert_eq!(list.plugins.len(), 2);
        assert_eq!(list.plugins[0].rest["bridge"], json!("br0"));
        assert!(!list.plugins[0].has_capability(PORT_MAPPINGS));
        assert!(list.plugins[1].has_capability(PORT_MAPPINGS));
        assert_eq!(list.plugins[1].rest["snat"], json!(true));
        assert!(list.serves_host_ports());
        // Round trip: what is written back is what was read.
        let back = serde_json::to_value(&list.plugins[1]).unwrap();
        assert_eq!(
            back,
            json!({"type":"portmap","capabilities":{"portMappings":true},"snat":true})
        );
    }

    #[test]
    fn serves_host_ports_needs_portmap_with_the_capability() {
        let without = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},
                          {"type":"portmap","snat":true}]}"#;
        let list = NetConfList::parse(Path::new("a.conflist"), without).unwrap();
        assert!(!list.serves_host_ports());
        let other = r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge",
                        "capabilities":{"portMappings":true}}]}"#;
        let list = NetConfList::parse(Path::new("a.conflist"), other).unwrap();
        assert!(!list.serves_host_ports());
    }

    #[test]
    fn bad_json_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "10-bad.conflist", "{\"cniVersion\": ");
        let m = message(load(dir.path()).unwrap_err());
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(m.contains("not valid JSON"), "{m}");
    }

    #[test]
    fn an_unsupported_version_names_the_file_and_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let text = LIST.replace("1.0.0", "0.3.1");
        let path = write(dir.path(), "10-old.conflist", &text);
        let m = message(load(dir.path()).unwrap_err());
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(m.contains("\"0.3.1\""), "{m}");
        assert!(m.contains("0.4.0, 1.0.0"), "{m}");
    }

    #[test]
    fn a_list_without_plugins_or_with_a_bad_type_is_refused() {
        let p = Path::new("/d/x.conflist");
        let m = message(
            NetConfList::parse(p, r#"{"cniVersion":"1.0.0","name":"n","plugins":[]}"#).unwrap_err(),
        );
        assert!(m.contains("/d/x.conflist") && m.contains("empty"), "{m}");
        let m = message(
            NetConfList::parse(
                p,
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../../bin/sh"}]}"#,
            )
            .unwrap_err(),
        );
        assert!(m.contains("invalid \"type\""), "{m}");
        let m = message(
            NetConfList::parse(
                p,
                r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"x":1}]}"#,
            )
            .unwrap_err(),
        );
        assert!(m.contains("/d/x.conflist") && m.contains("type"), "{m}");
        let m = message(
            NetConfList::parse(
                Path::new("/d/y.conf"),
                r#"{"cniVersion":"1.0.0","type":"b"}"#,
            )
            .unwrap_err(),
        );
        assert!(m.contains("/d/y.conf") && m.contains("\"name\""), "{m}");
    }

    #[test]
    fn an_empty_or_missing_directory_is_a_config_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "README", "nothing here");
        let m = message(load(dir.path()).unwrap_err());
        assert!(m.contains("no CNI network configuration"), "{m}");
        assert!(m.contains(&dir.path().display().to_string()), "{m}");
        let missing = dir.path().join("absent");
        let m = message(load(&missing).unwrap_err());
        assert!(m.contains(&missing.display().to_string()), "{m}");
    }
}
