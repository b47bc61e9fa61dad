//! The `nsenter` exec handler, interactive: like
//! [`crate::actors::handlers::nsenter`] (the container's mount, IPC, UTS,
//! network and PID namespaces through its init process, `env -i` with the
//! container's hostname and environment), with the command's stdio given
//! to the session: pipes without a terminal, a pseudo-terminal
//! ([`crate::host::pty`]) with one, opened in the container's own devpts
//! (through `/proc/<pid>/root/dev/ptmx`) so that `tty` inside names it.
//!
//! `nsenter -p` forks the command inside the PID namespace and waits for
//! it. The nsenter process starts a session of its own (`setsid`, the
//! pty's controlling terminal with `-t`), so a kill of its process group
//! ends the command too, which a kill of nsenter alone would not.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{oneshot, watch};

use crate::host::pty::{Pty, PtyMaster};
use crate::runtime::{
    ContainerRuntime, ExecControl, ExecSession, ExecStart, OutputStream, RuntimeError, TermSize,
};

fn failed(message: String) -> RuntimeError {
    RuntimeError::Engine {
        call: "exec",
        message,
    }
}

/// Starts `start.cmd` in the container `container_id` through nsenter.
pub async fn start(
    runtime: &dyn ContainerRuntime,
    container_id: &str,
    start: &ExecStart,
) -> Result<ExecSession, RuntimeError> {
    let details = runtime
        .inspect_container(container_id)
        .await?
        .ok_or_else(|| failed(format!("no such container: {container_id}")))?;
    let pid = details
        .pid
        .ok_or_else(|| failed(format!("container {container_id} is not running")))?;
    let mut env = vec![format!("HOSTNAME={}", details.hostname)];
    env.extend(details.env.iter().cloned());
    if start.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    env.extend(start.env.iter().cloned());
    let mut command = tokio::process::Command::new("nsenter");
    command
        .args(["-t", &pid.to_string(), "-m", "-i", "-u", "-n", "-p", "--"])
        .arg("env")
        .arg("-i")
        .args(&env)
        .args(&start.cmd)
        .kill_on_drop(true);
    if start.tty {
        // The container's own devpts, so that the command's terminal has
        // a name inside it; podvisor's when that fails (no /dev/pts).
        let ptmx = std::path::PathBuf::from(format!("/proc/{pid}/root/dev/ptmx"));
        let pty = Pty::open_in(&ptmx, start.size).or_else(|e| {
            tracing::debug!(error = %e, ptmx = %ptmx.display(), "no pty in the container; using the host's");
            Pty::open(start.size)
        });
        start_on_pty(
            command,
            pty.map_err(|e| failed(format!("pseudo-terminal: {e}")))?,
        )
    } else {
        start_on_pipes(command, start)
    }
}

fn start_on_pipes(
    mut command: tokio::process::Command,
    start: &ExecStart,
) -> Result<ExecSession, RuntimeError> {
    use std::process::Stdio;
    let pipe_or_null = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    command
        .stdin(pipe_or_null(start.stdin))
        .stdout(pipe_or_null(start.stdout))
        .stderr(pipe_or_null(start.stderr));
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .map_err(|e| failed(format!("nsenter: {e}")))?;
    let mut outputs: Vec<BoxStream<'static, _>> = Vec::new();
    if let Some(out) = child.stdout.take() {
        outputs.push(read_stream(out, OutputStream::Stdout));
    }
    if let Some(err) = child.stderr.take() {
        outputs.push(read_stream(err, OutputStream::Stderr));
    }
    let stdin: Pin<Box<dyn AsyncWrite + Send>> = match child.stdin.take() {
        Some(s) => Box::pin(ClosingWriter(Some(s))),
        None => Box::pin(tokio::io::sink()),
    };
    Ok(ExecSession {
        output: futures::stream::select_all(outputs).boxed(),
        stdin,
        control: Box::new(Nsenter::watch(child, None)),
    })
}

