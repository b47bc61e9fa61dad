//! The manifest directory as a source of desired pods.
//!
//! Changes are seen at once through inotify (the `notify` crate), debounced
//! so that a burst of writes is one rescan (after [`QUIET`] without events,
//! at most [`MAX_DELAY`] after the first), with a full rescan every
//! `--file-check-frequency` as the backstop. Every scan sends the
//! Supervisor the whole desired set. Files unchanged since their last parse
//! are not read again, and files over `--max-manifest-size` not at all.
//!
//! Two rules keep running pods safe from bad edits ([`SourceMemory`]):
//! - **Last good spec.** A file that no longer parses or validates, is
//!   empty, too large, unreadable or no longer a regular file keeps its pods
//!   on the last spec that did; the problem is logged once and shown in
//!   those pods' status message until the file is fixed or removed.
//!   Removing (or renaming away) the file removes its pods, and so does a
//!   file that parses and no longer declares them.
//! - **First seen wins.** A pod declared in two files belongs to the file
//!   that declared it first; the other is refused with an error naming
//!   both. When the owner stops declaring it, the other takes over. Within
//!   one file, the first document wins.
//!
//! Both survive restarts: the memory is written (atomically) to
//! `--root-dir/manifest-source.state` and read back at start, so a file
//! broken while podvisor was down keeps its pods.

mod memory;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture,
    SpawnHandle, WrapFuture,
};
use tokio::sync::Notify;

pub use memory::{kept_files, write_atomically, Located, Resolved, SourceMemory, STATE_FILE};

use super::supervisor::SetDesired;
use super::DesiredPod;
use crate::manifest::{self, FileReader, ManifestError, ManifestPod, ScanResult, Skip};
use crate::model::{naming, PodExt};
use crate::settings::ManifestValidation;

/// A burst of file events ends after this long without one.
pub const QUIET: Duration = Duration::from_millis(50);
/// A rescan comes at most this long after the first event of a burst.
pub const MAX_DELAY: Duration = Duration::from_millis(500);

/// Scan the directory now.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ScanNow;

/// Scan the directory now; answered once the Supervisor has taken in the
/// set of a scan that began after the ask (the API's writes: what was
/// written is what the next read shows).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Rescan;

/// Where the pod `namespace/name` is declared, if in the directory.
#[derive(Message, Debug, Clone)]
#[rtype(result = "Option<Located>")]
pub struct Locate {
    pub namespace: String,
    pub name: String,
}

/// Something changed in the directory (from the inotify watcher).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
struct FsChanged;

/// When a burst of events is over: [`QUIET`] after the last event, or
/// [`MAX_DELAY`] after the first, whichever comes first.
#[derive(Debug, Default, Clone, Copy)]
pub struct Debounce {
    /// First and last event of the burst.
    burst: Option<(Instant, Instant)>,
}

impl Debounce {
    /// An event at `now`.
    pub fn event(&mut self, now: Instant) {
        let first = self.burst.map_or(now, |(first, _)| first);
        self.burst = Some((first, now));
    }

    /// How long to wait before the rescan: `None` when it is due (or there
    /// was no event).
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        let (first, last) = self.burst?;
        let due = (last + QUIET).min(first + MAX_DELAY);
        due.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Whether events wait for a rescan.
    pub fn pending(&self) -> bool {
        self.burst.is_some()
    }

    /// The rescan is done (or started): a new burst begins with the next event.
    pub fn clear(&mut self) {
        self.burst = None;
    }
}

/// How the source is set up.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    /// The manifest directory.
    pub dir: PathBuf,
    pub node_name: String,
    /// The full rescan period.
    pub every: Duration,
    /// `--root-dir`: where the memory is kept ([`STATE_FILE`]).
    pub root_dir: PathBuf,
    /// `--max-manifest-size`.
    pub max_size: u64,
}

/// The state file's writes, one at a time, the newest last. Memories are
/// kept rather than their bytes: they share their pods with the source, and
/// an unchanged memory is neither serialized nor written again.
#[derive(Debug, Default)]
struct Saving {
    /// The memory last written (or read at start).
    saved: Option<SourceMemory>,
    busy: bool,
    /// The memory to write when the write under way is done.
    next: Option<SourceMemory>,
}

pub struct ManifestSource {
    config: SourceConfig,
    sink: Recipient<SetDesired>,
    memory: SourceMemory,
    /// The parses of unchanged files; out with the scan while it runs.
    reader: Option<FileReader>,
    /// Problems already logged, so that each is logged once, not at every
    /// rescan; logged again when it changes.
    reported: BTreeSet<String>,
    scanning: bool,
    /// A scan was asked for while one ran.
    again: bool,
    /// [`Rescan`]s waiting for the next scan to be taken in.
    waiters: Vec<Arc<Notify>>,
    debounce: Debounce,
    pending: Option<SpawnHandle>,
    saving: Saving,
    watcher: Option<notify::RecommendedWatcher>,
    /// Unknown or duplicate manifest fields: refused or warned about.
    validation: ManifestValidation,
    metrics: Arc<crate::metrics::Metrics>,
}

