//! `kubectl exec` and `kubectl attach` against the node:
//! `/api/v1/namespaces/{namespace}/pods/{name}/exec` and `…/attach` over
//! WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`; the protocol is in
//! [`super::kube::channel`]).
//!
//! A request is checked before the upgrade (its parameters, the pod, the
//! container and that it runs), so that a refusal is an HTTP error with a
//! `Status`. kubectl falls back to SPDY (a `POST`) when the upgrade fails;
//! that `POST` is checked the same way and otherwise told that only
//! WebSocket is served, so the user reads the real reason either way.
//!
//! After the upgrade a session starts through the runtime
//! ([`crate::runtime::ContainerRuntime::exec_attach`], the `native`
//! handler; [`crate::runtime::ContainerRuntime::attach`] for attach) or
//! through [`nsenter`] (`--docker-exec-handler=nsenter`), and is pumped:
//! one task reads the client (stdin, resizes, v5's close of stdin), the
//! session's own task sends the output and, when it ends, the exit
//! `Status` on the error channel and a normal close. When the client goes
//! first the command is killed (nsenter: its process group; native: its
//! host pid, which the engine reports but cannot signal itself); an attach
//! only detaches.

pub mod nsenter;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::kube::channel::{self, Inbound, Protocol, StreamOptions, Verb};
use super::kube::container::container_name;
use super::kube::{self};
use super::node::find_pod;
use super::ApiState;
use crate::runtime::{ExecControl, ExecSession, ExecStart, OutputStream, TermSize};
use crate::settings::ExecHandler;

/// How long the end of a session waits for the client's close reply
/// before it drops the connection.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// The exec and attach routes: `GET` with a WebSocket upgrade, `POST`
/// (kubectl's SPDY fallback) answered with a `Status`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            get(exec_ws).post(exec_post),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/attach",
            get(attach_ws).post(attach_post),
        )
}

type Pairs = Result<Query<Vec<(String, String)>>, QueryRejection>;
type Upgrade = Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>;

async fn exec_ws(s: State<ApiState>, p: Path<(String, String)>, q: Pairs, ws: Upgrade) -> Response {
    upgrade(Verb::Exec, s, p, q, ws)
}

async fn attach_ws(
    s: State<ApiState>,
    p: Path<(String, String)>,
    q: Pairs,
    ws: Upgrade,
) -> Response {
    upgrade(Verb::Attach, s, p, q, ws)
}

async fn exec_post(s: State<ApiState>, p: Path<(String, String)>, q: Pairs) -> Response {
    not_websocket(Verb::Exec, s, p, q)
}

async fn attach_post(s: State<ApiState>, p: Path<(String, String)>, q: Pairs) -> Response {
    not_websocket(Verb::Attach, s, p, q)
}

fn answer(code: StatusCode, body: Value) -> Response {
    (code, Json(body)).into_response()
}

fn bad_request(message: impl Into<String>) -> Response {
    answer(StatusCode::BAD_REQUEST, kube::bad_request(message))
}

fn served_protocols() -> String {
    Protocol::SERVED
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a checked request runs against.
#[derive(Debug)]
struct Target {
    pod: String,
    container: String,
    container_id: String,
    options: StreamOptions,
}

/// Why a request is refused before any upgrade.
#[derive(Debug)]
enum Refusal {
    /// 404: no such pod.
    NoPod(String),
    /// 400, with the message.
    Bad(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoPod(name) => answer(StatusCode::NOT_FOUND, kube::not_found("pods", &name)),
            Refusal::Bad(message) => bad_request(message),
        }
    }
}

/// Checks the request: parameters, pod, container, running.
fn prepare(
    verb: Verb,
    s: &ApiState,
    namespace: &str,
    name: &str,
    query: Pairs,
) -> Result<Target, Refusal> {
    let Query(pairs) = query.map_err(|e| Refusal::Bad(e.body_text()))?;
    let options = StreamOptions::parse(verb, &pairs).map_err(|e| Refusal::Bad(e.to_string()))?;
    let (_, pod) =
        find_pod(&s.store, namespace, name).ok_or_else(|| Refusal::NoPod(name.to_string()))?;
    let container =
        container_name(&pod, options.container.as_deref()).map_err(|e| Refusal::Bad(e.0))?;
    let status = container_status(&pod, &container).ok_or_else(|| {
        Refusal::Bad(format!(
            "container {container} of pod {name} has not started yet"
        ))
    })?;
    let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
    let container_id = status
        .container_id
        .as_deref()
        .and_then(|id| id.strip_prefix("docker://"))
        .filter(|id| !id.is_empty());
    match container_id {
        Some(id) if running => Ok(Target {
            pod: format!("{namespace}/{name}"),
            container,
            container_id: id.to_string(),
            options,
        }),
        _ => Err(Refusal::Bad(format!(
            "container {container} of pod {name} is not running"
        ))),
    }
}

