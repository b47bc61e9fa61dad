//! The manifest directory as a source of desired pods.
//!
//! Changes are seen at once through inotify (the `notify` crate), debounced
//! so that a burst of writes is one rescan, with a full rescan every
//! `--file-check-frequency` as the backstop. Every scan sends the
//! Supervisor the whole desired set.
//!
//! Two rules keep running pods safe from bad edits ([`SourceMemory`]):
//! - **Last good spec.** A file that no longer parses or validates keeps
//!   its pods on the last spec that did; the error is logged and shown in
//!   those pods' status message until the file is fixed or removed.
//!   Removing the file removes its pods.
//! - **First seen wins.** A pod declared in two files belongs to the file
//!   that declared it first; the other is refused with an error naming
//!   both. When the owner stops declaring it, the other takes over.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, SpawnHandle,
    WrapFuture,
};

use super::supervisor::SetDesired;
use super::DesiredPod;
use crate::manifest::{self, ManifestError, ManifestPod, ScanResult};
use crate::model::{naming, PodExt};
use crate::settings::ManifestValidation;

/// How long a burst of file events is collected before one rescan.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Scan the directory now.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ScanNow;

/// Something changed in the directory (from the inotify watcher).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct FsChanged;

type PodKey = (String, String);

/// What a source remembers between scans.
#[derive(Debug, Default)]
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

impl SourceMemory {
    /// The owners to prefer in the next scan.
    pub fn owners(&self) -> &HashMap<PodKey, PathBuf> {
        &self.owners
    }

    /// Folds a scan into the memory; returns the pods to run.
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
        let broken: HashMap<&Path, String> = scan
            .errors
            .iter()
            .filter_map(|e| broken_file(e).map(|f| (f, e.to_string())))
            .collect();
        // Files that parsed: their pods are the new last good. Broken
        // files: their last good pods run on, with the problem shown.
        // Files gone (neither parsed nor broken): forgotten.
        let mut last_good = HashMap::new();
        for (file, pods) in &parsed {
            last_good.insert(file.to_path_buf(), pods.clone());
        }
        for (file, problem) in &broken {
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
}

pub struct ManifestSource {
    dir: PathBuf,
    node_name: String,
    every: Duration,
    sink: Recipient<SetDesired>,
    memory: SourceMemory,
    /// Errors already reported, so a broken file is logged once, not at
    /// every rescan.
    reported: BTreeSet<String>,
    scanning: bool,
    /// A scan was asked for while one ran.
    again: bool,
    pending: Option<SpawnHandle>,
    watcher: Option<notify::RecommendedWatcher>,
    /// Unknown or duplicate manifest fields: refused or warned about.
    validation: ManifestValidation,
}

impl ManifestSource {
    pub fn new(
        dir: PathBuf,
        node_name: String,
        every: Duration,
        sink: Recipient<SetDesired>,
    ) -> Self {
        Self {
            dir,
            node_name,
            every,
            sink,
            memory: SourceMemory::default(),
            reported: BTreeSet::new(),
            scanning: false,
            again: false,
            pending: None,
            watcher: None,
            validation: ManifestValidation::Strict,
        }
    }

    /// Sets `--manifest-validation` (strict when not called).
    pub fn with_validation(mut self, validation: ManifestValidation) -> Self {
        self.validation = validation;
        self
    }

    /// Watches the directory with inotify; each event asks for a
    /// (debounced) rescan.
    fn watch(&mut self, ctx: &mut Context<Self>) {
        use notify::Watcher;
        let addr = ctx.address();
        let handler = move |event: notify::Result<notify::Event>| {
            if event.is_ok_and(|e| !e.kind.is_access()) {
                addr.do_send(FsChanged);
            }
        };
        let watched = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(&self.dir, notify::RecursiveMode::NonRecursive)?;
            Ok(w)
        });
        match watched {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::warn!(
                dir = %self.dir.display(),
                error = %e,
                "cannot watch the manifest directory; relying on the periodic rescan"
            ),
        }
    }
}

/// Settles a manifest pod's UID: its own `metadata.uid`, or one derived
/// from the node and its namespace/name.
pub fn desired_from(p: ManifestPod, source_kind: &str, node: &str) -> DesiredPod {
    let mut pod = p.pod;
    let uid = match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => naming::derived_pod_uid(source_kind, node, pod.namespace(), pod.name()),
    };
    pod.metadata.uid = Some(uid.clone());
    DesiredPod {
        uid,
        pod: Arc::new(pod),
        source: format!("{} (document {})", p.file.display(), p.doc_index),
        problem: None,
    }
}

impl Actor for ManifestSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.watch(ctx);
        ctx.notify(ScanNow);
        ctx.run_interval(self.every, |_, ctx| ctx.notify(ScanNow));
    }
}

impl Handler<FsChanged> for ManifestSource {
    type Result = ();

    fn handle(&mut self, _: FsChanged, ctx: &mut Context<Self>) {
        if self.pending.is_none() {
            self.pending = Some(ctx.notify_later(ScanNow, DEBOUNCE));
        }
    }
}

