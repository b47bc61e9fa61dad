//! End-to-end tests of the node API's writes (issue 13) with the machine's
//! real `kubectl` against the real binary on the real engine: `apply` of
//! a new pod, `apply` again with a changed image and an env var removed
//! (only that container replaced, the rest of the spec kept), an invalid
//! `apply` refused naming the field with no file written, `patch`,
//! `replace` with a stale resourceVersion, a pod whose file declares
//! others, `delete` (Terminating, then gone with its containers and its
//! file), and a user outside `system:masters` refused (403), all beside a
//! pod of the directory that is never disturbed.

#[allow(dead_code)]
mod e2e_support;

use std::path::Path;

use e2e_support::*;

/// `kubectl apply -f` of `text` (written to a file outside the manifest
/// directory); stdout, or stderr as the error.
fn apply(ctx: &TestCtx, name: &str, text: &str, extra: &[&str]) -> Result<String, String> {
    let file = ctx.path().join(format!("{name}.yaml"));
    std::fs::write(&file, text).expect("write the apply file");
    let file = file.display().to_string();
    let mut args = vec!["apply", "-f", &file];
    args.extend_from_slice(extra);
    kubectl_try(ctx, &args)
}

/// The pod `api`: `app` runs `image` with `env`, `side` the busybox image.
fn api_pod(image: &str, vars: &[(&str, &str)]) -> String {
    let side = &env().busybox_image;
    let env: String = vars
        .iter()
        .map(|(k, v)| format!("\n    - name: {k}\n      value: \"{v}\""))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: api\n  labels: {{app: api}}\nspec:\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {image}\n    \
         command: [sleep, \"3600\"]\n    env:{env}\n  - name: side\n    image: {side}\n    \
         command: [sleep, \"3600\"]\n"
    )
}

/// The running container of `pod`'s `container`.
fn running_id(ctx: &TestCtx, pod: &str, container: &str) -> Option<String> {
    ctx.pod_containers(pod)
        .into_iter()
        .find(|c| c.container() == container && c.running())
        .map(|c| c.id)
}

fn file_yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).expect("the written file is YAML")
}

