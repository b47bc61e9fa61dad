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

use std::path::{Path, PathBuf};
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

/// An HTTP GET of `/` at `ip:8080` from inside `container` (busybox's nc:
/// the image's static wget crashes), the body only.
fn fetch_from(container: &str, ip: &str) -> String {
    let script = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 8080");
    let reply = docker(&["exec", container, "sh", "-c", &script]);
    reply
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no HTTP reply from {ip}: {reply:?}"))
        .trim()
        .to_string()
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
    assert_eq!(fetch_from(&running_app(&ctx, "b"), &a_ip), "hello-from-a");
    assert_eq!(fetch_from(&running_app(&ctx, "a"), &b_ip), "hello-from-b");
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

/// The engine's events for the test's node since `since` (Unix seconds):
/// (time in ns, action, container name in the pod).
fn engine_events(ctx: &TestCtx, since: u64) -> Vec<(u128, String, String)> {
    let out = docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        "0s",
        "--filter",
        &format!("label=podvisor.io/node={}", ctx.node),
        "--format",
        "{{.TimeNano}} {{.Action}} {{index .Actor.Attributes \"io.kubernetes.docker.type\"}} {{index .Actor.Attributes \"io.kubernetes.container.name\"}}",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let t = parts.next()?.parse().ok()?;
            let action = parts.next()?.to_string();
            // The infra container has no container name label: "POD".
            let name = match parts.next()? {
                "podsandbox" => "POD".to_string(),
                _ => parts.next().unwrap_or_default().to_string(),
            };
            Some((t, action, name))
        })
        .collect()
}

#[tokio::test]
async fn an_exec_plugin_wires_the_pod_between_its_infra_and_its_apps() {
    let ctx = TestCtx::new("execnet");
    let dir = ctx.path().join("netplugins").join("record-veth");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("record-veth");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plugins/record-veth/record-veth");
    std::fs::copy(&src, &exe).unwrap();
    let t = tag(&ctx);
    let subnet = format!("10.{}.{}", 130 + t % 40, t);
    std::fs::write(
        dir.join("record-veth.env"),
        format!("PODVISOR_TEST_PLUGIN_SUBNET={subnet}\n"),
    )
    .unwrap();
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ctx.write_manifest(
        "web.yaml",
        &pod_yaml("web", "Always", &[("app", &["sleep", "3600"])]),
    );
    let plugin_dir = format!(
        "--network-plugin-dir={}",
        ctx.path().join("netplugins").display()
    );
    let mut pv = Podvisor::spawn(&ctx, &["--network-plugin=record-veth", &plugin_dir]);
    pv.wait_answering(&ctx, Some(200)).await;
    let web = ctx.wait_pod_running(&pv, "web").await;
    let ip = pod_ip(&web);
    assert!(
        ip.starts_with(&subnet),
        "podIP {ip} is not the plugin's ({subnet}.x)"
    );
    let app = ctx
        .pod_containers("web")
        .into_iter()
        .find(|c| c.container() == "app" && c.running())
        .expect("app runs")
        .id;
    let eth1 = docker(&["exec", &app, "ip", "-o", "-4", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("{ip}/24")), "{eth1}");

    ctx.remove_manifest("web.yaml");
    ctx.wait_until(CONVERGE, "web's containers gone", || async {
        let left = ctx.pod_containers("web");
        if left.is_empty() {
            Ok(())
        } else {
            Err(show(&left))
        }
    })
    .await;
    let calls: Vec<(u128, String)> = std::fs::read_to_string(dir.join("calls.log"))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (t, rest) = l.split_once(' ')?;
            Some((t.parse().ok()?, rest.to_string()))
        })
        .collect();
    let at = |what: &str| {
        calls
            .iter()
            .find(|(_, c)| c.starts_with(what))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no {what} call: {calls:?}"))
    };
    let (init, setup, teardown) = (
        at("init"),
        at("setup default web "),
        at("teardown default web "),
    );
    // The engine's list of events ends at a whole second: wait until it
    // holds the infra container's removal.
    let events = ctx
        .wait_until(
            Duration::from_secs(10),
            "the engine's events of web",
            || async {
                let events = engine_events(&ctx, since);
                if events.iter().any(|(_, a, n)| a == "destroy" && n == "POD") {
                    Ok(events)
                } else {
                    Err(format!("{events:?}"))
                }
            },
        )
        .await;
    let event = |action: &str, name: &str| {
        events
            .iter()
            .find(|(_, a, n)| a == action && n == name)
            .map(|(t, _, _)| *t)
            .unwrap_or_else(|| panic!("no {action} of {name}: {events:?}"))
    };
    assert!(init < setup, "{calls:?}");
    assert!(
        event("start", "POD") < setup,
        "the infra container starts first"
    );
    assert!(
        setup < event("start", "app"),
        "the app starts after the setup"
    );
    assert!(
        event("die", "app") < teardown,
        "the apps die before the teardown"
    );
    assert!(
        teardown < event("die", "POD"),
        "the infra container dies after it"
    );
    assert!(
        teardown < event("destroy", "POD"),
        "and is removed after it"
    );
    let infra_of_setup = calls
        .iter()
        .find(|(_, c)| c.starts_with("setup"))
        .and_then(|(_, c)| c.split_whitespace().nth(3))
        .unwrap()
        .to_string();
    assert!(
        calls
            .iter()
            .any(|(_, c)| c == &format!("teardown default web {infra_of_setup}")),
        "the teardown names the same infra container: {calls:?}"
    );
    drop(pv);
}

#[tokio::test]
async fn a_failing_or_garbled_plugin_holds_only_its_pod_back() {
    let ctx = TestCtx::new("badnet");
    let dir = ctx.path().join("netplugins").join("picky");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("picky");
    // Fails the setup of `bad`, prints garbage as the status of `garbled`.
    std::fs::write(
        &exe,
        "#!/bin/sh\ncase \"$1\" in\n  setup) [ \"$3\" = bad ] && { echo 'no address left for bad' >&2; exit 1; }; exit 0 ;;\n  \
         status) [ \"$3\" = garbled ] && echo '%% not json'; exit 0 ;;\n  *) exit 0 ;;\nesac\n",
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for name in ["good", "bad", "garbled"] {
        ctx.write_manifest(
            &format!("{name}.yaml"),
            &pod_yaml(name, "Always", &[("app", &["sleep", "3600"])]),
        );
    }
    let plugin_dir = format!(
        "--network-plugin-dir={}",
        ctx.path().join("netplugins").display()
    );
    let mut pv = Podvisor::spawn(&ctx, &["--network-plugin=picky", &plugin_dir]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "good").await;
    for (pod, says) in [
        ("bad", "no address left for bad"),
        ("garbled", "% not json"),
    ] {
        let message = ctx
            .wait_pod(&pv, pod, CONVERGE, "waiting on its network", |p| {
                let c = container_status(p, "app").ok_or("no status yet")?;
                let w = &c["state"]["waiting"];
                match (w["reason"].as_str(), w["message"].as_str()) {
                    (Some("ContainerCreating"), Some(m)) if m.contains("network plugin picky") => {
                        Ok(m.to_string())
                    }
                    _ => Err(format!("{c}")),
                }
            })
            .await;
        assert!(message.contains(says), "{pod}: {message}");
        assert!(
            ctx.pod_containers(pod)
                .iter()
                .all(|c| c.container() != "app"),
            "{pod}: no app container on an unwired pod"
        );
    }
    let events = pv.events("default", "bad").await.expect("bad's events");
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "FailedCreatePodSandBox"),
        "{events:?}"
    );
    drop(pv);
}
