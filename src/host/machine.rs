//! The node's capacity, for admission ([`crate::spec::resources::admit`]),
//! and what the machine is ([`MachineInfo`], the kubelet's `/spec`).

use std::path::Path;

use serde::Serialize;

use super::Host;
use crate::settings::Reserved;
use crate::spec::resources::NodeCapacity;

/// What pods may use: the capacity less `--system-reserved` and
/// `--kube-reserved` (never below 0).
pub fn allocatable(capacity: NodeCapacity, reserved: &[Reserved]) -> NodeCapacity {
    let cpu: i64 = reserved.iter().map(|r| r.cpu_millis).sum();
    let memory: i64 = reserved.iter().map(|r| r.memory_bytes).sum();
    NodeCapacity {
        cpu_millis: capacity.cpu_millis.saturating_sub(cpu).max(0),
        memory_bytes: capacity.memory_bytes.saturating_sub(memory).max(0),
    }
}

/// The machine, with cAdvisor's `MachineInfo` field names (what the
/// kubelet's `/spec` answers), plus the kernel, the OS, the engine's
/// version, and the capacity and allocatable podvisor admits pods by.
#[derive(Debug, Clone, Serialize)]
pub struct MachineInfo {
    pub num_cores: usize,
    pub memory_capacity: i64,
    pub machine_id: String,
    pub system_uuid: String,
    pub boot_id: String,
    pub filesystems: Vec<FsInfo>,
    pub kernel_version: String,
    pub os_version: String,
    /// Empty when the engine does not answer.
    pub docker_version: String,
    pub capacity: Resources,
    pub allocatable: Resources,
}

/// A file system podvisor writes to (`--root-dir`), as cAdvisor's `FsInfo`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FsInfo {
    pub device: String,
    pub mountpoint: String,
    #[serde(rename = "type")]
    pub fs_type: String,
    pub capacity: u64,
    pub available: u64,
    pub inodes: u64,
    pub inodes_free: u64,
    pub has_inodes: bool,
}

/// CPU and memory as Kubernetes writes them (`cpu: "1500m"`, `memory:
/// "1073741824"`).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Resources {
    pub cpu: String,
    pub memory: String,
}

impl From<NodeCapacity> for Resources {
    fn from(c: NodeCapacity) -> Self {
        let cpu = if c.cpu_millis % 1000 == 0 {
            (c.cpu_millis / 1000).to_string()
        } else {
            format!("{}m", c.cpu_millis)
        };
        Self {
            cpu,
            memory: c.memory_bytes.to_string(),
        }
    }
}

/// A file's first line, trimmed; empty when it cannot be read (a machine
/// without DMI has no `product_uuid`; reading it needs root).
fn first_line(path: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()))
        .unwrap_or_default()
}

/// `PRETTY_NAME` of an `/etc/os-release` text.
pub(crate) fn os_pretty_name(os_release: &str) -> Option<String> {
    let line = os_release.lines().find(|l| l.starts_with("PRETTY_NAME="))?;
    Some(line["PRETTY_NAME=".len()..].trim_matches('"').to_string())
}

/// The mount (source, mount point, type) of `/proc/self/mounts` text that
/// holds `path`: the longest mount point that is a prefix of it.
pub(crate) fn mount_of(mounts: &str, path: &Path) -> Option<(String, String, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?, w.next()?, w.next()?))
        })
        .filter(|(_, point, _)| path.starts_with(point))
        .max_by_key(|(_, point, _)| point.len())
        .map(|(dev, point, ty)| (dev.to_string(), point.to_string(), ty.to_string()))
}

/// The file system of `dir`: its mount and `statvfs`.
fn fs_info(dir: &Path) -> Option<FsInfo> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let (device, mountpoint, fs_type) = mount_of(&mounts, dir)?;
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a
    // valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frag = st.f_frsize as u64;
    Some(FsInfo {
        device,
        mountpoint,
        fs_type,
        capacity: st.f_blocks as u64 * frag,
        available: st.f_bavail as u64 * frag,
        inodes: st.f_files as u64,
        inodes_free: st.f_ffree as u64,
        has_inodes: st.f_files > 0,
    })
}