fn start_on_pty(
    mut command: tokio::process::Command,
    pty: Pty,
) -> Result<ExecSession, RuntimeError> {
    let pty_failed = |e: std::io::Error| failed(format!("pseudo-terminal: {e}"));
    let slave = |pty: &Pty| {
        pty.slave
            .try_clone()
            .map(std::process::Stdio::from)
            .map_err(pty_failed)
    };
    command
        .stdin(slave(&pty)?)
        .stdout(slave(&pty)?)
        .stderr(slave(&pty)?);
    // SAFETY: child_setup makes only async-signal-safe calls.
    unsafe {
        command.pre_exec(Pty::child_setup);
    }
    let child = command
        .spawn()
        .map_err(|e| failed(format!("nsenter: {e}")))?;
    // The child's copies hold the slave open; ours would keep the master
    // from seeing the end when the command exits.
    drop(command);
    drop(pty.slave);
    let master = PtyMaster::new(pty.master).map_err(pty_failed)?;
    Ok(ExecSession {
        output: read_stream(master.clone(), OutputStream::Stdout),
        stdin: Box::pin(master.clone()),
        control: Box::new(Nsenter::watch(child, Some(master))),
    })
}

/// The chunks `reader` gives, until its end.
fn read_stream<R>(
    reader: R,
    which: OutputStream,
) -> BoxStream<'static, crate::runtime::Result<(OutputStream, bytes::Bytes)>>
where
    R: AsyncRead + Send + Unpin + 'static,
{
    futures::stream::unfold(Some(reader), move |reader| async move {
        let mut reader = reader?;
        let mut buf = vec![0u8; 32 * 1024];
        match reader.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok((which, bytes::Bytes::from(buf))), Some(reader)))
            }
            Err(e) => Some((
                Err(failed(format!("reading the command's output: {e}"))),
                None,
            )),
        }
    })
    .boxed()
}

/// A pipe writer whose shutdown closes the pipe (tokio's `ChildStdin`
/// closes only when dropped): the command reads its end of input.
struct ClosingWriter<W>(Option<W>);

impl<W: AsyncWrite + Unpin> AsyncWrite for ClosingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.0.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, data),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.0.as_mut() {
            Some(w) => Pin::new(w).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if let Some(w) = self.0.as_mut() {
            let _ = std::task::ready!(Pin::new(w).poll_flush(cx));
        }
        self.0 = None;
        Poll::Ready(Ok(()))
    }
}

/// The control of an nsenter session: one task owns the child, waits for
/// it and kills its process group on request.
struct Nsenter {
    kill: Mutex<Option<oneshot::Sender<()>>>,
    exit: watch::Receiver<Option<i64>>,
    pty: Option<PtyMaster>,
}

impl Nsenter {
    fn watch(mut child: tokio::process::Child, pty: Option<PtyMaster>) -> Self {
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let (exit_tx, exit_rx) = watch::channel(None);
        let group = child.id().and_then(|p| libc::pid_t::try_from(p).ok());
        tokio::spawn(async move {
            let status = tokio::select! {
                status = child.wait() => status,
                _ = kill_rx => {
                    if let Some(pgid) = group {
                        // SAFETY: kill(2) touches no memory; the group is
                        // the unreaped child's own (setsid), so its id is
                        // not reused.
                        unsafe {
                            libc::kill(-pgid, libc::SIGKILL);
                        }
                    }
                    child.wait().await
                }
            };
            let code = status.ok().map_or(-1, |s| {
                use std::os::unix::process::ExitStatusExt;
                s.code()
                    .or_else(|| s.signal().map(|sig| 128 + sig))
                    .map_or(-1, i64::from)
            });
            let _ = exit_tx.send(Some(code));
        });
        Nsenter {
            kill: Mutex::new(Some(kill_tx)),
            exit: exit_rx,
            pty,
        }
    }
}

#[async_trait]
impl ExecControl for Nsenter {
    async fn resize(&self, size: TermSize) -> crate::runtime::Result<()> {
        match &self.pty {
            Some(master) => master
                .resize(size)
                .map_err(|e| failed(format!("resizing the terminal: {e}"))),
            None => Ok(()),
        }
    }

    async fn exit_code(&self) -> crate::runtime::Result<Option<i64>> {
        let mut exit = self.exit.clone();
        let code = exit
            .wait_for(Option::is_some)
            .await
            .map_err(|_| failed("the command's waiter ended without its exit code".into()))?;
        Ok(*code)
    }

    async fn kill(&self) {
        let sender = self.kill.lock().ok().and_then(|mut k| k.take());
        if let Some(sender) = sender {
            let _ = sender.send(());
        }
    }
}
