//! End-to-end tests of `kubectl exec` against the node (issue 13): the
//! machine's real `kubectl` over WebSocket (`v5.channel.k8s.io`) to the real
//! binary on the real engine, through both exec handlers (`native`: Docker's
//! exec; `nsenter`: podvisor's own processes, a pty for `-t`).
//!
//! Each handler: the exit code of the command becomes kubectl's; stdin
//! piped in ends with its end (v5's close of stdin); stdout and stderr
//! stay apart; `-t` runs on a terminal of the client's size (kubectl under
//! `script`, which gives it a terminal of a known size); an interactive
//! shell is driven through its stdin; a client that goes away takes its
//! command with it; a pod that does not exist is a clear error; and the
//! other pod of the node is left alone.

#[allow(dead_code)]
mod e2e_support;

use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use e2e_support::*;
use tokio::io::AsyncWriteExt;

/// How long one kubectl may run.
const KUBECTL: Duration = Duration::from_secs(60);

/// Runs `command` (a [`tool`]) with the test's kubeconfig, `input` on its
/// stdin (closed once written), within [`KUBECTL`].
async fn run(ctx: &TestCtx, command: std::process::Command, input: &[u8]) -> Output {
    let shown = format!("{command:?}");
    let mut cmd = tokio::process::Command::from(command);
    cmd.env("KUBECONFIG", kubeconfig(ctx))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{shown} runs: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).await.expect("write stdin");
    drop(stdin);
    match tokio::time::timeout(KUBECTL, child.wait_with_output()).await {
        Ok(out) => out.expect("wait for kubectl"),
        Err(_) => panic!(
            "{shown} did not end within {KUBECTL:?}\n{}",
            ctx.failure_report()
        ),
    }
}

fn kubectl_cmd(args: &[&str]) -> std::process::Command {
    let mut cmd = tool("kubectl");
    cmd.args(args);
    cmd
}

fn script_cmd(args: &[&str]) -> std::process::Command {
    let mut cmd = tool("script");
    cmd.args(args);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    )
}

/// `kubectl exec -t` on a terminal of 40 rows and 100 columns: `script`
/// gives kubectl a pty, `stty` sizes it, kubectl sends the size.
fn on_terminal(ctx: &TestCtx, exec_args: &str) -> Vec<String> {
    let kubectl = format!(
        "stty rows 40 cols 100; kubectl --kubeconfig={} exec {exec_args}",
        kubeconfig(ctx).display()
    );
    vec!["-qec".into(), kubectl, "/dev/null".into()]
}

/// The running container IDs of `pod`, sorted.
fn running_ids(ctx: &TestCtx, pod: &str) -> Vec<String> {
    let mut ids: Vec<String> = ctx
        .pod_containers(pod)
        .into_iter()
        .filter(Ctr::running)
        .map(|c| c.id)
        .collect();
    ids.sort();
    ids
}

