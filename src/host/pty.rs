//! Pseudo-terminals for commands run on a terminal by podvisor itself (the
//! nsenter exec handler's `kubectl exec -t`), as the kubelet 1.1 did:
//! `openpty`, the child gets the slave as stdin, stdout and stderr and
//! makes it its controlling terminal ([`Pty::child_setup`] in `pre_exec`),
//! podvisor reads and writes the master without blocking the runtime
//! ([`PtyMaster`]: non-blocking, polled by tokio) and resizes it with
//! `TIOCSWINSZ`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::runtime::TermSize;

/// The end-of-file character of a terminal in canonical mode (`^D`): what
/// closing a terminal's input means.
const VEOF_CHAR: u8 = 0x04;

/// A new pseudo-terminal: both ends close-on-exec in podvisor (the child's
/// stdio are dups, which are not).
pub struct Pty {
    pub master: OwnedFd,
    pub slave: OwnedFd,
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn winsize(size: TermSize) -> libc::winsize {
    libc::winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Pty {
    /// Opens a pseudo-terminal of `size` (the system's default when `None`).
    pub fn open(size: Option<TermSize>) -> io::Result<Self> {
        let (mut master, mut slave): (RawFd, RawFd) = (-1, -1);
        let ws = size.map(winsize);
        let ws_ptr = ws
            .as_ref()
            .map_or(std::ptr::null(), |w| w as *const libc::winsize);
        // SAFETY: openpty writes two fds into the given ints; the name
        // and termios pointers may be null, the winsize one points to a
        // live value or is null.
        check(unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                ws_ptr,
            )
        })?;
        // SAFETY: openpty succeeded, so both fds are open and ours alone.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        for fd in [&master, &slave] {
            // SAFETY: fcntl on an fd we own.
            check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) })?;
        }
        Ok(Pty { master, slave })
    }

    /// Opens a pseudo-terminal of the devpts instance that `ptmx` (a
    /// `/dev/ptmx` path, such as a container's through
    /// `/proc/<pid>/root/dev/ptmx`) belongs to, the slave taken from the
    /// master (`TIOCGPTPEER`) without a path lookup. A command entering the
    /// container's mount namespace then finds its terminal under its own
    /// `/dev/pts`, as `tty` expects; a pty of podvisor's own devpts
    /// ([`Pty::open`]) works the same but has no name there.
    pub fn open_in(ptmx: &std::path::Path, size: Option<TermSize>) -> io::Result<Self> {
        let master = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(ptmx)?;
        let master = OwnedFd::from(master);
        let unlock: libc::c_int = 0;
        // SAFETY: TIOCSPTLCK reads one int from a live pointer; TIOCGPTPEER
        // takes open flags and returns a new fd, which we then own.
        let slave = unsafe {
            check(libc::ioctl(
                master.as_raw_fd(),
                libc::TIOCSPTLCK,
                &unlock as *const libc::c_int,
            ))?;
            let fd = check(libc::ioctl(
                master.as_raw_fd(),
                libc::TIOCGPTPEER,
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            ))?;
            OwnedFd::from_raw_fd(fd)
        };
        if let Some(size) = size {
            set_size(master.as_raw_fd(), size)?;
        }
        Ok(Pty { master, slave })
    }

    /// For `pre_exec` of a child whose stdin is the slave: a new session
    /// with the slave as its controlling terminal. Async-signal-safe (two
    /// system calls).
    pub fn child_setup() -> io::Result<()> {
        // SAFETY: setsid and ioctl are async-signal-safe and touch no memory
        // of ours.
        unsafe {
            check(libc::setsid())?;
            check(libc::ioctl(0, libc::TIOCSCTTY, 0))?;
        }
        Ok(())
    }
}

/// Sets the size of the terminal of `fd` (a master or a slave).
pub fn set_size(fd: RawFd, size: TermSize) -> io::Result<()> {
    let ws = winsize(size);
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is live.
    check(unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws as *const libc::winsize) }).map(|_| ())
}

/// The master end of a pseudo-terminal, non-blocking and registered with
/// tokio. Clones share the fd: one reads, one writes, one resizes.
#[derive(Clone)]
pub struct PtyMaster {
    fd: Arc<AsyncFd<OwnedFd>>,
}

impl PtyMaster {
    /// Takes the master; must be called within a tokio runtime.
    pub fn new(master: OwnedFd) -> io::Result<Self> {
        let raw = master.as_raw_fd();
        // SAFETY: fcntl on an fd we own.
        let flags = check(unsafe { libc::fcntl(raw, libc::F_GETFL) })?;
        check(unsafe { libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) })?;
        // SAFETY: the OwnedFd is moved in: its fd stays open and the same
        // for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register(master) }?;
        Ok(Self { fd: Arc::new(fd) })
    }

    pub fn resize(&self, size: TermSize) -> io::Result<()> {
        set_size(self.fd.as_raw_fd(), size)
    }
}

impl AsyncRead for PtyMaster {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let read = guard.try_io(|fd| {
                // SAFETY: reads at most `unfilled.len()` bytes into it.
                let n = unsafe {
                    libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match read {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EIO: every slave fd is closed (the command and all it
                // started have exited): the end of the output.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyMaster {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            let written = guard.try_io(|fd| {
                // SAFETY: writes at most `data.len()` bytes from it.
                let n = unsafe { libc::write(fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
                usize::try_from(n).map_err(|_| io::Error::last_os_error())
            });
            match written {
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A terminal cannot be half-closed: its input ends with `^D`.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_write(cx, &[VEOF_CHAR]).map_ok(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_child_on_the_slave_sees_a_terminal_of_the_size_set() {
        let pty = Pty::open(Some(TermSize {
            width: 100,
            height: 40,
        }))
        .unwrap();
        a_child_on(pty).await;
    }

    #[tokio::test]
    async fn a_pty_of_a_named_ptmx_works_the_same() {
        let pty = Pty::open_in(
            std::path::Path::new("/dev/ptmx"),
            Some(TermSize {
                width: 100,
                height: 40,
            }),
        )
        .unwrap();
        a_child_on(pty).await;
    }

    #[test]
    fn a_ptmx_that_is_not_there_is_an_error() {
        assert!(Pty::open_in(std::path::Path::new("/nonexistent/ptmx"), None).is_err());
    }

    /// Runs a shell on `pty`: it reads a line, shows the size (changed
    /// after the start) and its terminal's name, and exits.
    async fn a_child_on(pty: Pty) {
        let slave = pty.slave;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "read line; echo got $line; stty size; tty"])
            .stdin(std::process::Stdio::from(slave.try_clone().unwrap()))
            .stdout(std::process::Stdio::from(slave.try_clone().unwrap()))
            .stderr(std::process::Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: child_setup only makes async-signal-safe calls.
        unsafe {
            cmd.pre_exec(Pty::child_setup);
        }
        let mut child = cmd.spawn().unwrap();
        // The command keeps its copies of the slave: without these drops
        // the master never sees the end.
        drop(cmd);
        drop(slave);
        let master = PtyMaster::new(pty.master).unwrap();
        master
            .resize(TermSize {
                width: 120,
                height: 50,
            })
            .unwrap();
        let (mut reader, mut writer) = (master.clone(), master);
        writer.write_all(b"hello\n").await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            reader.read_to_end(&mut out),
        )
        .await
        .expect("the output ends when the child exits")
        .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("got hello"), "{text:?}");
        assert!(text.contains("50 120"), "{text:?}");
        assert!(text.contains("/dev/pts/"), "{text:?}");
        assert!(child.wait().await.unwrap().success());
    }
}
