#!/usr/bin/env bash
# Builds the project's offline images (DESIGN.md §6) and imports them into the
# engine at $DOCKER_HOST (default: the private engine of lib.sh):
#   podvisor.local/pause:1    only /pause, the static program from pause/pause.c
#   podvisor.local/busybox:1  Debian's busybox-static with all applet links
# Idempotent: each image carries a label podvisor.content=<sha256 of its
# inputs>; an image whose tag already has the same label is left alone.
#
# usage: build-images.sh [--push REGISTRY] [--force]
#   --push REGISTRY  also tag and push the images as REGISTRY/podvisor/busybox:1
#                    and REGISTRY/podvisor/pause:1 (e.g. 127.0.0.1:5555; the
#                    engine must already be logged in if the registry wants auth)
#   --force          rebuild even when the labels match
# Progress goes to stderr; stdout stays empty.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$here/lib.sh"

push=""
force=0
while [ $# -gt 0 ]; do
  case "$1" in
    --push) [ $# -ge 2 ] || die "--push needs a REGISTRY (host:port)"; push="$2"; shift 2 ;;
    --push=*) push="${1#--push=}"; shift ;;
    --force) force=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

need docker
export DOCKER_HOST="${DOCKER_HOST:-$PRIVATE_DOCKER_HOST}"
docker_answers "$DOCKER_HOST" || die "no Docker engine answers at $DOCKER_HOST (start one: scripts/start-docker.sh)"

work="$(mktemp -d "${TMPDIR:-/tmp}/podvisor-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# sha256 of stdin
sum() { sha256sum | cut -d' ' -f1; }
pkg_version() { dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo unknown; }
current_label() { docker image inspect -f '{{index .Config.Labels "podvisor.content"}}' "$1" 2>/dev/null || true; }

# import_rootfs TAG CONTENT DIR CHANGE...: tars DIR as root-owned files and
# imports it as TAG with the CHANGEs plus the content label; drops the image
# TAG named before when nothing else uses it.
import_rootfs() {
  local tag="$1" content="$2" dir="$3" old_id
  shift 3
  local changes=(-c "LABEL podvisor.content=$content")
  for c in "$@"; do changes+=(-c "$c"); done
  tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$dir" -cf "$work/rootfs.tar" .
  old_id="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
  docker import "${changes[@]}" "$work/rootfs.tar" "$tag" >/dev/null || die "docker import of $tag failed"
  rm -f "$work/rootfs.tar"
  [ "$(current_label "$tag")" = "$content" ] || die "$tag was imported but does not carry label podvisor.content=$content"
  if [ -n "$old_id" ] && [ "$old_id" != "$(docker image inspect -f '{{.Id}}' "$tag")" ] &&
     [ -z "$(docker image inspect -f '{{join .RepoTags ""}}' "$old_id" 2>/dev/null)" ]; then
    docker rmi "$old_id" >/dev/null 2>&1 || true
  fi
  log "imported $tag (content ${content:0:12})"
}

up_to_date() { # TAG CONTENT
  [ "$force" = 0 ] && [ "$(current_label "$1")" = "$2" ]
}

# --- podvisor.local/pause:1 -------------------------------------------------
build_pause() {
  local src="$repo/pause/pause.c" cflags="-static -Os -s -Wall -Wextra -Werror" content r
  [ -f "$src" ] || die "missing $src"
  need gcc
  need libc6-dev
  content="$( { echo "pause recipe 1: gcc $cflags; ENTRYPOINT [\"/pause\"]"
                gcc --version | head -1; pkg_version libc6-dev; echo
                cat "$src"; } | sum)"
  if up_to_date "$PAUSE_IMAGE" "$content"; then log "$PAUSE_IMAGE is up to date"; return; fi
  r="$work/pause-root"
  mkdir -p "$r"
  # shellcheck disable=SC2086 # cflags is a word list
  gcc $cflags -o "$r/pause" "$src" || die "compiling $src failed"
  chmod 0755 "$r/pause"
  "$r/pause" --version >/dev/null || die "the built pause program does not run"
  import_rootfs "$PAUSE_IMAGE" "$content" "$r" 'ENTRYPOINT ["/pause"]'
}

# --- podvisor.local/busybox:1 -----------------------------------------------
static_busybox() { # prints the path of a statically linked busybox, installing busybox-static if needed
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    if [ -x "$b" ] && LC_ALL=C ldd "$b" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
      echo "$b"; return 0
    fi
  done
  need busybox-static
  [ -x /bin/busybox ] || die "busybox-static installed but /bin/busybox is missing"
  echo /bin/busybox
}

build_busybox() {
  local bb content r a p
  bb="$(static_busybox)"
  content="$( { echo "busybox recipe 1: /bin links for --list, --list-full links, passwd root+nobody, CMD /bin/sh, ENV PATH"
                sha256sum <"$bb"; } | sum)"
  if up_to_date "$BUSYBOX_IMAGE" "$content"; then log "$BUSYBOX_IMAGE is up to date"; return; fi
  r="$work/busybox-root"
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,var,proc,sys,dev,tmp}
  chmod 1777 "$r/tmp"
  chmod 0700 "$r/root"
  cp "$bb" "$r/bin/busybox"
  chmod 0755 "$r/bin/busybox"
  # every applet in /bin, so /bin/sleep, /bin/wget ... always exist
  for a in $("$bb" --list); do
    [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"
  done
  # and at its usual place too (/usr/bin/env, /sbin/ip, ...)
  for p in $("$bb" --list-full 2>/dev/null || true); do
    [ -e "$r/$p" ] || [ -L "$r/$p" ] || ln -s /bin/busybox "$r/$p"
  done
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
EOF
  : >"$r/etc/hosts"
  : >"$r/etc/resolv.conf"
  : >"$r/etc/hostname"
  import_rootfs "$BUSYBOX_IMAGE" "$content" "$r" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["/bin/sh"]'
}

build_pause
build_busybox

if [ -n "$push" ]; then
  for img in "$BUSYBOX_IMAGE" "$PAUSE_IMAGE"; do
    name="${img#podvisor.local/}"         # busybox:1
    target="$push/podvisor/$name"        # 127.0.0.1:5555/podvisor/busybox:1
    docker tag "$img" "$target"
    docker push "$target" >&2 || die "docker push $target failed (is the registry at $push running? does it need docker login?)"
    log "pushed $target"
  done
fi
