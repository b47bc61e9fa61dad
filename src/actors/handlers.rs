//! Lifecycle hook and probe actions: `exec`, `httpGet`, `tcpSocket`.
//!
//! One interface for the postStart/preStop hooks and the probes. Exec goes
//! through the engine ([`crate::runtime::ContainerRuntime::exec`], the
//! `native` handler) or through `nsenter` into the container's namespaces;
//! `httpGet` is a small HTTP/1.1 GET, over TLS without certificate
//! verification for `scheme: HTTPS` (200–399 succeed, redirects to the
//! same host followed); `tcpSocket` a connect. The `grpc` probe is in
//! [`super::grpc_health`].

use std::sync::Arc;
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

/// The `User-Agent` of probes and hooks, as the kubelet sends it
/// (`kube-probe/<major>.<minor>`); a header of the action replaces it.
pub fn user_agent() -> String {
    format!("kube-probe/1.{}", crate::api::node::KUBE_MINOR)
}

/// How many redirects to the same host an `httpGet` follows.
const MAX_REDIRECTS: usize = 10;
/// How much of a response body is read (the kubelet's limit).
const MAX_BODY: usize = 10 * 1024;

/// Where one GET goes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    https: bool,
    host: String,
    port: u16,
    /// Path and query, starting with `/`.
    path: String,
}

impl Url {
    fn authority(&self) -> String {
        match self.host.contains(':') {
            true => format!("[{}]:{}", self.host, self.port),
            false => format!("{}:{}", self.host, self.port),
        }
    }

    fn text(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// Where a `Location` header points from here (absolute or relative).
    fn join(&self, location: &str) -> Option<Url> {
        let location = location.trim();
        let absolute = |https: bool, rest: &str| {
            let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
            let default = if https { 443 } else { 80 };
            let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
                let (h, after) = v6.split_once(']')?;
                let port = after.strip_prefix(':').map(str::parse).transpose().ok()?;
                (h.to_string(), port.unwrap_or(default))
            } else {
                match authority.rsplit_once(':') {
                    Some((h, p)) => (h.to_string(), p.parse().ok()?),
                    None => (authority.to_string(), default),
                }
            };
            let path = match path {
                "" => "/".to_string(),
                p if p.starts_with('?') => format!("/{p}"),
                p => p.to_string(),
            };
            (!host.is_empty()).then_some(Url {
                https,
                host,
                port,
                path,
            })
        };
        let lower = location.to_ascii_lowercase();
        if lower.starts_with("http://") {
            return absolute(false, &location[7..]);
        }
        if lower.starts_with("https://") {
            return absolute(true, &location[8..]);
        }
        if let Some(rest) = location.strip_prefix("//") {
            return absolute(self.https, rest);
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            // Relative to the current path's directory.
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..=base.rfind('/').unwrap_or(0)];
            format!("{dir}{location}")
        };
        Some(Url {
            path,
            ..self.clone()
        })
    }
}

/// One response: status, `Location`, and the start of the body.
struct Response {
    code: u16,
    location: Option<String>,
    body: String,
}

/// Runs an `httpGet` action as the kubelet does: `http` or `https` (TLS
/// without certificate verification), the action's headers (a `Host`
/// header sets the host asked for), `User-Agent: kube-probe/1.N` and
/// `Accept: */*` unless given; redirects to the same host are followed (at
/// most 10), a redirect elsewhere ends the probe as a success with a
/// warning; 200–399 succeed, and the body only goes into the message.
pub async fn http_get(
    target: &ActionTarget<'_>,
    action: &HTTPGetAction,
    timeout: Duration,
) -> Verdict {
    let (host, port) = match target.endpoint(action.host.as_deref(), &action.port) {
        Ok(e) => e,
        Err(e) => return Verdict::Failure(e.to_string()),
    };
    let https = match action.scheme.as_deref().unwrap_or("HTTP") {
        s if s.eq_ignore_ascii_case("HTTP") || s.is_empty() => false,
        s if s.eq_ignore_ascii_case("HTTPS") => true,
        other => return Verdict::Failure(format!("httpGet: unsupported scheme {other:?}")),
    };
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
    let first = Url {
        https,
        host,
        port,
        path,
    };
    let headers: Vec<(String, String)> = action
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let shown = first.text();
    match tokio::time::timeout(timeout, follow(first, &headers)).await {
        Err(_) => Verdict::Failure(format!(
            "Get {shown:?}: context deadline exceeded (timeout {timeout:?})"
        )),
        Ok(Err(e)) => Verdict::Failure(format!("Get {shown:?}: {e}")),
        Ok(Ok(r)) if (200..300).contains(&r.code) => {
            Verdict::Success(format!("HTTP {}: {}", r.code, r.body))
        }
        Ok(Ok(r)) if (300..400).contains(&r.code) => Verdict::Success(format!(
            "Probe terminated redirects, Response body: {}",
            r.body
        )),
        Ok(Ok(r)) => Verdict::Failure(format!(
            "HTTP probe failed with statuscode: {}: {}",
            r.code, r.body
        )),
    }
}

