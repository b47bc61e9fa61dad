//! End-to-end tests of the node's Kubernetes API (issue 12) with the
//! machine's real `kubectl` against the real binary on the real engine:
//! `get pods -A -o wide`, `get pod -o yaml`, label selectors, `get
//! namespaces`, `explain` (the OpenAPI document), `describe` with the pod's
//! events, `get events`, a watch seeing a restart, and
//! requests without a token or with a wrong one refused. The kubectl client
//! that ran is recorded from its User-Agent in podvisor's log.

#[allow(dead_code)]
mod e2e_support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use e2e_support::*;

/// The rows of a kubectl table, as columns split on runs of spaces (no
/// cell here holds two spaces), the header first.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn pod_in(namespace: &str, name: &str, labels: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  \
         labels: {{{labels}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - name: app\n    image: {image}\n    command: [sleep, \"3600\"]\n"
    )
}

#[tokio::test]
async fn kubectl_reads_pods_events_and_watches_the_node() {
    let ctx = TestCtx::new("kubectl");
    let image = &env().busybox_image;
    ctx.write_manifest("web.yaml", &pod_in("default", "web", "app: web", image));
    ctx.write_manifest("db.yaml", &pod_in("team", "db", "app: db", image));
    let pv = Podvisor::start(&ctx).await;
    let web = ctx.wait_pod_running(&pv, "web").await;
    ctx.wait_pod_running(&pv, "db").await;
    let web_ip = web["status"]["podIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!web_ip.is_empty(), "{web}");

    // get pods -A -o wide: the API server's columns, NAMESPACE filled.
    let table = rows(&kubectl(&ctx, &["get", "pods", "-A", "-o", "wide"]));
    assert_eq!(
        table[0],
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{table:?}"
    );
    let row = |ns: &str, name: &str| {
        table
            .iter()
            .find(|r| r.len() > 1 && r[0] == ns && r[1] == name)
            .unwrap_or_else(|| panic!("no row for {ns}/{name}: {table:?}"))
            .clone()
    };
    let w = row("default", "web");
    assert_eq!(&w[2..5], ["1/1", "Running", "0"], "{w:?}");
    assert_eq!(&w[6..10], [&web_ip, &ctx.node, "<none>", "<none>"], "{w:?}");
    assert_eq!(row("team", "db")[3], "Running");

    // get pod -o yaml: the pod with its status and this node.
    let yaml: serde_json::Value =
        serde_yaml_ng::from_str(&kubectl(&ctx, &["get", "pod", "web", "-o", "yaml"]))
            .expect("kubectl's YAML parses");
    assert_eq!(yaml["kind"], "Pod");
    assert_eq!(yaml["spec"]["nodeName"], ctx.node.as_str());
    assert_eq!(yaml["status"]["phase"], "Running");
    assert_eq!(yaml["metadata"]["uid"], web["metadata"]["uid"]);
    assert!(yaml["metadata"]["resourceVersion"].as_str().is_some());

    // A label selector, in one namespace.
    let only = rows(&kubectl(
        &ctx,
        &["get", "pods", "-n", "team", "-l", "app=db"],
    ));
    assert_eq!(only.len(), 2, "{only:?}");
    assert_eq!(only[1][0], "db");
    let none = kubectl(&ctx, &["get", "pods", "-n", "team", "-l", "app=web"]);
    assert!(none.trim().is_empty(), "{none}");

    // Namespaces: default and those of the pods.
    let ns = rows(&kubectl(&ctx, &["get", "namespaces"]));
    let names: Vec<&str> = ns.iter().skip(1).map(|r| r[0].as_str()).collect();
    assert_eq!(names, ["default", "team"], "{ns:?}");

    // explain reads the OpenAPI v3 document.
    let explained = kubectl(&ctx, &["explain", "pods.spec.containers.image"]);
    assert!(
        explained.contains("KIND:       Pod") && explained.contains("FIELD: image <string>"),
        "{explained}"
    );

    // describe: the pod and its events.
    let described = kubectl(&ctx, &["describe", "pod", "web"]);
    for want in [
        "Name:", "web", "Node:", &ctx.node, "Status:", "Running", "Events:",
    ] {
        assert!(described.contains(want), "{want:?} missing:\n{described}");
    }
    let events_part = described.split("Events:").nth(1).unwrap_or_default();
    assert!(
        events_part.contains("Started") && events_part.contains("podvisor"),
        "describe shows no events:\n{described}"
    );

    // get events.
    let events = rows(&kubectl(&ctx, &["get", "events", "-n", "default"]));
    assert_eq!(
        events[0],
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|r| r.get(2).is_some_and(|c| c == "Started")
                && r.get(3).is_some_and(|c| c == "pod/web")),
        "{events:?}"
    );

    // A watch sees the restart when the container is killed.
    let out_path = ctx.path().join("watch.out");
    let mut watch = tool("kubectl")
        .env("KUBECONFIG", kubeconfig(&ctx))
        .args(["get", "pods", "-w", "-n", "default"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl -w runs");
    let start = Instant::now();
    while !std::fs::read_to_string(&out_path).is_ok_and(|t| t.contains("web")) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the watch printed nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let app = ctx
        .pod_containers("web")
        .into_iter()
        .find(|c| c.container() == "app" && c.running())
        .expect("web's app runs");
    docker(&["kill", &app.id]);
    let start = Instant::now();
    let seen = loop {
        let text = std::fs::read_to_string(&out_path).unwrap_or_default();
        let restarted = rows(&text).into_iter().any(|r| {
            r.first().is_some_and(|n| n == "web") && r.get(3).is_some_and(|c| c.starts_with('1'))
        });
        if restarted {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the watch did not show the restart:\n{text}\n{}",
            ctx.failure_report()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = watch.kill();
    let _ = watch.wait();
    let lines = seen.lines().count();
    assert!(lines <= 6, "a line per real change, not per sync:\n{seen}");

    // The client that ran, from its User-Agent.
    let logs = ctx.all_logs();
    let agent = logs
        .split("agent=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or("(none logged)");
    eprintln!("kubectl client seen by podvisor: {agent}");
    assert!(agent.starts_with("kubectl"), "{agent}");
}

#[tokio::test]
async fn the_secure_api_refuses_requests_without_a_good_token() {
    let ctx = TestCtx::new("kubeauth");
    let pv = Podvisor::start(&ctx).await;
    let server = format!("https://127.0.0.1:{}", pv.secure_port);
    let ca = ctx.path().join("root").join("pki").join("ca.crt");
    assert!(ca.is_file(), "no CA at {}", ca.display());
    // No token at all (kubectl would prompt for a password): a 401
    // `Status`, over TLS checked against podvisor's CA.
    let ca_pem = std::fs::read(&ca).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).expect("CA PEM"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("https client");
    let resp = https
        .get(format!("{server}/api/v1/pods"))
        .send()
        .await
        .expect("GET /api/v1/pods");
    assert_eq!(resp.status().as_u16(), 401);
    let status: serde_json::Value = resp.json().await.expect("a Status");
    assert_eq!(
        (
            status["kind"].as_str(),
            status["reason"].as_str(),
            status["code"].as_i64()
        ),
        (Some("Status"), Some("Unauthorized"), Some(401))
    );
    // A wrong token, from kubectl: refused.
    let out = tool("kubectl")
        .env("KUBECONFIG", kubeconfig(&ctx))
        .args(["--request-timeout=20s", "--token=wrong", "get", "pods"])
        .output()
        .expect("kubectl runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("You must be logged in to the server"),
        "{stderr}"
    );
    // /version and /healthz need none; the version is 1.32's.
    let version: serde_json::Value = https
        .get(format!("{server}/version"))
        .send()
        .await
        .expect("GET /version")
        .json()
        .await
        .expect("version JSON");
    assert_eq!(
        (version["major"].as_str(), version["minor"].as_str()),
        (Some("1"), Some("32"))
    );
    let health = https
        .get(format!("{server}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status().as_u16(), 200);
    // The kubeconfig's token works; the certificate is checked (no
    // --insecure-skip-tls-verify anywhere).
    let pods = kubectl(&ctx, &["get", "--raw", "/api/v1/pods"]);
    assert!(pods.contains("\"kind\":\"PodList\""), "{pods}");
    let logs = ctx.all_logs();
    assert!(logs.contains("API request refused"), "refusals are logged");
}
