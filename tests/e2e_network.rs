//! End-to-end tests of pod networking through plugins (issue 14), on the
//! real engine with Debian's real CNI plugins (bridge, host-local,
//! portmap, firewall) and with an exec plugin that really moves a veth
//! into the pod: pods reach each other by pod IP, `status.podIP` is the
//! address inside the container, a hostPort answers on the host, and
//! nothing leaks (host-local's store, veths, kept records), after a
//! delete and after a SIGKILL with the pods deleted while podvisor was
//! down. Each test has its own network name, bridge, subnet and IPAM
//! directory, so the tests run in parallel.

#[allow(dead_code)]
mod e2e_support;

use std::path::PathBuf;
use std::time::Duration;

use e2e_support::*;
use serde_json::Value;

/// A unique small number for names and subnets (from the node name).
fn tag(ctx: &TestCtx) -> u8 {
    let n = ctx
        .node
        .bytes()
        .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    (n % 200) as u8 + 20
}

/// A CNI network of its own: the conflist directory, the bridge, the
/// subnet's first three octets and host-local's data directory.
struct CniNet {
    conf_dir: PathBuf,
    bridge: String,
    subnet: String,
    data_dir: PathBuf,
    name: String,
}

impl CniNet {
    fn new(ctx: &TestCtx, portmap: bool) -> Self {
        let t = tag(ctx);
        let suffix = random_suffix();
        let bridge = format!("pvb{}", &suffix[..suffix.len().min(8)]);
        let subnet = format!("10.{}.{}", 180 + t % 50, t);
        let name = format!("pv-{}", ctx.node);
        let conf_dir = ctx.path().join("cni");
        let data_dir = ctx.path().join("ipam");
        std::fs::create_dir_all(&conf_dir).unwrap();
        let mut plugins = vec![serde_json::json!({
            "type": "bridge", "bridge": bridge, "isGateway": true, "ipMasq": true,
            "ipam": {"type": "host-local", "dataDir": data_dir,
                     "ranges": [[{"subnet": format!("{subnet}.0/24")}]],
                     "routes": [{"dst": "0.0.0.0/0"}]},
        })];
        if portmap {
            plugins.push(serde_json::json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}));
        }
        plugins.push(serde_json::json!({"type": "firewall"}));
        let conf = serde_json::json!({"cniVersion": "1.0.0", "name": name, "plugins": plugins});
        std::fs::write(conf_dir.join("10-test.conflist"), conf.to_string()).unwrap();
        CniNet {
            conf_dir,
            bridge,
            subnet,
            data_dir,
            name,
        }
    }

    fn flags(&self) -> Vec<String> {
        vec![
            "--network-plugin=cni".into(),
            format!("--cni-conf-dir={}", self.conf_dir.display()),
        ]
    }

    /// The addresses host-local holds (its files named by IP).
    fn leased(&self) -> Vec<String> {
        let dir = self.data_dir.join(&self.name);
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|f| f.starts_with(&self.subnet))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The veths still on the bridge.
    fn veths(&self) -> String {
        let out = std::process::Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for CniNet {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

fn httpd_pod(name: &str, text: &str, host_port: Option<u16>) -> String {
    let host_port = host_port.map_or(String::new(), |p| format!(", hostPort: {p}"));
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  \
         containers:\n  - name: web\n    image: {}\n    command: [sh, -c, \"mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p 8080 -h /www\"]\n    \
         ports: [{{containerPort: 8080{host_port}}}]\n",
        env().busybox_image
    )
}

fn running_app(ctx: &TestCtx, pod: &str) -> String {
    ctx.pod_containers(pod)
        .into_iter()
        .find(|c| c.container() == "web" && c.running())
        .map(|c| c.id)
        .unwrap_or_else(|| panic!("{pod}'s web is not running\n{}", ctx.failure_report()))
}

fn pod_ip(pod: &Value) -> String {
    pod["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn until_clean(ctx: &TestCtx, net: &CniNet, what: &str) {
    ctx.wait_until(CONVERGE, what, || async {
        let (leased, veths) = (net.leased(), net.veths());
        let containers = ctx.containers();
        if leased.is_empty() && veths.is_empty() && containers.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "leased {leased:?}; veths {veths:?}; containers {}",
                show(&containers)
            ))
        }
    })
    .await;
}

