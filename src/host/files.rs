//! Files podvisor writes for a pod, on the real file system (like the
//! termination logs): the `downwardAPI` volumes ([`write_atomic`]) and the
//! pod's `/etc/hosts` and `resolv.conf` ([`write_if_changed`]). Calls block:
//! run them off the async executor.
//!
//! A volume is written as the kubelet's `AtomicWriter` does, so a reader
//! never sees half of an update: the files go into a fresh hidden directory
//! `..<timestamp>`, the symlink `..data` is switched to it by a rename, and
//! each top-level name is a symlink into `..data` (`labels` →
//! `..data/labels`). The old directory is removed afterwards.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The symlink to the current payload directory.
pub const DATA_DIR: &str = "..data";
const DATA_DIR_TMP: &str = "..data_tmp";

/// One file of a payload: its relative path, content and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodFile {
    pub path: String,
    pub content: String,
    pub mode: u32,
}

/// Whether `dir`'s current payload is exactly `files` (same paths, contents
/// and modes; group `gid` when given).
fn unchanged(dir: &Path, files: &[PodFile], gid: Option<u32>) -> bool {
    let data = dir.join(DATA_DIR);
    let Ok(target) = fs::read_link(&data) else {
        return false;
    };
    let payload = dir.join(target);
    let mut count = 0;
    let ok = files.iter().all(|f| {
        let p = payload.join(&f.path);
        let Ok(meta) = fs::symlink_metadata(&p) else {
            return false;
        };
        meta.is_file()
            && meta.permissions().mode() & 0o7777 == f.mode
            && gid.is_none_or(|g| meta.gid() == g)
            && fs::read(&p).is_ok_and(|b| b == f.content.as_bytes())
    });
    if !ok {
        return false;
    }
    // No file left over from an earlier payload.
    let mut stack = vec![payload];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            return false;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                _ => count += 1,
            }
        }
    }
    count == files.len()
}

/// A fresh payload directory name, as the kubelet's
/// (`..2026_11_30_09_40_01.<n>`).
fn payload_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let now = chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S");
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("..{now}.{}{n}", std::process::id())
}

/// Writes `files` into the volume directory `dir` (which must exist)
/// atomically, unless its payload is that already. With `gid` (the pod's
/// `fsGroup`) files and directories get that group, and files group read.
/// Returns whether anything was written.
pub fn write_atomic(dir: &Path, files: &[PodFile], gid: Option<u32>) -> io::Result<bool> {
    let with_path = |p: &Path| {
        let p = p.to_path_buf();
        move |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", p.display()))
    };
    if unchanged(dir, files, gid) {
        return Ok(false);
    }
    let name = payload_name();
    let payload = dir.join(&name);
    fs::create_dir(&payload).map_err(with_path(&payload))?;
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o755))
        .map_err(with_path(&payload))?;
    let chgrp = |p: &Path| match gid {
        Some(g) => std::os::unix::fs::lchown(p, None, Some(g)).map_err(with_path(p)),
        None => Ok(()),
    };
    chgrp(&payload)?;
    for f in files {
        let p = payload.join(&f.path);
        if let Some(parent) = p.parent().filter(|d| *d != payload) {
            fs::create_dir_all(parent).map_err(with_path(parent))?;
            chgrp(parent)?;
        }
        fs::write(&p, f.content.as_bytes()).map_err(with_path(&p))?;
        // As `SetVolumeOwnership` for a read-only volume: group read.
        let mode = match gid {
            Some(_) => f.mode | 0o440,
            None => f.mode,
        };
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(with_path(&p))?;
        chgrp(&p)?;
    }
    let old = fs::read_link(dir.join(DATA_DIR)).ok();
    let tmp = dir.join(DATA_DIR_TMP);
    let _ = fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&name, &tmp).map_err(with_path(&tmp))?;
    fs::rename(&tmp, dir.join(DATA_DIR)).map_err(with_path(&tmp))?;
    // Top-level names: a symlink into `..data` each; stale ones removed.
    let mut tops: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.split('/').find(|c| !c.is_empty()))
        .collect();
    tops.sort_unstable();
    tops.dedup();
    for top in &tops {
        let link = dir.join(top);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from(DATA_DIR).join(top), &link)
                .map_err(with_path(&link))?;
        }
    }
    for e in fs::read_dir(dir).map_err(with_path(dir))?.flatten() {
        let file_name = e.file_name();
        let n = file_name.to_string_lossy();
        let is_link = e.file_type().is_ok_and(|t| t.is_symlink());
        if !n.starts_with("..") && is_link && !tops.contains(&n.as_ref()) {
            let _ = fs::remove_file(e.path());
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != name.as_str()) {
        let old = dir.join(old);
        if old.starts_with(dir)
            && old
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".."))
        {
            let _ = fs::remove_dir_all(old);
        }
    }
    Ok(true)
}

