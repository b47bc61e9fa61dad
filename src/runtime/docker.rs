//! [`ContainerRuntime`] on bollard: the only module that knows bollard.
//!
//! The client connects lazily and negotiates the API version after connecting
//! (Debian's dockerd 20.10 speaks 1.41; bollard defaults to a newer one), so
//! podvisor starts, and reports the engine as down, when no engine answers yet.
//! Call budgets are not set here but by [`super::bounded::Bounded`], which
//! the daemon wraps around this runtime; bollard's own per-request timeout
//! is set high so it never cuts a long stop (grace period) short.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, ListContainersOptions,
    ListImagesOptions, RemoveContainerOptions, RemoveImageOptions, StopContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};

use super::{
    split_image_ref, ContainerDetails, ContainerExit, ContainerRuntime, ContainerState,
    ContainerSummary, CreateSpec, Credentials, EventAction, ExecControl, ExecOutput, ExecRequest,
    ExecSession, ExecStart, ImageInfo, ImageSummary, ImageUse, LogOptions, OutputStream, Result,
    RuntimeError, RuntimeEvent, TermSize,
};

/// How long connecting and negotiating the API version may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// bollard's own per-request timeout: only a last resort, above any budget
/// `Bounded` gives (the longest grace period plus margin).
const CLIENT_TIMEOUT_SECS: u64 = 24 * 3600;

/// The real engine, reached over `--docker-endpoint`.
pub struct DockerRuntime {
    endpoint: String,
    /// The connected, version-negotiated client. A `std` mutex: it is held only
    /// to clone or replace the handle, never across an `.await`.
    client: Mutex<Option<Docker>>,
}

impl DockerRuntime {
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            client: Mutex::new(None),
        }
    }

    fn unreachable(&self, reason: impl ToString) -> RuntimeError {
        RuntimeError::Unreachable {
            endpoint: self.endpoint.clone(),
            reason: reason.to_string(),
        }
    }

    fn cached(&self) -> Option<Docker> {
        self.client.lock().ok().and_then(|c| c.clone())
    }

    fn forget_client(&self) {
        if let Ok(mut c) = self.client.lock() {
            *c = None;
        }
    }

    async fn client(&self) -> Result<Docker> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let timeout_secs = CLIENT_TIMEOUT_SECS;
        let docker = if self.endpoint.starts_with("unix://") {
            Docker::connect_with_unix(&self.endpoint, timeout_secs, bollard::API_DEFAULT_VERSION)
        } else {
            let http = self.endpoint.replacen("tcp://", "http://", 1);
            Docker::connect_with_http(&http, timeout_secs, bollard::API_DEFAULT_VERSION)
        }
        .map_err(|e| self.unreachable(e))?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| self.unreachable("version negotiation timed out"))?
            .map_err(|e| self.unreachable(e))?;
        if let Ok(mut c) = self.client.lock() {
            *c = Some(docker.clone());
        }
        Ok(docker)
    }

    /// Runs one call and maps its error; a connection failure drops the
    /// client so the next call reconnects.
    async fn call<T, F>(&self, name: &'static str, f: impl FnOnce(Docker) -> F) -> Result<T>
    where
        F: std::future::Future<Output = std::result::Result<T, BollardError>>,
    {
        let docker = self.client().await?;
        f(docker).await.map_err(|e| {
            let err = self.map_error(name, e);
            if matches!(err, RuntimeError::Unreachable { .. }) {
                self.forget_client();
            }
            err
        })
    }

    fn map_error(&self, call: &'static str, e: BollardError) -> RuntimeError {
        map_error(&self.endpoint, call, e)
    }
}

/// A bollard error in the project's terms (`endpoint` names the engine in
/// [`RuntimeError::Unreachable`]).
fn map_error(endpoint: &str, call: &'static str, e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code,
            message,
        } => match status_code {
            409 if call == "create" => RuntimeError::NameConflict(message),
            _ => RuntimeError::Engine { call, message },
        },
        BollardError::DockerStreamError { error } => RuntimeError::Engine {
            call,
            message: error,
        },
        BollardError::RequestTimeoutError => RuntimeError::Timeout {
            call,
            after: Duration::from_secs(CLIENT_TIMEOUT_SECS),
        },
        BollardError::SocketNotFoundError(_)
        | BollardError::HyperResponseError { .. }
        | BollardError::HyperLegacyError { .. }
        | BollardError::IOError { .. } => RuntimeError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        },
        other => RuntimeError::Engine {
            call,
            message: other.to_string(),
        },
    }
}

