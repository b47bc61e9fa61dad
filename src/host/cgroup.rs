//! Pod cgroups for pod-level limits (`spec.resources.limits`): a cgroup
//! `/podvisor/pod<uid>` holding the pod's CPU and memory limits, under
//! which the engine (cgroupfs driver) places every container of the pod
//! (`HostConfig.CgroupParent`), as the kubelet's pod cgroups do. Made
//! before the pod's first container, removed once its containers are gone.
//!
//! The cgroup filesystem's root is a parameter, so the file layout of both
//! cgroup versions is tested on a temporary directory.

use std::io;
use std::path::{Path, PathBuf};

use crate::spec::resources::{CFS_PERIOD_US, MIN_CFS_QUOTA_US};

/// Where the cgroup filesystem is mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The pod-level limits a pod cgroup holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodLimits {
    pub cpu_millis: Option<i64>,
    pub memory_bytes: Option<i64>,
}

/// The pod-level CPU and memory limits of `pod` (`spec.resources.limits`),
/// when it sets any (resources that do not parse are refused at admission).
pub fn limits_of(pod: &k8s_openapi::api::core::v1::Pod) -> Option<PodLimits> {
    let limits = crate::spec::resources::pod_amounts(pod).ok()??.limits;
    let l = PodLimits {
        cpu_millis: limits.cpu_millis.filter(|v| *v > 0),
        memory_bytes: limits.memory_bytes.filter(|v| *v > 0),
    };
    (l.cpu_millis.is_some() || l.memory_bytes.is_some()).then_some(l)
}

/// The pod's cgroup, as the engine's `CgroupParent` names it.
pub fn parent(uid: &str) -> String {
    format!("/podvisor/pod{uid}")
}

fn cpu_quota(millis: i64) -> i64 {
    (millis * CFS_PERIOD_US / 1000).max(MIN_CFS_QUOTA_US)
}

fn write(path: PathBuf, value: &str) -> io::Result<()> {
    std::fs::write(&path, value)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

fn make(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))
}

/// Makes (or updates) the cgroup of pod `uid` under `root` with `limits`,
/// for cgroup `version` 1 (one hierarchy per controller) or 2 (unified,
/// with the cpu and memory controllers enabled down to it).
pub fn create(root: &Path, version: u8, uid: &str, limits: PodLimits) -> io::Result<()> {
    let rel = parent(uid);
    let rel = rel.trim_start_matches('/');
    if version == 2 {
        write(root.join("cgroup.subtree_control"), "+cpu +memory")?;
        make(&root.join("podvisor"))?;
        write(root.join("podvisor/cgroup.subtree_control"), "+cpu +memory")?;
        let dir = root.join(rel);
        make(&dir)?;
        if let Some(bytes) = limits.memory_bytes {
            write(dir.join("memory.max"), &bytes.to_string())?;
        }
        if let Some(millis) = limits.cpu_millis {
            write(
                dir.join("cpu.max"),
                &format!("{} {CFS_PERIOD_US}", cpu_quota(millis)),
            )?;
        }
        return Ok(());
    }
    if let Some(bytes) = limits.memory_bytes {
        let dir = root.join("memory").join(rel);
        make(&dir)?;
        write(dir.join("memory.limit_in_bytes"), &bytes.to_string())?;
    }
    if let Some(millis) = limits.cpu_millis {
        let dir = root.join("cpu").join(rel);
        make(&dir)?;
        write(dir.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
        write(dir.join("cpu.cfs_quota_us"), &cpu_quota(millis).to_string())?;
    }
    Ok(())
}

/// Removes the cgroup of pod `uid` from every hierarchy under `root` (the
/// engine made it in the controllers podvisor did not); nothing when there
/// is none. Its containers must be gone.
pub fn remove(root: &Path, uid: &str) -> io::Result<()> {
    let rel = parent(uid);
    let rel = rel.trim_start_matches('/');
    let mut dirs = vec![root.join(rel)];
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            // A v1 hierarchy per controller (`cpu` may link to `cpu,cpuacct`).
            if e.path().is_dir() {
                dirs.push(e.path().join(rel));
            }
        }
    }
    for dir in dirs {
        match std::fs::remove_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: PodLimits = PodLimits {
        cpu_millis: Some(500),
        memory_bytes: Some(64 << 20),
    };

    fn read(path: PathBuf) -> String {
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn version_1_has_a_cgroup_per_controller() {
        let root = tempfile::tempdir().unwrap();
        create(root.path(), 1, "u1", LIMITS).unwrap();
        let mem = root.path().join("memory/podvisor/podu1");
        assert_eq!(read(mem.join("memory.limit_in_bytes")), "67108864");
        let cpu = root.path().join("cpu/podvisor/podu1");
        assert_eq!(read(cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join("cpu.cfs_period_us")), "100000");
        // The engine's own dirs for the other controllers go too.
        std::fs::create_dir_all(root.path().join("pids/podvisor/podu1")).unwrap();
        // Limit files are not in the way on a real cgroupfs; here they are.
        std::fs::remove_file(mem.join("memory.limit_in_bytes")).unwrap();
        std::fs::remove_file(cpu.join("cpu.cfs_quota_us")).unwrap();
        std::fs::remove_file(cpu.join("cpu.cfs_period_us")).unwrap();
        remove(root.path(), "u1").unwrap();
        for c in ["memory", "cpu", "pids"] {
            assert!(!root.path().join(c).join("podvisor/podu1").exists(), "{c}");
        }
        remove(root.path(), "u1").expect("nothing left is no error");
    }

    #[test]
    fn version_2_enables_the_controllers_down_to_the_pod() {
        let root = tempfile::tempdir().unwrap();
        create(root.path(), 2, "u2", LIMITS).unwrap();
        assert_eq!(
            read(root.path().join("cgroup.subtree_control")),
            "+cpu +memory"
        );
        assert_eq!(
            read(root.path().join("podvisor/cgroup.subtree_control")),
            "+cpu +memory"
        );
        let pod = root.path().join("podvisor/podu2");
        assert_eq!(read(pod.join("memory.max")), "67108864");
        assert_eq!(read(pod.join("cpu.max")), "50000 100000");
    }

    #[test]
    fn only_the_limits_given_are_written_and_a_tiny_cpu_gets_the_least_quota() {
        let root = tempfile::tempdir().unwrap();
        let limits = PodLimits {
            cpu_millis: Some(1),
            memory_bytes: None,
        };
        create(root.path(), 1, "u3", limits).unwrap();
        assert!(!root.path().join("memory/podvisor/podu3").exists());
        assert_eq!(
            read(root.path().join("cpu/podvisor/podu3/cpu.cfs_quota_us")),
            "1000"
        );
    }
}
