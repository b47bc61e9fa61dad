//! The kubelet v1.1's exec network plugins: `--network-plugin=<name>` runs
//! the executable `<network-plugin-dir>/<name>/<name>` with
//!
//! | call       | arguments                               | when |
//! |------------|-----------------------------------------|------|
//! | `init`     | none                                    | once, at start |
//! | `setup`    | `<namespace> <pod-name> <infra-id>`     | after the infra container started, before any app container |
//! | `status`   | `<namespace> <pod-name> <infra-id>`     | right after each `setup`, and whenever the pod's IP is asked for |
//! | `teardown` | `<namespace> <pod-name> <infra-id>`     | after the app containers died, before the infra container is removed |
//!
//! Exit code 0 is success; any other exit fails the call with the code and
//! the plugin's stderr (its stdout when stderr is empty), trimmed and
//! bounded. `status` prints nothing (podvisor then uses the IP Docker gave
//! the infra container) or
//! `{"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":"10.1.2.3"}`.
//!
//! A name with a vendor prefix is found as the kubelet found it: with
//! `--network-plugin=example.com/net` the executable is
//! `<dir>/example.com~net/net` (`/` in the directory name written `~`, the
//! last path element as the file name); `--network-plugin=example.com~net`
//! names the same file.
//!
//! The infra container keeps Docker's default network
//! ([`NetworkPlugin::infra_network_mode`] is `None`): the plugin changes or
//! adds to it, and Docker publishes the pod's `hostPort`s on it.
//!
//! # What a plugin must do
//!
//! - Be idempotent: `teardown` is also run for an infra container that is
//!   already gone (after a crash, or a second time for the same pod), and
//!   must then succeed; `setup` may come again for a pod whose previous
//!   `setup` failed (normally after a `teardown`, which [`ExecPlugin`] leaves
//!   to its caller).
//! - Finish within the call's timeout ([`CALL_TIMEOUT`](super::CALL_TIMEOUT) by default). The
//!   plugin runs in a process group of its own; at the timeout the whole
//!   group is killed (SIGKILL) and the call fails. A process the plugin
//!   leaves behind after exiting is not killed, but podvisor stops reading
//!   its output [`PIPE_GRACE`] after the plugin exited: a daemon must not
//!   keep the plugin's stdout or stderr.
//!
//! # The plugin's environment
//!
//! Not podvisor's: a clean one, so that nothing of podvisor's own settings
//! (tokens, URL headers, ...) reaches a plugin. Exactly:
//!
//! - `PATH`: podvisor's, or [`DEFAULT_PATH`] when podvisor has none;
//! - `DOCKER_HOST`, when podvisor has it: the engine the pod runs on, for a
//!   plugin that asks Docker for the infra container's pid;
//!
//! Nothing else of podvisor's environment reaches a plugin (a plugin with
//! settings of its own reads them from its directory, as
//! `tests/plugins/record-veth` does).
//!
//! stdin is `/dev/null`; the working directory is podvisor's.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::{NetworkError, NetworkPlugin, PodNetwork, Wired};

/// `PATH` of a plugin when podvisor itself has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long output is still read after the plugin exited, for a child it
/// left behind holding its stdout or stderr.
pub const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How much of stdout and of stderr is kept; the rest is read and dropped.
const KEEP_BYTES: usize = 64 * 1024;

/// How much of a plugin's stderr (or stdout) an error message quotes.
const QUOTE_CHARS: usize = 1024;

/// How often a spawn is tried again when the executable is busy being
/// written (ETXTBSY: another thread forked while the file was open for
/// writing; it passes at once).
const BUSY_RETRIES: u32 = 10;

/// An exec network plugin: see the module's documentation.
#[derive(Debug, Clone)]
pub struct ExecPlugin {
    /// `--network-plugin`'s value, as given.
    name: String,
    exe: PathBuf,
    timeout: Duration,
}

/// What `status` prints when it says anything.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodNetworkStatus {
    api_version: Option<String>,
    kind: Option<String>,
    ip: Option<String>,
}