fn is_not_found(e: &BollardError) -> bool {
    matches!(
        e,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

fn state_of(s: &str) -> ContainerState {
    match s {
        "created" => ContainerState::Created,
        "running" => ContainerState::Running,
        "exited" | "dead" | "removing" => ContainerState::Exited,
        _ => ContainerState::Unknown,
    }
}

fn labels_of(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

/// Docker reports "never" as the zero time.
fn real_time(t: Option<String>) -> Option<String> {
    t.filter(|t| !t.starts_with("0001-01-01"))
}

/// An attached exec or attach output as the project's chunks.
fn session_output(
    call: &'static str,
    output: std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = std::result::Result<bollard::container::LogOutput, BollardError>,
                > + Send,
        >,
    >,
) -> BoxStream<'static, Result<(OutputStream, bytes::Bytes)>> {
    use bollard::container::LogOutput;
    output
        .map(move |item| match item {
            Ok(LogOutput::StdErr { message }) => Ok((OutputStream::Stderr, message)),
            Ok(other) => Ok((OutputStream::Stdout, other.into_bytes())),
            Err(e) => Err(RuntimeError::Engine {
                call,
                message: e.to_string(),
            }),
        })
        .boxed()
}

/// How long one control call of a session (resize, inspect) may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an exec may still show as running after its output ended.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// The control of a Docker exec: resize and inspect through the engine; a
/// kill by the exec's host pid, which the engine reports but offers no
/// call for (its API cannot end an exec).
struct DockerExec {
    docker: Docker,
    exec_id: String,
}

impl DockerExec {
    async fn inspect(&self) -> Result<bollard::models::ExecInspectResponse> {
        match tokio::time::timeout(CONTROL_TIMEOUT, self.docker.inspect_exec(&self.exec_id)).await {
            Ok(Ok(i)) => Ok(i),
            Ok(Err(e)) => Err(RuntimeError::Engine {
                call: "exec inspect",
                message: e.to_string(),
            }),
            Err(_) => Err(RuntimeError::Timeout {
                call: "exec inspect",
                after: CONTROL_TIMEOUT,
            }),
        }
    }
}

/// A session's control call (a resize), bounded by [`CONTROL_TIMEOUT`].
async fn control<T>(
    call: &'static str,
    f: impl std::future::Future<Output = std::result::Result<T, bollard::errors::Error>>,
) -> Result<T> {
    match tokio::time::timeout(CONTROL_TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| RuntimeError::Engine {
            call,
            message: e.to_string(),
        }),
        Err(_) => Err(RuntimeError::Timeout {
            call,
            after: CONTROL_TIMEOUT,
        }),
    }
}

#[async_trait]
impl ExecControl for DockerExec {
    async fn resize(&self, size: TermSize) -> Result<()> {
        let opts = bollard::exec::ResizeExecOptions {
            height: size.height,
            width: size.width,
        };
        control("exec resize", self.docker.resize_exec(&self.exec_id, opts)).await
    }

    async fn exit_code(&self) -> Result<Option<i64>> {
        // The output can end a moment before the engine has seen the exit.
        let deadline = tokio::time::Instant::now() + EXIT_WAIT;
        loop {
            let i = self.inspect().await?;
            if i.running != Some(true) {
                return Ok(Some(i.exit_code.unwrap_or(-1)));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::Engine {
                    call: "exec",
                    message: format!(
                        "the command closed its output but still ran {EXIT_WAIT:?} later"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn kill(&self) {
        let Ok(i) = self.inspect().await else { return };
        if i.running != Some(true) {
            return;
        }
        if let Some(pid) = i
            .pid
            .and_then(|p| libc::pid_t::try_from(p).ok())
            .filter(|p| *p > 0)
        {
            // SAFETY: kill(2) with a pid the engine reports for this running
            // exec; it touches no memory.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// The control of an attach: resize the container's terminal; no exit code
/// and no kill (the main process outlives the session; dropping the
/// streams detaches).
struct DockerAttach {
    docker: Docker,
    container_id: String,
}

#[async_trait]
impl ExecControl for DockerAttach {
    async fn resize(&self, size: TermSize) -> Result<()> {
        let opts = bollard::query_parameters::ResizeContainerTTYOptions {
            h: i32::from(size.height),
            w: i32::from(size.width),
        };
        control(
            "attach resize",
            self.docker.resize_container_tty(&self.container_id, opts),
        )
        .await
    }

    async fn exit_code(&self) -> Result<Option<i64>> {
        Ok(None)
    }

    async fn kill(&self) {}
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn version(&self) -> Result<String> {
        let v = self
            .call("version", |d| async move { d.version().await })
            .await?;
        Ok(v.version.unwrap_or_default())
    }

    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerSummary>> {
        let mut filters = HashMap::new();
        filters.insert(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        );
        let opts = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .call(
                "list",
                |d| async move { d.list_containers(Some(opts)).await },
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|c| ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: c.image.unwrap_or_default(),
                labels: labels_of(c.labels),
                state: c
                    .state
                    .map_or(ContainerState::Unknown, |s| state_of(s.as_ref())),
                created: c.created.unwrap_or_default(),
            })
            .collect())
    }

    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerDetails>> {
        let id = id.to_string();
        let got = self
            .call("inspect", |d| async move {
                match d.inspect_container(&id, None).await {
                    Err(e) if is_not_found(&e) => Ok(None),
                    other => other.map(Some),
                }
            })
            .await?;
        let Some(c) = got else { return Ok(None) };
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let ip_address = c
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|nets| nets.into_values().find_map(|e| e.ip_address))
            .unwrap_or_default();
        let created = c
            .created
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map_or(0, |t| t.timestamp());
        Ok(Some(ContainerDetails {
            summary: ContainerSummary {
                id: c.id.unwrap_or_default(),
                name: c
                    .name
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                image: config.image.clone().unwrap_or_default(),
                labels: labels_of(config.labels.clone()),
                state: state
                    .status
                    .map_or(ContainerState::Unknown, |s| state_of(s.as_ref())),
                created,
            },
            image_id: c.image.unwrap_or_default(),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|e| !e.is_empty()),
            started_at: real_time(state.started_at),
            finished_at: real_time(state.finished_at),
            pid: state.pid.filter(|p| *p > 0),
            ip_address,
            hostname: config.hostname.unwrap_or_default(),
            env: config.env.unwrap_or_default(),
        }))
    }

    async fn create_container(&self, spec: &CreateSpec) -> Result<String> {
        let mut security_opt = spec.security_opt.clone();
        if let Some(file) = &spec.seccomp_profile_file {
            // Docker's API takes the profile itself (the CLI reads the file).
            let profile =
                tokio::fs::read_to_string(file)
                    .await
                    .map_err(|e| RuntimeError::Engine {
                        call: "create",
                        message: format!("cannot read seccomp profile {}: {e}", file.display()),
                    })?;
            security_opt.push(format!("seccomp={profile}"));
        }
        let security_opt = (!security_opt.is_empty()).then_some(security_opt);
        let mut port_bindings = HashMap::new();
        let mut exposed = Vec::new();
        for p in &spec.ports {
            let key = format!("{}/{}", p.container_port, p.protocol);
            exposed.push(key.clone());
            if let Some(host_port) = p.host_port {
                port_bindings
                    .entry(key)
                    .or_insert_with(|| Some(Vec::new()))
                    .get_or_insert_with(Vec::new)
                    .push(PortBinding {
                        host_ip: p.host_ip.clone(),
                        host_port: Some(host_port.to_string()),
                    });
            }
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.clone()),
            working_dir: spec.working_dir.clone(),
            labels: Some(spec.labels.clone().into_iter().collect()),
            hostname: spec.hostname.clone(),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            stop_signal: spec.stop_signal.clone(),
            user: spec.user.clone(),
            open_stdin: spec.stdin.then_some(true),
            stdin_once: spec.stdin_once.then_some(true),
            tty: spec.tty.then_some(true),
            host_config: Some(HostConfig {
                network_mode: spec.network_mode.clone(),
                ipc_mode: spec.ipc_mode.clone(),
                pid_mode: spec.pid_mode.clone(),
                port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
                cpu_shares: spec.resources.cpu_shares,
                cpu_quota: spec.resources.cpu_quota,
                cpu_period: spec.resources.cpu_period,
                memory: spec.resources.memory,
                memory_swap: spec.resources.memory_swap,
                binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
                tmpfs: (!spec.tmpfs.is_empty()).then(|| spec.tmpfs.clone().into_iter().collect()),
                readonly_rootfs: spec.read_only_rootfs.then_some(true),
                privileged: spec.privileged.then_some(true),
                cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
                cap_drop: (!spec.cap_drop.is_empty()).then(|| spec.cap_drop.clone()),
                group_add: (!spec.group_add.is_empty()).then(|| spec.group_add.clone()),
                log_config: spec.log.map(|l| bollard::models::HostConfigLogConfig {
                    typ: Some("json-file".into()),
                    config: Some(
                        [
                            ("max-size".to_string(), l.max_size_bytes.to_string()),
                            ("max-file".to_string(), l.max_files.to_string()),
                        ]
                        .into(),
                    ),
                }),
                security_opt,
                cgroup_parent: spec.cgroup_parent.clone(),
                oom_score_adj: spec.oom_score_adj,
                userns_mode: spec.userns_mode.clone(),
                sysctls: (!spec.sysctls.is_empty())
                    .then(|| spec.sysctls.clone().into_iter().collect()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        let image = spec.image.clone();
        let created = self
            .call("create", |d| async move {
                d.create_container(Some(opts), body).await
            })
            .await;
        match created {
            Ok(r) => Ok(r.id),
            Err(RuntimeError::Engine { message, .. }) if message.contains("No such image") => {
                Err(RuntimeError::ImageNotFound(image))
            }
            Err(e) => Err(e),
        }
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.call(
            "start",
            |d| async move { d.start_container(&id, None).await },
        )
        .await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let id = id.to_string();
        let t = i32::try_from(grace.as_secs()).unwrap_or(i32::MAX);
        self.call("stop", |d| async move {
            let opts = StopContainerOptions {
                t: Some(t),
                ..Default::default()
            };
            match d.stop_container(&id, Some(opts)).await {
                Err(e) if is_not_found(&e) => Ok(()),
                // 304: already stopped.
                Err(BollardError::DockerResponseServerError {
                    status_code: 304, ..
                }) => Ok(()),
                other => other,
            }
        })
        .await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.call("remove", |d| async move {
            let opts = RemoveContainerOptions {
                force: true,
                ..Default::default()
            };
            match d.remove_container(&id, Some(opts)).await {
                Err(e) if is_not_found(&e) => Ok(()),
                other => other,
            }
        })
        .await
    }

    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>> {
        let image = image.to_string();
        self.call("inspect image", |d| async move {
            match d.inspect_image(&image).await {
                Err(e) if is_not_found(&e) => Ok(None),
                other => other.map(|i| {
                    Some(ImageInfo {
                        id: i.id.unwrap_or_default(),
                        user: i.config.and_then(|c| c.user).unwrap_or_default(),
                    })
                }),
            }
        })
        .await
    }

    async fn list_images(&self) -> Result<Vec<ImageSummary>> {
        let opts = ListImagesOptions {
            all: false,
            ..Default::default()
        };
        let list = self
            .call(
                "list images",
                |d| async move { d.list_images(Some(opts)).await },
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|i| ImageSummary {
                id: i.id,
                repo_tags: i
                    .repo_tags
                    .into_iter()
                    .filter(|t| t != "<none>:<none>")
                    .collect(),
                size: u64::try_from(i.size).unwrap_or(0),
                created: i.created,
            })
            .collect())
    }

    async fn remove_image(&self, image: &str) -> Result<()> {
        let image = image.to_string();
        self.call("remove image", |d| async move {
            let opts = RemoveImageOptions {
                force: false,
                noprune: false,
                ..Default::default()
            };
            match d.remove_image(&image, Some(opts), None).await {
                Err(e) if is_not_found(&e) => Ok(()),
                other => other.map(|_| ()),
            }
        })
        .await
    }

    async fn image_uses(&self) -> Result<Vec<ImageUse>> {
        let opts = ListContainersOptions {
            all: true,
            ..Default::default()
        };
        let list = self
            .call(
                "list",
                |d| async move { d.list_containers(Some(opts)).await },
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|c| ImageUse {
                container_id: c.id.unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                labels: labels_of(c.labels),
            })
            .collect())
    }

    async fn cgroups(&self) -> Result<super::Cgroups> {
        let info = self.call("info", |d| async move { d.info().await }).await?;
        let driver = info
            .cgroup_driver
            .map(|d| d.to_string())
            .filter(|d| !d.is_empty())
            .ok_or(RuntimeError::Engine {
                call: "info",
                message: "the engine names no cgroup driver".into(),
            })?;
        let version = match info.cgroup_version.map(|v| v.to_string()).as_deref() {
            Some("2") => 2,
            _ => 1,
        };
        Ok(super::Cgroups { driver, version })
    }

    async fn data_root(&self) -> Result<String> {
        let info = self.call("info", |d| async move { d.info().await }).await?;
        info.docker_root_dir.ok_or(RuntimeError::Engine {
            call: "info",
            message: "the engine names no DockerRootDir".into(),
        })
    }

    async fn pull_image(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress_deadline: Duration,
        progress: &tokio::sync::watch::Sender<super::pull_progress::PullProgress>,
    ) -> Result<()> {
        let (repo, tag) = split_image_ref(image);
        let opts = CreateImageOptions {
            from_image: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let creds = credentials.map(|c| bollard::auth::DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.clone()),
            serveraddress: Some(c.server.clone()),
            ..Default::default()
        });
        // `Ok(false)`: the pull went quiet for longer than the deadline.
        let finished = self
            .call("pull", |d| async move {
                let mut lines = d.create_image(Some(opts), None, creds);
                let mut layers = super::pull_progress::LayerTracker::default();
                loop {
                    match tokio::time::timeout(progress_deadline, lines.next()).await {
                        Err(_) => return Ok(false),
                        Ok(None) => return Ok(true),
                        Ok(Some(item)) => {
                            let line = item?;
                            let detail = line.progress_detail.unwrap_or_default();
                            if layers.observe(
                                line.id.as_deref(),
                                line.status.as_deref().unwrap_or_default(),
                                detail.current,
                                detail.total,
                            ) {
                                progress.send_replace(layers.summary());
                            }
                        }
                    }
                }
            })
            .await?;
        if !finished {
            return Err(RuntimeError::NoProgress {
                image: image.to_string(),
                after: progress_deadline,
            });
        }
        Ok(())
    }

    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        use tokio::io::AsyncWriteExt;
        let (cid, r) = (id.to_string(), req.clone());
        let created = self
            .call("exec", |d| async move {
                d.create_exec(
                    &cid,
                    CreateExecOptions {
                        cmd: Some(r.cmd),
                        env: (!r.env.is_empty()).then_some(r.env),
                        attach_stdin: Some(r.stdin.is_some()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        tty: Some(r.tty),
                        ..Default::default()
                    },
                )
                .await
            })
            .await?;
        let exec_id = created.id;
        let docker = self.client().await?;
        let run = {
            let (docker, exec_id, req) = (docker.clone(), exec_id.clone(), req.clone());
            async move {
                let mut out = ExecOutput::default();
                let opts = StartExecOptions {
                    tty: req.tty,
                    ..Default::default()
                };
                if let StartExecResults::Attached {
                    mut output,
                    mut input,
                } = docker.start_exec(&exec_id, Some(opts)).await?
                {
                    if let Some(bytes) = &req.stdin {
                        let _ = input.write_all(bytes).await;
                        let _ = input.shutdown().await;
                    }
                    while let Some(item) = output.next().await {
                        match item? {
                            bollard::container::LogOutput::StdErr { message } => {
                                out.stderr.extend_from_slice(&message)
                            }
                            other => out.stdout.extend_from_slice(&other.into_bytes()),
                        }
                    }
                }
                let inspect = docker.inspect_exec(&exec_id).await?;
                out.exit_code = inspect.exit_code.unwrap_or(-1);
                Ok::<_, BollardError>(out)
            }
        };
        match tokio::time::timeout(req.timeout, run).await {
            Ok(result) => result.map_err(|e| self.map_error("exec", e)),
            Err(_) => {
                // Kill the exec'd process, not the container: its host pid
                // is in the exec's inspect.
                if let Ok(Ok(i)) =
                    tokio::time::timeout(CONNECT_TIMEOUT, docker.inspect_exec(&exec_id)).await
                {
                    if let Some(pid) = i.pid.filter(|p| *p > 0) {
                        let _ = tokio::process::Command::new("kill")
                            .args(["-KILL", &pid.to_string()])
                            .status()
                            .await;
                    }
                }
                Err(RuntimeError::ExecTimeout(req.timeout))
            }
        }
    }

    async fn exec_attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession> {
        use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
        let (cid, st) = (id.to_string(), start.clone());
        let created = self
            .call("exec", |d| async move {
                d.create_exec(
                    &cid,
                    CreateExecOptions {
                        cmd: Some(st.cmd),
                        env: (!st.env.is_empty()).then_some(st.env),
                        attach_stdin: Some(st.stdin),
                        attach_stdout: Some(st.stdout),
                        attach_stderr: Some(st.stderr),
                        tty: Some(st.tty),
                        ..Default::default()
                    },
                )
                .await
            })
            .await?;
        let exec_id = created.id;
        let (eid, tty) = (exec_id.clone(), start.tty);
        let started = self
            .call("exec", |d| async move {
                let opts = StartExecOptions {
                    tty,
                    ..Default::default()
                };
                d.start_exec(&eid, Some(opts)).await
            })
            .await?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(RuntimeError::Engine {
                call: "exec",
                message: "the engine started the exec detached".into(),
            });
        };
        let control = DockerExec {
            docker: self.client().await?,
            exec_id,
        };
        // Engines before API 1.42 take no size at create; the engine holds
        // a resize until the process has started, which is as early as
        // this can be.
        if let (true, Some(size)) = (start.tty, start.size) {
            if let Err(e) = control.resize(size).await {
                tracing::debug!(error = %e, "initial exec resize failed");
            }
        }
        Ok(ExecSession {
            output: session_output("exec", output),
            stdin: input,
            control: Box::new(control),
        })
    }

    async fn attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession> {
        let (cid, st) = (id.to_string(), start.clone());
        let attached = self
            .call("attach", |d| async move {
                let opts = bollard::query_parameters::AttachContainerOptions {
                    stream: true,
                    stdin: st.stdin,
                    stdout: st.stdout,
                    stderr: st.stderr,
                    ..Default::default()
                };
                d.attach_container(&cid, Some(opts)).await
            })
            .await?;
        Ok(ExecSession {
            output: session_output("attach", attached.output),
            stdin: attached.input,
            control: Box::new(DockerAttach {
                docker: self.client().await?,
                container_id: id.to_string(),
            }),
        })
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        let opts = LogOptions {
            tail: Some(lines as u64),
            ..LogOptions::default()
        };
        let mut stream = self.logs(id, &opts).await?;
        let mut bytes = Vec::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Opening is connecting; the engine is asked on the stream's first
    /// poll, so a missing container is the stream's first (and only) item,
    /// an error. A connection lost mid-stream ends it with an error but
    /// does not drop the cached client (the next short call that fails
    /// does).
    async fn logs(&self, id: &str, opts: &LogOptions) -> Result<BoxStream<'static, Result<Bytes>>> {
        let docker = self.client().await?;
        let query = bollard::query_parameters::LogsOptions {
            follow: opts.follow,
            stdout: true,
            stderr: true,
            // The engine's `since` is an i32 of seconds; 0 means all.
            since: opts
                .since
                .map_or(0, |s| s.clamp(0, i64::from(i32::MAX)) as i32),
            until: 0,
            timestamps: opts.timestamps,
            tail: opts
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
        };
        let endpoint = self.endpoint.clone();
        Ok(docker
            .logs(id, Some(query))
            .map(move |item| match item {
                Ok(out) => Ok(out.into_bytes()),
                Err(e) => Err(map_error(&endpoint, "logs", e)),
            })
            .boxed())
    }

    async fn security_options(&self) -> Result<Vec<String>> {
        let info = self.call("info", |d| async move { d.info().await }).await?;
        Ok(info.security_options.unwrap_or_default())
    }

    fn events(&self, label: &str) -> BoxStream<'static, Result<RuntimeEvent>> {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        filters.insert("label".to_string(), vec![label.to_string()]);
        let opts = EventsOptions {
            filters: Some(filters),
            ..Default::default()
        };
        let Some(docker) = self.cached() else {
            return futures::stream::once(futures::future::ready(Err(
                self.unreachable("not connected")
            )))
            .boxed();
        };
        let endpoint = self.endpoint.clone();
        docker
            .events(Some(opts))
            .map(move |item| match item {
                Ok(msg) => {
                    let actor = msg.actor.unwrap_or_default();
                    let action = EventAction::parse(msg.action.as_deref().unwrap_or_default());
                    let labels = labels_of(actor.attributes);
                    let exit = match (&action, labels.get("exitCode"), msg.time_nano) {
                        (EventAction::Die, Some(code), Some(t)) => {
                            code.parse().ok().map(|code| ContainerExit {
                                code,
                                finished_at: chrono::DateTime::from_timestamp_nanos(t)
                                    .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                            })
                        }
                        _ => None,
                    };
                    Ok(RuntimeEvent {
                        container_id: actor.id.unwrap_or_default(),
                        action,
                        labels,
                        exit,
                    })
                }
                Err(e) => Err(RuntimeError::Unreachable {
                    endpoint: endpoint.clone(),
                    reason: e.to_string(),
                }),
            })
            .boxed()
    }
}