fn container_status<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten())
        .find(|s| s.name == container)
}

fn upgrade(
    verb: Verb,
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    query: Pairs,
    ws: Upgrade,
) -> Response {
    let target = match prepare(verb, &s, &namespace, &name, query) {
        Ok(t) => t,
        Err(refused) => return refused.into_response(),
    };
    let ws = match ws {
        Ok(ws) => ws.protocols(Protocol::SERVED.map(Protocol::name)),
        Err(why) => {
            return bad_request(format!(
                "exec and attach are served over WebSocket only ({}): {}",
                served_protocols(),
                why.body_text()
            ))
        }
    };
    let protocol = ws
        .selected_protocol()
        .and_then(|p| p.to_str().ok())
        .and_then(Protocol::from_name);
    let Some(protocol) = protocol else {
        let asked: Vec<String> = ws
            .requested_protocols()
            .filter_map(|p| p.to_str().ok().map(String::from))
            .collect();
        return bad_request(format!(
            "none of the WebSocket subprotocols {asked:?} is served; served: {}",
            served_protocols()
        ));
    };
    ws.on_upgrade(move |socket| run(socket, protocol, verb, s, target))
}

fn not_websocket(
    verb: Verb,
    State(s): State<ApiState>,
    Path((namespace, name)): Path<(String, String)>,
    query: Pairs,
) -> Response {
    if let Err(refused) = prepare(verb, &s, &namespace, &name, query) {
        return refused.into_response();
    }
    bad_request(format!(
        "exec and attach are served over WebSocket only ({}), not SPDY; \
         use a kubectl of 1.30 or later",
        served_protocols()
    ))
}

/// Starts the command as the node's exec handler says, on a terminal of
/// `size` when it has one.
async fn start(
    verb: Verb,
    s: &ApiState,
    target: &Target,
    size: Option<TermSize>,
) -> crate::runtime::Result<ExecSession> {
    let o = &target.options;
    let start = ExecStart {
        cmd: o.command.clone(),
        env: Vec::new(),
        tty: o.tty,
        stdin: o.stdin,
        stdout: o.stdout,
        stderr: o.stderr,
        size,
    };
    match (verb, s.exec_handler) {
        (Verb::Attach, _) => s.runtime.attach(&target.container_id, &start).await,
        (Verb::Exec, ExecHandler::Native) => {
            s.runtime.exec_attach(&target.container_id, &start).await
        }
        (Verb::Exec, ExecHandler::Nsenter) => {
            nsenter::start(&*s.runtime, &target.container_id, &start).await
        }
    }
}

/// One session, from the upgrade to the close.
async fn run(socket: WebSocket, protocol: Protocol, verb: Verb, s: ApiState, target: Target) {
    let (mut sink, mut client) = socket.split();
    let span = tracing::info_span!(
        "exec",
        pod = %target.pod,
        container = %target.container,
        verb = ?verb,
        handler = ?s.exec_handler,
        protocol = protocol.name(),
    );
    let hello = channel::frame(target.options.hello_channel(), b"");
    if sink.send(Message::Binary(hello)).await.is_err() {
        return;
    }
    // kubectl sends its terminal's size first thing: the command starts
    // on a terminal of that size rather than of none, resized later.
    let (size, early) = if target.options.tty {
        match first_size(&mut client, protocol).await {
            Some(got) => got,
            None => return, // the client went away
        }
    } else {
        (None, Vec::new())
    };
    let session = match start(verb, &s, &target, size).await {
        Ok(session) => session,
        Err(e) => {
            tracing::info!(parent: &span, error = %e, command = ?target.options.command, "exec did not start");
            let status = channel::failure_status(e.to_string());
            finish(&mut sink, &mut client, status).await;
            return;
        }
    };
    tracing::info!(parent: &span, command = ?target.options.command, tty = target.options.tty, "session started");
    let ExecSession {
        mut output,
        stdin,
        control,
    } = session;
    let control: Arc<dyn ExecControl> = Arc::from(control);
    let (gone_tx, mut gone) = tokio::sync::oneshot::channel::<()>();
    let messages = futures::stream::iter(early.into_iter().map(Ok)).chain(client);
    let reader = tokio::spawn(read_client(
        messages,
        protocol,
        target.options.stdin.then_some(stdin),
        control.clone(),
        gone_tx,
        span.clone(),
    ));
    let mut failure = None;
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok((which, data))) => {
                    let ch = match which {
                        OutputStream::Stdout => channel::STDOUT,
                        OutputStream::Stderr => channel::STDERR,
                    };
                    if sink.send(Message::Binary(channel::frame(ch, &data))).await.is_err() {
                        tracing::info!(parent: &span, "client went away: ending the command");
                        control.kill().await;
                        reader.abort();
                        return;
                    }
                }
                Some(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                None => break,
            },
            _ = &mut gone => {
                tracing::info!(parent: &span, "client went away: ending the command");
                control.kill().await;
                return;
            }
        }
    }
    // The output ended: the exit code, unless the client goes meanwhile
    // (a command can close its output and run on).
    let ended = match failure {
        Some(e) => Err(e),
        None => tokio::select! {
            code = control.exit_code() => code,
            _ = &mut gone => {
                tracing::info!(parent: &span, "client went away: ending the command");
                control.kill().await;
                return;
            }
        },
    };
    let status = match ended {
        Ok(Some(code)) => {
            tracing::info!(parent: &span, exit_code = code, "command ended");
            channel::exit_status(&target.options.command, code)
        }
        Ok(None) => channel::success_status(),
        Err(e) => {
            tracing::info!(parent: &span, error = %e, "session failed");
            control.kill().await;
            channel::failure_status(e.to_string())
        }
    };
    if close_with(&mut sink, status).await {
        // The client answers the close; reading on until then lets the
        // connection end cleanly rather than with a reset that could drop
        // the status before the client read it.
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut gone).await;
    }
    reader.abort();
}

