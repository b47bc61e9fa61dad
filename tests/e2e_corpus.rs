//! The corpus of real-world pod patterns (issue 17): one manifest per
//! pattern seen in public examples (`tests/corpus/real-world/`), run
//! together on the real engine. Nothing may be mishandled in silence:
//!
//! - every field a manifest uses has a row in the README's "Every Pod
//!   field" table, and none is "ignored today";
//! - each pod reaches the outcome its `corpus.podvisor.dev/expect`
//!   annotation names: `Ready`, `Succeeded`, `Failed:<reason>` (with a
//!   Warning event of that reason) or `Waiting:<reason>`;
//! - its Warning events are those of `corpus.podvisor.dev/warnings` (plus
//!   the refusal's), and maybe those of `corpus.podvisor.dev/may-warn`
//!   (a slow start's `Unhealthy`), no other;
//! - the containers of `Ready` pods check the fields they rely on
//!   themselves (their resolv.conf, /etc/hosts, user, downward files...)
//!   and exit otherwise, so a field dropped in silence shows as a pod that
//!   is not Ready.
//!
//! Like `tests/e2e.rs` it needs the engine and images of
//! `scripts/ensure-env.sh` (`make test`), and fails, never skips, without.

#[allow(dead_code)]
mod e2e_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use e2e_support::*;
use serde_json::Value;

const EXPECT: &str = "corpus.podvisor.dev/expect";
const WARNINGS: &str = "corpus.podvisor.dev/warnings";
const MAY_WARN: &str = "corpus.podvisor.dev/may-warn";

struct Case {
    file: String,
    name: String,
    manifest: Value,
    expect: String,
    warnings: BTreeSet<String>,
    may_warn: BTreeSet<String>,
}

fn corpus() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/real-world");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(e.path()).expect("a corpus file");
            (name, text)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "the corpus has {} files", files.len());
    files
}

/// The README's table: field → treatment.
fn treatments() -> BTreeMap<String, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| {
            let (field, rest) = l.split_once("` | ")?;
            Some((field.to_string(), rest.trim_end_matches(" |").to_string()))
        })
        .collect()
}

/// The fields `manifest` uses, named as the README's rows are.
fn fields_used(manifest: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let keys = |v: &Value, prefix: &str, out: &mut BTreeSet<String>| {
        for k in v.as_object().into_iter().flat_map(|o| o.keys()) {
            out.insert(format!("{prefix}.{k}"));
        }
    };
    let spec = &manifest["spec"];
    keys(spec, "spec", &mut out);
    keys(&spec["securityContext"], "spec.securityContext", &mut out);
    for list in ["containers", "initContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            keys(c, "container", &mut out);
            keys(&c["securityContext"], "container.securityContext", &mut out);
        }
    }
    out
}

fn cases(image: &str) -> Vec<Case> {
    corpus()
        .into_iter()
        .map(|(file, text)| {
            let text = text.replace("@IMAGE@", image);
            let manifest: Value =
                serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
            let notes = &manifest["metadata"]["annotations"];
            let expect = notes[EXPECT]
                .as_str()
                .unwrap_or_else(|| panic!("{file}: no {EXPECT} annotation"))
                .to_string();
            let words = |key: &str| -> BTreeSet<String> {
                notes[key]
                    .as_str()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(String::from)
                    .collect()
            };
            let (warnings, may_warn) = (words(WARNINGS), words(MAY_WARN));
            Case {
                name: manifest["metadata"]["name"]
                    .as_str()
                    .expect("a name")
                    .to_string(),
                file,
                manifest,
                expect,
                warnings,
                may_warn,
            }
        })
        .collect()
}

#[test]
fn every_field_the_corpus_uses_has_a_treatment_and_none_is_ignored_today() {
    let table = treatments();
    let mut problems = Vec::new();
    for case in cases("busybox") {
        for field in fields_used(&case.manifest) {
            match table.get(&field) {
                None => problems.push(format!("{}: {field} has no row in the README", case.file)),
                Some(t) if t.starts_with("ignored today") => {
                    problems.push(format!("{}: {field} is {t}", case.file))
                }
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Whether `pod` shows the outcome `expect`; `Err` says what it shows.
fn outcome(pod: &Value, expect: &str) -> Result<(), String> {
    let s = &pod["status"];
    let phase = s["phase"].as_str().unwrap_or_default();
    let waiting: Vec<&str> = s["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(s["initContainerStatuses"].as_array().into_iter().flatten())
        .filter_map(|c| c["state"]["waiting"]["reason"].as_str())
        .collect();
    let ok = match expect.split_once(':') {
        None if expect == "Ready" => phase == "Running" && condition(pod, "Ready") == Some("True"),
        None => phase == expect,
        Some(("Failed", reason)) => phase == "Failed" && s["reason"] == reason,
        Some(("Waiting", reason)) => waiting.contains(&reason),
        Some(_) => panic!("unknown expectation {expect}"),
    };
    ok.then_some(()).ok_or_else(|| {
        format!(
            "phase {phase}, reason {}, message {}, waiting {waiting:?}",
            s["reason"], s["message"]
        )
    })
}

#[tokio::test]
async fn the_real_world_corpus_runs_as_the_kubelet_would_run_it() {
    let ctx = TestCtx::new("corpus");
    let cases = cases(&env().busybox_image);
    for case in &cases {
        ctx.write_json(&format!("{}.json", case.name), &case.manifest);
    }
    let pv = Podvisor::spawn(
        &ctx,
        &[
            "--cluster-dns",
            "10.96.0.10",
            "--cluster-domain",
            "cluster.local",
        ],
    );
    let mut failures = Vec::new();
    for case in &cases {
        let what = format!("{} ({}) to be {}", case.name, case.file, case.expect);
        let seen = ctx
            .wait_until_or(Duration::from_secs(90), || async {
                let list = pv.pods().await?;
                let pod = find_pod(&list, &case.name).ok_or("not listed")?;
                outcome(pod, &case.expect)
            })
            .await;
        if let Err(last) = seen {
            failures.push(format!("{what}: {last}"));
            continue;
        }
        // Warning events: those expected and the refusal's, maybe the
        // optional ones, no other.
        let events = pv.events("default", &case.name).await.expect("events");
        let warned: BTreeSet<String> = events
            .iter()
            .filter(|e| e["type"] == "Warning")
            .filter_map(|e| e["reason"].as_str().map(String::from))
            .collect();
        let mut wanted = case.warnings.clone();
        if let Some(("Failed", reason)) = case.expect.split_once(':') {
            wanted.insert(reason.to_string());
        }
        if let Some(("Waiting", _)) = case.expect.split_once(':') {
            // The container's configuration error is told as `Failed`.
            wanted.insert("Failed".to_string());
        }
        let allowed: BTreeSet<String> = wanted.union(&case.may_warn).cloned().collect();
        if !wanted.is_subset(&warned) || !warned.is_subset(&allowed) {
            failures.push(format!(
                "{}: Warning events {warned:?}, expected {wanted:?} (maybe {:?})",
                case.name, case.may_warn
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n{}",
        failures.join("\n"),
        ctx.failure_report()
    );
}
