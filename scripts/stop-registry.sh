#!/usr/bin/env bash
# Stops a registry started by scripts/start-registry.sh (its pidfile DIR/pid).
# usage: stop-registry.sh [--port P] [--dir D]   (same defaults as start-registry.sh)
# Leaves the stored images in DIR/data; add --clean to remove DIR as well.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

port="$REGISTRY_PORT"
dir=""
clean=0
while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || die "--port needs a value"; port="$2"; shift 2 ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a value"; dir="$2"; shift 2 ;;
    --clean) clean=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
if [ -z "$dir" ]; then
  if [ "$port" = "$REGISTRY_PORT" ]; then dir="$REGISTRY_DIR"; else dir="$PODVISOR_STATE/registry-$port"; fi
fi

pid="$(cat "$dir/pid" 2>/dev/null || true)"
if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'docker-registry serve'; then
  kill "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then log "docker-registry $pid ignores SIGTERM; killing it"; kill -9 "$pid" || true; fi
  log "stopped docker-registry $pid ($dir)"
else
  log "no registry of ours runs from $dir"
fi
rm -f "$dir/pid"
if [ "$clean" = 1 ]; then
  case "$dir" in /|/tmp|/tmp/|"") die "refusing to remove $dir" ;; esac
  rm -rf --one-file-system "$dir"
  log "removed $dir"
fi
