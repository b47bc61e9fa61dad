//! Pod volumes: `emptyDir` and `hostPath`, planned from the spec, turned into
//! bind mounts per container, and set up and torn down on the host.
//!
//! [`plan_volumes`] and [`container_mounts`] are pure. The functions in the
//! I/O section ([`setup_volumes`], [`check_subpaths`], [`teardown_volumes`])
//! touch the host: they create directories and files, mount and unmount
//! tmpfs (`medium: Memory`) and delete a pod's directory.
//!
//! An `emptyDir` lives in `<root-dir>/pods/<uid>/volumes/<name>` (mode 0777),
//! on tmpfs for `medium: Memory` (sized by `sizeLimit` and the pod's memory
//! limit, as the kubelet does). A
//! `hostPath` is bound as is, after the kubelet's type checks. Any other volume
//! type is refused.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::manifest::{is_dns1123_label, FieldError};
use crate::spec::resources;

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
}

impl VolumeSource {
    /// The host path a mount of this volume binds.
    pub fn host_path(&self) -> &Path {
        match self {
            VolumeSource::EmptyDir { host_dir, .. } => host_dir,
            VolumeSource::HostPath { path, .. } => path,
        }
    }
}

/// A pod's volumes by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodVolumes {
    /// Volume name → where its data is.
    pub volumes: BTreeMap<String, VolumeSource>,
}

