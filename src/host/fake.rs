//! `FakeHost`: an in-memory node for tests.
//!
//! A tree of directories, files, symlinks and special files (paths are
//! absolute), a mount table, and the machine's CPUs and memory. Every call is
//! logged; a test can make an operation fail (on one path or on any), or
//! pin a mount so that unmounting it succeeds but leaves it there.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};

use super::{CommandError, FileKind, Host};

/// One entry of the fake tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
    },
    Symlink(PathBuf),
    /// A socket, a device or a FIFO.
    Special(FileKind),
}

/// The operations of [`Host`], to name which one should fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Stat,
    Lstat,
    Canonicalize,
    CreateDirAll,
    CreateFile,
    SetMode,
    RemoveDirAll,
    MountPoints,
    MountTmpfs,
    Unmount,
    SetGroup,
}

/// One call made to the fake, with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostCall {
    Stat(PathBuf),
    Lstat(PathBuf),
    Canonicalize(PathBuf),
    CreateDirAll(PathBuf),
    CreateFile(PathBuf),
    SetMode(PathBuf, u32),
    RemoveDirAll(PathBuf),
    MountPoints,
    MountTmpfs(PathBuf, Option<i64>),
    Unmount(PathBuf),
    SetGroup(PathBuf, u32),
}

impl HostCall {
    fn op(&self) -> Op {
        match self {
            HostCall::Stat(_) => Op::Stat,
            HostCall::Lstat(_) => Op::Lstat,
            HostCall::Canonicalize(_) => Op::Canonicalize,
            HostCall::CreateDirAll(_) => Op::CreateDirAll,
            HostCall::CreateFile(_) => Op::CreateFile,
            HostCall::SetMode(..) => Op::SetMode,
            HostCall::RemoveDirAll(_) => Op::RemoveDirAll,
            HostCall::MountPoints => Op::MountPoints,
            HostCall::MountTmpfs(..) => Op::MountTmpfs,
            HostCall::Unmount(_) => Op::Unmount,
            HostCall::SetGroup(..) => Op::SetGroup,
        }
    }

    fn path(&self) -> Option<&Path> {
        match self {
            HostCall::MountPoints => None,
            HostCall::Stat(p)
            | HostCall::Lstat(p)
            | HostCall::Canonicalize(p)
            | HostCall::CreateDirAll(p)
            | HostCall::CreateFile(p)
            | HostCall::SetMode(p, _)
            | HostCall::RemoveDirAll(p)
            | HostCall::MountTmpfs(p, _)
            | HostCall::Unmount(p)
            | HostCall::SetGroup(p, _) => Some(p),
        }
    }

    /// Whether the call changes the node (as opposed to looking at it).
    pub fn changes(&self) -> bool {
        !matches!(
            self,
            HostCall::Stat(_)
                | HostCall::Lstat(_)
                | HostCall::Canonicalize(_)
                | HostCall::MountPoints
        )
    }
}

struct State {
    nodes: BTreeMap<PathBuf, Node>,
    /// Mount points with the tmpfs size asked for, in mount order.
    mounts: Vec<(PathBuf, Option<i64>)>,
    pinned: Vec<PathBuf>,
    calls: Vec<HostCall>,
    /// An operation that fails, on one path or (`None`) on any.
    failures: Vec<(Op, Option<PathBuf>)>,
    cpus: Option<usize>,
    memory: Option<i64>,
}

/// An in-memory [`Host`]. `/` exists; the machine has 4 CPUs and 8 GiB.
pub struct FakeHost {
    state: Mutex<State>,
}

impl Default for FakeHost {
    fn default() -> Self {
        Self::new()
    }
}

fn not_a_directory() -> io::Error {
    io::Error::from_raw_os_error(20) // ENOTDIR
}

