//! Pod volumes: `emptyDir` and `hostPath`, planned from the spec, turned into
//! bind mounts per container, and what they need on the host. Pure: the
//! host side is carried out by [`crate::host::volumes`].
//!
//! - [`plan`](mod@plan): [`plan_volumes`], the pod's volumes validated and
//!   placed on the host;
//! - [`mounts`]: [`container_mounts`], a container's `volumeMounts` as
//!   Docker binds;
//! - [`steps`]: what setting up a volume asks of the host
//!   ([`volume_step`]), and the order teardown unmounts in.
//!
//! An `emptyDir` lives in `<root-dir>/pods/<uid>/volumes/<name>` (mode 0777),
//! on tmpfs for `medium: Memory` (sized by `sizeLimit` and the pod's memory
//! limit, as the kubelet does). A
//! `hostPath` is bound as is, after the kubelet's type checks. A
//! `downwardAPI` volume is a directory of the pod's, its files written by
//! the worker ([`crate::host::files`]) and bound read-only. Any other volume
//! type is refused.

pub mod downward;
pub mod mounts;
pub mod plan;
pub mod steps;

#[cfg(test)]
pub(crate) mod fixtures;

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use crate::manifest::FieldError;

pub use downward::{downward_files, DownwardField, DownwardItem};
pub use mounts::container_mounts;
pub use plan::{plan_volumes, VolumeRefusal};
pub use steps::{unmount_order, volume_step, HostPathCheck, StepError, Tmpfs, VolumeStep};

/// The `hostPath.type` values Kubernetes defines (`""`: no check).
pub const HOST_PATH_TYPES: &[&str] = &[
    "",
    "DirectoryOrCreate",
    "Directory",
    "FileOrCreate",
    "File",
    "Socket",
    "CharDevice",
    "BlockDevice",
];

/// Where one volume's data is on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A directory owned by the pod, removed with it.
    EmptyDir {
        /// `<root-dir>/pods/<uid>/volumes/<name>`.
        host_dir: PathBuf,
        /// `medium: Memory`: the directory is a tmpfs mount.
        medium_memory: bool,
        /// Bytes. On disk: `sizeLimit` (a zero limit counts as none). For
        /// `medium: Memory`, the tmpfs size, as the kubelet sizes it: the
        /// smaller of `sizeLimit` and the pod's memory limit (when every
        /// container has one); `None`: the kernel's default (half the RAM).
        size_limit: Option<i64>,
        /// Permission bits of the directory: `mode` (alpha in Kubernetes),
        /// 0777 when unset.
        mode: u32,
    },
    /// A path of the host, bound as is.
    HostPath {
        /// Absolute, without `..`.
        path: PathBuf,
        /// One of [`HOST_PATH_TYPES`].
        type_: String,
    },
    /// A `downwardAPI` volume: files written by podvisor (and rewritten when
    /// the pod's metadata changes), bound read-only.
    DownwardApi {
        /// `<root-dir>/pods/<uid>/volumes/<name>`.
        host_dir: PathBuf,
        items: Vec<DownwardItem>,
    },
}

impl VolumeSource {
    /// The host path a mount of this volume binds.
    pub fn host_path(&self) -> &Path {
        match self {
            VolumeSource::EmptyDir { host_dir, .. } => host_dir,
            VolumeSource::HostPath { path, .. } => path,
            VolumeSource::DownwardApi { host_dir, .. } => host_dir,
        }
    }
}

/// A pod's volumes by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    /// Volume name → where its data is.
    pub volumes: BTreeMap<String, VolumeSource>,
    /// The pod's `fsGroup`: owns its emptyDir and downwardAPI volumes
    /// (setgid, group-writable), as the kubelet's `SetVolumeOwnership`.
    pub fs_group: Option<u32>,
}

pub(crate) fn has_dotdot(p: &Path) -> bool {
    p.components().any(|c| c == Component::ParentDir)
}

/// Checks an absolute host path (`hostPath.path`, a mount's `mountPath`).
fn check_absolute(path: String, value: &str) -> Result<(), FieldError> {
    if value.is_empty() {
        return Err(FieldError::new(path, "Required value"));
    }
    if !value.starts_with('/') {
        return Err(FieldError::invalid(path, value, "must be an absolute path"));
    }
    check_bind_safe(path, value)
}

/// No `..` (Kubernetes' rule) and no `:` (it would split Docker's bind syntax).
fn check_bind_safe(path: String, value: &str) -> Result<(), FieldError> {
    if has_dotdot(Path::new(value)) {
        return Err(FieldError::invalid(path, value, "must not contain '..'"));
    }
    if value.contains(':') {
        return Err(FieldError::invalid(path, value, "must not contain ':'"));
    }
    Ok(())
}
