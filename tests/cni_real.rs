//! `network::cni` against Debian's real CNI plugins (`/usr/lib/cni`:
//! bridge, host-local, portmap, firewall) in `ip netns` namespaces.
//!
//! Needs root (namespaces, links, iptables): run as root with
//! `cargo test --features test-util --test cni_real`. Without root, or
//! without the plugins or `ip`, the tests fail saying so; they never skip.
//!
//! Each test has its own namespace, bridge, /24 (10.199.<n>.0/24 from the
//! process id) and host-local `dataDir` in a tempdir; all are removed on
//! drop, whatever the outcome.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use podvisor::network::cni::{CniPlugin, Record};
use podvisor::network::{NetworkPlugin, PodNetwork};
use podvisor::runtime::PortMapping;
use serde_json::{json, Value};

const BIN_DIR: &str = "/usr/lib/cni";

fn require_root_and_plugins() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "tests/cni_real.rs needs root (network namespaces, links, iptables); \
         run it as root: cargo test --features test-util --test cni_real"
    );
    for plugin in ["bridge", "host-local", "portmap", "firewall"] {
        let path = Path::new(BIN_DIR).join(plugin);
        assert!(
            path.is_file(),
            "{} is missing: install Debian's containernetworking-plugins",
            path.display()
        );
    }
    for (tool, arg) in [("ip", "-V"), ("iptables", "-V")] {
        let out = Command::new(tool).arg(arg).output();
        assert!(
            out.is_ok_and(|o| o.status.success()),
            "`{tool}` is needed (iproute2, iptables)"
        );
    }
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

/// One test's namespace, bridge, subnet and configuration directory.
struct Net {
    netns: String,
    bridge: String,
    subnet: String,
    dir: tempfile::TempDir,
    container_id: String,
}

impl Net {
    /// `idx`: this test's number, so that the tests of one run differ.
    fn new(idx: u32, plugins: &[&str]) -> Net {
        require_root_and_plugins();
        let pid = std::process::id();
        let octet = (pid.wrapping_mul(7).wrapping_add(idx * 61)) % 230 + 10;
        let net = Net {
            netns: format!("podvisor-cnit-{pid}-{idx}"),
            bridge: format!("cnt{}x{idx}", pid % 100_000),
            subnet: format!("10.199.{octet}.0/24"),
            dir: tempfile::tempdir().unwrap(),
            container_id: format!("cnitest{pid}x{idx}"),
        };
        let out = ip(&["netns", "add", &net.netns]);
        assert!(
            out.status.success(),
            "ip netns add {}: {}",
            net.netns,
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::create_dir(net.conf_dir()).unwrap();
        std::fs::write(
            net.conf_dir().join("10-podvisor.conflist"),
            net.conflist(plugins).to_string(),
        )
        .unwrap();
        net
    }

    fn conf_dir(&self) -> PathBuf {
        self.dir.path().join("net.d")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("ipam")
    }

    /// The example `config/cni/10-podvisor.conflist`, with this test's
    /// bridge, subnet and dataDir, keeping only the plugins named.
    fn conflist(&self, keep: &[&str]) -> Value {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cni/10-podvisor.conflist");
        let text = std::fs::read_to_string(&example).unwrap();
        let mut list: Value = serde_json::from_str(&text).unwrap();
        let plugins = list["plugins"].as_array_mut().unwrap();
        plugins.retain(|p| keep.contains(&p["type"].as_str().unwrap()));
        assert_eq!(
            plugins.len(),
            keep.len(),
            "the example lacks one of {keep:?}"
        );
        let bridge = &mut plugins[0];
        assert_eq!(bridge["type"], "bridge");
        bridge["bridge"] = json!(self.bridge);
        bridge["ipam"]["ranges"] = json!([[{"subnet": self.subnet}]]);
        bridge["ipam"]["dataDir"] = json!(self.data_dir());
        list
    }

    fn cni(&self) -> CniPlugin {
        CniPlugin::new(
            self.conf_dir(),
            vec![self.dir.path().join("no-such-bin"), PathBuf::from(BIN_DIR)],
            Duration::from_secs(30),
        )
    }

    fn netns_path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.netns)
    }

    fn pod(&self, ports: Vec<PortMapping>) -> PodNetwork {
        PodNetwork {
            namespace: "default".into(),
            name: format!("cni-real-{}", self.netns),
            uid: "0b7a2e6c-0000-4000-8000-000000000001".into(),
            infra_id: self.container_id.clone(),
            netns: Some(self.netns_path()),
            ports,
            record: None,
        }
    }

    /// The file host-local keeps for an address it gave out.
    fn lease(&self, ip: &IpAddr) -> PathBuf {
        self.data_dir().join("podvisor").join(ip.to_string())
    }

    /// The IPv4 addresses of `eth0` in the namespace.
    fn eth0_addresses(&self) -> Vec<IpAddr> {
        let out = ip(&["-4", "-n", &self.netns, "-j", "addr", "show", "dev", "eth0"]);
        if !out.status.success() {
            return vec![];
        }
        let links: Value = serde_json::from_slice(&out.stdout).unwrap();
        links
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a["local"].as_str().and_then(|s| s.parse().ok()))
            .collect()
    }

    fn delete_netns(&self) {
        let out = ip(&["netns", "del", &self.netns]);
        assert!(out.status.success(), "ip netns del {}", self.netns);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.netns]);
        let _ = ip(&["link", "del", &self.bridge]);
        self.remove_iptables_leftovers();
    }
}