/// GETs `url`, following redirects to the same host name.
async fn follow(first: Url, headers: &[(String, String)]) -> std::io::Result<Response> {
    let mut url = first.clone();
    let mut host_header = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone());
    for _ in 0..=MAX_REDIRECTS {
        let r = get_once(&url, host_header.as_deref(), headers).await?;
        let next = match (r.code, &r.location) {
            (301 | 302 | 303 | 307 | 308, Some(l)) => url.join(l),
            _ => None,
        };
        let Some(next) = next else {
            return Ok(r);
        };
        if !next.host.eq_ignore_ascii_case(&first.host) {
            // Not local: the kubelet stops and reports the redirect.
            return Ok(r);
        }
        // A relative redirect keeps the Host asked for; an absolute one
        // asks for its own.
        let relative = r
            .location
            .as_deref()
            .is_some_and(|l| l.starts_with('/') && !l.starts_with("//"));
        if !relative {
            host_header = None;
        }
        url = next;
    }
    Err(std::io::Error::other(format!(
        "stopped after {MAX_REDIRECTS} redirects"
    )))
}

/// A TLS verifier that accepts any certificate (the kubelet's probes set
/// `InsecureSkipVerify`), while still checking the handshake signatures
/// so the connection is a real TLS one.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS client of HTTPS probes and hooks (built once).
fn tls_connector() -> std::io::Result<tokio_rustls::TlsConnector> {
    static CONFIG: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>> =
        std::sync::OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth();
        Ok(Arc::new(config))
    });
    match config {
        Ok(c) => Ok(tokio_rustls::TlsConnector::from(c.clone())),
        Err(e) => Err(std::io::Error::other(format!("TLS setup: {e}"))),
    }
}

