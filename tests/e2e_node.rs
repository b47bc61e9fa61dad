//! End-to-end tests of running a node for months (issue 15): a container
//! printing without end keeps its log files within the limits, and
//! podvisor tells systemd (`Type=notify`) when it is ready and stopping.

#[allow(dead_code)]
mod e2e_support;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use e2e_support::*;

/// The engine's log files of container `id` (`<id>-json.log`, `.1`, ...)
/// with their sizes.
fn log_files(id: &str) -> Vec<(String, u64)> {
    let path = inspect(id, "{{.LogPath}}");
    let dir = Path::new(&path).parent().expect("a log directory");
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| {
            let size = e.metadata().map(|m| m.len()).unwrap_or(0);
            (e.file_name().to_string_lossy().into_owned(), size)
        })
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn a_chatty_container_keeps_its_log_files_within_the_limits() {
    let ctx = TestCtx::new("logcap");
    ctx.write_manifest(
        "chatty.yaml",
        &pod_yaml(
            "chatty",
            "Always",
            &[(
                "talk",
                &["sh", "-c", "while :; do seq 1 3000; sleep 0.02; done"],
            )],
        ),
    );
    let mut pv = Podvisor::spawn(
        &ctx,
        &[
            "--container-log-max-size=64Ki",
            "--container-log-max-files=2",
        ],
    );
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "chatty").await;
    let id = ctx
        .pod_containers("chatty")
        .into_iter()
        .find(|c| c.container() == "talk" && c.running())
        .expect("talk runs")
        .id;
    let config = inspect(&id, "{{json .HostConfig.LogConfig}}");
    assert!(
        config.contains("\"max-size\":\"65536\"") && config.contains("\"max-file\":\"2\""),
        "{config}"
    );
    // Rotated at least twice over (the output is far more than 2 x 64 KiB
    // by then), and still within the limits.
    ctx.wait_until(Duration::from_secs(30), "the log rotated", || async {
        let files = log_files(&id);
        if files.iter().any(|(f, _)| f.ends_with(".log.1")) {
            Ok(())
        } else {
            Err(format!("{files:?}"))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let files = log_files(&id);
    assert!(files.len() <= 2, "at most 2 files: {files:?}");
    let slack = 8 << 10; // a rotation happens after the write that passes the limit
    for (f, size) in &files {
        assert!(
            *size <= (64 << 10) + slack,
            "{f} is {size} bytes: {files:?}"
        );
    }
    ctx.remove_manifest("chatty.yaml");
}

#[tokio::test]
async fn podvisor_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let ctx = TestCtx::new("sdnotify");
    let socket = ctx.path().join("notify.sock");
    let listener = UnixDatagram::bind(&socket).expect("bind the notify socket");
    listener
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let log = ctx.new_log();
    let mut child = Podvisor::command(&ctx, free_port(), free_port(), &[])
        .env("NOTIFY_SOCKET", &socket)
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn podvisor");
    let mut buf = [0u8; 256];
    let n = listener
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no readiness within 30 s ({e})\n{}", ctx.log_tail()));
    let said = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(said.contains("READY=1"), "{said:?}");
    // SIGTERM: it says it is stopping, then exits.
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = listener.recv(&mut buf).expect("a stopping notice");
    let said = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(said.contains("STOPPING=1"), "{said:?}");
    let status = child.wait().expect("podvisor exits");
    assert!(status.success(), "{status:?}\n{}", ctx.log_tail());
}

#[tokio::test]
async fn spec_shows_the_machine_and_admission_uses_allocatable() {
    let ctx = TestCtx::new("spec");
    let cores = std::thread::available_parallelism().unwrap().get();
    // Everything but 250m reserved: a pod asking for 500m does not fit,
    // though the machine has the cores.
    let reserved = format!("--system-reserved=cpu={}m", cores * 1000 - 500);
    ctx.write_manifest(
        "big.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: app\n    \
             image: {}\n    command: [sleep, \"3600\"]\n    resources:\n      requests: {{cpu: 500m}}\n",
            env().busybox_image
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[&reserved, "--kube-reserved=cpu=250m,memory=64Mi"]);
    pv.wait_answering(&ctx, Some(200)).await;
    let (code, body) = pv.get("/spec").await.expect("GET /spec");
    assert_eq!(code, 200, "{body}");
    let spec: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(spec["num_cores"].as_u64(), Some(cores as u64), "{spec}");
    assert!(spec["memory_capacity"].as_i64().unwrap_or(0) > 0, "{spec}");
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    assert_eq!(spec["boot_id"], boot_id.trim());
    assert!(
        !spec["docker_version"].as_str().unwrap_or("").is_empty(),
        "{spec}"
    );
    assert!(
        spec["filesystems"][0]["capacity"].as_u64().unwrap_or(0) > 0,
        "{spec}"
    );
    assert_eq!(spec["allocatable"]["cpu"], "250m", "{spec}");
    let memory: i64 = spec["memory_capacity"].as_i64().unwrap();
    let allocatable: i64 = spec["allocatable"]["memory"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(memory - allocatable, 64 << 20, "{spec}");
    let refused = ctx
        .wait_pod(&pv, "big", CONVERGE, "refused for cpu", |p| {
            if p["status"]["reason"] == "OutOfcpu" {
                Ok(p["status"]["message"].as_str().unwrap_or("").to_string())
            } else {
                Err("not refused".into())
            }
        })
        .await;
    assert!(refused.contains("cpu"), "{refused}");
}

#[tokio::test]
async fn a_relative_root_dir_is_taken_from_where_podvisor_starts() {
    let ctx = TestCtx::new("relroot");
    ctx.write_manifest(
        "web.yaml",
        &pod_yaml("web", "Always", &[("app", &["sleep", "3600"])]),
    );
    let port = free_port();
    let log = ctx.new_log();
    let mut child = Podvisor::command(&ctx, port, free_port(), &["--root-dir", "rel-root"])
        .current_dir(ctx.path())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn podvisor");
    let url = format!("http://127.0.0.1:{port}/pods");
    let phase = ctx
        .wait_until(
            CONVERGE,
            "web running with a relative --root-dir",
            || async {
                let list: serde_json::Value = reqwest::get(&url)
                    .await
                    .map_err(|e| e.to_string())?
                    .json()
                    .await
                    .map_err(|e| e.to_string())?;
                let web = find_pod(&list, "web").ok_or("no web yet")?;
                match web["status"]["phase"].as_str() {
                    Some("Running") => Ok("Running".to_string()),
                    _ => Err(format!("{}", web["status"])),
                }
            },
        )
        .await;
    assert_eq!(phase, "Running");
    assert!(ctx.path().join("rel-root").join("pods").is_dir());
    let _ = child.kill();
    let _ = child.wait();
}
