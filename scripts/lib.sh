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

# The one list of what the project installs (see its header).
PACKAGES_LIST="${PACKAGES_LIST:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/packages.list}"

# list_entries KIND...: prints "KIND NAME PROGRAMS..." for the list's entries of those kinds.
list_entries() {
  [ -r "$PACKAGES_LIST" ] || die "the package list $PACKAGES_LIST is missing"
  local kinds=" $* "
  sed -e 's/#.*//' "$PACKAGES_LIST" | while read -r kind name progs; do
    [ -n "$kind" ] || continue
    case "$kinds" in *" $kind "*) echo "$kind $name $progs" ;; esac
  done
}

deb_installed() { dpkg-query -W -f '${Status}' "$1" 2>/dev/null | grep -q ' ok installed$'; }

# apt_install PKG...: installs the Debian packages that are missing; needs root.
apt_install() {
  local missing=()
  for p in "$@"; do deb_installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}: install them (apt-get install --no-install-recommends ${missing[*]}) or run as root"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
}

# crate_install NAME@VERSION PROGRAM: cargo install --locked when PROGRAM is missing.
crate_install() {
  command -v "$2" >/dev/null 2>&1 && return 0
  log "installing $1 from crates.io"
  cargo install --locked --quiet "${1%@*}" --version "${1#*@}" >&2 || die "cargo install $1 failed"
}

# need PROGRAM|NAME: makes sure PROGRAM is on PATH (or the list's entry NAME,
# such as a library package, is installed), installing the list's entry that
# provides it; dies when no entry does, or when installing did not help.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local kind name progs p
  while read -r kind name progs; do
    for p in $name $progs; do
      [ "$p" = "$1" ] || continue
      case "$kind" in
        apt) apt_install "$name" ;;
        crate) crate_install "$name" "$1" ;;
        image) [ "$name" != - ] || die "$1 is missing: the machine image ships it ($PACKAGES_LIST); install it by hand"
               apt_install "$name" ;;
      esac
      [ "$p" = "$name" ] || command -v "$1" >/dev/null 2>&1 || die "$1 not found even after installing $name ($kind)"
      return 0
    done
  done < <(list_entries apt crate image)
  die "$1 is not installed and no entry of $PACKAGES_LIST provides it"
}

docker_answers() { DOCKER_HOST="$1" timeout 5 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# http_code URL: the HTTP status of GET URL, 000 when nothing answers.
http_code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$1" 2>/dev/null || true; }
