//! `FakeDocker`: an in-memory engine for actor-level tests.
//!
//! Containers and images live in a map; every call is logged; a test can make
//! the next call of a kind fail, delay a kind of call, make a container exit,
//! and read the event stream the actors subscribe to. Delays use tokio's clock,
//! so a test with paused time runs them instantly.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;

use crate::model::clock::{Clock, SystemClock};

use super::{
    ContainerDetails, ContainerExit, ContainerRuntime, ContainerState, ContainerSummary,
    CreateSpec, Credentials, EventAction, ExecControl, ExecOutput, ExecRequest, ExecSession,
    ExecStart, ImageInfo, ImageSummary, ImageUse, LogOptions, OutputStream, Result, RuntimeError,
    RuntimeEvent, TermSize,
};

/// One call made to the fake, with its main argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Version,
    List,
    Inspect(String),
    /// The container name.
    Create(String),
    Start(String),
    Stop(String),
    Remove(String),
    ImageId(String),
    Pull(String),
    /// Container ID and command.
    Exec(String, Vec<String>),
    /// An attach to the container.
    Attach(String),
    Logs(String),
    ListImages,
    /// The name or ID given.
    RemoveImage(String),
}

impl Call {
    /// The kind of call, as used by [`FakeDocker::fail_next`] and
    /// [`FakeDocker::delay`].
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Version => "version",
            Call::List => "list",
            Call::Inspect(_) => "inspect",
            Call::Create(_) => "create",
            Call::Start(_) => "start",
            Call::Stop(_) => "stop",
            Call::Remove(_) => "remove",
            Call::ImageId(_) => "image_id",
            Call::Pull(_) => "pull",
            Call::Exec(..) => "exec",
            Call::Attach(_) => "attach",
            Call::Logs(_) => "logs",
            Call::ListImages => "list_images",
            Call::RemoveImage(_) => "remove_image",
        }
    }

    /// Whether the call changes the engine's state.
    pub fn is_mutating(&self) -> bool {
        matches!(
            self,
            Call::Create(_)
                | Call::Start(_)
                | Call::Stop(_)
                | Call::Remove(_)
                | Call::Pull(_)
                | Call::RemoveImage(_)
        )
    }
}

/// The fake's record of one container.
#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub spec: CreateSpec,
    pub details: ContainerDetails,
    /// How many times it was started.
    pub starts: u32,
    /// Left out of list answers (as a container created by someone else
    /// after a list was taken).
    pub hidden: bool,
}

#[derive(Default)]
struct State {
    containers: BTreeMap<String, FakeContainer>,
    images: HashMap<String, String>,
    /// Image ID → its size in bytes (1 MB when not set).
    image_sizes: HashMap<String, u64>,
    /// Image names removed so far: an ID is the count of names plus this
    /// plus one, so that one removed never comes back (and, with no
    /// removal, as it always was: pulling a present image again gives it
    /// the next number once, then keeps it).
    images_removed: usize,
    /// Images a pull can fetch.
    registry: HashSet<String>,
    calls: Vec<Call>,
    failures: HashMap<&'static str, VecDeque<RuntimeError>>,
    delays: HashMap<&'static str, Duration>,
    /// Calls that do their work, then answer that they ran out of their
    /// budget (the engine went on after the caller gave up), by kind.
    late: HashMap<&'static str, usize>,
    /// Calls that never answer: (kind, text the call's argument contains).
    hangs: Vec<(&'static str, String)>,
    /// Image → the user it runs as (root when absent).
    image_users: HashMap<String, String>,
    /// Answers for exec by command (joined with spaces); default exit 0.
    exec_answers: HashMap<String, ExecOutput>,
    logs: HashMap<String, String>,
    /// Each `logs` stream asked for: container ID and options.
    log_requests: Vec<(String, LogOptions)>,
    /// The grace period each stop was given.
    stops: Vec<(String, Duration)>,
    pulls_in_flight: usize,
    max_pulls_in_flight: usize,
    pull_starts: Vec<(String, std::time::Instant)>,
    pull_credentials: Vec<Option<Credentials>>,
    /// What a pull reports, step by step, with the pause before each.
    pull_steps: Vec<super::pull_progress::PullProgress>,
    pull_step_every: Duration,
    next_id: u64,
    next_pid: i64,
    /// Orders creations (the `created` field).
    seq: i64,
    /// What `security_options` answers (`None`: seccomp only, as the
    /// private test engine).
    security_options: Option<Vec<String>>,
}

/// An in-memory container engine.
pub struct FakeDocker {
    state: Mutex<State>,
    /// Stamps start and finish times (a `ManualClock` in back-off tests).
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<RuntimeEvent>,
    /// `logs` streams not yet dropped.
    log_streams_open: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for FakeDocker {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeDocker {
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// A fake whose container times come from `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            state: Mutex::new(State {
                next_pid: 1000,
                seq: 1_700_000_000,
                ..State::default()
            }),
            events: broadcast::channel(1024).0,
            log_streams_open: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep
        // serving the others.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes `image` present locally.
    pub fn add_image(&self, image: &str) {
        let mut s = self.lock();
        let id = format!("sha256:{:064x}", s.images.len() + s.images_removed + 1);
        s.images.insert(image.to_string(), id);
    }

