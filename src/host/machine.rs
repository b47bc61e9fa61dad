//! The node's capacity, for admission ([`crate::spec::resources::admit`]).

use super::Host;
use crate::spec::resources::NodeCapacity;

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
