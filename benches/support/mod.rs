//! What the real-engine benches share: their environment, and a process's
//! memory and CPU as /proc shows them.

#![allow(dead_code)] // each bench uses its part

use std::path::Path;
use std::time::Duration;

/// Linux's USER_HZ: the unit of utime and stime in /proc/PID/stat.
pub const TICKS_PER_SEC: f64 = 100.0;

/// A variable `make bench` sets; the bench refuses to run without it.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `make bench` (it starts the private engine and images)")
    })
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A field of /proc/PID/status, in KiB (`VmRSS`, `VmHWM`).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process runs");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User plus system CPU ticks used so far.
pub fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("process runs");
    // The fields after the command name, which is in parentheses.
    let rest = &text[text.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Writes pod `name` (one busybox `sleep 3600`) into `dir` at once: a
/// hidden temporary file renamed into place.
pub fn write_manifest(dir: &Path, name: &str, busybox: &str) {
    let text = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {busybox}\n    command: [\"sleep\", \"3600\"]\n"
    );
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(format!("{name}.yaml"))).expect("rename manifest");
}

/// The podvisor binary to measure: `PODVISOR_BIN` (the release binary, as
/// `make bench` sets it), else the one cargo built for the benches.
pub fn podvisor_bin() -> std::path::PathBuf {
    std::env::var_os("PODVISOR_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_BIN_EXE_podvisor")))
}