impl Handler<ScanNow> for ManifestSource {
    type Result = ();

    fn handle(&mut self, _: ScanNow, ctx: &mut Context<Self>) {
        if let Some(h) = self.pending.take() {
            ctx.cancel_future(h);
        }
        if self.scanning {
            self.again = true;
            return;
        }
        self.scanning = true;
        let dir = self.dir.clone();
        let prefer = self.memory.owners().clone();
        let validation = self.validation;
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || {
                    manifest::scan_dir_preferring_with(&dir, &prefer, validation)
                })
                .await
            }
            .into_actor(self)
            .map(|scan, act, ctx| {
                act.scanning = false;
                if std::mem::take(&mut act.again) {
                    ctx.notify(ScanNow);
                }
                let scan = match scan {
                    Ok(scan) => scan,
                    Err(e) => {
                        tracing::error!(error = %e, "manifest scan panicked");
                        return;
                    }
                };
                let errors: BTreeSet<String> = scan.errors.iter().map(|e| e.to_string()).collect();
                for e in errors.difference(&act.reported) {
                    tracing::error!("bad manifest: {e}");
                }
                act.reported = errors;
                if scan
                    .errors
                    .iter()
                    .any(|e| matches!(e, ManifestError::ReadDir { .. }))
                {
                    // An unreadable directory is not an empty one: keep
                    // the pods we have.
                    return;
                }
                let pods = act
                    .memory
                    .apply(&scan)
                    .into_iter()
                    .map(|r| {
                        let mut d = desired_from(r.pod, "file", &act.node_name);
                        d.problem = r.problem;
                        d
                    })
                    .collect();
                act.sink.do_send(SetDesired::files(pods));
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write(dir: &Path, file: &str, text: &str) {
        fs::write(dir.join(file), text).unwrap();
    }

    fn pod_yaml(name: &str, image: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
        )
    }

    fn scan(dir: &Path, m: &mut SourceMemory) -> Vec<(String, String, Option<String>)> {
        let result = manifest::scan_dir_preferring(dir, m.owners());
        let mut out: Vec<_> = m
            .apply(&result)
            .into_iter()
            .map(|r| {
                let image = r.pod.pod.spec.as_ref().unwrap().containers[0]
                    .image
                    .clone()
                    .unwrap();
                (r.pod.name().to_string(), image, r.problem)
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_broken_file_keeps_its_last_good_pods_until_fixed_or_removed() {
        let d = tempfile::tempdir().unwrap();
        let mut m = SourceMemory::default();
        write(d.path(), "a.yaml", &pod_yaml("web", "busybox:1"));
        assert_eq!(
            scan(d.path(), &mut m),
            vec![("web".into(), "busybox:1".into(), None)]
        );

        write(
            d.path(),
            "a.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: [broken\n",
        );
        let got = scan(d.path(), &mut m);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "busybox:1", "runs on its last good spec");
        let problem = got[0].2.clone().expect("the problem is shown");
        assert!(problem.contains("a.yaml"), "{problem}");

        write(d.path(), "a.yaml", &pod_yaml("web", "busybox:2"));
        assert_eq!(
            scan(d.path(), &mut m),
            vec![("web".into(), "busybox:2".into(), None)]
        );

        write(
            d.path(),
            "a.yaml",
            "kind: Deployment\napiVersion: apps/v1\n",
        );
        assert_eq!(scan(d.path(), &mut m).len(), 1);
        fs::remove_file(d.path().join("a.yaml")).unwrap();
        assert!(
            scan(d.path(), &mut m).is_empty(),
            "removing the file removes its pods"
        );
    }

    #[test]
    fn a_file_broken_from_the_start_runs_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut m = SourceMemory::default();
        write(d.path(), "a.yaml", "{ not yaml");
        assert!(scan(d.path(), &mut m).is_empty());
    }

    #[test]
    fn the_first_file_seen_keeps_a_duplicate_pod_until_it_lets_go() {
        let d = tempfile::tempdir().unwrap();
        let mut m = SourceMemory::default();
        // z.yaml is seen first; a.yaml (earlier in name order) comes later.
        write(d.path(), "z.yaml", &pod_yaml("web", "from-z:1"));
        assert_eq!(scan(d.path(), &mut m)[0].1, "from-z:1");
        write(d.path(), "a.yaml", &pod_yaml("web", "from-a:1"));
        let result = manifest::scan_dir_preferring(d.path(), m.owners());
        let dup = result
            .errors
            .iter()
            .map(|e| e.to_string())
            .find(|e| e.contains("already defined"))
            .expect("the duplicate is refused");
        assert!(dup.contains("a.yaml") && dup.contains("z.yaml"), "{dup}");
        assert_eq!(
            scan(d.path(), &mut m)[0].1,
            "from-z:1",
            "the first seen wins"
        );
        // The owner goes: the other takes over.
        fs::remove_file(d.path().join("z.yaml")).unwrap();
        assert_eq!(scan(d.path(), &mut m)[0].1, "from-a:1");
    }
}