fn has_dotdot(p: &Path) -> bool {
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

/// The pod's memory limit as the kubelet computes it for its cgroup: the
/// larger of the app containers' sum and the largest init container's, when
/// every container has a non-zero limit; `None` otherwise.
fn pod_memory_limit(pod: &Pod) -> Result<Option<i64>, FieldError> {
    let Some(spec) = pod.spec.as_ref() else {
        return Ok(None);
    };
    let mut sum: i64 = 0;
    for (i, c) in spec.containers.iter().enumerate() {
        let limit = resources::container_amounts(c, &format!("spec.containers[{i}]"))?
            .limits
            .memory_bytes;
        match limit.filter(|l| *l > 0) {
            Some(l) => sum = sum.saturating_add(l),
            None => return Ok(None),
        }
    }
    for (i, c) in spec.init_containers.iter().flatten().enumerate() {
        let limit = resources::container_amounts(c, &format!("spec.initContainers[{i}]"))?
            .limits
            .memory_bytes;
        match limit.filter(|l| *l > 0) {
            Some(l) => sum = sum.max(l),
            None => return Ok(None),
        }
    }
    Ok(Some(sum).filter(|s| *s > 0))
}

/// The pod's volumes, validated: names are unique RFC 1123 labels, each
/// volume has exactly one type, and that type is `emptyDir` (`medium` `""` or
/// `Memory`, a non-negative `sizeLimit`, a `mode` up to 0o1777) or `hostPath` (absolute, no `..` or
/// `:`, a known `type`, and under one of `allowed_host_paths` by path
/// components when that list is not empty). `uid` must be a single path
/// component; emptyDirs go to `<root_dir>/pods/<uid>/volumes/<name>`.
pub fn plan_volumes(
    pod: &Pod,
    uid: &str,
    root_dir: &Path,
    allowed_host_paths: &[PathBuf],
) -> Result<PodVolumes, FieldError> {
    let single = matches!(
        Path::new(uid).components().collect::<Vec<_>>()[..],
        [Component::Normal(_)]
    );
    if !single || uid.contains('/') {
        return Err(FieldError::invalid(
            "metadata.uid",
            uid,
            "must be a single path component",
        ));
    }
    let mut planned = PodVolumes::default();
    let volumes = pod.spec.iter().flat_map(|s| s.volumes.iter().flatten());
    for (i, v) in volumes.enumerate() {
        let p = format!("spec.volumes[{i}]");
        if v.name.is_empty() {
            return Err(FieldError::new(format!("{p}.name"), "Required value"));
        }
        if !is_dns1123_label(&v.name) {
            let msg = "must be a lowercase RFC 1123 label: at most 63 lowercase alphanumeric \
                       characters or '-', starting and ending with an alphanumeric character";
            return Err(FieldError::invalid(format!("{p}.name"), &v.name, msg));
        }
        if planned.volumes.contains_key(&v.name) {
            let msg = format!("Duplicate value: {:?}", v.name);
            return Err(FieldError::new(format!("{p}.name"), msg));
        }
        let json =
            serde_json::to_value(v).map_err(|e| FieldError::new(p.clone(), e.to_string()))?;
        let types: Vec<&String> = json
            .as_object()
            .into_iter()
            .flat_map(|o| o.keys())
            .filter(|k| *k != "name")
            .collect();
        let source = match types[..] {
            [] => {
                return Err(FieldError::new(
                    p,
                    "Required value: must specify a volume type",
                ))
            }
            [_, second, ..] => {
                let msg = "Forbidden: may not specify more than 1 volume type";
                return Err(FieldError::new(format!("{p}.{second}"), msg));
            }
            [only] => {
                match (&v.empty_dir, &v.host_path) {
                    (Some(e), _) => {
                        let medium = e.medium.as_deref().unwrap_or_default();
                        if !["", "Memory"].contains(&medium) {
                            let path = format!("{p}.emptyDir.medium");
                            return Err(FieldError::unsupported(path, medium, &["", "Memory"]));
                        }
                        let mode = match e.mode {
                            None => 0o777,
                            Some(m) if (0..=0o1777).contains(&m) => m as u32,
                            Some(m) => {
                                let msg = format!("Invalid value: {m}: must be a number between 0 and 0o1777 (1023)");
                                return Err(FieldError::new(format!("{p}.emptyDir.mode"), msg));
                            }
                        };
                        let size_limit = match &e.size_limit {
                            None => None,
                            Some(q) => {
                                let path = format!("{p}.emptyDir.sizeLimit");
                                let bytes = resources::parse_bytes(&q.0)
                                    .map_err(|err| FieldError::invalid(path.clone(), &q.0, &err))?;
                                if bytes < 0 {
                                    return Err(FieldError::invalid(
                                        path,
                                        &q.0,
                                        "must be greater than or equal to 0",
                                    ));
                                }
                                Some(bytes).filter(|b| *b > 0)
                            }
                        };
                        let medium_memory = medium == "Memory";
                        let size_limit = if medium_memory {
                            match (size_limit, pod_memory_limit(pod)?) {
                                (Some(a), Some(b)) => Some(a.min(b)),
                                (a, b) => a.or(b),
                            }
                        } else {
                            size_limit
                        };
                        VolumeSource::EmptyDir {
                            host_dir: root_dir
                                .join("pods")
                                .join(uid)
                                .join("volumes")
                                .join(&v.name),
                            medium_memory,
                            size_limit,
                            mode,
                        }
                    }
                    (None, Some(h)) => {
                        check_absolute(format!("{p}.hostPath.path"), &h.path)?;
                        let type_ = h.type_.clone().unwrap_or_default();
                        if !HOST_PATH_TYPES.contains(&type_.as_str()) {
                            let path = format!("{p}.hostPath.type");
                            return Err(FieldError::unsupported(path, &type_, HOST_PATH_TYPES));
                        }
                        let path = PathBuf::from(&h.path);
                        if !allowed_host_paths.is_empty()
                            && !allowed_host_paths.iter().any(|a| path.starts_with(a))
                        {
                            let allowed: Vec<String> = allowed_host_paths
                                .iter()
                                .map(|a| a.display().to_string())
                                .collect();
                            let msg = format!(
                            "Forbidden: {:?} is not under an allowed host path (--allowed-host-paths={})",
                            h.path,
                            allowed.join(",")
                        );
                            return Err(FieldError::new(format!("{p}.hostPath.path"), msg));
                        }
                        VolumeSource::HostPath { path, type_ }
                    }
                    (None, None) => {
                        let msg = format!("Unsupported: volume type {only} is not supported");
                        return Err(FieldError::new(p, msg));
                    }
                }
            }
        };
        planned.volumes.insert(v.name.clone(), source);
    }
    Ok(planned)
}

/// The container's `volumeMounts` as Docker binds, in order:
/// `host:container`, then `:ro` and/or the propagation (`rslave` for
/// `HostToContainer`, `rshared` for `Bidirectional`, privileged containers
/// only), comma-separated. A `subPath` (relative, no `..`) is joined to the
/// volume's host path. `path` is the container's field path
/// (`spec.containers[0]`). `subPathExpr` and `recursiveReadOnly: Enabled`
/// are refused.
pub fn container_mounts(
    c: &Container,
    path: &str,
    vols: &PodVolumes,
) -> Result<Vec<String>, FieldError> {
    let privileged = c
        .security_context
        .as_ref()
        .and_then(|s| s.privileged)
        .unwrap_or(false);
    let mut seen = HashSet::new();
    let mut binds = Vec::new();
    for (i, m) in c.volume_mounts.iter().flatten().enumerate() {
        let p = format!("{path}.volumeMounts[{i}]");
        if m.name.is_empty() {
            return Err(FieldError::new(format!("{p}.name"), "Required value"));
        }
        let Some(volume) = vols.volumes.get(&m.name) else {
            return Err(FieldError::new(
                format!("{p}.name"),
                format!("Not found: {:?}", m.name),
            ));
        };
        check_absolute(format!("{p}.mountPath"), &m.mount_path)?;
        if !seen.insert(PathBuf::from(&m.mount_path)) {
            return Err(FieldError::invalid(
                format!("{p}.mountPath"),
                &m.mount_path,
                "must be unique",
            ));
        }
        if m.sub_path_expr.as_deref().is_some_and(|s| !s.is_empty()) {
            let msg = "Unsupported: subPathExpr is not supported by podvisor";
            return Err(FieldError::new(format!("{p}.subPathExpr"), msg));
        }
        let mut host = volume.host_path().to_path_buf();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sp = format!("{p}.subPath");
            if sub.starts_with('/') {
                return Err(FieldError::invalid(sp, sub, "must be a relative path"));
            }
            check_bind_safe(sp, sub)?;
            host = host.join(sub);
        }
        let mut options = Vec::new();
        if m.read_only.unwrap_or(false) {
            options.push("ro");
        }
        match m.mount_propagation.as_deref().unwrap_or("None") {
            "None" => {}
            "HostToContainer" => options.push("rslave"),
            "Bidirectional" if privileged => options.push("rshared"),
            "Bidirectional" => {
                let msg = "Forbidden: Bidirectional mount propagation is available only to privileged containers";
                return Err(FieldError::new(format!("{p}.mountPropagation"), msg));
            }
            other => {
                let supported = &["Bidirectional", "HostToContainer", "None"];
                return Err(FieldError::unsupported(
                    format!("{p}.mountPropagation"),
                    other,
                    supported,
                ));
            }
        }
        match m.recursive_read_only.as_deref().unwrap_or("Disabled") {
            "Disabled" | "IfPossible" => {}
            "Enabled" => {
                let msg = "Unsupported: recursive read-only mounts are not supported by podvisor";
                return Err(FieldError::new(format!("{p}.recursiveReadOnly"), msg));
            }
            other => {
                let supported = &["Disabled", "Enabled", "IfPossible"];
                return Err(FieldError::unsupported(
                    format!("{p}.recursiveReadOnly"),
                    other,
                    supported,
                ));
            }
        }
        let mut bind = format!("{}:{}", host.display(), m.mount_path);
        if !options.is_empty() {
            bind = format!("{bind}:{}", options.join(","));
        }
        binds.push(bind);
    }
    Ok(binds)
}

