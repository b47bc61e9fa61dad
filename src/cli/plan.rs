//! `podvisor plan`: what the next sync of each pod would do on this node,
//! without doing it.
//!
//! The desired pods are read as the daemon reads them (the manifest
//! directory, with the source's last good specs of broken files from
//! `--root-dir`), the node's containers are listed and inspected as a
//! worker observes them, and the daemon's own planner answers for each
//! pod ([`plan::plan`]), or [`plan::plan_removal`] for the containers of
//! pods no longer desired. Back-off delays live in the running daemon: its
//! read-only API is asked for them; without it they are estimated from the
//! restart counts.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::actors::pod_worker::observed_of;
use crate::actors::source::{desired_from, SourceMemory, STATE_FILE};
use crate::decide::backoff::Backoff;
use crate::decide::plan::{self, Desired, GcPolicy, KillReason, Observed, PodActions, StartReason};
use crate::manifest::{self, FileReader, ManifestError};
use crate::model::naming::{self, ContainerKind};
use crate::model::pod::pull_policy;
use crate::model::{PodExt, PullPolicy};
use crate::runtime::bounded::Bounded;
use crate::runtime::docker::DockerRuntime;
use crate::runtime::{ContainerRuntime, RuntimeError};
use crate::settings::Settings;

/// Exit code when the next sync would change nothing.
pub const EXIT_NOTHING: u8 = 0;
/// Exit code when the plan could not be made (settings, directory, engine).
pub const EXIT_ERROR: u8 = 1;
/// Exit code when the next sync would change something.
pub const EXIT_CHANGES: u8 = 2;

/// How long the running daemon's read-only API may take to answer.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(2);

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The manifest directory cannot be listed.
    #[error("{0}")]
    Manifests(ManifestError),
    /// The engine did not answer a list or inspect.
    #[error("cannot observe the containers of node {node}: {source}")]
    Engine {
        node: String,
        #[source]
        source: RuntimeError,
    },
}

/// One pod's part of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPlan {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Where the pod is declared; `None` for a pod no longer desired.
    pub source: Option<String>,
    /// What the sync would do, one step a line, in its order.
    pub steps: Vec<String>,
    /// Facts that are no step (a broken file, what the daemon reports).
    pub notes: Vec<String>,
    /// Whether the sync would change something (now or at a back-off's end).
    pub changes: bool,
}

/// Everything `podvisor plan` found.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub pods: Vec<PodPlan>,
    /// Manifest problems and where back-off times come from.
    pub notes: Vec<String>,
}

impl Plan {
    /// [`EXIT_CHANGES`] when a pod would change, else [`EXIT_NOTHING`].
    pub fn exit_code(&self) -> u8 {
        if self.pods.iter().any(|p| p.changes) {
            EXIT_CHANGES
        } else {
            EXIT_NOTHING
        }
    }

    /// The plan as printed: one block per pod, the notes first.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        for p in &self.pods {
            let from = match &p.source {
                Some(s) => s.clone(),
                None => "no longer in the manifests".into(),
            };
            let _ = writeln!(
                out,
                "pod {}/{} (uid {}, {from}):",
                p.namespace, p.name, p.uid
            );
            for n in &p.notes {
                let _ = writeln!(out, "  note: {n}");
            }
            if p.steps.is_empty() {
                let _ = writeln!(out, "  nothing to do");
            }
            for s in &p.steps {
                let _ = writeln!(out, "  {s}");
            }
        }
        if self.pods.is_empty() {
            let _ = writeln!(out, "no pods and no containers on this node: nothing to do");
        }
        out
    }
}

/// What the running daemon reports of one container backing off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonBackoff {
    pub container: String,
    /// The current delay, from the message (`back-off 20s restarting …`).
    pub delay: Option<Duration>,
    pub message: String,
}

/// The daemon's back-off reports per pod UID, from its `/pods`.
pub type DaemonView = HashMap<String, Vec<DaemonBackoff>>;

/// Reads the containers in `CrashLoopBackOff` from a `/pods` answer (a
/// `PodList` as JSON).
pub fn daemon_backoffs(pods: &serde_json::Value) -> DaemonView {
    let mut view = DaemonView::new();
    for pod in pods["items"].as_array().into_iter().flatten() {
        let Some(uid) = pod["metadata"]["uid"].as_str() else {
            continue;
        };
        let statuses = ["initContainerStatuses", "containerStatuses"]
            .iter()
            .flat_map(|k| pod["status"][k].as_array().into_iter().flatten());
        for s in statuses {
            let waiting = &s["state"]["waiting"];
            if waiting["reason"].as_str() != Some("CrashLoopBackOff") {
                continue;
            }
            let message = waiting["message"].as_str().unwrap_or_default().to_string();
            view.entry(uid.to_string())
                .or_default()
                .push(DaemonBackoff {
                    container: s["name"].as_str().unwrap_or_default().to_string(),
                    delay: backoff_delay(&message),
                    message,
                });
        }
    }
    view
}

