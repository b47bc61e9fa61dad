//! End-to-end test of image garbage collection on the real engine: images
//! of distinct IDs made offline (`docker commit` of a busybox container
//! with a label each), pods run on some of them and removed in turn, the
//! image file system's usage driven by the test-only
//! `--image-gc-usage-file`. The least recently used images go down to the
//! low threshold (in the order of use that the records under `--root-dir`
//! kept across a restart); the image in use, the infra image and an image
//! podvisor never used stay, the last until `--image-gc-all-images`.
//!
//! The engine is shared with other tests: only images made here are ever
//! candidates (podvisor's own, or with `--image-gc-all-images` only the one
//! whose record the test made old, every other being younger than
//! `--minimum-image-ttl-duration=1h`), and they are all removed at the end.

#[allow(dead_code)]
mod e2e_support;

use std::time::Duration;

use e2e_support::*;

/// The image file system the usage file describes: 1 GB.
const CAPACITY: u64 = 1_000_000_000;
/// Low threshold 40 %, high 41 %: `used = 400 MB + n` asks for `n` bytes.
const LOW: u64 = CAPACITY * 40 / 100;

/// The images made for one test, removed when it ends (whatever is left).
struct Images(Vec<String>);

impl Drop for Images {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = docker_try(&["rmi", "-f", i]);
        }
    }
}

fn present(image: &str) -> bool {
    docker_try(&["image", "inspect", "--format", "{{.Id}}", image]).is_ok()
}

fn pod(name: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {image}\n    \
         imagePullPolicy: Never\n    command: [sleep, \"3600\"]\n"
    )
}

fn write_usage(ctx: &TestCtx, used: u64) {
    let path = ctx.path().join("usage");
    let tmp = ctx.path().join(".usage.tmp");
    std::fs::write(&tmp, format!("{used} {CAPACITY}\n")).expect("write usage");
    std::fs::rename(&tmp, &path).expect("rename usage");
}

async fn remove_pod(ctx: &TestCtx, name: &str) {
    ctx.remove_manifest(&format!("{name}.yaml"));
    ctx.wait_until(
        CONVERGE,
        &format!("pod {name}'s containers removed"),
        || async {
            let left = ctx.pod_containers(name);
            left.is_empty().then_some(()).ok_or_else(|| show(&left))
        },
    )
    .await;
}