#[tokio::test]
async fn kubectl_apply_patch_and_delete_write_through_the_manifest_directory() {
    let ctx = TestCtx::new("kwrite");
    let image = env().busybox_image.clone();
    // A second name for the same image: a changed image without a pull.
    let other = format!("podvisor.local/busybox:{}", ctx.node);
    docker(&["tag", &image, &other]);
    ctx.write_manifest(
        "web.yaml",
        &pod_yaml("web", "Always", &[("app", &["sleep", "3600"])]),
    );
    ctx.write_manifest(
        "pair.yaml",
        &format!(
            "{}---\n{}",
            pod_yaml("one", "Always", &[("app", &["sleep", "3600"])]),
            pod_yaml("two", "Always", &[("app", &["sleep", "3600"])])
        ),
    );
    let pv = Podvisor::start(&ctx).await;
    ctx.wait_pod_running(&pv, "web").await;
    let web_id = running_id(&ctx, "web", "app").expect("web runs");
    let written = Path::new(&ctx.manifest_path("default_api.yaml")).to_path_buf();

    // apply of a new pod: a file in the directory, then running.
    let out = apply(
        &ctx,
        "api",
        &api_pod(&image, &[("A", "1"), ("B", "2")]),
        &[],
    )
    .unwrap_or_else(|e| panic!("apply: {e}\n{}", ctx.failure_report()));
    assert!(out.contains("pod/api created"), "{out}");
    let file = file_yaml(&written);
    let annotations = &file["metadata"]["annotations"];
    assert!(
        annotations["kubectl.kubernetes.io/last-applied-configuration"].is_string(),
        "{file}"
    );
    assert!(
        file.get("status").is_none(),
        "no status in the file: {file}"
    );
    ctx.wait_pod_running(&pv, "api").await;
    let app_before = running_id(&ctx, "api", "app").expect("api's app runs");
    let side_before = running_id(&ctx, "api", "side").expect("api's side runs");

    // apply again: a changed image and env B gone; only `app` replaced.
    let out = apply(&ctx, "api", &api_pod(&other, &[("A", "1")]), &[])
        .unwrap_or_else(|e| panic!("apply again: {e}\n{}", ctx.failure_report()));
    assert!(out.contains("pod/api configured"), "{out}");
    let file = file_yaml(&written);
    let app = &file["spec"]["containers"][0];
    assert_eq!(app["image"], other.as_str(), "{file}");
    assert_eq!(
        app["env"],
        serde_json::json!([{"name": "A", "value": "1"}]),
        "{file}"
    );
    assert_eq!(app["command"], serde_json::json!(["sleep", "3600"]));
    assert_eq!(file["spec"]["containers"][1]["image"], image.as_str());
    assert_eq!(file["metadata"]["labels"]["app"], "api");
    assert_eq!(file["spec"]["terminationGracePeriodSeconds"], 1);
    ctx.wait_until(
        CONVERGE,
        "api's app replaced with the new image",
        || async {
            let id = running_id(&ctx, "api", "app").ok_or("app not running")?;
            let image_now = inspect(&id, "{{.Config.Image}}");
            if id != app_before && image_now == other {
                Ok(())
            } else {
                Err(format!("app {id} runs {image_now}"))
            }
        },
    )
    .await;
    assert_eq!(
        running_id(&ctx, "api", "side").as_deref(),
        Some(side_before.as_str()),
        "side was not touched"
    );
    let env_now = inspect(
        &running_id(&ctx, "api", "app").unwrap(),
        "{{json .Config.Env}}",
    );
    assert!(
        env_now.contains("A=1") && !env_now.contains("B=2"),
        "{env_now}"
    );

    // patch (JSON merge): a label, in the file and in the next GET.
    kubectl(
        &ctx,
        &[
            "patch",
            "pod",
            "api",
            "--type=merge",
            "-p",
            r#"{"metadata":{"labels":{"tier":"front"}}}"#,
        ],
    );
    assert_eq!(file_yaml(&written)["metadata"]["labels"]["tier"], "front");
    let labels = kubectl(
        &ctx,
        &[
            "get",
            "pod",
            "api",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ],
    );
    assert_eq!(labels, "front", "the next GET shows the patch");

    // replace with a stale resourceVersion: 409, nothing written.
    let mut stale: serde_json::Value =
        serde_yaml_ng::from_str(&kubectl(&ctx, &["get", "pod", "api", "-o", "yaml"])).unwrap();
    stale["metadata"]["resourceVersion"] = "1".into();
    stale["metadata"]["labels"]["tier"] = "back".into();
    let stale_file = ctx.path().join("stale.json");
    std::fs::write(&stale_file, stale.to_string()).unwrap();
    let e = kubectl_try(&ctx, &["replace", "-f", &stale_file.display().to_string()])
        .expect_err("a stale replace is refused");
    assert!(
        e.contains("Conflict") && e.contains("has been modified"),
        "{e}"
    );
    assert_eq!(file_yaml(&written)["metadata"]["labels"]["tier"], "front");

    // An invalid apply: a 400 (unknown field) or 422 (invalid value)
    // naming the field, and no file written. kubectl leaves validation to
    // the server (the OpenAPI document says it validates fields); with
    // `--validate=false` too, the server validates as it does a file.
    let bad = api_pod(&image, &[])
        .replace("name: api", "name: bad")
        .replace(
            "    command: [sleep, \"3600\"]\n    env:",
            "    imagee: x\n    command: [sleep, \"3600\"]\n    env:",
        );
    let e = apply(&ctx, "bad", &bad, &[]).expect_err("an unknown field");
    assert!(
        e.contains("BadRequest") && e.contains("spec.containers[0].imagee"),
        "{e}"
    );
    let bad = api_pod("\"\"", &[]).replace("name: api", "name: bad");
    let e = apply(&ctx, "bad", &bad, &[]).expect_err("an empty image");
    assert!(
        e.contains("is invalid") && e.contains("spec.containers[0].image"),
        "{e}"
    );
    // kubectl refuses such a name itself: the server's check, raw.
    let evil = ctx.path().join("evil.yaml");
    std::fs::write(&evil, bad.replace("name: bad", "name: ../../etc/x")).unwrap();
    let e = kubectl_try(
        &ctx,
        &[
            "create",
            "--raw",
            "/api/v1/namespaces/default/pods",
            "-f",
            &evil.display().to_string(),
        ],
    )
    .expect_err("a name that is a path");
    assert!(e.contains("metadata.name"), "{e}");
    let files: Vec<String> = std::fs::read_dir(ctx.manifest_path(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| !f.contains("bad") && !f.contains("etc")),
        "{files:?}"
    );

    // A pod whose file declares another pod too: 409, the file untouched.
    let e = kubectl_try(&ctx, &["delete", "pod", "one"]).expect_err("a shared file");
    assert!(e.contains("Conflict") && e.contains("pair.yaml"), "{e}");
    assert!(Path::new(&ctx.manifest_path("pair.yaml")).exists());

    // delete: the file removed, the pod Terminating, then gone with its
    // containers (kubectl waits for that).
    let out = kubectl(&ctx, &["delete", "pod", "api", "--grace-period=1"]);
    assert!(out.contains("pod \"api\" deleted"), "{out}");
    assert!(!written.exists(), "the file is removed");
    let gone = kubectl_try(&ctx, &["get", "pod", "api"]).expect_err("api is gone");
    assert!(gone.contains("NotFound"), "{gone}");
    ctx.wait_until(CONVERGE, "api's containers removed", || async {
        let left = ctx.pod_containers("api");
        if left.iter().all(|c| !c.running()) {
            Ok(())
        } else {
            Err(show(&left))
        }
    })
    .await;

    // Nothing of it disturbed the directory's own pod.
    assert_eq!(
        running_id(&ctx, "web", "app").as_deref(),
        Some(web_id.as_str())
    );
    let _ = docker_try(&["rmi", &other]);
}