async fn kubectl_exec_works_through(handler: &str) {
    let ctx = TestCtx::new(&format!("kexec{}", &handler[..2]));
    ctx.write_manifest("web.yaml", &pod_yaml("web", "Always", &[("app", SLEEP)]));
    ctx.write_manifest(
        "other.yaml",
        &pod_yaml("other", "Always", &[("app", SLEEP)]),
    );
    let flag = format!("--docker-exec-handler={handler}");
    let mut pv = Podvisor::spawn(&ctx, &[&flag]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "web").await;
    ctx.wait_pod_running(&pv, "other").await;
    let web_before = running_ids(&ctx, "web");
    let other_before = running_ids(&ctx, "other");
    assert_eq!(other_before.len(), 2, "infra and app: {other_before:?}");

    // The command's exit code is kubectl's.
    let out = run(
        &ctx,
        kubectl_cmd(&["exec", "web", "--", "sh", "-c", "exit 3"]),
        b"",
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let out = run(&ctx, kubectl_cmd(&["exec", "web", "--", "true"]), b"").await;
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));

    // stdin piped in ends with its end: cat prints it and exits.
    let out = run(
        &ctx,
        kubectl_cmd(&["exec", "-i", "web", "--", "cat"]),
        b"data\n",
    )
    .await;
    assert_eq!(
        (out.status.code(), text(&out.stdout).as_str()),
        (Some(0), "data\n"),
        "{}",
        show(&out)
    );

    // stdout and stderr stay apart without a terminal.
    let out = run(
        &ctx,
        kubectl_cmd(&["exec", "web", "--", "sh", "-c", "echo out; echo err >&2"]),
        b"",
    )
    .await;
    assert_eq!(text(&out.stdout), "out\n", "{}", show(&out));
    assert!(text(&out.stderr).contains("err\n"), "{}", show(&out));

    // -t: a terminal of the size the client has (the resize arrived).
    // nsenter makes the pty at that size before the command starts. An
    // engine before API 1.42 (Debian's 20.10) takes no size with an exec
    // and resizes it only once started, so a command asking at once can
    // see no size there (as with the kubelet on Docker): it asks later.
    let script = if handler == "native" {
        "-it web -- sh -c 'tty; sleep 1; stty size'"
    } else {
        "-it web -- sh -c 'tty; stty size'"
    };
    let args = on_terminal(&ctx, script);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&ctx, script_cmd(&args), b"").await;
    let shown = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    assert!(shown.contains("/dev/pts/"), "no tty: {}", show(&out));
    assert!(!shown.contains("not a tty"), "{}", show(&out));
    assert!(
        shown.contains("40 100"),
        "size not passed on: {}",
        show(&out)
    );

    // An interactive shell on the terminal, driven through its stdin.
    let args = on_terminal(&ctx, "-it web -- sh");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(
        &ctx,
        script_cmd(&args),
        b"echo sum-$((40+2))\nstty size\nexit 7\n",
    )
    .await;
    let shown = text(&out.stdout);
    assert!(shown.contains("sum-42"), "{}", show(&out));
    assert!(shown.contains("40 100"), "{}", show(&out));
    assert_eq!(out.status.code(), Some(7), "{}", show(&out));

    // A client that goes away takes its command with it.
    let app = ctx
        .pod_containers("web")
        .into_iter()
        .find(|c| c.container() == "app" && c.running())
        .expect("web's app runs");
    let mut cmd = tokio::process::Command::from(tool("kubectl"));
    let mut client = cmd
        .env("KUBECONFIG", kubeconfig(&ctx))
        .args(["exec", "web", "--", "sleep", "4321"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let sleeping = || {
        docker_try(&["exec", &app.id, "ps", "-o", "args"])
            .map(|ps| ps.contains("sleep 4321"))
            .unwrap_or(false)
    };
    let start = Instant::now();
    while !sleeping() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the exec'd sleep never ran\n{}",
            ctx.failure_report()
        );
        tokio::time::sleep(POLL).await;
    }
    client.kill().await.expect("kill kubectl");
    let start = Instant::now();
    while sleeping() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the exec'd sleep outlived its client\n{}",
            ctx.failure_report()
        );
        tokio::time::sleep(POLL).await;
    }

    // A command that is not there: the shell's 126/127 and a message.
    let out = run(&ctx, kubectl_cmd(&["exec", "web", "--", "nosuchcmd"]), b"").await;
    assert!(
        matches!(out.status.code(), Some(126 | 127)),
        "{}",
        show(&out)
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(said.contains("nosuchcmd"), "{}", show(&out));

    // A pod that is not there: the API server's words, not a hang.
    let out = run(&ctx, kubectl_cmd(&["exec", "nope", "--", "true"]), b"").await;
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("pods \"nope\" not found"),
        "{}",
        show(&out)
    );

    // A bad container name: refused, naming the choices.
    let out = run(
        &ctx,
        kubectl_cmd(&["exec", "web", "-c", "db", "--", "true"]),
        b"",
    )
    .await;
    assert!(!out.status.success(), "{}", show(&out));
    assert!(
        text(&out.stderr).contains("db") && text(&out.stderr).contains("[app]"),
        "{}",
        show(&out)
    );

    // Neither pod was restarted by any of it; the daemon still answers.
    assert_eq!(running_ids(&ctx, "web"), web_before, "web was disturbed");
    assert_eq!(
        running_ids(&ctx, "other"),
        other_before,
        "the other pod was disturbed"
    );
    let pods = kubectl(&ctx, &["get", "pods"]);
    assert!(pods.contains("other") && pods.contains("Running"), "{pods}");
    assert!(pv.exited().is_none(), "podvisor exited");
}

