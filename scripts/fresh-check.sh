#!/usr/bin/env bash
# Proves the set-up the way a fresh machine would (`make fresh-check`): stops
# the private engine and every registry the scripts started, wipes their state
# ($PODVISOR_STATE), purges the `apt` entries of scripts/packages.list
# (`apt-get purge --auto-remove`, those entries only) and uninstalls its
# `crate` entries, then runs `bash .ci/run` as CI does: in a fresh clone of
# HEAD with its own target directory, CI=true, no standard input. The last
# line is the test count of `make test`. Root only (it purges packages).
#
# usage: fresh-check.sh [--here]   --here: run .ci/run in this work tree
#                                  (faster: reuses target/, sees uncommitted files)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

in_tree=0
case "${1:-}" in
  "") ;;
  --here) in_tree=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac
[ "$(id -u)" = 0 ] || die "fresh-check purges packages: run it as root"

log "stopping what the scripts started"
pkill -f 'podvisor run' 2>/dev/null || true
pkill -f 'docker-registry serve' 2>/dev/null || true
"$here/stop-docker.sh" --clean
case "$PODVISOR_STATE" in /*/*) rm -rf --one-file-system "$PODVISOR_STATE" ;; *) die "refusing to remove PODVISOR_STATE=$PODVISOR_STATE" ;; esac

purge=()
while read -r _ name _; do deb_installed "$name" && purge+=("$name"); done < <(list_entries apt)
if [ ${#purge[@]} -gt 0 ]; then
  log "purging ${purge[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get purge -y -q --auto-remove "${purge[@]}" >/dev/null || die "apt-get purge failed"
fi
while read -r _ name progs; do
  for p in $progs; do
    if command -v "$p" >/dev/null 2>&1; then log "uninstalling ${name%@*}"; cargo uninstall -q "${name%@*}" || die "cargo uninstall ${name%@*} failed"; break; fi
  done
done < <(list_entries crate)
if "$here/setup.sh" --check 2>/dev/null; then die "nothing is missing after the purge: the list is empty?"; fi

if [ "$in_tree" = 1 ]; then
  dir="$repo"
else
  dir="$(mktemp -d "${TMPDIR:-/tmp}/podvisor-fresh.XXXXXX")/podvisor"
  git clone -q --no-local "$repo" "$dir" || die "git clone of $repo failed"
  [ -d "$repo/../shared" ] && cp -r "$repo/../shared" "$(dirname "$dir")/shared"
  log "fresh clone of $(git -C "$dir" rev-parse --short HEAD) in $dir"
fi
log "running bash .ci/run in $dir"
cd "$dir"
unset DOCKER_HOST
CI=true bash .ci/run </dev/null