/// A finished call's output, each stream cut to [`KEEP_BYTES`].
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl ExecPlugin {
    /// Finds the executable of the plugin `name` under `dir` (the
    /// `--network-plugin-dir`); every call gets `timeout`. Checks that it
    /// is a regular file (symbolic links followed) with an execute bit;
    /// runs nothing. Reads the file system: call it at start, not on an
    /// actor's thread.
    pub fn find(dir: &Path, name: &str, timeout: Duration) -> Result<ExecPlugin, NetworkError> {
        let config = |message: String| NetworkError::Config {
            plugin: name.to_string(),
            message,
        };
        let exe = executable_path(dir, name).map_err(config)?;
        match std::fs::metadata(&exe) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(config(format!(
                "no executable {} (an exec plugin is <network-plugin-dir>/<name>/<name>, \
                 or <dir>/<vendor>~<name>/<name> for <vendor>/<name>)",
                exe.display()
            ))),
            Err(e) => Err(config(format!("cannot read {}: {e}", exe.display()))),
            Ok(m) if !m.is_file() => {
                Err(config(format!("{} is not a regular file", exe.display())))
            }
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(config(format!(
                "{} is not executable (mode {:o})",
                exe.display(),
                m.permissions().mode() & 0o7777
            ))),
            Ok(_) => Ok(ExecPlugin {
                name: name.to_string(),
                exe,
                timeout,
            }),
        }
    }

    /// The executable that is run.
    pub fn executable(&self) -> &Path {
        &self.exe
    }

    /// Each call's timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn failed(&self, call: &'static str, message: String) -> NetworkError {
        NetworkError::Failed {
            plugin: self.name.clone(),
            call,
            message,
        }
    }

    /// The environment of [`ExecPlugin`]'s children, from podvisor's
    /// (`vars`): see the module's documentation.
    fn environment(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
        let mut path = None;
        let mut env = Vec::new();
        for (k, v) in vars {
            if k == "PATH" {
                path = Some(v);
            } else if k == "DOCKER_HOST" {
                env.push((k, v));
            }
        }
        env.push((
            "PATH".to_string(),
            path.unwrap_or_else(|| DEFAULT_PATH.to_string()),
        ));
        env.sort();
        env
    }

    async fn spawn(&self, call: &'static str, args: &[&str]) -> Result<Child, NetworkError> {
        // Variables that are not valid UTF-8 are not passed (none of the
        // passed ones is expected to be).
        let env = Self::environment(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        );
        let mut tries = 0;
        loop {
            let mut cmd = Command::new(&self.exe);
            cmd.arg(call)
                .args(args)
                .env_clear()
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // Its own process group, so that a timeout kills what it
                // started too.
                .process_group(0)
                .kill_on_drop(true);
            match cmd.spawn() {
                Ok(child) => return Ok(child),
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < BUSY_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    return Err(
                        self.failed(call, format!("could not run {}: {e}", self.exe.display()))
                    )
                }
            }
        }
    }

    /// Runs `<exe> <call> <args...>` under the timeout; any exit status is
    /// returned, a timeout (the group killed) or a spawn failure is an error.
    async fn run(&self, call: &'static str, args: &[&str]) -> Result<Output, NetworkError> {
        let started = Instant::now();
        let deadline = started + self.timeout;
        let child = self.spawn(call, args).await?;
        let mut running = Running::new(child);
        let mut stdout = Capture::new(running.child.stdout.take());
        let mut stderr = Capture::new(running.child.stderr.take());
        let mut status: Option<ExitStatus> = None;
        let mut read_until = deadline;
        let status = loop {
            if let Some(s) = status.filter(|_| stdout.done() && stderr.done()) {
                break s;
            }
            tokio::select! {
                r = stdout.read_some() => {
                    if let Err(e) = r {
                        return Err(self.failed(call, format!("reading its stdout: {e}")));
                    }
                }
                r = stderr.read_some() => {
                    if let Err(e) = r {
                        return Err(self.failed(call, format!("reading its stderr: {e}")));
                    }
                }
                s = running.child.wait(), if status.is_none() => {
                    let s = s.map_err(|e| self.failed(call, format!("waiting for it: {e}")))?;
                    // Reaped: its pid (the group's id) may be reused from
                    // now on, so the group is no longer ours to kill.
                    running.disarm();
                    status = Some(s);
                    read_until = deadline.min(Instant::now() + PIPE_GRACE);
                }
                _ = tokio::time::sleep_until(read_until) => {
                    if let Some(s) = status {
                        // Exited; something it left behind holds a pipe.
                        tracing::debug!(
                            plugin = %self.name, call,
                            "the plugin exited but its output is still open; not read further"
                        );
                        break s;
                    }
                    running.kill_group().await;
                    return Err(NetworkError::Timeout {
                        plugin: self.name.clone(),
                        call,
                        after: self.timeout,
                    });
                }
            }
        };
        tracing::debug!(
            plugin = %self.name, call, ?args, %status,
            took = ?started.elapsed(), "network plugin call"
        );
        Ok(Output {
            status,
            stdout: stdout.kept,
            stderr: stderr.kept,
        })
    }

    /// [`run`](Self::run), failing on a non-zero exit.
    async fn call(&self, call: &'static str, args: &[&str]) -> Result<Output, NetworkError> {
        let out = self.run(call, args).await?;
        if out.status.success() {
            return Ok(out);
        }
        let how = match (out.status.code(), signal_of(&out.status)) {
            (Some(code), _) => format!("exited with code {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => format!("ended with {}", out.status),
        };
        let said = if !String::from_utf8_lossy(&out.stderr).trim().is_empty() {
            quote(&out.stderr)
        } else {
            quote(&out.stdout)
        };
        let message = if said.is_empty() {
            format!("{how} (no output)")
        } else {
            format!("{how}: {said}")
        };
        Err(self.failed(call, message))
    }

    /// `status`'s stdout → the pod's IPs (none: Docker's).
    fn parse_status(&self, stdout: &[u8]) -> Result<Vec<IpAddr>, NetworkError> {
        let text = String::from_utf8_lossy(stdout);
        let text = text.trim();
        if text.is_empty() {
            return Ok(Vec::new());
        }
        let bad = |why: String| {
            self.failed(
                "status",
                format!("{why}; it printed: {}", quote(text.as_bytes())),
            )
        };
        let status: PodNetworkStatus = serde_json::from_str(text).map_err(|e| {
            bad(format!(
                "its output is not a PodNetworkStatus \
                 ({{\"apiVersion\":\"v1beta1\",\"kind\":\"PodNetworkStatus\",\"ip\":\"...\"}}): {e}"
            ))
        })?;
        if status.kind.as_deref() != Some("PodNetworkStatus") {
            return Err(bad(format!(
                "kind is {:?}, not \"PodNetworkStatus\"",
                status.kind.unwrap_or_default()
            )));
        }
        if status.api_version.as_deref() != Some("v1beta1") {
            return Err(bad(format!(
                "apiVersion is {:?}, not \"v1beta1\"",
                status.api_version.unwrap_or_default()
            )));
        }
        match status.ip.as_deref().map(str::trim) {
            None | Some("") => Ok(Vec::new()),
            Some(ip) => ip
                .parse::<IpAddr>()
                .map(|ip| vec![ip])
                .map_err(|_| bad(format!("ip {ip:?} is not an IP address"))),
        }
    }

    fn pod_args(pod: &PodNetwork) -> [&str; 3] {
        [&pod.namespace, &pod.name, &pod.infra_id]
    }
}

