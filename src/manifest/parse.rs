//! Documents to pods: YAML (`---`-separated) or JSON, `Pod` or `List` of
//! Pods, every pod defaulted and validated; errors carry the line (syntax)
//! or the document (and `List` item).

use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::strict::{
    read_tree, unknown_fields, unknown_list_fields, Tree, TreeError, MAX_DOCUMENT_BYTES,
};
use super::{apply_defaults, validate_pod, FieldError, ManifestError, ManifestPod};
use crate::settings::ManifestValidation;

/// What pass 1 reads of each document: enough to pick the type to decode it as.
#[derive(Deserialize)]
#[serde(expecting = "a Kubernetes object (a mapping with apiVersion and kind)")]
struct TypeMeta {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

/// A `v1` `List` (only its items matter).
#[derive(Deserialize)]
struct PodList {
    #[serde(default)]
    items: Vec<Pod>,
}

/// How a document is decoded, once its `apiVersion`/`kind` are known.
#[derive(Clone, Copy)]
enum DocKind {
    Empty,
    Pod,
    List,
}

/// Parses one manifest file (`path` picks the format by extension and names the file in
/// errors). All-or-nothing: the first bad document rejects the file. Pods come back
/// defaulted and validated, in document order. Does not check for duplicate names (that is
/// [`scan_dir`](super::scan_dir)'s job, across files). Unknown and duplicate fields are
/// refused ([`ManifestValidation::Strict`]).
pub fn parse_file(path: &Path, content: &str) -> Result<Vec<ManifestPod>, ManifestError> {
    parse_file_with(path, content, ManifestValidation::Strict)
}

/// [`parse_file`], with unknown and duplicate fields refused (`Strict`) or logged as
/// warnings naming the file, document and field (`Warn`).
pub fn parse_file_with(
    path: &Path,
    content: &str,
    validation: ManifestValidation,
) -> Result<Vec<ManifestPod>, ManifestError> {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let file = || path.to_path_buf();

    // Pass 1: read apiVersion/kind of every document (this also catches syntax errors).
    let heads: Vec<Option<TypeMeta>> = if json {
        if content.trim().is_empty() {
            Vec::new()
        } else {
            vec![serde_json::from_str(content).map_err(|e| json_syntax(path, &e))?]
        }
    } else {
        serde_yaml_ng::Deserializer::from_str(content)
            .enumerate()
            .map(|(doc_index, doc)| {
                Option::<TypeMeta>::deserialize(doc).map_err(|e| yaml_syntax(path, doc_index, &e))
            })
            .collect::<Result<_, _>>()?
    };
    let kinds = heads
        .iter()
        .enumerate()
        .map(|(doc_index, head)| doc_kind(head.as_ref(), path, doc_index))
        .collect::<Result<Vec<_>, _>>()?;

    // Pass 2: decode each document as its type. A YAML document is read
    // into a tree first, its plain scalars resolved as kubectl resolves
    // them (YAML 1.1: `010` is 8, `yes` true), and the pod decoded from the
    // tree, as kubectl decodes the JSON its YAML reader writes.
    let mut yaml_docs = (!json).then(|| serde_yaml_ng::Deserializer::from_str(content));
    let mut yaml_trees = (!json).then(|| serde_yaml_ng::Deserializer::from_str(content));
    let mut out = Vec::new();
    for (doc_index, kind) in kinds.into_iter().enumerate() {
        let source = match &mut yaml_docs {
            Some(docs) => match docs.next() {
                Some(doc) => Source::Yaml(doc),
                None => break,
            },
            None => Source::Json(content),
        };
        // The tree first: a document too large once its aliases are
        // expanded is refused before the typed decode would build it.
        let tree = match &mut yaml_trees {
            Some(docs) => docs
                .next()
                .map(|doc| read_tree(doc, MAX_DOCUMENT_BYTES, Some(content)))
                .transpose()
                .map_err(|e| e.map(DecodeError::from)),
            None => read_tree(
                &mut serde_json::Deserializer::from_str(content),
                MAX_DOCUMENT_BYTES,
                None,
            )
            .map(Some)
            .map_err(|e| e.map(DecodeError::from)),
        };
        let tree = match tree {
            Err(TreeError::TooLarge { limit }) => {
                return Err(ManifestError::Document {
                    file: file(),
                    doc_index,
                    message: format!(
                        "Request entity too large: more than {limit} bytes once YAML aliases \
                         are expanded (the API server's limit); not decoded"
                    ),
                })
            }
            Err(TreeError::Decode(e)) => Err(e),
            Ok(tree) => Ok(tree),
        };
        let document = |err: DecodeError| ManifestError::Document {
            file: file(),
            doc_index,
            message: err.to_string(),
        };
        let tree = tree.map_err(document)?;
        let decoded = match kind {
            DocKind::Empty => continue,
            DocKind::Pod => decode::<Pod>(source, tree.as_ref()).map(|pod| vec![(None, pod)]),
            DocKind::List => decode::<PodList>(source, tree.as_ref()).map(|list| {
                list.items
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (Some(i), p))
                    .collect()
            }),
        };
        let pods = decoded.map_err(document)?;
        if let Some(tree) = tree {
            let problems = strict_problems(&tree, kind, &pods);
            refuse_or_warn(problems, validation, path, doc_index)?;
        }
        for (item_index, mut pod) in pods {
            apply_defaults(&mut pod);
            validate_pod(&pod).map_err(|mut error| {
                if let Some(item) = item_index {
                    error.path = format!("items[{item}].{}", error.path);
                }
                ManifestError::Invalid {
                    file: file(),
                    doc_index,
                    error,
                }
            })?;
            out.push(ManifestPod {
                pod: Arc::new(pod),
                file: file(),
                doc_index,
                item_index,
            });
        }
    }
    Ok(out)
}

/// Refuses a document with strict-decoding problems (`Strict`), or logs them (`Warn`).
fn refuse_or_warn(
    problems: Vec<String>,
    validation: ManifestValidation,
    path: &Path,
    doc_index: usize,
) -> Result<(), ManifestError> {
    if problems.is_empty() {
        return Ok(());
    }
    if validation == ManifestValidation::Strict {
        return Err(ManifestError::Document {
            file: path.to_path_buf(),
            doc_index,
            message: format!("strict decoding error: {}", problems.join(", ")),
        });
    }
    for problem in &problems {
        tracing::warn!(
            "{}: document {doc_index}: {problem} (accepted: --manifest-validation=warn)",
            path.display()
        );
    }
    Ok(())
}

/// The duplicate and unknown fields of one decoded document (mapping keys in sorted order).
fn strict_problems(tree: &Tree, kind: DocKind, pods: &[(Option<usize>, Pod)]) -> Vec<String> {
    let mut problems = tree.duplicates.clone();
    match kind {
        DocKind::Empty => {}
        DocKind::Pod => {
            for (_, pod) in pods {
                problems.extend(unknown_fields(&tree.value, pod, ""));
            }
        }
        DocKind::List => {
            problems.extend(unknown_list_fields(&tree.value));
            let items = tree.value.get("items").and_then(|i| i.as_array());
            for (item, (index, pod)) in items.into_iter().flatten().zip(pods) {
                let prefix = format!("items[{}]", index.unwrap_or_default());
                problems.extend(unknown_fields(item, pod, &prefix));
            }
        }
    }
    problems
}

/// One document to decode: a YAML document, or a whole JSON file.
enum Source<'a> {
    Yaml(serde_yaml_ng::Deserializer<'a>),
    Json(&'a str),
}

/// A document that does not decode as its type; displays as the parser's
/// message, which names the field path and (but for a value only YAML 1.1
/// reads as a number or boolean) the line.
#[derive(Debug, thiserror::Error)]
enum DecodeError {
    #[error(transparent)]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Field(String),
}

/// Decodes a document as `T`: a YAML document from its tree (YAML 1.1
/// scalars), a JSON one from its text.
fn decode<T: DeserializeOwned>(source: Source<'_>, tree: Option<&Tree>) -> Result<T, DecodeError> {
    match (source, tree) {
        (Source::Yaml(doc), Some(tree)) => match serde_path_to_error::deserialize(&tree.value) {
            Ok(value) => Ok(value),
            Err(err) => {
                let path = err.path().to_string();
                // The YAML decoder names the line; its message is used when
                // it fails at the same field (it reads `010` as a string, so
                // it may fail earlier, where kubectl does not).
                let same_field = |e: &serde_yaml_ng::Error| {
                    let text = e.to_string();
                    (path != "." && text.starts_with(&format!("{path}: "))).then_some(text)
                };
                let with_line = T::deserialize(doc).err().and_then(|e| same_field(&e));
                Err(DecodeError::Field(with_line.unwrap_or_else(
                    || match path.as_str() {
                        "." => err.into_inner().to_string(),
                        _ => format!("{path}: {}", err.into_inner()),
                    },
                )))
            }
        },
        (Source::Yaml(doc), None) => Ok(T::deserialize(doc)?),
        (Source::Json(text), _) => Ok(serde_json::from_str(text)?),
    }
}

/// Which type a document decodes as, from its `apiVersion` and `kind`.
fn doc_kind(
    head: Option<&TypeMeta>,
    file: &Path,
    doc_index: usize,
) -> Result<DocKind, ManifestError> {
    let Some(head) = head else {
        return Ok(DocKind::Empty);
    };
    let file = file.to_path_buf();
    let kind = head.kind.as_deref().filter(|s| !s.is_empty());
    let api_version = head.api_version.as_deref().filter(|s| !s.is_empty());
    let (Some(kind), Some(api_version)) = (kind, api_version) else {
        let error = FieldError::required(if kind.is_none() { "kind" } else { "apiVersion" });
        return Err(ManifestError::Invalid {
            file,
            doc_index,
            error,
        });
    };
    let message = match (api_version, kind) {
        ("v1", "Pod") => return Ok(DocKind::Pod),
        ("v1", "List") => return Ok(DocKind::List),
        (_, "Pod" | "List") => {
            format!("apiVersion {api_version:?} is not supported for kind {kind:?}")
        }
        _ => format!("kind {kind:?} is not supported"),
    };
    let message = format!("{message} (only v1 Pod and List)");
    Err(ManifestError::Document {
        file,
        doc_index,
        message,
    })
}

/// A YAML error of pass 1, with its location taken out of the message.
fn yaml_syntax(path: &Path, doc_index: usize, err: &serde_yaml_ng::Error) -> ManifestError {
    let message = err.to_string();
    match err.location() {
        Some(loc) => {
            let (line, column) = (loc.line(), loc.column());
            let suffix = format!(" at line {line} column {column}");
            ManifestError::Syntax {
                file: path.to_path_buf(),
                line,
                column,
                message: message.replacen(&suffix, "", 1),
            }
        }
        None => ManifestError::Document {
            file: path.to_path_buf(),
            doc_index,
            message,
        },
    }
}

/// A JSON error of pass 1, with its location taken out of the message.
fn json_syntax(path: &Path, err: &serde_json::Error) -> ManifestError {
    let (line, column) = (err.line(), err.column());
    let suffix = format!(" at line {line} column {column}");
    ManifestError::Syntax {
        file: path.to_path_buf(),
        line,
        column,
        message: err.to_string().replacen(&suffix, "", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::test_support::*;

    #[test]
    fn multi_doc_yaml_gives_pods_in_order() {
        let content = format!("{WEB}---\n{}", pod_yaml("db", ""));
        let pods = parse("a.yaml", &content).expect("valid");
        assert_eq!(names(&pods), ["web", "db"]);
        assert_eq!(pods[1].doc_index, 1);
        assert_eq!(pods[1].item_index, None);
        assert_eq!(pods[1].file, Path::new("a.yaml"));
    }

    #[test]
    fn json_file_is_one_document() {
        let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
            "spec":{"containers":[{"name":"c","image":"redis:7"}]}}"#;
        let pods = parse("j.json", json).expect("valid");
        assert_eq!(names(&pods), ["j"]);
        assert_eq!(pods[0].doc_index, 0);
    }

    #[test]
    fn list_items_are_pods() {
        let content = "apiVersion: v1\nkind: List\nmetadata:\n  resourceVersion: \"\"\nitems:
- apiVersion: v1\n  kind: Pod\n  metadata: {name: a}\n  spec: {containers: [{name: c, image: x:1}]}
- apiVersion: v1\n  kind: Pod\n  metadata: {name: b}\n  spec: {containers: [{name: c, image: x:1}]}
";
        let pods = parse("l.yaml", content).expect("valid");
        assert_eq!(names(&pods), ["a", "b"]);
        assert_eq!(pods[1].item_index, Some(1));
        assert_eq!(pods[1].doc_index, 0);
    }

    #[test]
    fn list_item_errors_name_the_item() {
        let content = "apiVersion: v1\nkind: List\nitems:
- {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: x}]}}
- {apiVersion: v1, kind: Pod, metadata: {name: b}, spec: {containers: [{name: c}]}}
";
        let err = parse_err("l.yaml", content);
        assert_eq!(
            err,
            "l.yaml: document 0: items[1].spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn list_item_of_other_kind_is_rejected() {
        let content = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service}\n";
        let err = parse_err("l.yaml", content);
        assert!(err.starts_with("l.yaml: document 0: items[0]"), "{err}");
        assert!(err.contains("Service"), "{err}");
    }

    #[test]
    fn empty_documents_are_skipped_but_counted() {
        let content = format!("---\n# only a comment\n---\n{WEB}---\n");
        let pods = parse("e.yaml", &content).expect("valid");
        assert_eq!(names(&pods), ["web"]);
        assert_eq!(pods[0].doc_index, 1);
    }

    #[test]
    fn empty_files_give_no_pods() {
        assert!(parse("e.yaml", "").expect("valid").is_empty());
        assert!(parse("e.yaml", "# nothing\n").expect("valid").is_empty());
        assert!(parse("e.json", " \n").expect("valid").is_empty());
    }

    #[test]
    fn other_kinds_are_rejected() {
        let content = format!("{WEB}---\napiVersion: apps/v1\nkind: Deployment\n");
        let err = parse_err("bad.yaml", &content);
        assert_eq!(
            err,
            r#"bad.yaml: document 1: kind "Deployment" is not supported (only v1 Pod and List)"#
        );
    }

    #[test]
    fn pod_of_other_api_version_is_rejected() {
        let err = parse_err("bad.yaml", &WEB.replace("apiVersion: v1", "apiVersion: v2"));
        assert!(
            err.starts_with(r#"bad.yaml: document 0: apiVersion "v2""#),
            "{err}"
        );
    }

    #[test]
    fn kind_and_api_version_are_required() {
        let err = parse_err("k.yaml", &WEB.replace("kind: Pod\n", ""));
        assert_eq!(err, "k.yaml: document 0: kind: Required value");
        let err = parse_err("k.yaml", &WEB.replace("apiVersion: v1\n", ""));
        assert_eq!(err, "k.yaml: document 0: apiVersion: Required value");
    }

    #[test]
    fn non_mapping_document_is_rejected() {
        let err = parse_err("s.yaml", "just a string\n");
        assert!(err.starts_with("s.yaml: line 1 column 1: "), "{err}");
        assert!(err.contains("expected a Kubernetes object"), "{err}");
    }

    #[test]
    fn malformed_yaml_reports_the_line() {
        let content = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [web\nspec: {}\n";
        let err = parse(".yaml", content).expect_err("malformed");
        let ManifestError::Syntax { line, .. } = &err else {
            panic!("not a syntax error: {err}")
        };
        assert!(*line >= 4, "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(".yaml: line {line} column ")),
            "{text}"
        );
        assert!(
            !text.contains(&format!("at line {line}")),
            "location repeated: {text}"
        );
    }

    #[test]
    fn malformed_json_reports_the_line() {
        let err = parse_err(
            "j.json",
            "{\n  \"apiVersion\": \"v1\",\n  \"kind\" \"Pod\"\n}",
        );
        assert!(err.starts_with("j.json: line 3 column "), "{err}");
    }

    #[test]
    fn type_errors_name_the_field_and_line() {
        let content = pod_yaml("web", "    ports:\n    - containerPort: http\n");
        let err = parse_err("t.yaml", &content);
        assert!(err.starts_with("t.yaml: document 0: "), "{err}");
        assert!(err.contains("containerPort"), "{err}");
        assert!(err.contains("line 10"), "{err}");
    }

    #[test]
    fn a_bad_document_rejects_the_whole_file() {
        let content = format!(
            "{WEB}---\n{}",
            pod_yaml("db", "    imagePullPolicy: Maybe\n")
        );
        let err = parse("two.yaml", &content).expect_err("rejected");
        assert!(
            matches!(err, ManifestError::Invalid { doc_index: 1, .. }),
            "{err}"
        );
    }

    fn spec_of(pods: &[ManifestPod]) -> &k8s_openapi::api::core::v1::PodSpec {
        pods[0].pod.spec.as_ref().expect("spec")
    }

    #[test]
    fn plain_scalars_are_read_as_kubectl_reads_them() {
        let content = pod_yaml(
            "web",
            "    stdin: on\n    tty: y\n    ports:\n    - containerPort: 0x50\n    \
             - containerPort: +8_080\n    - containerPort: 443.0\n  \
             terminationGracePeriodSeconds: 010\n  hostNetwork: yes\n  hostPID: No\n",
        );
        let pods = parse("y.yaml", &content).expect("kubectl reads it");
        let spec = spec_of(&pods);
        assert_eq!(spec.termination_grace_period_seconds, Some(8));
        assert_eq!(spec.host_network, Some(true));
        assert_eq!(spec.host_pid, Some(false));
        let c = &spec.containers[0];
        assert_eq!((c.stdin, c.tty), (Some(true), Some(true)));
        let ports: Vec<i32> = c.ports.iter().flatten().map(|p| p.container_port).collect();
        assert_eq!(ports, [80, 8080, 443]);
    }

    #[test]
    fn quoted_scalars_stay_strings() {
        let content = WEB.replace(
            "  name: web\n",
            "  name: web\n  annotations: {a: \"010\", b: 'yes', c: !!str 010, d: 0x1_0y}\n",
        );
        let pods = parse("q.yaml", &content).expect("valid");
        let ann = pods[0]
            .pod
            .metadata
            .annotations
            .clone()
            .expect("annotations");
        let got: Vec<_> = ann.values().map(String::as_str).collect();
        assert_eq!(got, ["010", "yes", "010", "0x1_0y"]);
        // A quoted number where a number is expected: refused, as kubectl does.
        let err = parse_err(
            "q.yaml",
            &format!("{WEB}  terminationGracePeriodSeconds: \"010\"\n"),
        );
        assert!(
            err.starts_with("q.yaml: document 0: spec.terminationGracePeriodSeconds: invalid type: string \"010\""),
            "{err}"
        );
    }

    #[test]
    fn a_yaml_1_1_boolean_or_number_where_a_string_is_expected_is_refused_naming_the_field() {
        let err = parse_err("s.yaml", &WEB.replace("image: nginx:1.27", "image: yes"));
        assert_eq!(
            err,
            "s.yaml: document 0: spec.containers[0].image: invalid type: boolean `true`, expected a string"
        );
        let err = parse_err(
            "s.yaml",
            &WEB.replace("  name: web\n", "  name: web\n  labels: {version: 010}\n"),
        );
        assert!(
            err.starts_with(
                "s.yaml: document 0: metadata.labels.version: invalid type: integer `8`"
            ),
            "{err}"
        );
        let err = parse_err(
            "s.yaml",
            &pod_yaml("web", "    ports: [{containerPort: 80.5}]\n"),
        );
        assert!(
            err.contains(
                "spec.containers[0].ports[0].containerPort: invalid type: floating point `80.5`"
            ),
            "{err}"
        );
        let err = parse_err(
            "s.yaml",
            &pod_yaml("web", "    ports: [{containerPort: .inf}]\n"),
        );
        assert!(
            err.starts_with("s.yaml: document 0: ") && err.contains("JSON cannot hold"),
            "{err}"
        );
    }

    #[test]
    fn plain_keys_are_resolved_too() {
        let content = WEB.replace(
            "  name: web\n",
            "  name: web\n  labels: {y: a, 010: b, \"on\": c}\n",
        );
        let pods = parse("k.yaml", &content).expect("valid");
        let labels = pods[0].pod.metadata.labels.clone().expect("labels");
        let keys: Vec<_> = labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["8", "on", "true"]);
    }

    #[test]
    fn strings_written_by_to_yaml_read_back_as_strings() {
        // The API writes manifests: a string that YAML 1.1 reads as a
        // number or boolean must come out quoted (keys too).
        let words = [
            "yes", "Yes", "y", "n", "on", "Off", "010", "08", "1_000", "0x10", "0o17", "0b11",
            "+80", "1e2", ".5", "+.5", "09.5", "~", "null", "", "0X1F", "1__0", "-0b11",
        ];
        let mut pod = Pod::clone(&parse("p.yaml", WEB).expect("valid")[0].pod);
        pod.metadata.labels = Some([("on".to_string(), "off".to_string())].into());
        pod.metadata.annotations = Some(
            words
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("k{i}"), w.to_string()))
                .collect(),
        );
        // serde_yaml_ng alone writes `yes` plain: read back, a boolean.
        let naive = serde_yaml_ng::to_string(&pod).expect("yaml");
        assert!(parse("p.yaml", &naive).is_err(), "{naive}");
        let text = crate::manifest::to_yaml(&pod).expect("yaml");
        let back = parse("p.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            back[0].pod.metadata.annotations, pod.metadata.annotations,
            "{text}"
        );
    }
}
