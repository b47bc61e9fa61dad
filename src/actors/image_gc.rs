//! The ImageGc actor: image garbage collection as the kubelet's image
//! manager does it, once at start and then every `--image-gc-period` (the
//! kubelet's fixed `ImageGCPeriod`, 5 minutes).
//!
//! Each collection:
//! 1. lists the engine's images and the image of every container of the
//!    engine (podvisor's or not, running or not);
//! 2. updates its records: an image seen for the first time gets its
//!    *first seen*; an image some container uses gets *last used* = now; an
//!    image of a container with podvisor's node label, or one the
//!    [`ImagePuller`](super::image_puller::ImagePuller) pulled
//!    ([`ImagePulled`]), is *ours*; records of images gone are dropped;
//! 3. reads the image file system's usage through a [`DiskUsage`];
//! 4. decides ([`crate::decide::image_gc::plan`]) and removes, one image
//!    at a time (each of its names, then its ID, never forcibly: an image a
//!    container started using meanwhile is refused by the engine), with a
//!    log line and a Normal `FreeDiskSpace` event on the node per image;
//!    an `ImageGCFailed` Warning when the usage cannot be read, an engine
//!    call fails, or what may go does not free enough;
//! 5. writes its records to `<root-dir>/image-gc.state` (atomically), so
//!    that a restart keeps the order of use.
//!
//! The work is async (engine calls; file I/O in `spawn_blocking`), one
//! collection at a time (an [`AtomicResponse`]).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, AtomicResponse, Context, Handler, Message, Recipient,
    WrapFuture,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::events::RecordNode;
use crate::decide::image_gc::{self, FsUsage, ImageGcPolicy, ImageRecord};
use crate::model::clock::Clock;
use crate::model::naming;
use crate::runtime::{ContainerRuntime, ImageSummary, RuntimeError};

/// The records' file under `--root-dir`.
pub const STATE_FILE: &str = "image-gc.state";
/// The format of that file: `{"version":1,"images":{ID:{"first_seen":…,
/// "last_used":…,"ours":…}}}`, times in seconds since the epoch.
const RECORDS_VERSION: u32 = 1;

/// Why the usage of the image file system could not be read.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("cannot ask the engine for its data root: {0}")]
    Engine(#[from] RuntimeError),
    #[error("cannot stat the image file system at {}: {source}", .path.display())]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the usage file {}: {reason}", .path.display())]
    File { path: PathBuf, reason: String },
}

/// Reads how full the image file system is.
#[async_trait]
pub trait DiskUsage: Send + Sync + 'static {
    async fn image_fs(&self) -> Result<FsUsage, UsageError>;
}

/// The real one: the file system holding the engine's data root
/// (`DockerRootDir`), by `statvfs`, as the kubelet reads its image file
/// system (used = capacity - available to unprivileged users).
pub struct EngineDiskUsage(pub Arc<dyn ContainerRuntime>);

#[async_trait]
impl DiskUsage for EngineDiskUsage {
    async fn image_fs(&self) -> Result<FsUsage, UsageError> {
        let root = PathBuf::from(self.0.data_root().await?);
        let path = root.clone();
        tokio::task::spawn_blocking(move || statvfs(&path))
            .await
            .map_err(|e| UsageError::Stat {
                path: root.clone(),
                source: std::io::Error::other(e),
            })?
            .map_err(|source| UsageError::Stat { path: root, source })
    }
}

fn statvfs(path: &Path) -> std::io::Result<FsUsage> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; `st` is written by the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frsize = st.f_frsize as u64;
    let capacity = (st.f_blocks as u64).saturating_mul(frsize);
    let available = (st.f_bavail as u64).saturating_mul(frsize);
    Ok(FsUsage {
        used: capacity.saturating_sub(available),
        capacity,
    })
}

/// For tests (`--image-gc-usage-file`): the usage as written in a file,
/// `USED_BYTES CAPACITY_BYTES`.
pub struct FileDiskUsage(pub PathBuf);

#[async_trait]
impl DiskUsage for FileDiskUsage {
    async fn image_fs(&self) -> Result<FsUsage, UsageError> {
        let fail = |reason: String| UsageError::File {
            path: self.0.clone(),
            reason,
        };
        let text = tokio::fs::read_to_string(&self.0)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let numbers: Vec<u64> = text
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("{e}: expected USED_BYTES CAPACITY_BYTES")))?;
        match numbers[..] {
            [used, capacity] => Ok(FsUsage { used, capacity }),
            _ => Err(fail("expected USED_BYTES CAPACITY_BYTES".into())),
        }
    }
}

/// What the collector remembers of one image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracked {
    pub first_seen: i64,
    pub last_used: Option<i64>,
    pub ours: bool,
}

/// Image ID → its record; what `image-gc.state` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    #[serde(default)]
    version: u32,
    pub images: BTreeMap<String, Tracked>,
}

impl Records {
    /// Marks images ours (pulled), first seen now when new.
    fn mark_ours(&mut self, ids: &[String], now: i64) {
        for id in ids {
            let t = self.images.entry(id.clone()).or_insert(Tracked {
                first_seen: now,
                ..Tracked::default()
            });
            t.ours = true;
        }
    }

