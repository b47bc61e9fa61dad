//! [`setup_volumes`]: the pod's directory, its emptyDirs (tmpfs for
//! `medium: Memory`) and the `hostPath` type checks.

use std::io;
use std::path::Path;

use super::{io_failure, Failure, VolumeError};
use crate::host::{FileKind, Host};
use crate::spec::volumes::steps::{
    CREATED_DIR_MODE, CREATED_FILE_MODE, FS_GROUP_DIR_BITS, POD_DIR_MODE,
};
use crate::spec::volumes::{volume_step, HostPathCheck, PodVolumes, VolumeSource, VolumeStep};

/// How a failed `*OrCreate` reads.
const CANNOT_CREATE: &str = "hostPath type check failed: cannot create";

/// Prepares the pod's volumes on the host: creates `uid_dir`
/// (`<root-dir>/pods/<uid>`, 0750), then, volume by volume in name order,
/// each emptyDir (its `mode`, 0777 by default; it must lie under `uid_dir`),
/// mounts tmpfs on `medium: Memory` ones (`size=<bytes>` when limited)
/// unless already mounted, and runs the kubelet's `hostPath` type checks:
/// `DirectoryOrCreate` creates a missing directory (0755), `FileOrCreate` a
/// missing empty file (0644; its parent must exist), the other types must
/// exist and be of that kind (`hostPath type check failed: /x is not a
/// directory`). Stops at the first failure, which names its volume.
/// Idempotent.
pub fn setup_volumes(
    host: &dyn Host,
    vols: &PodVolumes,
    uid_dir: &Path,
) -> Result<(), VolumeError> {
    let pod_dir = |failure| VolumeError {
        volume: None,
        failure,
    };
    host.create_dir_all(uid_dir)
        .map_err(io_failure("mkdir", uid_dir))
        .map_err(pod_dir)?;
    host.set_mode(uid_dir, POD_DIR_MODE)
        .map_err(io_failure("chmod", uid_dir))
        .map_err(pod_dir)?;
    for (name, source) in &vols.volumes {
        set_up(host, source, uid_dir, vols.fs_group).map_err(|failure| VolumeError {
            volume: Some(name.clone()),
            failure,
        })?;
    }
    Ok(())
}

fn set_up(
    host: &dyn Host,
    source: &VolumeSource,
    uid_dir: &Path,
    fs_group: Option<u32>,
) -> Result<(), Failure> {
    match volume_step(source, uid_dir)? {
        VolumeStep::EmptyDir { dir, mode, tmpfs } => {
            host.create_dir_all(&dir)
                .map_err(io_failure("mkdir", &dir))?;
            host.set_mode(&dir, mode)
                .map_err(io_failure("chmod", &dir))?;
            if let Some(t) = tmpfs {
                mount_tmpfs(host, &dir, t.size, mode)?;
            }
            match fs_group {
                Some(gid) => own_by_group(host, &dir, mode, gid),
                None => Ok(()),
            }
        }
        VolumeStep::HostPath { path, check } => check_host_path(host, &path, check),
    }
}

/// The kubelet's `SetVolumeOwnership` on a volume's directory: group
/// `gid`, setgid, and group read, write and search added to `mode`.
fn own_by_group(host: &dyn Host, dir: &Path, mode: u32, gid: u32) -> Result<(), Failure> {
    host.set_group(dir, gid).map_err(io_failure("chown", dir))?;
    host.set_mode(dir, mode | FS_GROUP_DIR_BITS)
        .map_err(io_failure("chmod", dir))
}

/// Mounts a tmpfs on `dir` unless something is mounted there already.
fn mount_tmpfs(host: &dyn Host, dir: &Path, size: Option<i64>, mode: u32) -> Result<(), Failure> {
    let real = host.canonicalize(dir).map_err(io_failure("resolve", dir))?;
    if host
        .mount_points()
        .map_err(Failure::MountTable)?
        .contains(&real)
    {
        return Ok(());
    }
    host.mount_tmpfs(&real, size)?;
    host.set_mode(&real, mode)
        .map_err(io_failure("chmod", &real))
}