    /// Gives `image` another name `alias` (one image, two tags).
    pub fn tag_image(&self, image: &str, alias: &str) {
        let mut s = self.lock();
        if let Some(id) = s.images.get(image).cloned() {
            s.images.insert(alias.to_string(), id);
        }
    }

    /// Sets what the engine's `security_options` lists (`name=apparmor`,
    /// `name=userns`, ...).
    pub fn set_security_options(&self, options: &[&str]) {
        self.lock().security_options = Some(options.iter().map(|o| o.to_string()).collect());
    }

    /// Sets the size the image list shows for `image`.
    pub fn set_image_size(&self, image: &str, bytes: u64) {
        let mut s = self.lock();
        if let Some(id) = s.images.get(image).cloned() {
            s.image_sizes.insert(id, bytes);
        }
    }

    /// The names of the local images, sorted.
    pub fn image_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.lock().images.keys().cloned().collect();
        names.sort();
        names
    }

    /// The ID the fake gave `image` (empty when absent).
    pub fn image_id_of(&self, image: &str) -> String {
        self.lock().images.get(image).cloned().unwrap_or_default()
    }

    /// Sets the user `image` runs as.
    pub fn set_image_user(&self, image: &str, user: &str) {
        self.lock()
            .image_users
            .insert(image.to_string(), user.to_string());
    }

    /// Makes `image` pullable.
    pub fn add_to_registry(&self, image: &str) {
        self.lock().registry.insert(image.to_string());
    }

    /// The next call of `kind` (see [`Call::kind`]) fails with `err`.
    pub fn fail_next(&self, kind: &'static str, err: RuntimeError) {
        self.lock().failures.entry(kind).or_default().push_back(err);
    }

    /// Every pull reports `steps` of progress, one each `every`, before it
    /// finishes.
    pub fn pull_in_steps(&self, steps: Vec<super::pull_progress::PullProgress>, every: Duration) {
        let mut s = self.lock();
        s.pull_steps = steps;
        s.pull_step_every = every;
    }

    /// Every call of `kind` waits `by` before answering.
    /// The next `n` calls of `kind` (create, start, remove) do their work,
    /// then fail with a timeout, as a call the engine finished after its
    /// budget ran out.
    pub fn answer_late(&self, kind: &'static str, n: usize) {
        self.lock().late.insert(kind, n);
    }

    /// A timeout instead of `result` when a late answer is due for `kind`.
    fn late<T>(&self, kind: &'static str, result: Result<T>) -> Result<T> {
        let mut s = self.lock();
        match s.late.get_mut(kind) {
            Some(n) if *n > 0 && result.is_ok() => {
                *n -= 1;
                Err(RuntimeError::Timeout {
                    call: kind,
                    after: Duration::from_secs(10),
                })
            }
            _ => result,
        }
    }

    pub fn delay(&self, kind: &'static str, by: Duration) {
        self.lock().delays.insert(kind, by);
    }

