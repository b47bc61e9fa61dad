//! Lifecycle hook and probe actions: `exec`, `httpGet`, `tcpSocket`.
//!
//! One interface for the postStart/preStop hooks and the probes. Exec goes
//! through the engine ([`crate::runtime::ContainerRuntime::exec`], the
//! `native` handler) or through `nsenter` into the container's namespaces;
//! `httpGet` is a small HTTP/1.1 GET (2xx and 3xx succeed); `tcpSocket` a
//! connect.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, ExecAction, HTTPGetAction, TCPSocketAction};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::{ContainerRuntime, ExecOutput, ExecRequest, RuntimeError};
use crate::settings::ExecHandler;

/// A port an `httpGet` or `tcpSocket` action cannot reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    #[error("invalid port {0}")]
    Invalid(i32),
    #[error("no container port named {0:?}")]
    NoSuchName(String),
}

/// How to reach a container for an action.
#[derive(Debug, Clone)]
pub struct ActionTarget<'a> {
    pub container_id: &'a str,
    /// The host for `httpGet`/`tcpSocket` when the action names none: the
    /// pod IP, or 127.0.0.1 for `hostNetwork` pods.
    pub pod_ip: &'a str,
    /// The container's spec (named ports).
    pub container: &'a Container,
    pub exec_handler: ExecHandler,
}

impl ActionTarget<'_> {
    /// Where an `httpGet` or `tcpSocket` action connects: its `host`, or
    /// the pod's IP, and its port by number or name.
    fn endpoint(&self, host: Option<&str>, port: &IntOrString) -> Result<(String, u16), PortError> {
        let port = resolve_port(port, self.container)?;
        let host = host.filter(|h| !h.is_empty()).unwrap_or(self.pod_ip);
        Ok((host.to_string(), port))
    }
}

/// The verdict of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Success(String),
    Failure(String),
}

impl Verdict {
    pub fn ok(&self) -> bool {
        matches!(self, Verdict::Success(_))
    }

    pub fn message(&self) -> &str {
        match self {
            Verdict::Success(m) | Verdict::Failure(m) => m,
        }
    }
}

/// Resolves a port given by number or by container port name.
pub fn resolve_port(port: &IntOrString, container: &Container) -> Result<u16, PortError> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n)
            .ok()
            .filter(|p| *p > 0)
            .ok_or(PortError::Invalid(*n)),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| PortError::NoSuchName(name.clone()))
        }
    }
}

/// Runs an `exec` action.
pub async fn exec(
    runtime: &dyn ContainerRuntime,
    target: &ActionTarget<'_>,
    action: &ExecAction,
    timeout: Duration,
) -> Verdict {
    let cmd = action.command.clone().unwrap_or_default();
    if cmd.is_empty() {
        return Verdict::Failure("exec: no command".into());
    }
    let result = match target.exec_handler {
        ExecHandler::Native => {
            let req = ExecRequest {
                cmd,
                timeout,
                ..Default::default()
            };
            runtime.exec(target.container_id, &req).await
        }
        ExecHandler::Nsenter => nsenter(runtime, target.container_id, &cmd, timeout).await,
    };
    match result {
        Ok(out) if out.exit_code == 0 => Verdict::Success(out.text()),
        Ok(out) => Verdict::Failure(format!(
            "command {:?} exited with {}: {}",
            action.command.as_deref().unwrap_or_default(),
            out.exit_code,
            out.text().trim_end()
        )),
        Err(e) => Verdict::Failure(format!("exec failed: {e}")),
    }
}

/// The `nsenter` exec handler: enters the container's mount, IPC, UTS,
/// network and PID namespaces through its init process and runs the
/// command with the container's environment (DESIGN.md §4).
pub async fn nsenter(
    runtime: &dyn ContainerRuntime,
    container_id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutput, RuntimeError> {
    let details = runtime
        .inspect_container(container_id)
        .await?
        .ok_or_else(|| RuntimeError::Engine {
            call: "exec",
            message: format!("no such container: {container_id}"),
        })?;
    let pid = details.pid.ok_or_else(|| RuntimeError::Engine {
        call: "exec",
        message: format!("container {container_id} is not running"),
    })?;
    let mut command = tokio::process::Command::new("nsenter");
    command
        .args(["-t", &pid.to_string(), "-m", "-i", "-u", "-n", "-p", "--"])
        .arg("env")
        .arg("-i")
        .arg(format!("HOSTNAME={}", details.hostname))
        .args(&details.env)
        .args(cmd)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    match tokio::time::timeout(timeout, command.output()).await {
        Err(_) => Err(RuntimeError::ExecTimeout(timeout)),
        Ok(Err(e)) => Err(RuntimeError::Engine {
            call: "exec",
            message: format!("nsenter: {e}"),
        }),
        Ok(Ok(out)) => Ok(ExecOutput {
            exit_code: out.status.code().map_or(-1, i64::from),
            stdout: out.stdout,
            stderr: out.stderr,
        }),
    }
}

/// Runs an `httpGet` action: 2xx and 3xx succeed.
pub async fn http_get(
    target: &ActionTarget<'_>,
    action: &HTTPGetAction,
    timeout: Duration,
) -> Verdict {
    let (host, port) = match target.endpoint(action.host.as_deref(), &action.port) {
        Ok(e) => e,
        Err(e) => return Verdict::Failure(e.to_string()),
    };
    if action
        .scheme
        .as_deref()
        .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
    {
        return Verdict::Failure("httpGet: scheme HTTPS is not supported".into());
    }
    let path = action
        .path
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or("/".into());
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    let headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let url = format!("http://{host}:{port}{path}");
    match tokio::time::timeout(timeout, get_status(&host, port, &path, &headers)).await {
        Err(_) => Verdict::Failure(format!("Get {url:?}: timeout after {timeout:?}")),
        Ok(Err(e)) => Verdict::Failure(format!("Get {url:?}: {e}")),
        Ok(Ok((code, body))) if (200..400).contains(&code) => {
            Verdict::Success(format!("HTTP {code}: {body}"))
        }
        Ok(Ok((code, body))) => {
            Verdict::Failure(format!("HTTP probe failed with statuscode: {code}: {body}"))
        }
    }
}

/// One HTTP/1.1 GET; returns the status code and up to 1 KiB of the body.
async fn get_status(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect((host, port)).await?;
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: podvisor\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    // Enough of the answer for the status line and a bit of body.
    while buf.len() < 8192 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&buf);
    let code = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Ok((code, body.chars().take(1024).collect()))
}