/// `20s` out of `back-off 20s restarting failed container=…`.
fn backoff_delay(message: &str) -> Option<Duration> {
    let rest = message.strip_prefix("back-off ")?;
    let secs = rest.split('s').next()?.parse().ok()?;
    Some(Duration::from_secs(secs))
}

/// The back-off the daemon would hold for a pod's containers when it
/// cannot be asked: one doubling per restart the newest record counts.
pub fn estimated_backoff(observed: &[Observed]) -> Backoff {
    let mut backoff = Backoff::default();
    let newest = plan::newest_by_name(observed, ContainerKind::Container);
    for (name, records) in newest {
        for _ in 0..records[0].labels.restart_count {
            backoff.record_restart(name);
        }
    }
    backoff
}

/// Whether each image the steps need is present locally.
pub type Images = HashMap<String, bool>;

/// What one pod's plan needs besides the actions.
pub struct Context<'a> {
    pub pod: Option<&'a Pod>,
    pub observed: &'a [Observed],
    pub infra_image: &'a str,
    pub images: &'a Images,
    pub now: DateTime<Utc>,
    /// Where back-off times come from, said with each one.
    pub backoff_from: &'a str,
}

/// The steps of `actions`, one a line, in the order the sync takes them.
pub fn describe(actions: &PodActions, cx: &Context<'_>) -> Vec<String> {
    let mut steps = Vec::new();
    let record = |id: &str| cx.observed.iter().find(|o| o.id == id);
    let what = |kind: ContainerKind, name: &str| match kind {
        ContainerKind::Sandbox => "sandbox".to_string(),
        ContainerKind::Container => format!("container {name}"),
    };
    for k in &actions.kill {
        steps.push(format!(
            "kill {} ({}): {}",
            what(k.kind, &k.container_name),
            short(&k.id),
            kill_reason(k.reason)
        ));
    }
    for id in &actions.remove {
        let line = match record(id) {
            Some(o) => format!(
                "remove {} {} (attempt {}, {})",
                if actions.kill.iter().any(|k| k.id == o.id) {
                    "the killed"
                } else {
                    "dead"
                },
                what(o.labels.kind, &o.labels.container_name),
                o.attempt,
                short(id)
            ),
            None => format!("remove dead container {}", short(id)),
        };
        steps.push(line);
    }
    if let Some(s) = &actions.create_sandbox {
        if let Some(pull) = pull_step(cx.infra_image, PullPolicy::IfNotPresent, cx.images) {
            steps.push(pull);
        }
        steps.push(format!(
            "create sandbox (attempt {}, image {})",
            s.attempt, cx.infra_image
        ));
    }
    for id in &actions.start_existing {
        let name = record(id).map_or(String::new(), |o| o.labels.container_name.clone());
        steps.push(format!("start created container {name} ({})", short(id)));
    }
    for s in &actions.start {
        let spec = cx.pod.and_then(|p| container_of(p, &s.name, s.init));
        if let Some(c) = spec {
            let image = c.image.clone().unwrap_or_default();
            let policy = pull_policy(c);
            if policy == PullPolicy::Never && cx.images.get(&image) == Some(&false) {
                steps.push(format!(
                    "cannot start container {}: image {image} is not present and \
                     imagePullPolicy is Never (ErrImageNeverPull)",
                    s.name
                ));
                continue;
            }
            if let Some(pull) = pull_step(&image, policy, cx.images) {
                steps.push(pull);
            }
        }
        let kind = if s.init {
            "init container"
        } else {
            "container"
        };
        steps.push(format!(
            "create and start {kind} {} (attempt {}): {}",
            s.name,
            s.attempt,
            start_reason(s, cx.observed)
        ));
    }
    for b in &actions.backing_off {
        let at = cx.now + chrono::Duration::from_std(b.remaining).unwrap_or_default();
        steps.push(format!(
            "restart container {} at {} (back-off {}s, {})",
            b.name,
            at.to_rfc3339_opts(SecondsFormat::Secs, true),
            b.delay.as_secs(),
            cx.backoff_from
        ));
    }
    steps
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn kill_reason(r: KillReason) -> &'static str {
    match r {
        KillReason::SpecChanged => "its spec changed",
        KillReason::PodRecreated => "the pod's sandbox is recreated",
        KillReason::Unwanted => "not in the pod spec, or an older duplicate",
        KillReason::Unhealthy => "its liveness probe failed",
        KillReason::PodRemoved => "its pod is no longer desired",
        KillReason::DeadlineExceeded => "its pod's activeDeadlineSeconds passed",
        KillReason::PodFinished => "a sidecar of a pod whose app containers have ended",
    }
}

