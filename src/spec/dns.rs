//! A pod's name resolution, as the kubelet writes it: its hostname and
//! domain, its `/etc/hosts` ([`hosts_file`]) and its `resolv.conf`
//! ([`resolv_conf`], by `dnsPolicy`, merged with `dnsConfig`). The fields
//! are checked with the manifest ([`crate::manifest::validate_pod`]). Pure; the
//! worker writes the files under the pod's directory and binds them into
//! every container ([`pod_file_binds`]).

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod};

/// The pod's hosts file under its directory, bound at `/etc/hosts`.
pub const HOSTS_FILE: &str = "etc-hosts";
/// The pod's resolver configuration under its directory, bound at
/// `/etc/resolv.conf`.
pub const RESOLV_FILE: &str = "resolv.conf";

/// Kubernetes' limits (`validation.MaxDNSNameservers`, `MaxDNSSearchPaths`,
/// `MaxDNSSearchListChars`).
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// The pod's hostname: `spec.hostnameOverride`, else `spec.hostname`,
/// else its name cut to 63 characters (without a trailing `-` or `.`), as
/// the kubelet's `GeneratePodHostNameAndDomain`.
pub fn pod_hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let given = spec
        .and_then(|s| s.hostname_override.as_deref())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            spec.and_then(|s| s.hostname.as_deref())
                .filter(|h| !h.is_empty())
        });
    if let Some(h) = given {
        return h.to_string();
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if name.len() <= 63 {
        return name.to_string();
    }
    let cut: String = name.chars().take(63).collect();
    cut.trim_end_matches(['-', '.']).to_string()
}

/// The host name the pod's containers see: the FQDN
/// (`<hostname>.<subdomain>.<namespace>.svc.<cluster-domain>`) with
/// `setHostnameAsFQDN: true` and a domain, else [`pod_hostname`]. An FQDN
/// longer than 64 characters is an error, as the kubelet's.
pub fn sandbox_hostname(pod: &Pod, cluster_domain: Option<&str>) -> Result<String, String> {
    let host = pod_hostname(pod);
    let as_fqdn = pod.spec.as_ref().and_then(|s| s.set_hostname_as_fqdn) == Some(true);
    match pod_domain(pod, cluster_domain).filter(|_| as_fqdn) {
        Some(domain) => {
            let fqdn = format!("{host}.{domain}");
            match fqdn.len() > 64 {
                true => Err(format!(
                    "spec.setHostnameAsFQDN: the FQDN {fqdn:?} is longer than 64 characters"
                )),
                false => Ok(fqdn),
            }
        }
        None => Ok(host),
    }
}

/// `<subdomain>.<namespace>.svc.<cluster-domain>` when the pod has a
/// `subdomain` and the node a cluster domain.
pub fn pod_domain(pod: &Pod, cluster_domain: Option<&str>) -> Option<String> {
    let sub = pod
        .spec
        .as_ref()
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty())?;
    let cd = cluster_domain.filter(|c| !c.is_empty())?;
    let ns = namespace(pod);
    Some(format!("{sub}.{ns}.svc.{cd}"))
}

fn namespace(pod: &Pod) -> &str {
    pod.metadata
        .namespace
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
}