    /// Takes in what the engine shows now; returns the images in use.
    fn observe(
        &mut self,
        images: &[ImageSummary],
        uses: &[crate::runtime::ImageUse],
        node: &str,
        now: i64,
    ) -> HashSet<String> {
        let present: HashSet<&str> = images.iter().map(|i| i.id.as_str()).collect();
        self.images.retain(|id, _| present.contains(id.as_str()));
        for i in images {
            self.images.entry(i.id.clone()).or_insert(Tracked {
                first_seen: now,
                ..Tracked::default()
            });
        }
        let mut in_use = HashSet::new();
        for u in uses {
            let Some(t) = self.images.get_mut(&u.image_id) else {
                continue;
            };
            t.last_used = Some(now);
            if u.labels.get(naming::LABEL_NODE).map(String::as_str) == Some(node) {
                t.ours = true;
            }
            in_use.insert(u.image_id.clone());
        }
        in_use
    }
}

/// Reads the records; none (or unreadable ones, with a warning) is empty.
fn load(path: &Path) -> Records {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(file = %path.display(), error = %e, "image GC records unreadable; starting afresh");
            Records::default()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Records::default(),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "image GC records unreadable; starting afresh");
            Records::default()
        }
    }
}

/// How the collector is set up (from the settings).
#[derive(Debug, Clone)]
pub struct ImageGcConfig {
    pub policy: ImageGcPolicy,
    pub period: Duration,
    /// `--pod-infra-container-image`: never removed.
    pub infra_image: String,
    /// The node label value that marks podvisor's containers.
    pub node_name: String,
    /// `<root-dir>/image-gc.state`.
    pub state_file: PathBuf,
}

/// Collect now (the timer sends it; tests too).
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "Result<GcReport, ImageGcError>")]
pub struct CollectNow;

/// The ImagePuller pulled this image (`sha256:…`): it is podvisor's.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct ImagePulled(pub String);

/// What one collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub usage: FsUsage,
    /// The image IDs removed, in order.
    pub removed: Vec<String>,
    pub to_free: u64,
    pub freed: u64,
}

/// Why a collection failed (an `ImageGCFailed` event says it too).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImageGcError {
    #[error("cannot list images: {0}")]
    List(RuntimeError),
    #[error("cannot read the image file system's usage: {0}")]
    Usage(String),
    #[error("cannot remove image {image}: {error}")]
    Remove { image: String, error: RuntimeError },
    #[error("failed to garbage collect required amount of images: wanted to free {wanted} bytes, but freed {freed} bytes")]
    Short { wanted: u64, freed: u64 },
}

pub struct ImageGc {
    config: Arc<ImageGcConfig>,
    runtime: Arc<dyn ContainerRuntime>,
    usage: Arc<dyn DiskUsage>,
    clock: Arc<dyn Clock>,
    events: Option<Recipient<RecordNode>>,
    /// `None` until the first collection read the file.
    records: Option<Records>,
    /// Pulls told since the last collection took the records.
    pulled: Vec<String>,
}

impl ImageGc {
    pub fn new(
        config: ImageGcConfig,
        runtime: Arc<dyn ContainerRuntime>,
        usage: Arc<dyn DiskUsage>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            config: Arc::new(config),
            runtime,
            usage,
            clock,
            events: None,
            records: None,
            pulled: Vec::new(),
        }
    }

    /// Records its events on the node there.
    pub fn with_events(mut self, events: Recipient<RecordNode>) -> Self {
        self.events = Some(events);
        self
    }
}

impl Actor for ImageGc {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Once at start (as the kubelet's loop), then every period.
        ctx.notify(CollectNow);
        ctx.run_interval(self.config.period, |_, ctx| {
            ctx.notify(CollectNow);
        });
    }
}

impl Handler<ImagePulled> for ImageGc {
    type Result = ();

    fn handle(&mut self, msg: ImagePulled, _: &mut Context<Self>) {
        self.pulled.push(msg.0);
    }
}

/// Removes one image: each of its names, then its ID (an untagged image,
/// or one whose last name left it dangling).
async fn remove(runtime: &dyn ContainerRuntime, image: &ImageSummary) -> Result<(), RuntimeError> {
    for tag in &image.repo_tags {
        runtime.remove_image(tag).await?;
    }
    runtime.remove_image(&image.id).await
}

/// `busybox` names `busybox:latest`, as the engine's tags spell it.
fn with_tag(image: &str) -> String {
    let (repo, tag) = crate::runtime::split_image_ref(image);
    if image.contains('@') {
        image.to_string()
    } else {
        format!("{repo}:{tag}")
    }
}

struct Run {
    records: Records,
    result: Result<GcReport, ImageGcError>,
    notes: Vec<RecordNode>,
}

