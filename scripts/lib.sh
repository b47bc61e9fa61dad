# shellcheck shell=bash disable=SC2034 # variables used by the sourcing scripts
# Shared by the project's scripts: where the private engine and registry live.
# Sourced, not run. Every path can be overridden from the environment.
PODVISOR_STATE="${PODVISOR_STATE:-/tmp/podvisor-dev}"
DOCKERD_DIR="${DOCKERD_DIR:-$PODVISOR_STATE/dockerd}"
PRIVATE_DOCKER_HOST="unix://$DOCKERD_DIR/docker.sock"
REGISTRY_DIR="${REGISTRY_DIR:-$PODVISOR_STATE/registry}"
REGISTRY_PORT="${REGISTRY_PORT:-5555}"
# The images scripts/build-images.sh makes (fixed names; tests get them through
# PODVISOR_PAUSE_IMAGE / PODVISOR_BUSYBOX_IMAGE, see the Makefile).
PAUSE_IMAGE="podvisor.local/pause:1"
BUSYBOX_IMAGE="podvisor.local/busybox:1"

log() { printf '[podvisor-scripts] %s\n' "$*" >&2; }
die() { printf '[podvisor-scripts] error: %s\n' "$*" >&2; exit 1; }

# apt_install PKG...: installs Debian packages when missing; needs root.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# need_cmd CMD PKG: installs PKG when CMD is not on PATH.
need_cmd() { command -v "$1" >/dev/null 2>&1 || apt_install "$2"; command -v "$1" >/dev/null 2>&1 || die "$1 not found even after installing $2"; }

docker_answers() { DOCKER_HOST="$1" timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# http_code URL: the HTTP status of GET URL, 000 when nothing answers.
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true; }
