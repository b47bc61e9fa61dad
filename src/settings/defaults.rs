//! The built-in defaults: the lowest layer.

use std::collections::HashMap;
use std::path::Path;

use config::ValueKind;

use super::layers::Layer;
use super::Origin;

/// Built-in defaults, and those taken from the machine: `DOCKER_HOST`, the hostname and
/// `$HOME/.docker/config.json`.
pub(super) fn default_layer(env: &HashMap<String, String>) -> Layer {
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

#[cfg(test)]
mod tests {
    use super::super::test_support::{err, Fixture};
    use super::super::*;

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
}