fn kept_records(ctx: &TestCtx) -> Vec<String> {
    std::fs::read_dir(ctx.path().join("root").join("network"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn cni_pods_reach_each_other_serve_a_host_port_and_leak_nothing() {
    let ctx = TestCtx::new("cni");
    let net = CniNet::new(&ctx, true);
    let host_port = free_port();
    ctx.write_manifest("a.yaml", &httpd_pod("a", "hello-from-a", Some(host_port)));
    ctx.write_manifest("b.yaml", &httpd_pod("b", "hello-from-b", None));
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut pv = Podvisor::spawn(&ctx, &flags);
    pv.wait_answering(&ctx, Some(200)).await;
    let a = ctx.wait_pod_running(&pv, "a").await;
    let b = ctx.wait_pod_running(&pv, "b").await;
    let (a_ip, b_ip) = (pod_ip(&a), pod_ip(&b));
    assert!(
        a_ip.starts_with(&net.subnet),
        "a's IP {a_ip} is not on {}",
        net.subnet
    );
    assert!(
        b_ip.starts_with(&net.subnet),
        "b's IP {b_ip} is not on {}",
        net.subnet
    );
    assert_ne!(a_ip, b_ip);

    // status.podIP is the address inside the container.
    let inside = docker(&[
        "exec",
        &running_app(&ctx, "a"),
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(inside.contains(&format!("{a_ip}/")), "{inside}");
    // Pod to pod by IP, both ways.
    let got = docker(&[
        "exec",
        &running_app(&ctx, "b"),
        "wget",
        "-qO-",
        "-T",
        "5",
        &format!("http://{a_ip}:8080/"),
    ]);
    assert_eq!(got.trim(), "hello-from-a");
    let got = docker(&[
        "exec",
        &running_app(&ctx, "a"),
        "wget",
        "-qO-",
        "-T",
        "5",
        &format!("http://{b_ip}:8080/"),
    ]);
    assert_eq!(got.trim(), "hello-from-b");
    // The hostPort answers on the host (portmap).
    let url = format!("http://127.0.0.1:{host_port}/");
    let body = ctx
        .wait_until(
            Duration::from_secs(15),
            "the hostPort to answer",
            || async {
                let r = reqwest::get(&url).await.map_err(|e| e.to_string())?;
                r.text().await.map_err(|e| e.to_string())
            },
        )
        .await;
    assert_eq!(body.trim(), "hello-from-a");
    assert_eq!(net.leased().len(), 2, "{:?}", net.leased());
    assert_eq!(kept_records(&ctx).len(), 2, "{:?}", kept_records(&ctx));

    // Deleted: containers, addresses, veths and records all go.
    ctx.remove_manifest("a.yaml");
    ctx.remove_manifest("b.yaml");
    until_clean(&ctx, &net, "a and b gone with their network").await;
    assert!(kept_records(&ctx).is_empty(), "{:?}", kept_records(&ctx));

    // SIGKILL, pods deleted while podvisor is down, started again.
    ctx.write_manifest("c.yaml", &httpd_pod("c", "c", None));
    ctx.write_manifest("d.yaml", &httpd_pod("d", "d", None));
    ctx.wait_pod_running(&pv, "c").await;
    ctx.wait_pod_running(&pv, "d").await;
    assert_eq!(net.leased().len(), 2);
    pv.kill9();
    ctx.remove_manifest("c.yaml");
    ctx.remove_manifest("d.yaml");
    // d's containers are even removed by hand: its network is found by
    // its kept record alone.
    for c in ctx.pod_containers("d") {
        docker(&["rm", "-f", &c.id]);
    }
    let mut pv = Podvisor::spawn(&ctx, &flags);
    pv.wait_answering(&ctx, Some(200)).await;
    until_clean(
        &ctx,
        &net,
        "c and d gone with their network after the restart",
    )
    .await;
    ctx.wait_until(CONVERGE, "no kept record left", || async {
        let kept = kept_records(&ctx);
        if kept.is_empty() {
            Ok(())
        } else {
            Err(format!("{kept:?}"))
        }
    })
    .await;
    drop(pv);
}

#[tokio::test]
async fn a_host_port_without_portmap_is_refused_and_bad_cni_input_is_named() {
    let ctx = TestCtx::new("cnibad");
    let net = CniNet::new(&ctx, false);
    ctx.write_manifest("hp.yaml", &httpd_pod("hp", "x", Some(free_port())));
    ctx.write_manifest("ok.yaml", &httpd_pod("ok", "y", None));
    let flags = net.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut pv = Podvisor::spawn(&ctx, &flags);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "ok").await;
    let refused = ctx
        .wait_pod(&pv, "hp", CONVERGE, "refused for its hostPort", |p| {
            if p["status"]["reason"] == "UnsupportedHostPort" {
                Ok(p.clone())
            } else {
                Err("not refused".into())
            }
        })
        .await;
    let message = refused["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("hostPort") && message.contains("portmap"),
        "{message}"
    );
    drop(pv);

    // A conflist that does not parse: podvisor refuses to start, naming it.
    let bad_dir = ctx.path().join("badcni");
    std::fs::create_dir_all(&bad_dir).unwrap();
    std::fs::write(bad_dir.join("10-bad.conflist"), "{ not json").unwrap();
    let (code, log) = run_expecting_exit(
        &ctx,
        &[
            "--network-plugin=cni",
            &format!("--cni-conf-dir={}", bad_dir.display()),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(log.contains("10-bad.conflist"), "{log}");
    // A missing exec plugin: refused, naming the path tried.
    let (code, log) = run_expecting_exit(
        &ctx,
        &[
            "--network-plugin=nowhere",
            &format!("--network-plugin-dir={}", ctx.path().display()),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(log.contains("nowhere"), "{log}");
}