#[tokio::test]
async fn kubectl_exec_through_the_native_handler() {
    kubectl_exec_works_through("native").await;
}

#[tokio::test]
async fn kubectl_exec_through_the_nsenter_handler() {
    kubectl_exec_works_through("nsenter").await;
}

/// An HTTPS client of the node's secure API (its CA) and its token.
fn https(ctx: &TestCtx) -> (reqwest::Client, String) {
    let root = ctx.path().join("root");
    let ca = std::fs::read(root.join("pki").join("ca.crt")).expect("the CA");
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("https client");
    let token = std::fs::read_to_string(root.join("token")).expect("the token");
    (client, token.trim().to_string())
}

/// `kubectl attach` follows the main process's output and leaves it
/// running when it goes; requests that are not a WebSocket of a served
/// subprotocol get a `Status` saying so.
#[tokio::test]
async fn kubectl_attach_follows_the_main_process_and_leaves_it_running() {
    let ctx = TestCtx::new("kattach");
    let ticker: &[&str] = &["sh", "-c", "while true; do echo tick; sleep 0.2; done"];
    ctx.write_manifest(
        "talker.yaml",
        &pod_yaml("talker", "Always", &[("app", ticker)]),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "talker").await;
    let before = running_ids(&ctx, "talker");

    let out_path = ctx.path().join("attach.out");
    let mut cmd = tokio::process::Command::from(tool("kubectl"));
    let mut client = cmd
        .env("KUBECONFIG", kubeconfig(&ctx))
        .args(["attach", "talker"])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("out file"))
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    let start = Instant::now();
    while std::fs::read_to_string(&out_path)
        .unwrap_or_default()
        .matches("tick")
        .count()
        < 3
    {
        if let Some(status) = client.try_wait().expect("try_wait") {
            panic!(
                "kubectl attach ended ({status}) before showing output\n{}",
                ctx.failure_report()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "kubectl attach showed no output\n{}",
            ctx.failure_report()
        );
        tokio::time::sleep(POLL).await;
    }
    client.kill().await.expect("kill kubectl");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        running_ids(&ctx, "talker"),
        before,
        "attach disturbed the pod"
    );

    // Not a WebSocket (kubectl's SPDY fallback is a POST): a clear 400.
    let (http, token) = https(&ctx);
    let url = format!(
        "https://127.0.0.1:{}/api/v1/namespaces/default/pods/talker/exec?command=true&stdout=true",
        pv.secure_port
    );
    let resp = http
        .post(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("POST exec");
    assert_eq!(resp.status().as_u16(), 400);
    let status: serde_json::Value = resp.json().await.expect("a Status");
    assert_eq!(status["kind"], "Status", "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("WebSocket only") && message.contains("v5.channel.k8s.io"),
        "{status}"
    );
    // A WebSocket of a subprotocol not served: 400 naming the served ones.
    let resp = http
        .get(&url)
        .bearer_auth(&token)
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header(
            "Sec-WebSocket-Protocol",
            "channel.k8s.io, base64.channel.k8s.io",
        )
        .send()
        .await
        .expect("GET exec");
    assert_eq!(resp.status().as_u16(), 400);
    let status: serde_json::Value = resp.json().await.expect("a Status");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("base64.channel.k8s.io") && message.contains("v4.channel.k8s.io"),
        "{status}"
    );
    // Bad parameters: the API server's words.
    let resp = http
        .post(format!(
            "https://127.0.0.1:{}/api/v1/namespaces/default/pods/talker/exec?stdout=true",
            pv.secure_port
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("POST exec");
    assert_eq!(resp.status().as_u16(), 400);
    let status: serde_json::Value = resp.json().await.expect("a Status");
    assert_eq!(
        status["message"], "you must specify at least one command for the container",
        "{status}"
    );
    assert_eq!(running_ids(&ctx, "talker"), before);
}
