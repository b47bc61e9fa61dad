//! End-to-end tests of the files a pod gets (issue 17, "Real-world Pods,
//! part 2"): `downwardAPI` volumes (values, modes, an annotation edit
//! showing up without a restart, a refused field), the pod's `/etc/hosts`
//! and hostname (`hostAliases`, `hostname`, `subdomain`), its `resolv.conf`
//! by `dnsPolicy` (`None` with `dnsConfig`, `ClusterFirst` with and without
//! `--cluster-dns`; `None` without nameservers refused), and an emptyDir
//! owned by the pod's `fsGroup`.

#[allow(dead_code)]
mod e2e_support;

use std::time::Duration;

use e2e_support::*;
use serde_json::{json, Value};

/// One busybox container `app` sleeping, with `extra` merged into it.
fn sleeper(name: &str, container_extra: Value, spec_extra: Value) -> Value {
    let mut c = json!({
        "name": "app",
        "image": env().busybox_image,
        "command": ["sleep", "3600"],
    });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), container_extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    pod_json(name, "Always", json!([c]), spec_extra)
}

/// The running `app` container of `pod` (as `/pods` shows it).
fn app_id(pod: &Value) -> String {
    let s = container_status(pod, "app").expect("app's status");
    docker_id(s).expect("app's ID").to_string()
}

/// `docker exec <id> <cmd…>`'s output (trimmed: compare with
/// `trim_end()`ed expectations).
fn exec(id: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", id];
    args.extend_from_slice(cmd);
    docker(&args)
}

