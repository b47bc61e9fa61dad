//! The manifest directory as a source of desired pods: a full rescan every
//! `--file-check-frequency`, sent to the Supervisor as the whole desired set.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, WrapFuture,
};

use super::supervisor::SetDesired;
use super::DesiredPod;
use crate::manifest::{self, ManifestPod};
use crate::naming;

/// Scan the directory now.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct ScanNow;

pub struct ManifestSource {
    dir: PathBuf,
    node_name: String,
    every: Duration,
    sink: Recipient<SetDesired>,
    /// Errors already reported, so a broken file is logged once, not at
    /// every rescan.
    reported: BTreeSet<String>,
    scanning: bool,
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
            reported: BTreeSet::new(),
            scanning: false,
        }
    }
}

/// Settles a manifest pod's UID: its own `metadata.uid`, or one derived
/// from the node and its namespace/name.
pub fn desired_from(p: ManifestPod, source_kind: &str, node: &str) -> DesiredPod {
    let mut pod = p.pod;
    let uid = match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => naming::derived_pod_uid(
            source_kind,
            node,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default(),
        ),
    };
    pod.metadata.uid = Some(uid.clone());
    DesiredPod {
        uid,
        pod: Arc::new(pod),
        source: format!("{} (document {})", p.file.display(), p.doc_index),
    }
}

impl Actor for ManifestSource {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.notify(ScanNow);
        ctx.run_interval(self.every, |_, ctx| ctx.notify(ScanNow));
    }
}

impl Handler<ScanNow> for ManifestSource {
    type Result = ();

    fn handle(&mut self, _: ScanNow, ctx: &mut Context<Self>) {
        if self.scanning {
            return;
        }
        self.scanning = true;
        let dir = self.dir.clone();
        ctx.spawn(
            async move { tokio::task::spawn_blocking(move || manifest::scan_dir(&dir)).await }
                .into_actor(self)
                .map(|scan, act, _| {
                    act.scanning = false;
                    let scan = match scan {
                        Ok(scan) => scan,
                        Err(e) => {
                            tracing::error!(error = %e, "manifest scan panicked");
                            return;
                        }
                    };
                    let errors: BTreeSet<String> =
                        scan.errors.iter().map(|e| e.to_string()).collect();
                    for e in errors.difference(&act.reported) {
                        tracing::error!("bad manifest: {e}");
                    }
                    act.reported = errors;
                    if scan
                        .errors
                        .iter()
                        .any(|e| matches!(e, manifest::ManifestError::ReadDir { .. }))
                    {
                        // An unreadable directory is not an empty one: keep
                        // the pods we have.
                        return;
                    }
                    let pods = scan
                        .pods
                        .into_iter()
                        .map(|p| desired_from(p, "file", &act.node_name))
                        .collect();
                    act.sink.do_send(SetDesired(pods));
                }),
        );
    }
}