/// The kubelet's `hostPath` type check (symlinks are followed).
fn check_host_path(host: &dyn Host, path: &Path, check: HostPathCheck) -> Result<(), Failure> {
    use HostPathCheck as C;
    let meta = host.stat(path);
    let missing = matches!(&meta, Err(e) if e.kind() == io::ErrorKind::NotFound);
    let is = |kind: FileKind| meta.as_ref().ok() == Some(&kind);
    let failed = |what: &'static str| {
        Err(Failure::NotOfType {
            path: path.to_path_buf(),
            what,
        })
    };
    match check {
        C::None => Ok(()),
        C::DirectoryOrCreate if missing => {
            host.create_dir_all(path)
                .map_err(io_failure(CANNOT_CREATE, path))?;
            host.set_mode(path, CREATED_DIR_MODE)
                .map_err(io_failure("chmod", path))
        }
        C::DirectoryOrCreate | C::Directory if is(FileKind::Dir) => Ok(()),
        C::DirectoryOrCreate | C::Directory => failed("a directory"),
        C::FileOrCreate if missing => {
            host.create_file(path)
                .map_err(io_failure(CANNOT_CREATE, path))?;
            host.set_mode(path, CREATED_FILE_MODE)
                .map_err(io_failure("chmod", path))
        }
        C::FileOrCreate | C::File if is(FileKind::File) => Ok(()),
        C::FileOrCreate | C::File => failed("a file"),
        C::Socket if is(FileKind::Socket) => Ok(()),
        C::Socket => failed("a socket file"),
        C::CharDevice if is(FileKind::CharDevice) => Ok(()),
        C::CharDevice => failed("a character device"),
        C::BlockDevice if is(FileKind::BlockDevice) => Ok(()),
        C::BlockDevice => failed("a block device"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::{FakeHost, HostCall, Op};
    use crate::host::real::{unescape_mountinfo, Unmount};
    use crate::host::{teardown_volumes, RealHost};
    use crate::spec::volumes::fixtures::{empty_dir, host, pod};
    use crate::spec::volumes::plan_volumes;
    use k8s_openapi::api::core::v1::EmptyDirVolumeSource;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    // --- Against FakeHost: what is asked of the host, in which order ---

    const UID_DIR: &str = "/r/pods/u";

    fn memory(name: &str) -> k8s_openapi::api::core::v1::Volume {
        let mut v = empty_dir(name);
        v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
            mode: None,
        });
        v
    }

    fn planned(volumes: Vec<k8s_openapi::api::core::v1::Volume>) -> PodVolumes {
        plan_volumes(&pod(volumes), "u", Path::new("/r"), &[]).unwrap()
    }

    fn vol(name: &str) -> PathBuf {
        Path::new(UID_DIR).join("volumes").join(name)
    }

    #[test]
    fn the_planned_dirs_and_mounts_are_requested_in_order() {
        let fake = FakeHost::new();
        fake.add_special("/run/x.sock", FileKind::Socket);
        let vols = planned(vec![
            host("sock", "/run/x.sock", Some("Socket")),
            empty_dir("data"),
            host("logs", "/var/log/app", Some("DirectoryOrCreate")),
            memory("cache"),
            host("conf", "/etc/app.conf", Some("FileOrCreate")),
        ]);
        fake.add_dir("/etc", 0o755);
        setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap();
        let mode = |p: PathBuf, m: u32| HostCall::SetMode(p, m);
        assert_eq!(
            fake.changes(),
            vec![
                HostCall::CreateDirAll(UID_DIR.into()),
                mode(UID_DIR.into(), 0o750),
                // By name: cache, conf, data, logs, sock.
                HostCall::CreateDirAll(vol("cache")),
                mode(vol("cache"), 0o777),
                HostCall::MountTmpfs(vol("cache"), Some(1 << 20)),
                mode(vol("cache"), 0o777),
                HostCall::CreateFile("/etc/app.conf".into()),
                mode("/etc/app.conf".into(), 0o644),
                HostCall::CreateDirAll(vol("data")),
                mode(vol("data"), 0o777),
                HostCall::CreateDirAll("/var/log/app".into()),
                mode("/var/log/app".into(), 0o755),
            ]
        );
        assert_eq!(fake.mode(vol("data")), Some(0o777));
        assert_eq!(fake.mode(UID_DIR), Some(0o750));
    }

    #[test]
    fn setting_up_again_mounts_nothing_twice_and_creates_nothing() {
        let fake = FakeHost::new();
        let vols = planned(vec![
            memory("cache"),
            host("logs", "/l", Some("DirectoryOrCreate")),
        ]);
        setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap();
        let before = fake.changes().len();
        setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap();
        assert_eq!(fake.mounts(), vec![(vol("cache"), Some(1 << 20))]);
        let again: Vec<HostCall> = fake.changes().split_off(before);
        assert!(
            again
                .iter()
                .all(|c| matches!(c, HostCall::CreateDirAll(_) | HostCall::SetMode(..))),
            "{again:?}"
        );
        assert!(!again.contains(&HostCall::CreateDirAll("/l".into())));
    }

    #[test]
    fn fs_group_owns_empty_dirs_setgid_and_group_writable() {
        let fake = FakeHost::new();
        let mut vols = planned(vec![empty_dir("data"), host("logs", "/l", None)]);
        vols.fs_group = Some(2000);
        setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap();
        let changes = fake.changes();
        assert!(
            changes.contains(&HostCall::SetGroup(vol("data"), 2000)),
            "{changes:?}"
        );
        assert_eq!(fake.mode(vol("data")), Some(0o2777));
        assert!(
            !changes
                .iter()
                .any(|c| matches!(c, HostCall::SetGroup(p, _) if p == Path::new("/l"))),
            "a hostPath is the host's: left as is"
        );
        let mut vols = planned(vec![memory("cache")]);
        vols.fs_group = Some(7);
        setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap();
        assert_eq!(
            fake.changes().last(),
            Some(&HostCall::SetMode(vol("cache"), 0o2777))
        );
    }

    #[test]
    fn a_failure_midway_names_the_volume_and_stops_there() {
        let fake = FakeHost::new();
        fake.fail(Op::CreateDirAll, vol("data"));
        let vols = planned(vec![
            empty_dir("a-first"),
            empty_dir("data"),
            empty_dir("z-last"),
        ]);
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("data"));
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            e.to_string(),
            format!("mkdir {}: permission denied", vol("data").display())
        );
        let changes = fake.changes();
        assert_eq!(changes.last(), Some(&HostCall::CreateDirAll(vol("data"))));
        assert!(changes.contains(&HostCall::SetMode(vol("a-first"), 0o777)));
        assert!(!fake.exists(vol("z-last")));
    }

    #[test]
    fn a_failed_mount_names_the_volume_and_the_command() {
        let fake = FakeHost::new();
        fake.fail_all(Op::MountTmpfs);
        let vols = planned(vec![empty_dir("data"), memory("mem")]);
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("mem"));
        assert_eq!(
            e.to_string(),
            format!(
                "\"mount\" \"-t\" \"tmpfs\" \"-o\" \"size=1048576\" \"tmpfs\" \"{}\" failed (exit status: 32): fake failure",
                vol("mem").display()
            )
        );
        let fake = FakeHost::new();
        fake.fail_all(Op::MountPoints);
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("mem"));
        assert!(matches!(e.failure, Failure::MountTable(_)), "{e:?}");
    }

    #[test]
    fn a_memory_dir_already_mounted_is_left_as_is() {
        let fake = FakeHost::new();
        fake.add_dir(vol("mem"), 0o777);
        fake.add_mount(vol("mem"));
        setup_volumes(&fake, &planned(vec![memory("mem")]), Path::new(UID_DIR)).unwrap();
        assert!(!fake
            .changes()
            .iter()
            .any(|c| matches!(c, HostCall::MountTmpfs(..))));
        assert_eq!(fake.mounts().len(), 1);
    }

    #[test]
    fn the_tmpfs_goes_on_the_resolved_directory() {
        let fake = FakeHost::new();
        fake.add_dir("/elsewhere/pods", 0o755);
        fake.add_symlink("/r", "/elsewhere");
        setup_volumes(&fake, &planned(vec![memory("mem")]), Path::new(UID_DIR)).unwrap();
        let real = PathBuf::from("/elsewhere/pods/u/volumes/mem");
        assert_eq!(fake.mounts(), vec![(real.clone(), Some(1 << 20))]);
        assert_eq!(fake.changes().last(), Some(&HostCall::SetMode(real, 0o777)));
    }

    #[test]
    fn the_pod_directory_failing_names_no_volume() {
        let fake = FakeHost::new();
        fake.fail(Op::SetMode, UID_DIR);
        let e = setup_volumes(&fake, &planned(vec![empty_dir("data")]), Path::new(UID_DIR))
            .unwrap_err();
        assert_eq!(e.volume, None);
        assert_eq!(e.to_string(), format!("chmod {UID_DIR}: permission denied"));
        assert!(!fake.exists(vol("data")));
    }

    #[test]
    fn host_path_checks_name_their_volume() {
        let fake = FakeHost::new();
        fake.add_file("/srv/file");
        let vols = planned(vec![host("files", "/srv/file", Some("Directory"))]);
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("files"));
        assert_eq!(
            e.to_string(),
            "hostPath type check failed: /srv/file is not a directory"
        );
        let vols = planned(vec![host("orphan", "/no/parent.txt", Some("FileOrCreate"))]);
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("orphan"));
        assert!(
            e.to_string()
                .starts_with("hostPath type check failed: cannot create /no/parent.txt: "),
            "{e}"
        );
        fake.fail(Op::Stat, "/srv/file");
        let vols = planned(vec![host("files", "/srv/file", Some("File"))]);
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hostPath type check failed: /srv/file is not a file",
            "a stat that fails otherwise than not found is not of the type"
        );
    }

    #[test]
    fn a_refused_step_names_the_volume_and_touches_nothing_of_it() {
        let fake = FakeHost::new();
        let mut vols = PodVolumes::default();
        vols.volumes.insert(
            "weird".into(),
            VolumeSource::HostPath {
                path: "/w".into(),
                type_: "Weird".into(),
            },
        );
        let e = setup_volumes(&fake, &vols, Path::new(UID_DIR)).unwrap_err();
        assert_eq!(e.volume.as_deref(), Some("weird"));
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(e.to_string(), "Weird is an invalid volume type");
        assert_eq!(fake.changes().len(), 2, "the pod directory only");
    }

    // --- Against the real host (tempdirs; the tmpfs test needs root, as podvisor does) ---

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn host_vol(path: &Path, type_: &str) -> PodVolumes {
        let mut v = PodVolumes::default();
        v.volumes.insert(
            "h".into(),
            VolumeSource::HostPath {
                path: path.to_path_buf(),
                type_: type_.into(),
            },
        );
        v
    }

    fn check(path: &Path, type_: &str, uid_dir: &Path) -> Result<(), String> {
        setup_volumes(&RealHost, &host_vol(path, type_), uid_dir).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_dirs_are_created_world_writable_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let mut more = empty_dir("more");
        more.empty_dir.as_mut().unwrap().mode = Some(0o750);
        let p = pod(vec![empty_dir("data"), more]);
        let vols = plan_volumes(&p, "uid-1", root.path(), &[]).unwrap();
        let uid_dir = root.path().join("pods/uid-1");
        setup_volumes(&RealHost, &vols, &uid_dir).unwrap();
        setup_volumes(&RealHost, &vols, &uid_dir).unwrap(); // idempotent
        let data = uid_dir.join("volumes/data");
        assert!(data.is_dir());
        assert_eq!(mode(&data), 0o777);
        assert_eq!(mode(&uid_dir), 0o750);
        assert_eq!(mode(&uid_dir.join("volumes/more")), 0o750);
        fs::write(data.join("f"), "x").unwrap();
        teardown_volumes(&RealHost, &uid_dir).unwrap();
        assert!(!uid_dir.exists());
        assert!(root.path().join("pods").is_dir());
        teardown_volumes(&RealHost, &uid_dir).unwrap(); // already gone: fine
    }

    #[test]
    fn an_empty_dir_outside_the_pod_directory_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let mut v = PodVolumes::default();
        v.volumes.insert(
            "x".into(),
            VolumeSource::EmptyDir {
                host_dir: root.path().join("elsewhere"),
                medium_memory: false,
                size_limit: None,
                mode: 0o777,
            },
        );
        let e = setup_volumes(&RealHost, &v, &root.path().join("pods/u")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(!root.path().join("elsewhere").exists());
    }

    #[test]
    fn memory_empty_dir_is_a_sized_tmpfs_mounted_once_and_unmounted_on_teardown() {
        let root = tempfile::tempdir().unwrap();
        let mut v = empty_dir("mem");
        v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
            mode: None,
        });
        let vols = plan_volumes(&pod(vec![v]), "u", root.path(), &[]).unwrap();
        let uid_dir = root.path().join("pods/u");
        let dir = uid_dir.join("volumes/mem");
        let _guard = Unmount(dir.clone());
        if let Err(e) = setup_volumes(&RealHost, &vols, &uid_dir) {
            panic!("mounting tmpfs failed; this test needs root (CAP_SYS_ADMIN), as podvisor does: {e}");
        }
        setup_volumes(&RealHost, &vols, &uid_dir).unwrap();
        let real = fs::canonicalize(&dir).unwrap();
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let lines: Vec<&str> = info
            .lines()
            .filter(|l| l.split(' ').nth(4).map(unescape_mountinfo) == Some(real.clone()))
            .collect();
        assert_eq!(lines.len(), 1, "mounted exactly once: {lines:?}");
        assert!(lines[0].contains(" - tmpfs "), "{}", lines[0]);
        assert!(lines[0].contains("size=1024k"), "{}", lines[0]);
        assert_eq!(mode(&dir), 0o777);
        // The size limit holds.
        let big = vec![0u8; 2 << 20];
        assert!(fs::write(dir.join("big"), &big).is_err());
        teardown_volumes(&RealHost, &uid_dir).unwrap();
        assert!(!RealHost.mount_points().unwrap().contains(&real));
        assert!(!uid_dir.exists());
    }

    #[test]
    fn host_path_directory_checks() {
        let root = tempfile::tempdir().unwrap();
        let uid_dir = root.path().join("pods/u");
        let dir = root.path().join("made/deep");
        check(&dir, "DirectoryOrCreate", &uid_dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(mode(&dir), 0o755);
        check(&dir, "DirectoryOrCreate", &uid_dir).unwrap();
        check(&dir, "Directory", &uid_dir).unwrap();
        let missing = root.path().join("missing");
        assert_eq!(
            check(&missing, "Directory", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                missing.display()
            )
        );
        let file = root.path().join("f");
        fs::write(&file, "").unwrap();
        assert_eq!(
            check(&file, "DirectoryOrCreate", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        check(&missing, "", &uid_dir).unwrap();
        assert!(!missing.exists(), "no type: no check, nothing created");
    }

    #[test]
    fn host_path_file_checks() {
        let root = tempfile::tempdir().unwrap();
        let uid_dir = root.path().join("pods/u");
        let file = root.path().join("new.txt");
        check(&file, "FileOrCreate", &uid_dir).unwrap();
        assert!(file.is_file());
        assert_eq!(fs::metadata(&file).unwrap().len(), 0);
        assert_eq!(mode(&file), 0o644);
        fs::write(&file, "keep").unwrap();
        check(&file, "FileOrCreate", &uid_dir).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep", "not truncated");
        check(&file, "File", &uid_dir).unwrap();
        let orphan = root.path().join("no/parent.txt");
        let e = check(&orphan, "FileOrCreate", &uid_dir).unwrap_err();
        assert!(e.contains("cannot create"), "{e}");
        assert_eq!(
            check(root.path(), "File", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a file",
                root.path().display()
            )
        );
        assert_eq!(
            check(root.path(), "FileOrCreate", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a file",
                root.path().display()
            )
        );
    }

    #[test]
    fn host_path_special_file_checks() {
        let root = tempfile::tempdir().unwrap();
        let uid_dir = root.path().join("pods/u");
        let sock = root.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        check(&sock, "Socket", &uid_dir).unwrap();
        assert_eq!(
            check(&sock, "File", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a file",
                sock.display()
            )
        );
        assert_eq!(
            check(root.path(), "Socket", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a socket file",
                root.path().display()
            )
        );
        check(Path::new("/dev/null"), "CharDevice", &uid_dir).unwrap();
        assert_eq!(
            check(Path::new("/dev/null"), "BlockDevice", &uid_dir).unwrap_err(),
            "hostPath type check failed: /dev/null is not a block device"
        );
        assert_eq!(
            check(root.path(), "CharDevice", &uid_dir).unwrap_err(),
            format!(
                "hostPath type check failed: {} is not a character device",
                root.path().display()
            )
        );
        assert_eq!(
            check(root.path(), "Weird", &uid_dir).unwrap_err(),
            "Weird is an invalid volume type"
        );
    }

    #[test]
    fn host_path_checks_follow_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let uid_dir = root.path().join("pods/u");
        let real = root.path().join("real");
        fs::create_dir(&real).unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        check(&link, "Directory", &uid_dir).unwrap();
    }
}
