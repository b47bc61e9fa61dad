//! What a pod's volumes ask of the host, decided without touching it:
//! [`volume_step`] for setting up one volume, [`unmount_order`] for
//! teardown. [`crate::host::volumes`] carries them out.

use std::path::{Path, PathBuf};

use super::{has_dotdot, VolumeSource};

/// The mode of the pod's own directory (`<root-dir>/pods/<uid>`).
pub const POD_DIR_MODE: u32 = 0o750;
/// What `fsGroup` adds to a volume directory's mode: setgid and the
/// group's read, write and search (the kubelet's `SetVolumeOwnership`).
pub const FS_GROUP_DIR_BITS: u32 = 0o2770;
/// The mode of a `downwardAPI` volume's directory (bound read-only).
pub const DOWNWARD_DIR_MODE: u32 = 0o755;
/// The mode of a directory `DirectoryOrCreate` creates.
pub const CREATED_DIR_MODE: u32 = 0o755;
/// The mode of a file `FileOrCreate` creates.
pub const CREATED_FILE_MODE: u32 = 0o644;

/// The kubelet's `hostPath.type` checks (symlinks are followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPathCheck {
    /// `""`: no check.
    None,
    /// Creates a missing directory ([`CREATED_DIR_MODE`]).
    DirectoryOrCreate,
    Directory,
    /// Creates a missing empty file ([`CREATED_FILE_MODE`]); its parent
    /// must exist.
    FileOrCreate,
    File,
    Socket,
    CharDevice,
    BlockDevice,
}

impl HostPathCheck {
    /// The check for a `hostPath.type` (one of
    /// [`HOST_PATH_TYPES`](super::HOST_PATH_TYPES)).
    pub fn parse(type_: &str) -> Option<Self> {
        Some(match type_ {
            "" => Self::None,
            "DirectoryOrCreate" => Self::DirectoryOrCreate,
            "Directory" => Self::Directory,
            "FileOrCreate" => Self::FileOrCreate,
            "File" => Self::File,
            "Socket" => Self::Socket,
            "CharDevice" => Self::CharDevice,
            "BlockDevice" => Self::BlockDevice,
            _ => return None,
        })
    }
}

/// A tmpfs to mount (`medium: Memory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tmpfs {
    /// Bytes; `None` (or 0): the kernel's default.
    pub size: Option<i64>,
}

/// What setting up one volume asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeStep {
    /// Make `dir` with `mode`; with `tmpfs`, mount one on it unless
    /// something is mounted there already.
    EmptyDir {
        dir: PathBuf,
        mode: u32,
        tmpfs: Option<Tmpfs>,
    },
    /// Check (and with `*OrCreate`, make) the host's `path`.
    HostPath { path: PathBuf, check: HostPathCheck },
}

/// A volume the host must not set up as planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// An emptyDir would lie outside the pod's directory.
    #[error("emptyDir {} is not under the pod directory {}", host_dir.display(), pod_dir.display())]
    OutsidePodDir { host_dir: PathBuf, pod_dir: PathBuf },
    /// A `hostPath.type` Kubernetes does not define.
    #[error("{0} is an invalid volume type")]
    InvalidHostPathType(String),
}

/// What setting up `source` asks of the host, for a pod whose directory is
/// `pod_dir`. An emptyDir must lie under `pod_dir` (without `..`).
pub fn volume_step(source: &VolumeSource, pod_dir: &Path) -> Result<VolumeStep, StepError> {
    match source {
        VolumeSource::EmptyDir {
            host_dir,
            medium_memory,
            size_limit,
            mode,
        } => {
            if !host_dir.starts_with(pod_dir) || has_dotdot(host_dir) {
                return Err(StepError::OutsidePodDir {
                    host_dir: host_dir.clone(),
                    pod_dir: pod_dir.to_path_buf(),
                });
            }
            Ok(VolumeStep::EmptyDir {
                dir: host_dir.clone(),
                mode: *mode,
                tmpfs: medium_memory.then_some(Tmpfs { size: *size_limit }),
            })
        }
        // Its files are the worker's ([`crate::host::files`]); the
        // directory is made as an emptyDir's.
        VolumeSource::DownwardApi { host_dir, .. } => {
            if !host_dir.starts_with(pod_dir) || has_dotdot(host_dir) {
                return Err(StepError::OutsidePodDir {
                    host_dir: host_dir.clone(),
                    pod_dir: pod_dir.to_path_buf(),
                });
            }
            Ok(VolumeStep::EmptyDir {
                dir: host_dir.clone(),
                mode: DOWNWARD_DIR_MODE,
                tmpfs: None,
            })
        }
        VolumeSource::HostPath { path, type_ } => match HostPathCheck::parse(type_) {
            Some(check) => Ok(VolumeStep::HostPath {
                path: path.clone(),
                check,
            }),
            None => Err(StepError::InvalidHostPathType(type_.clone())),
        },
    }
}

