//! The seam to the container engine.
//!
//! [`ContainerRuntime`] is the only interface the actors use to reach Docker.
//! It speaks the project's own types (below), never bollard's models, so the
//! fake stays small and a bollard upgrade touches one module
//! ([`docker`]). A 404 from the engine is an ordinary answer (`Ok(None)`), not
//! an error.

pub mod bounded;
pub mod credentials;
pub mod docker;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod gate;
pub mod pull_progress;

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

/// What a container is doing, as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ContainerState {
    /// Created but never started (e.g. the agent died between create and start).
    Created,
    Running,
    /// Exited, dead, or being removed: it will not run again by itself.
    Exited,
    /// Paused, restarting or anything else we do not drive.
    Unknown,
}

/// One container as a list call returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// Name without the leading `/`.
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: ContainerState,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// What an inspect adds to the summary: exit details, times, the pid and IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetails {
    pub summary: ContainerSummary,
    /// The image ID (`sha256:…`) the container runs.
    pub image_id: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// The engine's error text for a container that failed to start.
    pub error: Option<String>,
    /// RFC 3339, as the engine reports it; `None` when never started.
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub pid: Option<i64>,
    /// The container's IP on the default network (empty when it has none).
    pub ip_address: String,
    /// The container's configured hostname and `KEY=value` environment (for
    /// the nsenter exec handler).
    pub hostname: String,
    pub env: Vec<String>,
}

/// What podvisor needs of a local image.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageInfo {
    /// `sha256:…`.
    pub id: String,
    /// The user its config runs as (empty: root).
    pub user: String,
}

/// One local image as the engine lists it (image garbage collection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageSummary {
    /// `sha256:…`.
    pub id: String,
    /// `repo:tag` names (empty for an untagged image).
    pub repo_tags: Vec<String>,
    /// Bytes, shared layers included (as `docker images` shows it).
    pub size: u64,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

/// Which image one container of the engine (any container, running or
/// not) was made from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageUse {
    pub container_id: String,
    /// `sha256:…`.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
}

/// A port published by a container (hostPort mapping).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PortMapping {
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    pub host_port: Option<u16>,
    pub host_ip: Option<String>,
}

/// Everything needed to create one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateSpec {
    pub name: String,
    pub image: String,
    /// Replaces the image's entrypoint when set (the Pod's `command`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd when set (the Pod's `args`).
    pub cmd: Option<Vec<String>>,
    /// `KEY=value` pairs, in order.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub hostname: Option<String>,
    pub ports: Vec<PortMapping>,
    /// `container:<id>`, `host`, or `None` for the engine's default.
    pub network_mode: Option<String>,
    /// `shareable`, `container:<id>`, `host`, or `None`.
    pub ipc_mode: Option<String>,
    pub pid_mode: Option<String>,
    pub stop_signal: Option<String>,
    /// `uid[:gid]`.
    pub user: Option<String>,
    /// Extra groups (supplementalGroups, fsGroup).
    pub group_add: Vec<String>,
    pub resources: Resources,
    /// `host-path:container-path[:ro]` bind mounts.
    pub binds: Vec<String>,
    /// Container path → tmpfs options (e.g. `size=64m`).
    pub tmpfs: BTreeMap<String, String>,
    pub read_only_rootfs: bool,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// Docker `--security-opt` values.
    pub security_opt: Vec<String>,
    /// The limits of the container's log files (`None`: the engine's
    /// defaults).
    pub log: Option<LogLimits>,
    /// The cgroup the container is placed under (a pod cgroup holding
    /// pod-level limits); `None`: the engine's default.
    pub cgroup_parent: Option<String>,
    /// Keep stdin open (the Pod's `stdin`), closed after the first attach
    /// ends (`stdinOnce`), and give the container a terminal (`tty`).
    pub stdin: bool,
    pub stdin_once: bool,
    pub tty: bool,
    /// The OOM killer's adjustment of the container's processes
    /// (`OomScoreAdj`; `None`: the engine's 0).
    pub oom_score_adj: Option<i64>,
    /// `host` to keep the container in the host's user namespace on an
    /// engine with user-namespace remapping (`None`: the engine's default).
    pub userns_mode: Option<String>,
    /// A Localhost seccomp profile: the engine is given this file's
    /// content as `seccomp=<json>` (Docker's API takes the profile, not a
    /// path).
    pub seccomp_profile_file: Option<std::path::PathBuf>,
    /// Namespaced kernel parameters (`Sysctls`), set on the infra
    /// container whose namespaces the pod shares.
    pub sysctls: BTreeMap<String, String>,
}

/// The engine's cgroup driver and the host's cgroup version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroups {
    /// `cgroupfs` or `systemd`.
    pub driver: String,
    /// 1 or 2.
    pub version: u8,
}

/// How much output the engine keeps of a container: its log file is
/// rotated past `max_size_bytes`, and `max_files` files are kept (the
/// engine's `json-file` driver's `max-size` and `max-file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    pub max_size_bytes: u64,
    pub max_files: u32,
}

