//! Read + validate of one manifest file: `parse_file` must return `Ok` or an
//! error for any input, never panic, overflow the stack or hang.
//!
//! Each input is read twice, as `fuzz.yaml` and as `fuzz.json` (the extension
//! picks the parser), so the seeds are plain manifest files. Input that is not
//! UTF-8 is skipped: podvisor reads files as strings, so such bytes never reach
//! the parser.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(content) = std::str::from_utf8(data) else {
        return;
    };
    for name in ["fuzz.yaml", "fuzz.json"] {
        let _ = podvisor::manifest::parse_file(Path::new(name), content);
    }
});