#[tokio::test]
async fn a_delete_is_shown_terminating_and_readers_may_not_write() {
    let ctx = TestCtx::new("kwrite2");
    let tokens = ctx.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admintoken,admin,1,\"system:masters\"\nreadtoken,reader,2,\"viewers\"\n",
    )
    .unwrap();
    // A preStop hook that takes its time: the pod stays Terminating.
    ctx.write_manifest(
        "slow.yaml",
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: slow\nspec:\n  \
             terminationGracePeriodSeconds: 30\n  containers:\n  - name: app\n    image: {}\n    \
             command: [sleep, \"3600\"]\n    lifecycle:\n      preStop:\n        exec:\n          \
             command: [sleep, \"4\"]\n",
            env().busybox_image
        ),
    );
    let mut pv = Podvisor::spawn(&ctx, &[&format!("--token-auth-file={}", tokens.display())]);
    pv.wait_answering(&ctx, Some(200)).await;
    ctx.wait_pod_running(&pv, "slow").await;
    let ca = ctx.path().join("root").join("pki").join("ca.crt");
    let as_user = |token: &str, args: &[&str]| {
        let server = format!("--server=https://127.0.0.1:{}", pv.secure_port);
        let ca = format!("--certificate-authority={}", ca.display());
        let token = format!("--token={token}");
        let out = tool("kubectl")
            .env("KUBECONFIG", "/dev/null")
            .args(["--request-timeout=20s", &server, &ca, &token])
            .args(args)
            .output()
            .expect("kubectl runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    // A reader reads, and may not delete.
    let (ok, out) = as_user("readtoken", &["get", "pods"]);
    assert!(ok && out.contains("slow"), "{out}");
    let (ok, out) = as_user("readtoken", &["delete", "pod", "slow"]);
    assert!(
        !ok && out.contains("Forbidden") && out.contains("User \"reader\" cannot delete"),
        "{out}"
    );
    assert!(Path::new(&ctx.manifest_path("slow.yaml")).exists());

    // The admin deletes without waiting: Terminating while preStop runs.
    let (ok, out) = as_user("admintoken", &["delete", "pod", "slow", "--wait=false"]);
    assert!(ok, "{out}");
    let (_, table) = as_user("admintoken", &["get", "pod", "slow"]);
    assert!(table.contains("Terminating"), "{table}");
    let (ok, out) = as_user(
        "admintoken",
        &["wait", "--for=delete", "pod/slow", "--timeout=40s"],
    );
    assert!(ok, "{out}\n{}", ctx.failure_report());
    assert!(
        ctx.pod_containers("slow").iter().all(|c| !c.running()),
        "{}",
        show(&ctx.pod_containers("slow"))
    );
}