fn start_reason(s: &plan::Start, observed: &[Observed]) -> String {
    match s.reason {
        StartReason::FirstStart => "first start".into(),
        StartReason::SpecChanged => "its spec changed".into(),
        StartReason::Restart => {
            let last = observed
                .iter()
                .filter(|o| {
                    o.labels.kind == ContainerKind::Container && o.labels.container_name == s.name
                })
                .max_by_key(|o| (o.attempt, o.created));
            match last.and_then(|o| o.exit_code) {
                Some(code) => format!("restart, it exited with code {code}"),
                None => "restart".into(),
            }
        }
    }
}

/// The pull a start needs, if any.
fn pull_step(image: &str, policy: PullPolicy, images: &Images) -> Option<String> {
    match (policy, images.get(image)) {
        (PullPolicy::Always, _) => Some(format!("pull image {image} (imagePullPolicy Always)")),
        (PullPolicy::IfNotPresent, Some(false)) => {
            Some(format!("pull image {image} (not present locally)"))
        }
        _ => None,
    }
}

fn container_of<'a>(pod: &'a Pod, name: &str, init: bool) -> Option<&'a Container> {
    let spec = pod.spec.as_ref()?;
    match init {
        true => spec
            .init_containers
            .as_ref()?
            .iter()
            .find(|c| c.name == name),
        false => spec.containers.iter().find(|c| c.name == name),
    }
}

/// The images a plan's steps may pull.
fn images_needed(actions: &PodActions, pod: Option<&Pod>, infra_image: &str) -> Vec<String> {
    let mut images = Vec::new();
    if actions.create_sandbox.is_some() {
        images.push(infra_image.to_string());
    }
    for s in &actions.start {
        if let Some(image) = pod
            .and_then(|p| container_of(p, &s.name, s.init))
            .and_then(|c| c.image.clone())
        {
            images.push(image);
        }
    }
    images
}

