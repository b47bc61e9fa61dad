//! End-to-end tests of issue 11, a manifest directory that cannot hurt the
//! node, on the real engine:
//!
//! 1. a file truncated and written back in place (`: > p.yaml; sleep 1;
//!    cat good > p.yaml`, as `kubectl get pod p -o yaml > p.yaml` does)
//!    leaves its pod alone: same containers, no restart, never gone from
//!    `/pods`;
//! 2. a file broken while podvisor is down (SIGKILL) does not lose its pod
//!    at the next start: the last good spec was kept under `--root-dir`;
//! 3. the bad-input corpus (`tests/corpus/bad-input/`, plus the inputs the
//!    test makes itself) dropped beside a healthy pod: the daemon lives, the
//!    healthy pod keeps its containers and restart count, each input gets
//!    one log line naming its file and field (once, not at every rescan),
//!    nothing is created for a refused pod, and RSS stays bounded.

#[allow(dead_code)]
mod e2e_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use e2e_support::*;

/// Writes `text` over the manifest in place (truncate, then write), as a
/// shell redirection does: the file is empty for a moment.
fn overwrite_in_place(ctx: &TestCtx, file: &str, text: &str) {
    std::fs::write(ctx.manifest_path(file), text).expect("write manifest in place");
}

/// IDs of the pod's containers, by container name (`POD` for the infra).
fn ids(ctx: &TestCtx, pod: &str) -> Vec<(String, String, String)> {
    let mut ids: Vec<_> = ctx
        .pod_containers(pod)
        .into_iter()
        .map(|c| (c.container(), c.id.clone(), c.state.clone()))
        .collect();
    ids.sort();
    ids
}