#[tokio::test]
async fn unused_images_go_least_recently_used_first_down_to_the_low_threshold() {
    let ctx = TestCtx::new("imagegc");
    let env = env();
    let repo = format!("podvisor.local/{}", ctx.node);
    let names: Vec<String> = ["a1", "a2", "a3", "keep", "foreign"]
        .iter()
        .map(|n| format!("{repo}:{n}"))
        .collect();
    let images = Images(names.clone());
    let [a1, a2, a3, keep, foreign] = [0, 1, 2, 3, 4].map(|i| images.0[i].as_str());
    // Distinct IDs: one commit each, with its own label.
    let base = docker(&["create", &env.busybox_image, "true"]);
    for (n, name) in names.iter().enumerate() {
        docker(&[
            "commit",
            "--change",
            &format!("LABEL podvisor.test.imagegc={}-{n}", ctx.node),
            &base,
            name,
        ]);
    }
    docker(&["rm", "-f", &base]);
    let ids: Vec<String> = names
        .iter()
        .map(|n| docker(&["image", "inspect", "--format", "{{.Id}}", n]))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "distinct image IDs: {ids:?}");
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", a1])
        .parse()
        .expect("a size");

    let usage_file = ctx.path().join("usage");
    let usage_flag = format!("--image-gc-usage-file={}", usage_file.display());
    let common = [
        usage_flag.as_str(),
        "--image-gc-high-threshold=41",
        "--image-gc-low-threshold=40",
    ];

    // 1. Pods on a1, a2, a3 and keep; a1, a2, a3 removed in turn, a few
    //    collections (every second) apart: a1 is the least recently used.
    write_usage(&ctx, 0);
    let mut flags = common.to_vec();
    flags.extend(["--image-gc-period=1s", "--minimum-image-ttl-duration=0s"]);
    let mut pv = Podvisor::spawn(&ctx, &flags);
    pv.wait_answering(&ctx, Some(200)).await;
    for (name, image) in [("a1", a1), ("a2", a2), ("a3", a3), ("keep", keep)] {
        ctx.write_manifest(&format!("{name}.yaml"), &pod(name, image));
    }
    for name in ["a1", "a2", "a3", "keep"] {
        ctx.wait_pod_running(&pv, name).await;
    }
    for name in ["a1", "a2", "a3"] {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        remove_pod(&ctx, name).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Nothing went under the threshold.
    assert!(names.iter().all(|n| present(n)), "{}", ctx.failure_report());
    let state = ctx.path().join("root/image-gc.state");
    assert!(state.exists(), "records under --root-dir");
    pv.stop();

    // 2. Restarted (collecting once at start, then not for an hour), over
    //    the high threshold by 1.5 images: a1 and a2 go, in the order of
    //    use the records kept. a3 (used last), keep (in use), the infra
    //    image and foreign (never podvisor's, and never used at all: first
    //    in line otherwise) stay.
    write_usage(&ctx, LOW + size * 3 / 2);
    let mut flags = common.to_vec();
    flags.extend(["--image-gc-period=1h", "--minimum-image-ttl-duration=0s"]);
    let mut pv = Podvisor::spawn(&ctx, &flags);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_until(CONVERGE, "a1 and a2 removed", || async {
        let left: Vec<&str> = [a1, a2].into_iter().filter(|i| present(i)).collect();
        left.is_empty()
            .then_some(())
            .ok_or_else(|| format!("{left:?} still there"))
    })
    .await;
    ctx.wait_pod_running(&pv, "keep").await;
    // The infra image is kept too: the removal lines below are all there are.
    for image in [a3, keep, foreign] {
        assert!(present(image), "{image} kept\n{}", ctx.failure_report());
    }
    // The removal is logged once the engine answered it (just after).
    let removed: Vec<String> = ctx
        .wait_until(CONVERGE, "two removals logged", || async {
            let removed: Vec<String> = ctx
                .all_logs()
                .lines()
                .filter(|l| l.contains("removed unused image"))
                .map(str::to_string)
                .collect();
            (removed.len() >= 2)
                .then(|| removed.clone())
                .ok_or_else(|| format!("{removed:#?}"))
        })
        .await;
    assert_eq!(removed.len(), 2, "{removed:#?}");
    assert!(
        removed[0].contains(a1) && removed[1].contains(a2),
        "{removed:#?}"
    );
    // The events, on the node, as kubectl shows them.
    let freed: Vec<String> = ctx
        .wait_until(CONVERGE, "two FreeDiskSpace events", || async {
            let events = kubectl(&ctx, &["get", "events", "-A", "-o", "json"]);
            let events: serde_json::Value =
                serde_json::from_str(&events).map_err(|e| format!("{e}: {events}"))?;
            let freed: Vec<String> = events["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| e["reason"] == "FreeDiskSpace" && e["involvedObject"]["kind"] == "Node")
                .map(|e| e["message"].as_str().unwrap_or_default().to_string())
                .collect();
            (freed.len() >= 2)
                .then(|| freed.clone())
                .ok_or_else(|| format!("{events}"))
        })
        .await;
    assert_eq!(freed.len(), 2, "{freed:?}");
    assert!(freed[0].contains(a1) && freed[1].contains(a2), "{freed:?}");
    pv.stop();

    // 3. With --image-gc-all-images, an image podvisor never used may go
    //    too. The engine is shared: every image other than foreign is kept
    //    young by --minimum-image-ttl-duration=1h, and foreign's record is
    //    made old here.
    let text = std::fs::read_to_string(&state).expect("records");
    let mut records: serde_json::Value = serde_json::from_str(&text).expect("JSON records");
    let record = &mut records["images"][&ids[4]];
    assert!(record.is_object(), "foreign recorded: {text}");
    assert_eq!(record["ours"], false, "{text}");
    record["first_seen"] = 0.into();
    std::fs::write(&state, records.to_string()).expect("write records");
    write_usage(&ctx, LOW + size / 2);
    let mut flags = common.to_vec();
    flags.extend([
        "--image-gc-period=1h",
        "--minimum-image-ttl-duration=1h",
        "--image-gc-all-images",
    ]);
    let mut pv = Podvisor::spawn(&ctx, &flags);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_until(CONVERGE, "foreign removed", || async {
        (!present(foreign))
            .then_some(())
            .ok_or_else(|| "still there".to_string())
    })
    .await;
    for image in [a3, keep] {
        assert!(present(image), "{image} kept\n{}", ctx.failure_report());
    }
    // Nothing else went (the shared images included): podvisor's log
    // names every removal, this run's being the third.
    let removed: Vec<String> = ctx
        .wait_until(CONVERGE, "the third removal logged", || async {
            let removed: Vec<String> = ctx
                .all_logs()
                .lines()
                .filter(|l| l.contains("removed unused image"))
                .map(str::to_string)
                .collect();
            (removed.len() >= 3)
                .then(|| removed.clone())
                .ok_or_else(|| format!("{removed:#?}"))
        })
        .await;
    assert_eq!(removed.len(), 3, "{removed:#?}");
    assert!(removed[2].contains(foreign), "{removed:#?}");
    pv.stop();
    drop(images);
}

/// The real usage reader: the file system of the engine's data root, by
/// statvfs, as the daemon reads it without `--image-gc-usage-file`.
#[tokio::test]
async fn the_engine_disk_usage_is_the_data_roots_file_system() {
    use podvisor::actors::image_gc::{DiskUsage, EngineDiskUsage};
    use podvisor::runtime::docker::DockerRuntime;
    let env = env();
    let runtime = std::sync::Arc::new(DockerRuntime::new(env.docker_host.clone()));
    let usage = EngineDiskUsage(runtime)
        .image_fs()
        .await
        .expect("the data root's usage");
    let root = docker(&["info", "--format", "{{.DockerRootDir}}"]);
    let df = tool("df")
        .args(["--output=size,used", "-B1", &root])
        .output()
        .expect("df");
    let df = String::from_utf8_lossy(&df.stdout).to_string();
    let size: u64 = df
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("df of {root}: {df}"));
    assert_eq!(usage.capacity, size, "{usage:?} vs df {df}");
    assert!(usage.used > 0 && usage.used <= usage.capacity, "{usage:?}");
}

/// Thresholds out of range, or the low one not below the high one: podvisor
/// refuses to start (exit 2), naming the flag.
#[test]
fn bad_image_gc_thresholds_refuse_to_start_naming_the_flag() {
    let ctx = TestCtx::new("imagegc-flags");
    for (flags, expected) in [
        (
            &["--image-gc-high-threshold=101"][..],
            "--image-gc-high-threshold",
        ),
        (
            &[
                "--image-gc-high-threshold=70",
                "--image-gc-low-threshold=70",
            ][..],
            "--image-gc-low-threshold=70 must be below --image-gc-high-threshold=70",
        ),
    ] {
        let (code, stderr) = run_expecting_exit(&ctx, flags);
        assert_eq!(code, Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(expected), "{flags:?}: {stderr}");
    }
}
