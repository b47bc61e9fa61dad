//! What the manifest source remembers between scans, and across restarts:
//! the last good pods of each file and the file that owns each pod, kept
//! in a state file under `--root-dir`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use crate::manifest::{validate_pod, ManifestError, ManifestPod, ScanResult};

type PodKey = (String, String);

/// The state file's name under `--root-dir`.
pub const STATE_FILE: &str = "manifest-source.state";

/// What a source remembers between scans (cheap to clone: the pods are
/// shared).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SourceMemory {
    /// The pods of each file as last parsed and validated.
    last_good: HashMap<PathBuf, Vec<ManifestPod>>,
    /// The file that declared each pod first.
    owners: HashMap<PodKey, PathBuf>,
}

/// A desired pod from a source, with the problem of its file if any.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub pod: ManifestPod,
    /// Set when the pod runs on its last good spec because its file is
    /// broken now.
    pub problem: Option<String>,
}

/// Where a pod of the manifest directory is declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    /// The pods the file declares (its last good ones), this one included.
    pub pods_in_file: usize,
    /// Set when the pod is an item of a `v1` `List` document.
    pub item_index: Option<usize>,
}

/// Whether an error breaks a whole file (rather than refusing one pod).
fn broken_file(e: &ManifestError) -> Option<&Path> {
    match e {
        ManifestError::ReadFile { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            None
        }
        ManifestError::ReadFile { .. }
        | ManifestError::Syntax { .. }
        | ManifestError::Document { .. }
        | ManifestError::Invalid { .. } => Some(e.file()),
        _ => None,
    }
}

/// The files of a scan that are still there but say nothing usable (they
/// do not parse, are empty, or are no regular file), with the problem.
pub fn kept_files(scan: &ScanResult) -> HashMap<&Path, String> {
    let mut kept: HashMap<&Path, String> = scan
        .errors
        .iter()
        .filter_map(|e| broken_file(e).map(|f| (f, e.to_string())))
        .collect();
    for file in &scan.blank {
        let problem = format!("{}: the file is empty (or comments only)", file.display());
        kept.insert(file, problem);
    }
    for (file, skip) in &scan.skipped {
        if skip.keeps_pods() {
            kept.insert(file, format!("{}: {skip}", file.display()));
        }
    }
    kept
}

impl SourceMemory {
    /// The owners to prefer in the next scan.
    pub fn owners(&self) -> &HashMap<PodKey, PathBuf> {
        &self.owners
    }

    /// The file that declares the pod `namespace/name`, and how many pods
    /// that file declares (its last good ones).
    pub fn locate(&self, namespace: &str, name: &str) -> Option<Located> {
        let file = self.owners.get(&(namespace.to_owned(), name.to_owned()))?;
        let pods = self.last_good.get(file).map_or(&[][..], Vec::as_slice);
        let own = pods
            .iter()
            .find(|p| p.namespace() == namespace && p.name() == name);
        Some(Located {
            file: file.clone(),
            pods_in_file: pods.len(),
            item_index: own.and_then(|p| p.item_index),
        })
    }

    /// Whether `file`'s pods ran (it has last good pods).
    pub fn had_pods(&self, file: &Path) -> bool {
        self.last_good
            .get(file)
            .is_some_and(|pods| !pods.is_empty())
    }