#[async_trait]
impl NetworkPlugin for ExecPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn infra_network_mode(&self) -> Option<&'static str> {
        None
    }

    fn serves_host_ports(&self) -> bool {
        true
    }

    async fn init(&self) -> Result<(), NetworkError> {
        self.call("init", &[]).await.map(|_| ())
    }

    /// `setup`, then `status`, so that the pod's IP is known at once.
    async fn setup(&self, pod: &PodNetwork) -> Result<Wired, NetworkError> {
        self.call("setup", &Self::pod_args(pod)).await?;
        self.status(pod).await
    }

    async fn status(&self, pod: &PodNetwork) -> Result<Wired, NetworkError> {
        let out = self.call("status", &Self::pod_args(pod)).await?;
        Ok(Wired {
            ips: self.parse_status(&out.stdout)?,
            record: serde_json::json!({ "plugin": self.name }),
        })
    }

    async fn check(&self, pod: &PodNetwork) -> Result<(), NetworkError> {
        self.status(pod).await.map(|_| ())
    }

    /// Run whether or not the infra container still exists (`pod.netns`
    /// is not looked at): the plugin decides, and must be idempotent.
    async fn teardown(&self, pod: &PodNetwork) -> Result<(), NetworkError> {
        self.call("teardown", &Self::pod_args(pod))
            .await
            .map(|_| ())
    }
}

