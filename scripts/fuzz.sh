#!/usr/bin/env bash
# Fuzzes podvisor's parsers of untrusted input with cargo-fuzz / libFuzzer,
# each target for FUZZ_TIME seconds; `make fuzz` runs it. The targets:
#   manifest   reading + validating a manifest file (manifest::parse_file)
#   api_query  the node API's labelSelector / fieldSelector / includeObject
# FUZZ_TARGETS picks some (default: all, in that order).
# The committed seeds are fuzz/seeds/<target>/; what the fuzzer finds grows in
# fuzz/corpus/<target>/ (gitignored, kept between runs). cargo-fuzz passes -Z
# flags, so the build runs on the installed stable toolchain with
# RUSTC_BOOTSTRAP=1 (this script's commands only); it builds into fuzz/target.
# Exits non-zero on a crash, a timeout or an out-of-memory input, printing the
# saved input's path (under fuzz/artifacts/<target>/), to reproduce with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> <that path>
#
# usage: fuzz.sh [SECONDS]   (default: $FUZZ_TIME, else 600; env FUZZ_TARGETS)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
esac
seconds="${1:-${FUZZ_TIME:-600}}"
case "$seconds" in ''|*[!0-9]*) die "FUZZ_TIME must be a number of seconds, not '$seconds'" ;; esac
[ "$seconds" -gt 0 ] || die "FUZZ_TIME must be at least 1 second"

repo="$(cd "$here/.." && pwd)"
targets="${FUZZ_TARGETS:-manifest api_query}"
need cargo
need g++          # libFuzzer itself is C++, built by libfuzzer-sys
need cargo-fuzz

cd "$repo"
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$repo/fuzz/target"

fuzz_one() {
  local target="$1"
  corpus="fuzz/corpus/$target"
  seeds="fuzz/seeds/$target"
  artifacts="fuzz/artifacts/$target"
  [ -d "$seeds" ] || die "no seed corpus at $seeds"
  mkdir -p "$corpus" "$artifacts"

  log "building the fuzz target '$target' (stable rustc with RUSTC_BOOTSTRAP=1)"
  cargo fuzz build "$target" >&2 || die "cargo fuzz build $target failed"

  marker="$(mktemp)"
  trap 'rm -f "$marker"' EXIT
  log "fuzzing '$target' for ${seconds}s (corpus $corpus, seeds $seeds)"
  # The first corpus dir is the one libFuzzer adds to; the seeds are only read.
  # -max_len: manifests are small files; -timeout: a parse taking seconds is a bug.
  status=0
  cargo fuzz run "$target" "$corpus" "$seeds" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -timeout=30 \
    -print_final_stats=1 || status=$?

  if [ "$status" -ne 0 ]; then
    found="$(find "$artifacts" -type f -newer "$marker" 2>/dev/null | sort)"
    [ -n "$found" ] || found="(none saved: see the output above)"
    printf '[podvisor-scripts] error: fuzzing %s failed (exit %s); the input:\n%s\n' \
      "$target" "$status" "$found" >&2
    log "reproduce: RUSTC_BOOTSTRAP=1 cargo fuzz run $target <input>; minimize: RUSTC_BOOTSTRAP=1 cargo fuzz tmin $target <input>"
    exit 1
  fi
  rm -f "$marker"
  log "fuzzing '$target': no crash in ${seconds}s; corpus: $(find "$corpus" -type f | wc -l) inputs"
}

for target in $targets; do
  fuzz_one "$target"
done
