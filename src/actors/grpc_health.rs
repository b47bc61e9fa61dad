//! The `grpc` probe: one unary call of the gRPC health-checking protocol,
//! `grpc.health.v1.Health/Check`, as the kubelet makes it.
//!
//! The kubelet dials `podIP:port` in plaintext (HTTP/2 without TLS), sends
//! `HealthCheckRequest{service}` (empty by default) with the user agent
//! `kube-probe/<major>.<minor>`, and succeeds only on `SERVING`; any other
//! status, an RPC error (`UNIMPLEMENTED`: the server has no health
//! service; `NOT_FOUND`: it does not know `service`) or a connection
//! failure is a failure.
//!
//! There is no tonic in the offline registry, so the call goes over `h2`
//! directly; both messages have one field each and are encoded by hand
//! (protobuf field 1: a string in the request, an enum in the response),
//! with gRPC's 5-byte length prefix.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::net::TcpStream;

use super::handlers::Verdict;

/// The RPC's path.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    /// A value this version of the protocol does not name.
    Other(u64),
}

impl ServingStatus {
    pub fn from_wire(v: u64) -> Self {
        match v {
            0 => Self::Unknown,
            1 => Self::Serving,
            2 => Self::NotServing,
            3 => Self::ServiceUnknown,
            n => Self::Other(n),
        }
    }

    pub fn to_wire(self) -> u64 {
        match self {
            Self::Unknown => 0,
            Self::Serving => 1,
            Self::NotServing => 2,
            Self::ServiceUnknown => 3,
            Self::Other(n) => n,
        }
    }

    pub fn name(self) -> String {
        match self {
            Self::Unknown => "UNKNOWN".into(),
            Self::Serving => "SERVING".into(),
            Self::NotServing => "NOT_SERVING".into(),
            Self::ServiceUnknown => "SERVICE_UNKNOWN".into(),
            Self::Other(n) => n.to_string(),
        }
    }
}

fn put_varint(out: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.first()?;
        buf.advance(1);
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// One gRPC message frame: uncompressed flag, big-endian length, bytes.
pub fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// The first message of a gRPC body (`None`: incomplete or compressed).
pub fn unframe(body: &[u8]) -> Option<&[u8]> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    body.get(5..5 + len)
}

/// `HealthCheckRequest{service}` (field 1, a string; absent when empty).
pub fn encode_request(service: &str) -> Bytes {
    let mut out = BytesMut::new();
    if !service.is_empty() {
        out.put_u8(0x0a);
        put_varint(&mut out, service.len() as u64);
        out.put_slice(service.as_bytes());
    }
    out.freeze()
}

/// Reads `HealthCheckRequest.service` (for test servers).
pub fn decode_request(mut buf: &[u8]) -> Option<String> {
    let mut service = String::new();
    while !buf.is_empty() {
        let key = get_varint(&mut buf)?;
        match (key >> 3, key & 7) {
            (1, 2) => {
                let len = usize::try_from(get_varint(&mut buf)?).ok()?;
                let bytes = buf.get(..len)?;
                service = String::from_utf8(bytes.to_vec()).ok()?;
                buf.advance(len);
            }
            (_, wire) => skip(&mut buf, wire)?,
        }
    }
    Some(service)
}

/// `HealthCheckResponse{status}` (field 1, an enum; absent when UNKNOWN).
pub fn encode_response(status: ServingStatus) -> Bytes {
    let mut out = BytesMut::new();
    if status.to_wire() != 0 {
        out.put_u8(0x08);
        put_varint(&mut out, status.to_wire());
    }
    out.freeze()
}

/// Reads `HealthCheckResponse.status`, skipping fields it does not know.
pub fn decode_response(mut buf: &[u8]) -> Option<ServingStatus> {
    let mut status = 0;
    while !buf.is_empty() {
        let key = get_varint(&mut buf)?;
        match (key >> 3, key & 7) {
            (1, 0) => status = get_varint(&mut buf)?,
            (_, wire) => skip(&mut buf, wire)?,
        }
    }
    Some(ServingStatus::from_wire(status))
}

