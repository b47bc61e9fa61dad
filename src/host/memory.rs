//! Giving the heap memory podvisor freed back to the system.
//!
//! glibc's allocator keeps freed memory for reuse and returns only what is
//! free at the top of its heaps. After a burst (a thousand pods parsed and
//! synced at start, a churn of manifests) the freed memory sits between
//! live allocations and stays in the resident set for good: a node agent
//! that only ever grows. [`return_free_memory`] asks glibc to give back
//! every whole free page, wherever it is; the supervisor calls it on each
//! relist, so the resident set follows what is in use within a sync period.

use std::time::{Duration, Instant};

/// Most malloc arenas the daemon uses. glibc gives each thread that
/// allocates under contention an arena of its own (up to 8 per core), each
/// keeping its own free memory; podvisor's threads (the actor thread and a
/// few blocking ones for files) gain nothing from more than two, and every
/// extra arena is freed memory held apart.
pub const ARENAS: i32 = 2;

/// Caps the malloc arenas at [`ARENAS`] (call before any thread starts);
/// elsewhere than glibc, does nothing.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Gives the code pages of podvisor's own binary back to the system
/// (`madvise(MADV_PAGEOUT)` on its read-only mappings: code and constant
/// data), once start-up is over, and again after each burst of work (see
/// [`CodePageOut`]): the code of parsing flags, settings and the first
/// scan is not needed again, and what is comes back on its next use.
/// Without it, the start-up leaves most of the binary's code mapped (the
/// kernel maps 64 KiB around each page it faults in), which counts in the
/// resident set for the daemon's whole life. Returns the bytes advised; does nothing (0)
/// where the kernel lacks the advice (before Linux 5.4) or elsewhere.
pub fn page_out_code() -> usize {
    #[cfg(target_os = "linux")]
    {
        const MADV_PAGEOUT: libc::c_int = 21;
        let Ok(exe) = std::fs::read_link("/proc/self/exe") else {
            return 0;
        };
        let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
            return 0;
        };
        let mut advised = 0;
        for (start, end) in code_ranges(&maps, &exe.to_string_lossy()) {
            // SAFETY: the range is one of this process's own file-backed,
            // read-only mappings; paging it out only drops clean pages,
            // which fault back in from the file when used (pages written
            // by relocation are private and stay).
            let r = unsafe { libc::madvise(start as *mut libc::c_void, end - start, MADV_PAGEOUT) };
            if r == 0 {
                advised += end - start;
            }
        }
        advised
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// When to page the code out ([`page_out_code`]): once start-up is over,
/// and again each time the node has settled after a burst of container
/// changes (a converge, a restart, a removal), so the code that burst ran
/// leaves the resident set too. A quiet node is never paged out twice, and
/// a busy one waits until it is quiet: code faulted back in costs a read.
#[derive(Debug, Default)]
pub struct CodePageOut {
    paged_at: Option<Instant>,
    last_change: Option<Instant>,
}

impl CodePageOut {
    /// How long no container changes before the node counts as settled.
    pub const SETTLE: Duration = Duration::from_secs(10);

    /// A container started, died or went.
    pub fn changed(&mut self, now: Instant) {
        self.last_change = Some(now);
    }

    /// Whether to page out now (then counted as done); `started_up` once
    /// every source delivered its pods.
    pub fn due(&mut self, started_up: bool, now: Instant) -> bool {
        let due = started_up
            && match self.paged_at {
                None => true,
                Some(at) => self.last_change.is_some_and(|changed| {
                    changed > at && now.saturating_duration_since(changed) >= Self::SETTLE
                }),
            };
        if due {
            self.paged_at = Some(now);
        }
        due
    }
}

/// The read-only (code and constant data) mappings of `exe` in a
/// `/proc/PID/maps`; what relocation wrote (RELRO) pages out as nothing.
fn code_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let range = fields.next()?;
            let perms = fields.next()?;
            let path = fields.nth(3)?;
            // Code (r-x) and read-only data (r--), never what is written.
            if !perms.starts_with('r') || perms.as_bytes().get(1) != Some(&b'-') || path != exe {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// Returns the free pages of every heap to the system (`malloc_trim(0)`);
/// elsewhere than glibc, does nothing. Costs a walk of the free lists
/// (well under a millisecond for podvisor's heaps).
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases pages
    // that hold no allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod code_tests {
    use super::*;

    #[test]
    fn only_the_binarys_read_only_mappings_are_paged_out() {
        let maps = "\
55d0a0000000-55d0a0100000 r--p 00000000 08:01 42 /usr/bin/podvisor
55d0a0100000-55d0a0900000 r-xp 00100000 08:01 42 /usr/bin/podvisor
55d0a0900000-55d0a0a00000 r--p 00900000 08:01 42 /usr/bin/podvisor
7f0000000000-7f0000100000 r-xp 00000000 08:01 7 /usr/lib/libc.so.6
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
55d0a0a00000-55d0a0a10000 rw-p 00a00000 08:01 42 /usr/bin/podvisor
7ffd00000000-7ffd00001000 r-xp 00000000 00:00 0 [vdso]
";
        assert_eq!(
            code_ranges(maps, "/usr/bin/podvisor"),
            vec![
                (0x55d0a0000000, 0x55d0a0100000),
                (0x55d0a0100000, 0x55d0a0900000),
                (0x55d0a0900000, 0x55d0a0a00000),
            ]
        );
    }

    #[test]
    fn code_is_paged_out_after_start_up_and_after_each_burst_once_settled() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut po = CodePageOut::default();
        assert!(!po.due(false, at(0)), "not before start-up is over");
        assert!(po.due(true, at(1)), "once start-up is over");
        assert!(!po.due(true, at(2)), "a quiet node only once");
        assert!(!po.due(true, at(60)));
        // A burst: changes at 61 and 65; settled 10 s after the last.
        po.changed(at(61));
        assert!(!po.due(true, at(70)));
        po.changed(at(65));
        assert!(
            !po.due(true, at(74)),
            "still busy 9 s after the last change"
        );
        assert!(po.due(true, at(75)), "settled");
        assert!(!po.due(true, at(90)), "and not again until the next burst");
        po.changed(at(100));
        assert!(po.due(true, at(111)));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn paging_out_the_code_leaves_it_runnable() {
        // The test binary's own code: paged out, then run again.
        let advised = page_out_code();
        assert!(advised > 0 || std::fs::read_link("/proc/self/exe").is_err());
        assert_eq!(code_ranges("", "x"), vec![]);
    }
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    #[test]
    fn freed_memory_between_live_allocations_leaves_the_resident_set() {
        // 128 MiB in 1 KiB blocks, of which every 64th stays: the freed
        // memory is spread between live blocks, none of it at the top.
        let mut blocks: Vec<Box<[u8; 1024]>> = (0..128 * 1024)
            .map(|i| Box::new([(i % 251) as u8; 1024]))
            .collect();
        let kept: Vec<Box<[u8; 1024]>> = blocks.iter().step_by(64).map(|b| Box::new(**b)).collect();
        let before_free = rss_kib();
        blocks.clear();
        blocks.shrink_to_fit();
        let freed = rss_kib();
        return_free_memory();
        let trimmed = rss_kib();
        assert!(
            freed > trimmed + 64 * 1024,
            "RSS {before_free} KiB with the blocks, {freed} KiB once freed, \
             {trimmed} KiB after return_free_memory"
        );
        assert_eq!(kept.len(), 2048);
        assert!(kept.iter().all(|b| b[0] == b[1023]));
    }
}
