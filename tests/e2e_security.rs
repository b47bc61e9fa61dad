//! End-to-end tests of the security a pod gets (issue 17, items 4 and 7):
//! the OOM score adjustment the kubelet gives by QoS class, seccomp
//! `Unconfined` unless a profile (or `--seccomp-default`) asks otherwise, a
//! Localhost seccomp profile from `<root-dir>/seccomp`, `no-new-privileges`,
//! safe sysctls; and requests the engine cannot honour (`hostUsers: false`
//! without user-namespace remapping, AppArmor without AppArmor, unsafe
//! sysctls) refused with the kubelet's reason. Each test reads what this
//! engine has (`docker info`) and asserts the branch it must take.

#[allow(dead_code)]
mod e2e_support;

use e2e_support::*;
use serde_json::{json, Value};

fn sleeper(name: &str, resources: Value, security: Value) -> Value {
    json!({"name": name, "image": env().busybox_image, "imagePullPolicy": "IfNotPresent",
        "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"],
        "resources": resources, "securityContext": security})
}

/// The Docker ID of `container` of a running pod, and of its infra container.
async fn ids(ctx: &TestCtx, pv: &Podvisor, pod: &str, container: &str) -> (String, String) {
    let p = ctx.wait_pod_running(pv, pod).await;
    let app = docker_id(container_status(&p, container).expect("a status"))
        .expect("a docker ID")
        .to_string();
    let infra = inspect(&app, "{{.HostConfig.NetworkMode}}")
        .strip_prefix("container:")
        .expect("joins the infra container")
        .to_string();
    (app, infra)
}