// ---------------------------------------------------------------------------
// I/O: everything below touches the host.
// ---------------------------------------------------------------------------

/// Decodes the octal escapes (`\040` for a space…) of a `mountinfo` field.
fn unescape_mountinfo(field: &str) -> PathBuf {
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

fn current_mount_points() -> io::Result<Vec<PathBuf>> {
    Ok(mount_points(&fs::read_to_string("/proc/self/mountinfo")?))
}

fn with_path(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| with_path(path, "chmod", e))
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("{cmd:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!(
        "{cmd:?} failed ({}): {}",
        out.status,
        stderr.trim()
    )))
}

/// Prepares the pod's volumes on the host: creates `uid_dir`
/// (`<root-dir>/pods/<uid>`, 0750) and each emptyDir (its `mode`, 0777 by
/// default; it must lie under `uid_dir`), mounts tmpfs on `medium: Memory` ones (`size=<bytes>` when
/// limited) unless already mounted, and runs the kubelet's `hostPath` type
/// checks: `DirectoryOrCreate` creates a missing directory (0755),
/// `FileOrCreate` a missing empty file (0644; its parent must exist), the
/// other types must exist and be of that kind (`hostPath type check failed:
/// /x is not a directory`). Idempotent.
pub fn setup_volumes(vols: &PodVolumes, uid_dir: &Path) -> io::Result<()> {
    fs::create_dir_all(uid_dir).map_err(|e| with_path(uid_dir, "mkdir", e))?;
    set_mode(uid_dir, 0o750)?;
    for source in vols.volumes.values() {
        match source {
            VolumeSource::EmptyDir {
                host_dir,
                medium_memory,
                size_limit,
                mode,
            } => {
                if !host_dir.starts_with(uid_dir) || has_dotdot(host_dir) {
                    let msg = format!(
                        "emptyDir {} is not under the pod directory {}",
                        host_dir.display(),
                        uid_dir.display()
                    );
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
                }
                fs::create_dir_all(host_dir).map_err(|e| with_path(host_dir, "mkdir", e))?;
                set_mode(host_dir, *mode)?;
                if *medium_memory {
                    mount_tmpfs(host_dir, *size_limit, *mode)?;
                }
            }
            VolumeSource::HostPath { path, type_ } => check_host_path(path, type_)?,
        }
    }
    Ok(())
}

