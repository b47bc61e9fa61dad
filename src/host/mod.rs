//! The node: what podvisor does to the machine it runs on, behind one seam.
//!
//! [`Host`] is the only way the rest of the crate reaches the node's file
//! system, its mount table and `/proc`. [`RealHost`] does it for real (the
//! `mount` and `umount` commands, `std::fs`); [`fake::FakeHost`] (tests and
//! the `test-util` feature) keeps an in-memory tree, records every call and
//! fails on demand.
//!
//! - [`volumes`]: carries out the pod volume plans of
//!   [`crate::spec::volumes`] (directories, tmpfs, `hostPath` checks,
//!   `subPath` checks, teardown) through a [`Host`].
//! - [`machine`]: the node's capacity (CPUs, memory) for admission.
//! - [`memory`]: podvisor's own freed heap memory, given back to the system.
//! - [`files`]: the files podvisor writes for a pod (`downwardAPI`
//!   volumes, atomically as the kubelet's `..data` swap; `/etc/hosts`,
//!   `resolv.conf`), on the real file system.
//! - [`pty`]: pseudo-terminals for `kubectl exec -t` through nsenter.
//!
//! The trait's file operations return plain [`io::Error`]s; [`volumes`]
//! says what was being done (`mkdir /x: …`).

pub mod cgroup;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod files;
pub mod machine;
pub mod memory;
pub mod pty;
mod real;
pub mod volumes;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;

pub use machine::node_capacity;
pub use real::RealHost;
pub use volumes::{check_subpaths, setup_volumes, teardown_volumes, Failure, VolumeError};

/// What a path is, as `stat` or `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Dir,
    File,
    /// Only from [`Host::lstat`].
    Symlink,
    Socket,
    CharDevice,
    BlockDevice,
    /// A FIFO or anything else.
    Other,
}

/// A command the host ran (`mount`, `umount`) failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// It could not be started: `"mount" "-t" "tmpfs" …: No such file or
    /// directory (os error 2)`.
    #[error("{command}: {source}")]
    Spawn {
        /// The command as `std::process::Command` prints it.
        command: String,
        source: io::Error,
    },
    /// It ran and failed: `"umount" "/x" failed (exit status: 32): …`.
    #[error("{command} failed ({status}): {stderr}")]
    Failed {
        /// The command as `std::process::Command` prints it.
        command: String,
        status: ExitStatus,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

impl CommandError {
    /// The [`io::ErrorKind`] of the failure (`Other` for a failed run).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            CommandError::Spawn { source, .. } => source.kind(),
            CommandError::Failed { .. } => io::ErrorKind::Other,
        }
    }
}

/// The node's I/O that podvisor needs. Calls block: run them off the
/// async executor (`spawn_blocking`).
pub trait Host: Send + Sync {
    /// What `path` is, following symlinks (`stat`).
    fn stat(&self, path: &Path) -> io::Result<FileKind>;
    /// What `path` is, not following a final symlink (`lstat`).
    fn lstat(&self, path: &Path) -> io::Result<FileKind>;
    /// The absolute path with every symlink resolved.
    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf>;
    /// Creates a directory and its missing parents (`mkdir -p`).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates an empty file unless one exists (never truncates); the parent
    /// must exist.
    fn create_file(&self, path: &Path) -> io::Result<()>;
    /// Sets the permission bits (`chmod`).
    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()>;
    /// Removes a directory and everything in it; symlinks are removed, not
    /// followed.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Every mount point of the node's mount table, in its order.
    fn mount_points(&self) -> io::Result<Vec<PathBuf>>;
    /// Mounts a tmpfs on `dir`: `mount -t tmpfs [-o size=BYTES] tmpfs DIR`;
    /// a size of `None` or 0 leaves the kernel's default.
    fn mount_tmpfs(&self, dir: &Path, size: Option<i64>) -> Result<(), CommandError>;
    /// Unmounts what is mounted on `dir` (`umount <dir>`).
    fn unmount(&self, dir: &Path) -> Result<(), CommandError>;
    /// The CPUs this process may use; `None` when it cannot tell.
    fn cpus(&self) -> Option<usize>;
    /// The machine's memory in bytes; `None` when it cannot tell.
    fn memory_bytes(&self) -> Option<i64>;
    /// Sets the group owner, the user left as is (`chown :gid`).
    fn set_group(&self, path: &Path, gid: u32) -> io::Result<()>;
}
