//! [`teardown_volumes`]: unmounts and removes a pod's directory.

use std::io;
use std::path::{Path, PathBuf};

use super::{io_failure, Failure, VolumeError};
use crate::host::{FileKind, Host};
use crate::spec::volumes::unmount_order;

/// Removes a pod's directory (`<root-dir>/pods/<uid>`): unmounts everything
/// mounted under it (deepest first), checks nothing is left mounted, then
/// deletes it recursively (symlinks are removed, not followed). A missing
/// directory is fine; a symlink in its place is refused.
pub fn teardown_volumes(host: &dyn Host, uid_dir: &Path) -> Result<(), VolumeError> {
    let fail = |failure| VolumeError {
        volume: None,
        failure,
    };
    match host.lstat(uid_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fail(io_failure("stat", uid_dir)(e))),
        Ok(FileKind::Symlink) => return Err(fail(Failure::PodDirIsSymlink(uid_dir.into()))),
        Ok(_) => {}
    }
    let real = host
        .canonicalize(uid_dir)
        .map_err(io_failure("resolve", uid_dir))
        .map_err(fail)?;
    let under = || -> Result<Vec<PathBuf>, VolumeError> {
        let points = host.mount_points().map_err(Failure::MountTable);
        Ok(unmount_order(points.map_err(fail)?, &real))
    };
    for mount_point in under()? {
        host.unmount(&mount_point)
            .map_err(|e| fail(Failure::Command(e)))?;
    }
    if let Some(left) = under()?.first() {
        return Err(fail(Failure::StillMounted {
            mount_point: left.clone(),
            pod_dir: uid_dir.to_path_buf(),
        }));
    }
    host.remove_dir_all(&real)
        .map_err(io_failure("remove", &real))
        .map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, HostCall, Op};
    use crate::host::RealHost;
    use std::fs;

    // --- Against FakeHost ---

    const UID_DIR: &str = "/r/pods/u";

    fn pod_with_mounts() -> FakeHost {
        let fake = FakeHost::new();
        for v in ["a", "b", "b/deeper"] {
            fake.add_dir(format!("{UID_DIR}/volumes/{v}"), 0o777);
        }
        fake.add_mount("/proc");
        fake.add_mount(format!("{UID_DIR}/volumes/a"));
        fake.add_mount(format!("{UID_DIR}/volumes/b"));
        fake.add_mount(format!("{UID_DIR}/volumes/b/deeper"));
        fake.add_mount("/r/pods/u2/volumes/a");
        fake
    }

    #[test]
    fn teardown_unmounts_deepest_first_then_removes() {
        let fake = pod_with_mounts();
        teardown_volumes(&fake, Path::new(UID_DIR)).unwrap();
        let v = |name: &str| PathBuf::from(format!("{UID_DIR}/volumes/{name}"));
        assert_eq!(
            fake.changes(),
            vec![
                HostCall::Unmount(v("b/deeper")),
                HostCall::Unmount(v("a")),
                HostCall::Unmount(v("b")),
                HostCall::RemoveDirAll(UID_DIR.into()),
            ]
        );
        assert!(!fake.exists(UID_DIR));
        assert!(fake.exists("/r/pods"));
        let left: Vec<PathBuf> = fake.mounts().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            left,
            vec![PathBuf::from("/proc"), "/r/pods/u2/volumes/a".into()]
        );
        teardown_volumes(&fake, Path::new(UID_DIR)).unwrap(); // already gone: fine
    }

    #[test]
    fn a_failed_unmount_removes_nothing() {
        let fake = pod_with_mounts();
        fake.fail(Op::Unmount, format!("{UID_DIR}/volumes/a"));
        let e = teardown_volumes(&fake, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume, None);
        assert!(e.to_string().starts_with("\"umount\" "), "{e}");
        assert!(fake.exists(UID_DIR));
        assert!(!fake
            .changes()
            .iter()
            .any(|c| matches!(c, HostCall::RemoveDirAll(_))));
    }

    #[test]
    fn what_stays_mounted_is_named_and_nothing_is_removed() {
        let fake = pod_with_mounts();
        fake.pin_mount(format!("{UID_DIR}/volumes/b"));
        let e = teardown_volumes(&fake, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{UID_DIR}/volumes/b is still mounted; not removing {UID_DIR}")
        );
        assert!(fake.exists(format!("{UID_DIR}/volumes/a")));
    }

    #[test]
    fn teardown_resolves_the_pod_directory_and_refuses_a_symlink() {
        let fake = FakeHost::new();
        fake.add_dir("/data/pods/u/volumes/m", 0o777);
        fake.add_symlink("/r", "/data");
        fake.add_mount("/data/pods/u/volumes/m");
        teardown_volumes(&fake, Path::new(UID_DIR)).unwrap();
        assert!(!fake.exists("/data/pods/u"));
        assert!(fake.mounts().is_empty());

        let fake = FakeHost::new();
        fake.add_dir("/precious", 0o755);
        fake.add_symlink(UID_DIR, "/precious");
        let e = teardown_volumes(&fake, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            format!("{UID_DIR} is a symlink; not removing")
        );
        assert!(fake.exists("/precious"));
        assert!(fake.changes().is_empty());
    }

    #[test]
    fn an_unreadable_pod_directory_or_mount_table_stops_teardown() {
        let fake = pod_with_mounts();
        fake.fail(Op::Lstat, UID_DIR);
        let e = teardown_volumes(&fake, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.to_string(), format!("stat {UID_DIR}: permission denied"));
        let fake = pod_with_mounts();
        fake.fail_all(Op::MountPoints);
        let e = teardown_volumes(&fake, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(fake.changes().is_empty());
    }

    // --- Against the real host (tempdirs) ---

    #[test]
    fn teardown_refuses_a_symlinked_pod_directory() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("precious");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), "x").unwrap();
        let link = root.path().join("pod");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(teardown_volumes(&RealHost, &link).is_err());
        assert!(target.join("keep").exists());
    }

    #[test]
    fn teardown_does_not_follow_symlinks_inside() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let uid_dir = root.path().join("pods/u");
        fs::create_dir_all(uid_dir.join("volumes/data")).unwrap();
        std::os::unix::fs::symlink(&outside, uid_dir.join("volumes/data/escape")).unwrap();
        teardown_volumes(&RealHost, &uid_dir).unwrap();
        assert!(!uid_dir.exists());
        assert!(outside.join("keep").exists());
    }
}
