#!/usr/bin/env bash
# Stops the private Docker engine started by scripts/start-docker.sh (found by
# its pidfile; dockerd stops its containers and its containerd on the way out).
# usage: stop-docker.sh [--clean]
#   --clean  also unmount whatever is still mounted under $DOCKERD_DIR and
#            remove $DOCKERD_DIR (all images, containers and volumes).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

clean=0
case "${1:-}" in
  "") ;;
  --clean) clean=1 ;;
  -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

pid="$(cat "$DOCKERD_DIR/pid" 2>/dev/null || true)"
if [ -n "$pid" ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "dockerd .*$DOCKERD_DIR"; then
  log "stopping dockerd $pid (containers get their stop timeout)"
  kill "$pid"
  for _ in $(seq 1 240); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null; then
    log "dockerd $pid still runs after 60 s; killing it"
    kill -9 "$pid" || true
    sleep 1
  fi
  log "stopped dockerd $pid"
elif docker_answers "$PRIVATE_DOCKER_HOST"; then
  die "an engine answers on $PRIVATE_DOCKER_HOST but $DOCKERD_DIR/pid does not name it; stop it by hand"
else
  log "the private dockerd is not running"
fi

if [ "$clean" = 1 ]; then
  case "$DOCKERD_DIR" in
    /*/*) ;;
    *) die "refusing to remove DOCKERD_DIR=$DOCKERD_DIR" ;;
  esac
  # Deepest first; a lazy unmount when a plain one fails (busy).
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || die "cannot unmount $m"
  done < <(awk -v d="$DOCKERD_DIR" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r -u)
  rm -rf --one-file-system "$DOCKERD_DIR"
  log "removed $DOCKERD_DIR"
fi