/// Resource settings of one container, in the engine's units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_shares: Option<i64>,
    /// CFS quota and period in µs.
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<i64>,
    /// Bytes.
    pub memory: Option<i64>,
    /// Bytes of memory plus swap (equal to `memory`: no swap).
    pub memory_swap: Option<i64>,
}

/// A command to run inside a running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    /// Extra `KEY=value` environment.
    pub env: Vec<String>,
    pub tty: bool,
    /// Bytes written to the command's stdin (then closed).
    pub stdin: Option<Vec<u8>>,
    /// The exec'd process is killed (not the container) past this.
    pub timeout: Duration,
}

/// What an exec'd command did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// stdout then stderr, as text, for probe and hook messages.
    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.stdout).into_owned();
        s.push_str(&String::from_utf8_lossy(&self.stderr));
        s
    }
}

/// What a [`ContainerRuntime::logs`] stream carries: stdout and stderr
/// interleaved as the engine returns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming what the container writes until it ends (or the
    /// stream is dropped).
    pub follow: bool,
    /// Only the last this many lines (all when `None`).
    pub tail: Option<u64>,
    /// Only what was written at or after this time, in seconds since the
    /// epoch (all when `None`).
    pub since: Option<i64>,
    /// Each line prefixed with its RFC 3339 time (nanoseconds) and a space,
    /// as the engine writes it.
    pub timestamps: bool,
}

/// A terminal's size in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub width: u16,
    pub height: u16,
}

/// An interactive command to start inside a running container
/// ([`ContainerRuntime::exec_attach`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecStart {
    pub cmd: Vec<String>,
    /// Extra `KEY=value` environment.
    pub env: Vec<String>,
    /// Run it on a terminal: one output (stdout), resizable.
    pub tty: bool,
    /// Attach its stdin (otherwise it reads from nothing).
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// The terminal's size from the start (with `tty`), so that the
    /// command never sees a terminal of no size.
    pub size: Option<TermSize>,
}

/// Which output a chunk of an interactive session came from (everything
/// is [`OutputStream::Stdout`] on a terminal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// A running interactive command (an exec, or an attach to a container's
/// main process), in three parts so that a caller can drive them from
/// different tasks:
/// - `output`: its output as it comes; the stream ends when the command
///   closed its outputs (normally: it exited);
/// - `stdin`: writes go to its stdin; `shutdown` closes its stdin (on a
///   terminal: sends the end-of-file character);
/// - `control`: resize its terminal, read its exit code once `output` has
///   ended, or kill it when the client went away.
pub struct ExecSession {
    pub output: BoxStream<'static, Result<(OutputStream, bytes::Bytes)>>,
    pub stdin: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    pub control: Box<dyn ExecControl>,
}

/// The handle of an [`ExecSession`] beside its streams.
#[async_trait]
pub trait ExecControl: Send + Sync {
    /// Sets the size of the command's terminal (no-op without one).
    async fn resize(&self, size: TermSize) -> Result<()>;
    /// The exit code, once the output has ended; `None` when there is none
    /// to report (an attach, whose process outlives the session).
    async fn exit_code(&self) -> Result<Option<i64>>;
    /// Ends the command if it still runs (the client went away). Never
    /// touches the container's main process.
    async fn kill(&self);
}

/// An event from the engine about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeEvent {
    pub container_id: String,
    pub action: EventAction,
    pub labels: BTreeMap<String, String>,
    /// For a `die`: the exit code and time the event carries.
    pub exit: Option<ContainerExit>,
}

/// How a container ended, as its `die` event tells it (before the engine
/// has finished handling the exit, which an inspect waits for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    pub code: i64,
    /// RFC 3339, from the event's time.
    pub finished_at: String,
}

/// What happened to a container, as the engine's event stream says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventAction {
    Start,
    Die,
    Oom,
    Destroy,
    /// Anything else (`create`, `kill`, `exec_start: …`, …), as the engine
    /// spelled it.
    Other(String),
}

impl EventAction {
    /// The engine's spelling (`die`, `exec_start: sh -c …`).
    pub fn parse(action: &str) -> Self {
        match action {
            "start" => EventAction::Start,
            "die" => EventAction::Die,
            "oom" => EventAction::Oom,
            "destroy" => EventAction::Destroy,
            other => EventAction::Other(other.to_string()),
        }
    }
}

/// Registry credentials for one pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub server: String,
}