/// The mount points to unmount before removing `root` (a resolved path):
/// those under it (itself included), deepest first; a run of the same
/// point is unmounted once.
pub fn unmount_order(mount_points: Vec<PathBuf>, root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mount_points
        .into_iter()
        .filter(|m| m.starts_with(root))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{empty_dir, host, plan};
    use super::*;
    use crate::spec::volumes::HOST_PATH_TYPES;
    use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    const POD_DIR: &str = "/var/lib/podvisor/pods/u1";

    #[test]
    fn empty_dirs_are_made_with_their_mode_and_memory_ones_mounted() {
        let mut mem = empty_dir("cache");
        mem.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
            mode: Some(0o700),
        });
        let v = plan(vec![empty_dir("data"), mem], &[]).unwrap();
        let pod_dir = Path::new(POD_DIR);
        assert_eq!(
            volume_step(&v.volumes["data"], pod_dir),
            Ok(VolumeStep::EmptyDir {
                dir: format!("{POD_DIR}/volumes/data").into(),
                mode: 0o777,
                tmpfs: None
            })
        );
        assert_eq!(
            volume_step(&v.volumes["cache"], pod_dir),
            Ok(VolumeStep::EmptyDir {
                dir: format!("{POD_DIR}/volumes/cache").into(),
                mode: 0o700,
                tmpfs: Some(Tmpfs {
                    size: Some(1 << 20)
                })
            })
        );
    }

    #[test]
    fn an_empty_dir_must_stay_in_the_pod_directory() {
        let v = plan(vec![empty_dir("data")], &[]).unwrap();
        let e = volume_step(&v.volumes["data"], Path::new("/var/lib/podvisor/pods/u2"));
        assert_eq!(
            e.unwrap_err().to_string(),
            "emptyDir /var/lib/podvisor/pods/u1/volumes/data is not under the pod directory /var/lib/podvisor/pods/u2"
        );
        let sneaky = VolumeSource::EmptyDir {
            host_dir: format!("{POD_DIR}/volumes/../../u2").into(),
            medium_memory: false,
            size_limit: None,
            mode: 0o777,
        };
        assert!(matches!(
            volume_step(&sneaky, Path::new(POD_DIR)),
            Err(StepError::OutsidePodDir { .. })
        ));
    }

    #[test]
    fn host_paths_carry_their_check() {
        for t in HOST_PATH_TYPES {
            let v = plan(vec![host("h", "/x", Some(t))], &[]).unwrap();
            let step = volume_step(&v.volumes["h"], Path::new(POD_DIR)).unwrap();
            let VolumeStep::HostPath { path, check } = step else {
                panic!("{step:?}");
            };
            assert_eq!(path, Path::new("/x"));
            assert_eq!(Some(check), HostPathCheck::parse(t), "{t}");
        }
        let weird = VolumeSource::HostPath {
            path: "/x".into(),
            type_: "Weird".into(),
        };
        assert_eq!(
            volume_step(&weird, Path::new(POD_DIR))
                .unwrap_err()
                .to_string(),
            "Weird is an invalid volume type"
        );
    }

    #[test]
    fn unmount_deepest_first_and_only_under_the_root() {
        let points: Vec<PathBuf> = ["/", "/p/a", "/p/a/b/c", "/p/a/b", "/q", "/p/a/b", "/pp"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            unmount_order(points, Path::new("/p")),
            vec![
                PathBuf::from("/p/a/b/c"),
                PathBuf::from("/p/a/b"),
                PathBuf::from("/p/a")
            ]
        );
        assert!(unmount_order(vec![], Path::new("/p")).is_empty());
        assert_eq!(
            unmount_order(vec!["/p".into()], Path::new("/p")),
            vec![PathBuf::from("/p")]
        );
    }
}