/// Sends `status` on the error channel and a normal close; false when the
/// client is gone.
async fn close_with(sink: &mut Sink, status: Value) -> bool {
    let message = Message::Binary(channel::frame(
        channel::ERROR,
        status.to_string().as_bytes(),
    ));
    if sink.send(message).await.is_err() {
        return false;
    }
    let close = Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "".into(),
    }));
    sink.send(close).await.is_ok()
}

type Sink = futures::stream::SplitSink<WebSocket, Message>;
type Client = futures::stream::SplitStream<WebSocket>;

/// Ends a session that never started: the status, the close, the reply.
async fn finish(sink: &mut Sink, client: &mut Client, status: Value) {
    if !close_with(sink, status).await {
        return;
    }
    let drain = async { while let Some(Ok(_)) = client.next().await {} };
    let _ = tokio::time::timeout(CLOSE_WAIT, drain).await;
}

/// How long a session on a terminal waits for the client's first size.
const FIRST_SIZE_WAIT: Duration = Duration::from_secs(1);

/// Reads the client's messages until its first terminal size (or for
/// [`FIRST_SIZE_WAIT`]): the size, and the other messages read meanwhile
/// (early stdin), to be handled once the command runs. `None` when the
/// client went away.
async fn first_size(
    client: &mut Client,
    protocol: Protocol,
) -> Option<(Option<TermSize>, Vec<Message>)> {
    let mut early = Vec::new();
    let deadline = tokio::time::Instant::now() + FIRST_SIZE_WAIT;
    loop {
        let message = match tokio::time::timeout_at(deadline, client.next()).await {
            Err(_) => return Some((None, early)),
            Ok(Some(Ok(Message::Close(_))) | Some(Err(_)) | None) => return None,
            Ok(Some(Ok(m))) => m,
        };
        if let Message::Binary(data) = &message {
            if let Ok(Inbound::Resize(size)) = channel::decode(protocol, data) {
                return Some((Some(size), early));
            }
        }
        early.push(message);
    }
}

/// Reads the client until it goes: stdin to the command (when it asked for
/// stdin), resizes to its terminal. A message it cannot use is logged and
/// skipped. Says it went by `gone`.
async fn read_client(
    mut client: impl futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
    protocol: Protocol,
    mut stdin: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
    control: Arc<dyn ExecControl>,
    gone: tokio::sync::oneshot::Sender<()>,
    span: tracing::Span,
) {
    while let Some(Ok(message)) = client.next().await {
        let data = match message {
            Message::Binary(data) => data,
            Message::Close(_) => break,
            // Text is not part of the binary protocols; pings are answered
            // by the WebSocket layer.
            _ => continue,
        };
        match channel::decode(protocol, &data) {
            Ok(Inbound::Stdin(bytes)) => {
                if let Some(w) = stdin.as_mut() {
                    if w.write_all(&bytes).await.is_err() || w.flush().await.is_err() {
                        // The command closed its stdin; keep reading for
                        // resizes and the close.
                        stdin = None;
                    }
                }
            }
            Ok(Inbound::Resize(size)) => {
                if let Err(e) = control.resize(size).await {
                    tracing::debug!(parent: &span, error = %e, "resize failed");
                }
            }
            Ok(Inbound::CloseStdin) => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
            Ok(Inbound::Nothing) => {}
            Err(e) => tracing::debug!(parent: &span, error = %e, "client message skipped"),
        }
    }
    let _ = gone.send(());
}