impl ManifestSource {
    pub fn new(config: SourceConfig, sink: Recipient<SetDesired>) -> Self {
        let reader = FileReader::new(config.max_size);
        Self {
            config,
            sink,
            memory: SourceMemory::default(),
            reader: Some(reader),
            reported: BTreeSet::new(),
            scanning: false,
            again: false,
            waiters: Vec::new(),
            debounce: Debounce::default(),
            pending: None,
            saving: Saving::default(),
            watcher: None,
            validation: ManifestValidation::Strict,
            metrics: Arc::new(crate::metrics::Metrics::new()),
        }
    }

    /// Counts manifest errors and broken files there.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets `--manifest-validation` (strict when not called).
    pub fn with_validation(mut self, validation: ManifestValidation) -> Self {
        self.validation = validation;
        self.reader = self.reader.take().map(|r| r.with_validation(validation));
        self
    }

    fn state_file(&self) -> PathBuf {
        self.config.root_dir.join(STATE_FILE)
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
        let dir = &self.config.dir;
        let watched = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Ok(w)
        });
        match watched {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::warn!(
                dir = %dir.display(),
                error = %e,
                "cannot watch the manifest directory; relying on the periodic rescan"
            ),
        }
    }

    /// Waits for the burst of events to end, then rescans.
    fn settle(&mut self, ctx: &mut Context<Self>) {
        self.pending = None;
        match self.debounce.wait(Instant::now()) {
            Some(wait) => self.pending = Some(ctx.run_later(wait, |act, ctx| act.settle(ctx))),
            None if self.debounce.pending() => ctx.notify(ScanNow),
            None => {}
        }
    }

    /// Logs each problem of a scan once (again when it changes).
    fn report(&mut self, scan: &ScanResult) {
        // Each error counted once, when first seen (as it is logged), by
        // its variant; the broken files as this scan sees them (an empty file
        // is broken only when its pods ran).
        for e in &scan.errors {
            if !self.reported.contains(&format!("bad manifest: {e}")) {
                self.metrics.manifest_error(e.kind());
            }
        }
        let broken: BTreeSet<&std::path::Path> = scan
            .errors
            .iter()
            .filter(|e| !matches!(e, ManifestError::ReadDir { .. }))
            .map(|e| e.file())
            .chain(
                scan.blank
                    .iter()
                    .filter(|p| self.memory.had_pods(p))
                    .map(|p| p.as_path()),
            )
            .collect();
        self.metrics.manifest_broken_files.set(broken.len() as i64);
        for (level, line) in fresh_problems(&mut self.reported, &self.memory, scan) {
            match level {
                tracing::Level::ERROR => tracing::error!("{line}"),
                tracing::Level::WARN => tracing::warn!("{line}"),
                _ => tracing::info!("{line}"),
            }
        }
    }

    /// Writes the memory to the state file when it changed, one write at a
    /// time, off the actor's thread.
    fn save(&mut self, ctx: &mut Context<Self>, memory: SourceMemory) {
        if self.saving.busy {
            self.saving.next = Some(memory);
            return;
        }
        if self.saving.saved.as_ref() == Some(&memory) {
            return;
        }
        self.saving.busy = true;
        let path = self.state_file();
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || {
                    let written = write_atomically(&path, &memory.to_bytes());
                    (memory, written)
                })
                .await
            }
            .into_actor(self)
            .map(|done, act, ctx| {
                act.saving.busy = false;
                match done {
                    Ok((memory, Ok(()))) => act.saving.saved = Some(memory),
                    Ok((_, Err(e))) => tracing::warn!(
                        file = %act.state_file().display(),
                        error = %e,
                        "cannot save the last good manifests"
                    ),
                    Err(e) => {
                        tracing::error!(error = %e, "saving the last good manifests panicked")
                    }
                }
                if let Some(next) = act.saving.next.take() {
                    act.save(ctx, next);
                }
            }),
        );
    }
}