/// Failures of the engine, in the project's terms.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RuntimeError {
    #[error("cannot reach the Docker engine at {endpoint}: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("Docker call {call} timed out after {after:?}")]
    Timeout { call: &'static str, after: Duration },
    #[error("container name {0} is already in use")]
    NameConflict(String),
    #[error("pull of {image} made no progress for {after:?}: cancelled")]
    NoProgress { image: String, after: Duration },
    #[error("command timed out after {0:?}")]
    ExecTimeout(Duration),
    #[error("image {0} not found")]
    ImageNotFound(String),
    #[error("Docker {call} failed: {message}")]
    Engine { call: &'static str, message: String },
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

/// The engine, as podvisor sees it. Implementations must be cheap to share
/// (`Arc<dyn ContainerRuntime>`) and put a timeout on every call.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// The engine's version when it answers.
    async fn version(&self) -> Result<String>;
    /// All containers (running or not) carrying every `key=value` label given.
    async fn list_containers(&self, labels: &[(String, String)]) -> Result<Vec<ContainerSummary>>;
    async fn inspect_container(&self, id: &str) -> Result<Option<ContainerDetails>>;
    /// Creates a container and returns its ID; a taken name is
    /// [`RuntimeError::NameConflict`].
    async fn create_container(&self, spec: &CreateSpec) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    /// SIGTERM (or the image's stop signal), then SIGKILL after `grace`.
    /// Stopping a container that is gone or already stopped is not an error.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    /// Removes a container (forcibly); a missing one is not an error.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// The image's ID and user when it is present locally.
    async fn inspect_image(&self, image: &str) -> Result<Option<ImageInfo>>;
    /// Pulls `image`; a pull that reports no progress for `progress_deadline`
    /// is abandoned with [`RuntimeError::NoProgress`]. How far it is goes to
    /// `progress` as it moves (the newest only: a watch).
    async fn pull_image(
        &self,
        image: &str,
        credentials: Option<&Credentials>,
        progress_deadline: Duration,
        progress: &tokio::sync::watch::Sender<pull_progress::PullProgress>,
    ) -> Result<()>;
    /// Every local image.
    async fn list_images(&self) -> Result<Vec<ImageSummary>>;
    /// Removes an image by name (that one tag) or ID, never forcibly: an
    /// image a container uses is refused ([`RuntimeError::Engine`]); a
    /// missing one is not an error.
    async fn remove_image(&self, image: &str) -> Result<()>;
    /// The image of every container of the engine, podvisor's or not.
    async fn image_uses(&self) -> Result<Vec<ImageUse>>;
    /// The engine's data root (`DockerRootDir`), where its images live.
    async fn data_root(&self) -> Result<String>;
    /// How the engine places containers in cgroups: its cgroup driver
    /// (`cgroupfs` or `systemd`) and the host's cgroup version (1 or 2).
    async fn cgroups(&self) -> Result<Cgroups>;
    /// Runs a command in a running container and waits for it.
    async fn exec(&self, id: &str, req: &ExecRequest) -> Result<ExecOutput>;
    /// Starts an interactive command in a running container and returns
    /// at once with its streams (see [`ExecSession`]). Only the start is a
    /// call with a budget; the session lasts as long as the command.
    async fn exec_attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession>;
    /// Attaches to a running container's main process: its output from now
    /// on and, when `start.stdin` (and the container keeps stdin open), its
    /// stdin. `start.cmd` and `start.env` are not used.
    async fn attach(&self, id: &str, start: &ExecStart) -> Result<ExecSession>;
    /// The last `lines` lines of a container's output (stdout and stderr).
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String>;
    /// A container's output as `opts` asks, in the chunks the engine sends.
    /// Opening it (connecting) is the call; the stream then lasts as long
    /// as the output does: with `follow`, until the container ends, and it
    /// stops reading from the engine as soon as it is dropped.
    async fn logs(&self, id: &str, opts: &LogOptions) -> Result<BoxStream<'static, Result<Bytes>>>;
    /// The engine's container events (start, die, oom, destroy) for containers
    /// carrying `label` (`key=value`). The stream ends when the engine goes away.
    fn events(&self, label: &str) -> BoxStream<'static, Result<RuntimeEvent>>;
    /// The engine's security options as `docker info` lists them
    /// (`name=seccomp,profile=default`, `name=apparmor`, `name=userns`,
    /// `name=selinux`, ...).
    async fn security_options(&self) -> Result<Vec<String>>;
}

/// Splits `repo[:tag]` (keeping registry ports and digests intact) into the
/// repository and tag Docker's pull API wants.
pub fn split_image_ref(image: &str) -> (&str, &str) {
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::split_image_ref;

    #[test]
    fn image_refs_split_on_tag_not_on_registry_port() {
        assert_eq!(split_image_ref("busybox"), ("busybox", "latest"));
        assert_eq!(split_image_ref("busybox:1.36"), ("busybox", "1.36"));
        assert_eq!(
            split_image_ref("127.0.0.1:5555/podvisor/busybox"),
            ("127.0.0.1:5555/podvisor/busybox", "latest")
        );
        assert_eq!(
            split_image_ref("127.0.0.1:5555/podvisor/busybox:1"),
            ("127.0.0.1:5555/podvisor/busybox", "1")
        );
        assert_eq!(split_image_ref("a/b@sha256:ab"), ("a/b", "sha256:ab"));
    }
}