impl State {
    /// Where `path` leads: symlinks are followed, the last one only with
    /// `follow_last`. Every component but the last must exist.
    fn resolve(&self, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
        let mut rest: VecDeque<OsString> = VecDeque::new();
        let mut resolved = PathBuf::from("/");
        let push = |rest: &mut VecDeque<OsString>, p: &Path, front: bool| {
            let parts: Vec<OsString> = p
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_os_string()),
                    Component::ParentDir => Some("..".into()),
                    _ => None,
                })
                .collect();
            if front {
                for part in parts.into_iter().rev() {
                    rest.push_front(part);
                }
            } else {
                rest.extend(parts);
            }
        };
        push(&mut rest, path, false);
        let mut hops = 0;
        while let Some(name) = rest.pop_front() {
            if name == ".." {
                resolved.pop();
                continue;
            }
            let candidate = resolved.join(&name);
            let last = rest.is_empty();
            match self.nodes.get(&candidate) {
                None if last => return Ok(candidate),
                None => return Err(io::ErrorKind::NotFound.into()),
                Some(Node::Symlink(target)) if follow_last || !last => {
                    hops += 1;
                    if hops > 40 {
                        return Err(io::Error::from_raw_os_error(40)); // ELOOP
                    }
                    if target.is_absolute() {
                        resolved = PathBuf::from("/");
                    }
                    push(&mut rest, target, true);
                }
                Some(Node::Dir { .. }) => resolved = candidate,
                Some(_) if !last => return Err(not_a_directory()),
                Some(_) => resolved = candidate,
            }
        }
        Ok(resolved)
    }

    /// The node `path` leads to, symlinks followed or not.
    fn find(&self, path: &Path, follow: bool) -> io::Result<(PathBuf, &Node)> {
        let real = self.resolve(path, follow)?;
        if real == Path::new("/") {
            static ROOT: Node = Node::Dir { mode: 0o755 };
            return Ok((real, &ROOT));
        }
        match self.nodes.get(&real) {
            Some(node) => Ok((real, node)),
            None => Err(io::ErrorKind::NotFound.into()),
        }
    }

    fn create_dir_all(&mut self, path: &Path) -> io::Result<()> {
        if matches!(self.find(path, true), Ok((_, Node::Dir { .. }))) {
            return Ok(());
        }
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        self.create_dir_all(parent)?;
        let real = self.resolve(path, true)?;
        match self.nodes.get(&real) {
            None => {
                self.nodes.insert(real, Node::Dir { mode: 0o755 });
                Ok(())
            }
            Some(_) => Err(io::ErrorKind::AlreadyExists.into()),
        }
    }

    fn create_file(&mut self, path: &Path) -> io::Result<()> {
        let real = self.resolve(path, true)?;
        match self.nodes.get(&real) {
            Some(Node::Dir { .. }) => Err(io::Error::from_raw_os_error(21)), // EISDIR
            Some(_) => Ok(()),
            None => match real.parent().map(|p| self.find(p, true)) {
                Some(Ok((_, Node::Dir { .. }))) => {
                    self.nodes.insert(real, Node::File { mode: 0o644 });
                    Ok(())
                }
                Some(Ok(_)) => Err(not_a_directory()),
                _ => Err(io::ErrorKind::NotFound.into()),
            },
        }
    }

    fn set_mode(&mut self, path: &Path, new: u32) -> io::Result<()> {
        let (real, _) = self.find(path, true)?;
        match self.nodes.get_mut(&real) {
            Some(Node::Dir { mode }) | Some(Node::File { mode }) => *mode = new,
            _ => {}
        }
        Ok(())
    }

    fn remove_dir_all(&mut self, path: &Path) -> io::Result<()> {
        let (real, node) = self.find(path, false)?;
        if !matches!(node, Node::Dir { .. } | Node::Symlink(_)) {
            return Err(not_a_directory());
        }
        self.nodes.retain(|p, _| !p.starts_with(&real));
        Ok(())
    }
}

impl FakeHost {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                nodes: BTreeMap::new(),
                mounts: Vec::new(),
                pinned: Vec::new(),
                calls: Vec::new(),
                failures: Vec::new(),
                cpus: Some(4),
                memory: Some(8 << 30),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs the call; `true` when a test asked it to fail.
    fn record(&self, call: HostCall) -> bool {
        let mut s = self.lock();
        let fails = s.failures.iter().any(|(op, path)| {
            *op == call.op() && path.as_deref().is_none_or(|p| Some(p) == call.path())
        });
        s.calls.push(call);
        fails
    }

    /// Adds a directory (and its missing parents, 0755) with `mode`.
    pub fn add_dir(&self, path: impl AsRef<Path>, mode: u32) {
        let path = path.as_ref();
        let mut s = self.lock();
        if let Some(parent) = path.parent() {
            s.create_dir_all(parent).expect("parents of a fake dir");
        }
        s.nodes.insert(path.to_path_buf(), Node::Dir { mode });
    }

    /// Adds an empty file (mode 0644) and its missing parents.
    pub fn add_file(&self, path: impl AsRef<Path>) {
        self.add(path.as_ref(), Node::File { mode: 0o644 });
    }

    /// Adds a symlink to `target` and its missing parents.
    pub fn add_symlink(&self, path: impl AsRef<Path>, target: impl Into<PathBuf>) {
        self.add(path.as_ref(), Node::Symlink(target.into()));
    }

    /// Adds a socket, a device or a FIFO.
    pub fn add_special(&self, path: impl AsRef<Path>, kind: FileKind) {
        self.add(path.as_ref(), Node::Special(kind));
    }

