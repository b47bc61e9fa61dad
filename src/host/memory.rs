//! Giving the heap memory podvisor freed back to the system.
//!
//! glibc's allocator keeps freed memory for reuse and returns only what is
//! free at the top of its heaps. After a burst (a thousand pods parsed and
//! synced at start, a churn of manifests) the freed memory sits between
//! live allocations and stays in the resident set for good: a node agent
//! that only ever grows. [`return_free_memory`] asks glibc to give back
//! every whole free page, wherever it is; the supervisor calls it on each
//! relist, so the resident set follows what is in use within a sync period.

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
