# Shared by the project's scripts: where the private engine and registry live.
# Sourced, not run. Every path can be overridden from the environment.
PODVISOR_STATE="${PODVISOR_STATE:-/tmp/podvisor-dev}"
DOCKERD_DIR="${DOCKERD_DIR:-$PODVISOR_STATE/dockerd}"
PRIVATE_DOCKER_HOST="unix://$DOCKERD_DIR/docker.sock"
REGISTRY_DIR="${REGISTRY_DIR:-$PODVISOR_STATE/registry}"
REGISTRY_PORT="${REGISTRY_PORT:-5555}"

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

docker_answers() { DOCKER_HOST="$1" timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }
