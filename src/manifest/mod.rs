//! Reading static pod manifests from a directory.
//!
//! A manifest directory holds `*.yaml`, `*.yml` and `*.json` files. A YAML file holds one
//! or more `---`-separated documents, a JSON file exactly one. Each document is a `v1`
//! `Pod` or a `v1` `List` whose `items` are Pods (as `kubectl get -o yaml` writes); empty
//! documents are skipped. Pods get the API server's defaults ([`apply_defaults`]) and are
//! then validated ([`validate_pod`]).
//!
//! A file is all-or-nothing: one bad document rejects the whole file (a half-applied file
//! surprises users), while the other files still load. When two documents define the same
//! `namespace/name`, the first one in sorted file order, then document order, wins.

use std::collections::{hash_map::Entry, HashMap, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::model::{PullPolicy, RestartPolicy};

/// A validated, defaulted pod and where it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestPod {
    /// The pod, with [`apply_defaults`] applied; `metadata.name` and `metadata.namespace` are set.
    pub pod: Pod,
    /// The file it came from (the scanned directory joined with the file name).
    pub file: PathBuf,
    /// 0-based index of the document in the file (empty documents count too).
    pub doc_index: usize,
    /// Index in the `items` of a `List` document, `None` for a `Pod` document.
    pub item_index: Option<usize>,
}

impl ManifestPod {
    /// The pod's namespace (always set after defaulting).
    pub fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    /// The pod's name (always set after validation).
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }
}

/// Everything [`scan_dir`] found: the pods that load, and why the others don't.
#[derive(Debug, Default)]
pub struct ScanResult {
    /// Pods in sorted file order, then document order; `namespace/name` is unique.
    pub pods: Vec<ManifestPod>,
    /// Unreadable directory or files, rejected files and refused duplicate pods.
    pub errors: Vec<ManifestError>,
}

/// A validation failure at a Kubernetes-style field path, e.g. `spec.containers[1].name`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FieldError {
    /// Field path, e.g. `spec.containers[0].image`.
    pub path: String,
    /// What is wrong, e.g. `Required value` or `Duplicate value: "app"`.
    pub message: String,
}

/// Constructors with Kubernetes' wording, shared by every validator.
impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn required(path: impl Into<String>) -> Self {
        Self::new(path, "Required value")
    }

    pub fn invalid(path: impl Into<String>, value: impl fmt::Debug, detail: &str) -> Self {
        Self::new(path, format!("Invalid value: {value:?}: {detail}"))
    }

    pub fn duplicate(path: impl Into<String>, value: &str) -> Self {
        Self::new(path, format!("Duplicate value: {value:?}"))
    }

    pub fn unsupported(path: impl Into<String>, value: &str, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
        let message = format!(
            "Unsupported value: {value:?}: supported values: {}",
            list.join(", ")
        );
        Self::new(path, message)
    }
}

/// Why a directory, a file, a document or a pod was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest directory does not exist or cannot be listed.
    #[error("{}: cannot read manifest directory: {source}", .dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A manifest file cannot be read (or is not UTF-8).
    #[error("{}: cannot read file: {source}", .file.display())]
    ReadFile {
        /// The file.
        file: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// YAML/JSON syntax error, or a document whose `apiVersion`/`kind` cannot be read.
    #[error("{}: line {line} column {column}: {message}", .file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message, without the location.
        message: String,
    },
    /// A document that cannot be decoded as a Pod / List of Pods, or of an unsupported kind.
    #[error("{}: document {doc_index}: {message}", .file.display())]
    Document {
        /// The file.
        file: PathBuf,
        /// 0-based document index.
        doc_index: usize,
        /// What is wrong (decoding errors include the line).
        message: String,
    },
    /// A pod that fails validation. For `List` items the path starts with `items[N].`.
    #[error("{}: document {doc_index}: {error}", .file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 0-based document index.
        doc_index: usize,
        /// The failing field.
        error: FieldError,
    },
    /// A pod whose `namespace/name` was already defined earlier; only this pod is refused.
    #[error(
        "{}: {}: pod {namespace}/{name} is already defined in {first}",
        .file.display(), doc_ref(*.doc_index, *.item_index)
    )]
    Duplicate {
        /// The file of the refused pod.
        file: PathBuf,
        /// Document index of the refused pod.
        doc_index: usize,
        /// `List` item index of the refused pod.
        item_index: Option<usize>,
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        name: String,
        /// Where the pod that was kept comes from.
        first: Box<PodSource>,
    },
}

/// Where a pod was defined; displays as `a.yaml (document 0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSource {
    /// The file.
    pub file: PathBuf,
    /// 0-based document index.
    pub doc_index: usize,
    /// `List` item index, `None` for a `Pod` document.
    pub item_index: Option<usize>,
}

impl fmt::Display for PodSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let doc = doc_ref(self.doc_index, self.item_index);
        write!(f, "{} ({doc})", self.file.display())
    }
}

impl ManifestError {
    /// The file (or, for [`ManifestError::ReadDir`], the directory) the error is about.
    pub fn file(&self) -> &Path {
        match self {
            Self::ReadDir { dir, .. } => dir,
            Self::ReadFile { file, .. }
            | Self::Syntax { file, .. }
            | Self::Document { file, .. }
            | Self::Invalid { file, .. }
            | Self::Duplicate { file, .. } => file,
        }
    }
}

fn doc_ref(doc_index: usize, item_index: Option<usize>) -> String {
    match item_index {
        Some(item) => format!("document {doc_index}, items[{item}]"),
        None => format!("document {doc_index}"),
    }
}

/// Whether `path`'s file name looks like a manifest: a `.yaml`, `.yml` or `.json` extension
/// (any case), and not a dot-file or an editor leftover (`*~`, `*.swp`, `*.swx`, `.#*`,
/// `#*#`). Looks at the name only, not at the file system.
pub fn is_manifest_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    // Editor leftovers (`a.yaml~`, `a.yaml.swp`, `#a.yaml#`) fail the extension test;
    // `.#a.yaml` and `.a.yaml.swx` are dot-files.
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let known = ["yaml", "yml", "json"]
        .iter()
        .any(|e| ext.eq_ignore_ascii_case(e));
    known && !name.starts_with('.')
}

/// Reads every manifest file of `dir` (non-recursive) in sorted file-name order.
///
/// Blocking (`std::fs`): call it from `spawn_blocking`. A missing or unreadable `dir`
/// yields no pods and one [`ManifestError::ReadDir`].
pub fn scan_dir(dir: &Path) -> ScanResult {
    scan_dir_preferring(dir, &HashMap::new())
}

/// [`scan_dir`], where a pod declared in several files goes to the file
/// `prefer` names for it (the file that declared it first, as the caller
/// remembers it) as long as that file still declares it.
pub fn scan_dir_preferring(dir: &Path, prefer: &HashMap<(String, String), PathBuf>) -> ScanResult {
    let mut result = ScanResult::default();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) => {
            let dir = dir.to_path_buf();
            result.errors.push(ManifestError::ReadDir { dir, source });
            return result;
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => files.push(entry.path()),
            Err(source) => {
                let dir = dir.to_path_buf();
                result.errors.push(ManifestError::ReadDir { dir, source });
            }
        }
    }
    files.retain(|path| is_manifest_file(path) && path.is_file());
    files.sort();

    let mut parsed_files = Vec::new();
    for file in files {
        let parsed = fs::read_to_string(&file)
            .map_err(|source| ManifestError::ReadFile {
                file: file.clone(),
                source,
            })
            .and_then(|content| parse_file(&file, &content));
        match parsed {
            Ok(pods) => parsed_files.push(pods),
            Err(err) => result.errors.push(err),
        }
    }

    // (namespace, name) -> the pod that wins: the preferred owner's when
    // it still declares the pod, else the first in file order.
    let mut winner: HashMap<(String, String), (PathBuf, usize, Option<usize>)> = HashMap::new();
    for mp in parsed_files.iter().flatten() {
        let key = (mp.namespace().to_owned(), mp.name().to_owned());
        let preferred = prefer.get(&key) == Some(&mp.file);
        match winner.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert((mp.file.clone(), mp.doc_index, mp.item_index));
            }
            Entry::Occupied(mut slot) if preferred => {
                slot.insert((mp.file.clone(), mp.doc_index, mp.item_index));
            }
            Entry::Occupied(_) => {}
        }
    }
    for mp in parsed_files.into_iter().flatten() {
        let key = (mp.namespace().to_owned(), mp.name().to_owned());
        let Some((file, doc_index, item_index)) = winner.get(&key) else {
            continue;
        };
        if (file, *doc_index, *item_index) == (&mp.file, mp.doc_index, mp.item_index) {
            result.pods.push(mp);
            continue;
        }
        let (namespace, name) = key;
        result.errors.push(ManifestError::Duplicate {
            file: mp.file,
            doc_index: mp.doc_index,
            item_index: mp.item_index,
            namespace,
            name,
            first: Box::new(PodSource {
                file: file.clone(),
                doc_index: *doc_index,
                item_index: *item_index,
            }),
        });
    }
    result
}

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
/// [`scan_dir`]'s job, across files).
pub fn parse_file(path: &Path, content: &str) -> Result<Vec<ManifestPod>, ManifestError> {
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

    // Pass 2: decode each document as its type.
    let mut yaml_docs = (!json).then(|| serde_yaml_ng::Deserializer::from_str(content));
    let mut out = Vec::new();
    for (doc_index, kind) in kinds.into_iter().enumerate() {
        let source = match &mut yaml_docs {
            Some(docs) => match docs.next() {
                Some(doc) => Source::Yaml(doc),
                None => break,
            },
            None => Source::Json(content),
        };
        let decoded = match kind {
            DocKind::Empty => continue,
            DocKind::Pod => decode::<Pod>(source).map(|pod| vec![(None, pod)]),
            DocKind::List => decode::<PodList>(source).map(|list| {
                list.items
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| (Some(i), p))
                    .collect()
            }),
        };
        let pods = decoded.map_err(|message| ManifestError::Document {
            file: file(),
            doc_index,
            message,
        })?;
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
                pod,
                file: file(),
                doc_index,
                item_index,
            });
        }
    }
    Ok(out)
}

/// One document to decode: a YAML document, or a whole JSON file.
enum Source<'a> {
    Yaml(serde_yaml_ng::Deserializer<'a>),
    Json(&'a str),
}

/// Decodes a document as `T`; the message names the field path (YAML) and the line.
fn decode<T: DeserializeOwned>(source: Source<'_>) -> Result<T, String> {
    match source {
        Source::Yaml(doc) => T::deserialize(doc).map_err(|e| e.to_string()),
        Source::Json(text) => serde_json::from_str(text).map_err(|e| e.to_string()),
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

/// Sets `field` to `value` when it is absent or empty (Go's zero value means "unset").
fn default_str(field: &mut Option<String>, value: impl FnOnce() -> String) {
    if field.as_deref().is_none_or(str::is_empty) {
        *field = Some(value());
    }
}

/// Applies the defaults the API server would, and only those: `metadata.namespace`
/// (`default`), `spec.restartPolicy` (`Always`), `spec.terminationGracePeriodSeconds` (30),
/// `spec.dnsPolicy` (`ClusterFirst`), and for every container and init container
/// `imagePullPolicy` ([`PullPolicy::default_for`]), `terminationMessagePath`
/// (`/dev/termination-log`), `terminationMessagePolicy` (`File`) and each port's `protocol`
/// (`TCP`). Empty strings count as absent.
pub fn apply_defaults(pod: &mut Pod) {
    default_str(&mut pod.metadata.namespace, || "default".into());
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    default_str(&mut spec.restart_policy, || {
        RestartPolicy::default().as_str().into()
    });
    default_str(&mut spec.dns_policy, || "ClusterFirst".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    let init = spec.init_containers.iter_mut().flatten();
    for c in spec.containers.iter_mut().chain(init) {
        let image = c.image.as_deref().unwrap_or_default();
        default_str(&mut c.image_pull_policy, || {
            PullPolicy::default_for(image).as_str().into()
        });
        default_str(&mut c.termination_message_path, || {
            "/dev/termination-log".into()
        });
        default_str(&mut c.termination_message_policy, || "File".into());
        for port in c.ports.iter_mut().flatten() {
            default_str(&mut port.protocol, || "TCP".into());
        }
    }
}

/// `s` is lowercase alphanumerics and `-`, starting and ending with an alphanumeric.
fn is_label_shaped(s: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

/// An RFC 1123 label: at most 63 lowercase alphanumerics or `-`, starting and ending with
/// an alphanumeric (namespaces, container names).
pub fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_label_shaped(s)
}

/// An RFC 1123 subdomain: at most 253 characters, `.`-separated labels of lowercase
/// alphanumerics or `-`, each starting and ending with an alphanumeric (pod names).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label_shaped)
}

/// An IANA service name (port names): at most 15 lowercase alphanumerics or `-`, with at
/// least one letter, not starting or ending with `-`, and no `--`.
fn is_iana_svc_name(s: &str) -> bool {
    s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

const DNS1123_LABEL_MSG: &str = "must be a lowercase RFC 1123 label: at most 63 lowercase \
    alphanumeric characters or '-', starting and ending with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "must be a lowercase RFC 1123 subdomain: at most 253 \
    lowercase alphanumeric characters, '-' or '.', each '.'-separated part starting and \
    ending with an alphanumeric character";
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// Validates `pod` as the API server would for what podvisor uses; returns the first
/// problem. Expects [`apply_defaults`] to have run (absent defaulted fields pass).
pub fn validate_pod(pod: &Pod) -> Result<(), FieldError> {
    match pod.metadata.name.as_deref() {
        None | Some("") => return Err(FieldError::required("metadata.name")),
        Some(name) if !is_dns1123_subdomain(name) => {
            return Err(FieldError::invalid(
                "metadata.name",
                name,
                DNS1123_SUBDOMAIN_MSG,
            ))
        }
        Some(_) => {}
    }
    if let Some(ns) = pod.metadata.namespace.as_deref() {
        if !ns.is_empty() && !is_dns1123_label(ns) {
            let msg = DNS1123_LABEL_MSG;
            return Err(FieldError::invalid("metadata.namespace", ns, msg));
        }
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Err(FieldError::required("spec"));
    };
    if spec.containers.is_empty() {
        return Err(FieldError::required("spec.containers"));
    }
    // App containers first, so an init container clashing with one is the duplicate (as
    // in Kubernetes).
    let mut names = HashSet::new();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let lists = [
        ("containers", &spec.containers[..]),
        ("initContainers", init),
    ];
    for (list, containers) in lists {
        for (i, c) in containers.iter().enumerate() {
            validate_container(c, &format!("spec.{list}[{i}]"), &mut names)?;
        }
    }
    if let Some(policy) = spec.restart_policy.as_deref() {
        if policy.parse::<RestartPolicy>().is_err() {
            let path = "spec.restartPolicy";
            return Err(FieldError::unsupported(
                path,
                policy,
                &RestartPolicy::names(),
            ));
        }
    }
    if let Some(grace) = spec.termination_grace_period_seconds.filter(|g| *g < 0) {
        let path = "spec.terminationGracePeriodSeconds";
        return Err(FieldError::invalid(
            path,
            grace,
            "must be greater than or equal to 0",
        ));
    }
    Ok(())
}

fn validate_container<'a>(
    c: &'a Container,
    path: &str,
    names: &mut HashSet<&'a str>,
) -> Result<(), FieldError> {
    let name_path = format!("{path}.name");
    if c.name.is_empty() {
        return Err(FieldError::required(name_path));
    }
    if !is_dns1123_label(&c.name) {
        return Err(FieldError::invalid(name_path, &c.name, DNS1123_LABEL_MSG));
    }
    if !names.insert(&c.name) {
        return Err(FieldError::duplicate(name_path, &c.name));
    }
    if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
        return Err(FieldError::required(format!("{path}.image")));
    }
    if let Some(policy) = c.image_pull_policy.as_deref() {
        if policy.parse::<PullPolicy>().is_err() {
            let path = format!("{path}.imagePullPolicy");
            return Err(FieldError::unsupported(path, policy, &PullPolicy::names()));
        }
    }
    for (j, port) in c.ports.iter().flatten().enumerate() {
        let path = format!("{path}.ports[{j}]");
        const RANGE: &str = "must be between 1 and 65535, inclusive";
        if !(1..=65535).contains(&port.container_port) {
            let p = format!("{path}.containerPort");
            return Err(FieldError::invalid(p, port.container_port, RANGE));
        }
        if let Some(host) = port.host_port.filter(|h| !(0..=65535).contains(h)) {
            let msg = "must be between 0 and 65535, inclusive";
            return Err(FieldError::invalid(format!("{path}.hostPort"), host, msg));
        }
        if let Some(proto) = port.protocol.as_deref() {
            if !PROTOCOLS.contains(&proto) {
                let p = format!("{path}.protocol");
                return Err(FieldError::unsupported(p, proto, PROTOCOLS));
            }
        }
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            if !is_iana_svc_name(name) {
                let msg = "must be a valid port name: at most 15 lowercase alphanumeric \
                    characters or '-', with at least one letter, no leading, trailing or \
                    doubled '-'";
                return Err(FieldError::invalid(format!("{path}.name"), name, msg));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, PodSpec};

    const WEB: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  containers:
  - name: app
    image: nginx:1.27
";

    fn parse(name: &str, content: &str) -> Result<Vec<ManifestPod>, ManifestError> {
        parse_file(Path::new(name), content)
    }

    fn parse_err(name: &str, content: &str) -> String {
        match parse(name, content) {
            Ok(pods) => panic!("expected an error, got {} pods", pods.len()),
            Err(err) => err.to_string(),
        }
    }

    /// A one-container pod spec in YAML with `extra` appended to the container.
    fn pod_yaml(name: &str, extra: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  \
             - name: app\n    image: busybox:1.36\n{extra}"
        )
    }

    fn names(pods: &[ManifestPod]) -> Vec<&str> {
        pods.iter().map(ManifestPod::name).collect()
    }

    fn pod_with(f: impl FnOnce(&mut Pod)) -> Pod {
        let mut pod = parse("p.yaml", WEB).expect("valid").remove(0).pod;
        f(&mut pod);
        pod
    }

    fn spec(pod: &mut Pod) -> &mut PodSpec {
        pod.spec.as_mut().expect("spec")
    }

    fn validate_msg(pod: &Pod) -> String {
        validate_pod(pod).expect_err("invalid").to_string()
    }

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
    fn manifest_file_names() {
        for good in ["a.yaml", "a.yml", "dir/a.json", "A.YAML"] {
            assert!(is_manifest_file(Path::new(good)), "{good}");
        }
        let bad = [
            ".a.yaml",
            "a.yaml~",
            "a.yaml.swp",
            ".a.yaml.swx",
            ".#a.yaml",
            "#a.yaml#",
            "a.txt",
            "a",
            "yaml",
        ];
        for bad in bad {
            assert!(!is_manifest_file(Path::new(bad)), "{bad}");
        }
    }

    #[test]
    fn scan_ignores_leftovers_and_directories() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            ".hidden.yaml",
            "web.yaml~",
            ".web.yaml.swp",
            ".#web.yaml",
            "notes.txt",
        ] {
            fs::write(dir.path().join(name), "not: [valid").expect("write");
        }
        fs::create_dir(dir.path().join("sub.yaml")).expect("mkdir");
        fs::write(dir.path().join("web.yaml"), WEB).expect("write");
        let result = scan_dir(dir.path());
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!(names(&result.pods), ["web"]);
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
    fn missing_image() {
        let err = parse_err("x.yaml", &WEB.replace("    image: nginx:1.27\n", ""));
        assert_eq!(
            err,
            "x.yaml: document 0: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn blank_image() {
        let err = parse_err("x.yaml", &WEB.replace("nginx:1.27", "\"  \""));
        assert_eq!(
            err,
            "x.yaml: document 0: spec.containers[0].image: Required value"
        );
    }

    #[test]
    fn duplicate_container_name() {
        let content = pod_yaml("web", "  - name: app\n    image: busybox\n");
        let err = parse_err("web.yaml", &content);
        assert_eq!(
            err,
            r#"web.yaml: document 0: spec.containers[1].name: Duplicate value: "app""#
        );
    }

    #[test]
    fn init_container_name_clashing_with_app_container() {
        let content = format!("{WEB}  initContainers:\n  - name: app\n    image: busybox\n");
        let err = parse_err("web.yaml", &content);
        assert_eq!(
            err,
            r#"web.yaml: document 0: spec.initContainers[0].name: Duplicate value: "app""#
        );
    }

    #[test]
    fn bad_restart_policy() {
        let err = parse_err("r.yaml", &format!("{WEB}  restartPolicy: Sometimes\n"));
        assert_eq!(
            err,
            "r.yaml: document 0: spec.restartPolicy: Unsupported value: \"Sometimes\": \
             supported values: \"Always\", \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn bad_pull_policy() {
        let err = parse_err(
            "p.yaml",
            &pod_yaml("web", "    imagePullPolicy: Sometimes\n"),
        );
        assert!(
            err.starts_with("p.yaml: document 0: spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\""),
            "{err}"
        );
    }

    #[test]
    fn pod_names() {
        for (name, path) in [("Web", "metadata.name"), ("web_1", "metadata.name")] {
            let err = validate_msg(&pod_with(|p| p.metadata.name = Some(name.into())));
            assert!(
                err.starts_with(&format!("{path}: Invalid value: {name:?}: ")),
                "{err}"
            );
        }
        let err = validate_msg(&pod_with(|p| p.metadata.name = None));
        assert_eq!(err, "metadata.name: Required value");
        let err = validate_msg(&pod_with(|p| p.metadata.name = Some(String::new())));
        assert_eq!(err, "metadata.name: Required value");
        assert!(validate_pod(&pod_with(|p| p.metadata.name = Some("web.v2-a".into()))).is_ok());
    }

    #[test]
    fn namespace_must_be_a_label() {
        let err = validate_msg(&pod_with(|p| p.metadata.namespace = Some("my.ns".into())));
        assert!(
            err.starts_with("metadata.namespace: Invalid value: \"my.ns\""),
            "{err}"
        );
    }

    #[test]
    fn container_names_must_be_labels() {
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = "App".into()));
        assert!(
            err.starts_with("spec.containers[0].name: Invalid value: \"App\""),
            "{err}"
        );
        let err = validate_msg(&pod_with(|p| spec(p).containers[0].name = String::new()));
        assert_eq!(err, "spec.containers[0].name: Required value");
    }

    #[test]
    fn dns1123_label() {
        for good in ["a", "a-b", "0", "a1", &"a".repeat(63)] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
    }

    #[test]
    fn dns1123_subdomain() {
        for good in ["a", "a.b", "a-1.b-2.c", &"a".repeat(253)] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a.-b",
            "a-.b",
            "A.b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
    }

    #[test]
    fn containers_are_required() {
        let err = validate_msg(&pod_with(|p| spec(p).containers.clear()));
        assert_eq!(err, "spec.containers: Required value");
        assert_eq!(
            validate_msg(&pod_with(|p| p.spec = None)),
            "spec: Required value"
        );
    }

    #[test]
    fn defaults() {
        let content = pod_yaml("web", "    ports:\n    - containerPort: 80\n");
        let pod = &parse("d.yaml", &content).expect("valid")[0].pod;
        assert_eq!(pod.metadata.namespace.as_deref(), Some("default"));
        let spec = pod.spec.as_ref().expect("spec");
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy.as_deref(), Some("ClusterFirst"));
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
        assert_eq!(
            c.termination_message_path.as_deref(),
            Some("/dev/termination-log")
        );
        assert_eq!(c.termination_message_policy.as_deref(), Some("File"));
        let ports = c.ports.as_deref().expect("ports");
        assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
        assert_eq!(spec.host_network, None, "no invented defaults");
    }

    #[test]
    fn defaults_cover_init_containers_and_keep_explicit_values() {
        let mut pod = pod_with(|p| {
            p.metadata.namespace = Some("ops".into());
            let s = spec(p);
            s.restart_policy = Some("Never".into());
            s.containers[0].image_pull_policy = Some("Never".into());
            let mut init = s.containers[0].clone();
            init.name = "init".into();
            init.image = Some("busybox".into());
            init.image_pull_policy = None;
            s.init_containers = Some(vec![init]);
        });
        apply_defaults(&mut pod);
        assert_eq!(pod.metadata.namespace.as_deref(), Some("ops"));
        let s = spec(&mut pod);
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.containers[0].image_pull_policy.as_deref(), Some("Never"));
        let init = &s.init_containers.as_ref().expect("init")[0];
        assert_eq!(init.image_pull_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn empty_namespace_is_defaulted() {
        let content = WEB.replace("  name: web\n", "  name: web\n  namespace: \"\"\n");
        let pods = parse("n.yaml", &content).expect("valid");
        assert_eq!(pods[0].namespace(), "default");
        assert_eq!(pods[0].pod.metadata.namespace.as_deref(), Some("default"));
    }

    #[test]
    fn pull_policy_defaults() {
        let digest =
            "busybox@sha256:1487d0af5f52b4ba31c7e465126ee2123fe3f2305d638e7827681e7cf6c83d5e";
        let cases = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:1", "IfNotPresent"),
            ("localhost:5000/busybox:latest", "Always"),
            ("docker.io/library/busybox", "Always"),
            (digest, "IfNotPresent"),
            ("localhost:5000/busybox@sha256:abc", "IfNotPresent"),
        ];
        for (image, policy) in cases {
            assert_eq!(PullPolicy::default_for(image).as_str(), policy, "{image}");
        }
    }

    /// Validates a pod whose only container has one port, changed by `f`.
    fn validate_port(f: impl FnOnce(&mut ContainerPort)) -> Result<(), FieldError> {
        let mut port = ContainerPort {
            container_port: 80,
            ..Default::default()
        };
        f(&mut port);
        validate_pod(&pod_with(|p| {
            spec(p).containers[0].ports = Some(vec![port])
        }))
    }

    #[test]
    fn ports_are_validated() {
        type Tweak = fn(&mut ContainerPort);
        let path = "spec.containers[0].ports[0]";
        let err = |f: Tweak| validate_port(f).expect_err("invalid").to_string();
        assert_eq!(
            err(|p| p.container_port = 0),
            format!(
                "{path}.containerPort: Invalid value: 0: must be between 1 and 65535, inclusive"
            )
        );
        let cases: [(Tweak, &str); 5] = [
            (
                |p| p.container_port = 65536,
                "containerPort: Invalid value: 65536",
            ),
            (|p| p.host_port = Some(-1), "hostPort: Invalid value: -1"),
            (
                |p| p.protocol = Some("tcp".into()),
                "protocol: Unsupported value: \"tcp\"",
            ),
            (
                |p| p.name = Some("Http".into()),
                "name: Invalid value: \"Http\"",
            ),
            (
                |p| p.name = Some("a-very-long-port".into()),
                "name: Invalid value",
            ),
        ];
        for (f, expected) in cases {
            let err = err(f);
            assert!(err.starts_with(&format!("{path}.{expected}")), "{err}");
        }
    }

    #[test]
    fn good_ports_pass() {
        assert_eq!(validate_port(|_| {}), Ok(()));
        assert_eq!(validate_port(|p| p.host_port = Some(0)), Ok(()));
        assert_eq!(validate_port(|p| p.protocol = Some("SCTP".into())), Ok(()));
        for name in ["http", "web-8080", "h2c", "a23456789012345"] {
            assert_eq!(
                validate_port(|p| p.name = Some(name.into())),
                Ok(()),
                "{name}"
            );
        }
        for bad in ["80", "-http", "http-", "ht--tp", "a234567890123456"] {
            assert!(!is_iana_svc_name(bad), "{bad}");
        }
    }

    #[test]
    fn negative_grace_period() {
        let err = validate_msg(&pod_with(|p| {
            spec(p).termination_grace_period_seconds = Some(-1)
        }));
        assert!(
            err.starts_with("spec.terminationGracePeriodSeconds: Invalid value: -1"),
            "{err}"
        );
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

    #[test]
    fn scan_loads_good_files_and_reports_bad_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("a-bad.yaml"),
            format!("{WEB}---\nkind: Deployment\napiVersion: apps/v1\n"),
        )
        .expect("write");
        fs::write(dir.path().join("b-good.yml"), pod_yaml("db", "")).expect("write");
        let result = scan_dir(dir.path());
        assert_eq!(names(&result.pods), ["db"]);
        assert_eq!(result.errors.len(), 1, "{:?}", result.errors);
        let bad = dir.path().join("a-bad.yaml");
        assert_eq!(result.errors[0].file(), bad);
        assert!(result.errors[0]
            .to_string()
            .starts_with(&format!("{}: document 1: ", bad.display())));
    }

    #[test]
    fn scan_is_in_sorted_file_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["c", "a", "b"] {
            fs::write(dir.path().join(format!("{name}.yaml")), pod_yaml(name, "")).expect("write");
        }
        assert_eq!(names(&scan_dir(dir.path()).pods), ["a", "b", "c"]);
    }

    #[test]
    fn duplicate_pod_across_files_names_both() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.yaml"), WEB).expect("write");
        let b = format!("{}---\n{WEB}", pod_yaml("other", ""));
        fs::write(dir.path().join("b.yaml"), b).expect("write");
        let result = scan_dir(dir.path());
        assert_eq!(names(&result.pods), ["web", "other"]);
        assert_eq!(result.pods[0].file, dir.path().join("a.yaml"));
        assert_eq!(result.errors.len(), 1);
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        assert_eq!(
            result.errors[0].to_string(),
            format!(
                "{}: document 1: pod default/web is already defined in {} (document 0)",
                b.display(),
                a.display()
            )
        );
    }

    #[test]
    fn duplicate_pod_within_a_file_refuses_only_that_pod() {
        let dir = tempfile::tempdir().expect("tempdir");
        let content = format!("{WEB}---\n{}---\n{WEB}", pod_yaml("db", ""));
        fs::write(dir.path().join("a.yaml"), content).expect("write");
        let result = scan_dir(dir.path());
        assert_eq!(names(&result.pods), ["web", "db"]);
        let err = result.errors[0].to_string();
        assert!(err.ends_with("a.yaml (document 0)"), "{err}");
        assert!(err.contains("a.yaml: document 2: pod default/web"), "{err}");
    }

    #[test]
    fn same_name_in_other_namespace_is_no_duplicate() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.yaml"), WEB).expect("write");
        let other = WEB.replace("  name: web\n", "  name: web\n  namespace: ops\n");
        fs::write(dir.path().join("b.yaml"), other).expect("write");
        let result = scan_dir(dir.path());
        assert!(result.errors.is_empty(), "{:?}", result.errors);
        assert_eq!(result.pods.len(), 2);
    }

    #[test]
    fn missing_dir_is_one_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let result = scan_dir(&missing);
        assert!(result.pods.is_empty());
        assert_eq!(result.errors.len(), 1);
        assert!(matches!(result.errors[0], ManifestError::ReadDir { .. }));
        let err = result.errors[0].to_string();
        assert!(
            err.starts_with(&format!("{}: ", missing.display())),
            "{err}"
        );
    }

    #[test]
    fn unreadable_file_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, 0x00]).expect("write");
        let result = scan_dir(dir.path());
        assert!(
            matches!(result.errors[..], [ManifestError::ReadFile { .. }]),
            "{:?}",
            result.errors
        );
    }
}