/// The problems of a scan (errors, empty files, entries that are not
/// regular files), each with its log level; returns those not in
/// `reported` (logged by an earlier scan), and leaves in `reported` the
/// problems of this scan, so that a problem gone and back is new again.
/// `memory` is the memory before the scan: an empty file whose pods ran is
/// an error, one that never had pods only a note.
pub fn fresh_problems(
    reported: &mut BTreeSet<String>,
    memory: &SourceMemory,
    scan: &ScanResult,
) -> Vec<(tracing::Level, String)> {
    let mut all = Vec::new();
    for e in &scan.errors {
        all.push((tracing::Level::ERROR, format!("bad manifest: {e}")));
    }
    for path in &scan.blank {
        let file = path.display();
        all.push(if memory.had_pods(path) {
            (
                tracing::Level::ERROR,
                format!("bad manifest: {file}: the file is empty (or comments only); its pods keep running on their last good spec until it is fixed or removed"),
            )
        } else {
            (
                tracing::Level::INFO,
                format!("{file}: the file is empty (or comments only); nothing to run"),
            )
        });
    }
    for (file, skip) in &scan.skipped {
        let level = match skip {
            Skip::Dangling => tracing::Level::INFO,
            _ => tracing::Level::WARN,
        };
        all.push((level, format!("{}: {skip}", file.display())));
    }
    for (file, why) in &scan.ignored {
        all.push((tracing::Level::INFO, format!("{}: {why}", file.display())));
    }
    let now: BTreeSet<String> = all.iter().map(|(_, line)| line.clone()).collect();
    all.retain(|(_, line)| !reported.contains(line));
    all.dedup_by(|a, b| a.1 == b.1);
    *reported = now;
    all
}

/// Settles a manifest pod's UID: its own `metadata.uid`, or one derived
/// from the node and its namespace/name. The spec is shared as parsed (no
/// copy to write a derived UID into it): [`DesiredPod::uid`] is the UID,
/// and the API writes it into the pod it shows.
pub fn desired_from(p: ManifestPod, source_kind: &str, node: &str) -> DesiredPod {
    let pod = p.pod;
    let uid = match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => naming::derived_pod_uid(source_kind, node, pod.namespace(), pod.name()),
    };
    DesiredPod {
        uid,
        pod,
        source: format!("{} (document {})", p.file.display(), p.doc_index),
        problem: None,
    }
}

impl Actor for ManifestSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // The memory of the last run, so that a file broken meanwhile keeps
        // its pods (small; read before the first scan).
        self.memory = SourceMemory::load(&self.state_file());
        self.saving.saved = Some(self.memory.clone());
        self.watch(ctx);
        ctx.notify(ScanNow);
        ctx.run_interval(self.config.every, |_, ctx| ctx.notify(ScanNow));
    }
}

impl Handler<FsChanged> for ManifestSource {
    type Result = ();

    fn handle(&mut self, _: FsChanged, ctx: &mut Context<Self>) {
        self.debounce.event(Instant::now());
        if self.pending.is_none() {
            self.pending = Some(ctx.run_later(QUIET, |act, ctx| act.settle(ctx)));
        }
    }
}

impl Handler<ScanNow> for ManifestSource {
    type Result = ();

    fn handle(&mut self, _: ScanNow, ctx: &mut Context<Self>) {
        if let Some(h) = self.pending.take() {
            ctx.cancel_future(h);
        }
        self.debounce.clear();
        if self.scanning {
            self.again = true;
            return;
        }
        self.scanning = true;
        let waiters = std::mem::take(&mut self.waiters);
        let dir = self.config.dir.clone();
        let prefer = self.memory.owners().clone();
        let mut reader = self.reader.take().unwrap_or_else(|| {
            FileReader::new(self.config.max_size).with_validation(self.validation)
        });
        ctx.spawn(
            async move {
                tokio::task::spawn_blocking(move || {
                    let scan = manifest::scan_dir_with(&dir, &prefer, &mut reader);
                    (scan, reader)
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
                    Ok((scan, mut reader)) => {
                        let read = reader.take_reads();
                        if read > 0 {
                            tracing::debug!(read, "manifest files read");
                        }
                        act.reader = Some(reader);
                        scan
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "manifest scan panicked");
                        waiters.iter().for_each(|w| w.notify_one());
                        return;
                    }
                };
                act.report(&scan);
                if scan
                    .errors
                    .iter()
                    .any(|e| matches!(e, ManifestError::ReadDir { .. }))
                {
                    // An unreadable directory is not an empty one: keep
                    // the pods we have.
                    waiters.iter().for_each(|w| w.notify_one());
                    return;
                }
                let pods = act
                    .memory
                    .apply(&scan)
                    .into_iter()
                    .map(|r| {
                        let mut d = desired_from(r.pod, "file", &act.config.node_name);
                        d.problem = r.problem;
                        d
                    })
                    .collect();
                act.sink.do_send(SetDesired {
                    taken: waiters,
                    ..SetDesired::files(pods)
                });
                let memory = act.memory.clone();
                act.save(ctx, memory);
            }),
        );
    }
}

impl Handler<Rescan> for ManifestSource {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Rescan, ctx: &mut Context<Self>) -> Self::Result {
        let taken = Arc::new(Notify::new());
        self.waiters.push(taken.clone());
        <Self as Handler<ScanNow>>::handle(self, ScanNow, ctx);
        Box::pin(async move { taken.notified().await })
    }
}

impl Handler<Locate> for ManifestSource {
    type Result = Option<Located>;

    fn handle(&mut self, msg: Locate, _: &mut Context<Self>) -> Self::Result {
        self.memory.locate(&msg.namespace, &msg.name)
    }
}

#[cfg(test)]
mod tests;