impl Net {
    /// Rules a plugin could not remove (see the tests) or a failed test
    /// left: those naming this test's subnet or container, and the
    /// per-container chains they jumped to.
    fn remove_iptables_leftovers(&self) {
        let subnet = self.subnet.trim_end_matches("0/24");
        for table in ["nat", "filter"] {
            let mut chains = Vec::new();
            for rule in iptables(&["-t", table, "-S"]).lines() {
                if !rule.starts_with("-A ")
                    || !(rule.contains(subnet) || rule.contains(&self.container_id))
                {
                    continue;
                }
                if let Some(target) = rule.split(" -j ").nth(1) {
                    let target = target.split_whitespace().next().unwrap_or("");
                    if target.starts_with("CNI-")
                        && !target.starts_with("CNI-HOSTPORT-")
                        && target != "CNI-FORWARD"
                    {
                        chains.push(target.to_string());
                    }
                }
                // `iptables -S` quotes its output for a shell.
                let delete = format!("iptables -w -t {table} -D {}", &rule[3..]);
                let _ = Command::new("sh").arg("-c").arg(delete).output();
            }
            for chain in chains {
                let _ = Command::new("iptables")
                    .args(["-w", "-t", table, "-F", &chain])
                    .output();
                let _ = Command::new("iptables")
                    .args(["-w", "-t", table, "-X", &chain])
                    .output();
            }
        }
    }
}

/// The host end of the pod's veth, from the ADD result's interfaces (the
/// one that is neither the bridge nor in a sandbox).
fn host_veth(result: &Value, bridge: &str) -> String {
    result["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| {
            i["name"] != bridge
                && i.get("sandbox")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
        })
        .and_then(|i| i["name"].as_str())
        .unwrap_or_else(|| panic!("no host veth in {result}"))
        .to_string()
}

