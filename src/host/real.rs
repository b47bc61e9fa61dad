//! [`RealHost`]: the node itself. File operations are `std::fs`; mounts go
//! through the `mount` and `umount` commands; the mount table is
//! `/proc/self/mountinfo`; the machine is `/proc/cpuinfo` and
//! `/proc/meminfo`.

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::machine::{cpuinfo_processors, meminfo_total_bytes};
use super::{CommandError, FileKind, Host};

/// The node podvisor runs on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealHost;

fn kind_of(t: fs::FileType) -> FileKind {
    if t.is_symlink() {
        FileKind::Symlink
    } else if t.is_dir() {
        FileKind::Dir
    } else if t.is_file() {
        FileKind::File
    } else if t.is_socket() {
        FileKind::Socket
    } else if t.is_char_device() {
        FileKind::CharDevice
    } else if t.is_block_device() {
        FileKind::BlockDevice
    } else {
        FileKind::Other
    }
}

/// Decodes the octal escapes (`\040` for a space…) of a `mountinfo` field.
pub(crate) fn unescape_mountinfo(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(value as u8);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// The mount points listed in a `/proc/self/mountinfo` text (5th field).
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .collect()
}

fn run(cmd: &mut Command) -> Result<(), CommandError> {
    let out = cmd.output().map_err(|source| CommandError::Spawn {
        command: format!("{cmd:?}"),
        source,
    })?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(CommandError::Failed {
        command: format!("{cmd:?}"),
        status: out.status,
        stderr: stderr.trim().to_string(),
    })
}

impl Host for RealHost {
    fn stat(&self, path: &Path) -> io::Result<FileKind> {
        Ok(kind_of(fs::metadata(path)?.file_type()))
    }

    fn lstat(&self, path: &Path) -> io::Result<FileKind> {
        Ok(kind_of(fs::symlink_metadata(path)?.file_type()))
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        fs::canonicalize(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map(drop)
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }

    fn mount_points(&self) -> io::Result<Vec<PathBuf>> {
        Ok(mount_points(&fs::read_to_string("/proc/self/mountinfo")?))
    }

    fn mount_tmpfs(&self, dir: &Path, size: Option<i64>) -> Result<(), CommandError> {
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs"]);
        if let Some(bytes) = size.filter(|b| *b > 0) {
            cmd.args(["-o", &format!("size={bytes}")]);
        }
        cmd.arg("tmpfs").arg(dir);
        run(&mut cmd)
    }

    fn unmount(&self, dir: &Path) -> Result<(), CommandError> {
        run(Command::new("umount").arg(dir))
    }

    /// `available_parallelism` (which honours affinity and cgroup quotas),
    /// else the `processor` entries of `/proc/cpuinfo`.
    fn cpus(&self) -> Option<usize> {
        std::thread::available_parallelism()
            .ok()
            .map(|n| n.get())
            .or_else(|| {
                let text = fs::read_to_string("/proc/cpuinfo").ok()?;
                Some(cpuinfo_processors(&text)).filter(|n| *n > 0)
            })
    }

    /// `MemTotal` of `/proc/meminfo`.
    fn memory_bytes(&self) -> Option<i64> {
        fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|text| meminfo_total_bytes(&text))
    }

    fn set_group(&self, path: &Path, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, None, Some(gid))
    }
}

/// Unmounts on drop whatever is still mounted on the path (as many times as
/// it is stacked), so a failing test leaves no tmpfs behind.
#[cfg(test)]
pub(crate) struct Unmount(pub PathBuf);

