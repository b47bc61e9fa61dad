#!/usr/bin/env bash
# Starts a private Docker engine (DESIGN.md §6) unless one already answers there,
# installing Debian's docker.io when missing. Prints the DOCKER_HOST to use.
# Idempotent: running it twice leaves one engine.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if docker_answers "$PRIVATE_DOCKER_HOST"; then echo "$PRIVATE_DOCKER_HOST"; exit 0; fi
apt_install docker.io
mkdir -p "$DOCKERD_DIR"
if [ -f "$DOCKERD_DIR/pid" ] && kill -0 "$(cat "$DOCKERD_DIR/pid")" 2>/dev/null; then
  log "dockerd $(cat "$DOCKERD_DIR/pid") is running but does not answer; stopping it"
  kill "$(cat "$DOCKERD_DIR/pid")" || true; sleep 2
fi
rm -f "$DOCKERD_DIR/docker.sock" "$DOCKERD_DIR/pid"
log "starting private dockerd in $DOCKERD_DIR (log: $DOCKERD_DIR/dockerd.log)"
setsid dockerd --data-root "$DOCKERD_DIR/root" --exec-root "$DOCKERD_DIR/exec" \
  -H "$PRIVATE_DOCKER_HOST" --pidfile "$DOCKERD_DIR/pid" \
  >"$DOCKERD_DIR/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  docker_answers "$PRIVATE_DOCKER_HOST" && { echo "$PRIVATE_DOCKER_HOST"; exit 0; }
  sleep 0.5
done
tail -20 "$DOCKERD_DIR/dockerd.log" >&2
die "private dockerd did not answer on $PRIVATE_DOCKER_HOST within 30 s"