/// Skips one field's value of wire type `wire`.
fn skip(buf: &mut &[u8], wire: u64) -> Option<()> {
    let n = match wire {
        0 => return get_varint(buf).map(|_| ()),
        1 => 8,
        2 => usize::try_from(get_varint(buf)?).ok()?,
        5 => 4,
        _ => return None,
    };
    (buf.len() >= n).then(|| buf.advance(n))
}

/// gRPC status code names (for messages like grpc-go's).
fn code_name(code: u32) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES
        .get(code as usize)
        .map_or_else(|| format!("Code({code})"), |n| n.to_string())
}

/// What the RPC ended with.
#[derive(Debug)]
enum Outcome {
    /// `grpc-status` 0 and a response.
    Status(ServingStatus),
    /// A non-zero `grpc-status`, with its message.
    Rpc(u32, String),
}

/// `host:port` as an authority (IPv6 in brackets).
fn authority(host: &str, port: u16) -> String {
    match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    }
}

fn grpc_status(h: &http::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    let message = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .unwrap_or("")
        .to_string();
    Some((code, message))
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn call(host: &str, port: u16, service: &str, user_agent: &str) -> Result<Outcome, Error> {
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let (client, connection) = h2::client::handshake(tcp).await?;
    let rpc = async move {
        let mut client = client.ready().await?;
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{CHECK_PATH}", authority(host, port)))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .header("user-agent", user_agent)
            .body(())?;
        let (response, mut send) = client.send_request(request, false)?;
        send.send_data(frame(&encode_request(service)), true)?;
        let response = response.await?;
        if response.status() != http::StatusCode::OK {
            return Err(format!("unexpected HTTP status {}", response.status()).into());
        }
        // Trailers-only: the status is in the headers, no body follows.
        if let Some((code, message)) = grpc_status(response.headers()) {
            if code != 0 {
                return Ok(Outcome::Rpc(code, message));
            }
        }
        let mut body = response.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
            if data.len() > 64 * 1024 {
                return Err("health response too large".into());
            }
        }
        let trailers = body.trailers().await?.unwrap_or_default();
        match grpc_status(&trailers) {
            Some((0, _)) => {}
            Some((code, message)) => return Ok(Outcome::Rpc(code, message)),
            None => return Err("response without grpc-status".into()),
        }
        let message = unframe(&data).ok_or("malformed or compressed health response")?;
        let status = decode_response(message).ok_or("malformed HealthCheckResponse")?;
        Ok(Outcome::Status(status))
    };
    // The connection is driven here, not in a detached task: a timeout
    // drops both.
    tokio::pin!(rpc);
    tokio::select! {
        r = &mut rpc => r,
        c = connection => match c {
            Err(e) => Err(e.into()),
            Ok(()) => rpc.await,
        },
    }
}

/// Runs a `grpc` probe against `host:port` with `service`.
pub async fn check(
    host: &str,
    port: u16,
    service: &str,
    user_agent: &str,
    timeout: Duration,
) -> Verdict {
    match tokio::time::timeout(timeout, call(host, port, service, user_agent)).await {
        Err(_) => Verdict::Failure(format!(
            "timeout: health rpc did not complete within {timeout:?}"
        )),
        Ok(Err(e)) => Verdict::Failure(format!(
            "error: failed to connect service \"{}\": {e}",
            authority(host, port)
        )),
        Ok(Ok(Outcome::Rpc(12, message))) => Verdict::Failure(format!(
            "this server does not implement the grpc health protocol (grpc.health.v1.Health): {message}"
        )),
        Ok(Ok(Outcome::Rpc(code, message))) => Verdict::Failure(format!(
            "error: health rpc probe failed: rpc error: code = {} desc = {message}",
            code_name(code)
        )),
        Ok(Ok(Outcome::Status(ServingStatus::Serving))) => {
            Verdict::Success("service healthy".into())
        }
        Ok(Ok(Outcome::Status(s))) => Verdict::Failure(format!(
            "service unhealthy (responded with \"{}\")",
            s.name()
        )),
    }
}

/// A minimal `grpc.health.v1.Health/Check` server for tests: answers each
/// call with the status `status_of(service)` gives, or `NOT_FOUND` for
/// `None` (as grpc-go's health server does for an unknown service).
#[cfg(any(test, feature = "test-util"))]
pub mod test_server {
    use std::sync::Arc;

    use super::*;