/// The pod's `/etc/hosts`, as the kubelet's `managedHostsFileContent`: a
/// header, localhost, the pod IP with its hostname (and FQDN with a
/// domain), then `hostAliases`. A `hostNetwork` pod gets the node's hosts
/// file (`node_hosts`) under its own header, then the aliases.
pub fn hosts_file(
    pod: &Pod,
    pod_ip: &str,
    cluster_domain: Option<&str>,
    node_hosts: &str,
) -> String {
    let spec = pod.spec.as_ref();
    let mut out = String::new();
    if spec.and_then(|s| s.host_network).unwrap_or(false) {
        out.push_str("# Kubernetes-managed hosts file (host network).\n");
        out.push_str(node_hosts);
    } else {
        out.push_str("# Kubernetes-managed hosts file.\n");
        out.push_str("127.0.0.1\tlocalhost\n");
        out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
        out.push_str("fe00::0\tip6-localnet\n");
        out.push_str("fe00::0\tip6-mcastprefix\n");
        out.push_str("fe00::1\tip6-allnodes\n");
        out.push_str("fe00::2\tip6-allrouters\n");
        let host = pod_hostname(pod);
        match pod_domain(pod, cluster_domain) {
            Some(d) => out.push_str(&format!("{pod_ip}\t{host}.{d}\t{host}\n")),
            None => out.push_str(&format!("{pod_ip}\t{host}\n")),
        }
    }
    let aliases = spec
        .and_then(|s| s.host_aliases.as_deref())
        .unwrap_or_default();
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for a in aliases {
            let names = a.hostnames.as_deref().unwrap_or_default().join("\t");
            out.push_str(&format!("{}\t{names}\n", a.ip));
        }
    }
    out
}