/// One HTTP/1.1 GET over a new connection (TLS for `https`).
async fn get_once(
    url: &Url,
    host_header: Option<&str>,
    headers: &[(String, String)],
) -> std::io::Result<Response> {
    let stream = TcpStream::connect((url.host.as_str(), url.port)).await?;
    let host = host_header.map_or_else(|| url.authority(), str::to_string);
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut req = format!("GET {} HTTP/1.1\r\nHost: {host}\r\n", url.path);
    if !has("user-agent") {
        req.push_str(&format!("User-Agent: {}\r\n", user_agent()));
    }
    if !has("accept") {
        req.push_str("Accept: */*\r\n");
    }
    for (k, v) in headers {
        if !k.eq_ignore_ascii_case("host") && !k.eq_ignore_ascii_case("connection") {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    req.push_str("Connection: close\r\n\r\n");
    if url.https {
        // An IP gets no SNI, a name does (as Go's client).
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| std::io::Error::other(format!("TLS server name {:?}: {e}", url.host)))?;
        let tls = tls_connector()?.connect(name, stream).await?;
        exchange(tls, req.as_bytes()).await
    } else {
        exchange(stream, req.as_bytes()).await
    }
}

/// Sends `req` and reads the status line, the headers and up to
/// [`MAX_BODY`] of the body.
async fn exchange<S>(mut stream: S, req: &[u8]) -> std::io::Result<Response>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(req).await?;
    stream.flush().await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // A TLS peer that closes without close_notify has still
            // answered.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            if buf.len() - (end + 4) >= MAX_BODY {
                break;
            }
        } else if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("HTTP response headers too large"));
        }
    }
    let end = find(&buf, b"\r\n\r\n").unwrap_or(buf.len());
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let code = lines
        .next()
        .filter(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("malformed HTTP response"))?;
    let location = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.trim().to_string());
    let body = buf.get(end + 4..).unwrap_or_default();
    let body = String::from_utf8_lossy(&body[..body.len().min(MAX_BODY)]);
    Ok(Response {
        code,
        location,
        body: body.chars().take(1024).collect(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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

/// Test servers for `httpGet` actions: plain HTTP or HTTPS with a
/// self-signed certificate, answering each GET with what `answer(path)`
/// gives (status, extra header lines).
#[cfg(any(test, feature = "test-util"))]
pub mod test_server {
    use std::sync::Arc;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An acceptor with a fresh self-signed certificate for `localhost`.
    pub fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])
            .expect("self-signed certificate");
        let cert = key.cert.der().clone();
        let pkey = rustls::pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der())
            .expect("private key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], pkey)
            .expect("server config");
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    /// Serves on `listener` (over TLS with `tls`) until aborted; each
    /// request seen is sent to `seen`.
    pub async fn serve<F>(
        listener: tokio::net::TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        answer: F,
        seen: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) where
        F: Fn(&str) -> (u16, String) + Send + Sync + 'static,
    {
        let answer = Arc::new(answer);
        while let Ok((tcp, _)) = listener.accept().await {
            let (answer, tls, seen) = (answer.clone(), tls.clone(), seen.clone());
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        if let Ok(s) = tls.accept(tcp).await {
                            one(s, &*answer, seen).await;
                        }
                    }
                    None => one(tcp, &*answer, seen).await,
                }
            });
        }
    }

    async fn one<S>(
        mut s: S,
        answer: &(dyn Fn(&str) -> (u16, String) + Send + Sync),
        seen: Option<tokio::sync::mpsc::UnboundedSender<String>>,
    ) where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 2048];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let req = String::from_utf8_lossy(&buf).into_owned();
        let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
        if let Some(seen) = seen {
            let _ = seen.send(req);
        }
        let (code, extra) = answer(&path);
        let reply = format!("HTTP/1.1 {code} X\r\n{extra}Content-Length: 2\r\n\r\nok");
        let _ = s.write_all(reply.as_bytes()).await;
        let _ = s.shutdown().await;
    }
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

    async fn spawn_server(
        tls: bool,
        answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static,
    ) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let tls = tls.then(test_server::self_signed_acceptor);
        tokio::spawn(test_server::serve(listener, tls, answer, Some(tx)));
        (port, rx)
    }

    #[tokio::test]
    async fn https_accepts_a_self_signed_certificate_and_sends_the_kubelet_headers() {
        let c = container();
        let (port, mut seen) = spawn_server(true, |p| match p {
            "/healthz" => (200, String::new()),
            _ => (503, String::new()),
        })
        .await;
        let mut action = get(port, "/healthz");
        action.scheme = Some("HTTPS".into());
        let v = http_get(&target(&c), &action, Duration::from_secs(3)).await;
        assert!(v.ok(), "{v:?}");
        let req = seen.recv().await.unwrap();
        assert!(
            req.contains(&format!("Host: 127.0.0.1:{port}\r\n")),
            "{req}"
        );
        assert!(req.contains("User-Agent: kube-probe/1."), "{req}");
        assert!(req.contains("Accept: */*\r\n"), "{req}");
        action.path = Some("/down".into());
        let v = http_get(&target(&c), &action, Duration::from_secs(3)).await;
        assert!(v.message().contains("statuscode: 503"), "{v:?}");
        // Plain HTTP to the TLS port fails (no silent downgrade).
        action.scheme = None;
        action.path = Some("/healthz".into());
        let v = http_get(&target(&c), &action, Duration::from_secs(3)).await;
        assert!(!v.ok(), "{v:?}");
    }

    #[tokio::test]
    async fn a_host_header_and_user_agent_of_the_action_win() {
        let c = container();
        let (port, mut seen) = spawn_server(false, |_| (200, String::new())).await;
        let mut action = get(port, "/");
        action.http_headers = Some(vec![
            HTTPHeader {
                name: "Host".into(),
                value: "example.test".into(),
            },
            HTTPHeader {
                name: "User-Agent".into(),
                value: "mine".into(),
            },
        ]);
        assert!(http_get(&target(&c), &action, Duration::from_secs(2))
            .await
            .ok());
        let req = seen.recv().await.unwrap();
        assert!(req.contains("Host: example.test\r\n"), "{req}");
        assert!(req.contains("User-Agent: mine\r\n"), "{req}");
        assert!(!req.contains("kube-probe"), "{req}");
        assert_eq!(req.matches("Host:").count(), 1, "{req}");
    }

    #[tokio::test]
    async fn redirects_to_the_same_host_are_followed_and_others_end_the_probe() {
        let c = container();
        let (port, _seen) = spawn_server(false, |p| match p {
            "/old" => (302, "Location: /gone\r\n".into()),
            "/loop" => (307, "Location: /loop\r\n".into()),
            "/away" => (301, "Location: http://elsewhere.invalid/\r\n".into()),
            "/ok" => (301, "Location: ok2\r\n".into()),
            "/ok2" => (200, String::new()),
            _ => (404, String::new()),
        })
        .await;
        let t = Duration::from_secs(3);
        let v = http_get(&target(&c), &get(port, "/old"), t).await;
        assert!(v.message().contains("statuscode: 404"), "{v:?}");
        let v = http_get(&target(&c), &get(port, "/ok"), t).await;
        assert!(v.ok() && v.message().starts_with("HTTP 200"), "{v:?}");
        let v = http_get(&target(&c), &get(port, "/loop"), t).await;
        assert!(v.message().contains("stopped after 10 redirects"), "{v:?}");
        let v = http_get(&target(&c), &get(port, "/away"), t).await;
        assert!(v.ok(), "{v:?}");
        assert!(
            v.message().starts_with("Probe terminated redirects"),
            "{v:?}"
        );
    }
}
