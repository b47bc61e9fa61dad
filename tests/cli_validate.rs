//! `podvisor validate` as a user runs it: the real binary on manifest
//! files and directories, no engine.

use std::fs;
use std::path::Path;
use std::process::Command;

const WEB: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  \
                   containers:\n  - name: app\n    image: busybox:1.36\n";

/// Runs `podvisor validate args…`: exit code, stdout, stderr.
fn validate(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podvisor"))
        .arg("validate")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run podvisor validate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    fs::write(&path, text).expect("write manifest");
    path.display().to_string()
}

#[test]
fn a_good_directory_is_ok_and_prints_its_pods_with_defaults() {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "web.yaml", WEB);
    let two = format!(
        "{}---\n# nothing here\n---\n{}",
        WEB.replace("name: web", "name: db"),
        WEB.replace("name: web", "name: cache")
    );
    write(d.path(), "more.yml", &two);
    // Every file is a manifest but dot-files and editor leftovers, as
    // the kubelet reads its directory; those are noted.
    let leftover = write(d.path(), "web.yaml~", "not a manifest");
    let dir = d.path().display().to_string();
    let summary = format!(
        "{leftover}: note: looks like an editor or package manager leftover \
         (*~, #*#, .swp, .swo, .swx, .bak, .orig, .rej, .tmp, .dpkg-*, .rpmnew, .rpmsave); \
         not read\n3 pods in 2 files OK\n"
    );

    let (code, stdout, stderr) = validate(&[&dir]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr, summary);

    let (code, stdout, stderr) = validate(&["-o", "yaml", &dir]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stderr, summary);
    let docs: Vec<serde_json::Value> = stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_yaml_ng::from_str(d).expect("a YAML document"))
        .collect();
    assert_eq!(docs.len(), 3, "{stdout}");
    let names: Vec<&str> = docs
        .iter()
        .filter_map(|d| d["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["db", "cache", "web"],
        "sorted files, then documents"
    );
    let web = &docs[2];
    assert_eq!(web["metadata"]["name"], "web");
    assert_eq!(web["metadata"]["namespace"], "default");
    assert_eq!(web["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(web["spec"]["restartPolicy"], "Always");
    assert_eq!(
        web["spec"]["containers"][0]["imagePullPolicy"], "IfNotPresent",
        "{stdout}"
    );
}

#[test]
fn a_broken_directory_names_file_document_and_field() {
    let d = tempfile::tempdir().expect("tempdir");
    let a = write(d.path(), "a.yaml", WEB);
    let b = write(d.path(), "b.yaml", WEB);
    let bad_name = format!("{WEB}---\n{}", WEB.replace("name: web", "name: Web_1"));
    let c = write(d.path(), "c.yaml", &bad_name);
    let unknown = WEB.replace("    image:", "    imagePullPolicey: Always\n    image:");
    let u = write(d.path(), "u.yaml", &unknown.replace("name: web", "name: u"));
    let dir = d.path().display().to_string();

    let (code, stdout, stderr) = validate(&[&dir]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{c}: document 1: metadata.name: "))),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{u}: document 0: "))
                && l.contains("spec.containers[0].imagePullPolicey")),
        "{stderr}"
    );
    assert!(
        lines.contains(
            &format!("{b}: document 0: pod default/web is already defined in {a} (document 0)")
                .as_str()
        ),
        "{stderr}"
    );
    assert_eq!(
        lines.last(),
        Some(&"3 problems (1 pod in 4 files OK)"),
        "{stderr}"
    );

    // With warn, the unknown field is a warning and its pod is fine.
    let (code, _, stderr) = validate(&["--manifest-validation=warn", &dir]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("imagePullPolicey"), "{stderr}");
    assert!(
        stderr.ends_with("2 problems (2 pods in 4 files OK)\n"),
        "{stderr}"
    );

    // Files named one by one: the duplicate is across them too.
    let (code, _, stderr) = validate(&[&b, &a]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "{a}: document 0: pod default/web is already defined in {b} (document 0)\n"
        )),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_two() {
    let (code, _, stderr) = validate(&[]);
    assert_eq!(code, Some(2), "{stderr}");
    let (code, _, stderr) = validate(&["-o", "xml", "."]);
    assert_eq!(code, Some(2), "{stderr}");
}
