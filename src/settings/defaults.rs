//! The built-in defaults, the lowest layer: each key's is written once, in its row of
//! [`KEYS`], as a [`Builtin`]; the default layer, the `[default: …]` of `--help` and
//! [`Settings::for_tests`] are all read from there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use clap::builder::StyledStr;
use config::ValueKind;

use super::keys::KEYS;
use super::layers::Layer;
use super::{Origin, Settings};

/// A key's built-in default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Builtin {
    /// None: the key must be given (flag, environment or file).
    Required,
    /// None: the setting is unset (`None` or empty) unless given.
    Unset,
    /// This value, read by the key's parser as if it were given.
    Fixed(&'static str),
    /// The environment variable `var` when it is set and not empty, else `otherwise`.
    EnvOr {
        /// The variable, e.g. `DOCKER_HOST`.
        var: &'static str,
        /// The value when the variable is unset or empty.
        otherwise: &'static str,
    },
    /// The machine's hostname; the key must be given when there is none.
    Hostname,
    /// `$HOME/<path>` when that file exists, else unset.
    HomeFile(&'static str),
    /// The address of the interface of the default route, else `otherwise`.
    DefaultRouteIp { otherwise: &'static str },
}

impl Builtin {
    /// The default without a look at the machine: a `Fixed` value or the `otherwise` of
    /// `EnvOr`.
    pub(super) fn fixed(self) -> Option<&'static str> {
        match self {
            Builtin::Fixed(value)
            | Builtin::EnvOr {
                otherwise: value, ..
            } => Some(value),
            Builtin::Required
            | Builtin::Unset
            | Builtin::Hostname
            | Builtin::HomeFile(_)
            | Builtin::DefaultRouteIp { .. } => None,
        }
    }

    /// Whether the key must be given when there is no default for it.
    pub(super) fn required(self) -> bool {
        matches!(self, Builtin::Required | Builtin::Hostname)
    }

    /// What `--help` shows as `[default: …]`; `None` for nothing.
    pub(super) fn shown(self) -> Option<String> {
        match self {
            Builtin::Required | Builtin::Unset => None,
            Builtin::Fixed(value) => Some(value.to_string()),
            Builtin::EnvOr { var, otherwise } => Some(format!("${var}, else {otherwise}")),
            Builtin::Hostname => Some("the hostname, lowercased".into()),
            Builtin::HomeFile(path) => Some(format!("$HOME/{path} if it exists")),
            Builtin::DefaultRouteIp { otherwise } => Some(format!(
                "the address of the default route's interface, else {otherwise}"
            )),
        }
    }

    /// The default on this machine, and where it came from; `env` stands for the process
    /// environment.
    fn on_machine(self, env: &HashMap<String, String>) -> Option<(Origin, String)> {
        let non_empty = |var: &str| env.get(var).filter(|v| !v.is_empty());
        match self {
            Builtin::Required | Builtin::Unset => None,
            Builtin::Fixed(value) => Some((Origin::Default, value.to_string())),
            Builtin::EnvOr { var, otherwise } => Some(match non_empty(var) {
                Some(value) => (Origin::Env(var.to_string()), value.clone()),
                None => (Origin::Default, otherwise.to_string()),
            }),
            Builtin::Hostname => hostname::get()
                .ok()
                .and_then(|h| h.into_string().ok())
                .map(|host| (Origin::Default, host)),
            Builtin::HomeFile(path) => {
                let file = Path::new(non_empty("HOME")?).join(path);
                file.is_file()
                    .then(|| (Origin::Default, file.display().to_string()))
            }
            Builtin::DefaultRouteIp { otherwise } => Some((
                Origin::Default,
                default_route_ip().map_or(otherwise.to_string(), |ip| ip.to_string()),
            )),
        }
    }
}

/// The source address the kernel picks for the default route: a UDP socket
/// "connected" to a documentation address (TEST-NET-1) sends nothing, but
/// is given the address of the default route's interface. `None` without a
/// default route.
fn default_route_ip() -> Option<std::net::IpAddr> {
    let socket = std::net::UdpSocket::bind(("0.0.0.0", 0)).ok()?;
    socket.connect(("192.0.2.1", 9)).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// The built-in defaults of [`KEYS`], with those taken from the machine: `DOCKER_HOST`, the
/// hostname and `$HOME/.docker/config.json`.
pub(super) fn default_layer(env: &HashMap<String, String>) -> Layer {
    Layer::new(KEYS.iter().filter_map(|key| {
        let (origin, value) = key.default.on_machine(env)?;
        Some((key.name, origin, ValueKind::String(value)))
    }))
}

/// Ends the help of a flag with the `[default: …]` of its key in [`KEYS`], if it shows one;
/// `RunArgs` passes every flag through it (`mut_args`).
pub(super) fn with_default_help(arg: clap::Arg) -> clap::Arg {
    let key = KEYS.iter().find(|key| key.name == arg.get_id().as_str());
    let Some(shown) = key.and_then(|key| key.default.shown()) else {
        return arg;
    };
    let suffixed = |help: &StyledStr| format!("{help} [default: {shown}]");
    let (help, long_help) = (
        arg.get_help().map(suffixed),
        arg.get_long_help().map(suffixed),
    );
    let arg = match help {
        Some(help) => arg.help(help),
        None => arg,
    };
    match long_help {
        Some(long_help) => arg.long_help(long_help),
        None => arg,
    }
}

impl Settings {
    /// The built-in defaults of the table of keys, manifests in `manifest_dir`; no checks on
    /// the filesystem and no look at the machine. Not what [`resolve`](super::resolve)
    /// starts from (it reads the same table through the default layer).
    ///
    /// Where production takes a default from the machine, this takes a fixed one on purpose,
    /// so that tests do not depend on where they run:
    /// - `node_name` is `test-node`, not the hostname;
    /// - `node_ip` is 127.0.0.1, not the default route's address;
    /// - `docker_endpoint` is the `otherwise` of its default, whatever `DOCKER_HOST` says;
    /// - `image_credential_file` is `None`, whatever `$HOME/.docker/config.json` holds.
    pub fn for_tests(manifest_dir: PathBuf) -> Settings {
        let mut settings = Settings::unset();
        for key in KEYS {
            if let Some(value) = key.default.fixed() {
                if let Err(e) = (key.set)(&mut settings, value) {
                    panic!("built-in default {value:?} of {} refused: {e}", key.name);
                }
            }
        }
        settings.pod_manifest_path = manifest_dir;
        settings.node_name = "test-node".into();
        settings.node_ip = std::net::Ipv4Addr::LOCALHOST.into();
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, Cli, Fixture};
    use super::super::*;
    use super::{default_layer, default_route_ip, Builtin, KEYS};
    use clap::CommandFactory;
    use config::Source;
    use std::collections::HashMap;

    #[test]
    fn fixed_defaults_parse() {
        for key in KEYS {
            if let Some(value) = key.default.fixed() {
                let parsed = (key.set)(&mut Settings::unset(), value);
                assert!(parsed.is_ok(), "{}: {value:?}: {parsed:?}", key.name);
            }
        }
    }

    #[test]
    fn keys_without_a_value_are_none_or_empty_when_unset() {
        for key in KEYS {
            if !matches!(key.default, Builtin::Unset | Builtin::HomeFile(_)) || key.list {
                continue;
            }
            let mut settings = Settings::unset();
            let empty = (key.set)(&mut settings, "");
            assert!(
                empty.is_ok() && settings == Settings::unset(),
                "{}: an empty value must mean unset",
                key.name
            );
        }
    }

    /// The default layer of an environment without `DOCKER_HOST` and `HOME`, as
    /// `(key, origin, value)`; the hostname and the node's address (both
    /// the machine's) are left out.
    fn default_values() -> Vec<(String, Origin, String)> {
        let layer = default_layer(&HashMap::new()).collect().expect("layer");
        let mut values: Vec<_> = layer
            .into_iter()
            .filter(|(key, _)| key != "node_name" && key != "node_ip")
            .map(|(key, value)| {
                let origin = Origin::from_tag(value.origin());
                (key, origin, value.into_string().expect("a string"))
            })
            .collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        values
    }

    #[test]
    fn default_layer_holds_the_fixed_defaults() {
        let mut expected: Vec<_> = KEYS
            .iter()
            .filter_map(|key| {
                Some((
                    key.name.to_string(),
                    Origin::Default,
                    key.default.fixed()?.to_string(),
                ))
            })
            .collect();
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(default_values(), expected);
    }

    #[test]
    fn help_shows_the_default_layer_values() {
        let command = Cli::command();
        let layer = default_values();
        for key in KEYS {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_id() == key.name)
                .unwrap_or_else(|| panic!("no flag for {}", key.name));
            let help = arg.get_help().expect("help").to_string();
            let shown = help.split_once(" [default: ").map(|(_, rest)| rest);
            let Some(expected) = key.default.shown() else {
                assert_eq!(shown, None, "{}: {help}", key.name);
                continue;
            };
            assert_eq!(shown, Some(format!("{expected}]").as_str()), "{}", key.name);
            let value = layer.iter().find(|(name, ..)| name == key.name);
            match key.default {
                Builtin::Fixed(_) => {
                    let value = &value.expect("in the default layer").2;
                    assert_eq!(shown, Some(format!("{value}]").as_str()), "{}", key.name);
                }
                Builtin::EnvOr { .. } => {
                    let value = &value.expect("in the default layer").2;
                    assert!(help.ends_with(&format!(", else {value}]")), "{help}");
                }
                Builtin::DefaultRouteIp { otherwise } => {
                    assert!(help.ends_with(&format!(", else {otherwise}]")), "{help}");
                }
                _ => assert_eq!(value, None, "{}: not in the default layer", key.name),
            }
        }
    }

    #[test]
    fn resolve_without_layers_gives_the_table_values() {
        let f = Fixture::new();
        let given: Vec<String> = KEYS
            .iter()
            .filter_map(|key| Some(format!("--{}={}", key.flag_name(), key.default.fixed()?)))
            .collect();
        let given: Vec<&str> = given.iter().map(String::as_str).collect();
        assert_eq!(
            f.resolve(&[], &[]).expect("resolves"),
            f.resolve(&given, &[]).expect("resolves"),
        );
    }

    #[test]
    fn defaults() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        let mut expected = Settings::for_tests(f.manifests());
        expected.node_name = "n1".into();
        expected.node_ip = default_route_ip().unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
        assert_eq!(s, expected);
    }

    #[test]
    fn the_node_ip_is_the_default_routes_address_unless_given() {
        let f = Fixture::new();
        let s = f.resolve(&[], &[]).expect("resolves");
        assert!(!s.node_ip.is_unspecified());
        // The address is one of this machine's: a socket can be bound to it.
        assert!(
            std::net::UdpSocket::bind((s.node_ip, 0)).is_ok(),
            "{}",
            s.node_ip
        );
        let given = f.resolve(&["--node-ip=10.1.2.3"], &[]).expect("resolves");
        assert_eq!(given.node_ip.to_string(), "10.1.2.3");
        assert!(err(f.resolve(&["--node-ip=node1"], &[])).contains("--node-ip"));
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
}
