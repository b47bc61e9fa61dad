#!/usr/bin/env bash
# Makes sure there is a Docker engine with the project's images and prints
# export lines for it; `make run` and `make test` start with it:
#   env="$(scripts/ensure-env.sh)" && eval "$env"
# (not `eval "$(scripts/ensure-env.sh)"`: eval would hide a failure).
# Engine: $DOCKER_HOST when it is set and answers, otherwise the private
# engine of lib.sh, started (and docker.io installed) when needed. Then
# scripts/build-images.sh. Exits non-zero with a message when anything fails;
# stdout only ever carries the export lines.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

need docker
host=""
if [ -n "${DOCKER_HOST:-}" ]; then
  if docker_answers "$DOCKER_HOST"; then
    host="$DOCKER_HOST"
  elif [ "$DOCKER_HOST" != "$PRIVATE_DOCKER_HOST" ]; then
    log "no engine answers at DOCKER_HOST=$DOCKER_HOST; using the private engine instead"
  fi
fi
if [ -z "$host" ]; then
  host="$("$here/start-docker.sh")" || die "could not start the private Docker engine (see $DOCKERD_DIR/dockerd.log)"
  [ -n "$host" ] || die "start-docker.sh printed no DOCKER_HOST"
fi
docker_answers "$host" || die "the Docker engine at $host does not answer"
DOCKER_HOST="$host" "$here/build-images.sh" >&2 || die "building the images into $host failed"

printf 'export DOCKER_HOST=%q\n' "$host"
printf 'export PODVISOR_PAUSE_IMAGE=%q\n' "${PODVISOR_PAUSE_IMAGE:-$PAUSE_IMAGE}"
printf 'export PODVISOR_BUSYBOX_IMAGE=%q\n' "${PODVISOR_BUSYBOX_IMAGE:-$BUSYBOX_IMAGE}"