/// Writes `content` to `path` in place (the same inode, so a container that
/// binds the file sees the new content) unless it holds that already, then
/// sets `mode`; its directory is made when missing. Returns whether it
/// wrote.
pub fn write_if_changed(path: &Path, content: &str, mode: u32) -> io::Result<bool> {
    let err = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let same = fs::read(path).is_ok_and(|b| b == content.as_bytes());
    if let Some(dir) = path.parent().filter(|_| !same) {
        fs::create_dir_all(dir).map_err(err)?;
    }
    if !same {
        fs::write(path, content.as_bytes()).map_err(err)?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(err)?;
    Ok(!same)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &str, mode: u32) -> PodFile {
        PodFile {
            path: path.into(),
            content: content.into(),
            mode,
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn a_payload_is_swapped_in_through_data_and_top_level_links() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path();
        let v1 = [file("name", "web", 0o644), file("sub/app", "a", 0o600)];
        assert!(write_atomic(dir, &v1, None).unwrap());
        assert_eq!(fs::read_to_string(dir.join("name")).unwrap(), "web");
        assert_eq!(fs::read_to_string(dir.join("sub/app")).unwrap(), "a");
        assert_eq!(
            fs::read_link(dir.join("name")).unwrap(),
            Path::new("..data/name")
        );
        assert_eq!(mode(&dir.join("sub/app")), 0o600);
        let first = fs::read_link(dir.join(DATA_DIR)).unwrap();
        assert!(
            !write_atomic(dir, &v1, None).unwrap(),
            "unchanged: not rewritten"
        );
        assert_eq!(fs::read_link(dir.join(DATA_DIR)).unwrap(), first);

        let v2 = [file("name", "web2", 0o644)];
        assert!(write_atomic(dir, &v2, None).unwrap());
        assert_eq!(fs::read_to_string(dir.join("name")).unwrap(), "web2");
        assert!(!dir.join("sub").exists(), "a name no longer given goes");
        assert!(!dir.join(&first).exists(), "the old payload is removed");
        let hidden: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(hidden.len(), 3, "..data, one payload, name: {hidden:?}");
    }

    #[test]
    fn a_mode_change_alone_rewrites() {
        let root = tempfile::tempdir().unwrap();
        write_atomic(root.path(), &[file("a", "x", 0o644)], None).unwrap();
        assert!(write_atomic(root.path(), &[file("a", "x", 0o400)], None).unwrap());
        assert_eq!(mode(&root.path().join("a")), 0o400);
    }

    #[test]
    fn files_are_rewritten_in_place() {
        let root = tempfile::tempdir().unwrap();
        let p = root.path().join("hosts");
        assert!(write_if_changed(&p, "a\n", 0o644).unwrap());
        let ino = fs::metadata(&p).unwrap().ino();
        assert!(!write_if_changed(&p, "a\n", 0o644).unwrap());
        assert!(write_if_changed(&p, "b\n", 0o644).unwrap());
        assert_eq!(fs::metadata(&p).unwrap().ino(), ino, "same inode");
        assert_eq!(fs::read_to_string(&p).unwrap(), "b\n");
    }
}