#[cfg(test)]
impl Drop for Unmount {
    fn drop(&mut self) {
        let real = fs::canonicalize(&self.0).unwrap_or_else(|_| self.0.clone());
        while RealHost.mount_points().unwrap_or_default().contains(&real) {
            if RealHost.unmount(&real).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn mountinfo_fields_are_unescaped() {
        let text = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                    179 27 0:99 / /tmp/a\\040b rw,relatime - tmpfs tmpfs rw,size=1024k\n\
                    180 27 0:99 / /tmp/back\\134slash rw - tmpfs tmpfs rw\n";
        assert_eq!(
            mount_points(text),
            vec![
                PathBuf::from("/proc"),
                PathBuf::from("/tmp/a b"),
                PathBuf::from("/tmp/back\\slash")
            ]
        );
        assert_eq!(unescape_mountinfo("/a\\04"), PathBuf::from("/a\\04"));
    }

    #[test]
    fn directories_are_made_with_parents_chmodded_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        RealHost.create_dir_all(&deep).unwrap();
        RealHost.create_dir_all(&deep).unwrap(); // already there: fine
        assert_eq!(RealHost.stat(&deep).unwrap(), FileKind::Dir);
        RealHost.set_mode(&deep, 0o1750).unwrap();
        assert_eq!(mode(&deep), 0o1750);
        fs::write(deep.join("f"), "x").unwrap();
        RealHost.remove_dir_all(&root.path().join("a")).unwrap();
        assert!(!root.path().join("a").exists());
        let e = RealHost.remove_dir_all(&root.path().join("a")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = RealHost.set_mode(&deep, 0o700).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn a_directory_cannot_be_made_under_a_file() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("f");
        fs::write(&file, "").unwrap();
        assert!(RealHost.create_dir_all(&file.join("d")).is_err());
        assert!(RealHost.create_dir_all(&file).is_err());
    }

    #[test]
    fn files_are_created_once_and_never_truncated() {
        let root = tempfile::tempdir().unwrap();
        let file = root.path().join("new");
        RealHost.create_file(&file).unwrap();
        assert_eq!(RealHost.stat(&file).unwrap(), FileKind::File);
        fs::write(&file, "keep").unwrap();
        RealHost.create_file(&file).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep");
        let e = RealHost
            .create_file(&root.path().join("no/parent"))
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn stat_follows_symlinks_and_lstat_does_not() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("d");
        fs::create_dir(&dir).unwrap();
        let link = root.path().join("l");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert_eq!(RealHost.stat(&link).unwrap(), FileKind::Dir);
        assert_eq!(RealHost.lstat(&link).unwrap(), FileKind::Symlink);
        assert_eq!(
            RealHost.canonicalize(&link).unwrap(),
            fs::canonicalize(&dir).unwrap()
        );
        let sock = root.path().join("s");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert_eq!(RealHost.stat(&sock).unwrap(), FileKind::Socket);
        assert_eq!(
            RealHost.stat(Path::new("/dev/null")).unwrap(),
            FileKind::CharDevice
        );
        let e = RealHost.lstat(&root.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn remove_dir_all_does_not_follow_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = root.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        let dir = root.path().join("d");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("escape")).unwrap();
        RealHost.remove_dir_all(&dir).unwrap();
        assert!(!dir.exists());
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn a_failing_command_reports_itself_its_status_and_stderr() {
        let root = tempfile::tempdir().unwrap();
        let e = RealHost
            .unmount(&root.path().join("not-mounted"))
            .unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("\"umount\" \""), "{text}");
        assert!(text.contains(" failed (exit status: "), "{text}");
        assert_eq!(e.kind(), io::ErrorKind::Other);
    }

    /// Needs root (CAP_SYS_ADMIN), as podvisor does: fails, never skips.
    #[test]
    fn tmpfs_is_mounted_sized_listed_and_unmounted() {
        let root = tempfile::tempdir().unwrap();
        let dir = fs::canonicalize(root.path()).unwrap().join("mnt");
        fs::create_dir(&dir).unwrap();
        let _guard = Unmount(dir.clone());
        if let Err(e) = RealHost.mount_tmpfs(&dir, Some(1 << 20)) {
            panic!("mounting tmpfs failed; this test needs root (CAP_SYS_ADMIN), as podvisor does: {e}");
        }
        assert!(RealHost.mount_points().unwrap().contains(&dir));
        let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let line = info
            .lines()
            .find(|l| l.split(' ').nth(4).map(unescape_mountinfo) == Some(dir.clone()))
            .unwrap();
        assert!(line.contains(" - tmpfs "), "{line}");
        assert!(line.contains("size=1024k"), "{line}");
        // The size limit holds.
        assert!(fs::write(dir.join("big"), vec![0u8; 2 << 20]).is_err());
        RealHost.unmount(&dir).unwrap();
        assert!(!RealHost.mount_points().unwrap().contains(&dir));
        assert!(!dir.join("big").exists(), "the tmpfs held the file");
    }
}
