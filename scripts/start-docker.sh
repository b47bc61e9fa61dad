#!/usr/bin/env bash
# Starts a private Docker engine (DESIGN.md §6) unless one already answers there,
# installing Debian's docker.io when missing. Prints the DOCKER_HOST to use.
# Idempotent: running it twice leaves one engine.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

if docker_answers "$PRIVATE_DOCKER_HOST"; then echo "$PRIVATE_DOCKER_HOST"; exit 0; fi
need dockerd
mkdir -p "$DOCKERD_DIR"
old="$(cat "$DOCKERD_DIR/pid" 2>/dev/null || true)"
if [ -n "$old" ] && tr '\0' ' ' 2>/dev/null <"/proc/$old/cmdline" | grep -q "dockerd .*$DOCKERD_DIR"; then
  log "dockerd $old is running but does not answer; stopping it"
  kill "$old" || true
  for _ in $(seq 1 40); do kill -0 "$old" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$old" 2>/dev/null; then kill -9 "$old" || true; sleep 1; fi
fi
rm -f "$DOCKERD_DIR/docker.sock" "$DOCKERD_DIR/pid"
log "starting private dockerd in $DOCKERD_DIR (log: $DOCKERD_DIR/dockerd.log)"
setsid dockerd --data-root "$DOCKERD_DIR/root" --exec-root "$DOCKERD_DIR/exec" \
  -H "$PRIVATE_DOCKER_HOST" --pidfile "$DOCKERD_DIR/pid" \
  >"$DOCKERD_DIR/dockerd.log" 2>&1 </dev/null &
dpid=$!
for _ in $(seq 1 60); do
  docker_answers "$PRIVATE_DOCKER_HOST" && { echo "$PRIVATE_DOCKER_HOST"; exit 0; }
  kill -0 "$dpid" 2>/dev/null || { tail -20 "$DOCKERD_DIR/dockerd.log" >&2; die "dockerd exited at start"; }
  sleep 0.5
done
tail -20 "$DOCKERD_DIR/dockerd.log" >&2
die "private dockerd did not answer on $PRIVATE_DOCKER_HOST within 30 s"