/// `<dir>/<name>/<name>`, or `<dir>/<a>~<b>/<b>` for `a/b` (or `a~b`).
fn executable_path(dir: &Path, name: &str) -> Result<PathBuf, String> {
    let unescaped = name.replace('~', "/");
    let parts: Vec<&str> = unescaped.split('/').collect();
    if name.is_empty() {
        return Err("the plugin name is empty".to_string());
    }
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.contains('\0'))
    {
        return Err(format!(
            "{name:?} is not a plugin name (a name, or <vendor>/<name>, \
             without empty, `.` or `..` elements)"
        ));
    }
    let file = parts[parts.len() - 1];
    Ok(dir.join(unescaped.replace('/', "~")).join(file))
}

/// A spawned plugin whose process group is killed when it is dropped (a
/// call abandoned by its caller) until the plugin has been reaped.
struct Running {
    child: Child,
    /// The group's id (the plugin's pid, `process_group(0)`), while the
    /// plugin is not reaped.
    pgid: Option<libc::pid_t>,
}

impl Running {
    fn new(child: Child) -> Running {
        let pgid = child.id().and_then(|id| libc::pid_t::try_from(id).ok());
        Running { child, pgid }
    }

    fn disarm(&mut self) {
        self.pgid = None;
    }

    fn signal_group(&self) {
        if let Some(pgid) = self.pgid {
            // SAFETY: kill has no memory effects; the group is the
            // unreaped plugin's, so the id cannot have been reused.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }

    /// SIGKILL to the whole group, then reaps the plugin.
    async fn kill_group(&mut self) {
        self.signal_group();
        let _ = self.child.start_kill();
        // SIGKILL ends it; bounded in case it is stuck in the kernel.
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        self.disarm();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Before `child` is dropped (and reaped by tokio in the
        // background): the group id is still the plugin's.
        self.signal_group();
    }
}

/// One output stream: its first [`KEEP_BYTES`] kept, the rest drained.
struct Capture<R> {
    pipe: Option<R>,
    kept: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Capture<R> {
    fn new(pipe: Option<R>) -> Self {
        Capture {
            pipe,
            kept: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.pipe.is_none()
    }

    /// Reads what is there (pending forever once at end of file, so that a
    /// `select!` arm on it never fires again). Cancel-safe.
    async fn read_some(&mut self) -> io::Result<()> {
        let Some(pipe) = self.pipe.as_mut() else {
            return std::future::pending().await;
        };
        let mut buf = [0u8; 8192];
        let n = pipe.read(&mut buf).await?;
        if n == 0 {
            self.pipe = None;
        } else {
            let room = KEEP_BYTES.saturating_sub(self.kept.len());
            self.kept.extend_from_slice(&buf[..n.min(room)]);
        }
        Ok(())
    }
}

fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// Output for an error message: trimmed, at most [`QUOTE_CHARS`]
/// characters, `...` when cut.
fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    let mut out: String = text.chars().take(QUOTE_CHARS).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::future::Future;

    use super::*;

    /// No test waits on a plugin longer than this.
    const LIMIT: Duration = Duration::from_secs(20);
    /// A timeout the tests never reach, distinct from the others.
    const CALL_TIMEOUT_FOR_TESTS: Duration = Duration::from_secs(7);

    async fn within<T>(f: impl Future<Output = T>) -> T {
        tokio::time::timeout(LIMIT, f)
            .await
            .expect("the test did not finish in time")
    }

    /// Writes an executable `#!/bin/sh` script at `<dir>/<sub>/<file>`.
    fn script(dir: &Path, sub: &str, file: &str, body: &str) -> PathBuf {
        let path = dir.join(sub).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// A plugin `net` in a fresh tempdir whose body is `body`; `$LOG`
    /// in the body is a file of the tempdir.
    fn fake(body: &str, timeout: Duration) -> (tempfile::TempDir, ExecPlugin) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls.log");
        let body = format!("LOG='{}'\n{body}", log.display());
        script(dir.path(), "net", "net", &body);
        let plugin = ExecPlugin::find(dir.path(), "net", timeout).unwrap();
        (dir, plugin)
    }

    fn pod() -> PodNetwork {
        PodNetwork {
            namespace: "ns1".into(),
            name: "web".into(),
            uid: "u-1".into(),
            infra_id: "0123456789abcdef".into(),
            netns: Some("/proc/1/ns/net".into()),
            ..Default::default()
        }
    }

    fn config_message(e: NetworkError) -> String {
        match e {
            NetworkError::Config { message, .. } => message,
            other => panic!("want a Config error, got {other:?}"),
        }
    }

    fn failed(e: NetworkError) -> (String, &'static str, String) {
        match e {
            NetworkError::Failed {
                plugin,
                call,
                message,
            } => (plugin, call, message),
            other => panic!("want a Failed error, got {other:?}"),
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    // --- finding the executable ---------------------------------------------

    #[test]
    fn a_plain_name_is_dir_name_name() {
        let dir = tempfile::tempdir().unwrap();
        let exe = script(dir.path(), "net", "net", "exit 0");
        let p = ExecPlugin::find(dir.path(), "net", CALL_TIMEOUT_FOR_TESTS).unwrap();
        assert_eq!(p.executable(), exe);
        assert_eq!(p.name(), "net");
        assert_eq!(p.timeout(), CALL_TIMEOUT_FOR_TESTS);
        assert_eq!(p.infra_network_mode(), None);
        assert!(p.serves_host_ports());
    }

    #[test]
    fn a_vendored_name_is_found_under_vendor_tilde_name() {
        let dir = tempfile::tempdir().unwrap();
        let exe = script(dir.path(), "example.com~net", "net", "exit 0");
        for name in ["example.com/net", "example.com~net"] {
            let p = ExecPlugin::find(dir.path(), name, CALL_TIMEOUT_FOR_TESTS).unwrap();
            assert_eq!(p.executable(), exe, "{name}");
            assert_eq!(p.name(), name);
        }
        // Deeper vendor paths too: a/b/c → a~b~c/c.
        let deep = script(dir.path(), "a~b~c", "c", "exit 0");
        let p = ExecPlugin::find(dir.path(), "a/b/c", CALL_TIMEOUT_FOR_TESTS).unwrap();
        assert_eq!(p.executable(), deep);
    }

    #[test]
    fn a_missing_plugin_is_a_config_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e =
            ExecPlugin::find(dir.path(), "example.com/net", CALL_TIMEOUT_FOR_TESTS).unwrap_err();
        assert!(
            e.to_string().contains("network plugin example.com/net"),
            "{e}"
        );
        let msg = config_message(e);
        let want = dir.path().join("example.com~net").join("net");
        assert!(msg.contains(&want.display().to_string()), "{msg}");

        // The directory there, the file not: still names the file.
        std::fs::create_dir_all(dir.path().join("net")).unwrap();
        let msg = config_message(
            ExecPlugin::find(dir.path(), "net", CALL_TIMEOUT_FOR_TESTS).unwrap_err(),
        );
        assert!(
            msg.contains(&dir.path().join("net/net").display().to_string()),
            "{msg}"
        );
    }

    #[test]
    fn a_directory_or_a_file_without_execute_bit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("d/d")).unwrap();
        let msg =
            config_message(ExecPlugin::find(dir.path(), "d", CALL_TIMEOUT_FOR_TESTS).unwrap_err());
        assert!(msg.contains("not a regular file"), "{msg}");
        assert!(
            msg.contains(&dir.path().join("d/d").display().to_string()),
            "{msg}"
        );

        let exe = script(dir.path(), "x", "x", "exit 0");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o644)).unwrap();
        let msg =
            config_message(ExecPlugin::find(dir.path(), "x", CALL_TIMEOUT_FOR_TESTS).unwrap_err());
        assert!(msg.contains("not executable"), "{msg}");
        assert!(msg.contains(&exe.display().to_string()), "{msg}");
    }

    #[test]
    fn names_that_would_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["", "..", "../net", "a//b", "a/", "/net", "a/./b", "~net"] {
            let e = ExecPlugin::find(dir.path(), name, CALL_TIMEOUT_FOR_TESTS).unwrap_err();
            assert!(matches!(e, NetworkError::Config { .. }), "{name:?}: {e:?}");
        }
    }