impl MachineInfo {
    /// Reads this machine (blocking: small files under `/proc`, `/sys`,
    /// `/etc`); `root_dir`'s file system is the one listed.
    pub fn read(
        host: &dyn Host,
        root_dir: &Path,
        capacity: NodeCapacity,
        allocatable: NodeCapacity,
    ) -> Self {
        let root = std::fs::canonicalize(root_dir).unwrap_or_else(|_| root_dir.to_path_buf());
        Self {
            num_cores: host.cpus().unwrap_or(1),
            memory_capacity: host.memory_bytes().unwrap_or(0),
            machine_id: first_line("/etc/machine-id"),
            system_uuid: first_line("/sys/class/dmi/id/product_uuid"),
            boot_id: first_line("/proc/sys/kernel/random/boot_id"),
            filesystems: fs_info(&root).into_iter().collect(),
            kernel_version: first_line("/proc/sys/kernel/osrelease"),
            os_version: std::fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|t| os_pretty_name(&t))
                .unwrap_or_default(),
            docker_version: String::new(),
            capacity: capacity.into(),
            allocatable: allocatable.into(),
        }
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
pub(crate) fn meminfo_total_bytes(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let value: i64 = words.next()?.parse().ok()?;
    let factor = match words.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(factor)
}

/// The number of `processor` entries of a `/proc/cpuinfo` text.
pub(crate) fn cpuinfo_processors(cpuinfo: &str) -> usize {
    cpuinfo
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count()
}

/// The machine's capacity: the CPUs this process may use ([`Host::cpus`];
/// 1 when unknown) and its memory ([`Host::memory_bytes`]). When the memory
/// cannot be read it is `i64::MAX`: memory admission is then effectively off
/// (and a warning logged).
pub fn node_capacity(host: &dyn Host) -> NodeCapacity {
    let cpus = host.cpus().unwrap_or(1);
    let memory = host.memory_bytes();
    if memory.is_none() {
        tracing::warn!("cannot read MemTotal from /proc/meminfo; memory admission is off");
    }
    NodeCapacity {
        cpu_millis: i64::try_from(cpus).unwrap_or(i64::MAX / 1000) * 1000,
        memory_bytes: memory.unwrap_or(i64::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::fake::FakeHost;
    use crate::host::RealHost;

    #[test]
    fn allocatable_is_capacity_less_what_is_reserved() {
        let cap = NodeCapacity {
            cpu_millis: 2000,
            memory_bytes: 8 << 30,
        };
        let sys = Reserved {
            cpu_millis: 500,
            memory_bytes: 1 << 30,
        };
        let kube = Reserved {
            cpu_millis: 250,
            memory_bytes: 0,
        };
        let a = allocatable(cap, &[sys, kube]);
        assert_eq!((a.cpu_millis, a.memory_bytes), (1250, 7 << 30));
        let all = Reserved {
            cpu_millis: 9000,
            memory_bytes: 0,
        };
        assert_eq!(allocatable(cap, &[all]).cpu_millis, 0, "never below 0");
        assert_eq!(Resources::from(a).cpu, "1250m");
        assert_eq!(Resources::from(cap).cpu, "2");
    }

    #[test]
    fn os_release_mounts_and_this_machine() {
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n";
        assert_eq!(
            os_pretty_name(os).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        let mounts =
            "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n/dev/vdb /tmp/data xfs rw 0 0\n";
        assert_eq!(
            mount_of(mounts, Path::new("/tmp/data/x")),
            Some(("/dev/vdb".into(), "/tmp/data".into(), "xfs".into()))
        );
        assert_eq!(
            mount_of(mounts, Path::new("/var/lib")).map(|m| m.1),
            Some("/".into())
        );
        let cap = node_capacity(&RealHost);
        let m = MachineInfo::read(&RealHost, Path::new("/tmp"), cap, cap);
        assert!(m.num_cores >= 1 && m.memory_capacity > 0, "{m:?}");
        assert_eq!(m.boot_id.len(), 36, "{m:?}");
        assert!(!m.kernel_version.is_empty(), "{m:?}");
        let fs = &m.filesystems[0];
        assert!(fs.capacity > 0 && fs.capacity >= fs.available, "{fs:?}");
    }

    #[test]
    fn meminfo_and_cpuinfo_parsing() {
        let meminfo = "MemTotal:       24684084 kB\nMemFree:         1000 kB\n";
        assert_eq!(meminfo_total_bytes(meminfo), Some(24_684_084 * 1024));
        assert_eq!(meminfo_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(meminfo_total_bytes("MemTotal: x kB\n"), None);
        let cpuinfo = "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n";
        assert_eq!(cpuinfo_processors(cpuinfo), 2);
    }

    #[test]
    fn node_capacity_reads_this_machine() {
        let n = node_capacity(&RealHost);
        assert!(n.cpu_millis >= 1000 && n.cpu_millis % 1000 == 0, "{n:?}");
        assert!(n.memory_bytes > 0, "{n:?}");
    }

    #[test]
    fn capacity_from_what_the_host_tells() {
        let host = FakeHost::new();
        host.set_machine(Some(6), Some(2 << 30));
        assert_eq!(
            node_capacity(&host),
            NodeCapacity {
                cpu_millis: 6000,
                memory_bytes: 2 << 30
            }
        );
    }

    #[test]
    fn unknown_cpus_count_one_and_unknown_memory_turns_admission_off() {
        let host = FakeHost::new();
        host.set_machine(None, None);
        assert_eq!(
            node_capacity(&host),
            NodeCapacity {
                cpu_millis: 1000,
                memory_bytes: i64::MAX
            }
        );
        host.set_machine(Some(usize::MAX), None);
        assert_eq!(node_capacity(&host).cpu_millis, (i64::MAX / 1000) * 1000);
    }
}