/// Where the read-only API of the daemon of these settings answers.
fn daemon_url(settings: &Settings) -> Option<String> {
    if settings.read_only_port == 0 {
        return None;
    }
    let host = match settings.address {
        a if a.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        a => a,
    };
    let host = match host {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    Some(format!("http://{host}:{}/pods", settings.read_only_port))
}

/// The daemon's back-off reports, when it answers.
async fn ask_daemon(url: &str) -> Option<DaemonView> {
    let client = reqwest::Client::builder()
        .timeout(DAEMON_TIMEOUT)
        .build()
        .ok()?;
    let resp = client.get(url).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    let body: serde_json::Value = serde_json::from_slice(&body).ok()?;
    Some(daemon_backoffs(&body))
}

/// Makes the plan of the node these settings describe.
pub async fn make(settings: &Settings) -> Result<Plan, PlanError> {
    let mut out = Plan::default();
    let node = &settings.node_name;

    // The desired pods, as the manifest source resolves them.
    let mut memory = SourceMemory::load(&settings.root_dir.join(STATE_FILE));
    let dir = settings.pod_manifest_path.clone();
    let mut reader =
        FileReader::new(settings.max_manifest_size).with_validation(settings.manifest_validation);
    let scan = manifest::scan_dir_with(&dir, memory.owners(), &mut reader);
    if let Some(i) = scan
        .errors
        .iter()
        .position(|e| matches!(e, ManifestError::ReadDir { .. }))
    {
        let mut errors = scan.errors;
        return Err(PlanError::Manifests(errors.swap_remove(i)));
    }
    for e in &scan.errors {
        out.notes.push(format!("manifest problem: {e}"));
    }
    let desired: Vec<_> = memory
        .apply(&scan)
        .into_iter()
        .map(|r| {
            let problem = r.problem.clone();
            (desired_from(r.pod, "file", node), problem)
        })
        .collect();

    // The node's containers, grouped by pod.
    let docker = Arc::new(DockerRuntime::new(settings.docker_endpoint.clone()));
    let runtime = Bounded::new(docker, crate::daemon::BUDGETS);
    let engine = |source| PlanError::Engine {
        node: node.clone(),
        source,
    };
    let filter = [(naming::LABEL_NODE.to_string(), node.clone())];
    let summaries = runtime.list_containers(&filter).await.map_err(engine)?;
    let mut by_uid: BTreeMap<String, Vec<Observed>> = BTreeMap::new();
    for s in summaries {
        let Some(d) = runtime.inspect_container(&s.id).await.map_err(engine)? else {
            continue; // removed meanwhile
        };
        if let Some(o) = observed_of(&d) {
            by_uid.entry(o.labels.uid.clone()).or_default().push(o);
        }
    }

    // Back-off: the daemon's when it answers, else estimated.
    let daemon = match daemon_url(settings) {
        Some(url) => ask_daemon(&url).await.map(|v| (url, v)),
        None => None,
    };
    let backoff_from = match &daemon {
        Some(_) => "as the running daemon reports",
        None => "estimated from the restart count",
    };
    match &daemon {
        Some((url, _)) => out.notes.push(format!(
            "back-off times are the running daemon's ({url})"
        )),
        None => out.notes.push(format!(
            "no daemon answered on --read-only-port {}: back-off times are estimates from restart counts",
            settings.read_only_port
        )),
    }

    let gc = GcPolicy {
        min_age: settings.minimum_container_ttl_duration,
        max_per_container: usize::try_from(settings.maximum_dead_containers_per_container).ok(),
    };
    let now = Utc::now();
    let infra_image = settings.pod_infra_container_image.as_str();
    let mut images = Images::new();
    let mut planned = Vec::new();
    for (d, problem) in &desired {
        let observed = by_uid.remove(&d.uid).unwrap_or_default();
        let mut backoff = estimated_backoff(&observed);
        let mut notes = Vec::new();
        if let Some(p) = problem {
            notes.push(format!("runs its last good spec: {p}"));
        }
        if let Some((_, view)) = &daemon {
            for b in view.get(&d.uid).into_iter().flatten() {
                if let Some(delay) = b.delay {
                    backoff.set_delay(&b.container, delay);
                }
                notes.push(format!(
                    "the daemon reports container {} in CrashLoopBackOff: {}",
                    b.container, b.message
                ));
            }
        }
        let actions = plan::plan(
            &Desired {
                pod: &d.pod,
                infra_image,
                backoff: &backoff,
                now,
                kill_requests: &[],
                // Startup probes are not run here: a running sidecar counts
                // as started.
                unstarted: &[],
                gc,
            },
            &observed,
        );
        let header = PodPlan {
            namespace: d.pod.namespace().to_string(),
            name: d.pod.name().to_string(),
            uid: d.uid.clone(),
            source: Some(d.source.clone()),
            steps: Vec::new(),
            notes,
            changes: false,
        };
        planned.push((header, Some(d.pod.clone()), observed, actions));
    }
    for (uid, observed) in by_uid {
        let labels = &observed[0].labels;
        let (namespace, name) = (labels.namespace.clone(), labels.pod_name.clone());
        let mut notes = Vec::new();
        if settings.manifest_url.is_some()
            && uid == naming::derived_pod_uid("http", node, &namespace, &name)
        {
            notes.push(
                "a pod of --manifest-url, which plan does not fetch: left as it is".to_string(),
            );
            let header = PodPlan {
                namespace,
                name,
                uid,
                source: Some("--manifest-url".into()),
                steps: Vec::new(),
                notes,
                changes: false,
            };
            out.pods.push(header);
            continue;
        }
        let actions = plan::plan_removal(&observed);
        let header = PodPlan {
            namespace,
            name,
            uid,
            source: None,
            steps: Vec::new(),
            notes,
            changes: false,
        };
        planned.push((header, None, observed, actions));
    }

    // Which images the steps would pull are present.
    for (_, pod, _, actions) in &planned {
        for image in images_needed(actions, pod.as_deref(), infra_image) {
            if images.contains_key(&image) {
                continue;
            }
            let present = runtime
                .inspect_image(&image)
                .await
                .map_err(engine)?
                .is_some();
            images.insert(image, present);
        }
    }
    for (mut header, pod, observed, actions) in planned {
        let cx = Context {
            pod: pod.as_deref(),
            observed: &observed,
            infra_image,
            images: &images,
            now,
            backoff_from,
        };
        header.steps = describe(&actions, &cx);
        header.changes = !actions.is_empty() || !actions.backing_off.is_empty();
        out.pods.push(header);
    }
    out.pods
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(out)
}

/// Runs `podvisor plan`: prints the plan and returns the exit code.
pub fn run(settings: &Settings) -> u8 {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("podvisor plan: cannot start the async runtime: {e}");
            return EXIT_ERROR;
        }
    };
    match rt.block_on(make(settings)) {
        Ok(plan) => {
            print!("{}", plan.render());
            plan.exit_code()
        }
        Err(e) => {
            eprintln!("podvisor plan: {e}");
            EXIT_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::plan::world::{at, World};
    use crate::runtime::ContainerState;

    fn context<'a>(w: &'a World, images: &'a Images) -> Context<'a> {
        Context {
            pod: Some(&w.pod),
            observed: &w.observed,
            infra_image: "pause:1",
            images,
            now: w.now,
            backoff_from: "estimated",
        }
    }

    #[test]
    fn an_empty_pod_pulls_what_is_missing_then_creates_everything() {
        let w = World::new("Always", &["a"]);
        let images = Images::from([("pause:1".into(), false), ("busybox:1".into(), true)]);
        let steps = describe(&w.plan(), &context(&w, &images));
        assert_eq!(
            steps,
            [
                "pull image pause:1 (not present locally)",
                "create sandbox (attempt 0, image pause:1)",
                "create and start container a (attempt 0): first start",
            ]
        );
    }

    #[test]
    fn a_dead_container_restarts_or_waits_out_its_estimated_backoff() {
        let mut w = World::new("Always", &["a"]);
        w.sandbox(ContainerState::Running);
        w.app("a", ContainerState::Exited, Some(3));
        let images = Images::from([("busybox:1".into(), true)]);
        let steps = describe(&w.plan(), &context(&w, &images));
        assert_eq!(
            steps,
            ["create and start container a (attempt 1): restart, it exited with code 3"]
        );

        // Restarted twice already: 20 s after it finished.
        w.observed[1].labels.restart_count = 2;
        w.now = at(2);
        w.backoff = estimated_backoff(&w.observed);
        let actions = w.plan();
        let steps = describe(&actions, &context(&w, &images));
        let finished = at(3); // started at clock 2, finished one second later
        let due =
            (finished + chrono::Duration::seconds(20)).to_rfc3339_opts(SecondsFormat::Secs, true);
        assert_eq!(
            steps,
            [format!(
                "restart container a at {due} (back-off 20s, estimated)"
            )]
        );
    }

    #[test]
    fn removal_kills_then_removes() {
        let mut w = World::new("Always", &["a"]);
        let sandbox = w.sandbox(ContainerState::Running);
        let a = w.app("a", ContainerState::Running, None);
        let images = Images::new();
        let cx = Context {
            pod: None,
            ..context(&w, &images)
        };
        let steps = describe(&plan::plan_removal(&w.observed), &cx);
        assert_eq!(
            steps,
            [
                format!("kill sandbox ({sandbox}): its pod is no longer desired"),
                format!("kill container a ({a}): its pod is no longer desired"),
                format!("remove the killed sandbox (attempt 0, {sandbox})"),
                format!("remove the killed container a (attempt 0, {a})"),
            ]
        );
    }

    #[test]
    fn exit_code_says_whether_anything_changes() {
        let pod = |changes| PodPlan {
            namespace: "default".into(),
            name: "p".into(),
            uid: "u".into(),
            source: None,
            steps: Vec::new(),
            notes: Vec::new(),
            changes,
        };
        let mut plan = Plan::default();
        assert_eq!(plan.exit_code(), EXIT_NOTHING);
        plan.pods.push(pod(false));
        assert_eq!(plan.exit_code(), EXIT_NOTHING);
        assert!(plan.render().contains("  nothing to do\n"));
        plan.pods.push(pod(true));
        assert_eq!(plan.exit_code(), EXIT_CHANGES);
    }

    #[test]
    fn daemon_backoffs_come_from_waiting_states() {
        let pods = serde_json::json!({"items": [{
            "metadata": {"uid": "u1"},
            "status": {"containerStatuses": [
                {"name": "a", "state": {"waiting": {"reason": "CrashLoopBackOff",
                    "message": "back-off 40s restarting failed container=a pod=p_default(u1)"}}},
                {"name": "b", "state": {"running": {}}}
            ]}
        }]});
        let view = daemon_backoffs(&pods);
        assert_eq!(view.len(), 1);
        let b = &view["u1"][0];
        assert_eq!(b.container, "a");
        assert_eq!(b.delay, Some(Duration::from_secs(40)));
    }
}