    // --- the calls ------------------------------------------------------------

    #[tokio::test]
    async fn each_call_gets_the_kubelet_arguments() {
        let (dir, p) = fake(r#"echo "$*" >> "$LOG""#, LIMIT);
        let log = dir.path().join("calls.log");
        let pod = pod();
        within(p.init()).await.unwrap();
        let wired = within(p.setup(&pod)).await.unwrap();
        within(p.status(&pod)).await.unwrap();
        within(p.check(&pod)).await.unwrap();
        within(p.teardown(&pod)).await.unwrap();
        assert_eq!(
            read(&log),
            "init\n\
             setup ns1 web 0123456789abcdef\n\
             status ns1 web 0123456789abcdef\n\
             status ns1 web 0123456789abcdef\n\
             status ns1 web 0123456789abcdef\n\
             teardown ns1 web 0123456789abcdef\n"
        );
        assert_eq!(wired.ips, Vec::<IpAddr>::new());
        assert_eq!(wired.record, serde_json::json!({"plugin": "net"}));
    }

    #[tokio::test]
    async fn teardown_runs_for_an_infra_container_already_gone() {
        let (dir, p) = fake(r#"echo "$*" >> "$LOG""#, LIMIT);
        let gone = PodNetwork {
            netns: None,
            record: None,
            ..pod()
        };
        within(p.teardown(&gone)).await.unwrap();
        within(p.teardown(&gone)).await.unwrap();
        assert_eq!(
            read(&dir.path().join("calls.log")),
            "teardown ns1 web 0123456789abcdef\nteardown ns1 web 0123456789abcdef\n"
        );
    }

    #[tokio::test]
    async fn setup_returns_the_ip_status_prints() {
        let (_dir, p) = fake(
            r#"[ "$1" = status ] && echo '{"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":"10.1.2.3"}'
exit 0"#,
            LIMIT,
        );
        let wired = within(p.setup(&pod())).await.unwrap();
        assert_eq!(wired.ips, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        assert_eq!(wired.record, serde_json::json!({"plugin": "net"}));
        let status = within(p.status(&pod())).await.unwrap();
        assert_eq!(status.ips, wired.ips);
    }

    #[tokio::test]
    async fn status_takes_ipv6_and_extra_fields_and_whitespace() {
        let (_dir, p) = fake(
            r#"printf '\n  {"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":" fd00::5 ","extra":1}\n\n'"#,
            LIMIT,
        );
        let wired = within(p.status(&pod())).await.unwrap();
        assert_eq!(wired.ips, vec!["fd00::5".parse::<IpAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn empty_status_or_no_ip_means_dockers_ip() {
        for body in [
            "exit 0",
            "echo; echo '   '",
            r#"echo '{"apiVersion":"v1beta1","kind":"PodNetworkStatus"}'"#,
            r#"echo '{"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":""}'"#,
        ] {
            let (_dir, p) = fake(body, LIMIT);
            let wired = within(p.status(&pod())).await.unwrap();
            assert!(wired.ips.is_empty(), "{body}: {wired:?}");
            within(p.check(&pod())).await.unwrap();
        }
    }

    #[tokio::test]
    async fn garbage_status_fails_naming_the_plugin_and_quoting_the_output() {
        let (_dir, p) = fake("echo 'hello, I am not JSON'", LIMIT);
        let e = within(p.status(&pod())).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("network plugin net: status failed"),
            "{e}"
        );
        let (plugin, call, msg) = failed(e);
        assert_eq!((plugin.as_str(), call), ("net", "status"));
        assert!(msg.contains("hello, I am not JSON"), "{msg}");
        assert!(msg.contains("PodNetworkStatus"), "{msg}");
        // setup and check fail the same way.
        assert!(within(p.check(&pod())).await.is_err());
        let (_, call, _) = failed(within(p.setup(&pod())).await.unwrap_err());
        assert_eq!(call, "status");
    }

    #[tokio::test]
    async fn huge_garbage_is_quoted_only_in_part() {
        // 1 MB of 'x' without a newline: read to the end, quoted in part.
        let (_dir, p) = fake("head -c 1048576 /dev/zero | tr '\\0' x", LIMIT);
        let (_, _, msg) = failed(within(p.status(&pod())).await.unwrap_err());
        assert!(msg.contains("xxxx..."), "{}", &msg[..200.min(msg.len())]);
        assert!(msg.len() < QUOTE_CHARS + 400, "{} bytes", msg.len());
    }

    #[tokio::test]
    async fn a_bad_ip_or_a_wrong_kind_or_version_fails() {
        for (body, want) in [
            (
                r#"echo '{"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":"10.1.2.300"}'"#,
                "\"10.1.2.300\" is not an IP address",
            ),
            (
                r#"echo '{"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":7}'"#,
                "not a PodNetworkStatus",
            ),
            (
                r#"echo '{"apiVersion":"v1beta1","kind":"Pod","ip":"10.1.2.3"}'"#,
                "kind is \"Pod\"",
            ),
            (
                r#"echo '{"apiVersion":"v2","kind":"PodNetworkStatus","ip":"10.1.2.3"}'"#,
                "apiVersion is \"v2\"",
            ),
            (r#"echo '["10.1.2.3"]'"#, "not a PodNetworkStatus"),
        ] {
            let (_dir, p) = fake(body, LIMIT);
            let (plugin, call, msg) = failed(within(p.status(&pod())).await.unwrap_err());
            assert_eq!((plugin.as_str(), call), ("net", "status"));
            assert!(msg.contains(want), "{body}: {msg}");
        }
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_with_the_code_and_the_stderr() {
        let (_dir, p) = fake(
            "echo 'some stdout'; echo '  no bridge cbr0 here  ' >&2; echo 'second line' >&2; exit 3",
            LIMIT,
        );
        for (call, result) in [
            ("init", within(p.init()).await.map(|_| ())),
            ("setup", within(p.setup(&pod())).await.map(|_| ())),
            ("teardown", within(p.teardown(&pod())).await),
            ("status", within(p.check(&pod())).await),
        ] {
            let e = result.unwrap_err();
            let text = e.to_string();
            let (plugin, got_call, msg) = failed(e);
            assert_eq!((plugin.as_str(), got_call), ("net", call));
            assert_eq!(
                msg, "exited with code 3: no bridge cbr0 here  \nsecond line",
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_failure_without_stderr_quotes_stdout_or_says_there_was_none() {
        let (_dir, p) = fake("echo 'only on stdout'; exit 1", LIMIT);
        let (_, _, msg) = failed(within(p.init()).await.unwrap_err());
        assert_eq!(msg, "exited with code 1: only on stdout");

        let (_dir, p) = fake("exit 42", LIMIT);
        let (_, _, msg) = failed(within(p.init()).await.unwrap_err());
        assert_eq!(msg, "exited with code 42 (no output)");

        let (_dir, p) = fake("kill -TERM $$", LIMIT);
        let (_, _, msg) = failed(within(p.init()).await.unwrap_err());
        assert!(msg.starts_with("killed by signal 15"), "{msg}");
    }

    #[tokio::test]
    async fn a_huge_stderr_is_read_to_the_end_and_quoted_in_part() {
        let (_dir, p) = fake("head -c 4000000 /dev/zero | tr '\\0' e >&2; exit 1", LIMIT);
        let (_, _, msg) = failed(within(p.init()).await.unwrap_err());
        assert!(
            msg.starts_with("exited with code 1: eeee"),
            "{}",
            &msg[..100]
        );
        assert!(msg.ends_with("e..."), "{}", &msg[msg.len() - 20..]);
        assert!(msg.len() < QUOTE_CHARS + 100, "{} bytes", msg.len());
    }

    #[tokio::test]
    async fn a_plugin_that_vanished_fails_the_call_naming_its_path() {
        let (dir, p) = fake("exit 0", LIMIT);
        std::fs::remove_file(dir.path().join("net/net")).unwrap();
        let (plugin, call, msg) = failed(within(p.init()).await.unwrap_err());
        assert_eq!((plugin.as_str(), call), ("net", "init"));
        assert!(msg.contains("could not run"), "{msg}");
        assert!(
            msg.contains(&dir.path().join("net/net").display().to_string()),
            "{msg}"
        );
    }

    // --- timeouts and leftovers -----------------------------------------------

    fn pid_in(path: &Path) -> Option<i32> {
        read(path).trim().parse().ok()
    }

    /// Whether `pid` is a live process (not gone, not a zombie).
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => false,
            // "pid (comm) S ...": the state follows the last ')'.
            Ok(stat) => !matches!(
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().chars().next()),
                Some(Some('Z' | 'X'))
            ),
        }
    }

    async fn until(what: &str, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < LIMIT, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_hanging_plugin_is_killed_with_its_children_at_the_timeout() {
        let timeout = Duration::from_millis(700);
        let (dir, p) = fake(
            r#"sleep 100 &
echo $! > "$LOG.child"
echo $$ > "$LOG.self"
sleep 100"#,
            timeout,
        );
        let started = Instant::now();
        let e = within(p.setup(&pod())).await.unwrap_err();
        let took = started.elapsed();
        assert_eq!(
            e,
            NetworkError::Timeout {
                plugin: "net".into(),
                call: "setup",
                after: timeout
            }
        );
        assert!(
            e.to_string()
                .contains("network plugin net: setup did not finish"),
            "{e}"
        );
        assert!(
            took >= timeout && took < timeout + Duration::from_secs(5),
            "{took:?}"
        );
        let log = dir.path().join("calls.log");
        let child = pid_in(&log.with_extension("log.child")).expect("the plugin's child pid");
        let me = pid_in(&log.with_extension("log.self")).expect("the plugin's pid");
        until("the plugin and its child are gone", || {
            !alive(child) && !alive(me)
        })
        .await;
    }

    #[tokio::test]
    async fn a_plugin_ignoring_sigterm_is_still_killed() {
        let timeout = Duration::from_millis(500);
        let (_dir, p) = fake("trap '' TERM INT HUP; while :; do sleep 1; done", timeout);
        let e = within(p.teardown(&pod())).await.unwrap_err();
        assert!(
            matches!(
                e,
                NetworkError::Timeout {
                    call: "teardown",
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn an_abandoned_call_kills_the_plugins_group() {
        let (dir, p) = fake(
            r#"sleep 100 &
echo $! > "$LOG.child"
sleep 100"#,
            LIMIT,
        );
        let child_file = dir.path().join("calls.log.child");
        // Boxed, so that dropping it drops the call itself.
        let mut call = Box::pin(p.init());
        // Poll the call until the plugin has started its child, then drop it.
        let started = Instant::now();
        loop {
            tokio::select! {
                r = &mut call => panic!("the call ended: {r:?}"),
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
            if pid_in(&child_file).is_some() {
                break;
            }
            assert!(
                started.elapsed() < LIMIT,
                "the plugin never started its child"
            );
        }
        let child = pid_in(&child_file).unwrap();
        assert!(alive(child));
        drop(call);
        until("the abandoned plugin's child is gone", || !alive(child)).await;
    }

    #[tokio::test]
    async fn a_child_left_holding_stdout_does_not_hold_the_call() {
        // The plugin exits at once; its child keeps stdout open for 100 s.
        let (dir, p) = fake(
            r#"sleep 100 &
echo $! > "$LOG.child"
echo '{"apiVersion":"v1beta1","kind":"PodNetworkStatus","ip":"10.9.8.7"}'"#,
            LIMIT,
        );
        let started = Instant::now();
        let wired = within(p.status(&pod())).await.unwrap();
        assert_eq!(wired.ips, vec!["10.9.8.7".parse::<IpAddr>().unwrap()]);
        assert!(started.elapsed() < PIPE_GRACE + Duration::from_secs(3));
        // Not killed: it was left behind on purpose (the plugin exited).
        let child = pid_in(&dir.path().join("calls.log.child")).unwrap();
        assert!(alive(child), "a process the plugin left behind was killed");
        // SAFETY: kill has no memory effects; this is our test's sleep.
        unsafe {
            libc::kill(child, libc::SIGKILL);
        }
    }

    // --- environment and stdin ------------------------------------------------

    #[test]
    fn the_environment_keeps_path_and_docker_host_only() {
        let vars = [
            ("PATH", "/opt/bin:/usr/bin"),
            ("DOCKER_HOST", "unix:///run/d.sock"),
            ("HOME", "/root"),
            (
                "PODVISOR_MANIFEST_URL_HEADER",
                "Authorization: Bearer secret",
            ),
            ("PODVISOR_TEST_PLUGIN_SUBNET", "10.123.45"),
            ("PODVISOR_TEST_PLUGIN_LOG", "/tmp/x.log"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ];
        let env = ExecPlugin::environment(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let want: Vec<(String, String)> = [
            ("DOCKER_HOST", "unix:///run/d.sock"),
            ("PATH", "/opt/bin:/usr/bin"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(env, want);

        let env = ExecPlugin::environment(std::iter::empty());
        assert_eq!(env, vec![("PATH".to_string(), DEFAULT_PATH.to_string())]);
    }

    #[tokio::test]
    async fn the_plugin_runs_with_the_clean_environment_and_no_stdin() {
        // `env` of the child; `cat` must see end of file at once.
        let (dir, p) = fake(r#"env > "$LOG.env"; cat > "$LOG.stdin""#, LIMIT);
        within(p.init()).await.unwrap();
        let env = read(&dir.path().join("calls.log.env"));
        let names: BTreeSet<&str> = env
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        // What sh itself adds: PWD (and, for some shells, SHLVL, _).
        let allowed =
            |k: &str| matches!(k, "PATH" | "DOCKER_HOST" | "PWD" | "SHLVL" | "_" | "OLDPWD");
        assert!(names.contains("PATH"), "{env}");
        assert!(
            names.iter().all(|k| allowed(k)),
            "unexpected variables: {env}"
        );
        assert_eq!(read(&dir.path().join("calls.log.stdin")), "");
    }
}