    fn add(&self, path: &Path, node: Node) {
        let mut s = self.lock();
        if let Some(parent) = path.parent() {
            s.create_dir_all(parent).expect("parents of a fake node");
        }
        s.nodes.insert(path.to_path_buf(), node);
    }

    /// Adds a mount to the mount table (the path need not exist).
    pub fn add_mount(&self, path: impl Into<PathBuf>) {
        self.lock().mounts.push((path.into(), None));
    }

    /// Unmounting `path` will succeed but leave it mounted.
    pub fn pin_mount(&self, path: impl Into<PathBuf>) {
        self.lock().pinned.push(path.into());
    }

    /// Every later `op` on `path` fails: file operations with
    /// `PermissionDenied`, commands with exit status 32.
    pub fn fail(&self, op: Op, path: impl Into<PathBuf>) {
        self.lock().failures.push((op, Some(path.into())));
    }

    /// Every later `op`, on any path, fails.
    pub fn fail_all(&self, op: Op) {
        self.lock().failures.push((op, None));
    }

    /// What the machine reports: CPUs and bytes of memory.
    pub fn set_machine(&self, cpus: Option<usize>, memory: Option<i64>) {
        let mut s = self.lock();
        s.cpus = cpus;
        s.memory = memory;
    }

    /// The node at `path`, not following symlinks.
    pub fn node(&self, path: impl AsRef<Path>) -> Option<Node> {
        self.lock().nodes.get(path.as_ref()).cloned()
    }

    /// Whether anything is at `path` (symlinks not followed).
    pub fn exists(&self, path: impl AsRef<Path>) -> bool {
        self.node(path).is_some()
    }

    /// The permission bits of the directory or file at `path`.
    pub fn mode(&self, path: impl AsRef<Path>) -> Option<u32> {
        match self.node(path)? {
            Node::Dir { mode } | Node::File { mode } => Some(mode),
            _ => None,
        }
    }

    /// The mount table: mount points with the tmpfs size asked for.
    pub fn mounts(&self) -> Vec<(PathBuf, Option<i64>)> {
        self.lock().mounts.clone()
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<HostCall> {
        self.lock().calls.clone()
    }

    /// The calls that change the node, in order.
    pub fn changes(&self) -> Vec<HostCall> {
        self.calls().into_iter().filter(HostCall::changes).collect()
    }
}

fn denied() -> io::Error {
    io::ErrorKind::PermissionDenied.into()
}

fn command_failed(cmd: &Command, stderr: &str) -> CommandError {
    CommandError::Failed {
        command: format!("{cmd:?}"),
        status: ExitStatus::from_raw(32 << 8),
        stderr: stderr.to_string(),
    }
}

impl Host for FakeHost {
    fn stat(&self, path: &Path) -> io::Result<FileKind> {
        if self.record(HostCall::Stat(path.into())) {
            return Err(denied());
        }
        self.lock().find(path, true).map(|(_, n)| kind(n))
    }

    fn lstat(&self, path: &Path) -> io::Result<FileKind> {
        if self.record(HostCall::Lstat(path.into())) {
            return Err(denied());
        }
        self.lock().find(path, false).map(|(_, n)| kind(n))
    }

    fn canonicalize(&self, path: &Path) -> io::Result<PathBuf> {
        if self.record(HostCall::Canonicalize(path.into())) {
            return Err(denied());
        }
        self.lock().find(path, true).map(|(p, _)| p)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.record(HostCall::CreateDirAll(path.into())) {
            return Err(denied());
        }
        self.lock().create_dir_all(path)
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        if self.record(HostCall::CreateFile(path.into())) {
            return Err(denied());
        }
        self.lock().create_file(path)
    }

    fn set_mode(&self, path: &Path, mode: u32) -> io::Result<()> {
        if self.record(HostCall::SetMode(path.into(), mode)) {
            return Err(denied());
        }
        self.lock().set_mode(path, mode)
    }

    fn set_group(&self, path: &Path, gid: u32) -> io::Result<()> {
        if self.record(HostCall::SetGroup(path.into(), gid)) {
            return Err(denied());
        }
        self.lock().find(path, true).map(drop)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        if self.record(HostCall::RemoveDirAll(path.into())) {
            return Err(denied());
        }
        self.lock().remove_dir_all(path)
    }

    fn mount_points(&self) -> io::Result<Vec<PathBuf>> {
        if self.record(HostCall::MountPoints) {
            return Err(denied());
        }
        Ok(self.lock().mounts.iter().map(|(p, _)| p.clone()).collect())
    }