async fn collect(
    config: Arc<ImageGcConfig>,
    runtime: Arc<dyn ContainerRuntime>,
    usage: Arc<dyn DiskUsage>,
    records: Option<Records>,
    pulled: Vec<String>,
    now: i64,
) -> Run {
    let mut records = match records {
        Some(r) => r,
        None => {
            let path = config.state_file.clone();
            tokio::task::spawn_blocking(move || load(&path))
                .await
                .unwrap_or_default()
        }
    };
    records.mark_ours(&pulled, now);
    let mut notes = Vec::new();
    let failed = |notes: &mut Vec<RecordNode>, e: &ImageGcError| {
        notes.push(RecordNode {
            warning: true,
            reason: "ImageGCFailed".into(),
            message: e.to_string(),
        });
    };
    let listed = async {
        Ok::<_, RuntimeError>((runtime.list_images().await?, runtime.image_uses().await?))
    };
    let (images, uses) = match listed.await {
        Ok(l) => l,
        Err(e) => {
            let e = ImageGcError::List(e);
            failed(&mut notes, &e);
            return Run {
                records,
                result: Err(e),
                notes,
            };
        }
    };
    let in_use = records.observe(&images, &uses, &config.node_name, now);
    // Off (a high threshold of 100): the records are kept, the disk is
    // not looked at.
    let off = config.policy.high_percent >= 100;
    let read = async {
        match off {
            true => Ok(FsUsage::default()),
            false => usage.image_fs().await,
        }
    };
    let fs = match read.await {
        Ok(u) => u,
        Err(e) => {
            let e = ImageGcError::Usage(e.to_string());
            failed(&mut notes, &e);
            return Run {
                records,
                result: Err(e),
                notes,
            };
        }
    };
    let infra = with_tag(&config.infra_image);
    let pinned: HashSet<String> = images
        .iter()
        .filter(|i| i.id == config.infra_image || i.repo_tags.contains(&infra))
        .map(|i| i.id.clone())
        .collect();
    let candidates: Vec<ImageRecord> = images
        .iter()
        .filter_map(|i| {
            let t = records.images.get(&i.id)?;
            Some(ImageRecord {
                id: i.id.clone(),
                size: i.size,
                first_seen: t.first_seen,
                last_used: t.last_used,
                ours: t.ours,
            })
        })
        .collect();
    let plan = image_gc::plan(&candidates, fs, &config.policy, now, &in_use, &pinned);
    if plan.to_free > 0 {
        tracing::info!(
            usage_percent = fs.percent(),
            high = config.policy.high_percent,
            low = config.policy.low_percent,
            to_free = plan.to_free,
            candidates = plan.remove.len(),
            "image file system over the high threshold: removing unused images"
        );
    }
    let mut report = GcReport {
        usage: fs,
        to_free: plan.to_free,
        ..GcReport::default()
    };
    let mut error = None;
    for id in &plan.remove {
        let Some(image) = images.iter().find(|i| &i.id == id) else {
            continue;
        };
        let name = image
            .repo_tags
            .first()
            .cloned()
            .unwrap_or_else(|| id.clone());
        match remove(&*runtime, image).await {
            Ok(()) => {
                tracing::info!(image = %name, id = %id, bytes = image.size, "removed unused image");
                notes.push(RecordNode {
                    warning: false,
                    reason: "FreeDiskSpace".into(),
                    message: format!(
                        "Removed unused image {name} ({id}, {} bytes) to free disk space",
                        image.size
                    ),
                });
                records.images.remove(id);
                report.removed.push(id.clone());
                report.freed = report.freed.saturating_add(image.size);
            }
            Err(e) => {
                let e = ImageGcError::Remove {
                    image: name,
                    error: e,
                };
                failed(&mut notes, &e);
                error.get_or_insert(e);
            }
        }
    }
    if error.is_none() && report.freed < report.to_free {
        let e = ImageGcError::Short {
            wanted: report.to_free,
            freed: report.freed,
        };
        failed(&mut notes, &e);
        error = Some(e);
    }
    records.version = RECORDS_VERSION;
    let path = config.state_file.clone();
    let bytes = serde_json::to_vec(&records).unwrap_or_default();
    let written =
        tokio::task::spawn_blocking(move || super::source::write_atomically(&path, &bytes)).await;
    if let Ok(Err(e)) | Err(e) = written.map_err(std::io::Error::other) {
        tracing::warn!(file = %config.state_file.display(), error = %e, "cannot write the image GC records");
    }
    Run {
        records,
        result: match error {
            Some(e) => Err(e),
            None => Ok(report),
        },
        notes,
    }
}

impl Handler<CollectNow> for ImageGc {
    /// One collection at a time: the actor takes no other message until
    /// it is done (a pull told meanwhile waits in the mailbox).
    type Result = AtomicResponse<Self, Result<GcReport, ImageGcError>>;

    fn handle(&mut self, _: CollectNow, _: &mut Context<Self>) -> Self::Result {
        let run = collect(
            self.config.clone(),
            self.runtime.clone(),
            self.usage.clone(),
            self.records.take(),
            std::mem::take(&mut self.pulled),
            self.clock.now().timestamp(),
        );
        AtomicResponse::new(Box::pin(run.into_actor(self).map(|run, act, _| {
            act.records = Some(run.records);
            if let Some(events) = &act.events {
                for note in run.notes {
                    events.do_send(note);
                }
            }
            run.result
        })))
    }
}