    /// Calls of `kind` whose argument (a name or ID) contains `needle`
    /// never answer, as a hung engine call would not.
    pub fn hang(&self, kind: &'static str, needle: &str) {
        self.lock().hangs.push((kind, needle.to_string()));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls so far that changed the engine's state.
    pub fn mutating_calls(&self) -> Vec<Call> {
        self.calls().into_iter().filter(Call::is_mutating).collect()
    }

    /// What an exec of `cmd` (joined with spaces) answers from now on.
    pub fn answer_exec(&self, cmd: &str, output: ExecOutput) {
        self.lock().exec_answers.insert(cmd.to_string(), output);
    }

    /// Sets a container's log text.
    pub fn set_logs(&self, id: &str, text: &str) {
        self.lock().logs.insert(id.to_string(), text.to_string());
    }

    /// Every `logs` stream asked for, with its options, in order.
    pub fn log_requests(&self) -> Vec<(String, LogOptions)> {
        self.lock().log_requests.clone()
    }

    /// How many `logs` streams are open (made and not yet dropped).
    pub fn log_streams_open(&self) -> usize {
        self.log_streams_open
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Every stop with the grace period it was given, in order.
    pub fn stops(&self) -> Vec<(String, Duration)> {
        self.lock().stops.clone()
    }

    /// The most pulls that were ever under way at once.
    pub fn max_pulls_in_flight(&self) -> usize {
        self.lock().max_pulls_in_flight
    }

    /// When each pull started, in order.
    pub fn pull_starts(&self) -> Vec<(String, std::time::Instant)> {
        self.lock().pull_starts.clone()
    }

    /// The credentials each pull was given, in order.
    pub fn pull_credentials(&self) -> Vec<Option<Credentials>> {
        self.lock().pull_credentials.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// All containers, in creation order.
    pub fn containers(&self) -> Vec<FakeContainer> {
        let mut all: Vec<_> = self.lock().containers.values().cloned().collect();
        all.sort_by_key(|c| c.details.summary.created);
        all
    }

    /// Containers that are running now.
    pub fn running(&self) -> Vec<FakeContainer> {
        self.containers()
            .into_iter()
            .filter(|c| c.details.summary.state == ContainerState::Running)
            .collect()
    }

    /// Adds a container directly, as if another agent or an earlier run made
    /// it; returns its ID.
    pub fn insert_container(&self, spec: CreateSpec, state: ContainerState) -> String {
        let mut s = self.lock();
        let id = Self::new_container(&mut s, &spec);
        if state == ContainerState::Running {
            Self::mark_started(&mut s, &id, self.clock.now());
        }
        if let Some(c) = s.containers.get_mut(&id) {
            c.details.summary.state = state;
        }
        id
    }

    /// Removes a container behind the agents' back (as `docker rm -f` by a
    /// user would), without logging a call.
    pub fn remove_container_now(&self, id: &str) {
        self.lock().containers.remove(id);
    }

    /// Keeps a container out of list answers from now on (see
    /// [`FakeContainer::hidden`]).
    pub fn hide(&self, id: &str) {
        if let Some(c) = self.lock().containers.get_mut(id) {
            c.hidden = true;
        }
    }

    /// Makes a running container exit with `code`, as if its process ended,
    /// and emits `die`.
    pub fn exit_container(&self, id: &str, code: i64) {
        let event = {
            let mut s = self.lock();
            let now = self.clock.now();
            let Some(c) = s.containers.get_mut(id) else {
                return;
            };
            c.details.summary.state = ContainerState::Exited;
            c.details.exit_code = Some(code);
            c.details.pid = None;
            c.details.finished_at = Some(rfc3339(now));
            event(c, "die")
        };
        let _ = self.events.send(event);
    }

    fn new_container(s: &mut State, spec: &CreateSpec) -> String {
        s.next_id += 1;
        s.seq += 1;
        let id = format!("{:064x}", s.next_id);
        let image_id = s.images.get(&spec.image).cloned().unwrap_or_default();
        let details = ContainerDetails {
            summary: ContainerSummary {
                id: id.clone(),
                name: spec.name.clone(),
                image: spec.image.clone(),
                labels: spec.labels.clone(),
                state: ContainerState::Created,
                created: s.seq,
            },
            image_id,
            exit_code: None,
            oom_killed: false,
            error: None,
            started_at: None,
            finished_at: None,
            pid: None,
            ip_address: String::new(),
            hostname: spec.hostname.clone().unwrap_or_default(),
            env: spec.env.clone(),
        };
        s.containers.insert(
            id.clone(),
            FakeContainer {
                spec: spec.clone(),
                details,
                starts: 0,
                hidden: false,
            },
        );
        id
    }

    fn mark_started(s: &mut State, id: &str, now: DateTime<Utc>) -> Option<RuntimeEvent> {
        s.next_pid += 1;
        let pid = s.next_pid;
        let ip = format!("172.17.0.{}", (s.next_id % 250) + 2);
        let c = s.containers.get_mut(id)?;
        c.starts += 1;
        c.details.summary.state = ContainerState::Running;
        c.details.started_at = Some(rfc3339(now));
        c.details.finished_at = None;
        c.details.exit_code = None;
        c.details.pid = Some(pid);
        if c.spec.network_mode.is_none() {
            c.details.ip_address = ip;
        }
        Some(event(c, "start"))
    }

    /// Logs the call, applies its delay, and returns an injected failure.
    async fn enter(&self, call: Call) -> Result<()> {
        let kind = call.kind();
        let hangs = self
            .lock()
            .hangs
            .iter()
            .any(|(k, needle)| *k == kind && format!("{call:?}").contains(needle.as_str()));
        let (delay, failure) = {
            let mut s = self.lock();
            s.calls.push(call);
            let failure = s.failures.get_mut(kind).and_then(VecDeque::pop_front);
            (s.delays.get(kind).copied(), failure)
        };
        if hangs {
            futures::future::pending::<()>().await;
        }
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        failure.map_or(Ok(()), Err)
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn event(c: &FakeContainer, action: &str) -> RuntimeEvent {
    let d = &c.details;
    let exit = match (action, d.exit_code, &d.finished_at) {
        ("die", Some(code), Some(at)) => Some(ContainerExit {
            code,
            finished_at: at.clone(),
        }),
        _ => None,
    };
    RuntimeEvent {
        container_id: d.summary.id.clone(),
        action: EventAction::parse(action),
        labels: d.summary.labels.clone(),
        exit,
    }
}

#[async_trait]
impl ContainerRuntime for FakeDocker {
    async fn version(&self) -> Result<String> {
        self.enter(Call::Version).await?;
        Ok("20.10.24-fake".into())
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerSummary>> {
        self.enter(Call::List).await?;
        let s = self.lock();
        Ok(s.containers
            .values()
            .filter(|c| !c.hidden)
            .filter(|c| {
                labels
                    .iter()
                    .all(|(k, v)| c.details.summary.labels.get(k) == Some(v))
            })
            .map(|c| c.details.summary.clone())
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerDetails>> {
        self.enter(Call::Inspect(id.to_string())).await?;
        // Like Docker, by ID or by name.
        let s = self.lock();
        let found = s
            .containers
            .get(id)
            .or_else(|| s.containers.values().find(|c| c.spec.name == id));
        Ok(found.map(|c| c.details.clone()))
    }

    async fn create_container(&self, spec: &CreateSpec) -> Result<String> {
        self.enter(Call::Create(spec.name.clone())).await?;
        let mut s = self.lock();
        if s.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(RuntimeError::NameConflict(spec.name.clone()));
        }
        if !s.images.contains_key(&spec.image) {
            return Err(RuntimeError::ImageNotFound(spec.image.clone()));
        }
        let id = Self::new_container(&mut s, spec);
        drop(s);
        self.late("create", Ok(id))
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.enter(Call::Start(id.to_string())).await?;
        let ev = {
            let mut s = self.lock();
            if !s.containers.contains_key(id) {
                return Err(RuntimeError::Engine {
                    call: "start",
                    message: format!("No such container: {id}"),
                });
            }
            Self::mark_started(&mut s, id, self.clock.now())
        };
        if let Some(ev) = ev {
            let _ = self.events.send(ev);
        }
        self.late("start", Ok(()))
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        self.enter(Call::Stop(id.to_string())).await?;
        self.lock().stops.push((id.to_string(), grace));
        let running = self
            .lock()
            .containers
            .get(id)
            .is_some_and(|c| c.details.summary.state == ContainerState::Running);
        if running {
            // SIGTERM: the fake's processes exit at once, as 143 would.
            self.exit_container(id, 143);
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.enter(Call::Remove(id.to_string())).await?;
        let removed = self.lock().containers.remove(id);
        if let Some(c) = removed {
            let _ = self.events.send(event(&c, "destroy"));
        }
        self.late("remove", Ok(()))
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>> {
        self.enter(Call::ImageId(image.to_string())).await?;
        let s = self.lock();
        Ok(s.images.get(image).map(|id| ImageInfo {
            id: id.clone(),
            user: s.image_users.get(image).cloned().unwrap_or_default(),
        }))
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>> {
        self.enter(Call::ListImages).await?;
        let s = self.lock();
        let mut by_id: BTreeMap<String, ImageSummary> = BTreeMap::new();
        for (name, id) in &s.images {
            let i = by_id.entry(id.clone()).or_insert_with(|| ImageSummary {
                id: id.clone(),
                repo_tags: Vec::new(),
                size: s.image_sizes.get(id).copied().unwrap_or(1_000_000),
                created: 0,
            });
            i.repo_tags.push(name.clone());
            i.repo_tags.sort();
        }
        Ok(by_id.into_values().collect())
    }

    /// By name: that name goes (and the image with its last name); by ID:
    /// every name. An image a container was made from keeps its last name,
    /// as the engine refuses without force.
    async fn remove_image(&self, image: &str) -> Result<()> {
        self.enter(Call::RemoveImage(image.to_string())).await?;
        let mut s = self.lock();
        let names: Vec<String> = match s.images.get(image) {
            Some(_) => vec![image.to_string()],
            None => s
                .images
                .iter()
                .filter(|(_, id)| id.as_str() == image)
                .map(|(n, _)| n.clone())
                .collect(),
        };
        let Some(id) = names.first().and_then(|n| s.images.get(n)).cloned() else {
            return Ok(());
        };
        let others = s
            .images
            .iter()
            .filter(|(n, i)| **i == id && !names.contains(n))
            .count();
        let used = s.containers.values().any(|c| c.details.image_id == id);
        if others == 0 && used {
            return Err(RuntimeError::Engine {
                call: "remove image",
                message: format!("conflict: unable to delete {image}: image is being used"),
            });
        }
        for n in names {
            if s.images.remove(&n).is_some() {
                s.images_removed += 1;
            }
        }
        Ok(())
    }

    async fn image_uses(&self) -> Result<Vec<ImageUse>> {
        self.enter(Call::List).await?;
        let s = self.lock();
        Ok(s.containers
            .values()
            .filter(|c| !c.hidden)
            .map(|c| ImageUse {
                container_id: c.details.summary.id.clone(),
                image_id: c.details.image_id.clone(),
                labels: c.details.summary.labels.clone(),
            })
            .collect())
    }

    async fn cgroups(&self) -> Result<super::Cgroups> {
        self.enter(Call::Version).await?;
        Ok(super::Cgroups {
            driver: "cgroupfs".into(),
            version: 2,
        })
    }

    async fn data_root(&self) -> Result<String> {
        self.enter(Call::Version).await?;
        Ok("/var/lib/docker".into())
    }

    async fn pull_image(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress_deadline: Duration,
        progress: &tokio::sync::watch::Sender<super::pull_progress::PullProgress>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        {
            let mut s = self.lock();
            s.pulls_in_flight += 1;
            s.max_pulls_in_flight = s.max_pulls_in_flight.max(s.pulls_in_flight);
            s.pull_starts.push((image.to_string(), started));
            s.pull_credentials.push(credentials.cloned());
        }
        let stalls = self
            .lock()
            .delays
            .get("pull")
            .is_some_and(|d| *d > progress_deadline);
        let entered = if stalls {
            tokio::time::sleep(progress_deadline).await;
            self.lock().calls.push(Call::Pull(image.to_string()));
            Err(RuntimeError::NoProgress {
                image: image.to_string(),
                after: progress_deadline,
            })
        } else {
            self.enter(Call::Pull(image.to_string())).await
        };
        let (steps, every) = {
            let s = self.lock();
            (s.pull_steps.clone(), s.pull_step_every)
        };
        if entered.is_ok() {
            for step in steps {
                tokio::time::sleep(every).await;
                progress.send_replace(step);
            }
        }
        self.lock().pulls_in_flight -= 1;
        entered?;
        let known = self.lock().registry.contains(image);
        if !known {
            return Err(RuntimeError::Engine {
                call: "pull",
                message: format!("manifest for {image} not found: manifest unknown"),
            });
        }
        self.add_image(image);
        Ok(())
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        self.enter(Call::Exec(id.to_string(), req.cmd.clone()))
            .await?;
        self.require_running(id)?;
        let s = self.lock();
        Ok(s.exec_answers
            .get(&req.cmd.join(" "))
            .cloned()
            .unwrap_or_default())
    }

    /// An interactive exec is `cat`: what goes to its stdin comes back on
    /// its stdout; it exits 0 when its stdin is closed.
    async fn exec_attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession> {
        self.enter(Call::Exec(id.to_string(), start.cmd.clone()))
            .await?;
        self.require_running(id)?;
        Ok(echo_session(Some(0)))
    }

    /// An attach echoes too, and has no exit code.
    async fn attach(&self, id: &str, _start: &ExecStart) -> Result<ExecSession> {
        self.enter(Call::Attach(id.to_string())).await?;
        self.require_running(id)?;
        Ok(echo_session(None))
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        self.enter(Call::Logs(id.to_string())).await?;
        let text = self.lock().logs.get(id).cloned().unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = &all[all.len().saturating_sub(lines)..];
        Ok(tail.iter().map(|l| format!("{l}\n")).collect())
    }

    /// The text of [`FakeDocker::set_logs`], one chunk per line, the last
    /// `tail` lines when asked; `since` and `timestamps` are recorded (see
    /// [`FakeDocker::log_requests`]) but not applied (the fake keeps no
    /// times per line). With `follow` on a running container the stream
    /// then stays open, writing nothing more, until it is dropped.
    async fn logs(
        &self,
        id: &str,
        opts: &LogOptions,
    ) -> Result<BoxStream<'static, Result<bytes::Bytes>>> {
        self.enter(Call::Logs(id.to_string())).await?;
        let mut s = self.lock();
        s.log_requests.push((id.to_string(), opts.clone()));
        let Some(c) = s.containers.get(id) else {
            return Ok(futures::stream::iter([Err(RuntimeError::Engine {
                call: "logs",
                message: format!("No such container: {id}"),
            })])
            .boxed());
        };
        let running = c.details.summary.state == ContainerState::Running;
        let text = s.logs.get(id).cloned().unwrap_or_default();
        let lines: Vec<bytes::Bytes> = text
            .lines()
            .map(|l| bytes::Bytes::from(format!("{l}\n")))
            .collect();
        let skip = opts
            .tail
            .map_or(0, |t| lines.len().saturating_sub(t as usize));
        let lines: Vec<Result<bytes::Bytes>> = lines.into_iter().skip(skip).map(Ok).collect();
        let guard = OpenStream::new(self.log_streams_open.clone());
        let rest = if opts.follow && running {
            futures::stream::pending().boxed()
        } else {
            futures::stream::empty().boxed()
        };
        Ok(futures::stream::iter(lines)
            .chain(rest)
            .map(move |item| {
                let _held = &guard;
                item
            })
            .boxed())
    }

    fn events(&self, label: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        let (key, value) = (key.to_string(), value.to_string());
        tokio_stream_from(self.events.subscribe())
            .filter(move |e| {
                let keep = e
                    .as_ref()
                    .map_or(true, |e| e.labels.get(&key) == Some(&value));
                futures::future::ready(keep)
            })
            .boxed()
    }

    async fn security_options(&self) -> Result<Vec<String>> {
        self.enter(Call::Version).await?;
        Ok(self
            .lock()
            .security_options
            .clone()
            .unwrap_or_else(|| vec!["name=seccomp,profile=default".into()]))
    }
}

/// Counts a stream as open until it is dropped.
struct OpenStream(Arc<std::sync::atomic::AtomicUsize>);

impl OpenStream {
    fn new(count: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl FakeDocker {
    fn require_running(&self, id: &str) -> Result<()> {
        let running = self
            .lock()
            .containers
            .get(id)
            .is_some_and(|c| c.details.summary.state == ContainerState::Running);
        if running {
            Ok(())
        } else {
            Err(RuntimeError::Engine {
                call: "exec",
                message: format!("Container {id} is not running"),
            })
        }
    }
}

/// A session whose stdin comes back as its stdout, ending (with `exit`)
/// when its stdin is closed.
fn echo_session(exit: Option<i64>) -> ExecSession {
    let (stdin, mut looped) = tokio::io::duplex(64 * 1024);
    let output = futures::stream::poll_fn(move |cx| {
        let mut buf = [0u8; 8192];
        let mut read = tokio::io::ReadBuf::new(&mut buf);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(&mut looped), cx, &mut read) {
            std::task::Poll::Ready(Ok(())) if read.filled().is_empty() => {
                std::task::Poll::Ready(None)
            }
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Some(Ok((
                OutputStream::Stdout,
                bytes::Bytes::copy_from_slice(read.filled()),
            )))),
            std::task::Poll::Ready(Err(_)) => std::task::Poll::Ready(None),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
    .boxed();
    ExecSession {
        output,
        stdin: Box::pin(stdin),
        control: Box::new(FakeControl(exit)),
    }
}

struct FakeControl(Option<i64>);

#[async_trait]
impl ExecControl for FakeControl {
    async fn resize(&self, _size: TermSize) -> Result<()> {
        Ok(())
    }

    async fn exit_code(&self) -> Result<Option<i64>> {
        Ok(self.0)
    }

    async fn kill(&self) {}
}

fn tokio_stream_from(
    rx: broadcast::Receiver<RuntimeEvent>,
) -> BoxStream<'static, Result<RuntimeEvent>> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((Ok(e), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