    fn mount_tmpfs(&self, dir: &Path, size: Option<i64>) -> Result<(), CommandError> {
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs"]);
        if let Some(bytes) = size.filter(|b| *b > 0) {
            cmd.args(["-o", &format!("size={bytes}")]);
        }
        cmd.arg("tmpfs").arg(dir);
        if self.record(HostCall::MountTmpfs(dir.into(), size)) {
            return Err(command_failed(&cmd, "fake failure"));
        }
        let mut s = self.lock();
        if !matches!(s.find(dir, true), Ok((_, Node::Dir { .. }))) {
            return Err(command_failed(&cmd, "mount point does not exist"));
        }
        s.mounts.push((dir.to_path_buf(), size));
        Ok(())
    }

    fn unmount(&self, dir: &Path) -> Result<(), CommandError> {
        let mut cmd = Command::new("umount");
        cmd.arg(dir);
        if self.record(HostCall::Unmount(dir.into())) {
            return Err(command_failed(&cmd, "fake failure"));
        }
        let mut s = self.lock();
        let Some(i) = s.mounts.iter().rposition(|(p, _)| p == dir) else {
            return Err(command_failed(&cmd, "not mounted"));
        };
        if !s.pinned.iter().any(|p| p == dir) {
            s.mounts.remove(i);
        }
        Ok(())
    }

    fn cpus(&self) -> Option<usize> {
        self.lock().cpus
    }

    fn memory_bytes(&self) -> Option<i64> {
        self.lock().memory
    }
}

fn kind(node: &Node) -> FileKind {
    match node {
        Node::Dir { .. } => FileKind::Dir,
        Node::File { .. } => FileKind::File,
        Node::Symlink(_) => FileKind::Symlink,
        Node::Special(k) => *k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_with_symlinks() {
        let h = FakeHost::new();
        h.add_dir("/data/real", 0o700);
        h.add_symlink("/data/link", "real");
        h.add_symlink("/data/abs", "/data/real");
        h.add_symlink("/data/loop", "/data/loop");
        assert_eq!(h.stat(Path::new("/data/link")).unwrap(), FileKind::Dir);
        assert_eq!(h.lstat(Path::new("/data/link")).unwrap(), FileKind::Symlink);
        assert_eq!(
            h.canonicalize(Path::new("/data/abs")).unwrap(),
            PathBuf::from("/data/real")
        );
        h.create_dir_all(Path::new("/data/link/x/y")).unwrap();
        assert_eq!(h.mode("/data/real/x/y"), Some(0o755));
        assert_eq!(h.mode("/data/real"), Some(0o700));
        assert!(h.stat(Path::new("/data/loop")).is_err());
        let e = h.stat(Path::new("/nope/x")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        h.remove_dir_all(Path::new("/data/link")).unwrap();
        assert!(!h.exists("/data/link"), "the link itself goes");
        assert!(h.exists("/data/real/x/y"), "not what it points to");
    }

    #[test]
    fn files_need_a_parent_and_are_kept() {
        let h = FakeHost::new();
        h.add_dir("/d", 0o755);
        h.create_file(Path::new("/d/f")).unwrap();
        h.set_mode(Path::new("/d/f"), 0o600).unwrap();
        h.create_file(Path::new("/d/f")).unwrap();
        assert_eq!(h.mode("/d/f"), Some(0o600));
        let e = h.create_file(Path::new("/d/no/f")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(h.create_dir_all(Path::new("/d/f/sub")).is_err());
    }

    #[test]
    fn mounts_failures_and_the_call_log() {
        let h = FakeHost::new();
        h.add_dir("/m", 0o755);
        h.mount_tmpfs(Path::new("/m"), Some(10)).unwrap();
        assert!(h.mount_tmpfs(Path::new("/absent"), None).is_err());
        assert_eq!(h.mounts(), vec![(PathBuf::from("/m"), Some(10))]);
        h.unmount(Path::new("/m")).unwrap();
        let e = h.unmount(Path::new("/m")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"umount\" \"/m\" failed (exit status: 32): not mounted"
        );
        h.fail(Op::SetMode, "/m");
        let e = h.set_mode(Path::new("/m"), 0o700).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        h.set_mode(Path::new("/"), 0o755).unwrap();
        h.fail_all(Op::MountPoints);
        assert!(h.mount_points().is_err());
        assert_eq!(
            h.changes(),
            vec![
                HostCall::MountTmpfs("/m".into(), Some(10)),
                HostCall::MountTmpfs("/absent".into(), None),
                HostCall::Unmount("/m".into()),
                HostCall::Unmount("/m".into()),
                HostCall::SetMode("/m".into(), 0o700),
                HostCall::SetMode("/".into(), 0o755),
            ]
        );
        assert_eq!(h.calls().last(), Some(&HostCall::MountPoints));
    }
}