    /// Folds a scan into the memory; returns the pods to run.
    ///
    /// A file that parsed gives its pods as the new last good. A file still
    /// there that does not (broken, empty, too large, unreadable, no longer
    /// a regular file) keeps its last good pods, with the problem shown. A
    /// file gone is forgotten: its pods go.
    pub fn apply(&mut self, scan: &ScanResult) -> Vec<Resolved> {
        let mut out: Vec<Resolved> = scan
            .pods
            .iter()
            .map(|p| Resolved {
                pod: p.clone(),
                problem: None,
            })
            .collect();
        let mut parsed: HashMap<&Path, Vec<ManifestPod>> = HashMap::new();
        for p in &scan.pods {
            parsed.entry(p.file.as_path()).or_default().push(p.clone());
        }
        let kept = kept_files(scan);
        let mut last_good = HashMap::new();
        for (file, pods) in &parsed {
            last_good.insert(file.to_path_buf(), pods.clone());
        }
        let mut kept: Vec<_> = kept.into_iter().collect();
        kept.sort();
        for (file, problem) in &kept {
            let Some(pods) = self.last_good.get(*file) else {
                continue;
            };
            for p in pods {
                let key = (p.namespace().to_owned(), p.name().to_owned());
                let owned_here = self.owners.get(&key).is_some_and(|o| o == file);
                // The broken file keeps what it owns, even against another
                // file now declaring the same pod.
                if owned_here {
                    out.retain(|r| (r.pod.namespace(), r.pod.name()) != (&key.0[..], &key.1[..]));
                }
                if out
                    .iter()
                    .all(|r| (r.pod.namespace(), r.pod.name()) != (&key.0[..], &key.1[..]))
                {
                    out.push(Resolved {
                        pod: p.clone(),
                        problem: Some(problem.clone()),
                    });
                }
            }
            last_good.insert(file.to_path_buf(), pods.clone());
        }
        self.last_good = last_good;
        let mut owners = HashMap::new();
        for r in &out {
            let key = (r.pod.namespace().to_owned(), r.pod.name().to_owned());
            owners.insert(key, r.pod.file.clone());
        }
        self.owners = owners;
        out
    }

    /// The memory as the state file holds it (stable: same memory, same bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let files: BTreeMap<&PathBuf, Vec<SavedPod>> = self
            .last_good
            .iter()
            .map(|(file, pods)| {
                let pods = pods
                    .iter()
                    .map(|p| SavedPod {
                        doc_index: p.doc_index,
                        item_index: p.item_index,
                        pod: p.pod.clone(),
                    })
                    .collect();
                (file, pods)
            })
            .collect();
        let mut owners: Vec<SavedOwner> = self
            .owners
            .iter()
            .map(|((namespace, name), file)| SavedOwner {
                namespace: namespace.clone(),
                name: name.clone(),
                file: file.clone(),
            })
            .collect();
        owners.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let saved = Saved {
            version: VERSION,
            files: files
                .into_iter()
                .map(|(file, pods)| SavedFile {
                    file: file.clone(),
                    pods,
                })
                .collect(),
            owners,
        };
        // Pods and paths always serialize.
        serde_json::to_vec_pretty(&saved).unwrap_or_default()
    }

    /// The memory a state file holds; an error says why it cannot be used.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let saved: Saved = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if saved.version != VERSION {
            return Err(format!("unknown version {}", saved.version));
        }
        let mut memory = SourceMemory::default();
        for f in saved.files {
            let mut pods = Vec::new();
            for p in f.pods {
                validate_pod(&p.pod).map_err(|e| format!("{}: {e}", f.file.display()))?;
                pods.push(ManifestPod {
                    pod: p.pod,
                    file: f.file.clone(),
                    doc_index: p.doc_index,
                    item_index: p.item_index,
                });
            }
            memory.last_good.insert(f.file, pods);
        }
        for o in saved.owners {
            memory.owners.insert((o.namespace, o.name), o.file);
        }
        Ok(memory)
    }

    /// The memory kept in `path`: empty when there is none; a state file
    /// that cannot be read or used is logged and ignored.
    pub fn load(path: &Path) -> Self {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Self::default(),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "cannot read the manifest source's state; starting without it");
                return Self::default();
            }
        };
        match Self::from_bytes(&bytes) {
            Ok(memory) => {
                tracing::info!(file = %path.display(), files = memory.last_good.len(), "loaded the last good manifests");
                memory
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "the manifest source's state is corrupt; starting without it");
                Self::default()
            }
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it,
/// synced, then renamed over it. Blocking.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // The rename itself is durable once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    files: Vec<SavedFile>,
    owners: Vec<SavedOwner>,
}

#[derive(Serialize, Deserialize)]
struct SavedFile {
    file: PathBuf,
    pods: Vec<SavedPod>,
}

#[derive(Serialize, Deserialize)]
struct SavedPod {
    doc_index: usize,
    item_index: Option<usize>,
    pod: Arc<Pod>,
}

#[derive(Serialize, Deserialize)]
struct SavedOwner {
    namespace: String,
    name: String,
    file: PathBuf,
}