/// Mounts a tmpfs on `dir` unless something is mounted there already.
fn mount_tmpfs(dir: &Path, size: Option<i64>, mode: u32) -> io::Result<()> {
    let real = fs::canonicalize(dir).map_err(|e| with_path(dir, "resolve", e))?;
    if current_mount_points()?.contains(&real) {
        return Ok(());
    }
    let mut cmd = Command::new("mount");
    cmd.args(["-t", "tmpfs"]);
    if let Some(bytes) = size.filter(|b| *b > 0) {
        cmd.args(["-o", &format!("size={bytes}")]);
    }
    cmd.arg("tmpfs").arg(&real);
    run(&mut cmd)?;
    set_mode(&real, mode)
}

/// The kubelet's `hostPath` type check (symlinks are followed).
fn check_host_path(path: &Path, type_: &str) -> io::Result<()> {
    let meta = fs::metadata(path);
    let missing = matches!(&meta, Err(e) if e.kind() == io::ErrorKind::NotFound);
    let failed = |what: &str| {
        Err(io::Error::other(format!(
            "hostPath type check failed: {} is not {what}",
            path.display()
        )))
    };
    let kind = meta.as_ref().ok().map(|m| m.file_type());
    match type_ {
        "" => Ok(()),
        "DirectoryOrCreate" if missing => {
            fs::create_dir_all(path)
                .map_err(|e| with_path(path, "hostPath type check failed: cannot create", e))?;
            set_mode(path, 0o755)
        }
        "DirectoryOrCreate" | "Directory" if kind.is_some_and(|k| k.is_dir()) => Ok(()),
        "DirectoryOrCreate" | "Directory" => failed("a directory"),
        "FileOrCreate" if missing => {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| with_path(path, "hostPath type check failed: cannot create", e))?;
            set_mode(path, 0o644)
        }
        "FileOrCreate" | "File" if kind.is_some_and(|k| k.is_file()) => Ok(()),
        "FileOrCreate" | "File" => failed("a file"),
        "Socket" if kind.is_some_and(|k| k.is_socket()) => Ok(()),
        "Socket" => failed("a socket file"),
        "CharDevice" if kind.is_some_and(|k| k.is_char_device()) => Ok(()),
        "CharDevice" => failed("a character device"),
        "BlockDevice" if kind.is_some_and(|k| k.is_block_device()) => Ok(()),
        "BlockDevice" => failed("a block device"),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{other} is an invalid volume type"),
        )),
    }
}

/// Refuses a `subPath` that goes through a symlink inside its volume: Docker
/// resolves a bind's source on the host, so a link a container made in an
/// emptyDir (`sub -> /`) would expose the host. Call it right before creating
/// the container (a race with a running container remains). Components that
/// do not exist yet are fine (Docker creates them).
pub fn check_subpaths(c: &Container, vols: &PodVolumes) -> io::Result<()> {
    for m in c.volume_mounts.iter().flatten() {
        let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let Some(volume) = vols.volumes.get(&m.name) else {
            continue;
        };
        let mut current = volume.host_path().to_path_buf();
        for component in Path::new(sub).components() {
            current.push(component);
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    let msg = format!(
                        "subPath {sub:?} of volume {:?}: {} is a symlink; refusing to follow it",
                        m.name,
                        current.display()
                    );
                    return Err(io::Error::new(io::ErrorKind::PermissionDenied, msg));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(with_path(&current, "stat", e)),
            }
        }
    }
    Ok(())
}

