//! A pod's volumes on the node: the plans of [`crate::spec::volumes`]
//! carried out through a [`Host`](super::Host).
//!
//! - [`setup`]: [`setup_volumes`] makes the pod's directory and its
//!   emptyDirs, mounts tmpfs, runs the `hostPath` type checks;
//! - [`subpaths`]: [`check_subpaths`] refuses a `subPath` through a symlink;
//! - [`teardown`]: [`teardown_volumes`] unmounts and removes the pod's
//!   directory.
//!
//! Errors are [`VolumeError`]s: the volume concerned, and what failed with
//! the wording the pod's status shows (`mkdir /x: Permission denied (os
//! error 13)`).

pub mod setup;
pub mod subpaths;
pub mod teardown;

use std::io;
use std::path::{Path, PathBuf};

use super::CommandError;
use crate::spec::volumes::StepError;

pub use setup::setup_volumes;
pub use subpaths::check_subpaths;
pub use teardown::teardown_volumes;

/// Setting up, checking or tearing down a pod's volumes failed. The message
/// is the [`Failure`]'s.
#[derive(Debug, thiserror::Error)]
#[error("{failure}")]
pub struct VolumeError {
    /// The volume concerned; `None` for the pod's own directory.
    pub volume: Option<String>,
    pub failure: Failure,
}

impl VolumeError {
    /// The [`io::ErrorKind`] of the failure.
    pub fn kind(&self) -> io::ErrorKind {
        self.failure.kind()
    }
}

impl From<VolumeError> for io::Error {
    fn from(e: VolumeError) -> Self {
        io::Error::new(e.kind(), e)
    }
}

/// What failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A file operation: `mkdir /x: Permission denied (os error 13)`.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// `mkdir`, `chmod`, `stat`, `resolve`, `remove`, or
        /// `hostPath type check failed: cannot create`.
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Reading the mount table.
    #[error("{0}")]
    MountTable(#[source] io::Error),
    /// `mount` or `umount`.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The plan refused the volume.
    #[error(transparent)]
    Refused(#[from] StepError),
    /// A `hostPath` is not of its `type`.
    #[error("hostPath type check failed: {} is not {what}", path.display())]
    NotOfType {
        path: PathBuf,
        /// `a directory`, `a file`, `a socket file`…
        what: &'static str,
    },
    /// A `subPath` goes through a symlink.
    #[error("subPath {sub:?} of volume {volume:?}: {} is a symlink; refusing to follow it", path.display())]
    SymlinkInSubPath {
        sub: String,
        volume: String,
        /// The symlink.
        path: PathBuf,
    },
    /// The pod's directory is a symlink: teardown does not remove it.
    #[error("{} is a symlink; not removing", .0.display())]
    PodDirIsSymlink(PathBuf),
    /// Something stayed mounted under the pod's directory.
    #[error("{} is still mounted; not removing {}", mount_point.display(), pod_dir.display())]
    StillMounted {
        mount_point: PathBuf,
        pod_dir: PathBuf,
    },
}

impl Failure {
    /// The [`io::ErrorKind`] of the failure: the operation's own for I/O,
    /// `InvalidInput` for what the plan or teardown refuses,
    /// `PermissionDenied` for a symlinked `subPath`, else `Other`.
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Failure::Io { source, .. } | Failure::MountTable(source) => source.kind(),
            Failure::Command(e) => e.kind(),
            Failure::Refused(_) | Failure::PodDirIsSymlink(_) => io::ErrorKind::InvalidInput,
            Failure::SymlinkInSubPath { .. } => io::ErrorKind::PermissionDenied,
            Failure::NotOfType { .. } | Failure::StillMounted { .. } => io::ErrorKind::Other,
        }
    }
}

/// A failed file operation on `path`.
fn io_failure<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Failure + 'a {
    move |source| Failure::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}