/// A line of the container's `/proc/1/status` (`Seccomp`, `NoNewPrivs`).
fn proc_status(id: &str, key: &str) -> String {
    let status = docker(&["exec", id, "cat", "/proc/1/status"]);
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

fn oom_adj(id: &str) -> i64 {
    inspect(id, "{{.HostConfig.OomScoreAdj}}")
        .trim()
        .parse()
        .expect("a number")
}

fn security_opt(id: &str) -> String {
    inspect(id, "{{json .HostConfig.SecurityOpt}}")
}

/// The engine's `SecurityOptions` (`name=seccomp,profile=default`, ...).
fn engine_has(name: &str) -> bool {
    docker(&["info", "--format", "{{json .SecurityOptions}}"]).contains(&format!("name={name}"))
}

/// Waits until the pod is `Failed` with `reason`; returns its message.
async fn refused(ctx: &TestCtx, pv: &Podvisor, pod: &str, reason: &str) -> String {
    ctx.wait_pod(pv, pod, CONVERGE, &format!("Failed with {reason}"), |p| {
        if p["status"]["phase"] == "Failed" && p["status"]["reason"] == reason {
            Ok(p["status"]["message"].as_str().unwrap_or("").to_string())
        } else {
            Err("not refused".into())
        }
    })
    .await
}

#[tokio::test]
async fn oom_score_adj_follows_the_qos_class_as_the_kubelet_sets_it() {
    let ctx = TestCtx::new("sec-oom");
    let guaranteed = json!({"limits": {"cpu": "100m", "memory": "64Mi"}});
    let burstable = json!({"requests": {"memory": "256Mi"}});
    ctx.write_json(
        "g.json",
        &pod_json(
            "g",
            "Always",
            json!([sleeper("app", guaranteed, json!({}))]),
            json!({}),
        ),
    );
    ctx.write_json(
        "be.json",
        &pod_json(
            "be",
            "Always",
            json!([sleeper("app", json!({}), json!({}))]),
            json!({}),
        ),
    );
    ctx.write_json(
        "b.json",
        &pod_json(
            "b",
            "Always",
            json!([sleeper("app", burstable, json!({}))]),
            json!({}),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal");
    let capacity = kib * 1024;
    let expected_burstable = (1000 - (1000 * (256i64 << 20)) / capacity).clamp(3, 999);
    // Below 0 needs CAP_SYS_RESOURCE; without it podvisor gives 0 and says so.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("CapEff");
    let lower = |adj: i64| {
        if cap_eff & (1 << 24) != 0 {
            adj
        } else {
            adj.max(0)
        }
    };
    if cap_eff & (1 << 24) == 0 {
        eprintln!("no CAP_SYS_RESOURCE here: expecting 0 for -998 and -997");
    }
    for (pod, app_adj) in [("g", lower(-997)), ("be", 1000), ("b", expected_burstable)] {
        let (app, infra) = ids(&ctx, &pv, pod, "app").await;
        assert_eq!(oom_adj(&infra), lower(-998), "infra container of {pod}");
        assert_eq!(oom_adj(&app), app_adj, "app of {pod}");
        // The kernel has it too.
        let seen = docker(&["exec", &app, "cat", "/proc/1/oom_score_adj"]);
        assert_eq!(
            seen.trim(),
            app_adj.to_string(),
            "{pod}: /proc/1/oom_score_adj"
        );
    }
    if cap_eff & (1 << 24) == 0 {
        assert!(
            ctx.all_logs().contains("no CAP_SYS_RESOURCE"),
            "the warning"
        );
    }
    pv.stop();
}

#[tokio::test]
async fn seccomp_is_unconfined_unless_a_profile_asks_and_localhost_profiles_come_from_the_root_dir()
{
    let ctx = TestCtx::new("sec-seccomp");
    // A Localhost profile that lets everything but mkdir.
    let dir = ctx.path().join("root").join("seccomp").join("profiles");
    std::fs::create_dir_all(&dir).expect("seccomp dir");
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]});
    std::fs::write(dir.join("no-mkdir.json"), profile.to_string()).expect("profile");
    ctx.write_json(
        "plain.json",
        &pod_json(
            "plain",
            "Always",
            json!([sleeper("app", json!({}), json!({}))]),
            json!({}),
        ),
    );
    ctx.write_json(
        "rd.json",
        &pod_json(
            "rd",
            "Always",
            json!([sleeper(
                "app",
                json!({}),
                json!({"allowPrivilegeEscalation": false})
            )]),
            json!({"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}),
        ),
    );
    let local = json!({"seccompProfile": {"type": "Localhost",
        "localhostProfile": "profiles/no-mkdir.json"}});
    ctx.write_json(
        "local.json",
        &pod_json(
            "local",
            "Always",
            json!([sleeper("app", json!({}), local)]),
            json!({}),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;

    let (app, infra) = ids(&ctx, &pv, "plain", "app").await;
    assert!(
        security_opt(&app).contains("seccomp=unconfined"),
        "{}",
        security_opt(&app)
    );
    assert!(
        security_opt(&infra).contains("seccomp=unconfined"),
        "{}",
        security_opt(&infra)
    );
    assert_eq!(proc_status(&app, "Seccomp"), "0", "no filter");
    assert_eq!(proc_status(&app, "NoNewPrivs"), "0");

    let (app, infra) = ids(&ctx, &pv, "rd", "app").await;
    assert!(
        !security_opt(&app).contains("seccomp"),
        "{}",
        security_opt(&app)
    );
    assert!(
        !security_opt(&infra).contains("seccomp"),
        "{}",
        security_opt(&infra)
    );
    assert_eq!(proc_status(&app, "Seccomp"), "2", "the engine's filter");
    assert!(
        security_opt(&app).contains("no-new-privileges"),
        "{}",
        security_opt(&app)
    );
    assert_eq!(proc_status(&app, "NoNewPrivs"), "1");

    let (app, _) = ids(&ctx, &pv, "local", "app").await;
    assert_eq!(proc_status(&app, "Seccomp"), "2", "the Localhost filter");
    let denied = docker_try(&["exec", &app, "mkdir", "/tmp/x"]);
    assert!(denied.is_err(), "mkdir must be denied: {denied:?}");
    docker(&["exec", &app, "touch", "/tmp/y"]);
    pv.stop();
}

#[tokio::test]
async fn seccomp_default_gives_the_engine_profile_to_pods_without_one() {
    let ctx = TestCtx::new("sec-default");
    ctx.write_json(
        "plain.json",
        &pod_json(
            "plain",
            "Always",
            json!([sleeper("app", json!({}), json!({}))]),
            json!({}),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &["--seccomp-default"]);
    pv.wait_answering(&ctx, Some(200)).await;
    let (app, infra) = ids(&ctx, &pv, "plain", "app").await;
    assert!(
        !security_opt(&app).contains("seccomp"),
        "{}",
        security_opt(&app)
    );
    assert!(
        !security_opt(&infra).contains("seccomp"),
        "{}",
        security_opt(&infra)
    );
    assert_eq!(proc_status(&app, "Seccomp"), "2");
    pv.stop();
}

#[tokio::test]
async fn requests_the_engine_cannot_honour_are_refused_with_the_reason() {
    let ctx = TestCtx::new("sec-refuse");
    let app = || json!([sleeper("app", json!({}), json!({}))]);
    ctx.write_json(
        "userns.json",
        &pod_json("userns", "Always", app(), json!({"hostUsers": false})),
    );
    let apparmor =
        json!({"appArmorProfile": {"type": "Localhost", "localhostProfile": "docker-default"}});
    ctx.write_json(
        "apparmor.json",
        &pod_json(
            "apparmor",
            "Always",
            json!([sleeper("app", json!({}), apparmor)]),
            json!({}),
        ),
    );
    let sysctls = |name: &str, value: &str| json!({"securityContext": {"sysctls": [{"name": name, "value": value}]}});
    ctx.write_json(
        "unsafe.json",
        &pod_json(
            "unsafe",
            "Always",
            app(),
            sysctls("net.core.somaxconn", "1024"),
        ),
    );
    ctx.write_json(
        "safe.json",
        &pod_json(
            "safe",
            "Always",
            app(),
            sysctls("net.ipv4.ip_unprivileged_port_start", "77"),
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[]);
    pv.wait_answering(&ctx, Some(200)).await;

    // A safe sysctl is set in the pod's namespaces.
    let (app_id, _) = ids(&ctx, &pv, "safe", "app").await;
    let seen = docker(&[
        "exec",
        &app_id,
        "cat",
        "/proc/sys/net/ipv4/ip_unprivileged_port_start",
    ]);
    assert_eq!(seen.trim(), "77");
    let message = refused(&ctx, &pv, "unsafe", "SysctlForbidden").await;
    assert!(
        message.contains("spec.securityContext.sysctls: forbidden sysctl: \"net.core.somaxconn\" not allowlisted"),
        "{message}"
    );

    if engine_has("userns") {
        let (id, _) = ids(&ctx, &pv, "userns", "app").await;
        assert_eq!(inspect(&id, "{{.HostConfig.UsernsMode}}").trim(), "");
        assert_eq!(
            inspect(&app_id, "{{.HostConfig.UsernsMode}}").trim(),
            "host"
        );
    } else {
        let message = refused(&ctx, &pv, "userns", "UserNamespacesNotSupported").await;
        assert!(
            message.contains(
                "spec.hostUsers: RuntimeClass handler \"\" does not support user namespaces"
            ),
            "{message}"
        );
        assert_eq!(inspect(&app_id, "{{.HostConfig.UsernsMode}}").trim(), "");
        assert!(ctx.pod_containers("userns").is_empty(), "nothing created");
    }

    if engine_has("apparmor") {
        let (id, _) = ids(&ctx, &pv, "apparmor", "app").await;
        assert_eq!(
            inspect(&id, "{{.AppArmorProfile}}").trim(),
            "docker-default"
        );
    } else {
        let message = refused(&ctx, &pv, "apparmor", "AppArmor").await;
        assert!(
            message.contains("Cannot enforce AppArmor: AppArmor is not enabled on the host (spec.containers[0].securityContext.appArmorProfile: Localhost)"),
            "{message}"
        );
        let events = pv.events("default", "apparmor").await.expect("events");
        assert!(
            events
                .iter()
                .any(|e| e["reason"] == "AppArmor" && e["type"] == "Warning"),
            "{events:?}"
        );
        assert!(ctx.pod_containers("apparmor").is_empty(), "nothing created");
    }
    pv.stop();
}