/// Removes a pod's directory (`<root-dir>/pods/<uid>`): unmounts everything
/// mounted under it (deepest first), checks nothing is left mounted, then
/// deletes it recursively (symlinks are removed, not followed). A missing
/// directory is fine; a symlink in its place is refused.
pub fn teardown_volumes(uid_dir: &Path) -> io::Result<()> {
    match fs::symlink_metadata(uid_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(uid_dir, "stat", e)),
        Ok(meta) if meta.file_type().is_symlink() => {
            let msg = format!("{} is a symlink; not removing", uid_dir.display());
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        Ok(_) => {}
    }
    let real = fs::canonicalize(uid_dir).map_err(|e| with_path(uid_dir, "resolve", e))?;
    let under = || -> io::Result<Vec<PathBuf>> {
        let mut found: Vec<PathBuf> = current_mount_points()?
            .into_iter()
            .filter(|m| m.starts_with(&real))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        found.dedup();
        Ok(found)
    };
    for mount_point in under()? {
        run(Command::new("umount").arg(&mount_point))?;
    }
    if let Some(left) = under()?.first() {
        let msg = format!(
            "{} is still mounted; not removing {}",
            left.display(),
            uid_dir.display()
        );
        return Err(io::Error::other(msg));
    }
    fs::remove_dir_all(&real).map_err(|e| with_path(&real, "remove", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, HostPathVolumeSource, PodSpec,
        SecurityContext, Volume, VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn empty_dir(name: &str) -> Volume {
        Volume {
            name: name.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }
    }

    fn host(name: &str, path: &str, type_: Option<&str>) -> Volume {
        Volume {
            name: name.into(),
            host_path: Some(HostPathVolumeSource {
                path: path.into(),
                type_: type_.map(Into::into),
            }),
            ..Default::default()
        }
    }

    fn pod(volumes: Vec<Volume>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                volumes: Some(volumes),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn plan(volumes: Vec<Volume>, allowed: &[&str]) -> Result<PodVolumes, FieldError> {
        let allowed: Vec<PathBuf> = allowed.iter().map(PathBuf::from).collect();
        plan_volumes(
            &pod(volumes),
            "u1",
            Path::new("/var/lib/podvisor"),
            &allowed,
        )
    }

    fn plan_err(volumes: Vec<Volume>, allowed: &[&str]) -> String {
        plan(volumes, allowed).unwrap_err().to_string()
    }

    #[test]
    fn empty_dirs_live_under_the_pod_directory() {
        let mut mem = empty_dir("cache");
        mem.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("64Mi".into())),
            mode: None,
        });
        let v = plan(vec![empty_dir("data"), mem], &[]).unwrap();
        assert_eq!(
            v.volumes["data"],
            VolumeSource::EmptyDir {
                host_dir: "/var/lib/podvisor/pods/u1/volumes/data".into(),
                medium_memory: false,
                size_limit: None,
                mode: 0o777
            }
        );
        assert_eq!(
            v.volumes["cache"],
            VolumeSource::EmptyDir {
                host_dir: "/var/lib/podvisor/pods/u1/volumes/cache".into(),
                medium_memory: true,
                size_limit: Some(64 << 20),
                mode: 0o777
            }
        );
    }

    fn memory_size(
        limits: &[Option<&str>],
        inits: &[Option<&str>],
        size_limit: Option<&str>,
    ) -> Option<i64> {
        use k8s_openapi::api::core::v1::ResourceRequirements;
        let c = |l: &Option<&str>| Container {
            resources: Some(ResourceRequirements {
                limits: l.map(|l| [("memory".to_string(), Quantity(l.into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut v = empty_dir("m");
        v.empty_dir = Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: size_limit.map(|s| Quantity(s.into())),
            mode: None,
        });
        let p = Pod {
            spec: Some(PodSpec {
                containers: limits.iter().map(c).collect(),
                init_containers: Some(inits.iter().map(c).collect()),
                volumes: Some(vec![v]),
                ..Default::default()
            }),
            ..Default::default()
        };
        match plan_volumes(&p, "u", Path::new("/r"), &[]).unwrap().volumes["m"] {
            VolumeSource::EmptyDir { size_limit, .. } => size_limit,
            _ => unreachable!(),
        }
    }

    #[test]
    fn memory_empty_dirs_are_sized_like_the_kubelet() {
        const MI: i64 = 1 << 20;
        assert_eq!(
            memory_size(&[Some("64Mi"), Some("32Mi")], &[], None),
            Some(96 * MI)
        );
        assert_eq!(
            memory_size(&[Some("64Mi"), Some("32Mi")], &[], Some("10Mi")),
            Some(10 * MI)
        );
        assert_eq!(
            memory_size(&[Some("64Mi")], &[], Some("1Gi")),
            Some(64 * MI)
        );
        assert_eq!(
            memory_size(&[Some("64Mi"), None], &[], Some("1Gi")),
            Some(1 << 30)
        );
        assert_eq!(memory_size(&[Some("64Mi"), None], &[], None), None);
        assert_eq!(
            memory_size(&[Some("64Mi")], &[Some("128Mi")], None),
            Some(128 * MI)
        );
        assert_eq!(memory_size(&[Some("64Mi")], &[None], None), None);
        assert_eq!(memory_size(&[Some("0")], &[], None), None);
    }

    #[test]
    fn empty_dir_mode() {
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().mode = Some(0o1777);
        let planned = plan(vec![v], &[]).unwrap();
        assert!(matches!(
            planned.volumes["a"],
            VolumeSource::EmptyDir { mode: 0o1777, .. }
        ));
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().mode = Some(0o2000);
        assert!(plan_err(vec![v], &[])
            .starts_with("spec.volumes[0].emptyDir.mode: Invalid value: 1024"));
    }

    #[test]
    fn no_volumes_no_spec() {
        assert_eq!(plan(vec![], &[]).unwrap(), PodVolumes::default());
        let p = Pod::default();
        assert_eq!(
            plan_volumes(&p, "u", Path::new("/r"), &[]).unwrap(),
            PodVolumes::default()
        );
    }

    #[test]
    fn empty_dir_medium_and_size_are_checked() {
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().medium = Some("HugePages".into());
        assert_eq!(
            plan_err(vec![v], &[]),
            "spec.volumes[0].emptyDir.medium: Unsupported value: \"HugePages\": supported values: \"\", \"Memory\""
        );
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().size_limit = Some(Quantity("-1Mi".into()));
        assert_eq!(
            plan_err(vec![v], &[]),
            "spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"-1Mi\": must be greater than or equal to 0"
        );
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().size_limit = Some(Quantity("lots".into()));
        assert!(plan_err(vec![v], &[])
            .starts_with("spec.volumes[0].emptyDir.sizeLimit: Invalid value: \"lots\""));
        let mut v = empty_dir("a");
        v.empty_dir.as_mut().unwrap().size_limit = Some(Quantity("0".into()));
        let planned = plan(vec![v], &[]).unwrap();
        assert!(matches!(
            planned.volumes["a"],
            VolumeSource::EmptyDir {
                size_limit: None,
                ..
            }
        ));
    }

    #[test]
    fn host_paths_with_types() {
        let v = plan(
            vec![
                host("a", "/data/a", None),
                host("b", "/run/docker.sock", Some("Socket")),
            ],
            &[],
        )
        .unwrap();
        assert_eq!(
            v.volumes["a"],
            VolumeSource::HostPath {
                path: "/data/a".into(),
                type_: "".into()
            }
        );
        assert_eq!(v.volumes["b"].host_path(), Path::new("/run/docker.sock"));
        for t in HOST_PATH_TYPES {
            assert!(plan(vec![host("a", "/x", Some(t))], &[]).is_ok(), "{t}");
        }
        let e = plan_err(vec![host("a", "/x", Some("Dir"))], &[]);
        assert!(
            e.starts_with("spec.volumes[0].hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"DirectoryOrCreate\""),
            "{e}"
        );
    }

    #[test]
    fn host_paths_must_be_absolute_and_clean() {
        assert_eq!(
            plan_err(vec![host("a", "data", None)], &[]),
            "spec.volumes[0].hostPath.path: Invalid value: \"data\": must be an absolute path"
        );
        assert_eq!(
            plan_err(vec![host("a", "/data/../etc", None)], &[]),
            "spec.volumes[0].hostPath.path: Invalid value: \"/data/../etc\": must not contain '..'"
        );
        assert_eq!(
            plan_err(vec![host("a", "", None)], &[]),
            "spec.volumes[0].hostPath.path: Required value"
        );
        assert!(plan_err(vec![host("a", "/a:b", None)], &[]).contains("must not contain ':'"));
    }

    #[test]
    fn allowed_host_paths_match_by_component() {
        let ok = |p: &str| plan(vec![host("a", p, None)], &["/data", "/srv/x"]).is_ok();
        assert!(ok("/data"));
        assert!(ok("/data/"));
        assert!(ok("/data/a/b"));
        assert!(ok("/data//a"));
        assert!(ok("/srv/x/y"));
        assert!(!ok("/data2"));
        assert!(!ok("/srv"));
        assert!(!ok("/"));
        assert_eq!(
            plan_err(vec![empty_dir("e"), host("h", "/etc", None)], &["/data"]),
            "spec.volumes[1].hostPath.path: Forbidden: \"/etc\" is not under an allowed host path (--allowed-host-paths=/data)"
        );
        let e = plan_err(vec![host("h", "/etc", None)], &["/data", "/srv"]);
        assert!(e.ends_with("(--allowed-host-paths=/data,/srv)"), "{e}");
        assert!(plan(vec![host("a", "/anything", None)], &["/"]).is_ok());
    }

    #[test]
    fn other_volume_types_are_named_and_refused() {
        let cm = Volume {
            name: "cfg".into(),
            config_map: Some(ConfigMapVolumeSource::default()),
            ..Default::default()
        };
        assert_eq!(
            plan_err(vec![cm], &[]),
            "spec.volumes[0]: Unsupported: volume type configMap is not supported"
        );
        let pvc: Volume = serde_json::from_value(serde_json::json!({
            "name": "claim", "persistentVolumeClaim": {"claimName": "c"}
        }))
        .unwrap();
        assert_eq!(
            plan_err(vec![empty_dir("ok"), pvc], &[]),
            "spec.volumes[1]: Unsupported: volume type persistentVolumeClaim is not supported"
        );
        let nfs: Volume = serde_json::from_value(serde_json::json!({
            "name": "n", "nfs": {"server": "s", "path": "/"}
        }))
        .unwrap();
        assert!(plan_err(vec![nfs], &[]).contains("volume type nfs is not supported"));
    }

    #[test]
    fn volume_type_missing_or_doubled() {
        let none = Volume {
            name: "a".into(),
            ..Default::default()
        };
        assert_eq!(
            plan_err(vec![none], &[]),
            "spec.volumes[0]: Required value: must specify a volume type"
        );
        let mut both = empty_dir("a");
        both.host_path = host("a", "/x", None).host_path;
        assert_eq!(
            plan_err(vec![both], &[]),
            "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"
        );
    }

    #[test]
    fn volume_names() {
        assert_eq!(
            plan_err(vec![empty_dir("a"), empty_dir("a")], &[]),
            "spec.volumes[1].name: Duplicate value: \"a\""
        );
        assert_eq!(
            plan_err(vec![empty_dir("")], &[]),
            "spec.volumes[0].name: Required value"
        );
        assert!(plan_err(vec![empty_dir("Data")], &[])
            .starts_with("spec.volumes[0].name: Invalid value: \"Data\""));
    }

    #[test]
    fn uid_must_be_one_component() {
        for uid in ["", "..", ".", "a/b", "/abs"] {
            let e = plan_volumes(&pod(vec![]), uid, Path::new("/r"), &[]).unwrap_err();
            assert_eq!(e.path, "metadata.uid", "{uid:?}");
        }
    }

    fn mount(name: &str, at: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: at.into(),
            ..Default::default()
        }
    }

    fn vols() -> PodVolumes {
        plan(vec![empty_dir("data"), host("logs", "/var/log", None)], &[]).unwrap()
    }

    fn mounts(list: Vec<VolumeMount>) -> Result<Vec<String>, FieldError> {
        let c = Container {
            volume_mounts: Some(list),
            ..Default::default()
        };
        container_mounts(&c, "spec.containers[0]", &vols())
    }

    fn mount_err(list: Vec<VolumeMount>) -> String {
        mounts(list).unwrap_err().to_string()
    }

    #[test]
    fn mounts_become_binds() {
        let mut ro = mount("logs", "/logs");
        ro.read_only = Some(true);
        let got = mounts(vec![mount("data", "/data"), ro]).unwrap();
        assert_eq!(
            got,
            vec![
                "/var/lib/podvisor/pods/u1/volumes/data:/data".to_string(),
                "/var/log:/logs:ro".to_string()
            ]
        );
        assert!(mounts(vec![]).unwrap().is_empty());
    }

    #[test]
    fn sub_paths_join_the_host_side() {
        let mut m = mount("data", "/cfg");
        m.sub_path = Some("app/conf".into());
        let mut n = mount("logs", "/nginx");
        n.sub_path = Some("nginx".into());
        n.read_only = Some(true);
        assert_eq!(
            mounts(vec![m, n]).unwrap(),
            vec![
                "/var/lib/podvisor/pods/u1/volumes/data/app/conf:/cfg".to_string(),
                "/var/log/nginx:/nginx:ro".to_string()
            ]
        );
    }

    #[test]
    fn sub_paths_must_stay_inside() {
        let mut m = mount("data", "/x");
        m.sub_path = Some("../x".into());
        assert_eq!(
            mount_err(vec![m]),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../x\": must not contain '..'"
        );
        let mut m = mount("data", "/x");
        m.sub_path = Some("a/../../b".into());
        assert!(mount_err(vec![m]).contains("must not contain '..'"));
        let mut m = mount("data", "/x");
        m.sub_path = Some("/etc".into());
        assert_eq!(
            mount_err(vec![m]),
            "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"/etc\": must be a relative path"
        );
        let mut m = mount("data", "/x");
        m.sub_path = Some("a..b".into());
        assert!(
            mounts(vec![m]).is_ok(),
            "'..' inside a name is not a component"
        );
    }

    #[test]
    fn unknown_volume_and_bad_mount_paths() {
        assert_eq!(
            mount_err(vec![mount("data", "/d"), mount("ghost", "/g")]),
            "spec.containers[0].volumeMounts[1].name: Not found: \"ghost\""
        );
        assert_eq!(
            mount_err(vec![mount("data", "rel")]),
            "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"rel\": must be an absolute path"
        );
        assert_eq!(
            mount_err(vec![mount("data", "")]),
            "spec.containers[0].volumeMounts[0].mountPath: Required value"
        );
        assert_eq!(
            mount_err(vec![mount("data", "/d"), mount("logs", "/d/")]),
            "spec.containers[0].volumeMounts[1].mountPath: Invalid value: \"/d/\": must be unique"
        );
        assert!(mount_err(vec![mount("data", "/a:b")]).contains("must not contain ':'"));
        let mut m = mount("data", "/d");
        m.sub_path_expr = Some("$(POD)".into());
        assert!(mount_err(vec![m])
            .starts_with("spec.containers[0].volumeMounts[0].subPathExpr: Unsupported"));
    }

    #[test]
    fn propagation_and_recursive_read_only() {
        let mut m = mount("logs", "/l");
        m.mount_propagation = Some("HostToContainer".into());
        m.read_only = Some(true);
        assert_eq!(
            mounts(vec![m]).unwrap(),
            vec!["/var/log:/l:ro,rslave".to_string()]
        );

        let mut m = mount("logs", "/l");
        m.mount_propagation = Some("Bidirectional".into());
        assert_eq!(
            mount_err(vec![m.clone()]),
            "spec.containers[0].volumeMounts[0].mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"
        );
        let c = Container {
            volume_mounts: Some(vec![m]),
            security_context: Some(SecurityContext {
                privileged: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            container_mounts(&c, "spec.containers[0]", &vols()).unwrap(),
            vec!["/var/log:/l:rshared".to_string()]
        );

        let mut m = mount("logs", "/l");
        m.mount_propagation = Some("Sideways".into());
        assert!(mount_err(vec![m]).contains("mountPropagation: Unsupported value: \"Sideways\""));
        let mut m = mount("logs", "/l");
        m.recursive_read_only = Some("Enabled".into());
        assert!(mount_err(vec![m])
            .starts_with("spec.containers[0].volumeMounts[0].recursiveReadOnly: Unsupported"));
        let mut m = mount("logs", "/l");
        m.recursive_read_only = Some("IfPossible".into());
        assert!(mounts(vec![m]).is_ok());
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

    // --- I/O tests (tempdirs; the tmpfs test needs root, as podvisor does) ---

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
        setup_volumes(&host_vol(path, type_), uid_dir).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_dirs_are_created_world_writable_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let mut more = empty_dir("more");
        more.empty_dir.as_mut().unwrap().mode = Some(0o750);
        let p = pod(vec![empty_dir("data"), more]);
        let vols = plan_volumes(&p, "uid-1", root.path(), &[]).unwrap();
        let uid_dir = root.path().join("pods/uid-1");
        setup_volumes(&vols, &uid_dir).unwrap();
        setup_volumes(&vols, &uid_dir).unwrap(); // idempotent
        let data = uid_dir.join("volumes/data");
        assert!(data.is_dir());
        assert_eq!(mode(&data), 0o777);
        assert_eq!(mode(&uid_dir), 0o750);
        assert_eq!(mode(&uid_dir.join("volumes/more")), 0o750);
        fs::write(data.join("f"), "x").unwrap();
        teardown_volumes(&uid_dir).unwrap();
        assert!(!uid_dir.exists());
        assert!(root.path().join("pods").is_dir());
        teardown_volumes(&uid_dir).unwrap(); // already gone: fine
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
        let e = setup_volumes(&v, &root.path().join("pods/u")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(!root.path().join("elsewhere").exists());
    }

    /// Unmounts on drop, so a failing test leaves no tmpfs behind.
    struct Unmount(PathBuf);

    impl Drop for Unmount {
        fn drop(&mut self) {
            let real = fs::canonicalize(&self.0).unwrap_or_else(|_| self.0.clone());
            while current_mount_points().unwrap_or_default().contains(&real) {
                if Command::new("umount")
                    .arg(&real)
                    .status()
                    .map(|s| !s.success())
                    .unwrap_or(true)
                {
                    break;
                }
            }
        }
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
        if let Err(e) = setup_volumes(&vols, &uid_dir) {
            panic!("mounting tmpfs failed; this test needs root (CAP_SYS_ADMIN), as podvisor does: {e}");
        }
        setup_volumes(&vols, &uid_dir).unwrap();
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
        teardown_volumes(&uid_dir).unwrap();
        assert!(!current_mount_points().unwrap().contains(&real));
        assert!(!uid_dir.exists());
    }

    #[test]
    fn teardown_refuses_a_symlinked_pod_directory() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("precious");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), "x").unwrap();
        let link = root.path().join("pod");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(teardown_volumes(&link).is_err());
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
        teardown_volumes(&uid_dir).unwrap();
        assert!(!uid_dir.exists());
        assert!(outside.join("keep").exists());
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

    #[test]
    fn sub_paths_through_symlinks_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let p = pod(vec![empty_dir("data")]);
        let vols = plan_volumes(&p, "u", root.path(), &[]).unwrap();
        let uid_dir = root.path().join("pods/u");
        setup_volumes(&vols, &uid_dir).unwrap();
        let data = uid_dir.join("volumes/data");
        fs::create_dir(data.join("real")).unwrap();
        std::os::unix::fs::symlink("/", data.join("escape")).unwrap();
        let container = |sub: &str| Container {
            volume_mounts: Some(vec![VolumeMount {
                name: "data".into(),
                mount_path: "/m".into(),
                sub_path: Some(sub.into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        check_subpaths(&container("real"), &vols).unwrap();
        check_subpaths(&container("real/not/yet"), &vols).unwrap();
        check_subpaths(&container("new"), &vols).unwrap();
        let e = check_subpaths(&container("escape/etc"), &vols).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("is a symlink"), "{e}");
        teardown_volumes(&uid_dir).unwrap();
    }
}