    /// Serves on `listener` until the task is aborted.
    pub async fn serve<F>(listener: tokio::net::TcpListener, status_of: F)
    where
        F: Fn(&str) -> Option<ServingStatus> + Send + Sync + 'static,
    {
        let status_of = Arc::new(status_of);
        while let Ok((tcp, _)) = listener.accept().await {
            let status_of = status_of.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((request, respond))) = conn.accept().await {
                    let status_of = status_of.clone();
                    tokio::spawn(answer(request, respond, move |s| status_of(s)));
                }
            });
        }
    }

    async fn answer(
        request: http::Request<h2::RecvStream>,
        mut respond: h2::server::SendResponse<Bytes>,
        status_of: impl Fn(&str) -> Option<ServingStatus>,
    ) {
        let path = request.uri().path().to_string();
        let mut body = request.into_body();
        let mut data = BytesMut::new();
        while let Some(Ok(chunk)) = body.data().await {
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        let service = unframe(&data).and_then(decode_request).unwrap_or_default();
        let head = http::Response::builder()
            .header("content-type", "application/grpc")
            .body(())
            .unwrap_or_default();
        let Ok(mut send) = respond.send_response(head, false) else {
            return;
        };
        let mut trailers = http::HeaderMap::new();
        let status = (path == CHECK_PATH).then(|| status_of(&service));
        match status {
            None => {
                trailers.insert("grpc-status", http::HeaderValue::from_static("12"));
                trailers.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("unknown method"),
                );
            }
            Some(None) => {
                trailers.insert("grpc-status", http::HeaderValue::from_static("5"));
                trailers.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("unknown service"),
                );
            }
            Some(Some(s)) => {
                let _ = send.send_data(frame(&encode_response(s)), false);
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            }
        }
        let _ = send.send_trailers(trailers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_match_protoc() {
        // protoc --encode: service "a" is 0a 01 61; SERVING is 08 01.
        assert_eq!(&encode_request("a")[..], &[0x0a, 0x01, b'a']);
        assert!(encode_request("").is_empty());
        assert_eq!(&encode_response(ServingStatus::Serving)[..], &[0x08, 0x01]);
        assert_eq!(
            decode_request(&encode_request("x.y")).as_deref(),
            Some("x.y")
        );
        assert_eq!(decode_response(&[]), Some(ServingStatus::Unknown));
        // An unknown field (2, a string) is skipped.
        assert_eq!(
            decode_response(&[0x12, 0x01, b'z', 0x08, 0x02]),
            Some(ServingStatus::NotServing)
        );
        assert_eq!(decode_response(&[0x08]), None);
        let f = frame(b"abc");
        assert_eq!(&f[..5], &[0, 0, 0, 0, 3]);
        assert_eq!(unframe(&f), Some(&b"abc"[..]));
    }

    async fn server(
        status_of: impl Fn(&str) -> Option<ServingStatus> + Send + Sync + 'static,
    ) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        (port, tokio::spawn(test_server::serve(listener, status_of)))
    }

    const T: Duration = Duration::from_secs(3);

    #[tokio::test]
    async fn serving_succeeds_and_anything_else_fails() {
        let (port, task) = server(|s| match s {
            "" => Some(ServingStatus::Serving),
            "down" => Some(ServingStatus::NotServing),
            _ => None,
        })
        .await;
        let v = check("127.0.0.1", port, "", "kube-probe/1.32", T).await;
        assert_eq!(v, Verdict::Success("service healthy".into()));
        let v = check("127.0.0.1", port, "down", "kube-probe/1.32", T).await;
        assert_eq!(
            v,
            Verdict::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
        );
        let v = check("127.0.0.1", port, "other", "kube-probe/1.32", T).await;
        assert!(!v.ok());
        assert!(v.message().contains("NotFound"), "{v:?}");
        task.abort();
    }

    #[tokio::test]
    async fn a_closed_port_or_a_plain_tcp_server_fails() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let v = check("127.0.0.1", port, "", "kube-probe/1.32", T).await;
        assert!(v.message().contains("failed to connect"), "{v:?}");
        // A server that accepts and says nothing: the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let v = check("127.0.0.1", port, "", "ua", Duration::from_millis(300)).await;
        assert!(v.message().starts_with("timeout"), "{v:?}");
        drop(silent);
    }
}
