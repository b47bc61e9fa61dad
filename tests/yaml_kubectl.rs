//! Property test of issue 17, item 5: podvisor reads YAML scalars as kubectl
//! does. Generated scalars (decimal, leading-zero octal, hex, `0o`, `0b`,
//! signs, underscores, floats, booleans in every spelling, nulls, words;
//! plain, single- or double-quoted) are put in an int field
//! (`terminationGracePeriodSeconds`, `containerPort`), a bool field
//! (`hostNetwork`, `stdin`) and a string field (`image`, an annotation).
//! Each case is one file; the real kubectl (1.32) decodes them all,
//! offline, with `kubectl set image --local -f … -o json`: the same YAML
//! reader as `kubectl create`/`apply` (sigs.k8s.io/yaml, go-yaml v2) and a
//! typed decode of the resulting JSON, which `create --dry-run=client`
//! cannot do without an API server. podvisor must accept what kubectl
//! accepts with the same value, and refuse what kubectl refuses, naming
//! the field. kubectl missing fails the test (`tool`), never skips it.

#[allow(dead_code)]
mod e2e_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::Value;

use e2e_support::tool;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Grace,
    Port,
    HostNetwork,
    Stdin,
    Image,
    Annotation,
}

impl Field {
    /// The field's name as it appears in error messages.
    fn name(self) -> &'static str {
        match self {
            Field::Grace => "terminationGracePeriodSeconds",
            Field::Port => "containerPort",
            Field::HostNetwork => "hostNetwork",
            Field::Stdin => "stdin",
            Field::Image => "image",
            Field::Annotation => "annotations",
        }
    }

    /// The value decoded, from a pod as JSON (`Null` if absent).
    fn get(self, pod: &Value) -> Value {
        let t = &pod["spec"]["containers"][1];
        match self {
            Field::Grace => pod["spec"]["terminationGracePeriodSeconds"].clone(),
            Field::Port => t["ports"][0]["containerPort"].clone(),
            Field::HostNetwork => pod["spec"]["hostNetwork"].clone(),
            Field::Stdin => t["stdin"].clone(),
            Field::Image => t["image"].clone(),
            Field::Annotation => pod["metadata"]["annotations"]["a"].clone(),
        }
    }

    /// What podvisor's defaulting gives an absent value.
    fn default(self) -> Value {
        match self {
            Field::Grace => Value::from(30),
            Field::HostNetwork | Field::Stdin => Value::Bool(false),
            _ => Value::Null,
        }
    }
}

/// A pod named `name` with `scalar` written (as is) in `field`; container
/// `c` is the one `kubectl set image` changes, `t` holds the fields.
fn manifest(name: &str, field: Field, scalar: &str) -> String {
    let (mut meta, mut spec, mut t) = (String::new(), String::new(), String::new());
    let mut image = "x:1".to_string();
    match field {
        Field::Grace => spec = format!("  terminationGracePeriodSeconds: {scalar}\n"),
        Field::HostNetwork => spec = format!("  hostNetwork: {scalar}\n"),
        Field::Port => t = format!("    ports:\n    - containerPort: {scalar}\n"),
        Field::Stdin => t = format!("    stdin: {scalar}\n"),
        Field::Image => image = scalar.to_string(),
        Field::Annotation => meta = format!("  annotations:\n    a: {scalar}\n"),
    }
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n{meta}spec:\n{spec}  containers:\n  \
         - name: c\n    image: x:1\n  - name: t\n    image: {image}\n{t}"
    )
}

/// Scalars as people (and generators) write them.
fn scalar() -> impl Strategy<Value = String> {
    let number = (1u32..=65535).prop_flat_map(|n| {
        prop_oneof![
            Just(n.to_string()),
            Just(format!("0{n:o}")),
            Just(format!("0x{n:x}")),
            Just(format!("0X{n:X}")),
            Just(format!("0o{n:o}")),
            Just(format!("0b{n:b}")),
            Just(format!("+{n}")),
            Just(format!("0{n}")),
            Just(format!("{n}.0")),
            Just(format!("{n}.5")),
            Just(format!("{n}e0")),
            Just(format!("{}_{}", n / 10, n % 10)),
            Just(format!("0x_{n:x}")),
        ]
    });
    let word = prop::sample::select(vec![
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "yEs",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "on",
        "On",
        "ON",
        "oN",
        "off",
        "Off",
        "OFF",
        "true",
        "True",
        "TRUE",
        "tRUE",
        "false",
        "False",
        "FALSE",
        "~",
        "null",
        "Null",
        "NULL",
        "nginx",
        "busybox:1.36",
        "1.2.3",
        "0x",
        "_1",
        "1e400",
        ".5",
        "+.5",
        "-.5",
        "08",
        "09.5",
        "0.",
        "1_000",
        "99999999999999999999",
        "0xFFFFFFFFFFFFFFFF",
        "9223372036854775807",
        ".inf",
        "2001-12-14",
    ])
    .prop_map(str::to_string);
    let bare = prop_oneof![3 => number, 2 => word];
    (bare, 0..4u8).prop_map(|(s, quote)| match quote {
        1 => format!("'{s}'"),
        2 => format!("\"{s}\""),
        _ => s,
    })
}

fn field() -> impl Strategy<Value = Field> {
    prop::sample::select(vec![
        Field::Grace,
        Field::Port,
        Field::HostNetwork,
        Field::Stdin,
        Field::Image,
        Field::Annotation,
    ])
}