/// `iptables <args>`'s output (empty when the chain is not there).
fn iptables(args: &[&str]) -> String {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("iptables {args:?}: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).status.success()
}

#[tokio::test]
async fn the_example_chain_wires_checks_and_unwires_a_namespace() {
    let net = Net::new(1, &["bridge", "portmap", "firewall"]);
    let cni = net.cni();
    cni.init().await.unwrap();
    assert!(cni.serves_host_ports(), "the example has portmap");

    let mut pod = net.pod(vec![]);
    let wired = cni.setup(&pod).await.unwrap();
    assert_eq!(wired.ips.len(), 1, "{wired:?}");
    let pod_ip = wired.ips[0];
    let prefix = net.subnet.trim_end_matches("0/24");
    assert!(
        pod_ip.to_string().starts_with(prefix),
        "{pod_ip} not in {}",
        net.subnet
    );
    assert_eq!(net.eth0_addresses(), vec![pod_ip]);
    assert!(net.lease(&pod_ip).is_file(), "no lease for {pod_ip}");
    let record: Record = serde_json::from_value(wired.record.clone()).unwrap();
    assert_eq!(record.network, "podvisor");
    assert_eq!(record.cni_version, "1.0.0");
    let veth = host_veth(&record.result, &net.bridge);
    assert!(link_exists(&veth), "host veth {veth} missing after ADD");
    // The firewall plugin let the pod's traffic through FORWARD.
    assert!(
        iptables(&["-S", "CNI-FORWARD"]).contains(&pod_ip.to_string()),
        "no CNI-FORWARD rule for {pod_ip}"
    );

    pod.record = Some(wired.record.clone());
    assert_eq!(cni.status(&pod).await.unwrap().ips, vec![pod_ip]);
    cni.check(&pod).await.unwrap();

    cni.teardown(&pod).await.unwrap();
    assert!(
        !net.lease(&pod_ip).exists(),
        "{pod_ip} still leased after DEL"
    );
    assert!(!link_exists(&veth), "host veth {veth} left after DEL");
    assert!(
        net.eth0_addresses().is_empty(),
        "eth0 left in the namespace"
    );
    assert!(
        !iptables(&["-S", "CNI-FORWARD"]).contains(&pod_ip.to_string()),
        "CNI-FORWARD rule for {pod_ip} left after DEL"
    );
    // CHECK now sees the namespace is not as set up.
    assert!(cni.check(&pod).await.is_err(), "CHECK after DEL succeeded");
    // Idempotent.
    cni.teardown(&pod).await.unwrap();
}

#[tokio::test]
async fn host_ports_reach_portmap_and_a_teardown_without_record_removes_them() {
    let net = Net::new(4, &["bridge", "portmap", "firewall"]);
    let cni = net.cni();
    cni.init().await.unwrap();
    let host_port = 20000 + (std::process::id() % 20000) as u16;
    let mut pod = net.pod(vec![PortMapping {
        container_port: 80,
        protocol: "TCP".into(),
        host_port: Some(host_port),
        host_ip: None,
    }]);
    let wired = cni.setup(&pod).await.unwrap();
    let pod_ip = wired.ips[0];
    let dnat = iptables(&["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]);
    let rule = dnat
        .lines()
        .find(|l| l.contains(&net.container_id))
        .unwrap_or_else(|| panic!("no DNAT rule for {}:\n{dnat}", net.container_id));
    assert!(rule.contains(&host_port.to_string()), "{rule}");

    // Debian's portmap 1.1.1 fails CHECK of an IPv4-only pod with host
    // ports where ip6tables has a nat table (containernetworking/plugins
    // #819): CHECK leaves portmap out, so the pod's check passes.
    pod.record = Some(wired.record);
    cni.check(&pod)
        .await
        .unwrap_or_else(|e| panic!("a hostPort pod's CHECK: {e}"));

    // portmap finds its rules by container ID: no record needed.
    pod.record = None;
    cni.teardown(&pod).await.unwrap();
    assert!(!net.lease(&pod_ip).exists(), "{pod_ip} still leased");
    let dnat = iptables(&["-t", "nat", "-S", "CNI-HOSTPORT-DNAT"]);
    assert!(
        !dnat.contains(&net.container_id),
        "DNAT rule left after DEL:\n{dnat}"
    );
}

#[tokio::test]
async fn a_teardown_after_the_namespace_is_gone_releases_the_address() {
    let net = Net::new(2, &["bridge"]);
    // This one speaks 0.4.0 (its results have `ips[].version`).
    let mut list = net.conflist(&["bridge"]);
    list["cniVersion"] = json!("0.4.0");
    std::fs::write(
        net.conf_dir().join("10-podvisor.conflist"),
        list.to_string(),
    )
    .unwrap();
    let cni = net.cni();
    cni.init().await.unwrap();
    assert!(!cni.serves_host_ports(), "no portmap in this chain");

    let mut pod = net.pod(vec![]);
    let wired = cni.setup(&pod).await.unwrap();
    let record: Record = serde_json::from_value(wired.record.clone()).unwrap();
    assert_eq!(record.result["cniVersion"], "0.4.0");
    assert_eq!(record.result["ips"][0]["version"], "4");
    let pod_ip = wired.ips[0];
    pod.record = Some(wired.record.clone());
    cni.check(&pod).await.unwrap();
    assert!(net.lease(&pod_ip).is_file());
    assert_eq!(net.eth0_addresses(), vec![pod_ip]);

    // Debian's bridge 1.1.1 finds the addresses whose ipMasq rules it
    // removes in the namespace: with it gone, only the address is released
    // (the rules are left; Drop removes them). Hence a teardown belongs
    // before the infra container goes.
    net.delete_netns();
    pod.netns = None;
    cni.teardown(&pod).await.unwrap();
    assert!(!net.lease(&pod_ip).exists(), "{pod_ip} still leased");
    // Again, and without the record.
    cni.teardown(&pod).await.unwrap();
    pod.record = None;
    cni.teardown(&pod).await.unwrap();
}

#[tokio::test]
async fn a_teardown_without_the_record_releases_the_address_and_the_veth() {
    let net = Net::new(3, &["bridge", "portmap", "firewall"]);
    let cni = net.cni();
    cni.init().await.unwrap();
    let mut pod = net.pod(vec![]);
    let wired = cni.setup(&pod).await.unwrap();
    let pod_ip = wired.ips[0];
    let record: Record = serde_json::from_value(wired.record).unwrap();
    let veth = host_veth(&record.result, &net.bridge);

    // Without prevResult the firewall plugin does not know the pod's IP
    // and leaves its CNI-FORWARD rules (Drop removes them): the record is
    // what a full teardown needs.
    pod.record = None;
    cni.teardown(&pod).await.unwrap();
    assert!(!net.lease(&pod_ip).exists(), "{pod_ip} still leased");
    assert!(!link_exists(&veth), "host veth {veth} left");
    // A DEL for a container the plugins never saw succeeds too.
    let mut never = net.pod(vec![]);
    never.infra_id = format!("{}never", net.container_id);
    cni.teardown(&never).await.unwrap();
}