#[tokio::test]
async fn a_downward_api_volume_shows_the_pod_and_follows_its_annotations() {
    let ctx = TestCtx::new("dapi");
    let mut manifest = sleeper(
        "dapi",
        json!({
            "resources": {"limits": {"memory": "64Mi"}},
            "volumeMounts": [{"name": "podinfo", "mountPath": "/etc/podinfo"}],
        }),
        json!({"volumes": [{"name": "podinfo", "downwardAPI": {
        "defaultMode": 0o640,
        "items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "annotations", "fieldRef": {"fieldPath": "metadata.annotations"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
            {"path": "limits/memory", "resourceFieldRef": {
                "containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        ]}}]}),
    );
    manifest["metadata"]["labels"] = json!({"app": "web", "tier": "front"});
    manifest["metadata"]["annotations"] = json!({"note": "one"});
    ctx.write_json("dapi.json", &manifest);
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "dapi").await;
    let id = app_id(&pod);
    let cat = |f: &str| exec(&id, &["cat", &format!("/etc/podinfo/{f}")]);
    assert_eq!(cat("labels"), "app=\"web\"\ntier=\"front\"");
    assert_eq!(cat("annotations"), "note=\"one\"");
    assert_eq!(cat("name"), "dapi");
    assert_eq!(cat("limits/memory"), "64");
    // Modes: the item's, else defaultMode; `..data` is the kubelet's swap.
    let modes = exec(
        &id,
        &[
            "stat",
            "-L",
            "-c",
            "%a %n",
            "/etc/podinfo/name",
            "/etc/podinfo/labels",
        ],
    );
    assert_eq!(
        modes.trim(),
        "600 /etc/podinfo/name\n640 /etc/podinfo/labels"
    );
    let link = exec(&id, &["readlink", "/etc/podinfo/name"]);
    assert_eq!(link.trim(), "..data/name");
    // Read-only, as the kubelet mounts it.
    let write = docker_try(&["exec", &id, "touch", "/etc/podinfo/x"]);
    assert!(write.is_err(), "the volume is writable: {write:?}");

    // An annotation edit: the file follows, the container stays.
    manifest["metadata"]["annotations"] = json!({"note": "two", "added": "yes"});
    ctx.write_json("dapi.json", &manifest);
    ctx.wait_until(
        Duration::from_secs(20),
        "the annotations file to change",
        || async {
            match docker_try(&["exec", &id, "cat", "/etc/podinfo/annotations"]) {
                Ok(t) if t == "added=\"yes\"\nnote=\"two\"" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert!(
        ctx.pod_containers("dapi")
            .iter()
            .any(|c| c.id == id && c.running()),
        "the container was not restarted"
    );
    let pod = find_pod(&pv.pods().await.unwrap(), "dapi")
        .cloned()
        .unwrap();
    assert_eq!(container_status(&pod, "app").unwrap()["restartCount"], 0);
    assert_eq!(cat("labels"), "app=\"web\"\ntier=\"front\"");
}

#[tokio::test]
async fn a_downward_api_volume_with_an_env_only_field_is_refused_naming_it() {
    let ctx = TestCtx::new("dapi-bad");
    ctx.write_json(
        "bad.json",
        &sleeper(
            "bad",
            json!({}),
            json!({"volumes": [{"name": "info", "downwardAPI": {"items": [
                {"path": "node", "fieldRef": {"fieldPath": "spec.nodeName"}}]}}]}),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    let message = ctx
        .wait_pod(&pv, "bad", CONVERGE, "Failed/InvalidVolume", |p| {
            match (
                p["status"]["phase"].as_str(),
                p["status"]["reason"].as_str(),
            ) {
                (Some("Failed"), Some("InvalidVolume")) => Ok(p["status"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()),
                _ => Err("not refused".into()),
            }
        })
        .await;
    assert!(
        message.contains(
            "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath: Unsupported value: \"spec.nodeName\""
        ),
        "{message}"
    );
    assert!(ctx.pod_containers("bad").is_empty(), "nothing is created");
}

#[tokio::test]
async fn hosts_file_and_hostname_with_aliases_and_a_subdomain() {
    let ctx = TestCtx::new("hosts");
    ctx.write_json(
        "db.json",
        &sleeper(
            "db",
            json!({}),
            json!({
                "hostname": "db-0",
                "subdomain": "db",
                "hostAliases": [
                    {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]},
                    {"ip": "127.0.0.1", "hostnames": ["foo.local"]},
                ],
            }),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &["--cluster-domain", "cluster.local"]);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "db").await;
    let id = app_id(&pod);
    let ip = pod["status"]["podIP"]
        .as_str()
        .expect("a pod IP")
        .to_string();
    assert!(!ip.is_empty());
    let hosts = exec(&id, &["cat", "/etc/hosts"]);
    assert_eq!(
        hosts,
        format!(
            "# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n\
             {ip}\tdb-0.db.default.svc.cluster.local\tdb-0\n\
             \n# Entries added by HostAliases.\n\
             10.1.2.3\tfoo.remote\tbar.remote\n127.0.0.1\tfoo.local\n"
        )
        .trim_end()
    );
    assert_eq!(exec(&id, &["hostname"]).trim(), "db-0");
    // The aliases resolve inside the container.
    let ping = exec(
        &id,
        &["sh", "-c", "ping -c1 -W1 foo.local >/dev/null && echo ok"],
    );
    assert_eq!(ping.trim(), "ok");
}

/// The resolv.conf of the `app` container of a pod with `spec_extra`, on a
/// node started with `flags` (and a resolv.conf of its own).
async fn resolv_of(tag: &str, spec_extra: Value, flags: &[&str]) -> (String, Vec<Value>) {
    let ctx = TestCtx::new(tag);
    let node_resolv = ctx.path().join("node-resolv.conf");
    std::fs::write(
        &node_resolv,
        "# the node's\nnameserver 192.0.2.53\nsearch node.example\noptions edns0\n",
    )
    .unwrap();
    let resolv_flag = format!("--resolv-conf={}", node_resolv.display());
    let mut all = vec![resolv_flag.as_str()];
    all.extend_from_slice(flags);
    ctx.write_json("dns.json", &sleeper("dns", json!({}), spec_extra));
    let mut pv = Podvisor::spawn(&ctx, &all);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "dns").await;
    let text = exec(&app_id(&pod), &["cat", "/etc/resolv.conf"]);
    let events = pv.events("default", "dns").await.unwrap();
    (text, events)
}

fn reasons(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn dns_policy_none_takes_the_dns_config() {
    let (text, _) = resolv_of(
        "dns-none",
        json!({"dnsPolicy": "None", "dnsConfig": {
            "nameservers": ["192.0.2.1", "192.0.2.2"],
            "searches": ["a.example", "b.example"],
            "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
        }}),
        &["--cluster-dns=10.0.0.10", "--cluster-domain=cluster.local"],
    )
    .await;
    assert_eq!(
        text,
        "nameserver 192.0.2.1\nnameserver 192.0.2.2\nsearch a.example b.example\noptions ndots:2 edns0\n".trim_end()
    );
}

#[tokio::test]
async fn cluster_first_without_cluster_dns_is_the_node_s_with_a_warning() {
    let (text, events) = resolv_of("dns-nocl", json!({}), &[]).await;
    assert_eq!(
        text,
        "nameserver 192.0.2.53\nsearch node.example\noptions edns0\n".trim_end()
    );
    let warning = events
        .iter()
        .find(|e| e["reason"] == "MissingClusterDNS")
        .unwrap_or_else(|| panic!("no MissingClusterDNS event: {:?}", reasons(&events)));
    assert_eq!(warning["type"], "Warning");
    assert!(
        warning["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Falling back to \"Default\" policy"),
        "{warning}"
    );
}

#[tokio::test]
async fn cluster_first_with_cluster_dns_searches_the_cluster() {
    let (text, events) = resolv_of(
        "dns-cl",
        json!({"dnsConfig": {"options": [{"name": "ndots", "value": "3"}]}}),
        &["--cluster-dns=10.0.0.10", "--cluster-domain=cluster.local"],
    )
    .await;
    assert_eq!(
        text,
        "nameserver 10.0.0.10\n\
         search default.svc.cluster.local svc.cluster.local cluster.local node.example\n\
         options ndots:3\n"
            .trim_end()
    );
    assert!(
        !reasons(&events).iter().any(|r| r == "MissingClusterDNS"),
        "{events:?}"
    );
}

#[tokio::test]
async fn an_empty_dir_is_owned_by_the_fs_group_setgid_and_group_writable() {
    let ctx = TestCtx::new("fsgroup");
    ctx.write_json(
        "fsg.json",
        &sleeper(
            "fsg",
            json!({"volumeMounts": [{"name": "data", "mountPath": "/data"}]}),
            json!({
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2345},
                "volumes": [{"name": "data", "emptyDir": {}}],
            }),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "fsg").await;
    let id = app_id(&pod);
    assert_eq!(
        exec(&id, &["stat", "-c", "%g %a", "/data"]).trim(),
        "2345 2777"
    );
    // A file made there belongs to the group (setgid), not the user's.
    let made = exec(
        &id,
        &["sh", "-c", "touch /data/f && stat -c '%u %g' /data/f"],
    );
    assert_eq!(made.trim(), "1000 2345");
}

/// The API server's check, which the manifest's validation makes: the
/// document is refused as a bad manifest, naming the field.
#[tokio::test]
async fn dns_policy_none_without_nameservers_is_refused_naming_the_field() {
    let ctx = TestCtx::new("dns-bad");
    ctx.write_json(
        "bad.json",
        &sleeper(
            "bad",
            json!({}),
            json!({"dnsPolicy": "None", "dnsConfig": {}}),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    let wanted = "bad.json: document 0: spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None";
    ctx.wait_until(CONVERGE, "the refusal in the log", || async {
        match ctx.all_logs().contains(wanted) {
            true => Ok(()),
            false => Err(ctx.log_tail()),
        }
    })
    .await;
    let list = pv.pods().await.unwrap();
    assert!(find_pod(&list, "bad").is_none(), "{list}");
    assert!(ctx.pod_containers("bad").is_empty(), "nothing is created");
}