/// kubectl's decoding of each file: the pod as JSON, or its error. Chunks
/// of files run in parallel, one kubectl run per chunk until it passes.
fn kubectl_decode(files: &[PathBuf]) -> HashMap<PathBuf, Result<Value, String>> {
    std::thread::scope(|s| {
        let runs: Vec<_> = files
            .chunks(files.len().div_ceil(6).max(1))
            .map(|chunk| s.spawn(|| kubectl_decode_chunk(chunk)))
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().expect("a kubectl chunk"))
            .collect()
    })
}

/// One run decodes every file; the files it refuses (it names them, and
/// stops decoding at the first typed error) are taken out and the rest
/// run again.
fn kubectl_decode_chunk(files: &[PathBuf]) -> HashMap<PathBuf, Result<Value, String>> {
    let mut out = HashMap::new();
    let mut left: Vec<PathBuf> = files.to_vec();
    while !left.is_empty() {
        let mut cmd = tool("kubectl");
        cmd.env("KUBECONFIG", "/dev/null")
            .args(["set", "image", "--local", "-o", "json"]);
        for f in &left {
            cmd.arg("-f").arg(f);
        }
        let run = cmd.arg("c=x:2").output().expect("kubectl runs");
        if run.status.success() {
            let text = String::from_utf8_lossy(&run.stdout);
            let docs: Vec<Value> = serde_json::Deserializer::from_str(&text)
                .into_iter()
                .collect::<Result<_, _>>()
                .unwrap_or_else(|e| panic!("kubectl's JSON: {e}\n{text}"));
            let pods: Vec<Value> = docs
                .into_iter()
                .flat_map(|d| match d["kind"].as_str() {
                    Some("List") => d["items"].as_array().cloned().unwrap_or_default(),
                    _ => vec![d],
                })
                .collect();
            assert_eq!(pods.len(), left.len(), "one pod per file:\n{text}");
            for (f, pod) in left.drain(..).zip(pods) {
                let name = f.file_stem().unwrap().to_string_lossy().into_owned();
                assert_eq!(pod["metadata"]["name"], name.as_str(), "kubectl's order");
                out.insert(f, Ok(pod));
            }
            break;
        }
        let err = String::from_utf8_lossy(&run.stderr).into_owned();
        let named = |f: &PathBuf| {
            let f = f.display();
            err.contains(&format!("\"{f}\"")) || err.contains(&format!("{f}:"))
        };
        let before = left.len();
        for f in std::mem::take(&mut left) {
            if named(&f) {
                out.insert(f, Err(err.trim().to_string()));
            } else {
                left.push(f);
            }
        }
        assert!(left.len() < before, "kubectl failed naming no file: {err}");
    }
    out
}

/// podvisor's reading of one file: the pod as JSON, or its error.
fn podvisor_decode(path: &Path, text: &str) -> Result<Value, String> {
    podvisor::manifest::parse_file(path, text)
        .map(|pods| serde_json::to_value(&*pods[0].pod).expect("json"))
        .map_err(|e| e.to_string())
}

/// The same number (`8` and `8.0` are one value in JSON).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[test]
fn podvisor_reads_generated_yaml_scalars_as_kubectl_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runner = TestRunner::deterministic();
    let strategy = (field(), scalar());
    // Fixed cases first (the ones of the issue), then generated ones.
    let mut cases: Vec<(Field, String)> = vec![
        (Field::Grace, "010".into()),
        (Field::Grace, "\"010\"".into()),
        (Field::Port, "0x10".into()),
        (Field::Port, "+80".into()),
        (Field::Grace, "1_000".into()),
        (Field::HostNetwork, "yes".into()),
        (Field::Stdin, "on".into()),
        (Field::Image, "yes".into()),
        (Field::Annotation, "010".into()),
        (Field::Annotation, "'010'".into()),
    ];
    for _ in 0..250 {
        let tree = strategy.new_tree(&mut runner).expect("a case");
        cases.push(tree.current());
    }
    let files: Vec<(PathBuf, Field, String, String)> = cases
        .into_iter()
        .enumerate()
        .map(|(i, (field, scalar))| {
            let name = format!("case-{i}");
            let text = manifest(&name, field, &scalar);
            let path = dir.path().join(format!("{name}.yaml"));
            std::fs::write(&path, &text).expect("write");
            (path, field, scalar, text)
        })
        .collect();
    let paths: Vec<PathBuf> = files.iter().map(|f| f.0.clone()).collect();
    let kubectl = kubectl_decode(&paths);

    let mut mismatches = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for (path, field, scalar, text) in &files {
        let theirs = &kubectl[path];
        let ours = podvisor_decode(path, text);
        let agree = match (theirs, &ours) {
            (Ok(k), Ok(p)) => {
                accepted += 1;
                let (kv, pv) = (field.get(k), field.get(p));
                same(&kv, &pv) || (kv.is_null() && same(&pv, &field.default()))
            }
            (Err(_), Err(e)) => {
                refused += 1;
                e.contains(field.name())
            }
            // A null decodes (to 0, or nothing) but is no valid port or
            // image: the API server's validation, which podvisor applies
            // as it reads, refuses it, naming the field.
            (Ok(_), Err(e)) if ["~", "null", "Null", "NULL"].contains(&scalar.as_str()) => {
                e.contains(field.name())
                    && (e.contains("Required value") || e.contains("Invalid value"))
            }
            _ => false,
        };
        if !agree {
            mismatches.push(format!(
                "{} = {scalar}: kubectl {:?}, podvisor {:?}",
                field.name(),
                theirs.as_ref().map(|k| field.get(k)),
                ours.as_ref().map(|p| field.get(p)),
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from kubectl:\n{}",
        mismatches.len(),
        files.len(),
        mismatches.join("\n")
    );
    // Both outcomes were exercised.
    assert!(
        accepted > 50 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}
