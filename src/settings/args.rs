//! The flags of `podvisor run`, as clap parses them: strings, checked later by [`resolve`].
//!
//! [`resolve`]: super::resolve

use std::path::PathBuf;

use super::defaults::with_default_help;

/// Runs the Pod manifests of a directory on Docker; the flags are the kubelet's.
///
/// The flags of `podvisor run`. Every value is kept as given (`None` = not given);
/// [`resolve`](super::resolve) parses and checks them. Boolean flags take `--flag`,
/// `--flag=true` or `--flag=false`; a flag given twice keeps its last value, except
/// `--manifest-url-header`, whose values add up.
#[derive(clap::Args, Debug, Default, Clone)]
// The help of each flag ends with its default from the table of keys (`[default: …]`).
#[command(args_override_self = true, mut_args = with_default_help)]
pub struct RunArgs {
    /// TOML file with settings; keys are the flag names in snake_case or kebab-case.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of Pod manifests (YAML or JSON) to run. Required.
    #[arg(long, value_name = "DIR")]
    pub pod_manifest_path: Option<String>,
    /// Docker engine endpoint, unix://, tcp:// or http://
    #[arg(long, value_name = "URL")]
    pub docker_endpoint: Option<String>,
    /// Directory for podvisor's own state
    #[arg(long, value_name = "DIR")]
    pub root_dir: Option<String>,
    /// Image of the container that holds each pod's namespaces
    #[arg(long, value_name = "IMAGE")]
    pub pod_infra_container_image: Option<String>,
    /// Image pulls per second, 0 for no limit
    #[arg(long, value_name = "QPS")]
    pub registry_qps: Option<String>,
    /// Largest burst of image pulls, at least 1
    #[arg(long, value_name = "N")]
    pub registry_burst: Option<String>,
    /// Pull one image at a time
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub serialize_image_pulls: Option<String>,
    /// Most image pulls at once; needs --serialize-image-pulls=false when above 1
    #[arg(long, value_name = "N")]
    pub max_parallel_image_pulls: Option<String>,
    /// How to exec into containers: native or nsenter
    #[arg(long, value_name = "HANDLER")]
    pub docker_exec_handler: Option<String>,
    /// Enforce CPU limits with CFS quota
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub cpu_cfs_quota: Option<String>,
    /// Network plugin to use; empty for none
    #[arg(long, value_name = "NAME")]
    pub network_plugin: Option<String>,
    /// Directory of network plugins
    #[arg(long, value_name = "DIR")]
    pub network_plugin_dir: Option<String>,
    /// Resources kept for the system, not for pods (cpu=500m,memory=1Gi)
    #[arg(long, value_name = "LIST")]
    pub system_reserved: Option<String>,
    /// Resources kept for podvisor and the engine, not for pods (cpu=…,memory=…)
    #[arg(long, value_name = "LIST")]
    pub kube_reserved: Option<String>,
    /// Largest a container's log file grows before it is rotated (e.g. 10Mi)
    #[arg(long, value_name = "SIZE")]
    pub container_log_max_size: Option<String>,
    /// Log files kept per container, the current one included
    #[arg(long, value_name = "N")]
    pub container_log_max_files: Option<String>,
    /// With --network-plugin=cni: the directory of CNI network configurations
    #[arg(long, value_name = "DIR")]
    pub cni_conf_dir: Option<String>,
    /// With --network-plugin=cni: the directory of CNI plugins (Debian's /usr/lib/cni is searched too)
    #[arg(long, value_name = "DIR")]
    pub cni_bin_dir: Option<String>,
    /// Period between syncs of running pods with their manifests
    #[arg(long, value_name = "DURATION")]
    pub sync_frequency: Option<String>,
    /// Period between checks of the manifest directory
    #[arg(long, value_name = "DURATION")]
    pub file_check_frequency: Option<String>,
    /// Largest manifest file read, in bytes (suffixes k, M, G, Ki, Mi, Gi); larger ones are refused
    #[arg(long, value_name = "SIZE")]
    pub max_manifest_size: Option<String>,
    /// Period between fetches of --manifest-url
    #[arg(long, value_name = "DURATION")]
    pub http_check_frequency: Option<String>,
    /// http:// or https:// URL of more Pod manifests
    #[arg(long, value_name = "URL")]
    pub manifest_url: Option<String>,
    /// HTTP header for --manifest-url, as Name:Value; repeat it or separate pairs with commas
    #[arg(long, value_name = "NAME:VALUE")]
    pub manifest_url_header: Vec<String>,
    /// Cancel an image pull that makes no progress for this long
    #[arg(long, value_name = "DURATION")]
    pub image_pull_progress_deadline: Option<String>,
    /// Docker config.json with registry credentials
    #[arg(long, value_name = "FILE")]
    pub image_credential_file: Option<String>,
    /// Allow privileged containers
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub allow_privileged: Option<String>,
    /// Comma-separated absolute paths that hostPath volumes may use (and what is below them)
    #[arg(long, value_name = "PATHS")]
    pub allowed_host_paths: Option<String>,
    /// Comma-separated key=value labels of the node, which nodeSelector and node affinity match
    #[arg(long, value_name = "LABELS")]
    pub node_labels: Option<String>,
    /// Least age of a dead container before it may be removed
    #[arg(long, value_name = "DURATION")]
    pub minimum_container_ttl_duration: Option<String>,
    /// Dead containers kept per container, negative for no limit
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub maximum_dead_containers_per_container: Option<String>,
    /// Dead containers kept in all, negative for no limit
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    pub maximum_dead_containers: Option<String>,
    /// Percent of the engine's image file system at which unused images are removed (0-100)
    #[arg(long, value_name = "PERCENT")]
    pub image_gc_high_threshold: Option<String>,
    /// Percent of the image file system that image garbage collection frees down to; below the high threshold
    #[arg(long, value_name = "PERCENT")]
    pub image_gc_low_threshold: Option<String>,
    /// Least time since an unused image was first seen before it may be removed
    #[arg(long, value_name = "DURATION")]
    pub minimum_image_ttl_duration: Option<String>,
    /// Let image garbage collection remove images podvisor never pulled nor ran too
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub image_gc_all_images: Option<String>,
    /// Period of image garbage collection (the kubelet's fixed 5 minutes; for tests)
    #[arg(long, value_name = "DURATION", hide = true)]
    pub image_gc_period: Option<String>,
    /// For tests only: read the image file system's usage from this file ("USED_BYTES CAPACITY_BYTES") instead of the engine's disk
    #[arg(long, value_name = "FILE", hide = true)]
    pub image_gc_usage_file: Option<String>,
    /// Name of this node, a DNS-1123 subdomain
    #[arg(long, value_name = "NAME")]
    pub node_name: Option<String>,
    /// Address the HTTP server listens on
    #[arg(long, value_name = "IP")]
    pub address: Option<String>,
    /// The node's IP address, shown as the pods' hostIP
    #[arg(long, value_name = "IP")]
    pub node_ip: Option<String>,
    /// Port of the secure API (HTTPS, a bearer token needed), which kubectl uses
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Port of the read-only API (plain HTTP, no token: /healthz, /pods); 0 turns it off
    #[arg(long, value_name = "PORT")]
    pub read_only_port: Option<String>,
    /// Certificate (PEM, chain allowed) of the secure API; without it, a self-signed one is kept under --root-dir/pki
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<String>,
    /// Private key (PEM) of --tls-cert-file
    #[arg(long, value_name = "FILE")]
    pub tls_private_key_file: Option<String>,
    /// Bearer tokens of the secure API, the API server's CSV format: token,user,uid,"group1,group2"; without it, one token is generated and kept under --root-dir
    #[arg(long, value_name = "FILE")]
    pub token_auth_file: Option<String>,
    /// Where to write a kubeconfig for the secure API (server, CA, generated token); without it, --root-dir/kubeconfig
    #[arg(long, value_name = "FILE")]
    pub write_kubeconfig: Option<String>,
    /// Log format: plain or json
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Unknown or duplicate manifest fields: strict (refuse the file) or warn (log and accept)
    #[arg(long, value_name = "MODE")]
    pub manifest_validation: Option<String>,
    /// Give containers without a seccompProfile the engine's default seccomp profile (RuntimeDefault) instead of none (Unconfined)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub seccomp_default: Option<String>,
    /// Comma-separated IPs of the cluster's DNS servers, the nameservers of ClusterFirst pods
    #[arg(long, value_name = "IPS")]
    pub cluster_dns: Option<String>,
    /// The cluster's DNS domain (e.g. cluster.local): ClusterFirst pods search it, and subdomain pods get an FQDN in it
    #[arg(long, value_name = "DOMAIN")]
    pub cluster_domain: Option<String>,
    /// The node's resolver configuration, given to Default pods (and ClusterFirst ones without --cluster-dns); empty for none
    #[arg(long, value_name = "FILE")]
    pub resolv_conf: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::super::test_support::Cli;
    use clap::Parser;

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
}