/// A resolver configuration: `nameserver`, `search` and `options` lines.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolver {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Resolver {
    /// Reads a `resolv.conf` as the kubelet's `parseResolvConf`: every
    /// `nameserver`, the last `search` line (trailing dots dropped), every
    /// `options` item (a later one replaces an earlier one of that name).
    pub fn parse(text: &str) -> Self {
        let mut r = Resolver::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut fields = line.split_whitespace();
            match fields.next() {
                Some("nameserver") => r.nameservers.extend(fields.next().map(str::to_string)),
                Some("search") => {
                    r.searches = fields
                        .map(|s| s.strip_suffix('.').unwrap_or(s).to_string())
                        .collect()
                }
                Some("options") => {
                    let more: Vec<String> = fields.map(str::to_string).collect();
                    r.options = merge_options(&r.options, &more);
                }
                _ => {}
            }
        }
        r
    }

    /// The file: nameservers, then the search line, then the options.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.nameservers {
            out.push_str(&format!("nameserver {n}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

fn dedup(list: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// `name[:value]` options: `more` replaces the value of an option of the
/// same name in place, else is appended (the kubelet's `mergeDNSOptions`,
/// in a stable order).
fn merge_options(base: &[String], more: &[String]) -> Vec<String> {
    let name = |o: &str| o.split(':').next().unwrap_or_default().to_string();
    let mut out: Vec<String> = base.to_vec();
    for o in more {
        match out.iter().position(|b| name(b) == name(o)) {
            Some(i) => out[i] = o.clone(),
            None => out.push(o.clone()),
        }
    }
    out
}

/// The pod's `resolv.conf`, and the warnings to record (reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    pub text: String,
    pub warnings: Vec<(&'static str, String)>,
}

/// The pod's resolver, as the kubelet's `GetPodDNS`:
/// - `Default` (and `ClusterFirst` for a `hostNetwork` pod): the node's
///   (`node`; with no `--resolv-conf`, `nameserver 127.0.0.1`, `search .`);
/// - `ClusterFirst`, `ClusterFirstWithHostNet`: `--cluster-dns` as the
///   nameservers, searches `<ns>.svc.<domain> svc.<domain> <domain>` then
///   the node's, `options ndots:5`; without `--cluster-dns`, the node's,
///   with a `MissingClusterDNS` warning;
/// - `None`: nothing but `dnsConfig`.
///
/// `dnsConfig` is then merged: its nameservers and searches appended
/// (duplicates dropped), its options replacing those of the same name. More
/// than 3 nameservers, 32 searches or 2048 search characters are cut, with
/// a `DNSConfigForming` warning.
pub fn resolv_conf(
    pod: &Pod,
    node: Option<&str>,
    cluster_dns: &[String],
    cluster_domain: Option<&str>,
) -> ResolvConf {
    let spec = pod.spec.clone().unwrap_or_default();
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let node_resolver = || match node {
        Some(text) => Resolver::parse(text),
        None => Resolver {
            nameservers: vec!["127.0.0.1".into()],
            searches: vec![".".into()],
            options: vec![],
        },
    };
    let mut warnings = Vec::new();
    let cluster = match policy {
        "None" => None,
        "ClusterFirstWithHostNet" => Some(true),
        "ClusterFirst" if !host_network => Some(true),
        _ => Some(false),
    };
    let mut r = match cluster {
        None => Resolver::default(),
        Some(true) if !cluster_dns.is_empty() => {
            let host = node_resolver();
            let searches = match cluster_domain.filter(|d| !d.is_empty()) {
                Some(cd) => {
                    let ns = namespace(pod);
                    let ours = [
                        format!("{ns}.svc.{cd}"),
                        format!("svc.{cd}"),
                        cd.to_string(),
                    ];
                    dedup(ours.into_iter().chain(host.searches))
                }
                None => host.searches,
            };
            Resolver {
                nameservers: cluster_dns.to_vec(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        Some(cluster) => {
            if cluster {
                warnings.push((
                    "MissingClusterDNS",
                    format!(
                        "pod: \"{}_{}\". podvisor does not have ClusterDNS IP configured (--cluster-dns) and cannot create Pod using \"{policy}\" policy. Falling back to \"Default\" policy.",
                        pod.metadata.name.as_deref().unwrap_or_default(),
                        namespace(pod)
                    ),
                ));
            }
            node_resolver()
        }
    };
    if let Some(c) = &spec.dns_config {
        r.nameservers = dedup(
            r.nameservers
                .into_iter()
                .chain(c.nameservers.clone().unwrap_or_default()),
        );
        r.searches = dedup(
            r.searches
                .into_iter()
                .chain(c.searches.clone().unwrap_or_default()),
        );
        let more: Vec<String> = c
            .options
            .iter()
            .flatten()
            .map(|o| {
                let name = o.name.clone().unwrap_or_default();
                match o.value.as_deref().filter(|v| !v.is_empty()) {
                    Some(v) => format!("{name}:{v}"),
                    None => name,
                }
            })
            .collect();
        r.options = merge_options(&r.options, &more);
    }
    if r.nameservers.len() > MAX_NAMESERVERS {
        r.nameservers.truncate(MAX_NAMESERVERS);
        warnings.push((
            "DNSConfigForming",
            format!(
                "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: {}",
                r.nameservers.join(" ")
            ),
        ));
    }
    let too_long = |s: &[String]| s.len() > MAX_SEARCHES || s.join(" ").len() > MAX_SEARCH_CHARS;
    if too_long(&r.searches) {
        while too_long(&r.searches) {
            r.searches.pop();
        }
        warnings.push((
            "DNSConfigForming",
            format!(
                "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: {}",
                r.searches.join(" ")
            ),
        ));
    }
    ResolvConf {
        text: r.render(),
        warnings,
    }
}

/// The binds of the pod's hosts file (when `hosts`: it exists once the pod
/// has an IP) and resolver into a container, unless it mounts a volume
/// there itself.
pub fn pod_file_binds(c: &Container, pod_dir: &Path, hosts: bool) -> Vec<String> {
    let mounts_at = |target: &str| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == target)
    };
    let mut binds = Vec::new();
    if hosts && !mounts_at("/etc/hosts") {
        binds.push(format!("{}:/etc/hosts", pod_dir.join(HOSTS_FILE).display()));
    }
    if !mounts_at("/etc/resolv.conf") {
        binds.push(format!(
            "{}:/etc/resolv.conf",
            pod_dir.join(RESOLV_FILE).display()
        ));
    }
    binds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: serde_json::Value) -> Pod {
        let mut spec = spec;
        spec["containers"] = serde_json::json!([{"name": "app", "image": "i"}]);
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod"}, "spec": spec
        }))
        .unwrap()
    }

    const NODE: &str = "# node\nnameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example. lab.example\noptions edns0 ndots:2\n";

    #[test]
    fn the_hostname_is_the_override_or_the_fqdn_when_asked() {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {"hostname": "h", "subdomain": "s",
                     "containers": [{"name": "a", "image": "i"}]}}))
        .unwrap();
        assert_eq!(sandbox_hostname(&p, Some("cluster.local")), Ok("h".into()));
        p.spec.as_mut().unwrap().set_hostname_as_fqdn = Some(true);
        assert_eq!(
            sandbox_hostname(&p, Some("cluster.local")),
            Ok("h.s.prod.svc.cluster.local".into())
        );
        // Without a cluster domain there is no FQDN.
        assert_eq!(sandbox_hostname(&p, None), Ok("h".into()));
        p.spec.as_mut().unwrap().hostname = Some("x".repeat(40));
        let err = sandbox_hostname(&p, Some("cluster.local")).unwrap_err();
        assert!(err.starts_with("spec.setHostnameAsFQDN: "), "{err}");
        p.spec.as_mut().unwrap().hostname_override = Some("over".into());
        assert_eq!(pod_hostname(&p), "over");
    }

    #[test]
    fn hosts_file_with_hostname_subdomain_and_aliases() {
        let p = pod(serde_json::json!({
            "hostname": "db-0", "subdomain": "db",
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]},
                            {"ip": "127.0.0.1", "hostnames": ["foo.local"]}]
        }));
        let text = hosts_file(&p, "172.17.0.5", Some("cluster.local"), "");
        assert_eq!(
            text,
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             172.17.0.5\tdb-0.db.prod.svc.cluster.local\tdb-0\n\
             \n# Entries added by HostAliases.\n10.1.2.3\tfoo.remote\tbar.remote\n127.0.0.1\tfoo.local\n"
        );
        let no_domain = hosts_file(&p, "172.17.0.5", None, "");
        assert!(no_domain.contains("\n172.17.0.5\tdb-0\n"), "{no_domain}");
        let plain = hosts_file(&pod(serde_json::json!({})), "10.0.0.9", Some("c.l"), "");
        assert!(
            plain.ends_with("fe00::2\tip6-allrouters\n10.0.0.9\tweb\n"),
            "{plain}"
        );
        let host_net = hosts_file(
            &pod(
                serde_json::json!({"hostNetwork": true, "hostAliases": [{"ip": "1.2.3.4", "hostnames": ["a"]}]}),
            ),
            "127.0.0.1",
            None,
            "127.0.0.1 localhost\n",
        );
        assert_eq!(
            host_net,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n\n# Entries added by HostAliases.\n1.2.3.4\ta\n"
        );
    }

    #[test]
    fn hostname_is_the_spec_s_or_the_name_cut() {
        assert_eq!(
            pod_hostname(&pod(serde_json::json!({"hostname": "h"}))),
            "h"
        );
        assert_eq!(pod_hostname(&pod(serde_json::json!({}))), "web");
        let mut long = pod(serde_json::json!({}));
        long.metadata.name = Some(format!("{}-abc", "a".repeat(62)));
        assert_eq!(pod_hostname(&long), "a".repeat(62));
    }

    #[test]
    fn default_policy_is_the_node_s() {
        let p = pod(serde_json::json!({"dnsPolicy": "Default"}));
        let r = resolv_conf(&p, Some(NODE), &["10.0.0.10".into()], Some("cluster.local"));
        assert_eq!(
            r.text,
            "nameserver 192.168.1.1\nnameserver 192.168.1.2\nsearch corp.example lab.example\noptions edns0 ndots:2\n"
        );
        assert!(r.warnings.is_empty());
        let r = resolv_conf(&p, None, &[], None);
        assert_eq!(r.text, "nameserver 127.0.0.1\nsearch .\n");
    }

    #[test]
    fn cluster_first_with_and_without_cluster_dns() {
        let p = pod(serde_json::json!({}));
        let r = resolv_conf(&p, Some(NODE), &["10.0.0.10".into()], Some("cluster.local"));
        assert_eq!(
            r.text,
            "nameserver 10.0.0.10\nsearch prod.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\noptions ndots:5\n"
        );
        assert!(r.warnings.is_empty());
        let r = resolv_conf(&p, Some(NODE), &[], Some("cluster.local"));
        assert_eq!(r.text, Resolver::parse(NODE).render());
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].0, "MissingClusterDNS");
        assert!(
            r.warnings[0]
                .1
                .contains("Falling back to \"Default\" policy"),
            "{:?}",
            r.warnings
        );
        // hostNetwork: ClusterFirst is the node's, silently;
        // ClusterFirstWithHostNet is the cluster's.
        let hn = pod(serde_json::json!({"hostNetwork": true}));
        let r = resolv_conf(
            &hn,
            Some(NODE),
            &["10.0.0.10".into()],
            Some("cluster.local"),
        );
        assert!(r.text.starts_with("nameserver 192.168.1.1\n") && r.warnings.is_empty());
        let hn =
            pod(serde_json::json!({"hostNetwork": true, "dnsPolicy": "ClusterFirstWithHostNet"}));
        let r = resolv_conf(
            &hn,
            Some(NODE),
            &["10.0.0.10".into()],
            Some("cluster.local"),
        );
        assert!(r.text.starts_with("nameserver 10.0.0.10\n"), "{}", r.text);
    }

    #[test]
    fn none_takes_dns_config_only_and_config_merges() {
        let p = pod(serde_json::json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["1.1.1.1"], "searches": ["a.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}}));
        let r = resolv_conf(&p, Some(NODE), &["10.0.0.10".into()], Some("cluster.local"));
        assert_eq!(
            r.text,
            "nameserver 1.1.1.1\nsearch a.example\noptions ndots:2 edns0\n"
        );
        let p = pod(serde_json::json!({"dnsConfig": {
            "nameservers": ["10.0.0.10", "8.8.8.8", "9.9.9.9"], "searches": ["cluster.local", "x.example"],
            "options": [{"name": "ndots", "value": "1"}]}}));
        let r = resolv_conf(
            &p,
            Some(NODE),
            &["10.0.0.10".into(), "10.0.0.11".into()],
            Some("cluster.local"),
        );
        assert_eq!(
            r.text,
            "nameserver 10.0.0.10\nnameserver 10.0.0.11\nnameserver 8.8.8.8\n\
             search prod.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example x.example\n\
             options ndots:1\n"
        );
        assert_eq!(r.warnings.len(), 1);
        assert_eq!(r.warnings[0].0, "DNSConfigForming");
        assert!(r.warnings[0]
            .1
            .ends_with("the applied nameserver line is: 10.0.0.10 10.0.0.11 8.8.8.8"));
    }

    #[test]
    fn binds_skip_what_the_container_mounts_itself() {
        let dir = Path::new("/r/pods/u");
        let c = Container::default();
        assert_eq!(
            pod_file_binds(&c, dir, true),
            vec![
                "/r/pods/u/etc-hosts:/etc/hosts",
                "/r/pods/u/resolv.conf:/etc/resolv.conf"
            ]
        );
        assert_eq!(
            pod_file_binds(&c, dir, false),
            vec!["/r/pods/u/resolv.conf:/etc/resolv.conf"]
        );
        let c: Container = serde_json::from_value(serde_json::json!({"name": "a",
            "volumeMounts": [{"name": "v", "mountPath": "/etc/hosts"}]}))
        .unwrap();
        assert_eq!(
            pod_file_binds(&c, dir, true),
            vec!["/r/pods/u/resolv.conf:/etc/resolv.conf"]
        );
    }
}