/// Watches `pod` for `period`: it must stay in `/pods` and keep exactly
/// the containers `before`, all running.
async fn stays(
    ctx: &TestCtx,
    pv: &Podvisor,
    pod: &str,
    before: &[(String, String, String)],
    period: Duration,
) {
    let start = Instant::now();
    while start.elapsed() < period {
        let list = pv.pods().await.unwrap_or_else(|e| panic!("/pods: {e}"));
        assert!(
            find_pod(&list, pod).is_some(),
            "{pod} left /pods after {:?}: {list}\n{}",
            start.elapsed(),
            ctx.failure_report()
        );
        let now = ids(ctx, pod);
        assert_eq!(
            now,
            before,
            "the containers of {pod} changed after {:?}\n{}",
            start.elapsed(),
            ctx.failure_report()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn restart_counts(pod: &serde_json::Value) -> Vec<i64> {
    pod["status"]["containerStatuses"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s["restartCount"].as_i64().unwrap_or(-1))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_file_truncated_and_written_back_leaves_its_pod_alone() {
    let ctx = TestCtx::new("trunc");
    let good = pod_yaml("p", "Always", &[("app", SLEEP)]);
    ctx.write_manifest("p.yaml", &good);
    let pv = Podvisor::start(&ctx).await;
    let pod = ctx.wait_pod_running(&pv, "p").await;
    assert_eq!(restart_counts(&pod), [0]);
    let before = ids(&ctx, "p");
    assert_eq!(before.len(), 2, "{before:?}");

    // `: > p.yaml; sleep 1; cat good > p.yaml`
    overwrite_in_place(&ctx, "p.yaml", "");
    stays(&ctx, &pv, "p", &before, Duration::from_secs(1)).await;
    overwrite_in_place(&ctx, "p.yaml", &good);
    // Several sync periods and rescans (`--file-check-frequency` 500ms).
    stays(&ctx, &pv, "p", &before, Duration::from_secs(3)).await;
    let pod = ctx.wait_pod_running(&pv, "p").await;
    assert_eq!(restart_counts(&pod), [0], "{pod}");
    assert!(
        !pod["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("last good spec"),
        "the problem is gone once the file is back: {pod}"
    );
    let path = ctx.manifest_path("p.yaml");
    let logs = ctx.all_logs();
    let empty: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains(&path) && l.contains("empty"))
        .collect();
    assert_eq!(empty.len(), 1, "one log line for the empty file: {empty:?}");

    // Written in place with no pause at all: nothing happens either.
    overwrite_in_place(&ctx, "p.yaml", &good);
    stays(&ctx, &pv, "p", &before, Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_file_broken_while_podvisor_is_down_keeps_its_pod() {
    let ctx = TestCtx::new("downbreak");
    ctx.write_manifest("p.yaml", &pod_yaml("p", "Always", &[("app", SLEEP)]));
    let mut pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "p").await;
    let before = ids(&ctx, "p");
    assert_eq!(before.len(), 2, "{before:?}");
    // The memory is saved right after the scan that found the pod; give it
    // a moment (the assertions below judge whether it was).
    let state = ctx.path().join("root").join("manifest-source.state");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline
        && !std::fs::read_to_string(&state).is_ok_and(|t| t.contains("p.yaml"))
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pv.kill9();

    // Broken while down, then podvisor starts again.
    overwrite_in_place(
        &ctx,
        "p.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p\nspec: [\n",
    );
    let pv = Podvisor::start(&ctx).await;
    let path = ctx.manifest_path("p.yaml");
    ctx.wait_pod(
        &pv,
        "p",
        Duration::from_secs(20),
        "the pod on its last good spec",
        |p| {
            let m = p["status"]["message"].as_str().unwrap_or_default();
            (m.contains("running on the last good spec") && m.contains(&path))
                .then_some(())
                .ok_or_else(|| format!("message {m:?}"))
        },
    )
    .await;
    // Several sync periods: orphan removal would have come by now.
    stays(&ctx, &pv, "p", &before, Duration::from_secs(4)).await;
    let pod = ctx.wait_pod_running(&pv, "p").await;
    assert_eq!(restart_counts(&pod), [0], "{pod}");
}

/// One bad input and what podvisor must say of it: a log line naming
/// `file` holds every one of `expect`.
struct Bad {
    file: String,
    expect: Vec<String>,
}

/// The corpus's files, copied into `dir` (with `@IMAGE@` replaced), and
/// what each must get.
fn copy_corpus(dir: &Path, image: &str) -> Vec<Bad> {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/bad-input");
    let mut bad = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(&corpus)
        .expect("tests/corpus/bad-input")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).expect("corpus file");
        assert!(
            text.starts_with("# ") && !text.starts_with("# expect:"),
            "{name}: the first line says what the input is"
        );
        let expect: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_string)
            .collect();
        assert!(!expect.is_empty(), "{name}: no `# expect:` line");
        std::fs::write(dir.join(&name), text.replace("@IMAGE@", image)).expect("copy");
        bad.push(Bad { file: name, expect });
    }
    assert!(bad.len() >= 40, "the corpus has {} files", bad.len());
    bad
}

/// The bad inputs that cannot be files of text in the repository, made in
/// `dir`, with what each must get.
fn make_special_inputs(dir: &Path, image: &str) -> Vec<Bad> {
    let bad = |file: &str, expect: &[&str]| Bad {
        file: file.into(),
        expect: expect.iter().map(|e| e.to_string()).collect(),
    };
    let mut out = Vec::new();
    // Not UTF-8.
    std::fs::write(
        dir.join("g-invalid-utf8.yaml"),
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: \xff\xfe\n",
    )
    .unwrap();
    out.push(bad(
        "g-invalid-utf8.yaml",
        &["stream did not contain valid UTF-8"],
    ));
    // Over --max-manifest-size (4 MiB): refused unread.
    std::fs::write(dir.join("g-too-large.yaml"), vec![b'x'; 5 << 20]).unwrap();
    out.push(bad(
        "g-too-large.yaml",
        &["over the limit of 4194304 bytes (--max-manifest-size); not read"],
    ));
    // Annotations over the API server's 256 KiB.
    let big = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: g-big\n  annotations:\n    big: \"{}\"\n\
         spec:\n  containers:\n  - name: app\n    image: {image}\n",
        "x".repeat(300 << 10)
    );
    std::fs::write(dir.join("g-big-annotation.yaml"), big).unwrap();
    out.push(bad(
        "g-big-annotation.yaml",
        &["metadata.annotations: Too long: may not be more than 262144 bytes"],
    ));
    // JSON cut short (JSON has no comments: described here).
    std::fs::write(
        dir.join("g-broken.json"),
        r#"{"apiVersion": "v1", "kind": "Pod","#,
    )
    .unwrap();
    out.push(bad("g-broken.json", &["EOF while parsing"]));
    // A zero-byte file: a note, nothing else.
    std::fs::write(dir.join("g-empty.yaml"), "").unwrap();
    out.push(bad(
        "g-empty.yaml",
        &["the file is empty (or comments only)"],
    ));
    // Entries that are no regular files: skipped, never opened or waited on.
    std::fs::create_dir(dir.join("g-dir.yaml")).unwrap();
    out.push(bad("g-dir.yaml", &["is a directory, not a manifest file"]));
    std::os::unix::fs::symlink("g-loop.yaml", dir.join("g-loop.yaml")).unwrap();
    out.push(bad("g-loop.yaml", &["is a symlink loop; not read"]));
    std::os::unix::fs::symlink("nowhere.yaml", dir.join("g-dangling.yaml")).unwrap();
    out.push(bad("g-dangling.yaml", &["is a symlink to nothing"]));
    let fifo = dir.join("g-fifo.yaml");
    let made = tool("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success(), "mkfifo {}", fifo.display());
    out.push(bad(
        "g-fifo.yaml",
        &["is a FIFO, not a regular file; not read"],
    ));
    out
}

/// The log lines that say what each bad input must get, per input.
fn lines_for(logs: &str, dir: &Path, bad: &[Bad]) -> Vec<usize> {
    bad.iter()
        .map(|b| {
            let path = dir.join(&b.file).display().to_string();
            logs.lines()
                .filter(|l| l.contains(&path) && b.expect.iter().all(|e| l.contains(e.as_str())))
                .count()
        })
        .collect()
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("podvisor runs");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[tokio::test]
async fn a_corpus_of_bad_inputs_beside_a_healthy_pod_hurts_nothing() {
    let ctx = TestCtx::new("badin");
    ctx.write_manifest(
        "healthy.yaml",
        &pod_yaml("healthy", "Always", &[("app", SLEEP)]),
    );
    // hostPath is refused outside this (absent) directory: input 42.
    let mut pv = Podvisor::spawn(&ctx, &["--allowed-host-paths", "/srv/podvisor-none"]);
    pv.wait_answering(&ctx, Some(200)).await;
    let pod = ctx.wait_pod_running(&pv, "healthy").await;
    assert_eq!(restart_counts(&pod), [0]);
    let before = ids(&ctx, "healthy");
    assert_eq!(before.len(), 2, "{before:?}");
    let rss_before = rss_kib(pv.pid());

    let dir = PathBuf::from(ctx.manifest_path(""));
    let image = &env().busybox_image;
    let mut bad = copy_corpus(&dir, image);
    bad.extend(make_special_inputs(&dir, image));

    // Every input gets its line.
    let counts = ctx
        .wait_until(
            Duration::from_secs(60),
            "a log line for every bad input",
            || {
                let counts = lines_for(&ctx.all_logs(), &dir, &bad);
                let missing: Vec<String> = bad
                    .iter()
                    .zip(&counts)
                    .filter(|(_, n)| **n == 0)
                    .map(|(b, _)| format!("{}: {:?}", b.file, b.expect))
                    .collect();
                std::future::ready(if missing.is_empty() {
                    Ok(counts)
                } else {
                    Err(format!("no line yet for:\n  {}", missing.join("\n  ")))
                })
            },
        )
        .await;

    // Several rescans (every 500 ms) and relists (every 1 s) later: no
    // line again, the healthy pod untouched all along.
    stays(&ctx, &pv, "healthy", &before, Duration::from_secs(4)).await;
    let again = lines_for(&ctx.all_logs(), &dir, &bad);
    let repeated: Vec<String> = bad
        .iter()
        .zip(counts.iter().zip(&again))
        .filter(|(_, (a, b))| a != b)
        .map(|(b, (a, n))| format!("{}: {a} lines, then {n}", b.file))
        .collect();
    assert!(
        repeated.is_empty(),
        "logged again at a rescan: {repeated:?}"
    );

    assert!(
        pv.exited().is_none(),
        "podvisor died\n{}",
        ctx.failure_report()
    );
    let (code, _) = pv.get("/healthz").await.expect("/healthz");
    assert_eq!(code, 200);
    let pod = ctx.wait_pod_running(&pv, "healthy").await;
    assert_eq!(restart_counts(&pod), [0], "{pod}");
    assert_eq!(ids(&ctx, "healthy"), before);

    // Nothing was created for any other pod, refused or not.
    let others: Vec<String> = ctx
        .containers()
        .into_iter()
        .filter(|c| !before.iter().any(|(_, id, _)| *id == c.id))
        .map(|c| c.name)
        .collect();
    assert!(others.is_empty(), "created for bad input: {others:?}");

    // The refused pods are listed, failed, with a message naming file and
    // field; the first of two documents declaring b47 is the one shown.
    let list = pv.pods().await.expect("/pods");
    for (name, file, field) in [
        ("b39", "39-out-of-cpu.yaml", "cpu"),
        ("b41", "41-privileged.yaml", "securityContext.privileged"),
        ("b47", "47-same-pod-twice.yaml (document 0)", "cpu"),
    ] {
        let pod = find_pod(&list, name).unwrap_or_else(|| panic!("{name} not in /pods: {list}"));
        assert_eq!(pod["status"]["phase"], "Failed", "{pod}");
        let message = pod["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(file) && message.contains(field),
            "{name}: {message:?}"
        );
    }

    let rss_after = rss_kib(pv.pid());
    assert!(
        rss_after < rss_before + 64 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}