/// Runs a `tcpSocket` action: a connect that succeeds.
pub async fn tcp(
    target: &ActionTarget<'_>,
    action: &TCPSocketAction,
    timeout: Duration,
) -> Verdict {
    let (host, port) = match target.endpoint(action.host.as_deref(), &action.port) {
        Ok(e) => e,
        Err(e) => return Verdict::Failure(e.to_string()),
    };
    match tokio::time::timeout(timeout, TcpStream::connect((host.as_str(), port))).await {
        Ok(Ok(_)) => Verdict::Success(String::new()),
        Ok(Err(e)) => Verdict::Failure(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Verdict::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// Runs a lifecycle hook (`exec` or `httpGet`; `sleep` too).
pub async fn run_hook(
    runtime: &dyn ContainerRuntime,
    target: &ActionTarget<'_>,
    hook: &k8s_openapi::api::core::v1::LifecycleHandler,
    timeout: Duration,
) -> Verdict {
    if let Some(e) = &hook.exec {
        return exec(runtime, target, e, timeout).await;
    }
    if let Some(h) = &hook.http_get {
        return http_get(target, h, timeout).await;
    }
    if let Some(s) = &hook.sleep {
        let secs = u64::try_from(s.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return Verdict::Success(String::new());
    }
    if let Some(t) = &hook.tcp_socket {
        return tcp(target, t, timeout).await;
    }
    Verdict::Failure("hook has no action".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};

    fn container() -> Container {
        Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn ports_by_number_or_name() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert!(resolve_port(&IntOrString::String("grpc".into()), &c)
            .unwrap_err()
            .to_string()
            .contains("grpc"));
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
        assert!(resolve_port(&IntOrString::Int(70000), &c).is_err());
    }

    /// A one-shot HTTP server on 127.0.0.1 answering `status`; returns its
    /// port and the request it saw.
    async fn serve_once(status: u16) -> (u16, tokio::task::JoinHandle<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 2048];
            let n = s.read(&mut buf).await.unwrap();
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
            s.write_all(reply.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        (port, seen)
    }

    fn target<'a>(c: &'a Container) -> ActionTarget<'a> {
        ActionTarget {
            container_id: "x",
            pod_ip: "127.0.0.1",
            container: c,
            exec_handler: ExecHandler::Native,
        }
    }

    fn get(port: u16, path: &str) -> HTTPGetAction {
        HTTPGetAction {
            port: IntOrString::Int(i32::from(port)),
            path: Some(path.into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Probe".into(),
                value: "yes".into(),
            }]),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn http_get_succeeds_on_2xx_and_3xx_and_sends_headers() {
        let c = container();
        for code in [200, 204, 302] {
            let (port, seen) = serve_once(code).await;
            let v = http_get(&target(&c), &get(port, "/healthz"), Duration::from_secs(2)).await;
            assert!(v.ok(), "{code}: {v:?}");
            let req = seen.await.unwrap();
            assert!(req.starts_with("GET /healthz HTTP/1.1\r\n"), "{req}");
            assert!(req.contains("X-Probe: yes\r\n"), "{req}");
        }
    }

    #[tokio::test]
    async fn http_get_fails_on_4xx_5xx_and_refused() {
        let c = container();
        for code in [404, 500] {
            let (port, _seen) = serve_once(code).await;
            let v = http_get(&target(&c), &get(port, "/"), Duration::from_secs(2)).await;
            assert!(!v.ok(), "{code}");
            assert!(v.message().contains(&code.to_string()), "{v:?}");
        }
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let v = http_get(&target(&c), &get(port, "/"), Duration::from_secs(2)).await;
        assert!(!v.ok());
    }

    #[tokio::test]
    async fn tcp_connects_or_fails() {
        let c = container();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let action = TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        };
        assert!(tcp(&target(&c), &action, Duration::from_secs(2)).await.ok());
        drop(listener);
        assert!(!tcp(&target(&c), &action, Duration::from_secs(2)).await.ok());
    }
}
